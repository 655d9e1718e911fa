"""The paper's augmentation and evaluation padding, as pure functions.

Each transform maps a dict of tensors of one example to a new dict:
`image` float32 (H, W, 3) RGB in [0, 255], and any of the labels (all
rank 3, (H, W, C)): `semseg` / `human_parts` int32 class ids, `depth`
float32 metres, `normals` float32 unit vectors, `edge` / `saliency` float32
in {0, 1}. Invalid pixels are 255 for class, edge and saliency labels and
0 for depth and normals (`LABEL_FILL`, which padding writes too).

As the authors' `augmentations/augmentations.py` (RCM): random scale in
{0.5, 0.75, ..., 2.0} (sizes rounded down, depth divided by the scale so
it stays consistent with the zoomed image), pad to the crop size centred
(image with the mean pixel, labels with their invalid value), random crop,
horizontal flip with probability 0.5 that negates the normals' x. Images
are resized bilinearly and every label with nearest neighbour: unlike the
authors (bilinear depth and normals), so invalid zeros never blend into
valid depths and normals stay unit length.

Images stay RGB in [0, 255]: the model normalizes with the ImageNet mean and
std inside its graph. Random transforms take an explicit stateless `seed`
(int tensor of shape [2]), so a pipeline is reproducible and every example
gets its own draw.
"""

import tensorflow as tf

# The authors' image padding (the ImageNet mean pixel, so ~0 once normalized).
IMAGE_FILL = (123.0, 116.0, 103.0)
IGNORE = 255
LABEL_FILL = {"semseg": IGNORE, "human_parts": IGNORE, "edge": IGNORE,
              "saliency": IGNORE, "normals": 0, "depth": 0}
CLASS_TASKS = ("semseg", "human_parts")
SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def _size(features):
    shape = tf.shape(features["image"])
    return shape[0], shape[1]


def resize(features, height, width, depth_scale=1.0):
    """Image bilinear, labels nearest; depth divided by `depth_scale`."""
    out = {}
    for key, value in features.items():
        if key == "image":
            out[key] = tf.image.resize(value, (height, width), "bilinear")
            continue
        value = tf.image.resize(value, (height, width), "nearest")
        if key == "depth":
            value = value / tf.cast(depth_scale, value.dtype)
        out[key] = value
    return out


def scale(features, factor):
    """Scales by `factor`: sizes `floor(size * factor)`, depth / factor."""
    factor = tf.cast(factor, tf.float32)
    height, width = _size(features)
    new_h = tf.cast(tf.math.floor(tf.cast(height, tf.float32) * factor),
                    tf.int32)
    new_w = tf.cast(tf.math.floor(tf.cast(width, tf.float32) * factor),
                    tf.int32)
    return resize(features, new_h, new_w, depth_scale=factor)


def random_scale(features, seed, scales=SCALES):
    """`scale` by one of `scales`, drawn uniformly."""
    index = tf.random.stateless_uniform([], seed, 0, len(scales), tf.int32)
    return scale(features, tf.gather(tf.constant(scales, tf.float32), index))


def _pad_value(key, value, paddings):
    if key == "image":
        inside = tf.pad(tf.ones_like(value[..., :1]), paddings)
        fill = tf.constant(IMAGE_FILL, value.dtype)
        return tf.pad(value, paddings) + (1.0 - inside) * fill
    return tf.pad(value, paddings,
                  constant_values=tf.cast(LABEL_FILL[key], value.dtype))


def pad_to_size(features, size):
    """Pads (centred, as the authors) to at least `size` = (h, w)."""
    height, width = _size(features)
    pad_h = tf.maximum(size[0] - height, 0)
    pad_w = tf.maximum(size[1] - width, 0)
    paddings = [[pad_h // 2, pad_h - pad_h // 2],
                [pad_w // 2, pad_w - pad_w // 2], [0, 0]]
    return {k: _pad_value(k, v, paddings) for k, v in features.items()}


def crop(features, top, left, size):
    """The `size` window at (`top`, `left`) of every entry, static shape."""
    out = {}
    for key, value in features.items():
        window = value[top:top + size[0], left:left + size[1]]
        out[key] = tf.ensure_shape(window, (size[0], size[1],
                                            value.shape[-1]))
    return out


def random_crop(features, size, seed):
    """Pads to `size` if needed, then crops `size` at a uniform offset."""
    features = pad_to_size(features, size)
    height, width = _size(features)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    top = tf.random.stateless_uniform([], seeds[0], 0, height - size[0] + 1,
                                      tf.int32)
    left = tf.random.stateless_uniform([], seeds[1], 0, width - size[1] + 1,
                                       tf.int32)
    return crop(features, top, left, size)


def center_crop(features, size):
    """Pads to `size` if needed, then keeps the central `size` window."""
    features = pad_to_size(features, size)
    return crop(features, *crop_offsets(_size(features), size), size)


def flip_left_right(features):
    """Mirrors every entry; the normals' x component changes sign."""
    out = {k: tf.reverse(v, axis=[1]) for k, v in features.items()}
    if "normals" in out:
        out["normals"] = out["normals"] * tf.constant([-1.0, 1.0, 1.0],
                                                      out["normals"].dtype)
    return out


def random_flip(features, seed, probability=0.5):
    """`flip_left_right` with `probability`."""
    flip = tf.random.stateless_uniform([], seed) < probability
    return tf.cond(flip, lambda: flip_left_right(features),
                   lambda: dict(features))


def train_transform(features, size, seed, scales=SCALES, flip=True):
    """The paper's training augmentation: scale, pad + crop, flip."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    features = random_scale(features, seeds[0], scales)
    features = random_crop(features, size, seeds[1])
    if flip:
        features = random_flip(features, seeds[2])
    return features


def eval_transform(features, size):
    """A fixed-size view: pad to `size` (centred), keep the central `size`
    window of larger images.

    For what needs one input size (output probes, TensorBoard panels, int8
    calibration); scoring uses `full_resolution_transform`.
    """
    return center_crop(features, size)


def full_resolution_transform(features, size):
    """The authors' evaluation input: the image padded (centred, with the
    mean pixel) to at least `size`, never cropped; the labels untouched, at
    the original size.

    Their validation loader applies only `PadImage` (NYUD 425x560, PASCAL
    512x512) and `util.save_img` cuts the prediction back to the original
    size: `crop_to_labels` does that here.
    """
    padded = pad_to_size({"image": features["image"]}, size)
    return {**features, "image": padded["image"]}


def crop_offsets(padded_size, size):
    """(top, left) of the original `size` inside the `padded_size` image:
    the centred placement of `pad_to_size` (and the authors' `PadImage`)."""
    return ((padded_size[0] - size[0]) // 2, (padded_size[1] - size[1]) // 2)


def to_model_inputs(features, tasks):
    """`(image, {task: label})`: class labels (H, W) int32, others float32."""
    labels = {}
    for task in tasks:
        value = features[task]
        if task in CLASS_TASKS:
            labels[task] = tf.cast(value[..., 0], tf.int32)
        else:
            labels[task] = tf.cast(value, tf.float32)
    return tf.cast(features["image"], tf.float32), labels
