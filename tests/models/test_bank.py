"""Tests of bank weights: extraction from the plain network, `.npz` storage,
loading into a multi-task model, and the function that loading preserves."""

import os

import keras
import numpy as np
import pytest

from rmtl_tf.models import bank
from rmtl_tf.models.layer_factory import LayerFactory
from rmtl_tf.models.multitask_model import add_task, build_model
from rmtl_tf.models.resnet_backbone import resnet_features

TINY = {"num_classes": {"semseg": 4}, "head_channels": 16,
        "low_level_channels": 8}
BN = ("gamma", "beta", "moving_mean", "moving_variance")
# resnet_tiny: one block a stage, widths 8, 16, 16, 32 on an 8-wide stem.
# Shortcut convs where the stride or width changes: stage 2 (stride 2,
# 8 -> 16), 3 (stride 2) and 4 (16 -> 32); stage 1 (8 -> 8) has none.
TINY_CONVS = ["conv1"] + [f"layer{s}_0_conv{i}" for s in range(1, 5)
                          for i in (1, 2)]
TINY_SHORTCUTS = [f"layer{s}_0_downsample" for s in (2, 3, 4)]
TINY_BNS = (["bn1"] + [f"layer{s}_0_bn{i}" for s in range(1, 5)
                       for i in (1, 2)]
            + [f"{name}_bn" for name in TINY_SHORTCUTS])


def _images(size=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (2, size, size, 3)).astype(np.float32)


def _plain(seed=0):
    """A plain resnet_tiny whose BatchNorms are far from their init."""
    keras.utils.set_random_seed(seed)
    plain = bank.build_plain_backbone("resnet_tiny")
    rng = np.random.default_rng(seed)
    for layer in plain.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.2, n))
            layer.moving_mean.assign(rng.normal(0, 0.2, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
    return plain


def _tiny(tasks, seed=1):
    keras.utils.set_random_seed(seed)
    return build_model("resnet_tiny", tasks, **TINY)


def _features(model, task):
    """`task`'s backbone features through the model's own layers."""
    layers = {layer.name: layer for layer in model.layers}
    factory = LayerFactory("rc", model.tasks, reuse=layers)
    image = keras.Input((None, None, 3))
    features = resnet_features(factory, model.get_layer("normalize")(image),
                               task, model.backbone, model.width_multiplier)
    assert set(factory.layers) == set(layers), "created new layers"
    return keras.Model(image, features)


def test_weights_from_plain_names_and_values():
    plain = _plain()
    weights = bank.weights_from_plain(plain)
    expected = ({f"{c}/kernel" for c in TINY_CONVS}
                | {f"{s}_conv/kernel" for s in TINY_SHORTCUTS}
                | {f"{b}/{w}" for b in TINY_BNS for w in BN})
    assert set(weights) == expected
    assert weights["conv1/kernel"].shape == (7, 7, 3, 8)  # HWIO.
    assert weights["layer4_0_conv2/kernel"].shape == (3, 3, 32, 32)
    assert weights["layer2_0_downsample_conv/kernel"].shape == (1, 1, 8, 16)
    for key, value in weights.items():
        name, attr = key.split("/")
        assert isinstance(value, np.ndarray)
        np.testing.assert_array_equal(
            value, getattr(plain.get_layer(name), attr).numpy())


def test_plain_backbone_output_stride():
    plain = _plain()
    out = plain(_images(64))
    assert tuple(out["P2"].shape) == (2, 16, 16, 8)
    assert tuple(out["P5"].shape) == (2, 4, 4, 32)


def test_save_and_load_npz_round_trip(tmp_path):
    weights = bank.weights_from_plain(_plain())
    path = str(tmp_path / "sub" / "bank.npz")
    bank.save_bank(path, weights)
    assert os.listdir(tmp_path / "sub") == ["bank.npz"]  # No temp files.
    for loaded in (bank.load_npz(path), bank.load_bank_weights(path),
                   bank.load_bank_weights(f"npz:{path}")):
        assert set(loaded) == set(weights)
        for key, value in weights.items():
            assert loaded[key].dtype == value.dtype
            np.testing.assert_array_equal(loaded[key], value)


def test_load_bank_weights_errors(tmp_path):
    for spec in ("torch:model.pth", "model.pth", "npz:", "random"):
        with pytest.raises(ValueError, match="bank spec"):
            bank.load_bank_weights(spec)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        bank.load_bank_weights(f"npz:{tmp_path / 'missing.npz'}")


def test_load_bank_into_copies_banks_and_task_layers():
    weights = bank.weights_from_plain(_plain())
    model = _tiny(["semseg", "depth"])
    head_before = model.get_layer("head_predict_depth").kernel.numpy()
    bank.load_bank_into(model, weights)
    for name in TINY_CONVS:
        np.testing.assert_array_equal(model.get_layer(name).bank.numpy(),
                                      weights[f"{name}/kernel"])
    for task in model.tasks:
        for name in TINY_BNS:
            layer = model.get_layer(f"{name}_{task}")
            for attr in BN:
                np.testing.assert_array_equal(getattr(layer, attr).numpy(),
                                              weights[f"{name}/{attr}"])
        for name in TINY_SHORTCUTS:
            np.testing.assert_array_equal(
                model.get_layer(f"{name}_conv_{task}").kernel.numpy(),
                weights[f"{name}_conv/kernel"])
    # Heads are not part of the bank.
    np.testing.assert_array_equal(
        model.get_layer("head_predict_depth").kernel.numpy(), head_before)


def test_loaded_model_computes_the_plain_backbone():
    plain = _plain()
    images = _images(64)
    expected = {k: v.numpy() for k, v in plain(images, training=False).items()}
    model = _tiny(["semseg", "depth"])
    # Before loading, the random banks compute something else.
    random_p5 = _features(model, "semseg")(images, training=False)["P5"]
    assert np.abs(random_p5.numpy() - expected["P5"]).max() > 0.1
    bank.load_bank_into(model, bank.weights_from_plain(plain))
    for task in model.tasks:
        out = _features(model, task)(images, training=False)
        for key in ("P2", "P5"):
            assert out[key].shape == expected[key].shape
            np.testing.assert_allclose(out[key].numpy(), expected[key],
                                       rtol=1e-4, atol=1e-4,
                                       err_msg=f"{task} {key}")


def test_add_task_with_pretrained_initializes_only_the_new_task():
    weights = bank.weights_from_plain(_plain())
    model = _tiny(["semseg"])
    semseg_before = {v.path: v.numpy().copy()
                     for v in model.task_variables("semseg")}
    new = add_task(model, "depth", pretrained=weights)
    np.testing.assert_array_equal(
        new.get_layer("layer3_0_bn2_depth").gamma.numpy(),
        weights["layer3_0_bn2/gamma"])
    np.testing.assert_array_equal(
        new.get_layer("layer4_0_downsample_conv_depth").kernel.numpy(),
        weights["layer4_0_downsample_conv/kernel"])
    for v in new.task_variables("semseg"):
        np.testing.assert_array_equal(v.numpy(), semseg_before[v.path])


def test_wrong_shape_bank_raises():
    weights = bank.weights_from_plain(_plain())
    weights["layer2_0_conv1/kernel"] = np.zeros((3, 3, 8, 24), np.float32)
    with pytest.raises(ValueError, match=r"layer2_0_conv1/kernel.*shape"):
        bank.load_bank_into(_tiny(["depth"]), weights)
    keras.utils.set_random_seed(0)
    wider = build_model("resnet_tiny", ["depth"], width_multiplier=2.0,
                        head_channels=16, low_level_channels=8)
    with pytest.raises(ValueError, match="another architecture or width"):
        bank.load_bank_into(wider, bank.weights_from_plain(_plain()))


def test_missing_bank_keys_are_listed():
    weights = bank.weights_from_plain(_plain())
    del weights["layer3_0_conv2/kernel"]
    del weights["conv1/kernel"]
    with pytest.raises(ValueError) as info:
        bank.load_bank_into(_tiny(["depth"]), weights)
    assert "layer3_0_conv2/kernel" in str(info.value)
    assert "conv1/kernel" in str(info.value)
