"""How every command-line tool runs: its flags defined and parsed, and an
expected user error turned into one clear line and a non-zero exit."""

import logging
import sys

from absl import app, flags

# OSError: files and network (a fetch that fails offline); ImportError: an
# optional part not installed (the message says what to install).
USER_ERRORS = (ValueError, OSError, NotImplementedError, TypeError,
               FloatingPointError, ImportError)


def run_cli(main, argv):
    """Runs `main(argv)`; a user error prints `error: ...` and exits 2.

    TensorFlow's Python logger prints through its own handler; absl's
    handler (installed by `app.run`) would print each record again."""
    tf_logger = logging.getLogger("tensorflow")
    if tf_logger.handlers:
        tf_logger.propagate = False
    try:
        return main(argv)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run(define_flags, main):
    """A command-line tool's `__main__`: defines its flags on absl's
    global `FLAGS` (`define_flags(FLAGS)`; `--help` lists them), parses
    them and runs `main` under `run_cli`."""
    fv = flags.FLAGS
    before = set(fv)
    define_flags(fv)
    for name in sorted(set(fv) - before):
        fv.register_key_flag_for_module(sys.argv[0], fv[name])
    app.run(lambda argv: run_cli(main, argv))
