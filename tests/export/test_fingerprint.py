"""Tests of `rmtl_tf/export/fingerprint.py`: the bank fingerprint names
the bank and nothing else; task weights are keyed the same in any model.

Properties, not a second implementation of the hash: fingerprints survive
a .keras save/load and a fresh interpreter, change with any one weight
moved by one ulp, and do not depend on the order variables were created
or layers are listed in."""

import zlib

import keras
import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.export import export_metadata, fingerprint

from conftest import SMALL, build, randomize_task

TASKS = ("semseg", "depth")


@pytest.fixture(scope="module")
def model():
    return build(list(TASKS), SMALL)


def _fingerprints(model):
    return {"bank": fingerprint.bank_fingerprint(model),
            **{task: fingerprint.task_fingerprint(model, task)
               for task in model.tasks}}


def _known_weights(model):
    """Sets every weight of `model` to exact values fixed by its path alone
    (multiples of 1/32): the same in any process, Keras version or
    initializer."""
    for variable in model.weights:
        offset = zlib.crc32(variable.path.encode()) % 97
        steps = np.arange(int(np.prod(variable.shape))) * 7 + offset
        variable.assign(((steps % 97 - 48) / 32).astype(np.float32)
                        .reshape(variable.shape))
    return model


# The fingerprints of `_known_weights(build(TASKS, SMALL))`, computed in a
# fresh interpreter with PYTHONHASHSEED=12345: nothing of the process (object
# ids, string hashing, dict or set order) enters a digest. They also pin the
# format: exports and task packs store these digests, so a change of the
# hashed bytes or of the layer names breaks this test on purpose.
FRESH_INTERPRETER = {
    "bank":
        "5fe1aa07b5c321ccfb79287180256859ae9a26abfaa72cbe6f87c4b48ba71031",
    "semseg":
        "e0861b819f436008a59e492ce79ffe9246e9d0f8821c0d0d00b527d4c5d1a188",
    "depth":
        "7368c01191634fdf424f7a3765b8961e8e703c4c26df04de6c9adcba9f663131",
}


@pytest.fixture(scope="module")
def known():
    return _known_weights(build(list(TASKS), SMALL))


def test_fingerprints_equal_a_fresh_interpreters(known):
    assert _fingerprints(known) == FRESH_INTERPRETER


def test_fingerprints_survive_a_keras_save_and_load(known, tmp_path):
    want = _fingerprints(known)
    path = str(tmp_path / "model.keras")
    known.save(path)
    loaded = keras.models.load_model(path)
    assert loaded is not known
    assert _fingerprints(loaded) == want


def _picks(variables):
    """First, middle and last of `variables`."""
    return [variables[0], variables[len(variables) // 2], variables[-1]]


def test_one_ulp_in_any_weight_changes_exactly_its_fingerprint(model):
    before = _fingerprints(model)
    cases = [("bank", v) for v in _picks(model.bank_variables())]
    for task in TASKS:
        variables = model.task_variables(task)
        named = {v.path.rsplit("/", 1)[-1]: v for v in variables}
        cases += [(task, v) for v in _picks(variables)]
        cases += [(task, named[n]) for n in ("moving_variance", "bias",
                                             "kernel") if n in named]
    kinds = {v.path.rsplit("/", 1)[-1] for _, v in cases}
    assert {"bank", "moving_variance", "bias", "kernel"} <= kinds, kinds
    for owner, variable in cases:
        original = np.array(variable.numpy())
        for index in (0, original.size // 2, original.size - 1):
            value = original.copy()
            flat = value.reshape(-1)
            flat[index] = np.nextafter(flat[index], np.float32(np.inf))
            variable.assign(value)
            try:
                after = _fingerprints(model)
            finally:
                variable.assign(original)
            changed = {k for k in before if after[k] != before[k]}
            assert changed == {owner}, (variable.path, index, changed)
    assert _fingerprints(model) == before  # Restored: the same again.


class _ReversedLayers:
    """`model` with its layers listed in reverse order."""

    def __init__(self, model):
        self._model = model
        self.layers = list(reversed(model.layers))

    def __getattr__(self, name):
        return getattr(self._model, name)


def test_fingerprints_ignore_creation_and_iteration_order(model):
    want = _fingerprints(model)
    assert _fingerprints(_ReversedLayers(model)) == want
    # The tasks' variables created in the other order (and other random
    # values), then given this model's values, by key.
    other = build(list(reversed(TASKS)), SMALL, seed=1)
    assert other.tasks != model.tasks
    assert _fingerprints(other) != want
    banks = {layer.name: layer.bank for layer in other.bank_layers()}
    for layer in model.bank_layers():
        banks[layer.name].assign(layer.bank.numpy())
    for task in TASKS:
        theirs = fingerprint.task_variables_by_key(other, task)
        for key, variable in fingerprint.task_variables_by_key(
                model, task).items():
            theirs[key].assign(variable.numpy())
    assert _fingerprints(other) == want


def test_bank_fingerprint_ignores_tasks_and_sees_the_bank(model):
    before = fingerprint.bank_fingerprint(model)
    randomize_task(model, "depth", seed=7)  # Task weights only.
    assert fingerprint.bank_fingerprint(model) == before
    other = build(["semseg"], SMALL)  # Same seed, other tasks.
    for mine, theirs in zip(model.bank_variables(), other.bank_variables()):
        theirs.assign(mine.numpy())
    assert fingerprint.bank_fingerprint(other) == before
    bank = other.bank_variables()[3]
    value = bank.numpy()
    value.flat[0] += 1e-3
    bank.assign(value)
    assert fingerprint.bank_fingerprint(other) != before


def test_adding_a_task_keeps_the_bank_fingerprint(model):
    before = fingerprint.bank_fingerprint(model)
    semseg = fingerprint.task_fingerprint(model, "semseg")
    bigger = rmtl_tf.add_task(model, "edge")
    assert fingerprint.bank_fingerprint(bigger) == before
    assert fingerprint.task_fingerprint(bigger, "semseg") == semseg


def test_task_weights_are_every_task_variable(model):
    weights = fingerprint.task_weights(model, "depth")
    assert len(weights) == len(model.task_variables("depth"))
    assert sum(v.size for v in weights.values()) == sum(
        int(np.prod(v.shape)) for v in model.task_variables("depth"))
    assert "conv1/modulator_depth_v" in weights
    assert "bn1_depth/moving_variance" in weights
    assert not any("semseg" in key for key in weights)
    assert fingerprint.task_fingerprint(model, "depth") != \
        fingerprint.task_fingerprint(model, "semseg")


def test_unknown_task(model):
    with pytest.raises(ValueError, match="Unknown task 'sky'"):
        fingerprint.task_weights(model, "sky")


def test_adapter_banks_are_fingerprinted_and_baselines_have_none():
    adapters = build(["semseg"], {**SMALL, "architecture": "ra_parallel"})
    assert fingerprint.has_bank(adapters)
    assert len(fingerprint.bank_layers(adapters)) == len(
        adapters.bank_variables())
    assert len(fingerprint.task_weights(adapters, "semseg")) == len(
        adapters.task_variables("semseg"))
    baseline = build(["semseg"], {**SMALL, "architecture": "conv"})
    assert not fingerprint.has_bank(baseline)
    with pytest.raises(ValueError, match="has no frozen bank "
                                         r"\(architecture 'conv'\)"):
        fingerprint.bank_fingerprint(baseline)
    metadata = export_metadata.build(baseline, "m", 1, "multitask",
                                     (32, 32))
    assert metadata["bank_fingerprint"] is None
    assert sorted(metadata["task_fingerprints"]) == ["semseg"]
