"""The paper's bank: torchvision's ImageNet ResNets, fetched and verified.

The authors' `modules/deeplab_resnet.py` starts every model from
torchvision's ImageNet checkpoints (`model_zoo.load_url` of
`resnet18-5c106cde.pth` / `resnet34-333f7ec4.pth`). `--bank=imagenet` does
the same: the file is fetched once with `keras.utils.get_file` into Keras'
cache (`~/.keras/models`, or `$KERAS_HOME/models`), its SHA-256 checked
against the prefix in its name (torch.hub's rule), and it is read without
PyTorch (`rmtl_tf.models.pth_file`). A copy already in torch.hub's cache
(`$TORCH_HOME/hub/checkpoints`, default `~/.cache/torch/hub/checkpoints`)
is used as it is.

Without network access, download the file elsewhere and put it in Keras'
cache under its own name (the error says where), or pass
`--bank=torchvision:PATH`.

`--backbone=mobilenet_v2` takes Keras' ImageNet MobileNetV2 instead
(`keras_applications_bank`, fetched the same way).
"""

import hashlib
import os
import re

from rmtl_tf.models import keras_applications_bank, torch_state
from rmtl_tf.models import weights_cache

# The authors' model_urls (modules/deeplab_resnet.py).
TORCHVISION_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-5c106cde.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-333f7ec4.pth",
}
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")


def _torch_hub_dir():
    root = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME")
        or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return os.path.join(root, "hub", "checkpoints")


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path):
    """Checks `path` against the SHA-256 prefix in its file name (as
    torch.hub does); a file whose name holds no hash is not checked."""
    match = _HASH_IN_NAME.search(os.path.basename(path))
    if match is None:
        return path
    expected, actual = match.group(1), sha256_of(path)
    if not actual.startswith(expected):
        raise ValueError(
            f"{path!r} is corrupt or another file: its SHA-256 is "
            f"{actual[:len(expected)]}..., its name promises {expected}... "
            "Delete it and run again to fetch it anew.")
    return path


def checkpoint_path(backbone, cache_dir=None):
    """The local path of `backbone`'s ImageNet checkpoint, fetched once."""
    if backbone not in TORCHVISION_URLS:
        raise ValueError(
            f"--bank=imagenet has no ImageNet checkpoint for backbone "
            f"{backbone!r}. Expected one of "
            f"{sorted(TORCHVISION_URLS) + ['mobilenet_v2']}, or pass the "
            "weights with --bank=torchvision:PATH or npz:PATH.")
    url = TORCHVISION_URLS[backbone]
    name = url.rsplit("/", 1)[-1]
    cache_dir = cache_dir or weights_cache.keras_cache_dir()
    # torch.hub's cache too: a checkpoint PyTorch already downloaded.
    candidate = os.path.join(_torch_hub_dir(), name)
    if not os.path.isfile(os.path.join(cache_dir, name)) and os.path.isfile(
            candidate):
        return verify(candidate)
    return verify(weights_cache.fetch(
        url, cache_dir, what=f"ImageNet {backbone} weights",
        instead="--bank=torchvision:PATH"))


def load(backbone, cache_dir=None, width_multiplier=1.0):
    """Bank weights (`rmtl_tf.models.bank` naming) of `backbone`'s
    torchvision ImageNet checkpoint; for "mobilenet_v2", of Keras' ImageNet
    MobileNetV2 with alpha `width_multiplier`."""
    if backbone == "mobilenet_v2":
        return keras_applications_bank.load(width_multiplier, cache_dir)
    return torch_state.bank_weights_from_torchvision(
        checkpoint_path(backbone, cache_dir))
