"""The convolution behind the bank layers: one conv op, explicit padding.

`bank_conv` is the 2-D convolution of `ReparamConv2D`, `AdapterConv2D` and
`AtrousConv2D`, with its output shape and argument normalization. On the
TensorFlow backend it works around CPU builds without dilated gradient
kernels (`_dilated_conv_with_space_to_batch_gradient`).
"""

import keras
from keras import ops


def normalize_tuple(value, name):
    """`value` as a pair of positive ints; an int stands for both."""
    pair = (value, value) if isinstance(value, int) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool)
                       and v > 0 for v in pair)):
        raise ValueError(
            f"`{name}` must be a positive int or a pair of positive ints. "
            f"Received: {name}={value!r}"
        )
    return tuple(pair)


def normalize_padding(padding):
    """`padding` as 'same', 'valid' or a pair of non-negative pads."""
    if isinstance(padding, str) and padding.lower() in ("same", "valid"):
        return padding.lower()
    pair = padding
    if isinstance(padding, int) and not isinstance(padding, bool):
        pair = (padding, padding)
    if (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(p, int) and not isinstance(p, bool)
                    and p >= 0 for p in pair)):
        return tuple(pair)
    raise ValueError(
        "`padding` must be 'same', 'valid', a non-negative int or a pair of "
        f"non-negative ints. Received: padding={padding!r}"
    )


def bank_conv(inputs, kernel, strides, padding, dilation_rate):
    """A 2-D convolution, channels last, with explicit padding support.

    `padding` is "same", "valid" or a pair `(pad_h, pad_w)` of symmetric
    zero padding. Explicit padding is part of the convolution op, not a
    separate `Pad` op, so graph optimizers cannot merge it across tasks and
    fuse differently in one- and many-task graphs.

    On TensorFlow this is always one `Conv2D` op: `keras.ops.conv` runs
    dilated convolutions through `tf.nn.convolution`, which wraps them in
    `SpaceToBatchND`/`BatchToSpaceND`, 4x to 45x slower on the CPU for the
    rates of layer4 and ASPP (benchmarks/bench_speed.py, `atrous` part).
    TensorFlow's own CPU kernels (used when oneDNN is off, e.g. on CPUs
    without AVX-512, where TensorFlow leaves it off by default) run a
    dilated `Conv2D` forward but have no dilated gradient kernels; there
    the gradient is taken through the space-to-batch form instead
    (`_dilated_conv_with_space_to_batch_gradient`).
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        if isinstance(padding, tuple):
            (ph, pw) = padding
            padding = [[0, 0], [ph, ph], [pw, pw], [0, 0]]
        else:
            padding = padding.upper()
        dilated = any(rate > 1 for rate in dilation_rate)
        if dilated and not _dilated_gradients_supported(padding,
                                                         inputs.dtype):
            if any(stride > 1 for stride in strides):
                raise ValueError(
                    "A dilated convolution with strides > 1 cannot be "
                    "trained on this TensorFlow build (no dilated gradient "
                    f"kernels). Received: strides={strides}, "
                    f"dilation_rate={dilation_rate}")
            return _dilated_conv_with_space_to_batch_gradient(
                inputs, kernel, padding, dilation_rate)
        return tf.nn.conv2d(inputs, kernel, strides=(1, *strides, 1),
                            padding=padding,
                            dilations=(1, *dilation_rate, 1))
    if isinstance(padding, tuple):
        (ph, pw) = padding
        inputs = ops.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        padding = "valid"
    return ops.conv(inputs, kernel, strides=strides, padding=padding,
                    dilation_rate=dilation_rate, data_format="channels_last")


_DILATED_GRADIENTS = {}


def _dilated_gradients_supported(padding, dtype="float32"):
    """Whether this TensorFlow build has gradient kernels for a dilated
    `Conv2D` op with this kind of padding (a string, or explicit pads) and
    compute dtype.

    oneDNN kernels do for "SAME"/"VALID" but not for explicit padding, and
    in bfloat16/float16 only on some CPUs; TensorFlow's Eigen CPU kernels
    never do ("Current CPU implementations do not yet support dilation
    rates larger than 1"). Probed once per process, padding kind and dtype
    by running both gradient ops on tiny tensors.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    explicit, dtype = isinstance(padding, list), tf.as_dtype(dtype).name
    key = (explicit, dtype)
    if key not in _DILATED_GRADIENTS:
        kwargs = dict(strides=[1, 1, 1, 1], dilations=[1, 2, 2, 1],
                      padding="EXPLICIT" if explicit else "SAME")
        if explicit:
            kwargs["explicit_paddings"] = [0, 0, 2, 2, 2, 2, 0, 0]
        with tf.init_scope():
            x = tf.ones((1, 5, 5, 1), dtype=dtype)
            kernel = tf.ones((3, 3, 1, 1), dtype=dtype)
            try:
                tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(x), filter=kernel, out_backprop=x,
                    **kwargs)
                tf.raw_ops.Conv2DBackpropFilter(
                    input=x, filter_sizes=tf.shape(kernel), out_backprop=x,
                    **kwargs)
                _DILATED_GRADIENTS[key] = True
            except (tf.errors.InvalidArgumentError,
                    tf.errors.UnimplementedError,
                    tf.errors.NotFoundError):
                _DILATED_GRADIENTS[key] = False
    return _DILATED_GRADIENTS[key]


def _dilated_conv_with_space_to_batch_gradient(inputs, kernel, padding,
                                               dilation_rate):
    """A stride-1 dilated conv: one `Conv2D` op forward; its gradient from
    the equivalent `tf.nn.convolution` (space-to-batch, undilated kernels).

    In a graph the space-to-batch forward convolution is traced for its
    gradient only: no op reads its output, so TensorFlow prunes it from
    what runs (the gradient ops need its inputs, not its result).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    dilations = (1, *dilation_rate, 1)

    @tf.custom_gradient
    def conv(x, k):
        y = tf.nn.conv2d(x, k, strides=1, padding=padding,
                         dilations=dilations)

        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch([x, k])
                padded, pad = x, padding
                if isinstance(pad, list):
                    padded, pad = tf.pad(x, pad), "VALID"
                y_s2b = tf.nn.convolution(padded, k, strides=1, padding=pad,
                                          dilations=dilation_rate)
            return tape.gradient(y_s2b, [x, k], output_gradients=dy)

        return y, grad

    # A tensor, not the variable: the tape records the variable's read, and
    # the custom gradient sees no variables of its own.
    return conv(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


def bank_conv_output_shape(input_shape, filters, kernel_size, strides,
                           padding, dilation_rate):
    """Output shape of `bank_conv` for a channels-last `input_shape`."""
    spatial = []
    for i, size in enumerate(input_shape[1:3]):
        if size is None:
            spatial.append(None)
            continue
        effective = (kernel_size[i] - 1) * dilation_rate[i] + 1
        if padding == "same":
            spatial.append(-(-size // strides[i]))
            continue
        if isinstance(padding, tuple):
            size = size + 2 * padding[i]
        spatial.append((size - effective) // strides[i] + 1)
    return (input_shape[0], *spatial, filters)
