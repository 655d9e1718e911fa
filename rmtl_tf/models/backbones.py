"""The backbones of `MultiTaskModel`, by name (`--backbone`).

Each runs one task's path through the `LayerFactory` and returns the
feature dict the DeepLabv3+ head reads ("P2" at stride 4, "P5" at stride
16), and brings its own input normalization (the model's "normalize"
layer; inputs are RGB pixels in [0, 255] for every backbone):

- `resnet18`, `resnet34`: `resnet_backbone` (BasicBlock, layer4 dilated),
  ImageNet mean / std; `resnet_tiny`: the same, one narrow block a stage
  (tests);
- `mobilenet_v2`: `mobilenet_backbone` (blocks 13-16 dilated),
  `x / 127.5 - 1`.
"""

import dataclasses
from typing import Callable

from rmtl_tf.models import mobilenet_backbone, resnet_backbone


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One backbone: `features(factory, x, task, width_multiplier)` -> the
    feature dict; `normalization()` -> the "normalize" layer;
    `check_width(width_multiplier)` raises `ValueError` when invalid."""

    name: str
    features: Callable
    normalization: Callable
    check_width: Callable


def _resnet(name):
    def features(factory, x, task, width_multiplier):
        return resnet_backbone.resnet_features(factory, x, task, name,
                                               width_multiplier)
    return Backbone(name, features, resnet_backbone.input_normalization,
                    lambda width: resnet_backbone.resnet_spec(name, width))


BACKBONES = {
    **{name: _resnet(name) for name in resnet_backbone.RESNET_SPECS},
    "mobilenet_v2": Backbone("mobilenet_v2",
                             mobilenet_backbone.mobilenet_features,
                             mobilenet_backbone.input_normalization,
                             mobilenet_backbone.check_width),
}
NAMES = tuple(BACKBONES)


def get_backbone(name, width_multiplier=None):
    """The `Backbone` called `name`; checks `width_multiplier` when given."""
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}. Expected one of "
                         f"{list(NAMES)}.")
    backbone = BACKBONES[name]
    if width_multiplier is not None:
        backbone.check_width(width_multiplier)
    return backbone
