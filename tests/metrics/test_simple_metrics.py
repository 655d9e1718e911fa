"""The simple metrics on hand-computed small arrays."""

import numpy as np
import pytest

from rmtl_tf.metrics import simple_metrics
from rmtl_tf.metrics.simple_metrics import (RMSE, BinaryScore, MeanAngleError,
                                            MeanIoU, make_metric)

# Per valid pixel (truth, prediction): (0,0) (0,1) (1,1) (1,1) (2,0); the
# 255 pixel is ignored. Class 0: TP 1, union 2 + 2 - 1 = 3 -> 1/3.
# Class 1: TP 2, union 2 + 3 - 2 = 3 -> 2/3. Class 2: TP 0, union 1 -> 0.
SEG_TRUE = np.array([[[0, 0, 1], [1, 255, 2]]])
SEG_PRED = np.array([[[0, 1, 1], [1, 2, 0]]])
SEG_MIOU = (1 / 3 + 2 / 3 + 0) / 3


def _one_hot(ids, classes):
    return np.eye(classes, dtype=np.float32)[ids]


def test_mean_iou_hand_computed():
    metric = MeanIoU(3)
    metric.update(SEG_TRUE, SEG_PRED)
    assert metric.result() == pytest.approx(SEG_MIOU)


def test_mean_iou_leaves_out_absent_classes():
    # Classes 3 and 4 are in neither truth nor prediction.
    metric = MeanIoU(5)
    metric.update(SEG_TRUE, SEG_PRED)
    assert metric.result() == pytest.approx(SEG_MIOU)
    # A class only predicted counts, with IoU 0.
    metric = MeanIoU(5)
    metric.update(np.array([0, 0]), np.array([0, 4]))
    assert metric.result() == pytest.approx((1 / 2 + 0) / 2)


def test_mean_iou_scores_channel_axis_and_streaming():
    scores = _one_hot(SEG_PRED, 3) * 0.9 + 0.03
    metric = MeanIoU(3)
    metric.update(SEG_TRUE, scores)
    assert metric.result() == pytest.approx(SEG_MIOU)
    metric = MeanIoU(3)
    metric.update(SEG_TRUE[..., None], scores)  # Labels (B, H, W, 1).
    assert metric.result() == pytest.approx(SEG_MIOU)
    # Two halves accumulate to the whole.
    metric = MeanIoU(3)
    metric.update(SEG_TRUE[:, :1], SEG_PRED[:, :1])
    metric.update(SEG_TRUE[:, 1:], SEG_PRED[:, 1:])
    assert metric.result() == pytest.approx(SEG_MIOU)


def test_mean_iou_perfect_and_empty():
    metric = MeanIoU(4)
    labels = np.array([[0, 1], [3, 3]])
    metric.update(labels, labels)
    assert metric.result() == 1.0
    empty = MeanIoU(4)
    empty.update(np.full((2, 2), 255), np.zeros((2, 2), int))
    assert empty.result() == 0.0


def test_rmse_ignores_zero_ground_truth():
    metric = RMSE()
    # Valid errors 1, 0, -3: sqrt((1 + 0 + 9) / 3); the 0 truth is ignored.
    metric.update(np.array([[0.0, 1.0, 2.0, 4.0]]),
                  np.array([[5.0, 2.0, 2.0, 1.0]]))
    assert metric.result() == pytest.approx(np.sqrt(10 / 3))
    metric.update(np.array([[2.0]]), np.array([[4.0]]))  # Error 2.
    assert metric.result() == pytest.approx(np.sqrt(14 / 4))
    assert RMSE().result() == 0.0


def test_mean_angle_error():
    y_true = np.array([[[0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]])
    pred = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    metric = MeanAngleError()
    metric.update(y_true, pred)  # 90 and 0 degrees; the zero truth ignored.
    assert metric.result() == pytest.approx(45.0)
    metric = MeanAngleError()
    metric.update(np.array([[1.0, 0.0, 0.0]]), np.array([[-1.0, 0.0, 0.0]]))
    assert metric.result() == pytest.approx(180.0)
    metric = MeanAngleError()
    s = np.sqrt(0.5)
    metric.update(np.array([[1.0, 0.0, 0.0]]), np.array([[s, s, 0.0]]))
    assert metric.result() == pytest.approx(45.0)
    metric = MeanAngleError()
    metric.update(np.array([[0.0, 3.0, 0.0]]), np.array([[0.0, 0.5, 0.0]]))
    assert metric.result() == pytest.approx(0.0, abs=1e-6)


def test_binary_score_f1_and_iou():
    y_true = np.array([1, 1, 0, 0, 255, 1], np.float32)
    pred = np.array([0.9, 0.2, 0.7, 0.1, 0.9, 0.5], np.float32)
    # TP: 0 and 5 (0.5 >= threshold); FP: 2; FN: 1; pixel 4 ignored.
    f1, iou = BinaryScore("f1"), BinaryScore("iou")
    f1.update(y_true, pred)
    iou.update(y_true, pred)
    assert f1.result() == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert iou.result() == pytest.approx(2 / (2 + 1 + 1))
    strict = BinaryScore("iou", threshold=0.8)  # TP: 0; FN: 1, 5.
    strict.update(y_true, pred)
    assert strict.result() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="kind"):
        BinaryScore("precision")


def test_make_metric():
    assert isinstance(make_metric("semseg", {"semseg": 6}), MeanIoU)
    assert make_metric("semseg", {"semseg": 6}).num_classes == 6
    assert make_metric("human_parts").num_classes == 7
    assert isinstance(make_metric("depth"), RMSE)
    assert isinstance(make_metric("normals"), MeanAngleError)
    assert make_metric("edge").kind == "f1"
    assert make_metric("saliency").kind == "iou"
    with pytest.raises(ValueError, match="num_classes"):
        make_metric("semseg")


def test_ignore_label():
    assert simple_metrics.IGNORE_LABEL == 255
