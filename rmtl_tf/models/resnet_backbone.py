"""ResNet (BasicBlock) backbone, output stride 16, one path per task.

Layer names follow torchvision's (`layer2_0_conv1` for `layer2.0.conv1`) so
pretrained weights map by name. The stem conv and every 3x3 block conv are
shared (`ReparamConv2D` in the "rc" architecture); BatchNorms and the 1x1
shortcut convs belong to each task. Strided convs pad explicitly like
PyTorch, so imported weights give the same function. Inputs are RGB pixels
in [0, 255], normalized inside the model (`input_normalization`).
"""

import keras

# ImageNet statistics of RGB pixels in [0, 255]; the model normalizes inside.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

RESNET_SPECS = {
    "resnet18": {"blocks": (2, 2, 2, 2), "widths": (64, 128, 256, 512)},
    "resnet34": {"blocks": (3, 4, 6, 3), "widths": (64, 128, 256, 512)},
    # A tiny variant for tests.
    "resnet_tiny": {"blocks": (1, 1, 1, 1), "widths": (8, 16, 16, 32)},
}


def resnet_spec(backbone, width_multiplier=1.0):
    """Blocks and channel widths of `backbone` scaled by `width_multiplier`."""
    if backbone not in RESNET_SPECS:
        raise ValueError(
            f"Unknown backbone {backbone!r}. Expected one of "
            f"{sorted(RESNET_SPECS)}."
        )
    if not width_multiplier > 0:
        raise ValueError(
            "`width_multiplier` must be > 0. "
            f"Received: width_multiplier={width_multiplier}"
        )
    spec = RESNET_SPECS[backbone]
    widths = tuple(max(4, int(round(w * width_multiplier)))
                   for w in spec["widths"])
    return {"blocks": spec["blocks"], "widths": widths}


def input_normalization():
    """The "normalize" layer: `(x - IMAGENET_MEAN) / IMAGENET_STD`."""
    return keras.layers.Normalization(
        mean=IMAGENET_MEAN, variance=[s**2 for s in IMAGENET_STD],
        name="normalize")


def _relu(factory, name):
    return factory.shared(name, lambda: keras.layers.ReLU(name=name))


def _basic_block(factory, x, task, name, filters, strides, dilation,
                 first_dilation):
    in_channels = x.shape[-1]
    owner = factory.backbone_task(task)
    out = factory.backbone_conv(x, task, f"{name}_conv1", filters, 3,
                                strides, first_dilation)
    out = factory.task_bn(f"{name}_bn1", owner)(out)
    out = _relu(factory, f"{name}_relu1")(out)
    out = factory.backbone_conv(out, task, f"{name}_conv2", filters, 3, 1,
                                dilation)
    out = factory.task_bn(f"{name}_bn2", owner)(out)
    shortcut = x
    if strides != 1 or in_channels != filters:
        shortcut = factory.task_conv(f"{name}_downsample_conv", owner,
                                     filters, 1, strides=strides)(x)
        shortcut = factory.task_bn(f"{name}_downsample_bn", owner)(shortcut)
    out = factory.shared(f"{name}_add",
                         lambda: keras.layers.Add(name=f"{name}_add"))(
        [out, shortcut])
    return _relu(factory, f"{name}_relu2")(out)


def resnet_features(factory, x, task, backbone="resnet18",
                    width_multiplier=1.0):
    """Runs `task`'s path through the backbone.

    Returns a dict of feature maps: "P2" (stride 4, after layer1) and "P5"
    (stride 16, after the dilated layer4).
    """
    spec = resnet_spec(backbone, width_multiplier)
    widths = spec["widths"]
    x = factory.backbone_conv(x, task, "conv1", widths[0], 7, 2)
    x = factory.task_bn("bn1", factory.backbone_task(task))(x)
    x = _relu(factory, "relu")(x)
    x = factory.shared("maxpool_pad", lambda: keras.layers.ZeroPadding2D(
        1, name="maxpool_pad"))(x)
    x = factory.shared("maxpool", lambda: keras.layers.MaxPooling2D(
        3, strides=2, name="maxpool"))(x)
    features = {}
    for stage, (num_blocks, filters) in enumerate(
            zip(spec["blocks"], widths), start=1):
        # Output stride 16: layer4 keeps the resolution and every conv of
        # it dilates by 2, block 0 included, as the authors' RCM ResNet
        # (their _make_layer passes the dilation to every BasicBlock).
        dilate = stage == 4
        stride = 1 if stage == 1 or dilate else 2
        dilation = 2 if dilate else 1
        for block in range(num_blocks):
            x = _basic_block(
                factory, x, task, f"layer{stage}_{block}", filters,
                strides=stride if block == 0 else 1,
                dilation=dilation,
                first_dilation=dilation,
            )
        if stage == 1:
            features["P2"] = x
    features["P5"] = x
    return features
