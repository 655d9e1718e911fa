"""Reading the authors' files (.jpg, .png, .mat, set files) with clear errors.

Everything here is numpy; the TFDS builders call it while preparing. Images
and label PNGs are read with Pillow exactly as the authors' loaders do
(`np.array(Image.open(path))`: palette PNGs give their indices, not
colours), .mat files with `scipy.io.loadmat`. Every problem raises
`BadExampleError` naming the file, so a bad file is never turned into a
silently wrong sample.
"""

import io
import os

import numpy as np


class BadExampleError(ValueError):
    """A file of one example is missing, unreadable or inconsistent."""


def require_file(path, what):
    """Raises `BadExampleError` when `path` is not a file."""
    if not os.path.isfile(path):
        raise BadExampleError(f"Missing {what}: {path}")
    return path


def read_split_ids(path):
    """The image ids of a set file (one per line), in file order.

    Raises `FileNotFoundError` naming the file when it does not exist and
    `ValueError` when it is empty or repeats an id.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Missing split file: {path}")
    with open(path, encoding="utf-8") as f:
        ids = [line.strip() for line in f if line.strip()]
    if not ids:
        raise ValueError(f"The split file {path} lists no image.")
    seen = set()
    for image_id in ids:
        if image_id in seen:
            raise ValueError(f"The split file {path} lists {image_id!r} "
                             "twice.")
        seen.add(image_id)
    return ids


def _open_image(path):
    from PIL import Image  # pylint: disable=import-outside-toplevel
    with open(path, "rb") as f:
        data = f.read()
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # Decodes fully: truncated files raise here.
    except Exception as e:  # pylint: disable=broad-except
        raise BadExampleError(f"Cannot decode image {path}: {e}") from e
    return data, image


def read_rgb_image(path):
    """(encoded bytes, uint8 array (H, W, 3)) of an image file.

    The bytes are kept as they are (no re-encoding); the array only checks
    that the file decodes completely and gives its size.
    """
    require_file(path, "image")
    data, image = _open_image(path)
    return data, np.asarray(image.convert("RGB"))


def read_png_label(path, channels=1):
    """A label PNG as the authors read it: uint8 (H, W, channels).

    Palette PNGs give their indices. Raises when the file has another number
    of channels or is not 8-bit.
    """
    require_file(path, "label")
    _, image = _open_image(path)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] != channels or array.dtype != np.uint8:
        raise BadExampleError(
            f"Expected an 8-bit label image with {channels} channel(s) in "
            f"{path}; found shape {array.shape} and dtype {array.dtype}.")
    return array


def read_mat(path, key):
    """The array stored under `key` in the .mat file `path`."""
    import scipy.io  # pylint: disable=import-outside-toplevel
    require_file(path, ".mat label")
    try:
        contents = scipy.io.loadmat(path)
    except Exception as e:  # pylint: disable=broad-except
        raise BadExampleError(f"Cannot read .mat file {path}: {e}") from e
    if key not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise BadExampleError(f"The .mat file {path} has no key {key!r} "
                              f"(found: {found}).")
    return contents[key]


def check_size(array, size, path, what="label"):
    """Raises unless `array` is (H, W, ...) with (H, W) == `size`."""
    if tuple(array.shape[:2]) != tuple(size):
        raise BadExampleError(
            f"The {what} {path} is {array.shape[0]}x{array.shape[1]} but its "
            f"image is {size[0]}x{size[1]}.")
    return array


def class_map(values, num_classes, path):
    """A class-id map as uint8 (H, W, 1): ids in [0, num_classes) or 255.

    Raises on any other value (including non-integers), naming the file.
    """
    values = np.asarray(values)
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim != 2:
        raise BadExampleError(f"Expected a 2-D class map in {path}; found "
                              f"shape {values.shape}.")
    integer = np.all(np.isfinite(values)) and np.all(values == np.round(values))
    if not integer:
        raise BadExampleError(f"The class map {path} has non-integer values.")
    bad = (values != 255) & ((values < 0) | (values >= num_classes))
    if bad.any():
        raise BadExampleError(
            f"The class map {path} has values outside [0, {num_classes - 1}]"
            f" and 255: {np.unique(values[bad])[:10].tolist()}.")
    return values.astype(np.uint8)[..., None]
