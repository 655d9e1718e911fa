"""Saliency: maxF (F-beta over thresholds) and mIoU, as the multi-task
survey (after ASTMT) scores it.

Per image and threshold t: mask = prob > t against the binary ground truth
(255 ignored): precision tp / (tp + fp), recall tp / (tp + fn) and IoU
(1 when both are empty). Over the dataset, at each threshold: the mean
precision P and mean recall R of the images, F_beta = (1 + b2) P R /
(b2 P + R) with b2 = beta^2 = 0.3 (the saliency literature's weight on
precision; the survey's code uses b2 = 1: pass `beta2=1.0` for it), and the
mean IoU.

`max_f` is the best F_beta over the thresholds; `miou` the best mean IoU
over the thresholds (what the survey and the papers after it report as
saliency mIoU); `miou_at_max_f` the mean IoU at maxF's threshold.
Default thresholds: 15 from 0.2 to 0.9, the survey's.
"""

import numpy as np

IGNORE_LABEL = 255
DEFAULT_THRESHOLDS = tuple(np.linspace(0.2, 0.9, 15))
_EPS = 1e-12


def f_beta(precision, recall, beta2=0.3):
    precision, recall = np.asarray(precision), np.asarray(recall)
    return (1 + beta2) * precision * recall / (beta2 * precision + recall
                                               + _EPS)


class SaliencyMetric:
    """Streaming maxF / mIoU of saliency probabilities."""

    def __init__(self, thresholds=DEFAULT_THRESHOLDS, beta2=0.3):
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds or any(not 0 <= t < 1 for t in thresholds):
            raise ValueError("`thresholds` must be non-empty, in [0, 1). "
                             f"Received: thresholds={thresholds}")
        if not beta2 > 0:
            raise ValueError(f"`beta2` must be > 0. Received: beta2={beta2}")
        self.thresholds = thresholds
        self.beta2 = float(beta2)
        # Sums over images of precision, recall, IoU per threshold.
        self.sums = np.zeros((3, len(thresholds)), np.float64)
        self.num_images = 0

    def update(self, y_true, prediction):
        """(B, H, W[, 1]) binary labels (255 ignored) and probabilities."""
        y_true, prediction = np.asarray(y_true), np.asarray(prediction)
        if y_true.shape != prediction.shape:
            raise ValueError("Saliency labels and predictions differ in "
                             f"shape: {y_true.shape} vs {prediction.shape}.")
        if y_true.ndim < 3:
            y_true, prediction = y_true[None], prediction[None]
        batch = y_true.shape[0]
        y_true = y_true.reshape(batch, -1)
        prediction = prediction.reshape(batch, -1)
        thresholds = np.asarray(self.thresholds)[:, None]
        for gt, prob in zip(y_true, prediction):
            valid = gt != IGNORE_LABEL
            truth = gt[valid] > 0.5
            masks = prob[valid][None, :] > thresholds  # (K, pixels)
            tp = (masks & truth).sum(1)
            fp = (masks & ~truth).sum(1)
            fn = (~masks & truth).sum(1)
            union = tp + fp + fn
            self.sums += (tp / (tp + fp + _EPS), tp / (tp + fn + _EPS),
                          np.where(union > 0, tp / np.maximum(union, 1),
                                   1.0))
            self.num_images += 1

    def result(self):
        if not self.num_images:
            raise ValueError("SaliencyMetric.result() before any update().")
        precision, recall, iou = self.sums / self.num_images
        f = f_beta(precision, recall, self.beta2)
        best_f, best_iou = int(np.argmax(f)), int(np.argmax(iou))
        return {
            "max_f": float(f[best_f]),
            "max_f_threshold": self.thresholds[best_f],
            "miou": float(iou[best_iou]),
            "miou_threshold": self.thresholds[best_iou],
            "miou_at_max_f": float(iou[best_f]),
            "beta2": self.beta2,
            "thresholds": list(self.thresholds),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "iou": iou.tolist(),
        }
