"""Colour-coding of dense labels and predictions for TensorBoard (numpy).

Every function returns uint8 RGB (..., H, W, 3):
- class ids (semseg, human parts): the PASCAL VOC palette, 255 white;
- depth: a viridis-like map over a shared range, invalid (0) black;
- normals: RGB = (n + 1) / 2, the zero vector (invalid) black;
- edge and saliency probabilities: grey levels, 255 (ignore) dark red.
"""

import numpy as np

IGNORE_LABEL = 255
IGNORE_COLOUR = (96, 0, 0)
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140],
                     [94, 201, 98], [253, 231, 37]], np.float32)


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


def _drop_channel(values):
    values = np.asarray(values)
    return values[..., 0] if values.ndim >= 3 and values.shape[-1] == 1 \
        else values


def colorize_labels(labels):
    """(..., H, W) class ids -> (..., H, W, 3) uint8; 255 is white."""
    labels = _drop_channel(labels).astype(np.int64)
    out = _PALETTE[np.clip(labels, 0, 255)]
    out[labels == IGNORE_LABEL] = 255
    return out


def colorize_scalar(values, vmin=None, vmax=None):
    """(..., H, W[, 1]) values -> a blue-to-yellow colour map, uint8."""
    values = _drop_channel(values).astype(np.float32)
    vmin = float(values.min()) if vmin is None else vmin
    vmax = float(values.max()) if vmax is None else vmax
    t = np.clip((values - vmin) / max(vmax - vmin, 1e-6), 0.0, 1.0)
    position = t * (len(_VIRIDIS) - 1)
    low = np.floor(position).astype(np.int64).clip(0, len(_VIRIDIS) - 2)
    frac = (position - low)[..., None]
    return (_VIRIDIS[low] * (1 - frac) + _VIRIDIS[low + 1] * frac).astype(
        np.uint8)


def depth_range(depth):
    """(min, max) of the valid (> 0, finite) depths, for a shared scale."""
    depth = np.asarray(depth, np.float32)
    valid = depth[np.isfinite(depth) & (depth > 0)]
    if valid.size == 0:
        return 0.0, 1.0
    return float(valid.min()), float(valid.max())


def colorize_depth(depth, value_range=None):
    """Depth in metres -> colour map over `value_range`; 0 is black."""
    depth = _drop_channel(depth).astype(np.float32)
    vmin, vmax = value_range or depth_range(depth)
    out = colorize_scalar(depth, vmin, vmax)
    out[~(np.isfinite(depth) & (depth > 0))] = 0
    return out


def colorize_normals(normals):
    """Unit normals in [-1, 1]^3 -> RGB uint8, (n + 1) / 2; zero is black."""
    normals = np.asarray(normals, np.float32)
    out = ((normals + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    out[np.all(normals == 0, axis=-1)] = 0
    return out


def colorize_probability(values):
    """Probabilities in [0, 1] -> grey levels; 255 (ignore) dark red."""
    values = _drop_channel(values).astype(np.float32)
    grey = (np.clip(values, 0.0, 1.0) * 255).round().astype(np.uint8)
    out = np.repeat(grey[..., None], 3, axis=-1)
    out[values == IGNORE_LABEL] = IGNORE_COLOUR
    return out


def colorize(task, values, value_range=None):
    """Colour-codes a ground truth or an activated prediction of `task`.

    `value_range` (depth only): the (min, max) of the colour map; pass the
    ground truth's `depth_range` to draw prediction and truth alike.
    """
    values = np.asarray(values)
    if task in ("semseg", "human_parts"):
        if values.ndim == 4 and values.shape[-1] > 1:
            values = values.argmax(-1)
        return colorize_labels(values)
    if task == "normals":
        return colorize_normals(values)
    if task == "depth":
        return colorize_depth(values, value_range)
    if task in ("edge", "saliency"):
        return colorize_probability(values)
    raise ValueError(f"Unknown task {task!r}: no colour code for it.")
