"""Precision-recall curves as PNG images, drawn with OpenCV (no matplotlib).

The plot follows the BSDS figures: recall on x, precision on y, both in
[0, 1], grey iso-F contours (F = 0.1 ... 0.9), one coloured curve per
series and a dot at each series' best-F point.
"""

import cv2
import numpy as np

SIZE = 480
MARGIN = 56
# BGR colours of successive series.
COLOURS = ((200, 80, 0), (0, 140, 0), (0, 0, 200), (160, 0, 160),
           (0, 140, 200), (80, 80, 80))


def _to_pixels(recall, precision, size):
    span = size - 2 * MARGIN
    x = MARGIN + np.asarray(recall, np.float64) * span
    y = size - MARGIN - np.asarray(precision, np.float64) * span
    return np.stack([x, y], -1)


def _polyline(canvas, points, colour, thickness):
    points = np.round(points * 16).astype(np.int32)  # 4 fractional bits.
    cv2.polylines(canvas, [points.reshape(-1, 1, 2)], False, colour,
                  thickness, cv2.LINE_AA, shift=4)


def _text(canvas, text, origin, scale=0.45, colour=(0, 0, 0)):
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale,
                colour, 1, cv2.LINE_AA)


def draw_pr_curves(series, title="", size=SIZE):
    """An (size, size, 3) uint8 RGB image of precision-recall curves.

    Args:
        series: list of dicts with "precision" and "recall" (same-length
            sequences, in threshold order), an optional "label" (legend) and an optional "best"
            (recall, precision) point to mark.
        title: drawn on top.
    """
    if size < 4 * MARGIN:
        raise ValueError(f"`size` must be >= {4 * MARGIN}. Received: "
                         f"size={size}")
    canvas = np.full((size, size, 3), 255, np.uint8)
    # Iso-F contours: P = F R / (2 R - F) for R in (F / 2, 1].
    for f in np.arange(1, 10) / 10:
        r = np.linspace(f / 2 + 1e-3, 1, 200)
        p = f * r / (2 * r - f)
        keep = p <= 1
        _polyline(canvas, _to_pixels(r[keep], p[keep], size), (215, 215, 215),
                  1)
    lo, hi = MARGIN, size - MARGIN
    cv2.rectangle(canvas, (lo, lo), (hi, hi), (0, 0, 0), 1)
    for tick in np.arange(0, 11, 2) / 10:
        x, y = _to_pixels(tick, tick, size)
        _text(canvas, f"{tick:.1f}", (int(x) - 10, hi + 18), 0.4)
        _text(canvas, f"{tick:.1f}", (lo - 32, int(y) + 4), 0.4)
    _text(canvas, "recall", (size // 2 - 22, size - 12), 0.5)
    _text(canvas, "precision", (4, lo - 10), 0.5)
    if title:
        _text(canvas, title, (lo + 70, lo - 24), 0.5)
    for i, item in enumerate(series):
        precision = np.asarray(item["precision"], np.float64)
        recall = np.asarray(item["recall"], np.float64)
        if precision.shape != recall.shape or precision.ndim != 1:
            raise ValueError("Each series needs 1-D precision and recall of "
                             f"one length. Received {precision.shape} and "
                             f"{recall.shape}.")
        colour = COLOURS[i % len(COLOURS)]
        # In threshold order: with thinning, recall is not monotonic in the
        # threshold, so sorting by recall would interleave two branches.
        if len(recall) > 1:
            _polyline(canvas, _to_pixels(recall, precision, size), colour, 2)
        best = item.get("best")
        if best is not None:
            x, y = _to_pixels(best[0], best[1], size)
            cv2.circle(canvas, (int(round(x)), int(round(y))), 5, colour, -1,
                       cv2.LINE_AA)
        if item.get("label"):  # Legend bottom left, rarely crossed by curves.
            _text(canvas, item["label"],
                  (lo + 8, hi - 10 - 18 * (len(series) - 1 - i)), 0.45,
                  colour)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)


def write_png(path, image_rgb):
    """Writes an RGB uint8 image as PNG; raises if OpenCV cannot."""
    if not cv2.imwrite(path, cv2.cvtColor(np.asarray(image_rgb, np.uint8),
                                          cv2.COLOR_RGB2BGR)):
        raise OSError(f"Could not write {path!r}.")
    return path


def task_pr_series(task, metrics, label=None):
    """The PR series of an edge or saliency metrics dict (see
    `EdgeODS.result`, `SaliencyMetric.result`)."""
    if task == "edge":
        best = (metrics["ods_recall"], metrics["ods_precision"])
        text = f"ODS F {metrics['ods_f']:.3f}, AP {metrics['ap']:.3f}"
    elif task == "saliency":
        i = metrics["thresholds"].index(metrics["max_f_threshold"])
        best = (metrics["recall"][i], metrics["precision"][i])
        text = f"maxF {metrics['max_f']:.3f}"
    else:
        raise ValueError(f"Task {task!r} has no PR curve (edge and "
                         "saliency have).")
    return {"precision": metrics["precision"], "recall": metrics["recall"],
            "best": best, "label": f"{label}: {text}" if label else text}
