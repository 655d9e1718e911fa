"""Turns expected user errors into one clear line and a non-zero exit."""

import sys

USER_ERRORS = (ValueError, FileNotFoundError, NotImplementedError,
               FileExistsError, TypeError, FloatingPointError)


def run_cli(main, argv):
    """Runs `main(argv)`; a user error prints `error: ...` and exits 2."""
    try:
        return main(argv)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
