"""Depth: RMSE and log RMSE as the RCM authors compute them, plus the
pooled errors of the depth literature under their own names.

Headline (the authors' `evaluation/evaluation_depth.py`, `eval_depth`):
per image, ground truth 0 is set to 1e-9 and predictions <= 0 to 1e-9,
and **every pixel counts** (their valid mask is taken after that
substitution, so it keeps all pixels): `rmse` is the mean over images of
each image's RMSE, `log_rmse` (natural log) the median over images of each
image's log RMSE. The per-image errors are computed in float32 with the
same numpy operations, so they equal theirs. For invalid (label 0) pixels
this means the error is the prediction itself (and log(1e-9) against the
log prediction): NYUD-MT's depth maps are filled, so this rarely matters;
a dataset with holes is scored with them, as the paper's numbers were.

Extra keys, over valid pixels only (ground truth > 0 and finite), pooled
over the split (predictions clamped to `MIN_DEPTH` before logs and
ratios): `rmse_valid_pixels`, `log_rmse_valid_pixels`, `abs_rel`,
`delta1`/`delta2`/`delta3` (fraction of pixels with max(d/g, g/d) < 1.25,
1.25^2, 1.25^3), `num_pixels` (valid), `num_images`.
"""

import numpy as np

# The authors' substitute for label 0 and for predictions <= 0.
MIN_DEPTH = 1e-9


def image_errors(label, prediction):
    """(RMSE, log RMSE) of one image, as the authors' `eval_depth`."""
    label = np.array(label, np.float32)
    pred = np.array(prediction, np.float32)
    label[label == 0] = MIN_DEPTH
    pred[pred <= 0] = MIN_DEPTH
    count = np.int64(label.size)  # float32 sum / int64: float64, theirs.
    log_rmse = np.sqrt(np.sum((np.log(label) - np.log(pred))**2) / count)
    rmse = np.sqrt(np.sum((label - pred)**2) / count)
    return float(rmse), float(log_rmse)


class DepthMetric:
    """Streaming depth errors (see the module doc).

    `update(y_true, prediction)`: (B, H, W[, 1]) metres; one image per
    leading index. Memory: two floats per image.
    """

    def __init__(self):
        self.image_rmse, self.image_log_rmse = [], []
        self.sums = np.zeros(6, np.float64)  # sq, log sq, rel, d1, d2, d3
        self.count = 0

    def update(self, y_true, prediction):
        y_true = np.asarray(y_true, np.float32)
        pred = np.asarray(prediction, np.float32)
        if pred.shape != y_true.shape:
            raise ValueError("Depth labels and predictions differ in shape: "
                             f"{y_true.shape} vs {pred.shape}.")
        if y_true.ndim == 4 and y_true.shape[-1] == 1:
            y_true, pred = y_true[..., 0], pred[..., 0]
        if y_true.ndim == 2:
            y_true, pred = y_true[None], pred[None]
        if y_true.ndim != 3:
            raise ValueError("Depth maps must be (B, H, W) or (B, H, W, 1). "
                             f"Received shape {y_true.shape}.")
        for label, image_pred in zip(y_true, pred):
            rmse, log_rmse = image_errors(label, image_pred)
            self.image_rmse.append(rmse)
            self.image_log_rmse.append(log_rmse)
        valid = np.isfinite(y_true) & (y_true > 0)
        g = y_true[valid].astype(np.float64)
        d = pred[valid].astype(np.float64)
        clamped = np.maximum(d, MIN_DEPTH)
        ratio = np.maximum(clamped / g, g / clamped)
        self.sums += (((d - g)**2).sum(),
                      ((np.log(clamped) - np.log(g))**2).sum(),
                      (np.abs(d - g) / g).sum(),
                      (ratio < 1.25).sum(), (ratio < 1.25**2).sum(),
                      (ratio < 1.25**3).sum())
        self.count += int(valid.sum())

    def result(self):
        if not self.image_rmse:
            raise ValueError("DepthMetric.result() before any update().")
        n = max(self.count, 1)
        sq, log_sq, rel, d1, d2, d3 = self.sums / n
        return {"rmse": float(np.mean(self.image_rmse)),
                "log_rmse": float(np.median(self.image_log_rmse)),
                "rmse_valid_pixels": float(np.sqrt(sq)),
                "log_rmse_valid_pixels": float(np.sqrt(log_sq)),
                "abs_rel": float(rel), "delta1": float(d1),
                "delta2": float(d2), "delta3": float(d3),
                "num_pixels": self.count,
                "num_images": len(self.image_rmse)}
