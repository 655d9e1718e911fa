"""--mixed_precision: training computes in float16/bfloat16, every variable
(the frozen bank first) stays float32, the saved model and the export
compute in float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.training import distribute, train_lib
from rmtl_tf.training.config import TrainConfig

COMPUTE = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
# Relative error of one rounding: float16 has 11 significant bits, bfloat16 8.
ROUNDING = {"mixed_float16": 2e-3, "mixed_bfloat16": 2e-2}


def _config(model_dir, **overrides):
    args = dict(model_dir=str(model_dir), tasks=("semseg",),
                backbone="resnet_tiny", head_channels=8,
                low_level_channels=4, image_size=(32, 32), batch_size=2,
                train_steps=2, checkpoint_every=2, bank="random",
                train_examples=2, eval_examples=2, augment=False)
    args.update(overrides)
    return TrainConfig(**args)


def _images():
    return np.random.default_rng(0).uniform(
        0, 255, (2, 32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize("policy", sorted(COMPUTE))
@pytest.mark.parametrize("compute_mode", ["fused", "factorized"])
def test_reparam_conv_computes_in_the_compute_dtype(policy, compute_mode):
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 4)).astype("float32")
    exact = ReparamConv2D(6, 3, tasks=["a"], nff=True,
                          compute_mode=compute_mode, dtype="float32")
    mixed = ReparamConv2D(6, 3, tasks=["a"], nff=True,
                          compute_mode=compute_mode, dtype=policy)
    want = np.asarray(exact(x, task="a"))
    mixed.build(x.shape)
    mixed.set_weights(exact.get_weights())
    got = mixed(x, task="a")
    assert keras.backend.standardize_dtype(got.dtype) == COMPUTE[policy]
    assert {v.dtype for v in mixed.weights} == {"float32"}
    scale = np.max(np.abs(want))
    np.testing.assert_allclose(np.asarray(got, np.float32), want,
                               atol=4 * ROUNDING[policy] * scale)


@pytest.fixture(scope="module")
def float32_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("float32")
    train_lib.train(_config(model_dir), log=lambda *_: None)
    return train_lib.load_model(str(model_dir))


@pytest.mark.parametrize("policy", sorted(COMPUTE))
def test_training_under_a_mixed_policy(tmp_path, float32_run, policy):
    export_dir = tmp_path / "export" if policy == "mixed_float16" else None
    summary = train_lib.train(
        _config(tmp_path / "model", mixed_precision=policy,
                export_dir=export_dir and str(export_dir)),
        log=lambda *_: None)
    assert np.isfinite(summary["tasks"]["semseg"]["final_loss"])
    # The run's policy does not leak into the process.
    assert keras.mixed_precision.global_policy().name == "float32"

    model = train_lib.load_model(str(tmp_path / "model"))
    assert {layer.dtype_policy.name for layer in model.layers} == {
        "float32"}
    assert {v.dtype for v in model.weights} == {"float32"}
    # The bank stayed float32 and frozen: equal to the float32 run's bank,
    # which started from the same (seeded) initialization.
    banks = [layer.bank for layer in model.reparam_layers()]
    reference = [layer.bank for layer in float32_run.reparam_layers()]
    assert banks and all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(banks, reference))
    out = model.predict(_images(), verbose=0)["semseg"]
    assert out.dtype == np.float32 and np.all(np.isfinite(out))

    if export_dir is not None:
        saved = tf.saved_model.load(summary["export"]["saved_model"])
        served = saved.signatures["semseg"](image=tf.constant(_images()))
        assert served["semseg"].dtype == tf.float32
        # The export is the float32 model: same outputs as model.keras.
        probabilities = keras.ops.convert_to_numpy(
            keras.ops.softmax(out, axis=-1))
        np.testing.assert_allclose(served["semseg"].numpy(), probabilities,
                                   atol=1e-5)


def test_float32_copy_of_a_mixed_model(float32_run):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = float32_run.__class__.from_config(float32_run.get_config())
    finally:
        keras.mixed_precision.set_global_policy(previous)
    mixed.set_weights(float32_run.get_weights())
    images = _images()
    assert mixed.predict(images, verbose=0)["semseg"].dtype == np.float16

    copy = distribute.float32_copy(mixed)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    np.testing.assert_array_equal(
        copy.predict(images, verbose=0)["semseg"],
        float32_run.predict(images, verbose=0)["semseg"])
    assert distribute.float32_copy(float32_run) is float32_run


def test_bfloat16_hint_only_on_native_bfloat16_cpus(tmp_path):
    from rmtl_tf.training import distribute  # pylint: disable=import-outside-toplevel
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_bf16 "
                       "avx512f\nmodel name\t: x\n")
    flags = distribute.cpu_flags(str(cpuinfo))
    assert {"amx_bf16", "avx2"} <= flags
    hint = distribute.bfloat16_hint("float32", flags)
    assert "amx_bf16" in hint and "--mixed_precision=mixed_bfloat16" in hint
    assert distribute.bfloat16_hint("mixed_bfloat16", flags) is None
    assert distribute.bfloat16_hint("float32", {"avx2", "fma"}) is None
    assert distribute.cpu_flags(str(tmp_path / "none")) == set()
