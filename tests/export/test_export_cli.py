"""The real `export.py` with the deployment flags: quantized files, a
folded task, task packs, the printed signature lists; bad flags fail with
one clear line."""

import os
import subprocess
import sys

import pytest

from conftest import SMALL, build

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _export(*args, **env_overrides):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env_overrides)
    return subprocess.run([sys.executable, os.path.join(ROOT, "export.py"),
                           *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900, check=False)


@pytest.mark.parametrize("flag,message", [
    ("--quantize=int4", "error: Unknown quantization 'int4'. Expected one "
                        "of ['none', 'dynamic', 'float16', 'int8']."),
])
def test_bad_flags(tmp_path, flag, message):
    proc = _export(f"--model_dir={tmp_path}", f"--export_dir={tmp_path}/x",
                   flag)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not os.path.exists(tmp_path / "x")


@pytest.mark.slow
def test_export_cli_deployment_flags(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    build(["semseg", "depth"], SMALL).save(str(model_dir / "model.keras"))
    export_dir = tmp_path / "export"
    proc = _export(f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                   "--quantize=dynamic,int8", "--fold_task=depth",
                   "--task_packs", "--calibration_examples=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Signatures: serving_default, semseg, depth" in out
    # Each file's signature list, as LiteRT reads it.
    assert out.count("serving_default(image: float32 [-1, 32, 32, 3]) -> "
                     "depth, semseg") == 3
    assert "Folded depth:" in out
    assert out.count("depth(image: float32 [-1, 32, 32, 3]) -> depth") == 6
    for path in ("rmtl/1/saved_model.pb", "rmtl/rmtl-1.tflite",
                 "rmtl/rmtl-1-dynamic.tflite", "rmtl/rmtl-1-int8.tflite",
                 "rmtl/rmtl-1.json", "rmtl/packs/semseg-1.npz",
                 "rmtl/packs/depth-1.npz",
                 "rmtl_depth_folded/1/saved_model.pb",
                 "rmtl_depth_folded/rmtl_depth_folded-1-int8.tflite",
                 "models.config"):
        assert (export_dir / path).is_file(), path
    again = _export(f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                    "--notflite")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Since version 1: new [], unchanged ['semseg', 'depth'], " \
           "changed []" in again.stdout


def test_export_without_litert_lists_signatures_and_never_crashes(tmp_path):
    """The quick-start install (`.[cpu]`) has no ai_edge_litert: export.py
    lists the signatures with TensorFlow's interpreter instead."""
    blocker = tmp_path / "blocked" / "ai_edge_litert"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ImportError('ai_edge_litert is not installed (test)')\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    build(["depth"], SMALL).save(str(model_dir / "model.keras"))
    proc = _export(f"--model_dir={model_dir}",
                   f"--export_dir={tmp_path / 'export'}",
                   PYTHONPATH=str(tmp_path / "blocked"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "depth(image: float32 [-1, 32, 32, 3]) -> depth" in proc.stdout
