"""Where an export's versions live: version numbers and the files of one.

A model base path `<export_dir>/<model_name>` holds one integer directory
per version (a SavedModel), its metadata `<model_name>-<version>.json`,
its TFLite files `<model_name>-<version>[-<q>].tflite` and its task packs
`packs/<task>-<version>.npz` (see `export_lib` for the whole layout).
"""

import contextlib
import glob
import os
import re
import shutil
import tempfile

MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def next_version(model_base):
    """1 + the largest integer version directory in `model_base` (or 1)."""
    return max(versions(model_base), default=0) + 1


def versions(model_base):
    """The integer version directories of `model_base`, sorted."""
    if not os.path.isdir(model_base):
        return []
    return sorted(int(d) for d in os.listdir(model_base)
                  if re.fullmatch(r"\d+", d)
                  and os.path.isdir(os.path.join(model_base, d)))


def tflite_path(model_base, model_name, version, quantization="none"):
    suffix = "" if quantization == "none" else f"-{quantization}"
    return os.path.join(model_base, f"{model_name}-{version}{suffix}.tflite")


def version_files(export_dir, model_name, version):
    """The existing files and directories of `version` of `model_name`:
    its SavedModel, metadata, TFLite files and task packs."""
    base = os.path.join(export_dir, model_name)
    pattern = glob.escape(base)
    found = [os.path.join(base, str(version))]
    found += glob.glob(os.path.join(pattern, f"{model_name}-{version}.json"))
    found += glob.glob(os.path.join(pattern,
                                    f"{model_name}-{version}.tflite"))
    found += glob.glob(os.path.join(pattern,
                                    f"{model_name}-{version}-*.tflite"))
    found += glob.glob(os.path.join(pattern, "packs", f"*-{version}.npz"))
    return sorted(p for p in set(found) if os.path.lexists(p))


@contextlib.contextmanager
def replacing(paths, export_dir):
    """Moves `paths` aside; restores them if the body fails, else deletes
    them: an export that fails leaves the old version intact."""
    if not paths:
        yield
        return
    backup = tempfile.mkdtemp(prefix=".tmp-overwrite-", dir=export_dir)
    moved = []
    try:
        for i, path in enumerate(paths):
            target = os.path.join(backup, f"old-{i}")
            os.replace(path, target)
            moved.append((path, target))
        yield
    except BaseException:
        for path, target in moved:
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
            os.replace(target, path)
        shutil.rmtree(backup, ignore_errors=True)
        raise
    shutil.rmtree(backup, ignore_errors=True)
