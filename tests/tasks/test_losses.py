"""The task losses against numpy formulas written out here."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.tasks import losses


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def _numpy_cross_entropy(labels, logits):
    """Mean over labels != 255 of -log softmax(logits)[label]."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    total, count = 0.0, 0
    for index in np.ndindex(labels.shape):
        if labels[index] != 255:
            total -= log_softmax[index][labels[index]]
            count += 1
    return total / count


def _numpy_bce(y, z, pos_weight=None):
    """Mean over y != 255; `pos_weight` w weighs positives w, negatives 1-w."""
    y, z = y.astype(np.float64), z.astype(np.float64)
    valid = y != 255
    y, z = y[valid], z[valid]
    pos = -y * _log_sigmoid(z)
    neg = -(1 - y) * _log_sigmoid(-z)
    if pos_weight is not None:
        pos, neg = pos_weight * pos, (1 - pos_weight) * neg
    return (pos + neg).mean()


def _value(x):
    return float(keras.ops.convert_to_numpy(x))


@pytest.fixture(name="rng")
def fixture_rng():
    return np.random.default_rng(0)


def test_cross_entropy_hand_computed():
    # Two pixels: uniform logits over 4 classes -> log 4; logits (0, ln 3)
    # over 2 classes with label 1 -> -log(3/4). The 255 pixel is ignored.
    logits = np.zeros((1, 1, 3, 4), np.float32)
    logits[0, 0, 1, :2] = [0.0, np.log(3.0)]
    logits[0, 0, 1, 2:] = -1e4  # Two classes out of the race.
    logits[0, 0, 2] = [50.0, -50.0, 3.0, 0.0]
    labels = np.array([[[2, 1, 255]]], np.int32)
    expected = (np.log(4.0) - np.log(0.75)) / 2
    assert _value(losses.masked_sparse_cross_entropy(labels, logits)) == \
        pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("with_channel_axis", [False, True])
def test_cross_entropy_matches_numpy(rng, with_channel_axis):
    logits = rng.normal(0, 3, (2, 5, 6, 7)).astype(np.float32)
    labels = rng.integers(0, 7, (2, 5, 6)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.3] = 255
    expected = _numpy_cross_entropy(labels, logits)
    given = labels[..., None] if with_channel_axis else labels
    got = _value(losses.masked_sparse_cross_entropy(given, logits))
    assert got == pytest.approx(expected, rel=1e-5)


def test_cross_entropy_all_ignored_is_zero_with_finite_gradient():
    logits = tf.Variable(np.ones((1, 2, 2, 3), np.float32))
    labels = np.full((1, 2, 2), 255, np.int32)
    with tf.GradientTape() as tape:
        loss = losses.masked_sparse_cross_entropy(labels, logits)
    assert _value(loss) == 0.0
    grad = tape.gradient(loss, logits).numpy()
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)


def test_masked_l1_hand_computed():
    # Valid pixels: (1, 0, 0) vs (0, 0, 0) and (0, 2, 0) vs (0, 1, 1):
    # absolute errors 1 + 0 + 0 + 0 + 1 + 1 = 3 over 2 pixels x 3 channels.
    # The zero ground-truth pixel (predicted 9s) is ignored.
    y_true = np.array([[[[1, 0, 0], [0, 2, 0], [0, 0, 0]]]], np.float32)
    y_pred = np.array([[[[0, 0, 0], [0, 1, 1], [9, 9, 9]]]], np.float32)
    assert _value(losses.masked_l1(y_true, y_pred)) == pytest.approx(0.5)


@pytest.mark.parametrize("channels", [1, 3])
def test_masked_l1_matches_numpy(rng, channels):
    y_true = rng.normal(size=(2, 4, 5, channels)).astype(np.float32)
    y_true[rng.random((2, 4, 5)) < 0.4] = 0.0  # Whole pixels without GT.
    y_pred = rng.normal(size=y_true.shape).astype(np.float32)
    valid = np.any(y_true != 0, axis=-1)
    # The authors' normalization: the mean over valid elements.
    expected = np.abs(y_true - y_pred)[valid].mean()
    got = _value(losses.masked_l1(y_true, y_pred))
    assert got == pytest.approx(expected, rel=1e-5)


def test_masked_l1_all_ignored_is_zero():
    y_true = np.zeros((1, 2, 2, 3), np.float32)
    assert _value(losses.masked_l1(y_true, np.ones_like(y_true))) == 0.0


def test_binary_cross_entropy_hand_computed():
    # Logit 0 -> p = 1/2: -log(1/2) for either label. Logit ln 3 -> p = 3/4:
    # positive -log(3/4). Ignored pixel: 255.
    y = np.array([[[[1.0], [0.0], [1.0], [255.0]]]], np.float32)
    z = np.array([[[[0.0], [0.0], [np.log(3.0)], [7.0]]]], np.float32)
    expected = (2 * np.log(2.0) - np.log(0.75)) / 3
    assert _value(losses.binary_cross_entropy(y, z)) == \
        pytest.approx(expected, rel=1e-5)
    balanced = (0.95 * np.log(2.0) + 0.05 * np.log(2.0)
                - 0.95 * np.log(0.75)) / 3
    assert _value(losses.balanced_binary_cross_entropy(y, z)) == \
        pytest.approx(balanced, rel=1e-5)


@pytest.mark.parametrize("pos_weight", [None, 0.95])
def test_binary_cross_entropy_matches_numpy(rng, pos_weight):
    z = rng.normal(0, 4, (2, 6, 6, 1)).astype(np.float32)
    y = (rng.random(z.shape) < 0.3).astype(np.float32)
    y[rng.random(z.shape) < 0.2] = 255.0
    y[0, 0, 0, 0] = 0.4  # Soft labels (saliency) are allowed.
    fn = (losses.binary_cross_entropy if pos_weight is None
          else losses.balanced_binary_cross_entropy)
    assert _value(fn(y, z)) == pytest.approx(_numpy_bce(y, z, pos_weight),
                                             rel=1e-5)


def test_binary_cross_entropy_stable_for_large_logits():
    y = np.array([[[[1.0], [0.0]]]], np.float32)
    z = np.array([[[[-100.0], [100.0]]]], np.float32)
    # -log sigmoid(-100) = 100 + log(1 + e^-100) ~ 100 for each pixel.
    assert _value(losses.binary_cross_entropy(y, z)) == \
        pytest.approx(100.0, rel=1e-5)


@pytest.mark.parametrize("fn", [losses.binary_cross_entropy,
                                losses.balanced_binary_cross_entropy])
def test_binary_cross_entropy_all_ignored_is_zero(fn):
    logits = tf.Variable(np.full((1, 2, 2, 1), 30.0, np.float32))
    y = np.full((1, 2, 2, 1), 255.0, np.float32)
    with tf.GradientTape() as tape:
        loss = fn(y, logits)
    assert _value(loss) == 0.0
    assert np.all(tape.gradient(loss, logits).numpy() == 0)
