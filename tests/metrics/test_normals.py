"""Angle errors: hand-computed angles, numpy's statistics of the per-pixel
angles on random normals, the authors' skip rule and their 8-bit PNG round
trip. (The line-by-line comparison with the authors' `eval_normals` is
tests/metrics/test_authors_protocol.py.)"""

import numpy as np
import pytest

from rmtl_tf.metrics.normals import NormalsMetric


def test_hand_computed_angles():
    s = np.sqrt(0.5)
    truth = np.array([[[0, 0, 1], [0, 0, 2], [1, 0, 0], [0, 0, 0]]], float)
    # 90, 0 (the prediction is normalized first), 45; zero truth ignored.
    pred = np.array([[[1, 0, 0], [0, 0, 5], [s, s, 0], [1, 0, 0]]], float)
    metric = NormalsMetric(png_round_trip=False)
    metric.update(truth, pred)
    r = metric.result()
    assert r["mean"] == pytest.approx(45.0)
    assert r["median"] == pytest.approx(45.0, abs=1e-3)
    assert r["rmse"] == pytest.approx(np.sqrt((90**2 + 0 + 45**2) / 3))
    assert r["within_11.25"] == pytest.approx(100 / 3)
    assert r["within_30"] == pytest.approx(100 / 3)
    assert r["num_pixels"] == 3 and r["num_images"] == 1


def test_random_against_numpy_statistics():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((3, 8, 9, 3))
    truth /= np.linalg.norm(truth, axis=-1, keepdims=True)
    truth[rng.random(truth.shape[:-1]) < 0.1] = 0.0
    pred = truth * 3 + 0.8 * rng.standard_normal(truth.shape)
    pred /= np.linalg.norm(pred, axis=-1, keepdims=True)
    metric = NormalsMetric()
    for i in range(3):
        metric.update(truth[i:i + 1], pred[i:i + 1])
    # The prediction as read back from an 8-bit PNG of (n + 1) / 2.
    stored = np.floor(np.clip((pred + 1) / 2 * 255, 0, 255) + 0.5)
    read = 2 * stored / 255 - 1
    valid = np.any(truth != 0, axis=-1)
    t = truth[valid]
    p = read[valid] / np.linalg.norm(read[valid], axis=-1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip((t * p).sum(-1), -1, 1)))
    r = metric.result()
    assert r["mean"] == pytest.approx(angle.mean(), rel=1e-5)
    assert r["median"] == pytest.approx(np.median(angle), abs=2e-3)
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean(angle**2)), rel=1e-5)
    for w in (11.25, 22.5, 30):
        assert r[f"within_{w:g}"] == pytest.approx(100 * np.mean(angle < w),
                                                   abs=1.0)


def test_the_png_round_trip_changes_the_score():
    truth = np.zeros((1, 1, 2, 3))
    truth[..., 2] = 1.0
    angle = np.radians(0.1)  # Below the 8-bit step of about 0.45 degrees.
    pred = np.broadcast_to([np.sin(angle), 0, np.cos(angle)], truth.shape)
    exact = NormalsMetric(png_round_trip=False)
    exact.update(truth, pred)
    # float32 arccos, as theirs: 0.0989 near cos = 1.
    assert exact.result()["mean"] == pytest.approx(0.1, abs=2e-3)
    stored = NormalsMetric()
    stored.update(truth, pred)
    # x = sin(0.1 deg) and y = 0 are both stored as 128 and read back as
    # 2 * 128 / 255 - 1 = 1/255, z as 1: atan(sqrt(2) / 255) = 0.318 deg.
    assert stored.result()["mean"] == pytest.approx(
        np.degrees(np.arctan(np.sqrt(2) / 255)), abs=1e-4)


def test_all_zero_label_images_are_skipped():
    truth = np.zeros((2, 2, 2, 3))
    truth[1, ..., 0] = 1.0
    pred = np.zeros((2, 2, 2, 3))
    pred[..., 1] = 1.0  # 90 degrees off where scored.
    metric = NormalsMetric(png_round_trip=False)
    metric.update(truth, pred)
    r = metric.result()
    assert r["num_images"] == 1 and r["skipped_images"] == 1
    assert r["num_pixels"] == 4 and r["mean"] == pytest.approx(90.0,
                                                               abs=1e-4)


def test_even_count_median_and_bad_shapes():
    metric = NormalsMetric(png_round_trip=False)
    metric.update(np.array([[1.0, 0, 0], [1.0, 0, 0]]),
                  np.array([[1.0, 0, 0], [0, 1.0, 0]]))  # 0 and 90.
    assert metric.result()["median"] == pytest.approx(45.0, abs=1e-3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        metric.update(np.zeros((2, 2)), np.zeros((2, 2)))
