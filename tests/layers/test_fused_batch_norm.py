"""Tests for `FusedBatchNormalization`: Keras's BN, trained by one op."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.layers.fused_batch_norm import FusedBatchNormalization
from rmtl_tf.testing import run_layer_test


def _pair(channels, **kwargs):
    ours = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                               **kwargs)
    rng = np.random.default_rng(1)
    for layer in (ours, keras_bn):
        layer.build((None, 4, 5, channels))
    weights = [rng.normal(size=w.shape).astype("float32")
               for w in keras_bn.weights]
    weights[-1] = np.abs(weights[-1]) + 0.5  # moving variance > 0
    ours.set_weights(weights)
    keras_bn.set_weights(weights)
    return ours, keras_bn


def test_training_step_matches_numpy():
    ours, _ = _pair(6)
    gamma, beta, moving_mean, moving_var = [w.numpy().astype(np.float64)
                                            for w in ours.weights]
    x = np.random.default_rng(0).normal(2.0, 3.0, (3, 4, 5, 6))
    out = keras.ops.convert_to_numpy(ours(x.astype("float32"),
                                          training=True))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # biased
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.moving_mean.numpy(),
                               0.9 * moving_mean + 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance.numpy(),
                               0.9 * moving_var + 0.1 * var, rtol=1e-5)


def test_gradients_match_keras_batch_normalization():
    ours, keras_bn = _pair(5)
    x = tf.constant(np.random.default_rng(2).normal(
        size=(2, 4, 5, 5)).astype("float32"))
    upstream = tf.constant(np.random.default_rng(3).normal(
        size=(2, 4, 5, 5)).astype("float32"))
    grads = []
    for layer in (ours, keras_bn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grads.append(tape.gradient(
            loss, [x, layer.gamma.value, layer.beta.value]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4,
                                   atol=1e-4)


def test_inference_is_keras_bit_for_bit():
    ours, keras_bn = _pair(4)
    x = np.random.default_rng(4).normal(size=(2, 4, 5, 4)).astype("float32")
    np.testing.assert_array_equal(ours(x, training=False).numpy(),
                                  keras_bn(x, training=False).numpy())


def test_frozen_layer_uses_moving_statistics():
    ours, keras_bn = _pair(4)
    ours.trainable = keras_bn.trainable = False
    before = ours.moving_mean.numpy().copy()
    x = np.random.default_rng(5).normal(size=(2, 4, 5, 4)).astype("float32")
    np.testing.assert_array_equal(ours(x, training=True).numpy(),
                                  keras_bn(x, training=True).numpy())
    np.testing.assert_array_equal(ours.moving_mean.numpy(), before)


def _numpy_moving_statistics(batches, momentum):
    """Keras's convention from the initial 0 / 1: `moving = moving *
    momentum + batch * (1 - momentum)`, with the biased batch variance."""
    mean, variance = 0.0, 1.0
    for x in batches:
        x = np.asarray(x, np.float64)
        mean = mean * momentum + x.mean(axis=(0, 1, 2)) * (1 - momentum)
        variance = (variance * momentum
                    + x.var(axis=(0, 1, 2)) * (1 - momentum))
    return mean, variance


@pytest.mark.parametrize("policy",
                         ["float32", "mixed_bfloat16", "mixed_float16"])
def test_moving_statistics_match_numpy_and_stay_float32(policy):
    layer = FusedBatchNormalization(momentum=0.75, dtype=policy)
    rng = np.random.default_rng(6)
    # Channel means and spreads far from the initial 0 and 1, and batches of
    # 2x2x3 = 12 values per channel: the unbiased variance would be 12/11
    # of the biased one, well above the tolerance.
    loc, scale = np.array([5.0, -3.0, 10.0]), np.array([2.0, 0.5, 4.0])
    batches = []
    for _ in range(2):
        x = keras.ops.cast(rng.normal(loc, scale, (2, 2, 3, 3)),
                           layer.compute_dtype)
        out = layer(x, training=True)
        assert out.dtype == layer.compute_dtype
        # The values the layer saw (rounded to the compute dtype).
        batches.append(keras.ops.convert_to_numpy(
            keras.ops.cast(x, "float32")))
    assert layer.moving_mean.dtype == "float32"
    assert layer.moving_variance.dtype == "float32"
    mean, variance = _numpy_moving_statistics(batches, 0.75)
    # Two steps move the statistics by about 0.44 x (batch - initial):
    # several units, against a tolerance of ~1e-4.
    assert np.min(np.abs(mean)) > 1.0
    assert np.min(np.abs(variance - 1.0)) > 0.05
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), variance,
                               rtol=1e-5, atol=1e-5)


def test_layer_checks(tmp_path):
    x = np.random.default_rng(7).normal(size=(8, 4, 5, 3)).astype("float32")
    run_layer_test(FusedBatchNormalization, dict(momentum=0.9, epsilon=1e-5),
                   x, (8, 4, 5, 3), expected_num_trainable_weights=2,
                   expected_num_non_trainable_weights=2, tmp_dir=tmp_path)
