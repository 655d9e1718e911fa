"""The synthetic scenes: deterministic, consistent labels, disjoint splits."""

import numpy as np
import pytest

from rmtl_tf.data import synthetic_dataset, synthetic_scenes


@pytest.fixture(scope="module")
def scene():
    return synthetic_scenes.make_scene(7, 48, 64)


def test_deterministic_by_seed(scene):
    again = synthetic_scenes.make_scene(7, 48, 64)
    other = synthetic_scenes.make_scene(8, 48, 64)
    for key in scene:
        assert np.array_equal(scene[key], again[key]), key
    assert not np.array_equal(scene["image"], other["image"])


def test_shapes_and_dtypes(scene):
    assert scene["image"].shape == (48, 64, 3)
    assert scene["image"].dtype == np.uint8
    assert scene["semseg"].shape == (48, 64)
    for key, channels in (("depth", 1), ("normals", 3), ("edge", 1),
                          ("saliency", 1)):
        assert scene[key].shape == (48, 64, channels), key
        assert scene[key].dtype == np.float32, key


def test_labels_are_consistent(scene):
    semseg, depth = scene["semseg"], scene["depth"][..., 0]
    assert set(np.unique(semseg)) <= set(range(synthetic_scenes.NUM_CLASSES))
    # Saliency is exactly the object classes.
    objects = np.isin(semseg, synthetic_scenes.OBJECT_CLASSES)
    assert np.array_equal(scene["saliency"][..., 0] == 1, objects)
    # Unit normals everywhere; the floor faces up, the wall the camera.
    norms = np.linalg.norm(scene["normals"], axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    np.testing.assert_allclose(scene["normals"][semseg == 1],
                               [[0, 1, 0]] * int((semseg == 1).sum()),
                               atol=1e-6)
    np.testing.assert_allclose(scene["normals"][semseg == 0],
                               [[0, 0, 1]] * int((semseg == 0).sum()),
                               atol=1e-6)
    # Depth is positive and no deeper than the back wall.
    assert depth.min() > 0
    assert depth.max() == pytest.approx(depth[semseg == 0].max())
    # Every class change between neighbours is an edge on both sides.
    edge = scene["edge"][..., 0] == 1
    change = semseg[:, 1:] != semseg[:, :-1]
    assert edge[:, 1:][change].all() and edge[:, :-1][change].all()
    change = semseg[1:] != semseg[:-1]
    assert edge[1:][change].all() and edge[:-1][change].all()
    # Inside a uniform 3x3 region of one surface there is no edge.
    assert not edge.all()


def test_floor_depth_follows_perspective():
    # Floor rows further down the image are closer to the camera.
    scene = synthetic_scenes.make_scene(3, 64, 64)
    floor = scene["semseg"] == 1
    depth = scene["depth"][..., 0]
    rows = [depth[r][floor[r]].mean() for r in range(64) if floor[r].sum()]
    assert len(rows) > 5
    assert all(a >= b - 1e-4 for a, b in zip(rows, rows[1:]))


def test_splits_are_disjoint():
    seeds = {split: set(synthetic_dataset.scene_seeds(split, 1000))
             for split in synthetic_dataset.SPLIT_SEED_OFFSETS}
    names = sorted(seeds)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not seeds[a] & seeds[b], (a, b)


def test_dataset_batches():
    ds = synthetic_dataset.synthetic_dataset(
        "validation", 4, (32, 48), 2, tasks=["semseg", "depth"])
    batches = list(ds)
    assert len(batches) == 2
    image, labels = batches[0]
    assert image.shape == (2, 32, 48, 3) and image.dtype.name == "float32"
    assert set(labels) == {"semseg", "depth"}
    assert labels["semseg"].shape == (2, 32, 48)
    assert labels["depth"].shape == (2, 32, 48, 1)


@pytest.mark.parametrize("kwargs,message", [
    ({"split": "holdout"}, "Unknown split 'holdout'"),
    ({"num_examples": 0}, "num_examples must be > 0"),
    ({"tasks": ["human_parts"]}, "no labels for task 'human_parts'"),
])
def test_bad_arguments(kwargs, message):
    args = {"split": "train", "num_examples": 2, "image_size": (32, 32),
            "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthetic_dataset.synthetic_dataset(**args)


def test_bad_size():
    with pytest.raises(ValueError, match="height must be an int >= 16"):
        synthetic_scenes.make_scene(0, 8, 32)
