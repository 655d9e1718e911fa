"""Depth: RMSE, log RMSE, absolute relative error and the delta < 1.25^k
accuracies, over pixels with valid (non-zero, finite) ground truth."""

import numpy as np

# Predictions are clamped to this before logs and ratios, as the
# multi-task survey's evaluation does.
MIN_DEPTH = 1e-9


class DepthMetric:
    """Streaming depth errors; ground truth 0 (or non-finite) is invalid.

    `result()`: `rmse`, `log_rmse` (natural log), `abs_rel` (mean |d - g| /
    g), `delta1`/`delta2`/`delta3` (fraction of pixels with max(d/g, g/d) <
    1.25, 1.25^2, 1.25^3), `num_pixels`.
    """

    def __init__(self):
        self.sums = np.zeros(6, np.float64)  # sq, log sq, rel, d1, d2, d3
        self.count = 0

    def update(self, y_true, prediction):
        y_true = np.asarray(y_true, np.float64)
        pred = np.asarray(prediction, np.float64)
        if pred.shape != y_true.shape:
            raise ValueError("Depth labels and predictions differ in shape: "
                             f"{y_true.shape} vs {pred.shape}.")
        valid = np.isfinite(y_true) & (y_true > 0)
        g, d = y_true[valid], pred[valid]
        clamped = np.maximum(d, MIN_DEPTH)
        ratio = np.maximum(clamped / g, g / clamped)
        self.sums += (((d - g)**2).sum(),
                      ((np.log(clamped) - np.log(g))**2).sum(),
                      (np.abs(d - g) / g).sum(),
                      (ratio < 1.25).sum(), (ratio < 1.25**2).sum(),
                      (ratio < 1.25**3).sum())
        self.count += int(valid.sum())

    def result(self):
        n = max(self.count, 1)
        sq, log_sq, rel, d1, d2, d3 = self.sums / n
        return {"rmse": float(np.sqrt(sq)), "log_rmse": float(np.sqrt(log_sq)),
                "abs_rel": float(rel), "delta1": float(d1),
                "delta2": float(d2), "delta3": float(d3),
                "num_pixels": self.count}
