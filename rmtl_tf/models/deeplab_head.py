"""Per-task DeepLabv3+ decoder: ASPP, low-level fusion, prediction."""

import keras

from rmtl_tf.layers.resize_like import ResizeLike


def _conv_bn_relu(factory, x, task, base, filters, kernel_size,
                  dilation_rate=1):
    x = factory.task_conv(base, task, filters, kernel_size,
                          dilation_rate=dilation_rate)(x)
    x = factory.task_bn(f"{base}_bn", task)(x)
    name = factory.task_name(f"{base}_relu", task)
    return factory.shared(name, lambda: keras.layers.ReLU(name=name))(x)


def deeplab_head(factory, features, image, task, channels, head_channels=256,
                 low_level_channels=48, aspp_rates=(6, 12, 18)):
    """DeepLabv3+ decoder of `task` on backbone `features`.

    ASPP on "P5" (1x1, three 3x3 atrous convs, image pooling; all
    `head_channels` wide) projected by a 1x1 conv, upsampled to "P2" and
    concatenated with "P2" reduced to `low_level_channels`; two 3x3 convs,
    a 1x1 prediction with bias, and a bilinear upsample to the image size.

    Returns the task's raw output (logits or values) at image resolution.
    """
    high, low = features["P5"], features["P2"]
    prefix = "head_aspp"
    branches = [_conv_bn_relu(factory, high, task, f"{prefix}_conv0",
                              head_channels, 1)]
    for i, rate in enumerate(aspp_rates, start=1):
        branches.append(_conv_bn_relu(factory, high, task,
                                      f"{prefix}_conv{i}", head_channels, 3,
                                      dilation_rate=rate))
    pool_name = factory.task_name(f"{prefix}_pool", task)
    pooled = factory.shared(pool_name, lambda: keras.layers.
                            GlobalAveragePooling2D(keepdims=True,
                                                   name=pool_name))(high)
    pooled = _conv_bn_relu(factory, pooled, task, f"{prefix}_pool_conv",
                           head_channels, 1)
    up_name = factory.task_name(f"{prefix}_pool_upsample", task)
    pooled = factory.shared(up_name, lambda: ResizeLike(
        name=up_name))([pooled, high])
    branches.append(pooled)
    cat_name = factory.task_name(f"{prefix}_concat", task)
    x = factory.shared(cat_name, lambda: keras.layers.Concatenate(
        name=cat_name))(branches)
    x = _conv_bn_relu(factory, x, task, f"{prefix}_project", head_channels, 1)

    reduced = _conv_bn_relu(factory, low, task, "head_low_level",
                            low_level_channels, 1)
    up_name = factory.task_name("head_upsample4", task)
    x = factory.shared(up_name, lambda: ResizeLike(name=up_name))(
        [x, reduced])
    cat_name = factory.task_name("head_concat", task)
    x = factory.shared(cat_name, lambda: keras.layers.Concatenate(
        name=cat_name))([x, reduced])
    x = _conv_bn_relu(factory, x, task, "head_decoder_conv1",
                      head_channels, 3)
    x = _conv_bn_relu(factory, x, task, "head_decoder_conv2",
                      head_channels, 3)
    x = factory.task_conv("head_predict", task, channels, 1,
                          use_bias=True)(x)
    up_name = factory.task_name("head_upsample_output", task)
    return factory.shared(up_name, lambda: ResizeLike(name=up_name))(
        [x, image])
