"""The full-size rehearsal at CI size (benchmarks/rehearsal.py --quick):
NYUD stand-ins at the real 480x640 written in the authors' layout, then the
real commands: prepare, train.py with configs/nyud.cfg, full-resolution
evaluation, export with int8 calibration; time and peak memory per stage."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import rehearsal  # pylint: disable=wrong-import-position


def test_quick_rehearsal_runs_every_stage_at_the_real_size(tmp_path):
    # A partial run: both validation images are written and prepared, the
    # report and the evaluation score the first one.
    record = rehearsal.rehearse("nyud", str(tmp_path), train_steps=2,
                                quick=True, calibration_examples=2,
                                eval_examples=1)
    assert [s["stage"] for s in record["stages"]] == [
        "write", "prepare", "train", "evaluate", "export"]
    for stage in record["stages"]:
        assert stage["returncode"] == 0
        # A Python process with TensorFlow: hundreds of MB, not bytes or TB.
        assert 0.2 < stage["peak_rss_gib"] < 8, stage
        assert stage["seconds"] > 0
    assert record["image_size"] == [425, 560]  # The config's crop.
    base = tmp_path / "nyud"
    images = sorted(os.listdir(base / "manual" / "NYUD_MT" / "images"))
    assert len(images) == 5
    from PIL import Image  # pylint: disable=import-outside-toplevel
    with Image.open(base / "manual" / "NYUD_MT" / "images" / images[0]) as im:
        assert im.size == (640, 480)
    results = json.loads((base / "model" / "eval_validation" /
                          "results.json").read_text())
    assert results["full_resolution"] and results["num_examples"] == 1
    assert record["eval_examples"] == 1 and record["num_val"] == 2
    assert set(results["headline"]) == {"semseg"}
    summary = json.loads((base / "model" / "summary.json").read_text())
    assert set(summary["evaluation"]) == {"semseg"}
    for task in ("semseg",):
        assert summary["tasks"][task]["steps"] == 2
        assert record["training_steps"][task]["median_step_seconds"] > 0
    assert (base / "export" / "rmtl" / "rmtl-1-int8.tflite").is_file()
    assert record["peak_rss_gib"] == max(s["peak_rss_gib"]
                                         for s in record["stages"])
    table = rehearsal.markdown([record])
    assert table.count("| nyud |") == 5
    assert table.count("(1 of 2 validation images)") == 2  # train, evaluate
    train = record["stages"][2]
    samples = train["rss_gib_over_time"]
    assert all(0 <= gib <= train["peak_rss_gib"] + 0.01
               for _, gib in samples)
    assert max(gib for _, gib in samples) > 0.2
    assert [t for t, _ in samples] == sorted(t for t, _ in samples)

    # Rerun after the fact: every stage is read back, none run again.
    again = rehearsal.rehearse("nyud", str(tmp_path), train_steps=2,
                               quick=True, calibration_examples=2,
                               eval_examples=1)
    assert [s.get("resumed") for s in again["stages"]] == [True] * 5
    assert [s["seconds"] for s in again["stages"]] == [
        s["seconds"] for s in record["stages"]]

    # The same run asked for bfloat16 too: the recorded stages are read
    # back, and semseg trains again in mixed_bfloat16 at the same crop.
    bf16 = rehearsal.rehearse("nyud", str(tmp_path), train_steps=2,
                              quick=True, calibration_examples=2,
                              eval_examples=1, precision_steps=2)
    assert [s["stage"] for s in bf16["stages"]] == [
        "write", "prepare", "train", "evaluate", "export",
        "train_mixed_bfloat16"]
    assert [s.get("resumed") for s in bf16["stages"]] == [True] * 5 + [None]
    bf16_summary = json.loads((base / "model_mixed_bfloat16" /
                               "summary.json").read_text())
    semseg = bf16_summary["tasks"]["semseg"]
    assert semseg["config"]["mixed_precision"] == "mixed_bfloat16"
    assert semseg["config"]["image_size"] == [425, 560]
    precision = bf16["precision"]
    assert precision["mixed_bfloat16_steps"] == 2
    assert precision["mixed_bfloat16_median_step_seconds"] == semseg[
        "median_step_seconds"] > 0
    assert precision["mixed_bfloat16_over_float32"] == round(
        semseg["median_step_seconds"]
        / record["training_steps"]["semseg"]["median_step_seconds"], 3)
    assert record["precision"] is None  # Not asked for.
