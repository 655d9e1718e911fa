"""Streaming numpy metrics, one per task kind: the quick ones.

Each accumulator has `update(y_true, prediction)` (numpy batches, the
prediction already activated, see `rmtl_tf.models.multitask_model.
predictions`) and `result()`. The int8 accuracy report
(`rmtl_tf.export.accuracy_report`) uses them; the benchmark metrics the
papers report, computed as the authors' code does (mIoU, maxF, angle
statistics, depth RMSE, edge ODS F, ...), are the other modules of this
package (`task_metrics.make_task_metric`).
"""

import numpy as np

from rmtl_tf.tasks import registry

IGNORE_LABEL = 255


class MeanIoU:
    """Confusion-matrix mIoU over `num_classes`; label 255 ignored.

    Classes absent from both ground truth and prediction are left out of the
    mean.
    """

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), np.int64)

    def update(self, y_true, prediction):
        """`prediction`: class ids shaped like `y_true`, or class scores.

        `y_true` may carry a trailing channel axis of 1 (B, H, W, 1), as the
        loss accepts.
        """
        y_true, pred = np.asarray(y_true), np.asarray(prediction)
        if (y_true.ndim == pred.ndim and y_true.shape[-1] == 1
                and pred.shape[-1] != 1):
            y_true = y_true[..., 0]
        if pred.ndim == y_true.ndim + 1:
            pred = pred.argmax(-1)
        labels = y_true.reshape(-1).astype(np.int64)
        pred = pred.reshape(-1).astype(np.int64)
        valid = labels != IGNORE_LABEL
        index = labels[valid] * self.num_classes + pred[valid]
        self.confusion += np.bincount(
            index, minlength=self.num_classes**2).reshape(self.confusion.shape)

    def result(self):
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        present = union > 0
        return float((tp[present] / union[present]).mean()) if present.any() \
            else 0.0


class RMSE:
    """Root mean squared error over pixels whose ground truth is non-zero."""

    def __init__(self):
        self.sum_sq, self.count = 0.0, 0

    def update(self, y_true, prediction):
        y_true = np.asarray(y_true, np.float64)
        valid = y_true != 0
        diff = np.asarray(prediction, np.float64)[valid] - y_true[valid]
        self.sum_sq += float((diff**2).sum())
        self.count += int(valid.sum())

    def result(self):
        return float(np.sqrt(self.sum_sq / max(self.count, 1)))


class MeanAngleError:
    """Mean angle (degrees) between unit normals; zero ground truth ignored."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, y_true, prediction):
        y_true = np.asarray(y_true, np.float64).reshape(-1, 3)
        pred = np.asarray(prediction, np.float64).reshape(-1, 3)
        valid = np.any(y_true != 0, axis=1)
        t, p = y_true[valid], pred[valid]
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
        cos = np.clip((t * p).sum(1), -1.0, 1.0)
        self.total += float(np.degrees(np.arccos(cos)).sum())
        self.count += int(valid.sum())

    def result(self):
        return self.total / max(self.count, 1)


class BinaryScore:
    """F1 or IoU of binary maps at a threshold (pixel-wise, no tolerance)."""

    def __init__(self, kind="f1", threshold=0.5):
        if kind not in ("f1", "iou"):
            raise ValueError(f"`kind` must be 'f1' or 'iou'. Received: {kind}")
        self.kind, self.threshold = kind, threshold
        self.tp = self.fp = self.fn = 0

    def update(self, y_true, prediction):
        y_true = np.asarray(y_true)
        valid = y_true != IGNORE_LABEL
        t = (y_true > 0.5) & valid
        p = (np.asarray(prediction) >= self.threshold) & valid
        self.tp += int((t & p).sum())
        self.fp += int((~t & p).sum())
        self.fn += int((t & ~p).sum())

    def result(self):
        if self.kind == "iou":
            return self.tp / max(self.tp + self.fp + self.fn, 1)
        return 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)


def make_metric(task, num_classes=None):
    """The simple metric of `task` (see the registry's `metric` field)."""
    name = registry.get_task(task).metric
    if name == "miou":
        return MeanIoU(registry.output_channels(task, num_classes))
    if name == "rmse":
        return RMSE()
    if name == "mean_angle_error":
        return MeanAngleError()
    return BinaryScore(name)
