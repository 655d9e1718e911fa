"""PASCAL-MT builder end to end on a tiny copy in the authors' layout, each
label against an independent numpy computation of the authors' rules."""

import os

import cv2
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
import write_fixtures

from rmtl_tf.data import datasets, label_edges


def _examples(data_dir, split):
    ds = datasets.builder("pascal_context", data_dir).as_dataset(split=split)
    return {ex["image_id"].decode(): ex for ex in tfds.as_numpy(ds)}


# The authors' HUMAN_PART ids of the fixture's part names.
PART_IDS = {"head": 1, "hair": 1, "torso": 2, "luarm": 3, "rhand": 4,
            "ruleg": 5, "lfoot": 6}


def _human_parts(objects, size):
    """The authors' `_load_human_parts`, restated."""
    if not any(cls == 15 for cls, _, _ in objects):
        return np.full(size, 255)
    target = np.zeros(size)
    for cls, _, parts in objects:
        if cls == 15:
            for name, mask in parts:
                target[mask] = PART_IDS[name]
    return target


def test_labels_follow_the_authors_rules(pascal):
    _, data_dir, written = pascal
    examples = {**_examples(data_dir, "train"),
                **_examples(data_dir, "validation")}
    assert sorted(examples) == sorted(written)
    for image_id, ex in examples.items():
        truth = written[image_id]
        size = truth["semseg"].shape
        # Palette PNG: its indices, not its colours.
        np.testing.assert_array_equal(ex["semseg"][..., 0], truth["semseg"])
        np.testing.assert_array_equal(ex["saliency"][..., 0],
                                      truth["saliency"] / 255.0 > 0.5)
        np.testing.assert_array_equal(ex["normals"], truth["normals"])
        np.testing.assert_array_equal(
            ex["normals_mask"][..., 0],
            np.isin(truth["label_map"], write_fixtures.NORMALS_CLASSES))
        np.testing.assert_array_equal(
            ex["human_parts"][..., 0], _human_parts(truth["objects"], size))
        assert ex["has_person"] == any(c == 15 for c, _, _ in
                                       truth["objects"])
        laplacian = cv2.Laplacian(truth["label_map"].astype(np.float64),
                                  cv2.CV_64F)
        np.testing.assert_array_equal(
            ex["edge"][..., 0], label_edges.thin(np.abs(laplacian) > 0))


def test_the_three_person_cases_are_covered(pascal):
    _, data_dir, _ = pascal
    parts = [ex["human_parts"] for ex in _examples(data_dir,
                                                   "train").values()]
    assert any(np.all(p == 255) for p in parts)  # No person.
    assert any(np.all(p == 0) for p in parts)  # A person without parts.
    assert any(p.max() > 0 and p.max() < 255 for p in parts)


def test_pipeline_decodes_masked_normals(pascal):
    _, data_dir, written = pascal
    ds = datasets.load_split("pascal_context", "validation",
                             ["normals", "human_parts"], (40, 56), 1, None,
                             data_dir=data_dir)
    for image, labels in ds:
        match = [w for w in written.values()
                 if np.array_equal(w["image"].shape[:2], image.shape[1:3])]
        assert match
        normals = labels["normals"][0].numpy()
        norms = np.linalg.norm(normals, axis=-1)
        # Zero exactly where the class is not a normals class.
        valid = norms > 0
        assert valid.any() and not valid.all()
        np.testing.assert_allclose(norms[valid], 1.0, atol=0.02)


def test_human_parts_alone_keeps_images_with_a_person(pascal):
    _, data_dir, written = pascal
    persons = sum(any(c == 15 for c, _, _ in written[i]["objects"])
                  for i in written if i.startswith("2008"))
    ds = datasets.load_split("pascal_context", "train", ["human_parts"],
                             (40, 56), 1, None, data_dir=data_dir)
    assert len(list(ds)) == persons == 2
    ds = datasets.load_split("pascal_context", "train",
                             ["human_parts", "semseg"], (40, 56), 1, None,
                             data_dir=data_dir)
    assert len(list(ds)) == 3
    # Any sequence of tasks, a tuple too.
    examples, _, _, _ = datasets.resolve("pascal_context", data_dir).examples(
        "train", ("human_parts",))
    assert len(list(examples)) == persons


@pytest.mark.parametrize("fault,match", [
    ("parts_without_anno", "PascalParts"),
    ("missing_saliency", "SaliencyDistill"),
    ("missing_class_list", "nyu_classes.json"),
])
def test_bad_files_are_named(tmp_path, fault, match):
    manual_dir, data_dir = str(tmp_path / "manual"), str(tmp_path / "tfds")
    write_fixtures.write_pascal_mt(manual_dir)
    root = os.path.join(manual_dir, "PASCAL_MT")
    if fault == "parts_without_anno":
        scipy.io.savemat(os.path.join(root, "PascalParts", "2008_000000.mat"),
                         {"annotation": np.zeros(3)})
    elif fault == "missing_saliency":
        os.remove(os.path.join(root, "SaliencyDistill", "2010_000001.png"))
    else:
        os.remove(os.path.join(root, "json", "nyu_classes.json"))
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        datasets.prepare("pascal_context", data_dir, manual_dir)
    assert not datasets.is_prepared("pascal_context", data_dir)
