"""Helpers for tests and benchmarks of rmtl_tf layers and models."""

import contextlib
import inspect
import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf


def perturb_task_weights(model, task, seed):
    """Adds seeded noise (std 0.05) to `task`'s own weights of `model`;
    moving variances stay positive.

    Fresh task weights are equal in every task (identity modulators,
    BatchNorm 1/0), and the TFLite converter merges equal constant buffers:
    distinct, non-identity weights keep size and fingerprint measurements
    honest.
    """
    rng = np.random.default_rng(seed)
    for variable in model.task_variables(task):
        value = variable.numpy() + 0.05 * rng.standard_normal(
            variable.shape).astype(np.float32)
        if "moving_variance" in variable.path:
            value = np.abs(value) + 1e-3
        variable.assign(value)


def _shapes(data):
    if isinstance(data, (list, tuple)):
        return [tuple(x.shape) for x in data]
    return tuple(data.shape)


def _symbolic_inputs(data):
    if isinstance(data, (list, tuple)):
        return [keras.Input(x.shape[1:], dtype=x.dtype) for x in data]
    return keras.Input(data.shape[1:], dtype=data.dtype)


def _values(variables):
    return {v.path: keras.ops.convert_to_numpy(v) for v in variables}


def _randomize(variables, seed=0):
    """Random values, so that equal outputs mean equal weights (variances
    stay positive)."""
    rng = np.random.default_rng(seed)
    for v in variables:
        value = rng.normal(size=v.shape).astype(np.float32)
        if "variance" in v.path:
            value = np.abs(value) + 0.5
        v.assign(value)


def _check_config(cls, layer, init_kwargs):
    config = layer.get_config()
    signature = inspect.signature(cls.__init__).parameters.values()
    arguments = {p.name for p in signature if p.name != "self"
                 and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    missing = sorted((arguments | set(init_kwargs)) - set(config))
    assert not missing, f"get_config() of {cls.__name__} lacks {missing}"
    restored = cls.from_config(config)
    assert type(restored) is cls
    assert restored.get_config() == config
    # Through JSON too (tuples become lists on the way).
    revived = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(layer))))
    assert type(revived) is cls
    assert revived.get_config() == config
    return config


def _check_save_load(layer, config, input_data, call_kwargs, tmp_dir):
    """A functional model around `layer`, saved and loaded as `.keras`."""
    inputs = _symbolic_inputs(input_data)
    model = keras.Model(inputs, layer(inputs, **call_kwargs))
    _randomize(model.weights)
    path = os.path.join(tmp_dir, f"{layer.name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    loaded_layer = loaded.get_layer(layer.name)
    assert type(loaded_layer) is type(layer)
    assert loaded_layer.get_config() == config
    expected, actual = _values(model.weights), _values(loaded.weights)
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(input_data, training=False)),
        keras.ops.convert_to_numpy(model(input_data, training=False)))
    return model


def _check_training_step(model, input_data, output_shape):
    """One SGD step on a mean squared error. The step changes every
    trainable weight and no other; non-trainable weights (banks) do not
    change, except moving statistics, which the forward pass updates."""
    before = _values(model.weights)
    target = np.random.default_rng(1).normal(size=output_shape)
    with tf.GradientTape() as tape:
        output = model(input_data, training=True)
        loss = keras.ops.mean(keras.ops.square(
            keras.ops.cast(output, "float32") - target.astype(np.float32)))
    grads = tape.gradient(loss, model.trainable_variables)
    after_forward = _values(model.non_trainable_weights)
    assert all(g is not None for g in grads), (
        "a trainable weight has no gradient")
    if grads:
        keras.optimizers.SGD(0.1).apply_gradients(
            zip(grads, model.trainable_variables))
    for v in model.trainable_weights:
        assert not np.array_equal(keras.ops.convert_to_numpy(v),
                                  before[v.path]), f"{v.path} did not train"
    for v in model.non_trainable_weights:
        value = keras.ops.convert_to_numpy(v)
        np.testing.assert_array_equal(value, after_forward[v.path],
                                      err_msg=f"the step changed {v.path}")
        if "moving_" not in v.name:
            np.testing.assert_array_equal(value, before[v.path],
                                          err_msg=f"{v.path} changed")


def _check_precision(cls, init_kwargs, input_data, call_kwargs):
    for policy in ("mixed_float16", "mixed_bfloat16"):
        layer = cls(**init_kwargs, dtype=policy)
        output = layer(input_data, **call_kwargs)
        compute_dtype = keras.mixed_precision.Policy(policy).compute_dtype
        dtype = keras.backend.standardize_dtype(output.dtype)
        assert dtype == compute_dtype, (policy, dtype)
        for v in layer.weights:
            assert v.dtype == "float32", (policy, v.path, v.dtype)


def run_layer_test(cls, init_kwargs, input_data, expected_output_shape, *,
                   call_kwargs=None, expected_num_trainable_weights=0,
                   expected_num_non_trainable_weights=0, tmp_dir=None,
                   run_training_check=True, run_precision_checks=True):
    """Runs the checks every custom layer of rmtl_tf must pass.

    The registered name is `rmtl_tf>ClassName`; `get_config()` lists every
    constructor argument and survives `from_config` and JSON serialization;
    the eager and symbolic calls and `compute_output_shape` give
    `expected_output_shape`; the weights count as expected; a `.keras` file
    of a model around the layer loads (`safe_mode=True`) with bit-identical
    weights and outputs; one SGD step trains exactly the trainable weights
    (run_training_check); under `mixed_float16` and `mixed_bfloat16` the
    output has the compute dtype and every variable is float32
    (run_precision_checks).

    Args:
        cls: the layer class.
        init_kwargs: constructor arguments.
        input_data: a numpy array, or a list of them for layers taking one.
        expected_output_shape: the output shape for `input_data`.
        call_kwargs: keyword arguments of every call, e.g. `{"task": "a"}`.
        expected_num_trainable_weights: `len(layer.trainable_weights)`.
        expected_num_non_trainable_weights: the same for non-trainable ones.
        tmp_dir: where to write the `.keras` file (a temporary directory
            when None).
    """
    call_kwargs = dict(call_kwargs or {})
    expected_output_shape = tuple(expected_output_shape)
    name = keras.saving.get_registered_name(cls)
    assert name == f"rmtl_tf>{cls.__name__}", name

    layer = cls(**init_kwargs)
    config = _check_config(cls, layer, init_kwargs)

    output = layer(input_data, **call_kwargs)
    assert tuple(output.shape) == expected_output_shape, output.shape
    assert tuple(layer.compute_output_shape(_shapes(input_data))) == (
        expected_output_shape)
    symbolic = layer(_symbolic_inputs(input_data), **call_kwargs)
    assert tuple(symbolic.shape) == (None, *expected_output_shape[1:])
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert (len(layer.non_trainable_weights)
            == expected_num_non_trainable_weights)

    with contextlib.ExitStack() as stack:
        if tmp_dir is None:
            tmp_dir = stack.enter_context(tempfile.TemporaryDirectory())
        model = _check_save_load(layer, config, input_data, call_kwargs,
                                 str(tmp_dir))
    if run_training_check:
        _check_training_step(model, input_data, expected_output_shape)
    if run_precision_checks:
        _check_precision(cls, init_kwargs, input_data, call_kwargs)
