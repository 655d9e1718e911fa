"""Edge ground truth from a label map, as the authors make PASCAL's edges.

The authors' loader (RCM, `dataloaders/PascalContextMT.py`, `_load_edge`)
takes the PASCAL-Context label map, applies the 3x3 Laplacian
(`cv2.Laplacian(label_map, cv2.CV_64F)`, kernel [[0,1,0],[1,-4,1],[0,1,0]],
border reflected without repeating the edge pixel), keeps |response| > 0 and
thins the result to one pixel (`skimage.morphology.thin`: the two
sub-iteration algorithm of Guo and Hall, 1989). We implement both in numpy.
"""

import numpy as np
from scipy import ndimage

# Weights of the 8 neighbours, counter-clockwise from the east one (P1):
#   P4 P3 P2        8   4   2
#   P5  .  P1  ->  16   .   1
#   P6 P7 P8       32  64 128
_NEIGHBOUR_WEIGHTS = np.array([[8, 4, 2], [16, 0, 1], [32, 64, 128]],
                              np.uint8)


def laplacian_edges(label_map):
    """Pixels whose 4-neighbourhood Laplacian of `label_map` is non-zero."""
    labels = np.asarray(label_map, np.float64)
    if labels.ndim != 2:
        raise ValueError("label_map must be 2-D. Received shape "
                         f"{labels.shape}")
    padded = np.pad(labels, 1, mode="reflect")  # OpenCV's BORDER_REFLECT_101.
    response = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2]
                + padded[1:-1, 2:] - 4 * labels)
    return np.abs(response) > 0


def _bits(index):
    """The 8 neighbours (P1..P8 above) encoded in `index`, as booleans."""
    return [bool(index >> i & 1) for i in range(8)]


def _deletion_tables():
    """Which 3x3 patterns delete their centre, per sub-iteration.

    Guo and Hall's conditions on the neighbours x1..x8 (x1 east, then
    counter-clockwise in the paper; the index order of `_bits`):
    G1: exactly one 8-connected component of foreground around the centre;
    G2: 2 <= min(N1, N2) <= 3 (end points and interior points are kept);
    G3 (first pass) / G3' (second pass): the centre is not on the
    north-east / south-west side to be kept.
    """
    g12 = np.zeros(256, bool)
    g3 = np.zeros(256, bool)
    g3p = np.zeros(256, bool)
    for index in range(256):
        x = _bits(index)
        crossings = sum(1 for i in (0, 2, 4, 6)
                        if not x[i] and (x[i + 1] or x[(i + 2) % 8]))
        n1 = sum(1 for k in (1, 3, 5, 7) if x[k] or x[k - 1])
        n2 = sum(1 for k in (1, 3, 5, 7) if x[k] or x[(k + 1) % 8])
        g12[index] = crossings == 1 and min(n1, n2) in (2, 3)
        g3[index] = not ((x[1] or x[2] or not x[7]) and x[0])
        g3p[index] = not ((x[5] or x[6] or not x[3]) and x[4])
    return g12 & g3, g12 & g3p


_TABLES = _deletion_tables()


def thin(mask, max_iterations=None):
    """Thins the foreground of boolean `mask` to one-pixel-wide lines."""
    skeleton = np.asarray(mask, bool).astype(np.uint8)
    previous, count, iteration = -1, int(skeleton.sum()), 0
    while count != previous and (max_iterations is None
                                 or iteration < max_iterations):
        previous = count
        for table in _TABLES:
            index = ndimage.correlate(skeleton, _NEIGHBOUR_WEIGHTS,
                                      mode="constant")
            skeleton[table[index]] = 0
        count = int(skeleton.sum())
        iteration += 1
    return skeleton.astype(bool)


def label_map_edges(label_map):
    """The authors' PASCAL edge map: thin(|Laplacian(label_map)| > 0)."""
    return thin(laplacian_edges(label_map))
