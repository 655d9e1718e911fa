"""Atomic file writes: a temporary file in the target's directory, flushed
to disk, then renamed over the target; and `read_json` to read such a file
back.

A reader sees the old file or the new one, never half of one; a write
killed midway leaves at most a `.tmp-*` file beside the target, which
nothing reads. Pure Python: no rmtl_tf, Keras or TensorFlow imports.
"""

import json
import os
import uuid


def atomic_write(path, write):
    """Calls `write(tmp)`, which creates the file `tmp`, then moves `tmp`
    to `path` (`os.replace`).

    `tmp` is a new name in `path`'s directory (created if missing); it is
    removed when `write` raises. Returns `path`.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(
        directory, f".tmp-{uuid.uuid4().hex[:8]}-{os.path.basename(path)}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_text(path, text):
    """Writes the string `text` (UTF-8) to `path`, atomically."""
    def write(tmp):
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, write)


def write_json(path, data, indent=1, sort_keys=False):
    """Writes `data` as indented JSON to `path`, atomically."""
    return write_text(path, json.dumps(data, indent=indent,
                                       sort_keys=sort_keys))


def read_json(path):
    """The JSON at `path`, or None when there is no such file."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path!r} is not valid JSON ({e}).") from e
