"""Pretrained weight files fetched once into Keras' cache (`~/.keras/models`,
or `$KERAS_HOME/models`), with one clear error when offline."""

import os

import keras


def keras_cache_dir():
    """Where `keras.utils.get_file` keeps model weights."""
    root = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras")
    return os.path.join(root, "models")


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def fetch(url, cache_dir=None, what="weights", instead="--bank=npz:PATH"):
    """The local path of `url`'s file in `cache_dir` (default: Keras'
    cache), downloaded once. Offline, a `FileNotFoundError` names the URL,
    the path to put the file at, and `instead`."""
    name = url.rsplit("/", 1)[-1]
    cache_dir = cache_dir or keras_cache_dir()
    target = os.path.join(cache_dir, name)
    if os.path.isfile(target):
        return target
    try:
        os.makedirs(cache_dir, exist_ok=True)
        return keras.utils.get_file(
            name, url, cache_dir=os.path.dirname(cache_dir),
            cache_subdir=os.path.basename(cache_dir))
    except Exception as e:  # pylint: disable=broad-except
        raise FileNotFoundError(
            f"Could not fetch the {what} from {url} ({type(e).__name__}: "
            f"{_first_line(e).replace(f' on {url}', '')}). Without network "
            f"access, download that file elsewhere and put it at "
            f"{target!r}, or pass {instead}.") from None
