"""Tests for `AtrousConv2D`: Keras's `Conv2D`, with dilation as one op."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.layers import conv_ops
from rmtl_tf.layers.atrous_conv2d import AtrousConv2D
from rmtl_tf.models.layer_factory import conv2d_layer
from rmtl_tf.testing import run_layer_test


def _same_padded(x, kernel, rate):
    """`x` in float64, zero-padded for a 'same' dilated conv; the pads."""
    kh, kw, _, _ = kernel.shape
    ph, pw = (kh - 1) * rate // 2, (kw - 1) * rate // 2
    x = np.asarray(x, np.float64)
    return np.pad(x, [(0, 0), (ph, ph), (pw, pw), (0, 0)]), (ph, pw)


def dilated_conv_ref(x, kernel, bias, rate):
    """'same' dilated convolution, stride 1, by explicit taps in numpy."""
    padded, _ = _same_padded(x, kernel, rate)
    kh, kw, _, _ = kernel.shape
    height, width = x.shape[1:3]
    out = np.zeros((*x.shape[:3], kernel.shape[-1])) + bias
    for i in range(kh):
        for j in range(kw):
            window = padded[:, i * rate:i * rate + height,
                            j * rate:j * rate + width]
            out += window @ kernel[i, j].astype(np.float64)
    return out


# Rates below, at and beyond the feature map's size (ASPP at output stride
# 16 sees rates 6, 12, 18 on maps as small as 16x20).
@pytest.mark.parametrize("rate,size", [(1, (7, 9)), (2, (7, 9)),
                                       (6, (8, 10)), (12, (8, 10)),
                                       (18, (16, 20))])
def test_matches_numpy_taps_and_keras_conv2d(rate, size):
    rng = np.random.default_rng(rate)
    x = rng.normal(size=(2, *size, 5)).astype("float32")
    layer = AtrousConv2D(4, 3, padding="same", dilation_rate=rate,
                         use_bias=True)
    reference = keras.layers.Conv2D(4, 3, padding="same", dilation_rate=rate,
                                    use_bias=True)
    layer.build(x.shape)
    reference.build(x.shape)
    kernel = rng.normal(size=(3, 3, 5, 4)).astype("float32")
    bias = rng.normal(size=(4,)).astype("float32")
    layer.set_weights([kernel, bias])
    reference.set_weights([kernel, bias])
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, dilated_conv_ref(x, kernel, bias, rate),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(reference(x)),
                               rtol=1e-5, atol=1e-5)


def dilated_conv_grads_ref(x, kernel, rate, upstream):
    """Gradients of sum(upstream * conv(x, kernel)) for `dilated_conv_ref`."""
    padded, (ph, pw) = _same_padded(x, kernel, rate)
    kh, kw, _, _ = kernel.shape
    height, width = x.shape[1:3]
    grad_padded = np.zeros_like(padded)
    grad_kernel = np.zeros(kernel.shape)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * rate, i * rate + height)
            cols = slice(j * rate, j * rate + width)
            grad_kernel[i, j] = np.einsum("nhwc,nhwo->co",
                                          padded[:, rows, cols], upstream)
            grad_padded[:, rows, cols] += upstream @ kernel[i, j].T
    return grad_padded[:, ph:ph + height, pw:pw + width], grad_kernel


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("rate", [2, 6])
def test_gradients_match_numpy_with_and_without_dilated_grad_kernels(
        monkeypatch, native, rate):
    # TensorFlow's Eigen CPU kernels (oneDNN off: CPUs without AVX-512)
    # have no dilated gradient ops; there the layer differentiates through
    # space-to-batch. Both paths must give the same gradients.
    if native:
        if not conv_ops._dilated_gradients_supported("SAME"):
            pytest.skip("this TensorFlow build has no dilated gradient ops")
    else:
        monkeypatch.setitem(conv_ops._DILATED_GRADIENTS,
                            (False, "float32"), False)
    rng = np.random.default_rng(rate)
    x = tf.constant(rng.normal(size=(2, 9, 11, 3)).astype("float32"))
    kernel = tf.Variable(rng.normal(size=(3, 3, 3, 4)).astype("float32"))
    upstream = rng.normal(size=(2, 9, 11, 4)).astype("float32")

    @tf.function
    def grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv_ops.bank_conv(x, kernel, (1, 1), "same", (rate, rate))
            loss = tf.reduce_sum(y * upstream)
        return tape.gradient(loss, [x, kernel])

    grad_x, grad_kernel = grads(x)
    ref_x, ref_kernel = dilated_conv_grads_ref(
        x.numpy(), kernel.numpy().astype(np.float64), rate, upstream)
    np.testing.assert_allclose(grad_x, ref_x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad_kernel, ref_kernel, rtol=1e-4, atol=1e-3)


def test_dilated_graph_has_no_space_to_batch():
    layer = AtrousConv2D(4, 3, padding="same", dilation_rate=6)
    reference = keras.layers.Conv2D(4, 3, padding="same", dilation_rate=6)
    spec = tf.TensorSpec([1, 16, 20, 3], tf.float32)
    layer.build(spec.shape)
    reference.build(spec.shape)

    def op_types(fn):
        graph = tf.function(fn).get_concrete_function(spec).graph
        return {op.type for op in graph.get_operations()}

    ours, keras_ops = op_types(layer), op_types(reference)
    assert "SpaceToBatchND" in keras_ops  # Why the layer exists.
    assert "SpaceToBatchND" not in ours and "Conv2D" in ours


def test_layer_checks(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 3)).astype("float32")
    run_layer_test(AtrousConv2D,
                   dict(filters=6, kernel_size=3, padding="same",
                        dilation_rate=2),
                   x, (2, 12, 12, 6), expected_num_trainable_weights=2,
                   tmp_dir=tmp_path)


def test_rejects_channels_first():
    with pytest.raises(ValueError, match="channels_first"):
        AtrousConv2D(4, 3, data_format="channels_first")


@pytest.mark.parametrize("rate,cls", [(1, keras.layers.Conv2D),
                                      ((1, 1), keras.layers.Conv2D),
                                      (2, AtrousConv2D),
                                      ((1, 3), AtrousConv2D)])
def test_factory_uses_atrous_only_when_dilated(rate, cls):
    assert type(conv2d_layer(4, 3, dilation_rate=rate)) is cls
