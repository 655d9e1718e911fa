"""Atomic checkpoints: save/restore round trip, retention, interruptions."""

import os

import keras
import numpy as np
import pytest

from rmtl_tf import build_model
from rmtl_tf.training import checkpoint

TINY = dict(num_classes={"semseg": 4}, head_channels=8, low_level_channels=4,
            image_size=(32, 32))


def _trained(seed):
    keras.utils.set_random_seed(seed)
    model = build_model("resnet_tiny", ["semseg"], **TINY)
    model.set_trainable_tasks(["semseg"])
    task_model = model.task_model(["semseg"])
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    task_model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    y = rng.normal(size=(2, 32, 32, 4)).astype("float32")
    task_model.fit(x, {"semseg": y}, epochs=1, verbose=0)
    return model, optimizer


def _values(variables):
    return [np.array(v) for v in variables]


def test_round_trip_restores_weights_and_optimizer(tmp_path):
    model, optimizer = _trained(0)
    checkpoint.save(str(tmp_path), model, optimizer, 7)
    other, other_opt = _trained(1)
    assert not all(np.array_equal(a, b) for a, b in zip(
        _values(model.weights), _values(other.weights)))
    step = checkpoint.restore(str(tmp_path), other, other_opt)
    assert step == 7
    for a, b in zip(_values(model.weights), _values(other.weights)):
        assert np.array_equal(a, b)
    for a, b in zip(_values(optimizer.variables),
                    _values(other_opt.variables)):
        assert np.array_equal(a, b)


def test_keeps_the_last_two_and_ignores_partial_files(tmp_path):
    model, optimizer = _trained(0)
    for step in (2, 4, 6):
        checkpoint.save(str(tmp_path), model, optimizer, step)
    names = sorted(os.listdir(tmp_path))
    assert "ckpt-2.weights.npz" not in names
    assert {"ckpt-4.weights.npz", "ckpt-6.weights.npz",
            "ckpt-6.optimizer.npz", "checkpoint.json"} <= set(names)
    # A run killed while writing step 8 leaves only a temporary file behind:
    # the last complete checkpoint is still the one in force.
    with open(tmp_path / ".tmp-abc-ckpt-8.weights.npz", "wb") as f:
        f.write(b"half a file")
    assert checkpoint.latest(str(tmp_path))["step"] == 6


def test_no_checkpoint_means_step_zero(tmp_path):
    model, optimizer = _trained(0)
    assert checkpoint.restore(str(tmp_path), model, optimizer) == 0


def test_other_architecture_is_a_clear_error(tmp_path):
    model, optimizer = _trained(0)
    checkpoint.save(str(tmp_path), model, optimizer, 2)
    other = build_model("resnet_tiny", ["semseg", "depth"], **TINY)
    with pytest.raises(ValueError, match=r"tasks: checkpoint has \['semseg'\]"
                       r", model has \['semseg', 'depth'\]"):
        checkpoint.restore(str(tmp_path), other,
                           keras.optimizers.SGD(0.01, momentum=0.9))


def test_variables_are_checked_by_name_and_shape(tmp_path):
    model, optimizer = _trained(0)
    checkpoint.save(str(tmp_path), model, optimizer, 2)
    state = checkpoint.latest(str(tmp_path))
    # Same config claimed, other variables: e.g. a hand-edited checkpoint.
    other = build_model("resnet_tiny", ["semseg"], **{**TINY,
                                                     "head_channels": 4})
    state["model_config"] = checkpoint._jsonable(other.get_config())  # pylint: disable=protected-access
    checkpoint.atomic_write_json(str(tmp_path / "checkpoint.json"), state)
    with pytest.raises(ValueError, match="does not fit this model"):
        checkpoint.restore(str(tmp_path), other,
                           keras.optimizers.SGD(0.01, momentum=0.9))


def test_atomic_json_replaces_whole_file(tmp_path):
    path = str(tmp_path / "state.json")
    checkpoint.atomic_write_json(path, {"a": 1})
    checkpoint.atomic_write_json(path, {"b": 2})
    assert checkpoint.read_json(path) == {"b": 2}
    assert os.listdir(tmp_path) == ["state.json"]
