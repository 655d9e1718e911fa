"""Pretrained bank weights: extract, store, load into a multi-task model.

A "bank weights" dict maps `"<layer>/<weight>"` to numpy arrays, in the
naming of the plain (single-path) backbone: `"layer1_0_conv1/kernel"` (HWIO),
`"layer1_0_bn1/gamma"`, `".../beta"`, `".../moving_mean"`,
`".../moving_variance"`, `"layer2_0_downsample_conv/kernel"`; for
MobileNetV2 Keras' names (`"block_1_expand/kernel"`,
`"block_1_depthwise/kernel"` (depthwise, `kh x kw x c x 1`),
`"block_1_expand_BN/gamma"`, ...). The conv kernels (depthwise ones
included) become the frozen banks; BatchNorm and shortcut weights
initialize every task's own copies. Loaders are pluggable through
`BANK_LOADERS`.
"""

import keras

from rmtl_tf.models import imagenet_bank, keras_hub_bank, torch_state
from rmtl_tf.models.backbones import get_backbone
from rmtl_tf.models.layer_factory import (BANK_LAYER_TYPES,
                                          FROZEN_SHARED_TYPES, LayerFactory,
                                          task_layer_name)
from rmtl_tf.models.npz_file import atomic_save_npz, load_npz
from rmtl_tf.models.variants import PLAIN

BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def build_plain_backbone(backbone, width_multiplier=1.0, image_size=None):
    """An ordinary trainable backbone with the bank's layer names.

    Returns a functional model from float pixels in [0, 255] to the feature
    dict {"P2", "P5"}. Its attribute `bank_convs` names the convs that are
    banks in the bank architectures (not the ResNets' 1x1 shortcuts).
    """
    spec = get_backbone(backbone, width_multiplier)
    height, width = image_size or (None, None)
    image = keras.Input((height, width, 3), name="image")
    x = spec.normalization()(image)
    factory = LayerFactory(PLAIN, tasks=())
    features = spec.features(factory, x, None, width_multiplier)
    model = keras.Model(image, features, name=f"{backbone}_plain")
    model.bank_convs = tuple(factory.backbone_convs)
    return model


def weights_from_plain(plain_model):
    """Bank weights dict from a plain backbone's conv and BN layers."""
    weights = {}
    for layer in plain_model.layers:
        if isinstance(layer, (keras.layers.Conv2D,
                              keras.layers.DepthwiseConv2D)):
            weights[f"{layer.name}/kernel"] = layer.kernel.numpy()
        elif isinstance(layer, keras.layers.BatchNormalization):
            for attr in BN_WEIGHTS:
                weights[f"{layer.name}/{attr}"] = getattr(layer, attr).numpy()
    return weights


def save_bank(path, weights):
    """Writes bank weights to an `.npz`, atomically."""
    atomic_save_npz(path, weights)


def load_torchvision(path):
    """Bank weights from a torchvision ResNet's `.pth` (read without
    PyTorch, `pth_file`) or `.npz`."""
    return torch_state.bank_weights_from_torchvision(path)


def load_keras_hub(preset, backbone=None):
    """Bank weights from a keras-hub ResNet preset (or preset directory),
    checked against `backbone`'s blocks and widths when given."""
    return keras_hub_bank.bank_weights_from_keras_hub(preset, backbone)


# Loaders by scheme, each called as `loader(path, backbone)`: "npz:PATH"
# (or a path ending in .npz), "torchvision:PATH" (a torchvision ResNet
# state dict, .pth or .npz) and "keras_hub:PRESET" (a keras-hub
# ResNetBackbone preset, checked against the backbone).
BANK_LOADERS = {"npz": lambda path, backbone: load_npz(path),
                "torchvision": lambda path, backbone: load_torchvision(path),
                "keras_hub": load_keras_hub}


def load_bank_weights(spec, backbone=None, width_multiplier=1.0):
    """Resolves a bank spec to a weights dict: "imagenet" (torchvision's
    ImageNet checkpoint of `backbone`, the paper's bank; Keras' ImageNet
    MobileNetV2 of alpha `width_multiplier` for "mobilenet_v2"),
    "npz:PATH", "PATH.npz", "torchvision:PATH" or "keras_hub:PRESET"."""
    if spec == "imagenet":
        return imagenet_bank.load(backbone,
                                  width_multiplier=width_multiplier)
    scheme, _, path = spec.partition(":")
    if not path and spec.endswith(".npz"):
        scheme, path = "npz", spec
    if scheme not in BANK_LOADERS or not path:
        raise ValueError(
            f"Unknown bank spec {spec!r}. Expected 'imagenet', "
            f"'SCHEME:PATH' with SCHEME in {sorted(BANK_LOADERS)}, or a "
            "path ending in '.npz'."
        )
    return BANK_LOADERS[scheme](path, backbone)


def _assign(variable, value, key):
    if tuple(variable.shape) != tuple(value.shape):
        raise ValueError(
            f"Bank weight {key!r} has shape {tuple(value.shape)}, the model "
            f"expects {tuple(variable.shape)}: the bank comes from another "
            "architecture or width."
        )
    variable.assign(value)


def init_task_layers(model, weights, tasks):
    """Initializes `tasks`' BatchNorm and shortcut convs from `weights`."""
    by_name = {layer.name: layer for layer in model.layers}
    for key in weights:
        base, _, attr = key.rpartition("/")
        for task in tasks:
            layer = by_name.get(task_layer_name(base, task))
            if layer is None or model.layer_owners.get(layer.name) != task:
                continue
            target = layer.kernel if attr == "kernel" else getattr(layer, attr)
            _assign(target, weights[key], key)


def _shared_targets(model, weights):
    """(variable, value, key) for the banks and any shared (task-less)
    layers of `model`, checked before anything is assigned."""
    targets, missing = [], []
    for layer in model.layers:
        if isinstance(layer, BANK_LAYER_TYPES + FROZEN_SHARED_TYPES):
            key = f"{layer.name}/kernel"
            if key not in weights:
                missing.append(key)
            else:
                targets.append((layer.bank, weights[key], key))
        elif layer.weights and layer.name not in model.layer_owners:
            for variable in layer.weights:
                key = f"{layer.name}/{variable.name}"
                if key in weights:
                    targets.append((variable, weights[key], key))
    if missing:
        raise ValueError(f"Bank weights lack {missing}.")
    for variable, value, key in targets:
        if tuple(variable.shape) != tuple(value.shape):
            _assign(variable, value, key)  # Raises with the shapes.
    return targets


def load_bank_into(model, weights):
    """Loads the pretrained network into `model`: its conv kernels become
    the frozen banks (or the shared / per-task convs of the baselines), its
    BatchNorm and shortcut weights initialize every task's copies.

    Every bank is checked before anything is written, so a failed load
    leaves the model as it was.
    """
    for variable, value, key in _shared_targets(model, weights):
        _assign(variable, value, key)
    init_task_layers(model, weights, model.tasks)
