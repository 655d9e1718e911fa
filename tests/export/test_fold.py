"""Tests of `rmtl_tf/export/fold.py` and the folded exports: a plain conv
network computing one task as the factorized model does."""

import os

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import rmtl_tf
from rmtl_tf.export import export_lib, fold

from conftest import SMALL, build

# The folded kernels sum the same products in another order (bank @
# modulator, then the BatchNorm scale): measured max |diff| 4e-6 on raw
# outputs up to 10 (float32 rounding).
FOLD_TOL = {"atol": 1e-4, "rtol": 1e-4}


@pytest.mark.parametrize("task,nff", [("semseg", True), ("normals", False)])
def test_fold_matches_both_compute_modes(image, reference, task, nff):
    model = build(["semseg", "normals"], {**SMALL, "nff": nff})
    folded = fold.fold_task(model, task)
    got = np.asarray(rmtl_tf.predictions(task, folded(image)[task]))
    for mode in ("factorized", "fused"):
        np.testing.assert_allclose(got, reference(model, image, mode)[task],
                                   err_msg=mode, **FOLD_TOL)


def test_folded_network_is_plain(small_model):
    folded = fold.fold_task(small_model, "semseg")
    kinds = {type(layer).__name__ for layer in folded.layers}
    assert "ReparamConv2D" not in kinds
    assert "BatchNormalization" not in kinds
    assert "Conv2D" in kinds
    assert list(folded.output) == ["semseg"]
    assert folded.name == "rmtl_semseg_folded"
    # One conv per conv of the task's path: none dropped, none added.
    path = small_model.task_model(["semseg"])
    convs = [l for l in path.layers if isinstance(
        l, (rmtl_tf.ReparamConv2D, keras.layers.Conv2D))]
    assert len([l for l in folded.layers
                if isinstance(l, keras.layers.Conv2D)]) == len(convs)


def test_fold_plain_baseline(image, reference):
    """The "conv" baseline (a backbone of plain convs per task) folds its
    BatchNorms the same way."""
    model = build(["depth"], {**SMALL, "architecture": "conv"})
    folded = fold.fold_task(model, "depth")
    assert "BatchNormalization" not in {type(l).__name__
                                        for l in folded.layers}
    np.testing.assert_allclose(folded(image)["depth"],
                               reference(model, image)["depth"], **FOLD_TOL)


def test_fold_refuses_adapters():
    model = build(["depth"], {**SMALL, "architecture": "ra_parallel"})
    with pytest.raises(ValueError, match="folding supports the 'rc' "
                                         "architecture"):
        fold.fold_task(model, "depth")


def test_fold_unknown_task(small_model):
    with pytest.raises(ValueError, match="Unknown task 'depth'"):
        fold.fold_task(small_model, "depth")


@pytest.fixture(scope="module")
def folded_export(exported):
    """The shared WIDE export of semseg and depth, depth also folded."""
    return exported(("semseg", "depth"))


def test_folded_export_layout(folded_export):
    model, result = folded_export
    folded = result["folded"]["depth"]
    export_dir = os.path.dirname(os.path.dirname(result["saved_model"]))
    assert folded["saved_model"] == os.path.join(
        export_dir, "rmtl_depth_folded", "1")
    assert folded["signatures"] == ["serving_default", "depth"]
    assert folded["tflite"] == os.path.join(
        export_dir, "rmtl_depth_folded", "rmtl_depth_folded-1.tflite")
    metadata = export_lib.read_saved_model_metadata(folded["saved_model"])
    assert metadata["kind"] == "folded"
    assert metadata["folded_from"] == {"model_name": "rmtl", "task": "depth"}
    assert metadata["bank_fingerprint"] == export_lib.read_saved_model_metadata(
        result["saved_model"])["bank_fingerprint"]
    assert model.tasks == ["semseg", "depth"]


def test_folded_tflite_matches_factorized(folded_export, image, reference):
    model, result = folded_export
    expected = reference(model, image, "factorized")["depth"]
    for path in (result["folded"]["depth"]["tflite"], result["tflite"]):
        runner = Interpreter(model_path=path).get_signature_runner("depth")
        np.testing.assert_allclose(runner(image=image)["depth"], expected,
                                   err_msg=path, **FOLD_TOL)


def test_folded_file_holds_its_own_bank(folded_export):
    """The size cost: a folded task carries a full (folded) bank, so it
    is about bank + one task, against bank + every task for the shared
    file."""
    model, result = folded_export
    bank = 4 * sum(int(np.prod(v.shape)) for v in model.bank_variables())
    folded = os.path.getsize(result["folded"]["depth"]["tflite"])
    shared = os.path.getsize(result["tflite"])
    assert bank < folded < shared
