"""Depth errors: hand-computed values of the authors' per-image headline
and of the pooled valid-pixel extras, and the direct formulas on random
arrays. (The line-by-line comparison with the authors' `eval_depth` is
tests/metrics/test_authors_protocol.py.)"""

import numpy as np
import pytest

from rmtl_tf.metrics.depth import MIN_DEPTH, DepthMetric


def test_hand_computed_per_image_headline_and_valid_pixel_extras():
    metric = DepthMetric()
    # Image 1 (gt, pred): (1, 1.5) (2, 2) (4, 1) (0, 9): the label-0 pixel
    # counts in the headline, as 1e-9, and not in the extras.
    metric.update(np.array([[1.0, 2.0, 4.0, 0.0]]),
                  np.array([[1.5, 2.0, 1.0, 9.0]]))
    # Image 2: (2, 3) (2, 1).
    metric.update(np.array([[2.0, 2.0]]), np.array([[3.0, 1.0]]))
    r = metric.result()
    rmse1 = np.sqrt((0.25 + 0 + 9 + 81) / 4)  # 4.75
    assert r["rmse"] == pytest.approx((rmse1 + 1.0) / 2)
    log1 = np.sqrt((np.log(1.5)**2 + 0 + np.log(4)**2
                    + (np.log(MIN_DEPTH) - np.log(9))**2) / 4)
    log2 = np.sqrt((np.log(1.5)**2 + np.log(2)**2) / 2)
    # The median of two images is their mean.
    assert r["log_rmse"] == pytest.approx((log1 + log2) / 2, rel=1e-6)
    assert r["rmse_valid_pixels"] == pytest.approx(
        np.sqrt((0.25 + 0 + 9 + 1 + 1) / 5))
    assert r["abs_rel"] == pytest.approx((0.5 + 0 + 3 / 4 + 0.5 + 0.5) / 5)
    # Ratios 1.5, 1, 4, 1.5, 2 against 1.25, 1.5625, 1.953.
    assert r["delta1"] == pytest.approx(1 / 5)
    assert r["delta2"] == pytest.approx(3 / 5)
    assert r["delta3"] == pytest.approx(3 / 5)
    assert r["num_pixels"] == 5 and r["num_images"] == 2


def test_log_rmse_is_the_median_over_images():
    metric = DepthMetric()
    for factor in (1.1, 2.0, 8.0):  # Per-image log errors log(factor).
        metric.update(np.full((1, 2, 3, 1), 2.0),
                      np.full((1, 2, 3, 1), 2.0 * factor))
    assert metric.result()["log_rmse"] == pytest.approx(np.log(2.0),
                                                        rel=1e-6)


def test_random_against_direct_formulas_and_streaming():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 8.0, (4, 6, 7, 1)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.2] = 0.0
    pred = (gt * rng.uniform(0.7, 1.4, gt.shape) + 0.1).astype(np.float32)
    metric = DepthMetric()
    metric.update(gt[:2], pred[:2])
    metric.update(gt[2:], pred[2:])
    g64, d64 = gt.astype(np.float64), pred.astype(np.float64)
    g_sub = np.where(g64 == 0, MIN_DEPTH, g64)
    per_image = np.sqrt(((g_sub - d64)**2).mean(axis=(1, 2, 3)))
    per_image_log = np.sqrt(((np.log(g_sub) - np.log(d64))**2).mean(
        axis=(1, 2, 3)))
    r = metric.result()
    assert r["rmse"] == pytest.approx(per_image.mean(), rel=1e-6)
    assert r["log_rmse"] == pytest.approx(np.median(per_image_log), rel=1e-6)
    v = gt > 0
    g, d = g64[v], d64[v]
    assert r["rmse_valid_pixels"] == pytest.approx(np.sqrt(np.mean((g - d)**2)))
    assert r["log_rmse_valid_pixels"] == pytest.approx(
        np.sqrt(np.mean((np.log(g) - np.log(d))**2)))
    assert r["abs_rel"] == pytest.approx(np.mean(np.abs(g - d) / g))
    assert r["delta1"] == pytest.approx(np.mean(np.maximum(g / d, d / g)
                                                < 1.25))


def test_non_positive_predictions_are_clamped_and_shapes_checked():
    metric = DepthMetric()
    metric.update(np.array([[2.0]]), np.array([[-1.0]]))
    r = metric.result()
    assert r["rmse"] == pytest.approx(2.0)  # -1 -> 1e-9.
    assert r["rmse_valid_pixels"] == pytest.approx(3.0)
    assert np.isfinite(r["log_rmse"]) and r["delta3"] == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="before any update"):
        DepthMetric().result()
