"""--mixed_precision: training computes in float16/bfloat16, every variable
(the frozen bank first) stays float32, the saved model and the export
compute in float32; the weights do move, by the float32 run's update, and
mixed_float16 scales the loss so that small gradients do not underflow.

The training runs here scale the task loss by `LOSS_SCALE_DOWN` = 2^-16 and
the learning rate up by as much (no momentum, no weight decay): in float32
the same update as the plain run, but each gradient at the float16 logits
is then below 1e-8, which float16 (smallest subnormal 6e-8) rounds to 0.
Only a loss-scaled step (Keras's `LossScaleOptimizer`, initial scale 2^15)
moves the weights; bfloat16 has float32's exponent range."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models.multitask_model import MultiTaskModel
from rmtl_tf.tasks import registry
from rmtl_tf.training import distribute, precision, train_lib
from rmtl_tf.training.config import TrainConfig

COMPUTE = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
# Relative error of one rounding: float16 has 11 significant bits, bfloat16 8.
ROUNDING = {"mixed_float16": 2e-3, "mixed_bfloat16": 2e-2}
LOSS_SCALE_DOWN = 2.0 ** -16
# The mixed run's update against the float32 run's: minimum cosine and
# maximum |norm ratio - 1| (measured: 0.9997 and 0.008 in float16, 0.96
# and 0.09 in bfloat16; without loss scaling float16 does not move at all).
UPDATE_AGREEMENT = {"mixed_float16": (0.99, 0.05),
                    "mixed_bfloat16": (0.9, 0.25)}


def _config(model_dir, **overrides):
    args = dict(model_dir=str(model_dir), tasks=("semseg",),
                backbone="resnet_tiny", head_channels=8,
                low_level_channels=4, image_size=(32, 32), batch_size=2,
                train_steps=2, checkpoint_every=2, bank="random",
                train_examples=2, eval_examples=2, augment=False,
                learning_rate=0.005 / LOSS_SCALE_DOWN, momentum=0.0,
                weight_decay=0.0)
    args.update(overrides)
    return TrainConfig(**args)


def _train(config, logs=None, cpu_flags=None):
    """`train_lib.train(config)` with the task loss scaled down (see the
    module doc). Returns (summary, the compiled task model, its trainable
    weights before training {path: array}, and after). `logs`: a list the
    log lines go to; `cpu_flags`: the CPU the run believes it is on."""
    get_task, task_model = registry.get_task, MultiTaskModel.task_model
    recorded = []

    def scaled_down(name):
        spec = get_task(name)
        return dataclasses.replace(
            spec, loss_weight=spec.loss_weight * LOSS_SCALE_DOWN)

    def recording_task_model(self, tasks):
        model = task_model(self, tasks)
        recorded.append((model, {v.path: np.array(v)
                                 for v in self.trainable_variables}))
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "get_task", scaled_down)
        patch.setattr(MultiTaskModel, "task_model", recording_task_model)
        if cpu_flags is not None:
            patch.setattr(precision, "cpu_flags", lambda: set(cpu_flags))
        summary = train_lib.train(
            config, log=(lambda *_: None) if logs is None else logs.append)
    # The task model train_task compiled and trained.
    (model, before), = [(m, b) for m, b in recorded
                        if getattr(m, "optimizer", None) is not None]
    after = {v.path: np.array(v) for v in model.trainable_variables}
    assert sorted(after) == sorted(before) and after
    return summary, model, before, after


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
def float32_training(tmp_path_factory):
    """The float32 run: (its saved model, its update {path: array})."""
    model_dir = tmp_path_factory.mktemp("float32")
    _, _, before, after = _train(_config(model_dir))
    update = {k: after[k] - before[k] for k in before}
    return train_lib.load_model(str(model_dir)), update


@pytest.fixture(scope="module")
def float32_run(float32_training):
    return float32_training[0]


@pytest.mark.parametrize("policy", sorted(COMPUTE))
def test_training_under_a_mixed_policy(tmp_path, float32_training, policy):
    float32_run, float32_update = float32_training
    export_dir = tmp_path / "export" if policy == "mixed_float16" else None
    logs = []
    summary, task_model, before, after = _train(
        _config(tmp_path / "model", mixed_precision=policy,
                export_dir=export_dir and str(export_dir)),
        logs, cpu_flags={"sse2", "avx2", "fma"})
    # On an x86 CPU without native bfloat16 the run says it is emulated.
    emulated = [line for line in logs if "no native bfloat16" in line]
    assert len(emulated) == (policy == "mixed_bfloat16"), logs
    assert np.isfinite(summary["tasks"]["semseg"]["final_loss"])
    # mixed_float16 trains with loss scaling, bfloat16 needs none.
    optimizer = task_model.optimizer
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16"), type(optimizer)
    if scaled:
        assert float(optimizer.dynamic_scale.numpy()) >= 2.0 ** 10
    # The weights moved, every one the float32 run moved, by about the
    # float32 run's update (the same initial weights and batches).
    assert sorted(before) == sorted(float32_update)
    update = {k: after[k] - before[k] for k in before}
    not_moved = sorted(k for k in update if np.any(float32_update[k])
                       and not np.any(update[k]))
    assert not not_moved, not_moved
    got = np.concatenate([update[k].ravel() for k in sorted(update)])
    want = np.concatenate([float32_update[k].ravel()
                           for k in sorted(update)])
    cosine = got @ want / (np.linalg.norm(got) * np.linalg.norm(want))
    ratio = np.linalg.norm(got) / np.linalg.norm(want)
    min_cosine, max_ratio_error = UPDATE_AGREEMENT[policy]
    assert cosine > min_cosine and abs(ratio - 1) < max_ratio_error, (
        cosine, ratio)
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
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_bf16 "
                       "avx512f\nmodel name\t: x\n")
    flags = precision.cpu_flags(str(cpuinfo))
    assert {"amx_bf16", "avx2"} <= flags
    hint = precision.bfloat16_hint("float32", flags)
    assert "amx_bf16" in hint and "--mixed_precision=mixed_bfloat16" in hint
    assert precision.bfloat16_hint("mixed_bfloat16", flags) is None
    assert precision.bfloat16_hint("float32", {"avx2", "fma"}) is None
    assert precision.cpu_flags(str(tmp_path / "none")) == set()


def test_emulated_bfloat16_is_called_out():
    """mixed_bfloat16 on an x86 CPU without native bfloat16 and without a
    GPU: the run is told it is emulated (14x slower at the paper's crop)."""
    emulated = {"sse2", "avx2", "fma"}
    warning = precision.bfloat16_hint("mixed_bfloat16", emulated)
    assert "no native bfloat16" in warning and "14x slower" in warning
    assert "--mixed_precision=float32" in warning
    assert precision.bfloat16_hint("float32", emulated) is None
    assert precision.bfloat16_hint("mixed_bfloat16", emulated,
                                   accelerator=True) is None  # A GPU runs it.
    assert precision.bfloat16_hint("mixed_bfloat16", set()) is None  # Unknown.
    assert precision.bfloat16_hint("mixed_bfloat16",
                                   emulated | {"avx512_bf16"}) is None
