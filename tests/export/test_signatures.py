"""Tests of `rmtl_tf/export/signatures.py`: the signature defs TF Serving
reads, the in-graph input check as TF Serving runs it (no shape check of
its own), and dynamic batch and image size."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.export import export_lib
from rmtl_tf.export.local_serving import ServingRequestError, _Version
from rmtl_tf.export.runners import SavedModelRunner, TFLiteRunner

from conftest import SMALL, build

TASKS = ("semseg", "depth")


@pytest.fixture(scope="module")
def fixed(exported):
    return exported(TASKS)


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory):
    """A model trained at 32x32, exported for any size; and the same
    weights in a model built for any size, to compare with."""
    model = build(["normals"], SMALL)
    any_size = build(["normals"], SMALL, image_size=None)
    any_size.set_weights(model.get_weights())
    return any_size, export_lib.export(
        model, str(tmp_path_factory.mktemp("dynamic")),
        dynamic_image_size=True)


def _saved_model_cli(path):
    tool = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = ([tool] if os.path.exists(tool) else
               [sys.executable, "-m", "tensorflow.python.tools."
                "saved_model_cli"])
    proc = subprocess.run(command + ["show", "--dir", path, "--all"],
                          capture_output=True, text=True, timeout=300,
                          check=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return proc.stdout


def _parse_signature_defs(text):
    """{signature: {"inputs": {name: (dtype, shape)}, "outputs": ...,
    "method": ...}} from `saved_model_cli show --all`."""
    defs = {}
    blocks = re.split(r"\nsignature_def\['([^']+)'\]:", text)
    for name, body in zip(blocks[1::2], blocks[2::2]):
        body = body.split("\nConcrete Functions:")[0]
        parsed = {"inputs": {}, "outputs": {}}
        for side in ("inputs", "outputs"):
            for key, dtype, shape in re.findall(
                    side + r"\['([^']+)'\] tensor_info:\s+dtype: (\w+)\s+"
                    r"shape: \(([^)]*)\)", body):
                parsed[side][key] = (dtype, [int(s) for s in
                                             shape.split(",") if s.strip()])
        method = re.search(r"Method name is: (\S+)", body)
        parsed["method"] = method.group(1) if method else None
        defs[name] = parsed
    return defs


def test_saved_model_cli_signature_defs(fixed):
    model, result = fixed
    defs = _parse_signature_defs(_saved_model_cli(result["saved_model"]))
    defs.pop("__saved_model_init_op")
    assert sorted(defs) == sorted(["serving_default", *model.tasks])
    classes = {"semseg": 6, "depth": 1}
    for name, sig in defs.items():
        assert sig["method"] == "tensorflow/serving/predict"
        assert sig["inputs"] == {"image": ("DT_FLOAT", [-1, 32, 32, 3])}
        tasks = model.tasks if name == "serving_default" else [name]
        assert sig["outputs"] == {
            t: ("DT_FLOAT", [-1, 32, 32, classes[t]]) for t in tasks}


@pytest.fixture(scope="module")
def served(fixed):
    """The SavedModel loaded and run as TF Serving does."""
    return _Version(fixed[1]["saved_model"])


@pytest.mark.parametrize("shape", [
    (32, 32, 3),        # No batch axis.
    (1, 1, 32, 32, 3),  # One axis too many.
    (2, 32, 32, 1),     # Grey.
    (2, 32, 32, 4),     # RGBA.
    (2, 64, 64, 3),     # Not the exported size.
    (1, 32),
])
def test_served_graph_rejects_bad_shapes(served, shape):
    received = " ".join(str(s) for s in shape)
    with pytest.raises(ServingRequestError, match=re.escape(
            "image must be float32 [batch, 32, 32, 3] (RGB pixels in "
            f"[0, 255]); received shape] [{received}]")):
        served.run("depth", {"image": np.zeros(shape, np.float32)})


def test_served_graph_rejects_other_dtypes(served):
    with pytest.raises(ServingRequestError,
                       match="to be float but uint8 is provided"):
        served.run("depth", {"image": np.zeros((1, 32, 32, 3), np.uint8)})


def test_served_graph_unknown_signature(served):
    with pytest.raises(ServingRequestError,
                       match="signature key \"sky\" not found"):
        served.run("sky", {"image": np.zeros((1, 32, 32, 3), np.float32)})


def test_served_graph_runs_good_images(served, fixed, image, reference):
    model, _ = fixed
    outputs = served.run("serving_default", {"image": image})
    expected = reference(model, image, "factorized")
    for task in model.tasks:
        np.testing.assert_allclose(outputs[task], expected[task],
                                   atol=1e-4, rtol=1e-4)


# -- Dynamic batch and image size -------------------------------------------

def test_dynamic_signature_shapes(dynamic):
    _, result = dynamic
    loaded = tf.saved_model.load(result["saved_model"])
    for fn in loaded.signatures.values():
        spec = fn.structured_input_signature[1]["image"]
        assert spec.shape.as_list() == [None, None, None, 3]
    runner = TFLiteRunner(result["tflite"])
    details = runner.interpreter.get_signature_runner(
        "normals").get_input_details()["image"]
    assert list(details["shape_signature"]) == [-1, -1, -1, 3]


@pytest.mark.parametrize("size", [(32, 32), (48, 80), (67, 41)])
def test_dynamic_export_runs_any_size(dynamic, reference, size):
    model, result = dynamic
    x = np.random.default_rng(2).uniform(0, 255, (1, *size, 3)).astype(
        np.float32)
    expected = reference(model, x, "factorized")
    for run in (SavedModelRunner(result["saved_model"]),
                TFLiteRunner(result["tflite"])):
        outputs = run(x, "serving_default")
        for task in model.tasks:
            assert outputs[task].shape[1:3] == size
            np.testing.assert_allclose(outputs[task], expected[task],
                                       atol=1e-4, rtol=1e-4)


def test_dynamic_export_rejects_too_small_images(dynamic):
    _, result = dynamic
    served = _Version(result["saved_model"])
    with pytest.raises(ServingRequestError, match=re.escape(
            "[batch, >=32, >=32, 3]")):
        served.run("normals",
                   {"image": np.zeros((1, 16, 64, 3), np.float32)})
    with pytest.raises(ValueError, match=re.escape(
            "['batch', 'height>=32', 'width>=32', 3]")):
        TFLiteRunner(result["tflite"])(np.zeros((1, 16, 64, 3), np.float32),
                                       "normals")
