"""`evaluate` with perfect predictions, and `run_evaluation` on a tiny
model: Keras, SavedModel and TFLite agree; bad input is named."""

import json
import os
import threading

import keras
import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.data import synthetic_dataset
from rmtl_tf.evaluation import evaluate_lib, predictors
from rmtl_tf.metrics import multitask_score

TASKS = ["semseg", "depth", "normals", "edge", "saliency"]
SIZE = (48, 64)


def _perfect_predictor(batches):
    labels = iter([lab for _, lab in batches])

    def predict(images):
        lab = next(labels)
        out = {t: lab[t].astype(np.float32) for t in TASKS}
        out["semseg"] = np.eye(6, dtype=np.float32)[lab["semseg"]]
        return out

    return predictors.Predictor(predict, TASKS, SIZE, "fake", "perfect",
                                num_classes={"semseg": 6})


def test_perfect_predictions_score_perfectly(tmp_path):
    arrays = synthetic_dataset.synthetic_arrays("validation", 4, SIZE)
    batches = [(arrays["image"][i:i + 2],
                {t: arrays[t][i:i + 2] for t in TASKS}) for i in (0, 2)]
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    writer = tf.summary.create_file_writer(str(tmp_path))
    result = evaluate_lib.evaluate(_perfect_predictor(batches), batches,
                                   progress=False, summary_writer=writer)
    head = {t: v["value"] for t, v in result["headline"].items()}
    assert head["semseg"] == 1.0 and head["depth"] == 0.0
    # Normals are scored as read back from the authors' 8-bit PNGs: about
    # 0.3 degrees of rounding error remain for a perfect prediction.
    assert head["normals"] == pytest.approx(0.3, abs=0.1)
    assert head["edge"] == 1.0
    assert head["saliency"] == pytest.approx(1.0)
    assert result["num_examples"] == 4
    assert os.listdir(tmp_path)  # Panels were written.
    paths = evaluate_lib.write_pr_curves(result["tasks"], str(tmp_path))
    assert sorted(paths) == ["edge", "saliency"]
    assert all(os.path.getsize(p) > 1000 for p in paths.values())


def test_progress_lines_for_runs_without_a_terminal():
    arrays = synthetic_dataset.synthetic_arrays("validation", 6, SIZE)
    batches = [(arrays["image"][i:i + 2],
                {t: arrays[t][i:i + 2] for t in TASKS}) for i in (0, 2, 4)]
    lines = []
    evaluate_lib.evaluate(_perfect_predictor(batches), batches,
                          progress=False, log=lines.append, log_every=2)
    assert len(lines) == 1 and lines[0].startswith(
        "Evaluating fake: 4 images in "), lines


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = rmtl_tf.build_model(
        "resnet_tiny", ["semseg", "depth", "edge"],
        num_classes={"semseg": 6}, image_size=SIZE, head_channels=16,
        low_level_channels=8)
    model_dir = tmp_path_factory.mktemp("model")
    model.save(os.path.join(model_dir, "model.keras"))
    return str(model_dir), model


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    from rmtl_tf.export import export_lib  # pylint: disable=import-outside-toplevel
    return export_lib.export(tiny_model_dir[1],
                             str(tmp_path_factory.mktemp("export")))


def _config(tmp_path, **kwargs):
    return evaluate_lib.EvalConfig(output_dir=str(tmp_path / "out"),
                                   batch_size=2, num_examples=4, **kwargs)


def test_keras_saved_model_and_tflite_agree(tiny_model_dir, exported,
                                            tmp_path):
    model_dir, model = tiny_model_dir
    runs = {
        "keras": evaluate_lib.run_evaluation(
            _config(tmp_path / "k", model_dir=model_dir), log=lambda _: 0),
        "saved_model": evaluate_lib.run_evaluation(
            _config(tmp_path / "s", saved_model=exported["saved_model"]),
            log=lambda _: 0),
        "tflite": evaluate_lib.run_evaluation(
            _config(tmp_path / "t", tflite=exported["tflite"],
                    signature="serving_default"), log=lambda _: 0),
    }
    keras_run = runs["keras"]
    assert keras_run["parameters"] == predictors.count_parameters(model)
    assert "| " + model_dir + " |" in keras_run["table"]
    with open(keras_run["json"], encoding="utf-8") as f:
        stored = json.load(f)
    assert stored["tasks"]["edge"]["ods_f"] == keras_run["tasks"]["edge"][
        "ods_f"]
    assert os.path.isfile(os.path.join(os.path.dirname(keras_run["json"]),
                                       "pr_edge.png"))
    for name in ("saved_model", "tflite"):
        for task in ("semseg", "depth", "edge"):
            assert runs[name]["headline"][task]["value"] == pytest.approx(
                keras_run["headline"][task]["value"], abs=2e-3), (name, task)
    # The same run again gives the same numbers: deterministic.
    again = evaluate_lib.run_evaluation(
        _config(tmp_path / "k2", model_dir=model_dir), log=lambda _: 0)
    assert again["tasks"] == keras_run["tasks"]


def test_evaluation_without_a_terminal_logs_progress_lines(tiny_model_dir,
                                                           tmp_path):
    """`python -m rmtl_tf.evaluate > log`: a line every `log_every`
    batches, where a progress bar would print once at the end."""
    lines = []
    evaluate_lib.run_evaluation(
        _config(tmp_path, model_dir=tiny_model_dir[0]), log=lines.append,
        log_every=1)
    progress = [line for line in lines
                if line.startswith("Evaluating keras: ")]
    assert [line.split(" in ")[0] for line in progress] == [
        "Evaluating keras: 2 images", "Evaluating keras: 4 images"], lines


def test_edge_threads_do_not_change_the_scores(tiny_model_dir, tmp_path):
    """Edge maps scored in background threads (the default) or in the
    loop (`edge_workers=0`): the same numbers."""
    runs = [evaluate_lib.run_evaluation(
        _config(tmp_path / str(workers), model_dir=tiny_model_dir[0],
                edge_workers=workers, image_summaries=False),
        log=lambda _: 0) for workers in (0, 2)]
    assert runs[0]["tasks"] == runs[1]["tasks"]
    assert len(runs[0]["tasks"]["edge"]["precision"]) == 99


def test_an_error_mid_split_leaves_no_edge_thread():
    arrays = synthetic_dataset.synthetic_arrays("validation", 6, SIZE)
    batches = [(arrays["image"][i:i + 2],
                {t: arrays[t][i:i + 2] for t in TASKS}) for i in (0, 2, 4)]
    predictor = _perfect_predictor(batches[:2])  # No third batch.
    with pytest.raises(StopIteration):
        evaluate_lib.evaluate(predictor, batches, progress=False,
                              edge_workers=2)
    assert not [t for t in threading.enumerate()
                if t.name.startswith("edge_ods")]


def test_dm_on_round_numbers_is_known_by_hand():
    """dm = mean over tasks of (-1)^l (M - M_ref) / M_ref x 100, l = 1 when
    lower is better. semseg mIoU 0.40 -> 0.50 is +25 %; depth RMSE (lower
    is better) 0.50 -> 0.60 is 20 % worse, -20 %: dm = (25 - 20) / 2."""
    reference = {"semseg": {"miou": 0.40}, "depth": {"rmse": 0.50}}
    dm, per_task = multitask_score.delta_m(
        {"semseg": {"miou": 0.50}, "depth": {"rmse": 0.60}}, reference)
    assert per_task == pytest.approx({"semseg": 25.0, "depth": -20.0},
                                     abs=1e-9)
    assert dm == pytest.approx(2.5, abs=1e-9)
    # A lower error is the improvement: RMSE 0.40 is +20 %, dm (25 + 20) / 2.
    dm, _ = multitask_score.delta_m(
        {"semseg": {"miou": 0.50}, "depth": {"rmse": 0.40}}, reference)
    assert dm == pytest.approx(22.5, abs=1e-9)


def test_dm_against_reference_files(tiny_model_dir, tmp_path):
    """run_evaluation with single-task reference files (one per task, as
    from single-task models) chosen so that the model is +25 % on semseg
    and 20 % worse on depth: dm = +2.5 %."""
    model_dir, _ = tiny_model_dir
    tasks = ["semseg", "depth"]
    first = evaluate_lib.run_evaluation(
        _config(tmp_path, model_dir=model_dir, tasks=tasks),
        log=lambda _: 0)
    miou = first["tasks"]["semseg"]["miou"]
    rmse = first["tasks"]["depth"]["rmse"]
    assert miou > 0 and rmse > 0
    with open(first["json"], encoding="utf-8") as f:
        stored = json.load(f)
    references = []
    for task, key, value in (("semseg", "miou", miou / 1.25),
                             ("depth", "rmse", rmse / 1.2)):
        results = {**stored, "tasks": {task: {**stored["tasks"][task],
                                              key: value}}}
        path = tmp_path / f"single_{task}.json"
        path.write_text(json.dumps(results))
        references.append(str(path))
    second = evaluate_lib.run_evaluation(
        _config(tmp_path / "again", model_dir=model_dir, tasks=tasks,
                references=references), log=lambda _: 0)
    assert second["tasks"] == first["tasks"]  # Deterministic.
    assert second["dm"]["per_task"] == pytest.approx(
        {"semseg": 25.0, "depth": -20.0}, abs=1e-9)
    assert second["dm"]["value"] == pytest.approx(2.5, abs=1e-9)
    assert second["dm"]["references"] == references
    with open(second["json"], encoding="utf-8") as f:
        assert json.load(f)["dm"]["value"] == pytest.approx(2.5, abs=1e-9)
    assert "single-task reference" in second["table"]
    row = [line for line in second["table"].splitlines()
           if line.startswith(f"| {model_dir} |")]
    assert len(row) == 1 and "| +2.50 |" in row[0], second["table"]


@pytest.mark.parametrize("kwargs,error,message", [
    ({"model_dir": "/nonexistent/model"}, FileNotFoundError,
     "model_dir='/nonexistent/model'"),
    ({"model_dir": "{model}", "tasks": ["normals"]}, ValueError,
     r"\['normals'\] are not in"),
    ({"model_dir": "{model}", "signature": "depth"}, ValueError,
     "--signature is for exports"),
    ({}, ValueError, "exactly one of"),
    ({"saved_model": "/nonexistent/sm"}, FileNotFoundError,
     "No SavedModel at '/nonexistent/sm'"),
    ({"tflite": "/nonexistent/m.tflite"}, FileNotFoundError,
     "No TFLite file"),
])
def test_bad_input_is_named(tiny_model_dir, tmp_path, kwargs, error,
                            message):
    kwargs = {k: (v.format(model=tiny_model_dir[0])
                  if isinstance(v, str) else v) for k, v in kwargs.items()}
    with pytest.raises(error, match=message):
        evaluate_lib.run_evaluation(_config(tmp_path, **kwargs),
                                    log=lambda _: 0)


def test_signatures(exported):
    with pytest.raises(ValueError, match="Unknown signature 'sky'"):
        predictors.saved_model_predictor(exported["saved_model"],
                                         signature="sky")
    only_depth = predictors.saved_model_predictor(exported["saved_model"],
                                                  signature="depth")
    assert only_depth.tasks == ["depth"]
    out = only_depth.predict(np.zeros((3, *SIZE, 3), np.float32))
    assert list(out) == ["depth"] and out["depth"].shape == (3, *SIZE, 1)
    per_task = predictors.tflite_predictor(exported["tflite"])
    assert sorted(per_task.tasks) == ["depth", "edge", "semseg"]
    assert per_task.image_size == SIZE
    with pytest.raises(ValueError, match="Unknown signature 'sky'"):
        predictors.tflite_predictor(exported["tflite"], signature="sky")


def test_tflite_evaluates_without_litert(exported, tmp_path):
    """The quick-start install has no ai_edge_litert: `python -m
    rmtl_tf.evaluate --tflite` runs the file with TensorFlow's interpreter
    and scores as LiteRT does."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    blocker = tmp_path / "blocked" / "ai_edge_litert"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ImportError('ai_edge_litert is not installed (test)')\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-m", "rmtl_tf.evaluate",
         f"--tflite={exported['tflite']}", "--signature=depth",
         "--eval_examples=4", "--batch_size=2", "--noimage_summaries",
         f"--output_dir={tmp_path / 'out'}"],
        cwd=root, capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, PYTHONPATH=str(tmp_path / "blocked")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    with open(tmp_path / "out" / "results.json", encoding="utf-8") as f:
        blocked = json.load(f)["headline"]["depth"]["value"]
    litert = evaluate_lib.run_evaluation(
        _config(tmp_path / "litert", tflite=exported["tflite"],
                signature="depth", image_summaries=False), log=lambda _: 0)
    assert blocked == pytest.approx(litert["headline"]["depth"]["value"],
                                    rel=1e-5)
