"""Surface normals: angle error statistics in degrees.

Predictions are L2-normalized first; pixels whose ground truth is the zero
vector are ignored. The median comes from a histogram of 0.001-degree bins
(exact to 0.001 degrees), so the metric streams in constant memory.
"""

import numpy as np

BIN_DEGREES = 0.001
WITHIN = (11.25, 22.5, 30.0)


class NormalsMetric:
    """Streaming angle errors between predicted and true normals.

    `result()`: `mean`, `median`, `rmse` (of the angle, degrees),
    `within_11.25`, `within_22.5`, `within_30` (% of pixels with an error
    strictly below), `num_pixels`.
    """

    def __init__(self):
        self.histogram = np.zeros(int(round(180 / BIN_DEGREES)) + 1,
                                  np.int64)
        self.sum = self.sum_sq = 0.0
        self.within = np.zeros(len(WITHIN), np.int64)
        self.count = 0

    def update(self, y_true, prediction):
        y_true = np.asarray(y_true, np.float64)
        pred = np.asarray(prediction, np.float64)
        if pred.shape != y_true.shape or y_true.shape[-1] != 3:
            raise ValueError("Normals labels and predictions must be "
                             "(..., 3) of one shape. Received "
                             f"{y_true.shape} and {pred.shape}.")
        t, p = y_true.reshape(-1, 3), pred.reshape(-1, 3)
        valid = np.any(t != 0, axis=1)
        t, p = t[valid], p[valid]
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
        angle = np.degrees(np.arccos(np.clip((t * p).sum(1), -1.0, 1.0)))
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
        out["num_pixels"] = self.count
        return out
