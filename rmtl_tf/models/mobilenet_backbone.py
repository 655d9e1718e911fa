"""MobileNetV2 backbone, output stride 16, one path per task.

The network is `keras.applications.MobileNetV2` (Sandler et al., CVPR
2018) up to `block_16_project_BN`, with its layer names (`Conv1`,
`bn_Conv1`, `expanded_conv_depthwise`, `block_1_expand`,
`block_1_depthwise_BN`, ..., `block_16_project_BN`; per-task layers carry
the `_<task>` suffix), its channel rounding (`_make_divisible(..., 8)` with
`alpha = width_multiplier`), ReLU6 activations, its BatchNorm epsilon
(1e-3) and its residual adds, so its ImageNet weights map by name
(`keras_applications_bank`) and compute what Keras computes. (The
BatchNorm momentum, which only matters in training, is the package's 0.9,
not Keras' 0.999.)

As DeepLabv3+ uses MobileNetV2: the final 1x1 `Conv_1` (1280 channels) is
left out, "P5" is the output of block 16 (320 * alpha channels, stride 16)
and "P2" the output of block 2 (24 * alpha channels, stride 4). Output
stride 16: block 13's depthwise conv keeps the resolution (stride 1
instead of 2) and the depthwise convs of blocks 13 to 16 are dilated by 2
(as layer4 of our ResNets, its first block included).

The rule per layer type (`LayerFactory`):
- the 3x3 stem `Conv1` and the 1x1 project convs are bank convs
  (`backbone_conv`): `ReparamConv2D` in "rc", `AdapterConv2D` in
  "ra_series" / "ra_parallel", a conv per task in "conv", one shared conv
  in "shared";
- the 1x1 expand convs belong to each task (`task_conv`, initialized from
  the pretrained kernel like the ResNets' shortcut convs), shared in
  "shared": an expansion has 6x more outputs than inputs, so its modulator
  (`c_out^2`) would be 6x the conv (`c_in c_out`) and compute no function a
  copy of the conv cannot (`W M` reaches every `c_in x c_out` matrix when
  `W` has full row rank); with modulators, each task cost 8.82M parameters
  (1.5x a single-task network), with copies 5.05M (as
  `rmtl_tf.reparameterize(pointwise="auto")` decides);
- every BatchNorm belongs to its task (`task_bn`), shared in "shared";
- a depthwise conv mixes no channels, so there is nothing for a modulator
  to recombine inside it: in the bank architectures it is part of the
  frozen bank, shared by all tasks (`BankDepthwiseConv2D`; the modulator of
  the next 1x1 conv recombines its responses); per task in "conv", shared
  and trainable in "shared" (`backbone_depthwise`).

Padding. Keras pads its stride-2 depthwise convs with
`ZeroPadding2D(correct_pad(x, 3))` then runs them "valid"; for a known
input size that is exactly TensorFlow's "same" padding (one pixel at the
bottom/right of an even size, one on each side of an odd size), so the
depthwise convs here use `padding="same"`, which also stays right when the
size is only known at run time (Keras' `correct_pad` then assumes an even
size). The stem conv is "same" in Keras too.

Inputs are RGB pixels in [0, 255], normalized inside the model to [-1, 1]
(`input_normalization`, `x / 127.5 - 1`, the scaling the ImageNet weights
were trained with: `keras.applications.mobilenet_v2.preprocess_input`).
"""

import keras

# Keras' MobileNetV2 BatchNorm epsilon: the ImageNet statistics need it.
BN_EPSILON = 1e-3
# (expansion, output channels before alpha, stride) of blocks 0-16, as in
# `keras.applications.MobileNetV2` (the paper's Table 2).
BLOCKS = ((1, 16, 1),
          (6, 24, 2), (6, 24, 1),
          (6, 32, 2), (6, 32, 1), (6, 32, 1),
          (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
          (6, 96, 1), (6, 96, 1), (6, 96, 1),
          (6, 160, 2), (6, 160, 1), (6, 160, 1),
          (6, 320, 1))
STEM_CHANNELS = 32
LOW_LEVEL_BLOCK = 2    # "P2": the output of block 2, stride 4.
DILATED_FROM_BLOCK = 13  # Output stride 16: blocks 13-16 dilated by 2.


def make_divisible(value, divisor=8, min_value=None):
    """Keras' `_make_divisible`: `value` rounded to a multiple of
    `divisor`, never more than 10% below `value`."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def check_width(width_multiplier):
    if not width_multiplier > 0:
        raise ValueError(
            "`width_multiplier` must be > 0. "
            f"Received: width_multiplier={width_multiplier}"
        )


def input_normalization():
    """The "normalize" layer: `x / 127.5 - 1`, pixels to [-1, 1]."""
    return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")


def batch_norm_name(conv_name):
    """The BatchNorm after conv `conv_name` (`Conv1` -> `bn_Conv1`,
    `block_1_expand` -> `block_1_expand_BN`)."""
    return "bn_Conv1" if conv_name == "Conv1" else f"{conv_name}_BN"


def _relu6(factory, name):
    return factory.shared(name, lambda: keras.layers.ReLU(6.0, name=name))


def _conv_bn(factory, x, task, name, filters, kernel_size=1, strides=1):
    x = factory.backbone_conv(x, task, name, filters, kernel_size, strides,
                              padding="same")
    return factory.task_bn(batch_norm_name(name), factory.backbone_task(task),
                           epsilon=BN_EPSILON)(x)


def _inverted_residual(factory, x, task, block_id, expansion, filters,
                       stride, alpha, dilation):
    in_channels = x.shape[-1]
    out_channels = make_divisible(int(filters * alpha), 8)
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    inputs = x
    if block_id:
        # A per-task conv, not a bank conv: its modulator would be 36x the
        # conv's width squared (6x the conv) and compute nothing a copy of
        # the conv cannot (see the module docstring).
        name = f"{prefix}expand"
        x = factory.task_conv(name, factory.backbone_task(task),
                              expansion * in_channels, 1)(x)
        x = factory.task_bn(batch_norm_name(name),
                            factory.backbone_task(task),
                            epsilon=BN_EPSILON)(x)
        x = _relu6(factory, f"{prefix}expand_relu")(x)
    depthwise_stride = 1 if dilation > 1 else stride
    x = factory.backbone_depthwise(x, task, f"{prefix}depthwise",
                                   depthwise_stride, dilation)
    x = factory.task_bn(f"{prefix}depthwise_BN", factory.backbone_task(task),
                        epsilon=BN_EPSILON)(x)
    x = _relu6(factory, f"{prefix}depthwise_relu")(x)
    x = _conv_bn(factory, x, task, f"{prefix}project", out_channels)
    # Keras adds the input where its own block keeps shape and resolution.
    if in_channels == out_channels and stride == 1:
        name = f"{prefix}add"
        x = factory.shared(name, lambda: keras.layers.Add(name=name))(
            [inputs, x])
    return x


def mobilenet_features(factory, x, task, width_multiplier=1.0):
    """Runs `task`'s path through MobileNetV2 (see the module docstring).

    Returns a dict of feature maps: "P2" (stride 4, the output of block 2)
    and "P5" (stride 16, the output of block 16's projection).
    """
    check_width(width_multiplier)
    alpha = width_multiplier
    x = _conv_bn(factory, x, task, "Conv1",
                 make_divisible(STEM_CHANNELS * alpha, 8), 3, 2)
    x = _relu6(factory, "Conv1_relu")(x)
    features = {}
    for block_id, (expansion, filters, stride) in enumerate(BLOCKS):
        dilation = 2 if block_id >= DILATED_FROM_BLOCK else 1
        x = _inverted_residual(factory, x, task, block_id, expansion,
                               filters, stride, alpha, dilation)
        if block_id == LOW_LEVEL_BLOCK:
            features["P2"] = x
    features["P5"] = x
    return features
