"""One-to-one correspondence between predicted and ground-truth boundary
pixels within a distance tolerance: the `correspondPixels` step of the BSDS
and seism boundary benchmarks.

Two boundary pixels may match when their Euclidean distance is at most
`max_dist * sqrt(H^2 + W^2)` (`max_dist` is a fraction of the image
diagonal: 0.0075 for PASCAL-Context, 0.011 for NYUD). Each pixel matches at
most one pixel of the other map, and the matching has the largest possible
number of pairs: a maximum-cardinality bipartite matching (greedy
nearest-first, then Hopcroft-Karp where needed; see `bipartite_matching`).

The BSDS code solves a min-cost assignment whose cost of leaving a pixel
unmatched (100 x the tolerance) exceeds any match's distance, so it also
maximizes the number of matches (and then, among those, minimizes the
distances, which does not change the counts); it approximates with a sparse
graph of outlier edges, which can only lose matches. Only the counts enter
precision and recall, so this exact matching is the protocol's ideal.
"""

import functools

import numpy as np
from scipy import ndimage

from rmtl_tf.metrics.bipartite_matching import maximum_matching


def tolerance_pixels(shape, max_dist):
    """The tolerance in pixels: `max_dist` times the image diagonal."""
    if not 0 <= max_dist < 1:
        raise ValueError("`max_dist` is a fraction of the image diagonal, "
                         f"in [0, 1). Received: max_dist={max_dist}")
    height, width = shape
    return float(max_dist * np.hypot(height, width))


@functools.lru_cache(maxsize=16)
def disk_offsets(radius):
    """(dy, dx) with dy^2 + dx^2 <= radius^2, nearest first."""
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    d2 = dy**2 + dx**2
    keep = d2 <= radius * radius
    order = np.argsort(d2[keep], kind="stable")
    return dy[keep][order], dx[keep][order]


def distance_to(mask):
    """Euclidean distance of every pixel to the nearest non-zero of `mask`
    (inf everywhere when `mask` is empty)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask)


def correspond_pixels(pred, gt, max_dist, gt_distance=None):
    """Matches boundary pixels of `pred` to those of `gt`, one to one.

    Args:
        pred: (H, W) binary map of predicted boundary pixels.
        gt: (H, W) binary map of ground-truth boundary pixels.
        max_dist: tolerance, a fraction of the image diagonal.
        gt_distance: optional `distance_to(gt)`, to reuse across thresholds.

    Returns:
        `(matched_pred, matched_gt)`: (H, W) bool maps of the matched pixels
        of each map; both have the same number of pixels.
    """
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError("`pred` and `gt` must be 2-D maps of one shape. "
                         f"Received shapes {pred.shape} and {gt.shape}.")
    radius = tolerance_pixels(pred.shape, max_dist)
    matched_pred = np.zeros(pred.shape, bool)
    matched_gt = np.zeros(gt.shape, bool)
    if gt_distance is None:
        gt_distance = distance_to(gt)
    # Pixels with no partner within the tolerance cannot match: leave them
    # out of the graph.
    py, px = np.nonzero(pred & (gt_distance <= radius))
    if py.size == 0:
        return matched_pred, matched_gt
    pad = int(radius) + 1
    stride = pred.shape[1] + 2 * pad
    gt_id = np.full((pred.shape[0] + 2 * pad) * stride, -1, np.int64)
    gy, gx = np.nonzero(gt)
    gt_id[(gy + pad) * stride + gx + pad] = np.arange(gy.size)
    dy, dx = disk_offsets(radius)
    # (offsets, pixels): flattened offset-major, so edges come nearest
    # offset first, for every pixel.
    partner = gt_id[(dy * stride + dx)[:, None]
                    + ((py + pad) * stride + px + pad)[None, :]]
    offset_index, pred_index = np.nonzero(partner >= 0)
    rows, cols = pred_index, partner[offset_index, pred_index]
    # Edges come nearest offset first: the greedy start pairs near pixels.
    match, _ = maximum_matching(rows, cols, py.size, gy.size)
    matched = match >= 0
    matched_pred[py[matched], px[matched]] = True
    matched_gt[gy[match[matched]], gx[match[matched]]] = True
    return matched_pred, matched_gt
