"""`FusedBatchNormalization`: Keras's BatchNormalization, trained with one op."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rmtl_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step is one fused op.

    The same layer: weights, config, moving-statistics update (biased batch
    variance, `moving = moving * momentum + batch * (1 - momentum)`) and
    inference path. On the TensorFlow backend, Keras 3 normalizes a batch
    with separate moment, subtract, multiply and broadcast ops (and upcasts
    bfloat16/float16 inputs to float32 first); this layer trains 4-D
    channels-last inputs with `FusedBatchNormV3` (oneDNN on the CPU) and its
    fused gradient, about a tenth of a training step of ResNet-18
    DeepLabv3+ on the CPU (benchmarks/bench_speed.py). Anything else
    (inference, masks, renorm, synchronized, other axes or backends) runs
    Keras's own code, so inference outputs are the same bits as Keras's.
    """

    def _fused_training(self, inputs, training, mask):
        return (training and self.trainable and mask is None
                and not self.renorm and not self.synchronized
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and keras.backend.backend() == "tensorflow")

    def call(self, inputs, training=None, mask=None):
        if not self._fused_training(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        channels = inputs.shape[-1]
        gamma = (ops.cast(self.gamma, "float32") if self.scale
                 else ops.ones([channels], "float32"))
        beta = (ops.cast(self.beta, "float32") if self.center
                else ops.zeros([channels], "float32"))
        if inputs.dtype not in (tf.float16, tf.bfloat16, tf.float32):
            inputs = ops.cast(inputs, "float32")
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC",
            is_training=True)
        # The op returns the unbiased (Bessel-corrected) batch variance;
        # Keras's BatchNormalization tracks the biased one.
        count = ops.cast(ops.prod(ops.shape(inputs)[:3]), "float32")
        variance = variance * ((count - 1.0) / ops.maximum(count, 1.0))
        mean, variance = ops.stop_gradient(mean), ops.stop_gradient(variance)
        self.moving_mean.assign(
            self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum
            + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)
