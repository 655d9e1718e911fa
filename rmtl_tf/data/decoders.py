"""Stored features -> the decoded example the transforms work on.

The TFDS builders store labels compactly (uint8 PNGs, the authors' JPEG
normals); `decode_example` turns them, or the synthetic scenes' arrays, into
one form (see `transforms.py`): image float32 RGB in [0, 255]; class labels
int32 (H, W, 1); depth float32 metres; normals float32 with 0 = invalid;
edge and saliency float32 in {0, 1}.
"""

import numpy as np
import tensorflow as tf

from rmtl_tf.data.transforms import CLASS_TASKS


def feature_keys(tasks, available):
    """The stored features `tasks` need, among the `available` ones."""
    keys = ["image"]
    for task in tasks:
        keys.append(task)
        if task == "normals" and "normals_mask" in available:
            keys.append("normals_mask")
    return keys


def decode_image_bytes(encoded, channels):
    """uint8 (H, W, channels) from PNG / JPEG bytes, as Pillow decodes them.

    JPEGs use the accurate integer DCT (TensorFlow's default, the fast one,
    is a few levels off Pillow, which the authors' loaders use).
    """
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=channels,
                                  dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(encoded, channels=channels,
                                   expand_animations=False))
    return tf.ensure_shape(image, (None, None, channels))


# The authors' float32 normal of each uint8 value, computed in their order
# (`2.0 * _tmp / 255.0 - 1.0` on float32). A table, not arithmetic in the
# graph: Grappler's constant folding turns `/ 255` into `* (1 / 255)` inside
# a tf.function (and XLA may reassociate), which is up to 1 ulp off.
_NORMALS_TABLE = 2.0 * np.arange(256, dtype=np.float32) / 255.0 - 1.0


def decode_normals(encoded, mask=None):
    """uint8 RGB (H, W, 3) -> 2 * value / 255 - 1, zero where `mask` is 0.

    The authors' encoding of NYUD-MT and PASCAL-MT normals (their loaders'
    `_load_normals` / `_load_normals_distilled`), bit for bit in float32.
    """
    normals = tf.gather(tf.constant(_NORMALS_TABLE),
                        tf.cast(encoded, tf.int32))
    if mask is not None:
        normals = normals * tf.cast(mask, tf.float32)
    return normals


def decode_example(example, tasks):
    """The decoded example of `tasks` from stored features (see module)."""
    out = {"image": tf.cast(example["image"], tf.float32)}
    for task in tasks:
        value = example[task]
        if task in CLASS_TASKS:
            value = tf.cast(value, tf.int32)
            out[task] = value[..., None] if value.shape.rank == 2 else value
        elif task == "normals" and value.dtype == tf.uint8:
            out[task] = decode_normals(value, example.get("normals_mask"))
        else:
            out[task] = tf.cast(value, tf.float32)
    return out
