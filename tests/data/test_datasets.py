"""The single entry point: clear errors before any data is read, and every
dataset (synthetic too) through the same pipeline and batch contract."""

import os

import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.data import datasets, decoders, input_pipeline
from rmtl_tf.training.config import TrainConfig


@pytest.mark.parametrize("kwargs,message", [
    ({}, "needs --data_dir"),
    ({"data_dir": "{tmp}/tfds"}, "no --manual_dir was given"),
    ({"data_dir": "{tmp}/tfds", "manual_dir": "{tmp}/missing"},
     "manual_dir='{tmp}/missing' does not exist"),
    ({"data_dir": "{tmp}/tfds", "manual_dir": "{tmp}"},
     "holds neither NYUD_MT/ nor NYUD_MT.zip"),
])
def test_check_available_errors_name_the_directories(tmp_path, kwargs,
                                                     message):
    kwargs = {k: v.format(tmp=tmp_path) for k, v in kwargs.items()}
    with pytest.raises(FileNotFoundError) as error:
        datasets.check_available("nyud", **kwargs)
    assert message.format(tmp=tmp_path) in str(error.value)
    if "data_dir" in kwargs:
        assert kwargs["data_dir"] in str(error.value)
        assert "https://data.vision.ee.ethz.ch/kanakism/NYUD_MT.zip" in str(
            error.value)
    assert not os.path.exists(os.path.join(tmp_path, "tfds", "nyud_mt"))


def test_check_available_prepares_once(tmp_path, nyud):
    manual_dir, _, _ = nyud
    data_dir = str(tmp_path / "tfds")
    datasets.check_available("nyud", data_dir, manual_dir=manual_dir)
    assert datasets.is_prepared("nyud", data_dir)
    # Prepared: no manual_dir needed any more.
    datasets.check_available("nyud", data_dir)


def test_resolve_opens_the_dataset_once(nyud):
    _, data_dir, _ = nyud
    data = datasets.resolve("nyud", data_dir)
    assert (data.name, data.data_dir, data.eval_size) == (
        "nyud", data_dir, (425, 560))
    assert data.tasks == ("semseg", "depth", "normals", "edge")
    assert data.num_classes == {"semseg": 41}
    data.num_classes["semseg"] = 0  # A copy.
    assert datasets.dataset_info("nyud")["num_classes"] == {"semseg": 41}
    assert data.info is data.builder.info
    assert data.info.splits["validation"].num_examples == 2
    assert datasets.check_available("nyud", data_dir).builder is not None
    kwargs = dict(tasks=["semseg", "depth"], image_size=(32, 40),
                  batch_size=2, num_examples=None)
    for split in ("train", "validation"):
        for (a, a_labels), (b, b_labels) in zip(
                data.split(split, **kwargs),
                datasets.load_split("nyud", split, data_dir=data_dir,
                                    **kwargs)):
            np.testing.assert_array_equal(a, b)
            for task in kwargs["tasks"]:
                np.testing.assert_array_equal(a_labels[task], b_labels[task])
    with pytest.raises(ValueError, match="no labels for task 'saliency'"):
        data.check_tasks(("semseg", "saliency"))
    with pytest.raises(ValueError, match="no labels for task 'saliency'"):
        data.split("train", ["saliency"], (32, 32), 2, None)
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        data.split("test", ["semseg"], (32, 32), 2, None)


def test_resolve_synthetic_needs_no_data_dir():
    data = datasets.resolve("synthetic", "ignored")
    assert (data.data_dir, data.builder, data.info) == (None, None, None)
    assert data.num_classes == datasets.dataset_info("synthetic")[
        "num_classes"]
    image, labels = next(iter(data.split("validation", ("depth",), (32, 32),
                                         2, 2)))
    assert image.shape == (2, 32, 32, 3) and set(labels) == {"depth"}
    with pytest.raises(ValueError, match="has no TFDS builder"):
        data.examples("train", ["depth"])
    with pytest.raises(ValueError, match="no labels for task 'human_parts'"):
        data.split("train", ["human_parts"], (32, 32), 2, 2)


def test_dataset_info_and_tasks():
    assert datasets.dataset_info("nyud") == {"num_classes": {"semseg": 41}}
    assert datasets.dataset_info("pascal_context") == {
        "num_classes": {"semseg": 21, "human_parts": 7}}
    with pytest.raises(ValueError, match="no labels for task 'depth'"):
        datasets.load_split("pascal_context", "train", ["depth"], (32, 32),
                            2, None, data_dir="unused")
    with pytest.raises(ValueError, match="no labels for task 'saliency'"):
        TrainConfig(model_dir="m", tasks=("saliency",), dataset="nyud")
    with pytest.raises(ValueError, match="Unknown dataset 'kitti'"):
        datasets.dataset_info("kitti")
    with pytest.raises(ValueError, match="Unknown dataset 'kitti'"):
        datasets.resolve("kitti")


def test_unknown_split_is_rejected(nyud):
    _, data_dir, _ = nyud
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        datasets.load_split("nyud", "test", ["semseg"], (32, 32), 2, None,
                            data_dir=data_dir)


@pytest.mark.parametrize("name", ["synthetic", "nyud"])
def test_every_dataset_has_the_same_batch_contract(name, nyud):
    data_dir = nyud[1]
    tasks = ["semseg", "depth", "normals", "edge"]
    train = datasets.load_split(name, "train", tasks, (32, 40), 2, 4,
                                data_dir=data_dir, training=True)
    val = datasets.load_split(name, "validation", tasks, (32, 40), 2, 2,
                              data_dir=data_dir)
    for ds in (train, val):
        image, labels = next(iter(ds))
        assert image.dtype == tf.float32 and image.shape[1:] == (32, 40, 3)
        assert 0 <= float(tf.reduce_min(image)) and float(
            tf.reduce_max(image)) <= 255
        assert labels["semseg"].dtype == tf.int32
        assert labels["semseg"].shape[1:] == (32, 40)
        assert labels["depth"].shape[1:] == (32, 40, 1)
        assert labels["normals"].shape[1:] == (32, 40, 3)
        assert labels["edge"].shape[1:] == (32, 40, 1)
    # Training batches have a static batch size (repeat, drop remainder).
    assert train.element_spec[0].shape[0] == 2


def test_training_draws_differ_and_repeat_with_the_seed():
    kwargs = dict(tasks=["semseg"], image_size=(32, 32), batch_size=2,
                  num_examples=4, training=True)
    a = next(iter(datasets.load_split("synthetic", "train", **kwargs)))
    b = next(iter(datasets.load_split("synthetic", "train", **kwargs)))
    c = next(iter(datasets.load_split("synthetic", "train", seed=1,
                                      **kwargs)))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_decode_normals_matches_numpy():
    encoded = np.random.default_rng(0).integers(0, 256, (4, 5, 3)).astype(
        np.uint8)
    mask = np.zeros((4, 5, 1), np.uint8)
    mask[1:3] = 1
    expected = (2.0 * encoded / 255.0 - 1.0) * mask
    np.testing.assert_allclose(decoders.decode_normals(encoded, mask),
                               expected, atol=1e-6)


def test_pipeline_pads_evaluation_batches_with_ignore():
    examples = tf.data.Dataset.from_tensor_slices({
        "image": np.full((3, 10, 12, 3), 7, np.uint8),
        "semseg": np.ones((3, 10, 12), np.uint8),
        "depth": np.full((3, 10, 12, 1), 2.0, np.float32)})
    ds = input_pipeline.build(examples, ["semseg", "depth"], (14, 16), 2)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [2, 1]
    image, labels = batches[0]
    semseg = labels["semseg"].numpy()
    assert (semseg == 255).sum() == 2 * (14 * 16 - 10 * 12)
    np.testing.assert_array_equal(semseg[:, 2:12, 2:14], 1)
    assert (labels["depth"].numpy() == 0).sum() == (semseg == 255).sum()
    np.testing.assert_array_equal(image[0, 0, 0], [123, 116, 103])


def test_full_resolution_pads_images_only_and_groups_sizes():
    # (10, 12) and (12, 14) both pad to 14x16: grouped apart all the same.
    sizes = [(10, 12), (6, 20), (12, 14), (18, 8), (6, 20), (10, 12),
             (12, 14)]

    def generate():
        for i, (h, w) in enumerate(sizes):
            yield {"image": np.full((h, w, 3), i, np.uint8),
                   "semseg": np.full((h, w), i, np.uint8)}

    examples = tf.data.Dataset.from_generator(generate, output_signature={
        "image": tf.TensorSpec((None, None, 3), tf.uint8),
        "semseg": tf.TensorSpec((None, None), tf.uint8)})
    ds = input_pipeline.build(examples, ["semseg"], (14, 16), 2,
                              full_resolution=True)
    seen = []
    for image, labels in ds:
        semseg = labels["semseg"].numpy()
        b, h, w = semseg.shape
        assert b <= 2 and len(set(semseg[:, 0, 0])) == b
        # Labels untouched, at their original size; nothing ignored.
        assert (h, w) == sizes[semseg[0, 0, 0]] and (semseg != 255).all()
        # The image padded (centred, mean pixel) to at least 14x16.
        ph, pw = max(14, h), max(16, w)
        assert image.shape == (b, ph, pw, 3)
        top, left = (ph - h) // 2, (pw - w) // 2
        for k in range(b):
            np.testing.assert_array_equal(
                image[k, top:top + h, left:left + w], semseg[k, 0, 0])
        if (ph, pw) != (h, w):
            np.testing.assert_array_equal(image[0, 0, 0] if top or left
                                          else image[0, -1, -1],
                                          [123, 116, 103])
        seen.extend(semseg[:, 0, 0].tolist())
    assert sorted(seen) == list(range(len(sizes)))  # Each image once.
    with pytest.raises(ValueError, match="full_resolution is for evaluation"):
        input_pipeline.build(examples, ["semseg"], (14, 16), 2, augment=True,
                             full_resolution=True)


def test_augment_can_be_turned_off():
    from rmtl_tf.data import synthetic_dataset  # pylint: disable=import-outside-toplevel
    scene = synthetic_dataset.synthetic_arrays("train", 1, (32, 32))
    kwargs = dict(tasks=["depth"], image_size=(32, 32), batch_size=1,
                  num_examples=1, training=True)
    plain = datasets.load_split("synthetic", "train", augment=False,
                                **kwargs)
    for image, labels in plain.take(3):
        np.testing.assert_array_equal(image[0], scene["image"][0])
        np.testing.assert_array_equal(labels["depth"][0], scene["depth"][0])
    augmented = datasets.load_split("synthetic", "train", **kwargs)
    assert any(not np.array_equal(image[0], scene["image"][0])
               for image, _ in augmented.take(5))


def test_every_split_runs_without_tf_data_autotuning():
    # Autotuning's model thread makes a deleted iterator wait for its
    # doubling sleep (Model.fit returned 33 s after its last step):
    # input_pipeline turns it off for every dataset, training and eval.
    for training in (True, False):
        ds = datasets.load_split("synthetic", "train" if training else
                                 "validation", ["semseg"], (32, 32), 2, 4,
                                 training=training)
        assert ds.options().autotune.enabled is False
        # Options are inherited by what is built on top (Keras, pretrain).
        mapped = ds.map(lambda image, labels: image)
        assert mapped.options().autotune.enabled is False
    default = tf.data.Dataset.range(3).map(lambda x: x)
    assert default.options().autotune.enabled is not False  # TF's default.
