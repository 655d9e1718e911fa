"""Command-line start-up: the same kernels in every tool, notices hidden.

Every command-line tool (train.py, export.py, `python -m rmtl_tf.<tool>`)
turns TensorFlow's oneDNN CPU kernels on by default on x86
(`cli_environment`): TensorFlow enables them only on x86 CPUs with AVX-512
and newer, and on an AVX2-only AMD EPYC training ran 2.3-3.1x faster with
them (benchmarks/bench_speed.py --parts=onednn; docs/speed.md). One default
for all tools keeps the numbers of the end-of-training report, `python -m
rmtl_tf.evaluate` and the exports computed by the same kernels.
`TF_ENABLE_ONEDNN_OPTS=0` keeps TensorFlow's own choice.

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
import platform
import sys

CLI_SCRIPTS = ("train.py", "export.py")


def is_cli():
    """True while a command-line tool of this project starts: train.py,
    export.py, or `python -m rmtl_tf...` (whose package import happens while
    `sys.argv[0]` is still "-m")."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 == "-m" or os.path.basename(argv0) in CLI_SCRIPTS


def cli_environment(environ=None, machine=None, cli=None):
    """Sets the command-line tools' defaults in `environ` (os.environ) for
    settings the user did not set: oneDNN kernels on x86. Does nothing when
    not in a command-line tool (`cli`, default `is_cli()`) or once
    TensorFlow is imported (too late to take effect)."""
    if environ is None:
        if "tensorflow" in sys.modules:
            return os.environ
        environ = os.environ
    machine = platform.machine() if machine is None else machine
    if not (is_cli() if cli is None else cli):
        return environ
    if machine.lower() in ("x86_64", "amd64"):
        environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    return environ


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
