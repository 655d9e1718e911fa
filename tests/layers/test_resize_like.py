"""Tests for `ResizeLike`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.layers.resize_like import ResizeLike
from rmtl_tf.testing import run_layer_test


def _features(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def bilinear_ref(x, height, width):
    """Bilinear resize with half-pixel centers (TF 2 semantics), in numpy."""
    x = np.asarray(x, np.float64)

    def weights(out_size, in_size):
        coords = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
        coords = np.clip(coords, 0, in_size - 1)
        lower = np.floor(coords).astype(int)
        upper = np.minimum(lower + 1, in_size - 1)
        return lower, upper, coords - lower

    top, bottom, fy = weights(height, x.shape[1])
    left, right, fx = weights(width, x.shape[2])
    rows = (x[:, top] * (1 - fy)[None, :, None, None]
            + x[:, bottom] * fy[None, :, None, None])
    return (rows[:, :, left] * (1 - fx)[None, None, :, None]
            + rows[:, :, right] * fx[None, None, :, None])


@pytest.mark.parametrize("source,target", [
    ((4, 4), (8, 8)),
    ((5, 3), (16, 10)),
    ((8, 6), (4, 3)),
])
def test_bilinear_matches_numpy(source, target):
    x = _features((2, *source, 3))
    reference = np.zeros((2, *target, 1), "float32")
    y = ResizeLike()([x, reference])
    assert tuple(y.shape) == (2, *target, 3)
    np.testing.assert_allclose(y, bilinear_ref(x, *target), atol=1e-5)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_matches_tf_image_resize(interpolation):
    x = _features((2, 5, 3, 4))
    reference = np.zeros((2, 11, 8, 2), "float32")
    y = ResizeLike(interpolation=interpolation)([x, reference])
    expected = tf.image.resize(x, (11, 8), method=interpolation)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    if interpolation == "nearest":  # Copies, never blends.
        assert set(np.unique(y)) <= set(np.unique(x))


def test_same_size_is_identity():
    x = _features((2, 6, 5, 3))
    y = ResizeLike()([x, np.zeros((2, 6, 5, 7), "float32")])
    np.testing.assert_array_equal(y, x)


def test_compute_output_shape():
    layer = ResizeLike()
    assert layer.compute_output_shape(
        ((2, 4, 4, 3), (2, 16, 12, 1))) == (2, 16, 12, 3)
    assert layer.compute_output_shape(
        ((None, None, None, 3), (None, None, None, 1))) == (
            None, None, None, 3)


def _dynamic_model(interpolation="bilinear"):
    features = keras.Input((None, None, 3))
    reference = keras.Input((None, None, 1))
    outputs = ResizeLike(interpolation=interpolation)([features, reference])
    assert tuple(outputs.shape) == (None, None, None, 3)
    return keras.Model([features, reference], outputs)


# (features hw, reference hw): equal sizes too, at run time only.
SIZES = [((4, 4), (8, 8)), ((5, 3), (10, 7)), ((6, 6), (6, 6))]


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_unknown_spatial_dims_in_functional_model(interpolation):
    model = _dynamic_model(interpolation)
    # Several sizes through `predict` make Keras retrace with unknown
    # height and width (`reduce_retracing`).
    for i, (source, target) in enumerate(SIZES):
        x = _features((2, *source, 3), seed=i)
        reference = np.zeros((2, *target, 1), "float32")
        expected = tf.image.resize(x, target, method=interpolation)
        np.testing.assert_allclose(
            model.predict([x, reference], verbose=0), expected, atol=1e-6)


def test_unknown_spatial_dims_in_tf_function():
    model = _dynamic_model()
    run = tf.function(lambda x, ref: model([x, ref]), input_signature=[
        tf.TensorSpec((None, None, None, 3)),
        tf.TensorSpec((None, None, None, 1))])
    for i, (source, target) in enumerate(SIZES):
        x = _features((2, *source, 3), seed=i)
        reference = np.zeros((2, *target, 1), "float32")
        np.testing.assert_allclose(run(x, reference),
                                   bilinear_ref(x, *target), atol=1e-5)


def test_layer_checks(tmp_path):
    inputs = [_features((2, 4, 4, 3)), np.zeros((2, 8, 6, 1), "float32")]
    run_layer_test(ResizeLike, dict(interpolation="nearest"), inputs,
                   (2, 8, 6, 3), tmp_dir=tmp_path)


def test_keras_save_load_with_unknown_spatial_dims(tmp_path):
    model = _dynamic_model("nearest")
    path = str(tmp_path / "resize.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _features((2, 3, 5, 3))
    reference = np.zeros((2, 7, 9, 1), "float32")
    np.testing.assert_array_equal(loaded([x, reference]),
                                  model([x, reference]))


@pytest.mark.parametrize("interpolation", ["bicubic", "area", "Bilinear"])
def test_bad_interpolation_raises(interpolation):
    with pytest.raises(ValueError,
                       match=f"Received: interpolation='{interpolation}'"):
        ResizeLike(interpolation=interpolation)
