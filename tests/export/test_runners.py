"""Tests of `rmtl_tf/export/runners.py`: both runners name what is wrong
with an input before it reaches the graph, and run correct inputs."""

import re

import numpy as np
import pytest

from rmtl_tf.export.runners import SavedModelRunner, TFLiteRunner

TASKS = ("semseg", "depth")
SIGNATURES = ["depth", "semseg", "serving_default"]
# Against the Keras model as trained; see test_export_lib.py for the
# measured differences.
TOLERANCE = {"atol": 1e-4, "rtol": 1e-5}


@pytest.fixture(scope="module", params=["saved_model", "tflite"])
def runner(request, exported):
    model, result = exported(TASKS)
    kind = request.param
    run = (SavedModelRunner(result["saved_model"]) if kind == "saved_model"
           else TFLiteRunner(result["tflite"]))
    return kind, model, run


def test_runner_signatures(runner):
    _, _, run = runner
    assert sorted(run.signatures) == SIGNATURES


@pytest.mark.parametrize("batch", [1, 2])
def test_runner_runs_every_signature(runner, image, reference, batch):
    _, model, run = runner
    x = image[:batch]
    expected = reference(model, x)
    for signature in SIGNATURES:
        outputs = run(x, signature)
        tasks = model.tasks if signature == "serving_default" else [signature]
        assert sorted(outputs) == sorted(tasks)
        for task in tasks:
            assert isinstance(outputs[task], np.ndarray)
            np.testing.assert_allclose(outputs[task], expected[task],
                                       err_msg=f"{signature}/{task}",
                                       **TOLERANCE)


def test_runner_default_signature_is_every_task(runner, image):
    _, model, run = runner
    assert sorted(run(image)) == sorted(model.tasks)


def test_unknown_signature(runner, image):
    _, _, run = runner
    with pytest.raises(ValueError, match=re.escape(
            f"Unknown signature 'sky'. Available: {SIGNATURES}.")):
        run(image, "sky")


@pytest.mark.parametrize("dtype", [np.uint8, np.float64, np.int32])
def test_wrong_dtype(runner, image, dtype):
    _, _, run = runner
    with pytest.raises(ValueError, match=f"takes float32(.|\n)*received "
                                         f"dtype {np.dtype(dtype).name}"):
        run(image.astype(dtype), "semseg")


@pytest.mark.parametrize("shape", [
    (32, 32, 3),        # No batch axis.
    (1, 1, 32, 32, 3),  # One axis too many.
    (2, 32, 32, 1),     # Grey.
    (2, 32, 32, 4),     # RGBA.
    (2, 64, 64, 3),     # Not the exported size.
    (2, 32, 48, 3),
])
def test_wrong_shape(runner, shape):
    _, _, run = runner
    with pytest.raises(ValueError, match=re.escape(
            "takes an image of shape ['batch', 32, 32, 3] (batch, height, "
            f"width, channels); received shape {list(shape)}.")):
        run(np.zeros(shape, np.float32), "depth")


def test_lists_are_rejected_by_dtype(runner):
    # A nested Python list becomes float64: named, not silently cast.
    _, _, run = runner
    with pytest.raises(ValueError, match="received dtype float64"):
        run(np.zeros((1, 32, 32, 3)).tolist(), "semseg")
