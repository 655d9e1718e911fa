"""The CLIs start without TensorFlow's C++ notices; TF_CPP_MIN_LOG_LEVEL=0
brings them back."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NOTICES = ("oneDNN custom operations", "cpu_feature_guard",
           "absl::InitializeLog")


def _stderr(args, level=None):
    env = {k: v for k, v in os.environ.items()
           if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("args,message", [
    (["train.py", "--model_dir=unused", "--tasks=sky"], "Unknown task 'sky'"),
    (["-m", "rmtl_tf.evaluate", "--model_dir=does/not/exist"],
     "does/not/exist"),
])
def test_cli_prints_only_its_own_lines(args, message):
    stderr = _stderr(args)
    assert stderr.startswith("error: ") and message in stderr, stderr
    assert not any(n in stderr for n in NOTICES), stderr


def test_log_level_zero_shows_tensorflow_notices():
    stderr = _stderr(["train.py", "--model_dir=unused", "--tasks=sky"], "0")
    assert any(n in stderr for n in NOTICES), stderr
    assert "Unknown task 'sky'" in stderr


ONEDNN_ON = "oneDNN custom operations are on"


@pytest.mark.skipif(
    __import__("platform").machine().lower() not in ("x86_64", "amd64"),
    reason="oneDNN is the default on x86 only")
@pytest.mark.parametrize("args,onednn", [
    (["train.py", "--model_dir=unused", "--tasks=sky"], None),
    (["-m", "rmtl_tf.evaluate", "--model_dir=does/not/exist"], None),
    (["export.py", "--model_dir=does/not/exist", "--export_dir=unused"],
     None),
    (["-m", "rmtl_tf.evaluate", "--model_dir=does/not/exist"], "0"),
])
def test_every_cli_computes_with_the_kernels_train_py_uses(args, onednn):
    """train.py, export.py and the evaluate CLI turn oneDNN on by default on
    x86 (TensorFlow's own default is off on CPUs without AVX-512), so the
    evaluate CLI scores with the kernels of the end-of-training report;
    TF_ENABLE_ONEDNN_OPTS=0 is respected."""
    saved = os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
    try:
        if onednn is not None:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = onednn
        stderr = _stderr(args, "0")
    finally:
        os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
        if saved is not None:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = saved
    assert (ONEDNN_ON in stderr) == (onednn is None), stderr[-2000:]


def test_cli_environment_defaults():
    from rmtl_tf import _startup  # pylint: disable=import-outside-toplevel
    assert _startup.cli_environment({}, "x86_64", cli=True) == {
        "TF_ENABLE_ONEDNN_OPTS": "1"}
    assert _startup.cli_environment({"TF_ENABLE_ONEDNN_OPTS": "0"},
                                    "AMD64", cli=True) == {
        "TF_ENABLE_ONEDNN_OPTS": "0"}
    assert _startup.cli_environment({}, "aarch64", cli=True) == {}
    assert _startup.cli_environment({}, "x86_64", cli=False) == {}
