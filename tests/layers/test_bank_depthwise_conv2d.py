"""Tests for `BankDepthwiseConv2D`: Keras's `DepthwiseConv2D`, its kernel a
frozen bank."""

import keras
import numpy as np

from rmtl_tf.layers.bank_depthwise_conv2d import BankDepthwiseConv2D
from rmtl_tf.testing import run_layer_test


def test_layer_contract():
    run_layer_test(
        BankDepthwiseConv2D,
        {"kernel_size": 3, "strides": 2, "padding": "same",
         "dilation_rate": 1, "use_bias": False, "name": "bank_depthwise"},
        np.random.default_rng(0).normal(size=(2, 9, 9, 4)).astype(
            np.float32),
        (2, 5, 5, 4), expected_num_non_trainable_weights=1)


def test_same_function_as_keras_and_frozen_whatever_the_flag():
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    layer = BankDepthwiseConv2D(3, dilation_rate=2, use_bias=True)
    reference = keras.layers.DepthwiseConv2D(3, dilation_rate=2,
                                             use_bias=True)
    out = layer(x)
    reference(x)
    reference.set_weights(layer.get_weights())
    np.testing.assert_array_equal(out, reference(x))
    layer.trainable = True
    assert layer.trainable_weights == []
    assert layer.bank is layer.kernel and not layer.bank.trainable
