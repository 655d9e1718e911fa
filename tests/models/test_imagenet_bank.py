"""--bank=imagenet: fetch once, verify the SHA-256 in the name, read without
PyTorch; offline, the error says where to put the file."""

import hashlib
import os

import numpy as np
import pytest

from rmtl_tf.models import bank, imagenet_bank


def _torchvision_state(weights):
    """Our bank weights back in torchvision's names and OIHW layout, written
    here independently of weight_import's mapping."""
    state = {}
    bn = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
          "moving_variance": "running_var"}
    for key, value in weights.items():
        layer, attr = key.split("/")
        name = (layer.replace("downsample_conv", "downsample.0")
                .replace("downsample_bn", "downsample.1"))
        name = ".".join(name.split("_", 2)) if name.startswith("layer") \
            else name
        if attr == "kernel":
            state[f"{name}.weight"] = value.transpose(3, 2, 0, 1)
        else:
            state[f"{name}.{bn[attr]}"] = value
    state["fc.weight"] = np.zeros((10, 32), np.float32)
    return state


@pytest.fixture(name="published")
def _published(tmp_path, monkeypatch):
    """A 'download server' directory holding resnet_tiny's checkpoint under
    a torch.hub-style name, and empty Keras / torch.hub caches."""
    plain = bank.build_plain_backbone("resnet_tiny")
    weights = bank.weights_from_plain(plain)
    server = tmp_path / "server"
    server.mkdir()
    staging = server / "staging.npz"
    np.savez(staging, **_torchvision_state(weights))
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    name = f"resnet_tiny-{digest[:8]}.npz"
    staging.rename(server / name)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setitem(imagenet_bank.TORCHVISION_URLS, "resnet_tiny",
                        (server / name).as_uri())
    return weights, server / name, tmp_path / "keras_home" / "models" / name


def _assert_same(loaded, weights):
    assert set(loaded) == set(weights)
    for key, value in weights.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def test_fetches_once_verifies_and_reads(published):
    weights, source, cached = published
    _assert_same(bank.load_bank_weights("imagenet", "resnet_tiny"), weights)
    assert cached.is_file()
    source.unlink()  # The second run reads the cache, no network.
    _assert_same(imagenet_bank.load("resnet_tiny"), weights)


def test_uses_torch_hub_cache(published, tmp_path):
    weights, source, _ = published
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    source.rename(hub / source.name)
    _assert_same(imagenet_bank.load("resnet_tiny"), weights)


def test_corrupt_cache_is_refused(published):
    _, source, cached = published
    cached.parent.mkdir(parents=True)
    data = bytearray(source.read_bytes())
    data[-1] ^= 1
    cached.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt.*Delete it"):
        imagenet_bank.load("resnet_tiny")


def test_offline_error_says_where_to_put_the_file(published, monkeypatch):
    _, source, cached = published
    source.unlink()
    with pytest.raises(OSError) as info:
        imagenet_bank.load("resnet_tiny")
    message = str(info.value)
    assert source.as_uri() in message
    assert str(cached) in message
    assert "--bank=torchvision:PATH" in message
    monkeypatch.setitem(imagenet_bank.TORCHVISION_URLS, "resnet_tiny",
                        "http://127.0.0.1:9/resnet_tiny-0123abcd.pth")
    with pytest.raises(OSError, match="resnet_tiny-0123abcd.pth"):
        imagenet_bank.load("resnet_tiny")


def test_authors_urls_and_unknown_backbone():
    # The authors' modules/deeplab_resnet.py model_urls.
    assert imagenet_bank.TORCHVISION_URLS["resnet18"] == (
        "https://download.pytorch.org/models/resnet18-5c106cde.pth")
    assert imagenet_bank.TORCHVISION_URLS["resnet34"] == (
        "https://download.pytorch.org/models/resnet34-333f7ec4.pth")
    with pytest.raises(ValueError, match="'resnet50'.*resnet18"):
        imagenet_bank.checkpoint_path("resnet50")


def test_verify_checks_the_name_prefix(tmp_path):
    path = tmp_path / "weights-00000000.bin"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="00000000"):
        imagenet_bank.verify(str(path))
    good = tmp_path / f"weights-{hashlib.sha256(b'x').hexdigest()[:8]}.bin"
    os.rename(path, good)
    assert imagenet_bank.verify(str(good)) == str(good)
