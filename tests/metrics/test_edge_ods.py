"""ODS / OIS / AP on hand-checkable boundary maps."""

import numpy as np
import pytest

from rmtl_tf.metrics import edge_ods
from rmtl_tf.metrics.edge_ods import (EdgeODS, average_precision,
                                      image_counts, precision_recall)

# 30 x 40 images: diagonal 50 px; max_dist 0.05 -> 2.5 px tolerance.
SHAPE, MAX_DIST = (30, 40), 0.05


def _line(row, cols=range(5, 35), value=1.0):
    m = np.zeros(SHAPE, np.float32)
    m[row, list(cols)] = value
    return m


def _score(gts, preds, **kwargs):
    metric = EdgeODS(MAX_DIST, **kwargs)
    metric.update(np.stack(gts), np.stack(preds))
    return metric.result()


def test_perfect_and_shifted_predictions():
    gt = _line(10)
    assert _score([gt], [gt])["ods_f"] == 1.0
    assert _score([gt], [_line(12)])["ods_f"] == 1.0  # 2 px <= 2.5 px.
    far = _score([gt], [_line(13)])  # 3 px: nothing matches.
    assert far["ods_f"] == 0.0 and far["ods_precision"] == 0.0


def test_half_recall_and_false_positives():
    gt = _line(10)
    half = _score([gt], [_line(10, range(5, 20))])
    assert half["ods_precision"] == 1.0 and half["ods_recall"] == 0.5
    assert half["ods_f"] == pytest.approx(2 / 3)
    extra = _score([gt], [gt + _line(20)])  # 30 matched of 60 predicted.
    assert extra["ods_precision"] == 0.5 and extra["ods_recall"] == 1.0
    assert extra["ods_f"] == pytest.approx(2 / 3)


def test_one_to_one_matching_counts_a_double_line_once():
    gt = _line(10)
    double = _line(9) + _line(11)  # Both within tolerance, 60 predicted.
    result = _score([gt], [double], thin_prediction=False)
    assert result["ods_recall"] == 1.0 and result["ods_precision"] == 0.5


def test_thick_prediction_is_thinned_first():
    gt = _line(10)
    thick = _line(9) + _line(10) + _line(11)
    # Thinning leaves the middle row less one pixel at each end (28 px).
    thinned = _score([gt], [thick])
    assert thinned["ods_precision"] == 1.0
    assert thinned["ods_recall"] == pytest.approx(28 / 30)
    unthinned = _score([gt], [thick], thin_prediction=False)
    assert unthinned["ods_precision"] == pytest.approx(1 / 3)


def test_best_threshold_is_chosen():
    # The true line at 0.8, a distractor at 0.3: thresholds above 0.3 keep
    # only the true line (F 1), those up to 0.3 keep both (F 2/3).
    pred = _line(10, value=0.8) + _line(20, value=0.3)
    result = _score([_line(10)], [pred])
    assert result["ods_f"] == 1.0
    assert 0.3 < result["ods_threshold"] <= 0.8
    f = 2 * np.array(result["precision"]) * np.array(result["recall"]) / (
        np.array(result["precision"]) + np.array(result["recall"]) + 1e-12)
    t = np.array(result["thresholds"])
    np.testing.assert_allclose(f[t <= 0.3], 2 / 3)
    np.testing.assert_allclose(f[(t > 0.3) & (t <= 0.8)], 1.0)
    np.testing.assert_allclose(f[t > 0.8], 0.0)


def test_ods_against_ois_on_two_images():
    # Image A: the true line at 0.8, a distractor line at 0.5 (best t in
    # (0.5, 0.8]). Image B: the true line at 0.4 (best t <= 0.4).
    gt = _line(10)
    a = _line(10, value=0.8) + _line(20, value=0.5)
    b = _line(10, value=0.4)
    result = _score([gt, gt], [a, b], thresholds=(0.3, 0.6))
    # t = 0.3: A 30 of 60 predicted, B 30 of 30; recall 60/60.
    # t = 0.6: A 30 of 30, B nothing; recall 30/60. ODS = max(0.8, 2/3).
    assert result["ods_f"] == pytest.approx(2 * (60 / 90) / (60 / 90 + 1))
    assert result["ods_threshold"] == 0.3
    # OIS: A at 0.6, B at 0.3: all 60 found with 60 predicted.
    assert result["ois_f"] == 1.0


def test_transposed_inputs_give_the_same_scores():
    # Thinning follows MATLAB's asymmetric subiterations, which may treat a
    # junction and its transpose differently; the lines here do not touch
    # and the predicted pixels are isolated (never thinned), so the scores
    # must agree exactly.
    rng = np.random.default_rng(0)
    gt = np.zeros(SHAPE, np.float32)
    gt[8, 3:37], gt[12:27, 30] = 1.0, 1.0
    gt[np.arange(12, 27), np.arange(3, 18)] = 1.0
    pred = np.zeros(SHAPE, np.float32)
    lattice = rng.random((SHAPE[0] // 2, SHAPE[1] // 2)) < 0.3
    pred[::2, ::2] = lattice * rng.random(lattice.shape)
    a = _score([gt], [pred])
    b = _score([gt.T], [pred.T])
    for key in ("ods_f", "ois_f", "ap", "ods_threshold"):
        assert a[key] == b[key], key
    assert 0 < a["ods_f"] < 1


def test_empty_maps_follow_seism_conventions():
    empty = np.zeros(SHAPE, np.float32)
    # No ground truth: recall 1, precision 0; no prediction: recall 0,
    # precision 1; F 0 either way.
    assert _score([empty], [_line(5)])["ods_f"] == 0.0
    assert _score([_line(5)], [empty])["ods_f"] == 0.0
    nothing = _score([empty], [empty])
    assert nothing["ods_f"] == 0.0 and nothing["ods_recall"] == 1.0
    p, r = precision_recall([0, 3, 0], [0, 6, 6], [0, 3, 0], [0, 3, 0])
    np.testing.assert_allclose(p, [0.0, 1.0, 1.0])
    np.testing.assert_allclose(r, [1.0, 0.5, 0.0])


def test_ignored_pixels_leave_both_maps():
    gt = _line(10)
    gt[:, 30:] = 255  # The last 5 columns of the line are ignored.
    pred = _line(10) + _line(20, range(30, 40))  # False positives ignored.
    counts = image_counts(pred, gt, MAX_DIST, thresholds=(0.5,))
    np.testing.assert_array_equal(counts, [[25, 25, 25, 25]])


def test_average_precision_by_hand():
    # Recall 0.5 at precision 1, recall 1 at precision 0.5: the linear
    # interpolation at recall 0.50, 0.51, ..., 1.00 sums to 38.25.
    assert average_precision([0.5, 1.0], [1.0, 0.5]) == pytest.approx(
        0.3825)
    assert average_precision([1.0], [1.0]) == 0.0  # One point: no area.


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="differ in shape"):
        EdgeODS(MAX_DIST).update(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))
    with pytest.raises(ValueError, match="thresholds"):
        EdgeODS(MAX_DIST, thresholds=(0.0, 0.5))
    with pytest.raises(ValueError, match="max_dist=2"):
        EdgeODS(2)
    with pytest.raises(ValueError, match="before any update"):
        EdgeODS(MAX_DIST).result()


def _noisy_edges(rng, count):
    """`count` ground-truth line maps (some pixels ignored) and blurred,
    noisy predictions of them."""
    gts, preds = [], []
    for _ in range(count):
        gt = np.zeros(SHAPE, np.uint8)
        gt[rng.integers(3, 27), 4:36] = 1
        gt[4:26, rng.integers(3, 37)] = 1
        gt[rng.random(SHAPE) < 0.02] = 255
        pred = np.clip(0.8 * (gt == 1) + 0.4 * rng.random(SHAPE), 0, 1)
        gts.append(gt)
        preds.append(pred.astype(np.float32))
    return np.stack(gts), np.stack(preds)


@pytest.mark.parametrize("workers", [1, 3])
def test_background_threads_give_the_counts_of_the_loop(workers):
    gts, preds = _noisy_edges(np.random.default_rng(0), 10)
    serial, threaded = EdgeODS(MAX_DIST), EdgeODS(MAX_DIST, workers=workers)
    for start in range(0, 10, 4):  # Batches of 4, 4 and 2 images.
        serial.update(gts[start:start + 4], preds[start:start + 4])
        threaded.update(gts[start:start + 4], preds[start:start + 4])
        # Bounded: at most 2 images per thread wait, whatever the split.
        assert len(threaded._pending) <= 2 * workers
        gts[start:start + 4] = 0  # The caller reuses its buffers.
        preds[start:start + 4] = 0.0
    expected, got = serial.result(), threaded.result()
    assert expected["ods_f"] > 0.3  # Not a degenerate case.
    np.testing.assert_array_equal(np.stack(threaded.counts),
                                  np.stack(serial.counts))
    assert got == expected
    assert threaded._pool is None  # result() ended the threads.


def test_an_error_in_a_thread_reaches_result(monkeypatch):
    def broken(*args):
        raise RuntimeError("scoring failed on purpose")

    monkeypatch.setattr(edge_ods, "image_counts", broken)
    gts, preds = _noisy_edges(np.random.default_rng(1), 2)
    metric = EdgeODS(MAX_DIST, workers=1)
    metric.update(gts, preds)
    with pytest.raises(RuntimeError, match="on purpose"):
        metric.result()
    assert metric._pool is None and not metric._pending


@pytest.mark.parametrize("workers", [-1, 1.5, True, "2"])
def test_bad_worker_counts_are_named(workers):
    with pytest.raises(ValueError, match=f"workers={workers!r}"):
        EdgeODS(MAX_DIST, workers=workers)
