"""Depth errors: hand-computed values and the direct formulas on random
arrays."""

import numpy as np
import pytest

from rmtl_tf.metrics.depth import DepthMetric


def test_hand_computed():
    metric = DepthMetric()
    # Valid pixels (gt, pred): (1, 1.5) (2, 2) (4, 1); gt 0 is ignored.
    metric.update(np.array([[1.0, 2.0, 4.0, 0.0]]),
                  np.array([[1.5, 2.0, 1.0, 9.0]]))
    r = metric.result()
    assert r["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 9) / 3))
    assert r["log_rmse"] == pytest.approx(
        np.sqrt((np.log(1.5)**2 + 0 + np.log(4)**2) / 3))
    assert r["abs_rel"] == pytest.approx((0.5 + 0 + 3 / 4) / 3)
    # Ratios 1.5, 1, 4 against 1.25, 1.5625, 1.953: 1, 2, 2 below.
    assert r["delta1"] == pytest.approx(1 / 3)
    assert r["delta2"] == pytest.approx(2 / 3)
    assert r["delta3"] == pytest.approx(2 / 3)
    assert r["num_pixels"] == 3


def test_random_against_direct_formulas_and_streaming():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 8.0, (4, 6, 7, 1))
    gt[rng.random(gt.shape) < 0.2] = 0.0
    pred = gt * rng.uniform(0.7, 1.4, gt.shape) + 0.1
    metric = DepthMetric()
    metric.update(gt[:2], pred[:2])
    metric.update(gt[2:], pred[2:])
    v = gt > 0
    g, d = gt[v], pred[v]
    r = metric.result()
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean((g - d)**2)))
    assert r["log_rmse"] == pytest.approx(
        np.sqrt(np.mean((np.log(g) - np.log(d))**2)))
    assert r["abs_rel"] == pytest.approx(np.mean(np.abs(g - d) / g))
    assert r["delta1"] == pytest.approx(np.mean(np.maximum(g / d, d / g)
                                                < 1.25))


def test_non_positive_predictions_are_clamped_and_shapes_checked():
    metric = DepthMetric()
    metric.update(np.array([2.0]), np.array([-1.0]))
    r = metric.result()
    assert r["rmse"] == pytest.approx(3.0)
    assert np.isfinite(r["log_rmse"]) and r["delta3"] == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(np.zeros((2, 3)), np.zeros((2, 4)))
