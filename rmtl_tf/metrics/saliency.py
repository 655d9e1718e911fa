"""Saliency: maxF and mIoU as the RCM authors compute them.

The authors' `evaluation/evaluation_saliency.py` (`eval_sal`, called by
`test.py` with 15 thresholds `linspace(0.2, 0.9, 15)`), on predictions read
back from 8-bit PNGs (`png_round_trip`):

- per image and threshold t (compared in float32, as numpy 1.x did with
  their float32 maps): mask = prob > t, ground truth = label > 0.2
  (their loop binarizes the label at the first threshold and keeps it; the
  labels are 0/1, so this is the label itself); precision tp / (tp + fp +
  1e-12), recall tp / (tp + fn + 1e-12), IoU tp / |truth or mask| (1 when
  both are empty);
- over the split, per threshold: the mean precision P, mean recall R and
  mean IoU over images; F = 2PR / (P + R + 1e-12) (beta^2 = 1);
- `max_f`: the best F over thresholds; `miou`: the best mean IoU over
  thresholds (each at its own threshold).

Label 255 marks pixels left out of every count (the authors' data has none:
their loader binarizes the saliency maps).

Extra keys: `max_f_beta2_0.3` (F-beta with beta^2 = 0.3, the saliency
literature's weighting, from the same P and R), `miou_at_max_f`, the
thresholds and the per-threshold curves.
"""

import numpy as np

from rmtl_tf.metrics import png_round_trip

IGNORE_LABEL = 255
DEFAULT_THRESHOLDS = tuple(float(t) for t in np.linspace(0.2, 0.9, 15))
_EPS = 1e-12


def f_beta(precision, recall, beta2=1.0):
    """(1 + b2) P R / (b2 P + R + 1e-12); b2 = 1 is the authors' F."""
    precision, recall = np.asarray(precision), np.asarray(recall)
    return (1 + beta2) * precision * recall / (beta2 * precision + recall
                                               + _EPS)


class SaliencyMetric:
    """Streaming maxF / mIoU of saliency probabilities (module doc).

    Args:
        thresholds: mask thresholds (default the authors' 15).
        beta2: beta^2 of the headline `max_f` (1: the authors').
        png_round_trip: score the probabilities as read back from an 8-bit
            PNG, as the authors' evaluation does.
    """

    def __init__(self, thresholds=DEFAULT_THRESHOLDS, beta2=1.0,
                 png_round_trip=True):
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds or any(not 0 <= t < 1 for t in thresholds):
            raise ValueError("`thresholds` must be non-empty, in [0, 1). "
                             f"Received: thresholds={thresholds}")
        if not beta2 > 0:
            raise ValueError(f"`beta2` must be > 0. Received: beta2={beta2}")
        self.thresholds = thresholds
        self.beta2 = float(beta2)
        self.png_round_trip = png_round_trip
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
        if self.png_round_trip:
            prediction = png_round_trip.probabilities(prediction)
        batch = y_true.shape[0]
        y_true = y_true.reshape(batch, -1)
        prediction = prediction.reshape(batch, -1)
        # In float32, as numpy 1.x compared their float32 maps with the
        # float64 thresholds: a PNG value of 51 (51/255 = 0.2 in float32) is
        # not above the threshold 0.2.
        thresholds = np.asarray(self.thresholds, np.float32)[:, None]
        prediction = prediction.astype(np.float32)
        for gt, prob in zip(y_true, prediction):
            valid = gt != IGNORE_LABEL
            truth = gt[valid].astype(np.float32) > thresholds[0, 0]
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
            "max_f_beta2_0.3": float(np.max(f_beta(precision, recall, 0.3))),
            "beta2": self.beta2,
            "num_images": self.num_images,
            "thresholds": list(self.thresholds),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "iou": iou.tolist(),
        }
