"""The real CLIs end to end on tiny settings: train one task, add a second
one in a new run, export, run every signature."""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TINY = ["--backbone=resnet_tiny", "--head_channels=16",
        "--low_level_channels=8", "--image_size=64,64", "--batch_size=2",
        "--train_steps=4", "--checkpoint_every=2", "--pretrain_steps=2",
        "--train_examples=8", "--eval_examples=4", "--nojit_compile"]


def _run(script, *args, expect_ok=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT,
        env=env, capture_output=True, text=True, timeout=600, check=False)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _model_outputs(model_dir, images):
    import keras  # pylint: disable=import-outside-toplevel
    import rmtl_tf  # pylint: disable=import-outside-toplevel,unused-import  # Registers the classes.
    model = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    out = model.predict(images, verbose=0)
    return model.tasks, {k: np.asarray(v) for k, v in out.items()}


def test_train_add_task_export_and_serve(tmp_path):
    model_dir = str(tmp_path / "model")
    export_dir = str(tmp_path / "export")
    images = np.random.default_rng(0).uniform(
        0, 255, (2, 64, 64, 3)).astype(np.float32)

    first = _run("train.py", "--flagfile=configs/demo.cfg",
                 f"--model_dir={model_dir}", "--tasks=semseg", *TINY)
    assert "| semseg | mIoU (higher is better) |" in first.stdout
    tasks, before = _model_outputs(model_dir, images)
    assert tasks == ["semseg"]

    second = _run("train.py", "--flagfile=configs/demo.cfg",
                  f"--model_dir={model_dir}", "--tasks=semseg,depth", *TINY)
    assert "already trained" in second.stdout
    tasks, after = _model_outputs(model_dir, images)
    assert tasks == ["semseg", "depth"]
    # The old task's outputs are bit-identical after the new task trained.
    assert np.array_equal(before["semseg"], after["semseg"])

    exported = _run("export.py", f"--model_dir={model_dir}",
                    f"--export_dir={export_dir}")
    assert "serving_default, semseg, depth" in exported.stdout
    saved_model = os.path.join(export_dir, "rmtl", "1")
    tflite = os.path.join(export_dir, "rmtl", "rmtl-1.tflite")
    assert os.path.isfile(os.path.join(saved_model, "saved_model.pb"))
    assert os.path.isfile(tflite)

    from rmtl_tf.export.runners import SavedModelRunner, TFLiteRunner  # pylint: disable=import-outside-toplevel
    sm, tfl = SavedModelRunner(saved_model), TFLiteRunner(tflite)
    for task in tasks:
        a = sm(images, task)[task]
        b = tfl(images, task)[task]
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    probabilities = sm(images, "semseg")["semseg"]
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert np.array_equal(probabilities.argmax(-1),
                          after["semseg"].argmax(-1))


@pytest.mark.parametrize("script,args,message", [
    ("export.py", ["--model_dir={tmp}/none", "--export_dir={tmp}/out"],
     "No trained model in model_dir="),
    ("train.py", ["--model_dir={tmp}/m", "--tasks=sky"], "Unknown task 'sky'"),
    ("train.py", ["--model_dir={tmp}/m", "--tasks=semseg,semseg"],
     "Duplicate task 'semseg'"),
    ("train.py", ["--flagfile=configs/nyud.cfg", "--model_dir={tmp}/m",
                  "--data_dir={tmp}/NYUD_MT"], "{tmp}/NYUD_MT"),
])
def test_cli_errors_are_clear(tmp_path, script, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = _run(script, *args, expect_ok=False)
    assert proc.returncode == 2
    assert message.format(tmp=tmp_path) in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # About 4 minutes: MobileNetV2's graph traces slowly.
def test_mobilenet_v2_trains_exports_int8_and_evaluates(tmp_path):
    """--backbone=mobilenet_v2 through the same CLIs: train (the demo's
    rc_ri_nff: response initialization of its 1x1 convs), export with an
    int8 file, evaluate that file."""
    model_dir, export_dir = str(tmp_path / "model"), str(tmp_path / "export")
    tiny = [a for a in TINY if not a.startswith("--backbone=")]
    _run("train.py", "--flagfile=configs/demo.cfg", f"--model_dir={model_dir}",
         "--tasks=depth", "--backbone=mobilenet_v2",
         "--width_multiplier=0.35", "--export_dir=", *tiny)
    exported = _run("export.py", f"--model_dir={model_dir}",
                    f"--export_dir={export_dir}", "--quantize=int8",
                    "--calibration_examples=4")
    assert "serving_default, depth" in exported.stdout
    tflite = os.path.join(export_dir, "rmtl", "rmtl-1-int8.tflite")
    evaluated = subprocess.run(
        [sys.executable, "-m", "rmtl_tf.evaluate", f"--model_dir={model_dir}",
         "--dataset=synthetic", "--eval_examples=4", f"--tflite={tflite}"],
        cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True, text=True, timeout=600, check=False)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "depth RMSE (m)" in evaluated.stdout, evaluated.stdout[-2000:]


def test_mobilenet_v2_imagenet_bank_offline_is_one_line(tmp_path,
                                                        monkeypatch):
    """Offline, --bank=imagenet with mobilenet_v2 fails with one line that
    names the file and where to put it, before any training."""
    keras_home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    proc = _run("train.py", f"--model_dir={tmp_path}/m", "--tasks=depth",
                "--backbone=mobilenet_v2", "--width_multiplier=0.35",
                "--bank=imagenet", "--image_size=64,64", expect_ok=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    assert str(keras_home / "models" / name) in lines[0]
