"""A MobileNetV2 model through the export paths: folding, task packs (the
bank fingerprint covers the frozen depthwise kernels), and SavedModel +
TFLite (float and int8) signatures against Keras."""

import keras
import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.export import export_lib, fingerprint, fold, quantize, task_pack
from rmtl_tf.export.runners import SavedModelRunner, TFLiteRunner

from conftest import randomize_task_weights
from test_export_lib import SAVED_MODEL_TOL, TFLITE_TOL
from test_fold import FOLD_TOL
from test_quantize import TOLERANCE

TASKS = ("semseg", "depth")
SIZE = (32, 32)
TINY = {"num_classes": {"semseg": 6}, "width_multiplier": 0.35,
        "head_channels": 8, "low_level_channels": 8, "image_size": SIZE}


def _build(tasks=TASKS, seed=0):
    keras.utils.set_random_seed(0)  # The same bank for every seed.
    model = rmtl_tf.build_model("mobilenet_v2", list(tasks), **TINY)
    randomize_task_weights(model, seed)
    return model


@pytest.fixture(name="model", scope="module")
def _model():
    return _build()


def test_fold_folds_batch_norm_into_the_depthwise_convs(model, image,
                                                         reference):
    folded = fold.fold_task(model, "depth")
    kinds = {type(layer).__name__ for layer in folded.layers}
    assert not kinds & {"ReparamConv2D", "BankDepthwiseConv2D",
                        "BatchNormalization", "FusedBatchNormalization"}
    depthwise = [l for l in folded.layers
                 if isinstance(l, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == 17 and all(l.use_bias for l in depthwise)
    got = np.asarray(rmtl_tf.predictions("depth", folded(image)["depth"]))
    for mode in ("factorized", "fused"):
        np.testing.assert_allclose(got, reference(model, image, mode)[
            "depth"], err_msg=mode, **FOLD_TOL)


def test_task_pack_installs_on_the_same_bank_only(model, image):
    pack = task_pack.make_pack(model, "depth")
    assert not any("depthwise/" in key for key in pack.weights)
    assert "block_3_depthwise_BN_depth/gamma" in pack.weights
    other = _build(["semseg"], seed=1)
    target = task_pack.install_pack(other, pack)
    np.testing.assert_array_equal(
        target(image, training=False)["depth"],
        model(image, training=False)["depth"])
    # A different depthwise kernel is a different bank.
    changed = _build(["semseg"], seed=1)
    kernel = changed.get_layer("block_3_depthwise").kernel
    kernel.assign(kernel.numpy() * 1.01)
    assert (fingerprint.bank_fingerprint(changed)
            != fingerprint.bank_fingerprint(other))
    with pytest.raises(ValueError, match="bank"):
        task_pack.install_pack(changed, pack)


def test_one_task_saved_model_and_tflite_match_keras(image, reference,
                                                   tmp_path):
    """The default run's check of the export path (BankDepthwiseConv2D
    traced, converted and run): one task, float32 files."""
    model = _build(["depth"])
    result = export_lib.export(model, str(tmp_path))
    expected = reference(model, image, "factorized")["depth"]
    for runner, tolerance in (
            (SavedModelRunner(result["saved_model"]), SAVED_MODEL_TOL),
            (TFLiteRunner(result["tflite"]), TFLITE_TOL)):
        np.testing.assert_allclose(runner(image, "depth")["depth"],
                                   expected, **tolerance)


@pytest.mark.slow  # About 90 s: three conversions of a 150-layer graph.
def test_every_signature_matches_keras(model, reference, tmp_path):
    """SavedModel and float TFLite within the ResNet export tolerances of
    the factorized Keras graph; int8 near it on scenes like its
    calibration images."""
    result = export_lib.export(
        model, str(tmp_path), quantize_modes=("int8",),
        calibration_images=quantize.calibration_images(SIZE, 8))
    assert result["signatures"] == ["serving_default", *TASKS]
    image = quantize.calibration_images(SIZE, 2, split="validation")
    expected = reference(model, image, "factorized")
    runners = {"saved_model": (SavedModelRunner(result["saved_model"]),
                               SAVED_MODEL_TOL),
               "tflite": (TFLiteRunner(result["tflite"]), TFLITE_TOL)}
    int8 = TFLiteRunner(result["tflite_files"]["int8"])
    for signature in result["signatures"]:
        tasks = TASKS if signature == "serving_default" else [signature]
        for name, (runner, tolerance) in runners.items():
            outputs = runner(image, signature)
            assert sorted(outputs) == sorted(tasks)
            for task in tasks:
                np.testing.assert_allclose(outputs[task], expected[task],
                                           err_msg=f"{name} {signature}",
                                           **tolerance)
        outputs = int8(image, signature)
        for task in tasks:
            error = np.abs(outputs[task] - expected[task]).mean()
            assert error < TOLERANCE["int8"] * np.abs(
                expected[task]).max(), (signature, task, error)
