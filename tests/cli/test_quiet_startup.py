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
