"""The 8-bit PNG round trip the authors' predictions go through.

Their `test.py` writes every prediction to a file before scoring it
(`util.save_img`, `utils/prediction_decoding.py`): saliency and edge
probabilities, and normals mapped to (n + 1) / 2, are saved with
`scipy.misc.toimage(x, cmin=0, cmax=1)` as 8-bit PNGs, read back as
`png / 255`. `toimage` scales with `bytescale`: `uint8(clip(x * 255, 0,
255) + 0.5)` in the input's float32 (round half up, values outside [0, 1]
saturate). The metrics here apply the same rounding so a prediction is
scored as the authors' evaluation would read it from their PNG.
"""

import numpy as np


def to_uint8(values):
    """[0, 1] float -> uint8 as `scipy.misc.toimage(.., cmin=0, cmax=1)`."""
    values = np.asarray(values, np.float32)
    scaled = np.clip(values * np.float32(255.0), 0, 255) + np.float32(0.5)
    return scaled.astype(np.uint8)


def probabilities(values):
    """Probabilities as read back from their PNG: `uint8 / 255.` (float32).
    """
    return to_uint8(values).astype(np.float32) / np.float32(255.0)


def normals(values):
    """Unit normals as read back from their PNG: `2 * png / 255 - 1`
    (float32) of the PNG of `(n + 1) / 2`."""
    encoded = to_uint8((np.asarray(values, np.float32) + np.float32(1.0))
                       / np.float32(2.0))
    return (np.float32(2.0) * encoded.astype(np.float32) / np.float32(255.0)
            - np.float32(1.0))
