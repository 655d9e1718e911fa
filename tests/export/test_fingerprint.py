"""Tests of `rmtl_tf/export/fingerprint.py`: the bank fingerprint names
the bank and nothing else; task weights are keyed the same in any model."""

import hashlib

import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.export import export_metadata, fingerprint

from conftest import SMALL, build, randomize_task


@pytest.fixture(scope="module")
def model():
    return build(["semseg", "depth"], SMALL)


def test_bank_fingerprint_is_sha256_of_names_and_bytes(model):
    expected = hashlib.sha256()
    for layer in sorted(model.reparam_layers(), key=lambda l: l.name):
        value = layer.bank.numpy()
        expected.update(f"{layer.name}\0{value.dtype.str}\0{value.shape}\0"
                        .encode())
        expected.update(value.tobytes())
    assert fingerprint.bank_fingerprint(model) == expected.hexdigest()


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
