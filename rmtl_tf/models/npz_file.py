"""`.npz` files of plain arrays: written atomically, read without pickles."""

import os
import tempfile
import zipfile

import numpy as np


def atomic_save_npz(path, arrays):
    """`np.savez(path, **arrays)` through a temporary file and a rename, so
    `path` never holds half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_npz(path, what="Bank weights"):
    """The arrays of an `.npz` file: plain arrays only (a pickled object is
    refused, since unpickling runs code), a missing or damaged file an error
    naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise ValueError(
                f"{what} file {path!r} holds pickled objects: expected plain "
                "arrays only (pickles are refused, unpickling runs code).") \
                from e
        raise ValueError(f"{what} file {path!r} is damaged: {e}") from e
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(
            f"{what} file {path!r} is damaged or truncated, not a complete "
            f".npz ({type(e).__name__}: {e}). Delete it to rebuild it, or "
            "restore it.") from e
