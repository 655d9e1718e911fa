"""AdapterConv2D (residual adapters baseline) against a numpy reference."""

import numpy as np
import pytest

from rmtl_tf.layers.adapter_conv2d import AdapterConv2D
from rmtl_tf.testing import run_layer_test


def conv_np(x, w, stride, pad):
    x = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    k = w.shape[0]
    out_h = (x.shape[1] - k) // stride + 1
    out_w = (x.shape[2] - k) // stride + 1
    y = np.zeros((x.shape[0], out_h, out_w, w.shape[3]))
    for i in range(k):
        for j in range(k):
            patch = x[:, i:i + stride * out_h:stride, j:j + stride * out_w:
                      stride, :]
            y += patch @ w[i, j]
    return y


@pytest.mark.parametrize("mode", ["series", "parallel"])
@pytest.mark.parametrize("stride", [1, 2])
def test_matches_numpy(mode, stride):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 9, 3)).astype("float32")
    layer = AdapterConv2D(4, 3, strides=stride, padding=1, mode=mode,
                          tasks=["a", "b"])
    layer(x, task="a")
    for v in layer.weights:
        if "variance" in v.name:
            v.assign(rng.uniform(0.5, 2, v.shape).astype("float32"))
        else:
            v.assign(rng.normal(size=v.shape).astype("float32"))
    bank = layer.bank.numpy()
    z = conv_np(x, bank, stride, 1)
    adapter = {k: v.numpy() for k, v in layer.adapters["a"].items()}
    if mode == "series":
        normalized = ((z - adapter["moving_mean"])
                      / np.sqrt(adapter["moving_variance"] + 1e-5)
                      * adapter["gamma"] + adapter["beta"])
        expected = z + normalized @ adapter["kernel"]
    else:
        expected = z + x[:, ::stride, ::stride, :] @ adapter["kernel"]
    got = np.asarray(layer(x, task="a", training=False))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_zero_adapter_is_the_bank_and_bank_is_frozen():
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 3)).astype("float32")
    layer = AdapterConv2D(5, 3, tasks=["a"], mode="series")
    y = np.asarray(layer(x, task="a"))
    np.testing.assert_allclose(y, conv_np(x, layer.bank.numpy(), 1, 1),
                               atol=1e-5)
    assert layer.bank in layer.non_trainable_weights
    assert {v.name for v in layer.task_statistics("a")} == {
        "adapter_a_bn_moving_mean", "adapter_a_bn_moving_variance"}


# Series: the bank; per task a kernel, gamma and beta (trainable) and the
# moving statistics. Parallel: the bank and per task a kernel.
@pytest.mark.parametrize("init_kwargs,output_shape,counts", [
    (dict(filters=4, kernel_size=3, padding=1, tasks=["a"], mode="series",
          bn_momentum=0.8, bn_epsilon=1e-3), (2, 8, 8, 4), (3, 3)),
    (dict(filters=4, kernel_size=3, strides=2, padding=1, tasks=["a"],
          mode="parallel"), (2, 4, 4, 4), (1, 1)),
], ids=["series", "parallel"])
def test_layer_checks(tmp_path, init_kwargs, output_shape, counts):
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
    run_layer_test(AdapterConv2D, init_kwargs, x, output_shape,
                   call_kwargs={"task": "a"},
                   expected_num_trainable_weights=counts[0],
                   expected_num_non_trainable_weights=counts[1],
                   tmp_dir=tmp_path)


def test_task_and_mode_errors():
    layer = AdapterConv2D(4, 3, tasks=["a"], mode="parallel", strides=2,
                          padding=1)
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
    layer(x, task="a")
    with pytest.raises(ValueError, match="already exists"):
        layer.add_task("a")
    with pytest.raises(ValueError, match="Unknown task 'c'"):
        layer(x, task="c")
    with pytest.raises(ValueError, match="Received: mode='both'"):
        AdapterConv2D(4, 3, mode="both")
