"""`BankDepthwiseConv2D`: a depthwise conv whose kernel is a frozen bank."""

import keras


@keras.saving.register_keras_serializable(package="rmtl_tf")
class BankDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` whose kernel is shared and never trained.

    A depthwise convolution mixes no channels: there is nothing for a
    per-task modulator to recombine inside it. In MobileNetV2 every
    depthwise conv sits between two 1x1 convs whose modulators recombine its
    responses, so the bank architectures keep it as part of the frozen bank,
    shared by all tasks: its kernel (`kh x kw x c_in x depth_multiplier`)
    is created non-trainable, like `ReparamConv2D.bank`, and stays so
    whatever `layer.trainable` says. The function is Keras's
    `DepthwiseConv2D`, weights and config included.

    Args:
        Those of `keras.layers.DepthwiseConv2D` (`kernel_size`, `strides`,
        `padding`, `depth_multiplier`, `dilation_rate`, `use_bias`, ...).

    Call arguments:
        inputs: float tensor `(batch, height, width, c_in)`.

    Example:

    ```python
    layer = BankDepthwiseConv2D(3, use_bias=False)
    y = layer(keras.random.normal((2, 32, 32, 16)))
    assert not layer.trainable_weights
    ```

    Reference:
        Kanakis et al., "Reparameterizing Convolutions for Incremental
        Multi-Task Learning without Task Interference", ECCV 2020; Sandler
        et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
        CVPR 2018.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel.trainable = False
        if self.use_bias:
            self.bias.trainable = False

    @property
    def bank(self):
        """The frozen depthwise kernel, as `ReparamConv2D.bank`."""
        return self.kernel
