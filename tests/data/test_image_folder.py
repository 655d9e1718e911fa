"""--ri_images: the folder read as the authors' decomp/main.py reads
mini_val_imagenet (ImageFolder, Resize(256), CenterCrop(224))."""

import numpy as np
import pytest
from PIL import Image

from rmtl_tf.data import image_folder


def _write(path, array, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def test_sorted_recursive_and_geometry(tmp_path):
    rng = np.random.default_rng(0)
    # Short side already 256: no resampling, the crop is plain slicing
    # (left = round((300 - 224) / 2) = 38, top = 16).
    exact = rng.integers(0, 256, (256, 300, 3), dtype=np.uint8)
    _write(tmp_path / "b_class" / "x.png", exact)
    _write(tmp_path / "a_class" / "z.JPEG",
           np.full((480, 640, 3), (200, 40, 90), np.uint8), "JPEG")
    grey = np.full((400, 300), 77, np.uint8)  # Greyscale, portrait.
    _write(tmp_path / "a_class" / "y.bmp", grey)
    (tmp_path / "a_class" / "notes.txt").write_text("not an image")

    files = image_folder.image_files(str(tmp_path))
    assert [f[len(str(tmp_path)) + 1:] for f in files] == [
        "a_class/y.bmp", "a_class/z.JPEG", "b_class/x.png"]
    batches = list(image_folder.batches(str(tmp_path), batch_size=2))
    assert [b.shape for b in batches] == [(2, 224, 224, 3), (1, 224, 224, 3)]
    assert all(b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(batches[0][0], 77.0)  # Grey -> RGB.
    np.testing.assert_allclose(batches[0][1], np.broadcast_to(
        [200, 40, 90], (224, 224, 3)), atol=3)  # JPEG rounding.
    np.testing.assert_array_equal(batches[1][0], exact[16:240, 38:262])
    assert sum(len(b) for b in image_folder.batches(
        str(tmp_path), batch_size=2, limit=2)) == 2


def test_resize_keeps_aspect_and_truncates_like_torchvision():
    # 400x300 (w x h): torchvision's Resize(256) gives int(256 * 400 / 300)
    # = 341 x 256, CenterCrop(224) starts at round(58.5) = 58 (Python's
    # round, as torchvision's), the top at 16.
    ramp = np.tile(np.arange(400, dtype=np.float64) * 255 / 399, (300, 1))
    image = Image.fromarray(np.stack([ramp] * 3, -1).round().astype(np.uint8))
    crop = image_folder.resize_center_crop(image)
    assert crop.shape == (224, 224, 3)
    resized = np.asarray(image.resize((341, 256), Image.BILINEAR), np.float32)
    np.testing.assert_array_equal(crop, resized[16:240, 58:282])


def test_bad_folders_and_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        image_folder.image_files(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="No images under.*empty"):
        image_folder.image_files(str(tmp_path / "empty"))
    bad = tmp_path / "bad" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="Corrupt or unreadable image.*"
                                         "broken.jpg"):
        list(image_folder.batches(str(tmp_path / "bad")))
