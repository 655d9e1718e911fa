"""Tests of `rmtl_tf/models/keras_applications_bank.py`: Keras' ImageNet
MobileNetV2 as bank weights, fetched once, with a clear offline error."""

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from rmtl_tf.models import bank, imagenet_bank, keras_applications_bank

ALPHA = 0.35


def _reference():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=ALPHA, include_top=False,
        weights=None)


def test_weights_map_by_name_onto_the_plain_backbone(tmp_path):
    weights = keras_applications_bank.bank_weights_from_mobilenet_v2(
        _reference())
    assert "Conv_1/kernel" not in weights and "Conv_1_bn/gamma" not in weights
    assert weights["block_1_depthwise/kernel"].shape == (3, 3, 48, 1)
    plain = bank.build_plain_backbone("mobilenet_v2", ALPHA)
    expected = bank.weights_from_plain(plain)
    assert sorted(weights) == sorted(expected)
    for key, value in expected.items():
        assert weights[key].shape == value.shape, key
    # The names survive bank.npz.
    bank.save_bank(str(tmp_path / "bank.npz"), weights)
    loaded = bank.load_npz(str(tmp_path / "bank.npz"))
    assert sorted(loaded) == sorted(weights)
    for key, value in weights.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def test_cached_file_is_loaded_without_network(tmp_path, monkeypatch):
    """A weights file in Keras' cache (here Keras' own legacy .h5 layout
    of a random network) is read as it is: no download."""
    reference = _reference()
    cache = tmp_path / "models"
    cache.mkdir()
    path = cache / keras_applications_bank.weights_file_name(ALPHA)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    monkeypatch.setattr(keras_applications_bank, "WEIGHTS_URL",
                        "http://127.0.0.1:9/")
    weights = imagenet_bank.load("mobilenet_v2", cache_dir=str(cache),
                                 width_multiplier=ALPHA)
    expected = keras_applications_bank.bank_weights_from_mobilenet_v2(
        reference)
    assert sorted(weights) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(weights[key], value, err_msg=key)


def test_offline_error_is_one_line_naming_url_and_path(tmp_path,
                                                       monkeypatch):
    monkeypatch.setattr(keras_applications_bank, "WEIGHTS_URL",
                        "http://127.0.0.1:9/")
    with pytest.raises(OSError) as info:
        keras_applications_bank.weights_path(ALPHA, str(tmp_path / "models"))
    message = str(info.value)
    name = keras_applications_bank.weights_file_name(ALPHA)
    assert "\n" not in message
    assert f"http://127.0.0.1:9/{name}" in message
    assert str(tmp_path / "models" / name) in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unpublished_width_is_refused():
    with pytest.raises(ValueError, match=r"width_multiplier=0.25.*0.35"):
        keras_applications_bank.weights_path(0.25)
