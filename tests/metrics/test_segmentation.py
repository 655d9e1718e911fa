"""Confusion-matrix metrics: hand-computed values, and a per-class
tp/fp/fn loop (the multi-task survey's formulation) on random labels."""

import numpy as np
import pytest

from rmtl_tf.metrics.segmentation import SegmentationMetric

# Valid pixels (truth, prediction): (0,0) (0,1) (1,1) (1,1) (2,0); 255
# ignored. IoU: class 0 1/3, class 1 2/3, class 2 0; accuracy 3/5.
TRUE = np.array([[[0, 0, 1], [1, 255, 2]]])
PRED = np.array([[[0, 1, 1], [1, 2, 0]]])


def test_hand_computed():
    metric = SegmentationMetric(3)
    metric.update(TRUE, PRED)
    result = metric.result()
    assert result["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    np.testing.assert_allclose(result["per_class_iou"], [1 / 3, 2 / 3, 0])
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)
    assert result["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_absent_classes_count_zero_and_scores_are_argmaxed():
    # The authors' mean: over all classes, an absent class's IoU 0.
    metric = SegmentationMetric(5)
    scores = np.eye(5)[PRED] * 0.9 + 0.02
    metric.update(TRUE[..., None], scores)  # Labels (B, H, W, 1).
    result = metric.result()
    assert result["per_class_iou"][3:] == [0.0, 0.0]
    assert result["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 5)
    assert result["miou_present_classes"] == pytest.approx(
        (1 / 3 + 2 / 3 + 0) / 3)


def test_uniform_images_are_skipped_when_asked():
    background = np.zeros((1, 2, 3), np.int64)
    ignored = np.full((1, 2, 3), 255)
    mixed = np.array([[[0, 255, 0], [255, 0, 0]]])  # Kept, as theirs.
    parts = np.array([[[1, 1, 0], [2, 0, 0]]])
    wrong = np.ones((1, 2, 3), np.int64)  # Predicts class 1 everywhere.
    skipping = SegmentationMetric(3, skip_uniform_images=True)
    counting = SegmentationMetric(3)
    for labels in (background, ignored, mixed, parts):
        skipping.update(labels, wrong)
        counting.update(labels, wrong)
    kept, everything = skipping.result(), counting.result()
    assert kept["num_images"] == 2 and kept["skipped_images"] == 2
    assert everything["num_images"] == 4
    # Skipped: background's 6 false positives of class 1 are not counted.
    assert kept["confusion"][0][1] == 4 + 3
    assert everything["confusion"][0][1] == 6 + 4 + 3


def test_random_labels_against_per_class_counts():
    rng = np.random.default_rng(0)
    classes = 6
    metric = SegmentationMetric(classes)
    tp, fp, fn = (np.zeros(classes) for _ in range(3))
    correct = valid_total = 0
    for _ in range(3):  # Streaming over batches.
        truth = rng.integers(0, classes, (2, 9, 11))
        truth[rng.random(truth.shape) < 0.1] = 255
        pred = np.where(rng.random(truth.shape) < 0.6, truth,
                        rng.integers(0, classes, truth.shape)) % 255
        metric.update(truth, pred)
        valid = truth != 255
        for c in range(classes):
            tp[c] += np.sum((truth == c) & (pred == c) & valid)
            fp[c] += np.sum((truth != c) & (pred == c) & valid)
            fn[c] += np.sum((truth == c) & (pred != c) & valid)
        correct += np.sum((truth == pred) & valid)
        valid_total += valid.sum()
    result = metric.result()
    iou = tp / (tp + fp + fn)
    np.testing.assert_allclose(result["per_class_iou"], iou)
    assert result["miou"] == pytest.approx(iou.mean())
    assert result["pixel_accuracy"] == pytest.approx(correct / valid_total)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="num_classes=0"):
        SegmentationMetric(0)
    metric = SegmentationMetric(3)
    with pytest.raises(ValueError, match="label 7 is outside"):
        metric.update(np.array([[0, 7]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="4 classes"):
        metric.update(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 4)))
