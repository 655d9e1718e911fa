"""Tests of bank weights from keras-hub's ResNets: the converted bank makes
our plain backbone compute keras-hub's own features, other ResNets are
refused, and a missing keras-hub or an unreachable preset say what to do.

keras-hub backbones are built here with random weights (no download) in
ResNet-18's configuration: keras-hub requires 64 filters in the first
stack, so no narrower ResNet of ours (resnet_tiny) has a keras-hub twin.
Images are 64x64.
"""

import sys

import keras
import keras_hub
import numpy as np
import pytest

from rmtl_tf.models import bank, keras_hub_bank
from rmtl_tf.models.multitask_model import build_model

RESNET18 = {"input_conv_filters": [64], "input_conv_kernel_sizes": [7],
            "stackwise_num_filters": [64, 128, 256, 512],
            "stackwise_num_blocks": [2, 2, 2, 2],
            "stackwise_num_strides": [1, 2, 2, 2],
            "block_type": "basic_block", "use_pre_activation": False}
# timm's pretrained_cfg of resnet18.a1_in1k (keras-hub's resnet_18_imagenet)
# as keras-hub's timm loader turns it into the image converter.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
BN = ("gamma", "beta", "moving_mean", "moving_variance")
INSTALL = "pip install --no-deps keras-hub && pip install tokenizers kagglehub"


def _randomize_batch_norms(backbone, seed):
    """BatchNorm weights and moving statistics far from their init and
    different from each other, so a mix-up changes the function."""
    rng = np.random.default_rng(seed)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.2, n))
            layer.moving_mean.assign(rng.normal(0, 0.2, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))


@pytest.fixture(scope="module")
def keras_hub_resnet18():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(**RESNET18,
                                               name="random_resnet18")
    _randomize_batch_norms(backbone, seed=0)
    return backbone


@pytest.fixture(scope="module")
def weights(keras_hub_resnet18):
    return keras_hub_bank.bank_weights_from_keras_hub(keras_hub_resnet18)


@pytest.fixture(scope="module")
def plain_resnet18(weights):
    """Our plain ResNet-18 holding the converted bank."""
    plain = bank.build_plain_backbone("resnet18")
    assert set(weights) == set(bank.weights_from_plain(plain))
    for key, value in weights.items():
        name, attr = key.split("/")
        getattr(plain.get_layer(name), attr).assign(value)
    return plain


def _images(size=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (2, size, size, 3)).astype(np.float32)


def _keras_hub_normalize(images):
    """keras-hub's image converter as the timm loader configures it."""
    converter = keras_hub.layers.ResNetImageConverter(
        scale=[1 / 255 / s for s in STD],
        offset=[-m / s for m, s in zip(MEAN, STD)])
    return keras.ops.convert_to_numpy(converter(images))


def _assert_close(actual, expected, what, rtol=1e-4):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    scale = np.abs(expected).max()
    assert scale > 0.1, f"{what}: degenerate reference"
    error = np.abs(actual - expected).max()
    assert error <= rtol * scale, (
        f"{what}: max error {error:.3g}, {error / scale:.3g} of max |x|")


def _conv(x, kernel, stride, dilation):
    """A conv padded like PyTorch (`dilation * (k // 2)` a side)."""
    pad = dilation * (kernel.shape[0] // 2)
    x = keras.ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return keras.ops.conv(x, kernel, strides=stride, padding="valid",
                          dilation_rate=dilation)


def _reference_last_stack(backbone, x, stride, dilation):
    """keras-hub's stack3 (our layer4) written out with keras-hub's own
    layers (their kernels and BatchNorms, by keras-hub's names): block 0
    strides by `stride`, every 3x3 conv dilates by `dilation`."""
    def bn(name, y):
        return backbone.get_layer(name)(y, training=False)

    def kernel(name):
        return backbone.get_layer(name).kernel

    for block in range(2):
        prefix = f"stack3_block{block}"
        strides = stride if block == 0 else 1
        out = keras.ops.relu(bn(f"{prefix}_1_bn", _conv(
            x, kernel(f"{prefix}_1_conv"), strides, dilation)))
        out = bn(f"{prefix}_2_bn", _conv(out, kernel(f"{prefix}_2_conv"), 1,
                                         dilation))
        shortcut = x
        if block == 0:
            shortcut = bn(f"{prefix}_0_bn", _conv(
                x, kernel(f"{prefix}_0_conv"), strides, 1))
        x = keras.ops.relu(out + shortcut)
    return keras.ops.convert_to_numpy(x)


def test_names_shapes_and_values(keras_hub_resnet18, weights,
                                 plain_resnet18):
    ours = bank.weights_from_plain(plain_resnet18)
    assert set(weights) == set(ours)
    for key, value in weights.items():
        assert value.dtype == np.float32, key
        assert value.shape == ours[key].shape, key
    # By hand, keras-hub's name -> ours (kernels HWIO in both).
    pairs = {"conv1_conv": "conv1", "conv1_bn": "bn1",
             "stack0_block1_2_conv": "layer1_1_conv2",
             "stack1_block0_0_conv": "layer2_0_downsample_conv",
             "stack1_block0_0_bn": "layer2_0_downsample_bn",
             "stack2_block1_1_bn": "layer3_1_bn1"}
    for block in range(2):
        for part in (1, 2):
            pairs[f"stack3_block{block}_{part}_conv"] = (
                f"layer4_{block}_conv{part}")
            pairs[f"stack3_block{block}_{part}_bn"] = (
                f"layer4_{block}_bn{part}")
    pairs["stack3_block0_0_conv"] = "layer4_0_downsample_conv"
    pairs["stack3_block0_0_bn"] = "layer4_0_downsample_bn"
    for theirs, name in pairs.items():
        layer = keras_hub_resnet18.get_layer(theirs)
        for attr in (BN if theirs.endswith("_bn") else ("kernel",)):
            np.testing.assert_array_equal(
                weights[f"{name}/{attr}"], getattr(layer, attr).numpy(),
                err_msg=f"{theirs}.{attr} -> {name}/{attr}")


def test_our_normalization_is_keras_hub_converters(plain_resnet18):
    images = _images()
    ours = plain_resnet18.get_layer("normalize")(images)
    _assert_close(ours, _keras_hub_normalize(images), "normalized images",
                  rtol=1e-6)


def test_bank_computes_keras_hub_features(keras_hub_resnet18,
                                          plain_resnet18):
    images = _images()
    pyramid = keras.Model(keras_hub_resnet18.input,
                          keras_hub_resnet18.pyramid_outputs)
    theirs = {k: keras.ops.convert_to_numpy(v) for k, v in pyramid(
        _keras_hub_normalize(images), training=False).items()}
    plain = plain_resnet18
    stages = keras.Model(plain.input, {
        "P2": plain.get_layer("layer1_1_relu2").output,
        "P3": plain.get_layer("layer2_1_relu2").output,
        "P4": plain.get_layer("layer3_1_relu2").output,
        "P5": plain.output["P5"]})
    ours = {k: keras.ops.convert_to_numpy(v)
            for k, v in stages(images, training=False).items()}
    # layer1-3: the same geometry (strides 4, 8, 16).
    for ours_key in ("P2", "P3", "P4"):
        _assert_close(ours[ours_key], theirs[ours_key], ours_key)
    # layer4: keras-hub's stack3 written out from its own layers reproduces
    # keras-hub (stride 2) ...
    _assert_close(_reference_last_stack(keras_hub_resnet18, theirs["P4"],
                                        stride=2, dilation=1),
                  theirs["P5"], "reference stack3, strided")
    # ... and, dilated by 2 instead, our layer4.
    assert ours["P5"].shape == (2, 4, 4, 512)
    _assert_close(ours["P5"],
                  _reference_last_stack(keras_hub_resnet18, theirs["P4"],
                                        stride=1, dilation=2),
                  "layer4, dilated")


def test_bank_loads_into_a_multitask_model(weights):
    keras.utils.set_random_seed(1)
    model = build_model("resnet18", ["semseg"], num_classes={"semseg": 3},
                        head_channels=16, low_level_channels=8)
    bank.load_bank_into(model, weights)
    np.testing.assert_array_equal(
        model.get_layer("layer4_1_conv2").bank.numpy(),
        weights["layer4_1_conv2/kernel"])
    np.testing.assert_array_equal(
        model.get_layer("layer3_0_downsample_bn_semseg").moving_variance
        .numpy(), weights["layer3_0_downsample_bn/moving_variance"])


def test_backbone_size_check(keras_hub_resnet18, weights):
    again = keras_hub_bank.bank_weights_from_keras_hub(
        keras_hub_resnet18, backbone="resnet18")
    assert set(again) == set(weights)
    with pytest.raises(ValueError) as info:
        keras_hub_bank.bank_weights_from_keras_hub(keras_hub_resnet18,
                                                   backbone="resnet34")
    message = str(info.value)
    assert "'resnet34'" in message
    assert "[2, 2, 2, 2]" in message and "[3, 4, 6, 3]" in message


@pytest.mark.parametrize("config, found", [
    ({"block_type": "bottleneck_block"}, "block_type='bottleneck_block'"),
    ({"use_pre_activation": True}, "use_pre_activation=True"),
    ({"block_type": "basic_block_vd", "input_conv_filters": [32, 32, 64],
      "input_conv_kernel_sizes": [3, 3, 3]}, "block_type='basic_block_vd'"),
    ({"input_conv_filters": [32, 32, 64],
      "input_conv_kernel_sizes": [3, 3, 3]},
     "input_conv_kernel_sizes=[3, 3, 3]"),
    ({"stackwise_num_strides": [1, 2, 2, 1]},
     "stackwise_num_strides=[1, 2, 2, 1]"),
])
def test_other_resnets_are_refused(config, found):
    small = {**RESNET18, "stackwise_num_filters": [64, 64, 64, 64],
             "stackwise_num_blocks": [1, 1, 1, 1], **config}
    backbone = keras_hub.models.ResNetBackbone(**small)
    with pytest.raises(ValueError) as info:
        keras_hub_bank.bank_weights_from_keras_hub(backbone)
    message = str(info.value)
    assert found in message
    assert "not supported" in message
    assert "block_type='basic_block'" in message  # What is supported.


def test_unmapped_layer_is_an_error(keras_hub_resnet18, monkeypatch):
    layer = keras_hub_resnet18.get_layer("stack3_block1_2_bn")
    monkeypatch.setattr(layer, "name", "stack3_block1_2_norm")
    with pytest.raises(ValueError) as info:
        keras_hub_bank.bank_weights_from_keras_hub(keras_hub_resnet18)
    assert "stack3_block1_2_norm" in str(info.value)
    assert "layer4_1_bn2" in str(info.value)  # Lacking.


def test_other_batch_norm_epsilon_is_an_error(keras_hub_resnet18,
                                              monkeypatch):
    monkeypatch.setattr(keras_hub_resnet18.get_layer("stack1_block0_0_bn"),
                        "epsilon", 1e-3)
    with pytest.raises(ValueError, match=r"stack1_block0_0_bn.*epsilon=0.001"):
        keras_hub_bank.bank_weights_from_keras_hub(keras_hub_resnet18)


def test_local_preset_directory(tmp_path):
    keras.utils.set_random_seed(2)
    small = keras_hub.models.ResNetBackbone(**{
        **RESNET18, "stackwise_num_filters": [64, 64, 64, 64],
        "stackwise_num_blocks": [1, 1, 1, 1]})
    _randomize_batch_norms(small, seed=2)
    small.save_to_preset(str(tmp_path))
    expected = keras_hub_bank.bank_weights_from_keras_hub(small)
    # from_preset reads it; --bank=keras_hub:DIR goes through bank's spec.
    from rmtl_tf.models import bank  # pylint: disable=import-outside-toplevel
    for loaded in (keras_hub_bank.bank_weights_from_keras_hub(str(tmp_path)),
                   keras_hub_bank.bank_weights_from_keras_hub(tmp_path),
                   bank.load_bank_weights(f"keras_hub:{tmp_path}")):
        assert set(loaded) == set(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def test_offline_preset_says_what_to_do(monkeypatch):
    def from_preset(preset):
        raise ConnectionError(
            "HTTPSConnectionPool(host='api.kaggle.com', port=443): Max "
            "retries exceeded (Failed to resolve 'api.kaggle.com')")

    monkeypatch.setattr(keras_hub.models.ResNetBackbone, "from_preset",
                        from_preset)
    with pytest.raises(OSError) as info:
        keras_hub_bank.bank_weights_from_keras_hub("resnet_18_imagenet")
    message = str(info.value)
    for part in ("'resnet_18_imagenet'", "downloaded once", "network access",
                 "local preset directory", "--bank=imagenet",
                 "--bank=torchvision:PATH", "api.kaggle.com"):
        assert part in message


def test_unknown_preset_is_named(tmp_path):
    missing = str(tmp_path / "no_such_preset")
    with pytest.raises(ValueError) as info:
        keras_hub_bank.bank_weights_from_keras_hub(missing)
    message = str(info.value)
    assert repr(missing) in message
    assert "Unknown preset identifier" in message  # keras-hub's reason.
    assert "'resnet_18_imagenet'" in message  # A preset that works.
    assert "--bank=torchvision:PATH" in message


def test_missing_keras_hub_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError) as info:
        keras_hub_bank.bank_weights_from_keras_hub("resnet_18_imagenet")
    message = str(info.value)
    assert INSTALL in message
    assert "\n" not in message


def test_other_sources_are_refused():
    with pytest.raises(TypeError, match="ResNetBackbone.*Received: int"):
        keras_hub_bank.bank_weights_from_keras_hub(18)
