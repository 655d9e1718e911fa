"""Quiet command-line start-up: TensorFlow's C++ notices hidden.

TensorFlow 2.21 prints its oneDNN and CPU-feature notices through absl's
C++ logging while it is imported, before `TF_CPP_MIN_LOG_LEVEL` can filter
every one of them (the oneDNN notice ignores it). The command-line tools
(train.py, export.py, `python -m rmtl_tf.<tool>`) import TensorFlow with
the process's stderr pointed at /dev/null; Python errors raised by the
import still print, after stderr is back. `TF_CPP_MIN_LOG_LEVEL=0` (or 1)
shows the notices again. Importing rmtl_tf as a library changes nothing.
"""

import contextlib
import os
import sys

CLI_SCRIPTS = ("train.py", "export.py")


def is_cli():
    """True while a command-line tool of this project starts: train.py,
    export.py, or `python -m rmtl_tf...` (whose package import happens while
    `sys.argv[0]` is still "-m")."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 == "-m" or os.path.basename(argv0) in CLI_SCRIPTS


@contextlib.contextmanager
def quiet_tensorflow_import():
    """Hides the C++ lines TensorFlow prints while imported inside, in a
    command-line tool that did not ask for them."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
    if (not is_cli() or level not in ("2", "3")
            or "tensorflow" in sys.modules):
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = level
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # pylint: disable=import-outside-toplevel,unused-import
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    yield
