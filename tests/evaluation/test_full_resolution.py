"""Full-resolution evaluation, the authors' protocol: a 480x640 NYUD-MT
fixture split is scored on every pixel of every image, through the Keras
model, the SavedModel and the TFLite file, and the numbers equal the
authors' evaluation (restated in tests/metrics/authors_reference.py) of the
network run on the whole images, labels read as their loaders read them."""

import os
import sys

import numpy as np
import pytest
import scipy.io
from PIL import Image

import rmtl_tf
from rmtl_tf.data import datasets
from rmtl_tf.evaluation import evaluate_lib
from rmtl_tf.models.multitask_model import predictions

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "data", "fixtures"))
sys.path.insert(0, os.path.join(HERE, "..", "metrics"))
import authors_reference  # pylint: disable=wrong-import-position
import write_fixtures  # pylint: disable=wrong-import-position

TASKS = ["semseg", "depth", "normals"]
FULL = (480, 640)
TRAINED = (64, 80)  # The model's input size: smaller than the images.
IMAGE_FILL = np.array([123.0, 116.0, 103.0], np.float32)


@pytest.fixture(scope="module")
def nyud_480(tmp_path_factory):
    manual_dir = str(tmp_path_factory.mktemp("nyud480_manual"))
    data_dir = str(tmp_path_factory.mktemp("nyud480_tfds"))
    written = write_fixtures.write_nyud_mt(manual_dir, num_train=1,
                                           num_val=2, size=FULL)
    datasets.prepare("nyud", data_dir, manual_dir)
    return os.path.join(manual_dir, "NYUD_MT"), data_dir, written


@pytest.fixture(scope="module")
def model_and_exports(tmp_path_factory):
    import keras  # pylint: disable=import-outside-toplevel
    from rmtl_tf.export import export_lib  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(3)
    model = rmtl_tf.build_model("resnet_tiny", TASKS,
                                num_classes={"semseg": 41},
                                image_size=TRAINED, head_channels=8,
                                low_level_channels=8)
    model_dir = str(tmp_path_factory.mktemp("model"))
    model.save(os.path.join(model_dir, "model.keras"))
    exports = {
        "dynamic": export_lib.export(
            model, str(tmp_path_factory.mktemp("dynamic")),
            dynamic_image_size=True),
        "fixed": export_lib.export(
            model, str(tmp_path_factory.mktemp("fixed")), tflite=False),
    }
    return model_dir, model, exports


def _authors_labels(root, image_id):
    """The labels as the authors' NYUDMT loader reads them."""
    semseg = scipy.io.loadmat(os.path.join(
        root, "segmentation", image_id + ".mat"))["segmentation"]
    depth = scipy.io.loadmat(os.path.join(
        root, "depth", image_id + ".mat"))["depth"].astype(np.float32)
    normals = np.array(Image.open(os.path.join(
        root, "normals", image_id + ".jpg"))).astype(np.float32)
    return {"semseg": semseg.astype(np.int64), "depth": depth,
            "normals": 2.0 * normals / 255.0 - 1.0}


def _reference(root, model, pad_to):
    """The authors' numbers: each image padded (centred, mean pixel) to at
    least `pad_to`, the network run on it, its output cut back."""
    dynamic = rmtl_tf.build_model(
        "resnet_tiny", TASKS, num_classes={"semseg": 41}, image_size=None,
        head_channels=8, low_level_channels=8)
    dynamic.set_weights(model.get_weights())
    with open(os.path.join(root, "gt_sets", "val.txt"),
              encoding="utf-8") as f:
        ids = f.read().split()
    padded = []
    for image_id in ids:
        image = np.array(Image.open(os.path.join(
            root, "images", image_id + ".jpg")).convert("RGB"), np.float32)
        h, w = image.shape[:2]
        ph, pw = max(pad_to[0], h), max(pad_to[1], w)
        top, left = (ph - h) // 2, (pw - w) // 2
        canvas = np.broadcast_to(IMAGE_FILL, (ph, pw, 3)).copy()
        canvas[top:top + h, left:left + w] = image
        padded.append(canvas)
    # One batch, as the evaluation batches the two same-size images: the
    # same kernels, so the outputs are the same to the bit.
    out = dynamic(np.stack(padded), training=False)
    pairs = {t: [] for t in TASKS}
    for i, image_id in enumerate(ids):
        labels = _authors_labels(root, image_id)
        for t in TASKS:
            pred = np.asarray(predictions(t, out[t]))[i]
            pairs[t].append((labels[t], pred[top:top + h, left:left + w]))
    return {"semseg": authors_reference.eval_semseg(pairs["semseg"], 41),
            "depth": authors_reference.eval_depth(pairs["depth"]),
            "normals": authors_reference.eval_normals(pairs["normals"])}


def _evaluate(tmp_path, data_dir, image_summaries=False, **kwargs):
    config = evaluate_lib.EvalConfig(
        output_dir=str(tmp_path), dataset="nyud", data_dir=data_dir,
        batch_size=2, num_examples=10, image_summaries=image_summaries,
        **kwargs)
    return evaluate_lib.run_evaluation(config, log=lambda _: 0)


def _check_every_pixel(result, written):
    val = [v for k, v in written.items() if k.startswith("val")]
    assert result["num_examples"] == 2
    semseg = result["tasks"]["semseg"]
    # Every labelled pixel of both full images, nothing cropped.
    assert np.sum(semseg["confusion"]) == 2 * FULL[0] * FULL[1]
    depth = result["tasks"]["depth"]
    assert depth["num_images"] == 2
    assert depth["num_pixels"] == sum(int((v["depth"] > 0).sum())
                                      for v in val)
    assert result["tasks"]["normals"]["num_pixels"] == 2 * FULL[0] * FULL[1]


def _assert_matches(result, reference, rtol):
    for task, key in (("semseg", "miou"), ("depth", "rmse"),
                      ("depth", "log_rmse"), ("normals", "mean"),
                      ("normals", "rmse")):
        np.testing.assert_allclose(result["tasks"][task][key],
                                   reference[task][key], rtol=rtol,
                                   err_msg=f"{task} {key}")


def test_keras_savedmodel_tflite_score_every_pixel_as_the_authors(
        nyud_480, model_and_exports, tmp_path):
    root, data_dir, written = nyud_480
    model_dir, model, exports = model_and_exports
    reference = _reference(root, model, (425, 560))
    runs = {
        "keras": _evaluate(tmp_path / "k", data_dir, model_dir=model_dir),
        "saved_model": _evaluate(tmp_path / "s", data_dir,
                                 saved_model=exports["dynamic"][
                                     "saved_model"]),
        "tflite": _evaluate(tmp_path / "t", data_dir,
                            tflite=exports["dynamic"]["tflite"]),
    }
    for name, result in runs.items():
        _check_every_pixel(result, written)
        assert result["full_resolution"] is True
        # Floating-point differences of the runtimes only.
        _assert_matches(result, reference, 1e-6 if name == "keras" else 1e-3)


def test_small_images_are_padded_and_cut_back(nyud_480, model_and_exports,
                                              tmp_path):
    root, data_dir, written = nyud_480
    model_dir, model, _ = model_and_exports
    pad_to = (FULL[0] + 17, FULL[1] + 32)  # Odd padding: 8 above, 9 below.
    result = _evaluate(tmp_path, data_dir, model_dir=model_dir,
                       image_size=pad_to, image_summaries=True)
    assert os.listdir(tmp_path / "logs")  # Panels of the cropped images.
    _check_every_pixel(result, written)
    _assert_matches(result, _reference(root, model, pad_to), 1e-6)


def test_a_fixed_size_export_asks_for_a_dynamic_one(
        nyud_480, model_and_exports, tmp_path):
    _, data_dir, _ = nyud_480
    _, _, exports = model_and_exports
    with pytest.raises(ValueError, match=r"takes 64x80 images.*480x640.*"
                       r"--dynamic_image_size"):
        _evaluate(tmp_path, data_dir,
                  saved_model=exports["fixed"]["saved_model"])
