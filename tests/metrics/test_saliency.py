"""maxF and mIoU: hand-computed on one image, and per-image loops on
random maps."""

import numpy as np
import pytest

from rmtl_tf.metrics.saliency import SaliencyMetric


def test_hand_computed():
    truth = np.array([[1, 1, 0, 0, 255]], np.float32)
    prob = np.array([[0.9, 0.4, 0.6, 0.1, 0.9]], np.float32)
    metric = SaliencyMetric(thresholds=(0.5, 0.3), beta2=0.3)
    metric.update(truth, prob)
    r = metric.result()
    # t = 0.5: mask 1 0 1 0 -> tp 1, fp 1, fn 1: P = R = 1/2, IoU 1/3.
    # t = 0.3: mask 1 1 1 0 -> tp 2, fp 1, fn 0: P 2/3, R 1, IoU 2/3.
    f = [1.3 * 0.25 / (0.3 * 0.5 + 0.5),
         1.3 * (2 / 3) / (0.3 * 2 / 3 + 1)]
    assert r["max_f"] == pytest.approx(max(f))
    assert r["max_f_threshold"] == 0.3
    assert r["miou"] == pytest.approx(2 / 3) and r["miou_threshold"] == 0.3
    np.testing.assert_allclose(r["precision"], [0.5, 2 / 3])
    np.testing.assert_allclose(r["recall"], [0.5, 1.0])


def test_empty_truth_and_mask_has_iou_one():
    metric = SaliencyMetric(thresholds=(0.5,))
    metric.update(np.zeros((1, 3, 3)), np.zeros((1, 3, 3)))
    assert metric.result()["miou"] == 1.0


def test_random_against_per_image_loops():
    rng = np.random.default_rng(0)
    truth = (rng.random((5, 6, 7, 1)) < 0.4).astype(np.float32)
    prob = np.clip(truth * 0.5 + rng.random(truth.shape) * 0.6, 0, 1)
    thresholds = (0.2, 0.45, 0.7)
    metric = SaliencyMetric(thresholds, beta2=1.0)
    metric.update(truth[:2], prob[:2])
    metric.update(truth[2:], prob[2:])
    p, r, j = (np.zeros(3) for _ in range(3))
    for k, t in enumerate(thresholds):
        for gt, pr in zip(truth, prob):
            g, m = gt > 0.5, pr > t
            tp = np.sum(g & m)
            p[k] += tp / np.sum(m) / 5
            r[k] += tp / np.sum(g) / 5
            j[k] += tp / np.sum(g | m) / 5
    res = metric.result()
    f1 = 2 * p * r / (p + r)
    assert res["max_f"] == pytest.approx(f1.max())
    assert res["miou"] == pytest.approx(j.max())
    assert res["miou_at_max_f"] == pytest.approx(j[f1.argmax()])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="beta2=0"):
        SaliencyMetric(beta2=0)
    with pytest.raises(ValueError, match="thresholds"):
        SaliencyMetric(thresholds=())
    with pytest.raises(ValueError, match="differ in shape"):
        SaliencyMetric().update(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
