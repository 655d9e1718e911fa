"""Tests of `rmtl_tf/export/quantize.py` and `accuracy_report.py`:
quantized multi-signature files run every signature, keep one bank, and
stay close to float."""

import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from rmtl_tf.export import accuracy_report, export_lib, quantize, tflite_file

from conftest import ALL_TASKS, SMALL, build

TASKS = ("semseg", "depth")
# Weight bytes per float32 weight in each file.
BYTES_PER_WEIGHT = {"dynamic": 1, "float16": 2, "int8": 1}
# Headroom for per-channel scales and zero points (int8: a float32 scale
# and an int64 zero point per output channel), the folded BatchNorm
# biases kept in float32 or int32, and small int32 operands. Measured on
# WIDE: 5-8% above the weight bytes.
QUANT_SLACK = 1.15
# Mean |quantized - float| as a fraction of the largest float output.
TOLERANCE = {"dynamic": 0.05, "float16": 0.01, "int8": 0.1}
OPERAND_BYTES = 20_000


@pytest.fixture(scope="module")
def export(exported):
    return exported(TASKS)


@pytest.fixture(scope="module")
def calibration():
    return quantize.calibration_images((32, 32), num_examples=8)


def _quantize(result, out, modes, images):
    return {mode: quantize.write_tflite(
        result["saved_model"], str(out / f"m-{mode}.tflite"),
        result["signatures"], mode, images if mode == "int8" else None)
        for mode in modes}


@pytest.fixture(scope="module")
def quantized(export, calibration, tmp_path_factory):
    """{"int8": path} of the quantized multi-signature file: int8 is the
    mode with upstream multi-signature bugs; dynamic and float16 (only
    converter flags) are in `test_dynamic_and_float16_files`."""
    return _quantize(export[1], tmp_path_factory.mktemp("quantized"),
                     ("int8",), calibration)


def test_calibration_images_are_synthetic_training_images(calibration):
    assert calibration.shape == (8, 32, 32, 3)
    assert calibration.dtype == np.float32
    assert 0 <= calibration.min() and calibration.max() <= 255
    assert calibration.std() > 10  # Scenes, not blank.


def test_representative_dataset_covers_every_signature(calibration):
    pairs = list(quantize.representative_dataset(
        ["serving_default", "depth"], calibration[:3])())
    assert [key for key, _ in pairs] == ["serving_default"] * 3 + [
        "depth"] * 3
    assert all(list(x) == ["image"] and x["image"].shape == (1, 32, 32, 3)
               for _, x in pairs)


def test_every_signature_of_the_int8_file_runs(quantized, export,
                                               reference):
    _check_every_signature_runs(quantized, export, reference)


def _check_every_signature_runs(quantized, export, reference):
    model, _ = export
    # Scenes like the calibration ones (uniform noise would saturate the
    # calibrated ranges), from another split.
    image = quantize.calibration_images((32, 32), 2, split="validation")
    expected = reference(model, image, "factorized")
    for mode, path in quantized.items():
        interpreter = Interpreter(model_path=path)
        assert sorted(interpreter.get_signature_list()) == sorted(
            ["serving_default", *TASKS])
        for name in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(name)
            assert runner.get_input_details()["image"]["dtype"] == np.float32
            outputs = runner(image=image)
            tasks = TASKS if name == "serving_default" else [name]
            assert sorted(outputs) == sorted(tasks)
            for task in tasks:
                assert outputs[task].dtype == np.float32
                assert np.isfinite(outputs[task]).all()
                # Near float on average (random weights, 8 calibration
                # images: a smoke check; the report measures the metrics).
                error = np.abs(outputs[task] - expected[task]).mean()
                assert error < TOLERANCE[mode] * np.abs(
                    expected[task]).max(), f"{mode} {name}/{task}: {error}"


def test_int8_file_stores_the_bank_once(quantized, export):
    _check_bank_once(quantized, export)


def test_dynamic_and_float16_files(export, reference, tmp_path):
    files = _quantize(export[1], tmp_path, ("dynamic", "float16"), None)
    _check_every_signature_runs(files, export, reference)
    _check_bank_once(files, export)


def _check_bank_once(quantized, export):
    model, _ = export
    bank = sum(int(np.prod(v.shape)) for v in model.bank_variables())
    per_task = [sum(int(np.prod(v.shape)) for v in model.task_variables(t))
                for t in TASKS]
    for mode, path in quantized.items():
        size = BYTES_PER_WEIGHT[mode]
        weights = tflite_file.constant_bytes(tflite_file.load(path))
        budget = QUANT_SLACK * size * (bank + sum(per_task)) + OPERAND_BYTES
        # Two banks would not fit.
        assert size * bank > budget - size * (bank + sum(per_task))
        assert weights <= budget, mode


def test_int8_file_computes_in_int8(quantized):
    model = tflite_file.load(quantized["int8"])
    weights = tflite_file.weight_types(model)
    assert weights.get("FLOAT32", 0) == 0
    assert weights["INT8"] > 0.9 * sum(weights.values())
    # Every op in int8: none left in float for semseg and depth (the
    # normals' L2 normalization keeps one float SQUARE, see docs/export.md).
    assert tflite_file.float_ops(model) == []


def test_every_task_kind_computes_in_int8(tmp_path):
    """All five task kinds (softmax, regression, L2-normalized, two
    sigmoids) in one int8 file: each signature's ops are int8 kernels,
    except the one float SQUARE of the normals' L2 normalization (docs/export.md
    says so)."""
    model = build(ALL_TASKS, SMALL)
    result = export_lib.export(
        model, str(tmp_path), tflite=False, quantize_modes=("int8",),
        calibration_images=quantize.calibration_images((32, 32), 4))
    path = result["tflite_files"]["int8"]
    by_signature = tflite_file.float_ops_by_signature(tflite_file.load(path))
    normals = ["SQUARE"]
    assert by_signature == {
        "serving_default": normals, "semseg": [], "depth": [],
        "normals": normals, "edge": [], "saliency": []}


def test_int8_normals_of_zero_norm_do_not_stop_the_interpreter(tmp_path):
    """A normals prediction whose norm rounds to zero in int8 (here: the
    head's last conv zeroed, so every raw normal is 0) comes out as zero
    vectors; a division by the norm stopped LiteRT's int8 DIV ("data[i] !=
    zero_point"), as an untrained 3-task model did at 425x560."""
    model = build(["normals"], SMALL)
    head = model.get_layer("head_predict_normals")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    result = export_lib.export(
        model, str(tmp_path), tflite=False, quantize_modes=("int8",),
        calibration_images=quantize.calibration_images((32, 32), 4))
    runner = Interpreter(model_path=result["tflite_files"]["int8"])
    image = np.random.default_rng(0).uniform(
        0, 255, (1, 32, 32, 3)).astype(np.float32)
    normals = runner.get_signature_runner("normals")(image=image)["normals"]
    assert normals.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(normals, 0)


def test_unknown_quantization(export, tmp_path):
    with pytest.raises(ValueError, match="Unknown quantization 'int4'"):
        quantize.write_tflite(export[1]["saved_model"], str(tmp_path / "x"),
                              ["depth"], "int4")
    with pytest.raises(ValueError, match="needs calibration images"):
        quantize.converter(export[1]["saved_model"], ["depth"], "int8")


def test_accuracy_report(quantized, export):
    _, result = export
    files = {"none": result["tflite"], **quantized}
    batches = accuracy_report.load_batches(TASKS, (32, 32), num_examples=4)
    report = accuracy_report.report(files, TASKS, batches,
                                    num_classes={"semseg": 6})
    assert sorted(report) == sorted(files)
    for variant, row in report.items():
        assert row["size_bytes"] == os.path.getsize(files[variant])
        assert sorted(row["metrics"]) == sorted(TASKS)
        assert row["metrics"]["semseg"]["metric"] == "miou"
        assert row["metrics"]["depth"]["metric"] == "rmse"
    assert all(m["worse_by"] == 0 and m["max_abs_diff"] == 0
               for m in report["none"]["metrics"].values())
    assert report["int8"]["metrics"]["depth"]["max_abs_diff"] > 0
    text = accuracy_report.format_report(report)
    assert "int8" in text and "rmse" in text
