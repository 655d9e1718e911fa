"""Semantic segmentation and human parts: confusion matrix, mIoU, per-class
IoU and pixel accuracy, ground truth 255 ignored."""

import numpy as np

IGNORE_LABEL = 255


class SegmentationMetric:
    """Streaming confusion matrix over `num_classes` classes.

    `update(y_true, prediction)`: labels (B, H, W) or (B, H, W, 1) with 255
    ignored; prediction class ids of the labels' shape or class scores
    (B, H, W, C), argmaxed.

    `result()`: `miou` (mean over classes present in the ground truth or
    the prediction; a class absent from both has no IoU, `None` in
    `per_class_iou`), `per_class_iou`, `pixel_accuracy` (correct / valid
    pixels) and `confusion` (rows: ground truth, columns: prediction).
    """

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL):
        if int(num_classes) < 1:
            raise ValueError("`num_classes` must be >= 1. Received: "
                             f"num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_label = ignore_label
        self.confusion = np.zeros((self.num_classes, self.num_classes),
                                  np.int64)

    def update(self, y_true, prediction):
        y_true, pred = np.asarray(y_true), np.asarray(prediction)
        if (y_true.ndim == pred.ndim and y_true.shape[-1] == 1
                and pred.shape[-1] != 1):
            y_true = y_true[..., 0]
        if pred.ndim == y_true.ndim + 1:
            if pred.shape[-1] != self.num_classes:
                raise ValueError(
                    f"Scores have {pred.shape[-1]} classes; the metric has "
                    f"num_classes={self.num_classes}.")
            pred = pred.argmax(-1)
        if pred.shape != y_true.shape:
            raise ValueError("Segmentation labels and predictions differ in "
                             f"shape: {y_true.shape} vs {pred.shape}.")
        labels = y_true.reshape(-1).astype(np.int64)
        pred = pred.reshape(-1).astype(np.int64)
        valid = labels != self.ignore_label
        labels, pred = labels[valid], pred[valid]
        for name, ids in (("label", labels), ("predicted class", pred)):
            bad = (ids < 0) | (ids >= self.num_classes)
            if bad.any():
                raise ValueError(
                    f"A {name} {int(ids[bad][0])} is outside [0, "
                    f"{self.num_classes}) (num_classes={self.num_classes}; "
                    f"{self.ignore_label} is ignored).")
        self.confusion += np.bincount(
            labels * self.num_classes + pred,
            minlength=self.num_classes**2).reshape(self.confusion.shape)

    def per_class_iou(self):
        """IoU per class (nan for classes in neither truth nor prediction).
        """
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def result(self):
        iou = self.per_class_iou()
        valid = self.confusion.sum()
        return {
            "miou": float(np.nanmean(iou)) if np.isfinite(iou).any()
            else 0.0,
            "per_class_iou": [None if np.isnan(v) else float(v)
                              for v in iou],
            "pixel_accuracy": float(np.trace(self.confusion) / valid)
            if valid else 0.0,
            "confusion": self.confusion.tolist(),
        }
