"""Surface normals: angle error statistics in degrees, as the RCM authors
compute them (`evaluation/evaluation_normals.py`, `eval_normals`).

Per image, in float32 with the same numpy operations as theirs:
- an image whose labels are all zero is skipped;
- the prediction is read as from their 8-bit PNG (`png_round_trip`), then
  normalized, `n / (|n| + 1e-12)`;
- valid pixels: ground truth of non-zero length; the ground truth is
  normalized the same way;
- angle = degrees(arccos(clip(<prediction, truth>, -1, 1))).

Over all valid pixels of the split: `mean` (the headline), `median`,
`rmse` (of the angle), `within_11.25`, `within_22.5`, `within_30` (% of
pixels with an error strictly below), `num_pixels`, `num_images`,
`skipped_images`. Sums are float64 (theirs: numpy's float32 mean of the
collected angles; the two agree to float32 rounding). The median comes from
a histogram of 0.001-degree bins, so the metric streams in constant memory:
it is within 0.0005 degrees of the exact median.
"""

import numpy as np

from rmtl_tf.metrics import png_round_trip as png

BIN_DEGREES = 0.001
WITHIN = (11.25, 22.5, 30.0)
_EPS = 1e-12


def _normalize(normals):
    return normals / (np.linalg.norm(normals, ord=2, axis=2)[..., None]
                      + _EPS)


def image_angles(label, prediction, png_round_trip=True):
    """The angles (degrees, float32) at the valid pixels of one (H, W, 3)
    image, or None when the image is skipped (all labels zero)."""
    label = np.array(label, np.float32)
    if not np.any(label):
        return None
    pred = np.array(prediction, np.float32)
    if png_round_trip:
        pred = png.normals(pred)
    pred = _normalize(pred)
    valid = np.linalg.norm(label, ord=2, axis=2) != 0
    pred[~valid] = 0.0
    label[~valid] = 0.0
    label = _normalize(label)
    cosine = np.clip(np.sum(pred * label, axis=2), -1, 1)
    return np.rad2deg(np.arccos(cosine))[valid]


def _images(x):
    """(B, H, W, 3) from (B, H, W, 3), one (H, W, 3) image or (N, 3)."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[None]
    return x


class NormalsMetric:
    """Streaming angle errors between predicted and true normals (module
    doc).

    `update(y_true, prediction)`: (B, H, W, 3) (or one (H, W, 3) image);
    zero ground truth marks invalid pixels.
    """

    def __init__(self, png_round_trip=True):
        self.png_round_trip = png_round_trip
        self.histogram = np.zeros(int(round(180 / BIN_DEGREES)) + 1,
                                  np.int64)
        self.sum = self.sum_sq = 0.0
        self.within = np.zeros(len(WITHIN), np.int64)
        self.count = 0
        self.num_images = self.skipped_images = 0

    def update(self, y_true, prediction):
        y_true, pred = np.asarray(y_true), np.asarray(prediction)
        if pred.shape != y_true.shape or y_true.shape[-1] != 3:
            raise ValueError("Normals labels and predictions must be "
                             "(..., 3) of one shape. Received "
                             f"{y_true.shape} and {pred.shape}.")
        for label, image_pred in zip(_images(y_true), _images(pred)):
            angle = image_angles(label, image_pred, self.png_round_trip)
            if angle is None:
                self.skipped_images += 1
                continue
            self.num_images += 1
            angle = angle.astype(np.float64)
            self.sum += float(angle.sum())
            self.sum_sq += float((angle**2).sum())
            self.within += [(angle < w).sum() for w in WITHIN]
            self.histogram += np.bincount(
                np.floor(angle / BIN_DEGREES).astype(np.int64),
                minlength=self.histogram.size)[:self.histogram.size]
            self.count += int(angle.size)

    def median(self):
        """The median angle, to within `BIN_DEGREES` (bin midpoints; the
        mean of the two middle values' bins for an even count)."""
        if not self.count:
            return 0.0
        cumulative = np.cumsum(self.histogram)
        lower = np.searchsorted(cumulative, (self.count - 1) // 2 + 1)
        upper = np.searchsorted(cumulative, self.count // 2 + 1)
        return float((lower + upper + 1) / 2 * BIN_DEGREES)

    def result(self):
        n = max(self.count, 1)
        out = {"mean": self.sum / n, "median": self.median(),
               "rmse": float(np.sqrt(self.sum_sq / n))}
        for w, c in zip(WITHIN, self.within):
            out[f"within_{w:g}"] = float(100.0 * c / n)
        out.update(num_pixels=self.count, num_images=self.num_images,
                   skipped_images=self.skipped_images)
        return out
