"""The augmentation keeps every label consistent with the image; checked
against numpy, eagerly and inside Dataset.map."""

import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.data import transforms

H, W = 12, 16
FILL = np.array(transforms.IMAGE_FILL, np.float32)


def _example(seed=0, height=H, width=W):
    """Image values <= 60 (never the fill), labels without invalid pixels."""
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(height, width, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return {
        "image": rng.uniform(0, 60, (height, width, 3)).astype(np.float32),
        "semseg": rng.integers(0, 5, (height, width, 1)).astype(np.int32),
        "human_parts": rng.integers(0, 7, (height, width, 1)).astype(
            np.int32),
        "depth": rng.uniform(1, 5, (height, width, 1)).astype(np.float32),
        "normals": normals.astype(np.float32),
        "edge": rng.integers(0, 2, (height, width, 1)).astype(np.float32),
        "saliency": rng.integers(0, 2, (height, width, 1)).astype(
            np.float32),
    }


def _numpy(features):
    return {k: np.asarray(v) for k, v in features.items()}


def test_flip_twice_is_identity_and_negates_normals_x():
    ex = _example()
    once = _numpy(transforms.flip_left_right(ex))
    twice = _numpy(transforms.flip_left_right(once))
    for key, value in ex.items():
        np.testing.assert_array_equal(twice[key], value, err_msg=key)
    np.testing.assert_array_equal(once["semseg"], ex["semseg"][:, ::-1])
    expected = ex["normals"][:, ::-1] * np.array([-1, 1, 1], np.float32)
    np.testing.assert_array_equal(once["normals"], expected)


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_scale_matches_numpy_nearest_and_divides_depth(factor):
    ex = _example()
    out = _numpy(transforms.scale(ex, factor))

    def pick(a):
        if factor == 2.0:  # Half-pixel nearest: output pixel i reads i // 2.
            return np.repeat(np.repeat(a, 2, 0), 2, 1)
        return a[1::2, 1::2]  # Output pixel i reads 2 i + 1.

    for key in ("semseg", "human_parts", "normals", "edge", "saliency"):
        np.testing.assert_array_equal(out[key], pick(ex[key]), err_msg=key)
    np.testing.assert_allclose(out["depth"], pick(ex["depth"]) / factor,
                               rtol=1e-6)
    assert out["image"].shape == (int(H * factor), int(W * factor), 3)


def test_scale_rounds_sizes_down_as_the_authors():
    out = transforms.scale(_example(height=13, width=15), 0.75)
    assert out["image"].shape[:2] == (9, 11)  # int(13 * .75), int(15 * .75)
    assert out["semseg"].shape[:2] == (9, 11)


def test_pad_is_centred_with_fill_values():
    ex = _example()
    out = _numpy(transforms.pad_to_size(ex, (H + 5, W + 2)))
    top, left = 2, 1  # delta // 2 before, the rest after.
    inside = (slice(top, top + H), slice(left, left + W))
    for key, value in ex.items():
        np.testing.assert_array_equal(out[key][inside], value, err_msg=key)
    outside = np.ones((H + 5, W + 2), bool)
    outside[inside] = False
    np.testing.assert_array_equal(out["image"][outside],
                                  np.broadcast_to(FILL, (outside.sum(), 3)))
    for key, fill in transforms.LABEL_FILL.items():
        assert np.all(out[key][outside] == fill), key


def test_random_crop_takes_the_same_window_of_every_entry():
    ex = _example()
    # Encode coordinates in the image to recover the crop's offset.
    rows, cols = np.mgrid[0:H, 0:W]
    ex["image"] = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(
        np.float32)
    out = _numpy(transforms.random_crop(ex, (7, 9), tf.constant([3, 4])))
    top, left = int(out["image"][0, 0, 0]), int(out["image"][0, 0, 1])
    for key, value in ex.items():
        np.testing.assert_array_equal(out[key],
                                      value[top:top + 7, left:left + 9],
                                      err_msg=key)


def test_crop_offsets_cover_the_whole_range():
    ex = {"image": np.zeros((5, 4, 3), np.float32)}
    ex["image"][..., 0] = np.arange(5)[:, None]
    tops = {int(transforms.random_crop(ex, (3, 4), tf.constant([s, 0]))
                ["image"][0, 0, 0]) for s in range(60)}
    assert tops == {0, 1, 2}  # Inclusive of the last offset, as randint.


def _check_consistent(out, ex):
    """Invalid pixels exactly where the image is padding; valid labels come
    from the input's values; normals unit length."""
    padded = np.all(out["image"] == FILL, axis=-1)
    for key in ("semseg", "human_parts", "edge", "saliency"):
        values = out[key][..., 0]
        assert np.array_equal(values == 255, padded), key
        assert set(np.unique(values[~padded])) <= set(np.unique(ex[key]))
    assert np.array_equal(out["depth"][..., 0] == 0, padded)
    norms = np.linalg.norm(out["normals"], axis=-1)
    np.testing.assert_allclose(norms[~padded], 1.0, atol=1e-5)
    assert np.all(norms[padded] == 0)


def test_train_transform_keeps_labels_consistent():
    ex = _example()
    sizes = set()
    for s in range(40):
        out = _numpy(transforms.train_transform(ex, (10, 14),
                                                tf.constant([s, 7])))
        assert all(v.shape[:2] == (10, 14) for v in out.values())
        _check_consistent(out, ex)
        sizes.add(int((out["depth"] > 0).sum()))
    # Valid pixels: 6x8 at scale 0.5, 9x12 at 0.75, the whole crop above.
    assert sizes == {48, 108, 140}


def test_depth_follows_the_scale():
    ex = _example()
    ex["depth"] = np.full((H, W, 1), 3.0, np.float32)
    values = set()
    for s in range(40):
        depth = np.asarray(transforms.train_transform(
            ex, (10, 14), tf.constant([s, 1]))["depth"])
        values |= set(np.unique(depth[depth > 0]).tolist())
    expected = np.array([3.0 / f for f in transforms.SCALES])
    assert all(np.abs(expected - v).min() < 1e-5 for v in values)
    assert len(values) >= 4


def test_same_seed_same_draw_eager_and_in_dataset_map():
    ex = _example()
    seeds = [tf.constant([s, 5], tf.int64) for s in range(4)]
    eager = [_numpy(transforms.train_transform(ex, (10, 14), s))
             for s in seeds]
    ds = tf.data.Dataset.from_tensor_slices(tf.stack(seeds)).map(
        lambda s: transforms.train_transform(ex, (10, 14), s))
    for a, b in zip(eager, ds):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key].numpy(),
                                          err_msg=key)
    assert not np.array_equal(eager[0]["image"], eager[1]["image"]) or \
        not np.array_equal(eager[2]["image"], eager[3]["image"])


def test_flip_in_dataset_map_twice_is_identity():
    ex = _example()
    ds = tf.data.Dataset.from_tensors(ex).map(transforms.flip_left_right)
    ds = ds.map(transforms.flip_left_right)
    out = next(iter(ds))
    for key, value in ex.items():
        np.testing.assert_array_equal(out[key].numpy(), value, err_msg=key)


def test_eval_transform_pads_small_and_centre_crops_large():
    ex = _example()
    small = _numpy(transforms.eval_transform(ex, (16, 20)))
    np.testing.assert_array_equal(small["semseg"][2:14, 2:18], ex["semseg"])
    large = _numpy(transforms.eval_transform(ex, (8, 10)))
    np.testing.assert_array_equal(large["depth"], ex["depth"][2:10, 3:13])


def test_to_model_inputs_types():
    image, labels = transforms.to_model_inputs(
        _example(), ["semseg", "depth", "human_parts"])
    assert image.dtype == tf.float32 and image.shape == (H, W, 3)
    assert labels["semseg"].shape == (H, W)
    assert labels["semseg"].dtype == tf.int32
    assert labels["human_parts"].shape == (H, W)
    assert labels["depth"].shape == (H, W, 1)
    assert labels["depth"].dtype == tf.float32
