"""Turns expected user errors into one clear line and a non-zero exit."""

import logging
import sys

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
