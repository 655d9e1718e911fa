"""Morphological thinning of binary boundary maps, as MATLAB's
`bwmorph(bw, 'thin', Inf)` that the BSDS and seism benchmarks apply to every
thresholded prediction (and to the ground truth) before matching.

The algorithm is the two-subiteration parallel thinning of Lam, Lee and
Suen (1992), the one `bwmorph` documents. With the 8 neighbours of a pixel
p numbered x1..x8 counter-clockwise from the east (x1 = E, x2 = NE, x3 = N,
x4 = NW, x5 = W, x6 = SW, x7 = S, x8 = SE; x9 = x1), p is deleted in the
first subiteration when G1, G2 and G3 hold, in the second when G1, G2 and
G3' hold:

- G1: X_H(p) = 1, with X_H = sum over i = 1..4 of b_i and
  b_i = 1 iff x_{2i-1} = 0 and (x_{2i} = 1 or x_{2i+1} = 1);
- G2: 2 <= min(n1, n2) <= 3, n1 = sum_k (x_{2k-1} or x_{2k}),
  n2 = sum_k (x_{2k} or x_{2k+1}), k = 1..4;
- G3: (x2 or x3 or not x8) and x1 is false;
- G3': (x6 or x7 or not x4) and x5 is false.

Subiterations alternate until nothing changes. Both conditions only depend
on the 8-neighbourhood, so each is a 256-entry lookup table indexed by the
neighbourhood code sum_i x_i 2^(i-1). Pixels outside the image are 0.
"""

import numpy as np

# (dy, dx) of x1..x8; bit i of the neighbourhood code is x_{i+1}.
NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0),
              (1, 1))


def _bits(code):
    """x1..x9 of a neighbourhood code, 1-based (index 0 unused)."""
    x = [0] + [(code >> i) & 1 for i in range(8)]
    return x + [x[1]]


def _g1_and_g2(x):
    crossings = sum(1 for i in range(1, 5)
                    if not x[2 * i - 1] and (x[2 * i] or x[2 * i + 1]))
    n1 = sum(1 for k in range(1, 5) if x[2 * k - 1] or x[2 * k])
    n2 = sum(1 for k in range(1, 5) if x[2 * k] or x[2 * k + 1])
    return crossings == 1 and 2 <= min(n1, n2) <= 3


def deletion_tables():
    """Two boolean tables over the 256 codes: deletable in subiteration 1
    (G1 and G2 and G3) and in subiteration 2 (G1 and G2 and G3')."""
    first = np.zeros(256, bool)
    second = np.zeros(256, bool)
    for code in range(256):
        x = _bits(code)
        if not _g1_and_g2(x):
            continue
        first[code] = not ((x[2] or x[3] or not x[8]) and x[1])
        second[code] = not ((x[6] or x[7] or not x[4]) and x[5])
    return first, second


_TABLES = deletion_tables()


def _sorted_unique(values):
    """np.unique by sorting (NumPy 2's hash-based unique is slower here)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] \
        if values.size else values


def thin(mask, max_iterations=None):
    """Thins a binary map to 8-connected strokes one pixel wide.

    Args:
        mask: (H, W) array, non-zero = boundary.
        max_iterations: stop after this many (two-subiteration) passes;
            `None` runs until nothing changes, as `bwmorph(.., Inf)`.

    Returns:
        (H, W) bool array, a subset of `mask`.

    Only pixels with a 4-neighbour outside the map can be deleted (G1 needs
    one), and a pixel's fate under a table changes only when its
    neighbourhood does: each subiteration reads just the pixels next to the
    last deletions that its table has not seen since, not the whole image.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"`mask` must be 2-D (H, W). Received shape "
                         f"{mask.shape}.")
    height, width = mask.shape
    padded = np.pad(mask != 0, 1).astype(np.uint8)
    stride = width + 2
    flat = padded.reshape(-1)
    offsets = np.array([dy * stride + dx for dy, dx in NEIGHBOURS])
    four = offsets[[0, 2, 4, 6]]
    pixels = np.flatnonzero(flat)
    contour = pixels[(flat[pixels[:, None] + four] == 0).any(1)]
    # Pixels each table still has to read (sorted flat indices).
    pending = [contour, contour]
    bits = np.arange(8, dtype=np.uint8)
    iteration, idle = 0, 0
    while max_iterations is None or iteration < max_iterations:
        iteration += 1
        for k, table in enumerate(_TABLES):
            candidates = pending[k][flat[pending[k]] == 1]
            pending[k] = candidates[:0]
            if not candidates.size:
                idle += 1
                continue
            code = (flat[candidates[:, None] + offsets] << bits).sum(
                1, dtype=np.int64)
            delete = candidates[table[code]]
            if not delete.size:
                idle += 1
                continue
            idle = 0
            flat[delete] = 0
            around = (delete[:, None] + offsets).reshape(-1)
            around = _sorted_unique(around[flat[around] == 1])
            pending[k] = around
            pending[1 - k] = _sorted_unique(
                np.concatenate([pending[1 - k], around]))
        if idle >= 2:  # A full pass (both tables) deleted nothing.
            break
    return padded[1:height + 1, 1:width + 1].astype(bool)
