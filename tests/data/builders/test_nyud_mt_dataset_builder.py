"""NYUD-MT builder end to end on a tiny copy in the authors' layout: what it
decodes (against numpy), bad files, archives, download wiring, training."""

import os
import shutil

import keras
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
import write_fixtures
from PIL import Image

from rmtl_tf import build_model
from rmtl_tf.data import dataset_specs, datasets, decoders
from rmtl_tf.data.builders import builder_lib
from rmtl_tf.tasks import registry

SPEC = dataset_specs.get_spec("nyud")


def _examples(data_dir, split):
    """{image_id: stored features decoded by the pipeline's decoder}."""
    builder = datasets.builder("nyud", data_dir)
    ds = builder.as_dataset(split=split, decoders={
        k: tfds.decode.SkipDecoding() for k in ("image", "normals")})
    out = {}
    for ex in ds:
        ex = dict(ex)
        for key in ("image", "normals"):
            ex[key] = decoders.decode_image_bytes(ex[key], 3)
        out[ex["image_id"].numpy().decode()] = tfds.as_numpy(ex)
    return out


def _ids(manual_dir, name):
    path = os.path.join(manual_dir, "NYUD_MT", "gt_sets", name + ".txt")
    with open(path, encoding="utf-8") as f:
        return sorted(f.read().split())


def test_splits_come_from_the_set_files(nyud):
    manual_dir, data_dir, _ = nyud
    assert sorted(_examples(data_dir, "train")) == _ids(manual_dir, "train")
    assert sorted(_examples(data_dir, "validation")) == _ids(manual_dir,
                                                             "val")


def _pil(path):
    """How the authors' loader reads an image."""
    return np.array(Image.open(path).convert("RGB")).astype(np.float64)


def test_features_are_decoded_as_the_authors(nyud):
    manual_dir, data_dir, written = nyud
    root = os.path.join(manual_dir, "NYUD_MT")
    for image_id, ex in _examples(data_dir, "train").items():
        truth = written[image_id]
        assert ex["image"].dtype == np.uint8 and ex["image"].shape == (
            48, 64, 3)
        # The JPEG bytes are kept and decoded to Pillow's pixels.
        pil = _pil(os.path.join(root, "images", image_id + ".jpg"))
        np.testing.assert_array_equal(ex["image"], pil)
        # And close to the pixels written (JPEG loss only).
        assert np.abs(ex["image"] - truth["image"].astype(float)).mean() < 6
        np.testing.assert_array_equal(ex["semseg"][..., 0], truth["semseg"])
        np.testing.assert_array_equal(ex["depth"][..., 0], truth["depth"])
        np.testing.assert_array_equal(ex["edge"][..., 0],
                                      (truth["edge"] / 255.0 >= 0.5))
        normals = decoders.decode_normals(ex["normals"]).numpy()
        pil = _pil(os.path.join(root, "normals", image_id + ".jpg"))
        np.testing.assert_allclose(normals, 2.0 * pil / 255.0 - 1.0,
                                   atol=1e-6)
        cos = (normals * truth["normals"]).sum(-1) / np.linalg.norm(
            normals, axis=-1)
        angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        assert np.median(angle) < 3  # JPEG-encoded normals.


def test_load_split_and_one_training_step(nyud):
    _, data_dir, _ = nyud
    tasks = ["semseg", "depth"]
    ds = datasets.load_split("nyud", "train", tasks, (32, 48), 2, None,
                             data_dir=data_dir, training=True)
    image, labels = next(iter(ds))
    assert image.shape == (2, 32, 48, 3) and labels["semseg"].shape == (
        2, 32, 48)
    assert set(np.unique(labels["semseg"])) <= {0, 1, 5, 12, 40, 255}
    model = build_model("resnet_tiny", tasks,
                        num_classes=datasets.dataset_info("nyud")[
                            "num_classes"], head_channels=8,
                        low_level_channels=8, image_size=(32, 48))
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss={t: registry.get_task(t).loss for t in tasks},
                  jit_compile=False)
    history = model.fit(ds, epochs=1, steps_per_epoch=1, shuffle=False,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])


def _fresh(tmp_path):
    manual_dir, data_dir = str(tmp_path / "manual"), str(tmp_path / "tfds")
    write_fixtures.write_nyud_mt(manual_dir, num_train=3, num_val=2)
    return manual_dir, data_dir, os.path.join(manual_dir, "NYUD_MT")


def _truncate(path):
    data = open(path, "rb").read()  # pylint: disable=consider-using-with
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def _garbage(path):
    with open(path, "wb") as f:
        f.write(b"not an image at all" * 10)


def _wrong_size(path):
    Image.fromarray(np.zeros((20, 64), np.uint8), "L").save(path)


def _no_key(path):
    scipy.io.savemat(path, {"labels": np.zeros((48, 64), np.uint8)})


FAULTS = {  # name: (relative file, how it is broken)
    "missing_label": ("segmentation/train_000001.mat", os.remove),
    "truncated_image": ("images/train_000001.jpg", _truncate),
    "corrupt_image": ("images/train_000001.jpg", _garbage),
    "wrong_size_label": ("edge/train_000001.png", _wrong_size),
    "mat_without_key": ("depth/train_000001.mat", _no_key),
}


def _assert_nothing_prepared(data_dir):
    assert not datasets.is_prepared("nyud", data_dir)
    assert not os.path.exists(os.path.join(data_dir, "nyud_mt", "1.0.0"))
    for _, _, files in os.walk(data_dir):
        assert "dataset_info.json" not in files


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_bad_file_is_named_and_nothing_is_left_prepared(tmp_path, fault):
    manual_dir, data_dir, root = _fresh(tmp_path)
    relative, breaks = FAULTS[fault]
    path = os.path.join(root, relative)
    breaks(path)
    with pytest.raises(ValueError, match="train_000001") as error:
        datasets.prepare("nyud", data_dir, manual_dir)
    assert path in str(error.value)
    _assert_nothing_prepared(data_dir)


@pytest.mark.parametrize("fault", ["missing_label", "truncated_image"])
def test_bad_examples_can_be_skipped_and_counted(tmp_path, fault, caplog):
    manual_dir, data_dir, root = _fresh(tmp_path)
    relative, breaks = FAULTS[fault]
    breaks(os.path.join(root, relative))
    builder = datasets.prepare("nyud", data_dir, manual_dir,
                               skip_bad_examples=True)
    assert [s.split(":")[0] for s in builder.skipper.skipped["train"]] == [
        "train_000001"]
    assert not builder.skipper.skipped["validation"]
    assert sorted(_examples(data_dir, "train")) == ["train_000000",
                                                    "train_000002"]
    assert "NYUD-MT train: skipped 1 bad example(s) of 3" in caplog.text


def test_missing_split_file_is_named(tmp_path):
    manual_dir, data_dir, root = _fresh(tmp_path)
    os.remove(os.path.join(root, "gt_sets", "val.txt"))
    with pytest.raises(FileNotFoundError,
                       match=os.path.join("gt_sets", "val.txt")):
        datasets.prepare("nyud", data_dir, manual_dir)
    _assert_nothing_prepared(data_dir)


def test_prepare_after_a_fix_succeeds(tmp_path):
    manual_dir, data_dir, root = _fresh(tmp_path)
    image = os.path.join(root, "images", "val_000000.jpg")
    backup = open(image, "rb").read()  # pylint: disable=consider-using-with
    _truncate(image)
    with pytest.raises(ValueError, match="val_000000.jpg"):
        datasets.prepare("nyud", data_dir, manual_dir)
    with open(image, "wb") as f:
        f.write(backup)
    datasets.prepare("nyud", data_dir, manual_dir)
    assert datasets.is_prepared("nyud", data_dir)


@pytest.mark.parametrize("form", ["zip", "folder_itself"])
def test_manual_dir_forms(tmp_path, form):
    manual_dir, data_dir, root = _fresh(tmp_path)
    if form == "zip":
        shutil.make_archive(root, "zip", manual_dir, "NYUD_MT")
        shutil.rmtree(root)
        assert os.listdir(manual_dir) == ["NYUD_MT.zip"]
    else:
        manual_dir = root
    datasets.prepare("nyud", data_dir, manual_dir)
    assert len(_examples(data_dir, "train")) == 3


class _FakeDownloadManager:
    """No manual data; `download_and_extract` records the URL."""

    def __init__(self, extracted):
        self.extracted = extracted
        self.urls = []

    @property
    def manual_dir(self):
        raise AssertionError("Manual directory does not exist or is empty.")

    def download_and_extract(self, url):
        self.urls.append(url)
        return self.extracted


def test_download_url_is_wired(tmp_path):
    manual_dir, _, root = _fresh(tmp_path)
    manager = _FakeDownloadManager(manual_dir)
    found = builder_lib.source_root(manager, "NYUD_MT", "gt_sets", SPEC.url,
                                    "instructions")
    assert found == root
    assert manager.urls == [
        "https://data.vision.ee.ethz.ch/kanakism/NYUD_MT.zip"]
    with pytest.raises(FileNotFoundError, match="downloading is off"):
        builder_lib.source_root(manager, "NYUD_MT", "gt_sets", SPEC.url,
                                "instructions", allow_download=False)


def test_evaluation_batches_are_the_written_labels(nyud):
    _, data_dir, written = nyud
    tasks = ["semseg", "depth", "normals", "edge"]
    ds = datasets.load_split("nyud", "validation", tasks, (48, 64), 1, None,
                             data_dir=data_dir)
    seen = set()
    for _, labels in ds:
        semseg = labels["semseg"][0].numpy()
        image_id = next(i for i, w in written.items()
                        if np.array_equal(w["semseg"], semseg))
        seen.add(image_id)
        truth = written[image_id]
        np.testing.assert_array_equal(labels["depth"][0, ..., 0],
                                      truth["depth"])
        np.testing.assert_array_equal(labels["edge"][0, ..., 0],
                                      truth["edge"] > 0)
        assert np.linalg.norm(labels["normals"][0], axis=-1).min() > 0.9
    assert seen == {"val_000000", "val_000001"}
