"""Thinning against a direct per-pixel reading of Lam, Lee and Suen's
conditions (no lookup tables, no bit codes), and on hand cases."""

import numpy as np
from scipy import ndimage

from rmtl_tf.metrics.boundary_thinning import thin

# x1..x8: E, NE, N, NW, W, SW, S, SE as (dy, dx).
_OFFSETS = [(0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0),
            (1, 1)]


def _reference_thin(mask):
    """Slow and literal: each subiteration reads the whole image first."""
    img = np.pad(np.asarray(mask, bool), 1).astype(int)
    changed = True
    while changed:
        changed = False
        for sub in (1, 2):
            delete = []
            for y, x in zip(*np.nonzero(img)):
                n = [None] + [img[y + dy, x + dx] for dy, dx in _OFFSETS]
                n.append(n[1])  # x9 = x1
                xh = sum(1 for i in (1, 2, 3, 4)
                         if n[2 * i - 1] == 0 and (n[2 * i] or n[2 * i + 1]))
                n1 = sum(1 for k in (1, 2, 3, 4) if n[2 * k - 1] or n[2 * k])
                n2 = sum(1 for k in (1, 2, 3, 4) if n[2 * k] or n[2 * k + 1])
                if sub == 1:
                    g3 = not ((n[2] or n[3] or not n[8]) and n[1])
                else:
                    g3 = not ((n[6] or n[7] or not n[4]) and n[5])
                if xh == 1 and 2 <= min(n1, n2) <= 3 and g3:
                    delete.append((y, x))
            for y, x in delete:
                img[y, x] = 0
            changed |= bool(delete)
    return img[1:-1, 1:-1].astype(bool)


def _components(mask):
    return ndimage.label(mask, structure=np.ones((3, 3)))[1]


def test_matches_the_literal_conditions_on_random_blobs():
    rng = np.random.default_rng(0)
    for _ in range(6):
        noise = ndimage.gaussian_filter(rng.standard_normal((24, 30)), 1.5)
        mask = noise > 0.05
        np.testing.assert_array_equal(thin(mask), _reference_thin(mask))


def test_thick_bar_becomes_one_line():
    mask = np.zeros((9, 14), bool)
    mask[3:6, 1:13] = True  # 3 pixels thick.
    out = thin(mask)
    assert out.sum(0).max() == 1  # One pixel per column.
    assert set(np.nonzero(out)[0]) == {4}  # The middle row.
    assert _components(out) == 1 and np.all(mask[out])


def test_thin_lines_are_left_alone():
    mask = np.zeros((12, 12), bool)
    mask[2, 1:11] = True
    mask[np.arange(4, 11), np.arange(1, 8)] = True  # A diagonal.
    np.testing.assert_array_equal(thin(mask), mask)
    assert not thin(np.zeros((5, 7))).any()
    assert thin(np.zeros((5, 7))).shape == (5, 7)


def test_ring_keeps_its_hole_and_is_idempotent():
    yy, xx = np.mgrid[:21, :21]
    ring = ((yy - 10)**2 + (xx - 10)**2 <= 64) & (
        (yy - 10)**2 + (xx - 10)**2 >= 16)
    out = thin(ring)
    assert out.sum() < ring.sum() / 2
    assert _components(out) == 1
    holes = ndimage.label(~out)[1]  # 4-connected background pieces.
    assert holes == 2  # Outside and the hole.
    np.testing.assert_array_equal(thin(out), out)
