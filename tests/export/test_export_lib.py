"""Tests of `rmtl_tf/export/export_lib.py` (and `versions.py`): layout and
versions, SavedModel and TFLite outputs against Keras, and the shared bank
stored once."""

import os

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as tflite_schema
from ai_edge_litert.interpreter import Interpreter

from rmtl_tf.export import export_lib, versions

TASKS = ("semseg", "depth", "normals")  # softmax, linear, unit vectors.
# The export traces the factorized graph (bank conv, then modulator), the
# Keras model trains the fused one (bank @ modulator, one conv): the same
# function, its sums reassociated. Against the factorized Keras graph the
# SavedModel is exact (measured 0); against the fused one, measured max
# |diff| 1.6e-5 on depth values up to 14 and 1.1e-5 on unit normals.
SAVED_MODEL_TOL = {"atol": 1e-5, "rtol": 1e-5}
FUSED_TOL = {"atol": 1e-4, "rtol": 1e-5}
# LiteRT's kernels also sum in their own order: measured max |diff| 1.9e-5.
TFLITE_TOL = {"atol": 1e-4, "rtol": 1e-5}

# -- Size budgets, measured on the WIDE models (see conftest.py) -------------
# Per-task weights stored in a file may exceed their float32 count by 5% at
# most (headroom for layout; BatchNorm folding usually makes them smaller).
PER_TASK_SLACK = 1.05
# A .tflite file also holds the graphs: one subgraph per task signature and
# the serving_default subgraph repeating every task's ops, each op with its
# tensors, names and shapes. Measured: 82 kB, 159 kB and 240 kB of
# non-constant bytes for T = 1, 2, 3 (about 80 kB per task path). Budget
# 100 kB per task: at most 0.3 MB for T = 3, against a 1.49 MB bank.
TFLITE_GRAPH_BYTES_PER_TASK = 100_000
# Small int32 operands (reshape shapes, paddings, axes) are constants too.
TFLITE_OPERAND_BYTES = 8_000
# A checkpoint also stores, per variable, its key in variables.index and a
# node of the object graph: measured about 175 bytes a variable.
CHECKPOINT_BYTES_PER_VARIABLE = 256


def _numel(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def _budget(model):
    """Bytes of one bank plus each task's own weights, float32."""
    bank = 4 * _numel(model.bank_variables())
    per_task = {t: 4 * _numel(model.task_variables(t)) for t in model.tasks}
    return bank, per_task


def _dir_bytes(path):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


def _tflite_constant_bytes(path):
    """Bytes of constant data (weights) held in a .tflite flatbuffer."""
    with open(path, "rb") as f:
        model = tflite_schema.ModelT.InitFromPackedBuf(f.read(), 0)
    return sum(len(b.data) for b in model.buffers if b.data is not None)


def _snapshot(path):
    return {os.path.relpath(os.path.join(root, f), path):
            os.stat(os.path.join(root, f)).st_mtime_ns
            for root, _, files in os.walk(path) for f in files}


# -- Layout and versions -----------------------------------------------------

def test_export_layout(exported):
    model, result = exported(TASKS[:2])
    base = os.path.dirname(result["saved_model"])
    assert os.path.basename(base) == "rmtl"
    assert result["saved_model"] == os.path.join(base, "1")
    assert result["version"] == 1
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    assert os.path.isdir(os.path.join(base, "1", "variables"))
    assert result["tflite"] == os.path.join(base, "rmtl-1.tflite")
    assert os.path.isfile(result["tflite"])
    assert result["signatures"] == ["serving_default", *model.tasks]
    assert result["tasks"] == list(model.tasks)
    assert result["metadata"] == os.path.join(base, "rmtl-1.json")
    assert result["models_config"] == os.path.join(
        os.path.dirname(base), "models.config")
    # No temporary directory is left behind.
    assert sorted(os.listdir(base)) == ["1", "rmtl-1.json", "rmtl-1.tflite"]


def test_next_version(tmp_path):
    assert versions.next_version(str(tmp_path / "missing")) == 1
    for name in ("1", "3", "10", "foo", ".tmp-export-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file, not a version")
    assert versions.next_version(str(tmp_path)) == 11


def test_versions_increment_and_existing_version_is_kept(small_model,
                                                         tmp_path):
    first = export_lib.export(small_model, str(tmp_path), model_name="m",
                              tflite=False)
    second = export_lib.export(small_model, str(tmp_path), model_name="m")
    assert (first["version"], second["version"]) == (1, 2)
    base = tmp_path / "m"
    assert sorted(os.listdir(base)) == ["1", "2", "m-1.json", "m-2.json",
                                        "m-2.tflite"]
    for version in ("1", "2"):
        assert (base / version / "saved_model.pb").is_file()
    before = _snapshot(str(base))
    with pytest.raises(FileExistsError, match="already exists"):
        export_lib.export(small_model, str(tmp_path), model_name="m",
                          version=2)
    assert _snapshot(str(base)) == before
    tf.saved_model.load(second["saved_model"])  # Still a valid export.
    Interpreter(model_path=second["tflite"])


def test_overwrite_replaces_a_version_and_restores_it_on_failure(
        small_model, tmp_path, monkeypatch):
    export_lib.export(small_model, str(tmp_path), model_name="m",
                      task_packs=True)
    base = tmp_path / "m"
    assert [os.path.basename(p) for p in versions.version_files(
        str(tmp_path), "m", 1)] == ["1", "m-1.json", "m-1.tflite",
                                    "semseg-1.npz"]
    with pytest.raises(FileExistsError, match=r"Version 1 already exists.*"
                       r"m-1.json.*--overwrite"):
        export_lib.export(small_model, str(tmp_path), model_name="m",
                          version=1, tflite=False)
    before = _snapshot(str(base))

    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(export_lib, "write_tflite", broken)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_lib.export(small_model, str(tmp_path), model_name="m",
                          version=1, overwrite=True)
    assert _snapshot(str(base)) == before  # The old version is back.
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []
    monkeypatch.undo()

    result = export_lib.export(small_model, str(tmp_path), model_name="m",
                               version=1, tflite=False, overwrite=True)
    assert result["version"] == 1
    # Replaced, not merged: the old TFLite file and pack are gone.
    assert sorted(os.listdir(base)) == ["1", "m-1.json", "packs"]
    assert not os.listdir(base / "packs")
    config = (tmp_path / "models.config").read_text()
    assert 'base_path: "/models/m"' in config and "tmp" not in config.split(
        "\n", 1)[1]
    tf.saved_model.load(result["saved_model"])


@pytest.mark.parametrize("model_name", ["", "a/b", "..", ".", "has space",
                                        "-x", None])
def test_bad_model_name(small_model, tmp_path, model_name):
    with pytest.raises(ValueError, match="model_name"):
        export_lib.export(small_model, str(tmp_path), model_name=model_name)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("version", [0, -1, "3", 1.5, True])
def test_bad_version(small_model, tmp_path, version):
    with pytest.raises(ValueError, match="version"):
        export_lib.export(small_model, str(tmp_path), version=version)
    assert not os.path.exists(tmp_path / "rmtl")


def test_export_leaves_the_compute_mode(exported):
    model, _ = exported(TASKS)
    assert {l.compute_mode for l in model.reparam_layers()} == {"auto"}


# -- SavedModel ------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_model(exported):
    model, result = exported(TASKS)
    return model, tf.saved_model.load(result["saved_model"])


def test_saved_model_signatures(saved_model):
    model, loaded = saved_model
    assert set(loaded.signatures) == {"serving_default", *model.tasks}
    for name, fn in loaded.signatures.items():
        args, kwargs = fn.structured_input_signature
        assert not args and list(kwargs) == ["image"]
        spec = kwargs["image"]
        assert spec.dtype == tf.float32
        assert spec.shape.as_list() == [None, 32, 32, 3]
        tasks = model.tasks if name == "serving_default" else [name]
        assert set(fn.structured_outputs) == set(tasks)


@pytest.mark.parametrize("compute_mode,tol", [
    ("factorized", SAVED_MODEL_TOL), ("fused", FUSED_TOL)])
def test_saved_model_matches_keras(saved_model, image, reference,
                                   compute_mode, tol):
    model, loaded = saved_model
    expected = reference(model, image, compute_mode)
    for name, fn in loaded.signatures.items():
        outputs = fn(image=tf.constant(image))
        tasks = model.tasks if name == "serving_default" else [name]
        assert set(outputs) == set(tasks)
        for task in tasks:
            np.testing.assert_allclose(outputs[task].numpy(), expected[task],
                                       err_msg=f"{name}/{task}", **tol)


def test_saved_model_stores_each_variable_once(exported, saved_model):
    model, result = exported(TASKS)
    checkpoint = os.path.join(result["saved_model"], "variables",
                              "variables")
    stored = [shape for name, shape in tf.train.list_variables(checkpoint)
              if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
              and not name.startswith("rmtl_metadata/")]
    assert len(stored) == len(model.variables)
    assert sum(int(np.prod(s)) for s in stored) == _numel(model.variables)
    _, loaded = saved_model
    assert _numel(loaded.variables) == _numel(model.variables)


def test_saved_model_signature_rejects_wrong_image_size(saved_model):
    _, loaded = saved_model
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"image must be float32 \[batch, 32, 32, 3\]"
                             r"(.|\n)*received shape(.|\n)*\[1 64 64 3\]"):
        loaded.signatures["semseg"](image=tf.zeros([1, 64, 64, 3]))


# -- TFLite ------------------------------------------------------------------

@pytest.fixture(scope="module")
def interpreter(exported):
    model, result = exported(TASKS)
    return model, Interpreter(model_path=result["tflite"])


def test_tflite_signatures(interpreter):
    model, interp = interpreter
    signatures = interp.get_signature_list()
    assert set(signatures) == {"serving_default", *model.tasks}
    for name, io in signatures.items():
        assert io["inputs"] == ["image"]
        tasks = model.tasks if name == "serving_default" else [name]
        assert sorted(io["outputs"]) == sorted(tasks)
        details = interp.get_signature_runner(name).get_input_details()
        assert details["image"]["dtype"] == np.float32
        assert list(details["image"]["shape_signature"]) == [-1, 32, 32, 3]


def test_tflite_matches_keras(interpreter, image, reference):
    model, interp = interpreter
    expected = reference(model, image)
    for name in interp.get_signature_list():
        outputs = interp.get_signature_runner(name)(image=image)
        tasks = model.tasks if name == "serving_default" else [name]
        assert set(outputs) == set(tasks)
        for task in tasks:
            np.testing.assert_allclose(outputs[task], expected[task],
                                       err_msg=f"{name}/{task}",
                                       **TFLITE_TOL)


# -- The bank is stored once --------------------------------------------------

@pytest.mark.parametrize("num_tasks", [1, 2, 3])
def test_tflite_stores_the_bank_once(exported, num_tasks):
    model, result = exported(TASKS[:num_tasks])
    bank, per_task = _budget(model)
    weights = PER_TASK_SLACK * sum(per_task.values())
    graphs = TFLITE_GRAPH_BYTES_PER_TASK * num_tasks
    # The budgets leave no room for a second bank.
    assert bank > graphs + (PER_TASK_SLACK - 1) * sum(per_task.values())
    assert _tflite_constant_bytes(result["tflite"]) <= (
        bank + weights + TFLITE_OPERAND_BYTES)
    assert os.path.getsize(result["tflite"]) <= bank + weights + graphs


@pytest.mark.parametrize("num_tasks", [1, 2, 3])
def test_saved_model_stores_the_bank_once(exported, num_tasks):
    model, result = exported(TASKS[:num_tasks])
    bank, per_task = _budget(model)
    metadata = CHECKPOINT_BYTES_PER_VARIABLE * len(model.variables)
    assert bank > metadata + (PER_TASK_SLACK - 1) * sum(per_task.values())
    variables = os.path.join(result["saved_model"], "variables")
    assert _dir_bytes(variables) <= (
        bank + PER_TASK_SLACK * sum(per_task.values()) + metadata)


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_one_export_is_smaller_than_single_task_exports(exported, num_tasks):
    _, result = exported(TASKS[:num_tasks])
    singles = [exported([task])[1] for task in TASKS[:num_tasks]]
    # Each single-task file holds its own copy of the bank.
    assert os.path.getsize(result["tflite"]) < sum(
        os.path.getsize(s["tflite"]) for s in singles)
    assert _dir_bytes(os.path.join(result["saved_model"], "variables")) < sum(
        _dir_bytes(os.path.join(s["saved_model"], "variables"))
        for s in singles)


def test_folded_modulators_copy_the_bank_per_task(exported, image,
                                                  reference):
    """The negative control: a bank per task breaks the budget above."""
    model, result = exported(TASKS[:2], fold_modulators=True)
    bank, per_task = _budget(model)
    assert _tflite_constant_bytes(result["tflite"]) > (
        bank + PER_TASK_SLACK * sum(per_task.values())
        + TFLITE_OPERAND_BYTES)
    # Still the same function.
    outputs = Interpreter(model_path=result["tflite"]).get_signature_runner(
        "serving_default")(image=image)
    expected = reference(model, image)
    for task in model.tasks:
        np.testing.assert_allclose(outputs[task], expected[task],
                                   **TFLITE_TOL)
