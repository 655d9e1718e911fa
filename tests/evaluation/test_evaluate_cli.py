"""`python -m rmtl_tf.evaluate` end to end on a tiny model, with a training
flagfile, and its one-line errors."""

import json
import os
import subprocess
import sys

import keras

import rmtl_tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "rmtl_tf.evaluate", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_cli_table_json_and_errors(tmp_path):
    keras.utils.set_random_seed(0)
    model = rmtl_tf.build_model(
        "resnet_tiny", ["semseg", "edge"], num_classes={"semseg": 6},
        image_size=(96, 128), head_channels=16, low_level_channels=8)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model.save(str(model_dir / "model.keras"))
    # The demo config's --tasks=semseg,depth is overridden: depth is not in
    # this model.
    proc = _run("--flagfile=configs/demo.cfg", f"--model_dir={model_dir}",
                "--tasks=semseg,edge", "--eval_examples=2", "--batch_size=2",
                "--name=tiny")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| variant | semseg mIoU % ↑ | edge ODS F % ↑ |" in proc.stdout
    assert "| tiny |" in proc.stdout
    with open(model_dir / "eval_validation" / "results.json",
              encoding="utf-8") as f:
        results = json.load(f)
    assert results["image_size"] == [96, 128]
    assert results["tasks"]["edge"]["max_dist"] == 0.011
    assert os.path.isfile(model_dir / "eval_validation" / "pr_edge.png")

    missing = _run(f"--model_dir={tmp_path}/none")
    assert missing.returncode == 2
    assert "error: The model directory does not exist" in missing.stderr
