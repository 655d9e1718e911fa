"""Quantized files of a trained model score as docs/export.md reports.

docs/export.md ("Quantized TFLite", the demo model on 64 synthetic validation
scenes): dynamic is worse by 0.0003 mIoU and 0.13% depth RMSE, int8 by
0.0012 mIoU and 2.0% RMSE. Here a small model is trained on the synthetic
scenes (random weights would make any quantization look fine or awful by
chance), exported and quantized as export.py does, and each file is
scored on 64 validation scenes: quantization may cost at most a few times
those figures.
"""

import pytest

from rmtl_tf.export import accuracy_report, export_lib, quantize
from rmtl_tf.training import train_lib
from rmtl_tf.training.config import TrainConfig

TASKS = ("semseg", "depth")
SIZE = (64, 64)
# Largest accepted loss: mIoU in absolute terms, RMSE relative to float.
MAX_WORSE = {"dynamic": {"semseg": 0.002, "depth": 0.005},
             "int8": {"semseg": 0.005, "depth": 0.03}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("trained")
    config = TrainConfig(
        model_dir=str(model_dir), tasks=TASKS, backbone="resnet_tiny",
        head_channels=16, low_level_channels=8, image_size=SIZE,
        batch_size=8, train_steps=100, checkpoint_every=100,
        pretrain_steps=100, train_examples=256, eval_examples=8,
        learning_rate=0.02, augment=False, jit_compile=False, export_dir="",
        seed=0)
    train_lib.train(config, log=lambda *_: None)
    model = train_lib.load_model(str(model_dir))
    result = export_lib.export(
        model, str(model_dir / "export"), quantize_modes=("dynamic", "int8"),
        calibration_images=quantize.calibration_images(SIZE, 32))
    batches = accuracy_report.load_batches(TASKS, SIZE, num_examples=64)
    return accuracy_report.report(result["tflite_files"], TASKS, batches,
                                  num_classes=model.num_classes)


def test_the_float_model_learned(report):
    # Far from chance (6 classes) and from the mean-depth baseline, so the
    # comparisons below are between predictions that mean something.
    metrics = report["none"]["metrics"]
    assert metrics["semseg"]["value"] > 0.3
    assert metrics["depth"]["value"] < 1.0


@pytest.mark.parametrize("mode", ["dynamic", "int8"])
def test_quantization_costs_what_the_readme_says(report, mode):
    base = report["none"]["metrics"]
    metrics = report[mode]["metrics"]
    assert metrics["semseg"]["worse_by"] <= MAX_WORSE[mode]["semseg"]
    assert (metrics["depth"]["worse_by"] / base["depth"]["value"]
            <= MAX_WORSE[mode]["depth"])
    # The file really is quantized: its predictions moved.
    assert metrics["depth"]["max_abs_diff"] > 0
