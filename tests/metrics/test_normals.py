"""Angle errors: hand-computed angles, and numpy's statistics of the
per-pixel angles on random normals."""

import numpy as np
import pytest

from rmtl_tf.metrics.normals import NormalsMetric


def test_hand_computed_angles():
    s = np.sqrt(0.5)
    truth = np.array([[[0, 0, 1], [0, 0, 2], [1, 0, 0], [0, 0, 0]]], float)
    # 90, 0 (the prediction is normalized first), 45; zero truth ignored.
    pred = np.array([[[1, 0, 0], [0, 0, 5], [s, s, 0], [1, 0, 0]]], float)
    metric = NormalsMetric()
    metric.update(truth, pred)
    r = metric.result()
    assert r["mean"] == pytest.approx(45.0)
    assert r["median"] == pytest.approx(45.0, abs=1e-3)
    assert r["rmse"] == pytest.approx(np.sqrt((90**2 + 0 + 45**2) / 3))
    assert r["within_11.25"] == pytest.approx(100 / 3)
    assert r["within_30"] == pytest.approx(100 / 3)
    assert r["num_pixels"] == 3


def test_random_against_numpy_statistics():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((3, 8, 9, 3))
    truth /= np.linalg.norm(truth, axis=-1, keepdims=True)
    truth[rng.random(truth.shape[:-1]) < 0.1] = 0.0
    pred = truth * 3 + 0.8 * rng.standard_normal(truth.shape)
    metric = NormalsMetric()
    for i in range(3):
        metric.update(truth[i:i + 1], pred[i:i + 1])
    valid = np.any(truth != 0, axis=-1)
    t = truth[valid]
    p = pred[valid] / np.linalg.norm(pred[valid], axis=-1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip((t * p).sum(-1), -1, 1)))
    r = metric.result()
    assert r["mean"] == pytest.approx(angle.mean())
    assert r["median"] == pytest.approx(np.median(angle), abs=1e-3)
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean(angle**2)))
    for w in (11.25, 22.5, 30):
        assert r[f"within_{w:g}"] == pytest.approx(100 * np.mean(angle < w))


def test_even_count_median_and_bad_shapes():
    metric = NormalsMetric()
    metric.update(np.array([[1.0, 0, 0], [1.0, 0, 0]]),
                  np.array([[1.0, 0, 0], [0, 1.0, 0]]))  # 0 and 90.
    assert metric.result()["median"] == pytest.approx(45.0, abs=1e-3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        metric.update(np.zeros((2, 2)), np.zeros((2, 2)))
