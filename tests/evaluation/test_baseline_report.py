"""The end-of-run report's trivial baseline: its constant predictions,
fit on training labels streamed in batches, on hand-computed labels (the
rules of the earlier in-memory `simple_metrics.trivial_prediction`)."""

import numpy as np
import pytest

from rmtl_tf.evaluation.baseline_report import TrivialBaseline
from rmtl_tf.metrics.simple_metrics import MeanIoU


def _predict(task, batches, shape, num_classes=None):
    baseline = TrivialBaseline([task], num_classes)
    for labels in batches:  # Streamed: the sums carry across batches.
        baseline.update({task: labels})
    images = np.zeros(shape[:3] + (3,), np.float32)
    return baseline.predictor().predict(images)[task]


def test_semseg_is_the_majority_class():
    labels = np.array([[0, 2, 2], [255, 255, 255], [255, 1, 255]])
    out = _predict("semseg", [labels[:1], labels[1:]], (2, 4, 4, 3),
                   {"semseg": 3})
    assert out.shape == (2, 4, 4)
    assert np.all(out == 2)


def test_depth_and_normals():
    depth = np.array([[[0.0], [2.0], [4.0]]])
    out = _predict("depth", [depth], (1, 2, 2, 1))
    assert out.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(out, 3.0)
    normals = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    out = _predict("normals", [normals[:, :2], normals[:, 2:]], (1, 2, 2, 3))
    assert out.shape == (1, 2, 2, 3)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(out, np.broadcast_to([0.0, s, s], out.shape))


def test_binary_majority_ignores_255():
    shape = (1, 2, 2, 1)
    assert np.all(_predict("edge", [np.array([1, 0, 0.0])], shape) == 0.0)
    assert np.all(_predict("saliency", [np.array([1, 1, 0.0])], shape)
                  == 1.0)
    # Ignored pixels are no vote: two negatives, one positive.
    labels = np.array([0.0, 0.0, 1.0, 255.0, 255.0])
    out = _predict("edge", [labels], shape)
    assert out.shape == shape and np.all(out == 0.0)


def test_trivial_baseline_scores():
    # The majority-class baseline on its own labels predicts 0 everywhere:
    # class 0 TP 3, union 3 + 4 - 3 = 4; class 1 TP 0, union 1.
    labels = np.array([[0, 0], [0, 1]])
    metric = MeanIoU(2)
    metric.update(labels, _predict("semseg", [labels], (2, 2, 2),
                                   {"semseg": 2}))
    assert metric.result() == pytest.approx((3 / 4 + 0) / 2)
