"""Turns expected user errors into one clear line and a non-zero exit."""

import sys

# OSError: files and network (a fetch that fails offline); ImportError: an
# optional part not installed (the message says what to install).
USER_ERRORS = (ValueError, OSError, NotImplementedError, TypeError,
               FloatingPointError, ImportError)


def run_cli(main, argv):
    """Runs `main(argv)`; a user error prints `error: ...` and exits 2."""
    try:
        return main(argv)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
