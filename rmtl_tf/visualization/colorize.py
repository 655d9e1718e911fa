"""Colour-coding of dense labels and predictions for TensorBoard (numpy)."""

import numpy as np


def label_palette(num_classes=256):
    """The PASCAL VOC palette: distinct colours by bit interleaving."""
    palette = np.zeros((num_classes, 3), np.uint8)
    for i in range(num_classes):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


_PALETTE = label_palette()


def colorize_labels(labels):
    """(..., H, W) class ids -> (..., H, W, 3) uint8; 255 is white."""
    labels = np.asarray(labels).astype(np.int64)
    out = _PALETTE[np.clip(labels, 0, 255)]
    out[labels == 255] = 255
    return out


def colorize_scalar(values, vmin=None, vmax=None):
    """(..., H, W[, 1]) values -> a blue-to-yellow colour map, uint8."""
    values = np.asarray(values, np.float32)
    if values.shape[-1] == 1:
        values = values[..., 0]
    vmin = float(values.min()) if vmin is None else vmin
    vmax = float(values.max()) if vmax is None else vmax
    t = np.clip((values - vmin) / max(vmax - vmin, 1e-6), 0.0, 1.0)
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140],
                      [94, 201, 98], [253, 231, 37]], np.float32)
    position = t * (len(stops) - 1)
    low = np.floor(position).astype(np.int64).clip(0, len(stops) - 2)
    frac = (position - low)[..., None]
    return (stops[low] * (1 - frac) + stops[low + 1] * frac).astype(np.uint8)


def colorize_normals(normals):
    """Unit normals in [-1, 1]^3 -> RGB uint8, (n + 1) / 2."""
    normals = np.asarray(normals, np.float32)
    return ((normals + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def colorize(task, values):
    """Colour-codes a ground truth or an activated prediction of `task`."""
    values = np.asarray(values)
    if task in ("semseg", "human_parts"):
        if values.ndim == 4 and values.shape[-1] > 1:
            values = values.argmax(-1)
        return colorize_labels(values)
    if task == "normals":
        return colorize_normals(values)
    if task == "depth":
        return colorize_scalar(values)
    return colorize_scalar(values, 0.0, 1.0)
