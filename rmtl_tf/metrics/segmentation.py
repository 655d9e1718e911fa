"""Semantic segmentation and human parts: confusion matrix, mIoU, per-class
IoU and pixel accuracy, ground truth 255 ignored.

mIoU as the RCM authors compute it (`evaluation/evaluation_semseg.py`,
`evaluation_human_parts.py`): tp, fp, fn per class summed over the split,
IoU = tp / max(tp + fp + fn, 1e-8), so a class absent from both truth and
prediction counts 0, and the mean is over all classes. For human parts
their evaluation skips an image whose labels are all background (0) or all
ignored (255) (`skip_uniform_images`); an image mixing only those two
values is scored.
"""

import numpy as np

IGNORE_LABEL = 255


class SegmentationMetric:
    """Streaming confusion matrix over `num_classes` classes.

    `update(y_true, prediction)`: labels (B, H, W) or (B, H, W, 1) with 255
    ignored; prediction class ids of the labels' shape or class scores
    (B, H, W, C), argmaxed.

    `result()`: `miou` (the authors': mean over all classes, a class absent
    from truth and prediction counting 0), `per_class_iou` (0 for such a
    class, as theirs), `miou_present_classes` (extra: the mean over classes
    in the truth or the prediction only), `pixel_accuracy` (correct / valid
    pixels), `num_images` scored, `skipped_images` and `confusion` (rows:
    ground truth, columns: prediction).

    Args:
        num_classes: classes, background included.
        ignore_label: the label of pixels left out.
        skip_uniform_images: skip images whose labels are all 0 or all
            `ignore_label` (the authors' human-parts rule).
    """

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL,
                 skip_uniform_images=False):
        if int(num_classes) < 1:
            raise ValueError("`num_classes` must be >= 1. Received: "
                             f"num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_label = ignore_label
        self.skip_uniform_images = skip_uniform_images
        self.num_images = self.skipped_images = 0
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
        if y_true.ndim < 3:
            y_true, pred = y_true[None], pred[None]
        if self.skip_uniform_images:
            keep = [not _uniform(labels, self.ignore_label)
                    for labels in y_true]
            self.skipped_images += keep.count(False)
            y_true, pred = y_true[keep], pred[keep]
        self.num_images += len(y_true)
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
        """IoU per class, tp / max(tp + fp + fn, 1e-8) (0 for classes in
        neither truth nor prediction)."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        return tp / np.maximum(union, 1e-8)

    def result(self):
        iou = self.per_class_iou()
        tp = np.diag(self.confusion)
        present = (self.confusion.sum(0) + self.confusion.sum(1) - tp) > 0
        valid = self.confusion.sum()
        return {
            "miou": float(np.mean(iou)),
            "per_class_iou": [float(v) for v in iou],
            "miou_present_classes": float(np.mean(iou[present]))
            if present.any() else 0.0,
            "num_images": self.num_images,
            "skipped_images": self.skipped_images,
            "pixel_accuracy": float(np.trace(self.confusion) / valid)
            if valid else 0.0,
            "confusion": self.confusion.tolist(),
        }


def _uniform(labels, ignore_label):
    """Whether an image's labels are one value, 0 or `ignore_label`."""
    first = labels.flat[0]
    return first in (0, ignore_label) and bool(np.all(labels == first))
