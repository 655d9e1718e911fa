"""Bank weights from keras-hub's ResNets (`--bank=keras_hub:PRESET`).

`bank_weights_from_keras_hub` converts a `keras_hub.models.ResNetBackbone`
(a preset such as `"resnet_18_imagenet"`, a Kaggle / Hugging Face handle, a
local preset directory, or a built backbone) to bank weights
(`rmtl_tf.models.bank` naming). Only a ResNet v1 with basic blocks is
accepted: `block_type="basic_block"`, `use_pre_activation=False`, a single
7x7 stem conv and four stacks with strides [1, 2, 2, 2] -- what torchvision's
ResNet-18/34 are. Bottleneck blocks (ResNet-50+), pre-activation (v2) and
the "vd" variants (three-conv stem, pooled shortcuts) are refused.

Naming. keras-hub names a v1 basic-block ResNet (its `resnet_backbone.py`,
and the timm converter `keras_hub/src/utils/timm/convert_resnet.py`, which
maps the same names to torchvision's):

    conv1_conv, conv1_bn            -> conv1, bn1
    stack{i}_block{j}_1_conv / _bn  -> layer{i+1}_{j}_conv1 / _bn1
    stack{i}_block{j}_2_conv / _bn  -> layer{i+1}_{j}_conv2 / _bn2
    stack{i}_block{j}_0_conv / _bn  -> layer{i+1}_{j}_downsample_conv / _bn

(the shortcut `_0_` exists in block 0 of stacks 1-3 only, as torchvision's
`downsample`). The conversion walks the backbone's layers by these names;
every layer holding weights must map, and every weight of it, or it is an
error. Keras stores conv kernels HWIO whatever the `data_format`, as the
bank does, so they are copied as they are (in float32).

Geometry. keras-hub pads like PyTorch (explicit `ZeroPadding2D` before the
stride-2 convs and the max pool), as our backbone does, so layer1-3 compute
the same function. Our layer4 is dilated by 2 instead of strided (output
stride 16); its kernels are the same, its function is the dilated one.

BatchNorm. keras-hub's ResNet BatchNormalization uses `epsilon=1e-5`,
`momentum=0.9`, the same as ours (`layer_factory.BN_EPSILON`,
`BN_MOMENTUM`) and torchvision's, so moving statistics carry over
unchanged; a BatchNorm with another epsilon is refused.

Preprocessing. The backbone takes normalized images; keras-hub's
`ResNetImageConverter` normalizes. keras-hub's `resnet_18_imagenet` preset
was converted from timm's `resnet18.a1_in1k`
(`tools/checkpoint_conversion/convert_resnet_checkpoints.py`), whose image
converter keras-hub's timm loader builds from timm's `pretrained_cfg`:
`scale = 1 / 255 / std`, `offset = -mean / std` with ImageNet's
mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), on [0, 255]
pixels: `(x / 255 - mean) / std`. That is exactly our in-model
normalization (`resnet_backbone.IMAGENET_MEAN` / `IMAGENET_STD`, the same
numbers times 255), so the bank sees its pretraining's input scale. (timm
trained it at 224x224 with bicubic resizing; the weights are timm's "A1"
recipe, not torchvision's ImageNet weights that `--bank=imagenet` uses.)
keras-hub ships no basic-block v1 ResNet-34 preset (`resnet_vd_34_imagenet`
is a "vd" model); a timm handle such as `hf://timm/resnet34.a1_in1k` goes
through keras-hub's timm loader to the same kind of backbone.

keras-hub is optional. Its own requirement tensorflow-text pulls the full
`tensorflow` wheel next to `tensorflow-cpu`, so install it with
`pip install --no-deps keras-hub && pip install tokenizers kagglehub`.
"""

import os
import re

import keras
import numpy as np

from rmtl_tf.models.layer_factory import BN_EPSILON
from rmtl_tf.models.resnet_backbone import resnet_spec

INSTALL_COMMAND = ("pip install --no-deps keras-hub && "
                   "pip install tokenizers kagglehub")
SUPPORTED = ("a ResNet v1 with basic blocks (block_type='basic_block', "
             "use_pre_activation=False, one 7x7 stem conv "
             "(input_conv_kernel_sizes=[7]), four stacks with "
             "stackwise_num_strides=[1, 2, 2, 2]), as torchvision's "
             "ResNet-18/34 (keras-hub preset 'resnet_18_imagenet')")
OFFLINE_HINT = (
    "A preset is downloaded once (network access; kagglehub and "
    "huggingface_hub cache it); offline, pass a local preset directory "
    "instead (from_preset accepts its path, e.g. one written by "
    "`backbone.save_to_preset(DIR)`: --bank=keras_hub:DIR), or use "
    "--bank=imagenet (torchvision's checkpoint, also fetched once) or "
    "--bank=torchvision:PATH (a local torchvision .pth).")
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")
_STEM = {"conv1_conv": "conv1", "conv1_bn": "bn1"}
_BLOCK = re.compile(r"stack(\d+)_block(\d+)_([012])_(conv|bn)")


def _import_keras_hub():
    try:
        import keras_hub  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        reason = " ".join(str(e).split())
        raise ImportError(
            f"--bank=keras_hub needs keras-hub, which is not importable "
            f"({reason}): install it with `{INSTALL_COMMAND}` (plain `pip "
            "install keras-hub` pulls the full tensorflow wheel through "
            "tensorflow-text).") from e
    return keras_hub


def _reason(error):
    """`error` as one line."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def load_backbone(preset):
    """`keras_hub.models.ResNetBackbone.from_preset(preset)`, with errors
    that name the preset and the offline alternatives."""
    keras_hub = _import_keras_hub()
    try:
        return keras_hub.models.ResNetBackbone.from_preset(preset)
    except OSError as e:  # requests' ConnectionError, kagglehub's HTTP errors.
        raise OSError(
            f"Could not fetch keras-hub preset {preset!r} ({_reason(e)}). "
            f"{OFFLINE_HINT}") from e
    except ValueError as e:  # An unknown preset; an hf:// handle offline.
        raise ValueError(
            f"keras-hub cannot load ResNetBackbone preset {preset!r} "
            f"({_reason(e)}). Of keras-hub's own presets, "
            f"'resnet_18_imagenet' is the basic-block ResNet v1 a bank needs."
            f" {OFFLINE_HINT}") from e


def check_architecture(backbone, what="keras-hub ResNetBackbone"):
    """Raises ValueError unless `backbone` is a basic-block ResNet v1 with
    torchvision's stem and strides (see `SUPPORTED`)."""
    found = []
    if backbone.block_type != "basic_block":
        kind = {"bottleneck_block": " (ResNet-50/101/152)",
                "basic_block_vd": " (ResNet-vd)",
                "bottleneck_block_vd": " (ResNet-vd)"}.get(
                    backbone.block_type, "")
        found.append(f"block_type={backbone.block_type!r}{kind}")
    if backbone.use_pre_activation:
        found.append("use_pre_activation=True (ResNet v2)")
    if list(backbone.input_conv_kernel_sizes) != [7]:
        found.append(
            f"input_conv_kernel_sizes={list(backbone.input_conv_kernel_sizes)}"
            f" (a stem of {len(backbone.input_conv_kernel_sizes)} conv(s))")
    if list(backbone.stackwise_num_strides) != [1, 2, 2, 2]:
        found.append("stackwise_num_strides="
                     f"{list(backbone.stackwise_num_strides)}")
    if found:
        raise ValueError(
            f"{what} is not supported: it has {', '.join(found)}. Supported: "
            f"{SUPPORTED}.")


def check_backbone_size(keras_hub_backbone, backbone,
                        what="keras-hub ResNetBackbone"):
    """Raises ValueError unless the keras-hub backbone has the blocks and
    widths of our `backbone` ("resnet18", "resnet34") at full width."""
    spec = resnet_spec(backbone)
    blocks = tuple(keras_hub_backbone.stackwise_num_blocks)
    widths = tuple(keras_hub_backbone.stackwise_num_filters)
    stem = tuple(keras_hub_backbone.input_conv_filters)
    if (blocks, widths, stem) != (spec["blocks"], spec["widths"],
                                  spec["widths"][:1]):
        raise ValueError(
            f"{what} does not match backbone {backbone!r}: it has "
            f"stackwise_num_blocks={list(blocks)}, stackwise_num_filters="
            f"{list(widths)}, input_conv_filters={list(stem)}; {backbone!r} "
            f"has blocks {list(spec['blocks'])}, widths "
            f"{list(spec['widths'])}.")


def bank_layer_name(name):
    """Our bank layer name of keras-hub ResNet v1 layer `name`, or None."""
    if name in _STEM:
        return _STEM[name]
    match = _BLOCK.fullmatch(name)
    if match is None:
        return None
    stack, block, part, kind = match.groups()
    suffix = f"downsample_{kind}" if part == "0" else f"{kind}{part}"
    return f"layer{int(stack) + 1}_{int(block)}_{suffix}"


def _expected_layers(backbone):
    """Our layer names that `backbone`'s configuration implies."""
    names = {"conv1", "bn1"}
    for stage, num_blocks in enumerate(backbone.stackwise_num_blocks,
                                       start=1):
        for block in range(num_blocks):
            parts = ["conv1", "bn1", "conv2", "bn2"]
            if block == 0 and stage > 1:
                parts += ["downsample_conv", "downsample_bn"]
            names.update(f"layer{stage}_{block}_{p}" for p in parts)
    return names


def _to_numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable)).astype(
        np.float32)


def _layer_weights(layer, kind):
    """{weight name: variable} of a keras-hub conv or BatchNorm layer, or a
    string saying why it cannot be mapped."""
    if kind == "conv":
        if not isinstance(layer, keras.layers.Conv2D):
            return f"named a conv, is a {type(layer).__name__}"
        if layer.use_bias or getattr(layer, "groups", 1) != 1:
            return (f"a conv with use_bias={layer.use_bias}, groups="
                    f"{getattr(layer, 'groups', 1)} (expected no bias, "
                    "groups=1)")
        variables = {"kernel": layer.kernel}
    else:
        if not isinstance(layer, keras.layers.BatchNormalization):
            return f"named a BatchNorm, is a {type(layer).__name__}"
        if not (layer.center and layer.scale):
            return (f"a BatchNorm with center={layer.center}, "
                    f"scale={layer.scale} (expected both)")
        if not np.isclose(layer.epsilon, BN_EPSILON, rtol=1e-6, atol=0):
            return (f"a BatchNorm with epsilon={layer.epsilon}; the bank's "
                    f"BatchNorms use epsilon={BN_EPSILON}")
        variables = {attr: getattr(layer, attr) for attr in BN_WEIGHTS}
    left = ({v.path for v in layer.weights}
            - {v.path for v in variables.values()})
    if left:
        return f"has weights {sorted(left)} beyond {sorted(variables)}"
    return variables


def bank_weights_from_backbone(backbone, what="keras-hub ResNetBackbone"):
    """Bank weights from a built basic-block ResNet v1 `ResNetBackbone`.

    Raises:
        ValueError: another architecture (see `check_architecture`), a layer
            with weights that maps to no bank layer (or has weights beyond
            a conv kernel / BatchNorm's four), or a bank layer missing.
    """
    check_architecture(backbone, what)
    weights, unmapped = {}, []
    for layer in backbone.layers:
        if not layer.weights:
            continue
        base = bank_layer_name(layer.name)
        if base is None:
            unmapped.append(f"{layer.name} ({type(layer).__name__}): its name"
                            " is no stem, block conv or BatchNorm")
            continue
        kind = "bn" if layer.name.endswith("_bn") else "conv"
        variables = _layer_weights(layer, kind)
        if isinstance(variables, str):
            unmapped.append(f"{layer.name}: {variables}")
            continue
        for attr, variable in variables.items():
            key = f"{base}/{attr}"
            if key in weights:
                unmapped.append(f"{layer.name}: maps to {key!r} twice")
            weights[key] = _to_numpy(variable)
    mapped = {key.rpartition("/")[0] for key in weights}
    expected = _expected_layers(backbone)
    missing = sorted(expected - mapped)
    extra = sorted(mapped - expected)
    problems = []
    if unmapped:
        problems.append("layers that map to no bank weight: "
                        + "; ".join(unmapped))
    if missing:
        problems.append(f"bank layers it lacks: {missing}")
    if extra:
        problems.append(f"bank layers its configuration does not have: "
                        f"{extra}")
    if problems:
        raise ValueError(
            f"Cannot convert {what} to bank weights: {'; '.join(problems)}. "
            "The conversion maps keras-hub's ResNet v1 names conv1_conv, "
            "conv1_bn and stack{i}_block{j}_{0,1,2}_{conv,bn}.")
    return weights


def bank_weights_from_keras_hub(source, backbone=None):
    """Bank weights (`rmtl_tf.models.bank` naming) from a keras-hub ResNet.

    Args:
        source: a preset for `keras_hub.models.ResNetBackbone.from_preset`
            (a name such as "resnet_18_imagenet", a "kaggle://" or "hf://"
            handle, or a local preset directory), or a built
            `ResNetBackbone`.
        backbone: optionally our backbone the weights are for ("resnet18",
            "resnet34"): the keras-hub backbone must have its blocks and
            widths.

    Returns:
        {"<layer>/<weight>": float32 array}: conv kernels HWIO, BatchNorm
        gamma / beta / moving_mean / moving_variance.

    Raises:
        ImportError: keras-hub is not installed (the message says how).
        OSError: the preset could not be downloaded.
        ValueError: an unknown preset, another architecture (bottleneck,
            pre-activation, vd), or weights that do not all map.
        TypeError: `source` is neither a preset nor a `ResNetBackbone`.
    """
    keras_hub = _import_keras_hub()
    backbone_cls = keras_hub.models.ResNetBackbone
    if isinstance(source, (str, os.PathLike)):
        preset = os.fspath(source)
        what = f"keras-hub preset {preset!r}"
        keras_hub_backbone = load_backbone(preset)
    elif isinstance(source, backbone_cls):
        what = f"keras-hub ResNetBackbone {source.name!r}"
        keras_hub_backbone = source
    else:
        hint = (" (a task model: pass its `.backbone`)"
                if isinstance(getattr(source, "backbone", None),
                              backbone_cls) else "")
        raise TypeError(
            "Expected a keras-hub preset (str or path) or a "
            "`keras_hub.models.ResNetBackbone`. Received: "
            f"{type(source).__name__}{hint}")
    check_architecture(keras_hub_backbone, what)
    if backbone is not None:
        check_backbone_size(keras_hub_backbone, backbone, what)
    return bank_weights_from_backbone(keras_hub_backbone, what)
