"""Folds one task of a multi-task model into an ordinary conv network.

Since `Wt . (Ws * x) = (Ws @ Wt) * x`, a task's modulator (with its NFF
scale `g / ||v||`) folds into the bank: one plain kernel per convolution.
BatchNorm at inference is affine per channel, so it folds into the conv
before it: `K' = K * s`, `b' = (b - mean) * s + beta`, `s = gamma /
sqrt(var + eps)`. A depthwise conv (MobileNetV2's; frozen and shared in
the bank architectures) takes its task's BatchNorm the same way, scaled per
output channel, into a `DepthwiseConv2D` of the task's own. What is left
is the task's path as a plain ResNet / MobileNetV2 + DeepLabv3+ of
`Conv2D` (and `DepthwiseConv2D`) layers with biases: the fastest graph for
one task, at the price of its own copy of the bank (no other task can
share the folded kernels).

The graph is the task's path of the model itself (`task_model`), cloned
op by op, so the folded network computes the same function whatever the
architecture, within float rounding (the sums are reassociated).
"""

import keras
import numpy as np

from rmtl_tf.layers.adapter_conv2d import AdapterConv2D
from rmtl_tf.layers.atrous_conv2d import AtrousConv2D
from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models.layer_factory import conv2d_layer


def _folded_conv(layer):
    """A `Conv2D` with bias standing for `layer` (reparameterized or not)."""
    padding = layer.padding
    if isinstance(padding, tuple):  # Explicit: a ZeroPadding2D goes before.
        padding = "valid"
    return conv2d_layer(
        layer.filters, layer.kernel_size, strides=layer.strides,
        padding=padding, dilation_rate=layer.dilation_rate, use_bias=True,
        name=layer.name)


def _folded_depthwise(layer):
    """A `DepthwiseConv2D` with bias standing for depthwise `layer`."""
    return keras.layers.DepthwiseConv2D(
        layer.kernel_size, strides=layer.strides, padding=layer.padding,
        depth_multiplier=layer.depth_multiplier,
        dilation_rate=layer.dilation_rate, use_bias=True, name=layer.name)


def _kernel_and_bias(layer, task):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel = layer.kernel.numpy()
        bias = (layer.bias.numpy() if layer.use_bias else np.zeros(
            [kernel.shape[2] * kernel.shape[3]], np.float32))
    elif isinstance(layer, ReparamConv2D):
        kernel = np.asarray(layer.task_kernel(task))
        bias = np.zeros([layer.filters], np.float32)
    else:
        kernel = layer.kernel.numpy()
        bias = (layer.bias.numpy() if layer.use_bias
                else np.zeros([layer.filters], np.float32))
    return kernel.astype(np.float64), bias.astype(np.float64)


def _fold_batch_norm(kernel, bias, bn):
    axis = bn.axis if isinstance(bn.axis, int) else list(bn.axis)[0]
    if axis not in (-1, 3):
        raise ValueError(f"Cannot fold BatchNorm {bn.name!r} with axis "
                         f"{bn.axis}: only channels-last is supported.")
    variance = bn.moving_variance.numpy().astype(np.float64)
    mean = bn.moving_mean.numpy().astype(np.float64)
    gamma = (bn.gamma.numpy().astype(np.float64) if bn.scale
             else np.ones_like(mean))
    beta = (bn.beta.numpy().astype(np.float64) if bn.center
            else np.zeros_like(mean))
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return kernel * scale, (bias - mean) * scale + beta


class _Folder:
    """Clone callbacks: convs become `Conv2D`s, their BatchNorm vanishes."""

    def __init__(self, task):
        self.task = task
        self.convs = {}     # id(new conv) -> (new conv, original layer)
        self.produced = {}  # id(conv output tensor) -> id(new conv)
        self.bn_of = {}     # id(new conv) -> its folded BatchNormalization
        self.clones = []    # (new layer, original): weights to copy

    def clone(self, layer):
        if isinstance(layer, AdapterConv2D):
            raise ValueError(
                f"Cannot fold layer {layer.name!r} ({type(layer).__name__}): "
                "folding supports the 'rc' architecture (ReparamConv2D) and "
                "plain convolutions ('conv', 'shared').")
        if isinstance(layer, (ReparamConv2D, keras.layers.Conv2D)):
            if type(layer) not in (ReparamConv2D, keras.layers.Conv2D,
                                   AtrousConv2D):
                raise ValueError(f"Cannot fold layer {layer.name!r} of type "
                                 f"{type(layer).__name__}.")
            new = _folded_conv(layer)
            self.convs[id(new)] = (new, layer)
            return new
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            new = _folded_depthwise(layer)
            self.convs[id(new)] = (new, layer)
            return new
        if isinstance(layer, keras.layers.BatchNormalization):
            return layer  # Folded when called: never runs.
        new = layer.__class__.from_config(layer.get_config())
        self.clones.append((new, layer))
        return new

    def call(self, layer, *args, **kwargs):
        if id(layer) in self.convs:
            kwargs.pop("task", None)
            _, original = self.convs[id(layer)]
            x = args[0]
            if isinstance(original.padding, tuple):
                x = keras.layers.ZeroPadding2D(
                    original.padding, name=f"{original.name}_pad")(x)
            out = layer(x)
            self.produced[id(out)] = id(layer)
            return out
        if isinstance(layer, keras.layers.BatchNormalization):
            conv = self.produced.get(id(args[0]))
            if conv is None or conv in self.bn_of:
                raise ValueError(f"BatchNorm {layer.name!r} does not follow "
                                 "a convolution of its own: cannot fold it.")
            self.bn_of[conv] = layer
            return args[0]
        return layer(*args, **kwargs)

    def assign_weights(self):
        for conv_id, (new, original) in self.convs.items():
            kernel, bias = _kernel_and_bias(original, self.task)
            shape = kernel.shape
            if isinstance(original, keras.layers.DepthwiseConv2D):
                # Output channel c * multiplier + m is kernel[..., c, m].
                kernel = kernel.reshape(shape[:2] + (1, -1))
            if conv_id in self.bn_of:
                kernel, bias = _fold_batch_norm(kernel, bias,
                                                self.bn_of[conv_id])
            kernel = kernel.reshape(shape)
            new.kernel.assign(kernel.astype(np.float32))
            new.bias.assign(bias.astype(np.float32))
        for new, original in self.clones:
            if original.weights:
                new.set_weights(original.get_weights())


def _verify(source, folded, task, image_size):
    """Runs both on one seeded image: a fold that changed the function
    (e.g. a conv output read both through its BatchNorm and raw, which
    the graph walk cannot tell apart) fails here, not in production."""
    height, width = (64 if s is None else s for s in image_size)
    image = np.random.default_rng(0).uniform(
        0, 255, (1, height, width, 3)).astype(np.float32)
    expected = np.asarray(source(image, training=False)[task])
    got = np.asarray(folded(image, training=False)[task])
    scale = float(np.abs(expected).max()) + 1e-6
    error = float(np.abs(expected - got).max())
    if not error <= 1e-3 * scale:
        raise ValueError(f"Folding task {task!r} changed its outputs: max "
                         f"|diff| {error:.3g} for outputs up to "
                         f"{scale:.3g}.")


def fold_task(model, task, verify=True):
    """The plain conv network computing `task` as `model` does.

    Returns a functional `keras.Model` from `image` to `{task: raw
    output}` (apply `rmtl_tf.predictions` for the served prediction),
    named `<model>_<task>_folded`, with no `ReparamConv2D` and no
    `BatchNormalization` left. `verify` runs both networks on one image
    and raises if they differ beyond float rounding.
    """
    if task not in model.tasks:
        raise ValueError(f"Unknown task {task!r}. This model's tasks are "
                         f"{list(model.tasks)}.")
    source = model.task_model([task])
    folder = _Folder(task)
    inputs = keras.Input(batch_shape=source.input.shape, dtype="float32",
                         name="image")
    clone = keras.models.clone_model(source, input_tensors=inputs,
                                     clone_function=folder.clone,
                                     call_function=folder.call)
    folder.assign_weights()
    folded = keras.Model(clone.input, clone.output,
                         name=f"{model.name}_{task}_folded")
    if verify:
        _verify(source, folded, task, tuple(model.image_size))
    return folded
