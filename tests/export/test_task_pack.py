"""Tests of `rmtl_tf/export/task_pack.py`: a task moves between models on
the same bank, bit for bit, and refuses any other bank."""

import os

import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.export import fingerprint, task_pack

from conftest import SMALL, build


def _copy_bank(source, target):
    for mine, theirs in zip(source.bank_variables(),
                            target.bank_variables()):
        theirs.assign(mine.numpy())


@pytest.fixture(scope="module")
def trained():
    """A model with semseg and depth, and depth's pack on disk."""
    return build(["semseg", "depth"], SMALL, seed=0)


@pytest.fixture()
def pack_path(trained, tmp_path):
    return task_pack.save_pack(trained, "depth", str(tmp_path / "depth.npz"))


def _outputs(model, task, image):
    return np.asarray(model.task_model([task])(image, training=False)[task])


def test_pack_round_trip(trained, pack_path):
    pack = task_pack.load_pack(pack_path)
    assert pack.task == "depth"
    assert pack.bank_fingerprint == fingerprint.bank_fingerprint(trained)
    expected = fingerprint.task_weights(trained, "depth")
    assert sorted(pack.weights) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(pack.weights[key], value)
    assert pack.architecture["backbone"] == "resnet_tiny"


def test_install_adds_the_task_bit_identical(trained, pack_path, image):
    other = build(["semseg"], SMALL, seed=1)  # Its own semseg weights.
    _copy_bank(trained, other)
    semseg_before = _outputs(other, "semseg", image)
    installed = task_pack.install_pack(other, pack_path)
    # A new model (as `rmtl_tf.add_task`), the same layers.
    assert installed is not other
    assert isinstance(installed, rmtl_tf.MultiTaskModel)
    assert installed.tasks == ["semseg", "depth"]
    np.testing.assert_array_equal(_outputs(installed, "depth", image),
                                  _outputs(trained, "depth", image))
    np.testing.assert_array_equal(_outputs(installed, "semseg", image),
                                  semseg_before)


def test_install_on_another_bank_fails(pack_path):
    other = build(["semseg"], SMALL, seed=3)  # Another bank.
    with pytest.raises(ValueError, match=r"trained on bank [0-9a-f]{12}, "
                                         r"this model's bank is [0-9a-f]{12}"):
        task_pack.install_pack(other, pack_path)
    assert other.tasks == ["semseg"]


def test_install_on_another_architecture_fails(trained, pack_path):
    other = build(["semseg"], {**SMALL, "head_channels": 8})
    _copy_bank(trained, other)  # Same bank, other head width.
    with pytest.raises(ValueError, match="head_channels: pack has 16, "
                                         "model has 8"):
        task_pack.install_pack(other, pack_path)


def test_existing_task_needs_overwrite(trained, pack_path, image):
    other = build(["semseg", "depth"], SMALL, seed=2)
    _copy_bank(trained, other)
    with pytest.raises(ValueError, match="already has task 'depth'"):
        task_pack.install_pack(other, pack_path)
    assert task_pack.install_pack(other, pack_path, overwrite=True) is other
    np.testing.assert_array_equal(_outputs(other, "depth", image),
                                  _outputs(trained, "depth", image))


def test_not_a_pack(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="not an rmtl_tf task pack"):
        task_pack.load_pack(str(path))
    with pytest.raises(FileNotFoundError):
        task_pack.load_pack(str(tmp_path / "missing.npz"))


def test_pack_is_small_against_the_model(trained, pack_path, tmp_path):
    """The pack is the task's weights and a little metadata: here the
    bank is small (resnet_tiny), the ratio is the point on resnet18."""
    keras_file = str(tmp_path / "model.keras")
    trained.save(keras_file)
    task_bytes = 4 * sum(int(np.prod(v.shape))
                         for v in trained.task_variables("depth"))
    pack = os.path.getsize(pack_path)
    assert task_bytes < pack < task_bytes * 1.05 + 40_000
    assert pack < 0.55 * os.path.getsize(keras_file)



def test_models_without_a_bank_have_no_packs():
    baseline = build(["semseg"], {**SMALL, "architecture": "shared"})
    with pytest.raises(ValueError, match="Task packs need a frozen bank"):
        task_pack.make_pack(baseline, "semseg")


def test_adapter_packs_round_trip(image):
    family = {**SMALL, "architecture": "ra_series"}
    source = build(["semseg", "depth"], family)
    target = build(["semseg"], family, seed=1)
    _copy_bank(source, target)
    installed = task_pack.install_pack(target,
                                       task_pack.make_pack(source, "depth"))
    np.testing.assert_array_equal(_outputs(installed, "depth", image),
                                  _outputs(source, "depth", image))
