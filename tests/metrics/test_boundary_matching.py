"""One-to-one matching within a tolerance: hand cases, and the matched
count against an independent assignment solver on random maps."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from rmtl_tf.metrics.boundary_matching import (correspond_pixels,
                                               tolerance_pixels)

# 30 x 40 image: diagonal 50 px; max_dist 0.05 -> 2.5 px tolerance.
SHAPE, MAX_DIST = (30, 40), 0.05


def _line(row, cols=range(5, 35)):
    m = np.zeros(SHAPE, bool)
    m[row, list(cols)] = True
    return m


def _max_matching(pred, gt, radius):
    """Maximum matching by a dense assignment: cost -1 for pairs within the
    radius, 0 otherwise; the matched pairs are the -1 entries taken."""
    p, g = np.argwhere(pred), np.argwhere(gt)
    if not len(p) or not len(g):
        return 0
    d = np.sqrt(((p[:, None, :] - g[None, :, :])**2).sum(-1))
    cost = np.where(d <= radius, -1.0, 0.0)
    rows, cols = linear_sum_assignment(cost)
    return int(-cost[rows, cols].sum())


def test_tolerance_is_a_fraction_of_the_diagonal():
    assert tolerance_pixels(SHAPE, MAX_DIST) == pytest.approx(2.5)
    assert tolerance_pixels((425, 560), 0.011) == pytest.approx(
        0.011 * np.hypot(425, 560))
    with pytest.raises(ValueError, match="max_dist=1.5"):
        tolerance_pixels(SHAPE, 1.5)


def test_shifted_line_within_and_beyond_tolerance():
    gt = _line(10)
    for shift, expected in ((0, 30), (1, 30), (2, 30), (3, 0)):
        mp, mg = correspond_pixels(_line(10 + shift), gt, MAX_DIST)
        assert mp.sum() == mg.sum() == expected, shift


def test_distance_at_the_tolerance_matches_and_beyond_does_not():
    # 3-4-5 triangle: distance 5 with a tolerance of exactly 5 (0.1 x 50).
    gt, pred = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    gt[10, 10], pred[13, 14] = True, True
    assert correspond_pixels(pred, gt, 0.1)[0].sum() == 1
    assert correspond_pixels(pred, gt, 0.099)[0].sum() == 0


def test_matching_is_one_to_one():
    gt, pred = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    gt[10, 10] = True
    pred[10, 9:12] = True  # Three candidates for one boundary pixel.
    mp, mg = correspond_pixels(pred, gt, MAX_DIST)
    assert mp.sum() == 1 and mg.sum() == 1 and mg[10, 10]
    # A greedy nearest-first matching would pair (10, 10)-(10, 10) and
    # leave (10, 12) unmatched; the maximum matching pairs all three.
    gt, pred = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    gt[10, [8, 10, 12]] = True
    pred[10, [10, 12, 14]] = True
    assert correspond_pixels(pred, gt, MAX_DIST)[0].sum() == 3


def test_empty_maps():
    empty = np.zeros(SHAPE, bool)
    for pred, gt in ((empty, empty), (_line(5), empty), (empty, _line(5))):
        mp, mg = correspond_pixels(pred, gt, MAX_DIST)
        assert mp.sum() == mg.sum() == 0


def test_random_maps_match_the_assignment_solver_and_transpose():
    rng = np.random.default_rng(0)
    radius = tolerance_pixels(SHAPE, MAX_DIST)
    for density in (0.03, 0.1, 0.3):
        pred = rng.random(SHAPE) < density
        gt = rng.random(SHAPE) < density
        mp, mg = correspond_pixels(pred, gt, MAX_DIST)
        assert mp.sum() == mg.sum() == _max_matching(pred, gt, radius)
        assert np.all(pred[mp]) and np.all(gt[mg])
        tp, tg = correspond_pixels(pred.T, gt.T, MAX_DIST)
        assert tp.sum() == mp.sum()


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"\(30, 40\) and \(40, 30\)"):
        correspond_pixels(np.zeros(SHAPE), np.zeros(SHAPE[::-1]), MAX_DIST)
