"""Test-wide runtime settings, applied before TensorFlow is imported.

The tests run train.py in subprocesses and compare with models trained in
the test process: both use the kernels train.py chooses (oneDNN on x86,
see rmtl_tf/_startup.py), so they compute the same way.
"""

import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
