"""Images of a folder, as the authors' response initialization reads them.

Their `decomp/main.py` runs the pretrained ResNet on `mini_val_imagenet`
through torchvision's `ImageFolder` (every image under the folder, in
sorted order, PIL-decoded and converted to RGB), `Resize(256)` (the short
side to 256, bilinear) and `CenterCrop(224)`. `batches` does the same with
PIL, streaming: one batch in memory at a time. Pixels stay in [0, 255]; the
network normalizes them itself.
"""

import os

import numpy as np
from PIL import Image

# torchvision's IMG_EXTENSIONS.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif",
                    ".tiff", ".webp")


def image_files(directory):
    """Every image under `directory` (recursively), sorted."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Image folder not found: {directory!r}. Expected a directory of "
            f"images (any depth, e.g. their mini_val_imagenet/<class>/*.JPEG).")
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(directory, followlinks=True)
        for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise ValueError(
            f"No images under {directory!r}: expected files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}.")
    return files


def resize_center_crop(image, resize=256, crop=224):
    """torchvision's `Resize(resize)` then `CenterCrop(crop)` of a PIL
    image, as a float32 `(crop, crop, 3)` array."""
    width, height = image.size
    if width <= height:
        size = (resize, int(resize * height / width))
    else:
        size = (int(resize * width / height), resize)
    if size != (width, height):
        image = image.resize(size, Image.BILINEAR)
    if min(size) < crop:
        raise ValueError(f"Cannot crop {crop}x{crop} from a {size[0]}x"
                         f"{size[1]} image: use resize >= crop.")
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    return np.asarray(image.crop((left, top, left + crop, top + crop)),
                      np.float32)


def read_rgb(path):
    """A PIL RGB image; a file PIL cannot read is an error naming it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) \
            as e:
        raise ValueError(f"Corrupt or unreadable image {path!r}: {e}") from e


def batches(directory, batch_size=32, resize=256, crop=224, limit=None):
    """Yields float32 `(n, crop, crop, 3)` batches of the images under
    `directory` (the first `limit` of them when given)."""
    files = image_files(directory)[:limit]
    for start in range(0, len(files), batch_size):
        yield np.stack([resize_center_crop(read_rgb(path), resize, crop)
                        for path in files[start:start + batch_size]])
