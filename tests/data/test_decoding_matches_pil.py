"""JPEGs decode to Pillow's pixels, and normals to the authors' float32
values, bit for bit, through the path the input pipeline uses.

The authors' loaders (RCM, `dataloaders/NYUDMT.py`, `PascalContextMT.py`)
read images with `np.array(Image.open(p).convert('RGB'))` and NYUD normals
with `2.0 * np.array(Image.open(p)).astype(np.float32) / 255.0 - 1.0`. The
builders keep the JPEG bytes and `decoders.decode_image_bytes` decodes them
in the tf.data pipeline; TensorFlow's default (fast) DCT is tens of grey
levels off Pillow on high-frequency content, which these files provoke.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import write_fixtures
from PIL import Image, ImageFile, JpegImagePlugin

from rmtl_tf.data import datasets, decoders

QUALITIES = (50, 75, 95, 100)
# Pillow's `subsampling` values and what `get_sampling` reports back.
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _content(kind, size, seed):
    """uint8 (H, W, 3) high-frequency pixels: noise, 1-pixel checkerboards
    or sharp saturated edges with 1-pixel lines."""
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "checker":
        one = ((y + x) % 2 * 255).astype(np.uint8)
        return np.stack([one, 255 - one,
                         ((y // 2 + x // 3) % 2 * 255).astype(np.uint8)], -1)
    image = np.zeros((h, w, 3), np.uint8)
    image[:, w // 3:] = (255, 0, 40)
    image[h // 2:, :] = (0, 200, 255)
    image[::5, :] = (255, 255, 255)
    image[:, ::7] = (0, 0, 0)
    return image


def _save(path, pixels, mode="RGB", **kwargs):
    Image.fromarray(pixels, mode).save(path, **kwargs)
    return path


def _pil(path):
    """How the authors' loaders read an image."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def _authors_normals(path):
    """NYUDMT._load_normals, in float32 as the authors compute it."""
    with Image.open(path) as image:
        tmp = np.array(image).astype(np.float32)
    normals = 2.0 * tmp / 255.0 - 1.0
    assert normals.dtype == np.float32
    return normals


def _in_pipeline(fn, values):
    """`fn` over `values` in a tf.data map, as the input pipeline runs it."""
    ds = tf.data.Dataset.from_tensor_slices(values).map(fn)
    return [x.numpy() for x in ds]


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """{name: path} of JPEGs that stress the decoder, checked to be what
    their names say (sampling, progressive, mode)."""
    out = tmp_path_factory.mktemp("jpegs")
    files = {}
    specs = []
    for kind in ("noise", "checker", "edges"):
        for quality in QUALITIES:
            for sampling in SUBSAMPLING:
                for progressive in (False, True):
                    specs.append(((37, 53), kind, quality, sampling,
                                  progressive))
    for kind in ("noise", "checker", "edges"):
        for quality, sampling in ((75, "4:2:0"), (100, "4:4:4")):
            specs.append(((480, 640), kind, quality, sampling, False))
    specs += [((480, 640), "noise", 95, "4:2:2", True),
              ((1, 1), "noise", 100, "4:2:0", False),
              ((17, 9), "checker", 90, "4:2:0", True)]
    # A progressive 480x640 noise JPEG outgrows Pillow's default buffer.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageFile, "MAXBLOCK", 1 << 24)
        for i, (size, kind, quality, sampling, progressive) in enumerate(
                specs):
            name = (f"{kind}_{size[0]}x{size[1]}_q{quality}_"
                    f"{sampling.replace(':', '')}"
                    + ("_progressive" if progressive else ""))
            files[name] = _save(out / (name + ".jpg"),
                                _content(kind, size, i), quality=quality,
                                subsampling=sampling, progressive=progressive)
            with Image.open(files[name]) as image:
                assert image.mode == "RGB"
                if size != (1, 1):
                    assert JpegImagePlugin.get_sampling(image) == (
                        SUBSAMPLING[sampling]), name
                assert bool(image.info.get("progressive")) == progressive
        # Greyscale JPEGs (PASCAL VOC has some): convert('RGB') repeats
        # the channel.
        for i, (size, quality, progressive) in enumerate(
                [((37, 53), 75, False), ((37, 53), 100, False),
                 ((37, 53), 100, True), ((480, 640), 95, False)]):
            grey = _content("noise", size, 100 + i)[..., 0]
            grey[:, ::4] = 255
            name = (f"grey_{size[0]}x{size[1]}_q{quality}"
                    + ("_progressive" if progressive else ""))
            files[name] = _save(out / (name + ".jpg"), grey, "L",
                                quality=quality, progressive=progressive)
            with Image.open(files[name]) as image:
                assert image.mode == "L"
        # Beyond the brief: Pillow saves CMYK as Adobe (inverted) CMYK.
        files["cmyk_37x53_q90"] = out / "cmyk_37x53_q90.jpg"
        Image.fromarray(_content("noise", (37, 53), 200)).convert(
            "CMYK").save(files["cmyk_37x53_q90"], quality=90)
    return files


def test_jpegs_decode_to_pillows_pixels(jpegs):
    names = sorted(jpegs)
    encoded = [jpegs[n].read_bytes() for n in names]
    in_pipeline = _in_pipeline(lambda b: decoders.decode_image_bytes(b, 3),
                               encoded)
    mismatches = []
    for name, data, piped in zip(names, encoded, in_pipeline):
        pil = _pil(jpegs[name])
        assert pil.ndim == 3 and pil.shape[-1] == 3 and pil.dtype == np.uint8
        eager = decoders.decode_image_bytes(tf.constant(data), 3).numpy()
        for how, ours in (("eager", eager), ("tf.data", piped)):
            if ours.dtype != np.uint8 or not np.array_equal(ours, pil):
                diff = (np.abs(ours.astype(int) - pil).max()
                        if ours.shape == pil.shape else ours.shape)
                mismatches.append(f"{name} ({how}): {diff}")
    assert not mismatches, "Decoded unlike Pillow:\n" + "\n".join(mismatches)


def test_the_files_tell_the_default_dct_from_pillows(jpegs):
    """TensorFlow's default DCT (dct_method "") is off Pillow on these
    files, so the test above would catch a decoder that uses it."""
    diffs = {}
    for name, path in jpegs.items():
        default = tf.io.decode_jpeg(path.read_bytes(), channels=3).numpy()
        diffs[name] = np.abs(default.astype(int) - _pil(path)).max()
    high_frequency = [n for n in diffs if n.startswith(("noise", "checker"))
                      and "_q100" in n and "_1x1_" not in n]
    assert high_frequency
    assert all(diffs[n] > 0 for n in high_frequency), {
        n: diffs[n] for n in high_frequency}
    assert max(diffs.values()) >= 10


def _authors_order(x):
    return 2.0 * np.asarray(x).astype(np.float32) / 255.0 - 1.0


def test_normals_are_the_authors_float32_values():
    every = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None],
                            (2, 256, 3))
    truth = _authors_order(every)
    assert truth.dtype == np.float32
    example = {"image": np.zeros((2, 256, 3), np.uint8), "normals": every}

    def decode(ex):
        return decoders.decode_example(ex, ["normals"])["normals"]

    results = {
        "eager": decode(example).numpy(),
        # Grappler folds `/ 255` into `* (1 / 255)` in graphs.
        "tf.function": tf.function(decode)(example).numpy(),
        "xla": tf.function(decode, jit_compile=True)(example).numpy(),
        "tf.data": next(iter(tf.data.Dataset.from_tensors(example).map(
            decode))).numpy(),
    }
    for how, normals in results.items():
        assert normals.dtype == np.float32, how
        assert np.array_equal(normals, truth), (
            how, np.abs(normals - truth).max())


def test_masked_normals_are_zero_where_the_authors_drop_them():
    """PASCAL's `_load_normals_distilled`: the normal on valid classes,
    0 elsewhere."""
    rng = np.random.default_rng(3)
    encoded = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    mask = rng.integers(0, 2, (9, 11, 1), dtype=np.uint8)
    normals = decoders.decode_example(
        {"image": encoded, "normals": encoded, "normals_mask": mask},
        ["normals"])["normals"].numpy()
    assert normals.dtype == np.float32
    assert np.array_equal(normals,
                          np.where(mask == 1, _authors_order(encoded), 0.0))


def test_jpeg_normals_decode_to_the_authors_values(tmp_path):
    """NYUD normals are JPEGs: Pillow's pixels, then the authors' formula."""
    rng = np.random.default_rng(4)
    paths = []
    for i, (size, quality, sampling) in enumerate(
            [((48, 64), 95, "4:2:0"), ((37, 53), 100, "4:4:4"),
             ((480, 640), 95, "4:2:0"), ((37, 53), 75, "4:2:2")]):
        y, x = np.mgrid[0:size[0], 0:size[1]] / max(size)
        field = np.stack([np.sin(9 * x), np.cos(7 * y), np.ones_like(x)], -1)
        field /= np.linalg.norm(field, axis=-1, keepdims=True)
        encoded = np.clip((field + 1) / 2 * 255 + rng.normal(
            0, 20, (*size, 3)), 0, 255).astype(np.uint8)
        paths.append(_save(tmp_path / f"normals_{i}.jpg", encoded,
                           quality=quality, subsampling=sampling))

    def decode(data):
        stored = {"image": decoders.decode_image_bytes(data, 3),
                  "normals": decoders.decode_image_bytes(data, 3)}
        return decoders.decode_example(stored, ["normals"])["normals"]

    decoded = _in_pipeline(decode, [p.read_bytes() for p in paths])
    for path, normals in zip(paths, decoded):
        assert normals.dtype == np.float32
        assert np.array_equal(normals, _authors_normals(path)), path.name


# End to end: the authors' layout -> the TFDS builders -> the pipeline's
# `decode_fn` (what `load_split` maps; read before evaluation padding).

STRESS = [  # (kind, quality, sampling, progressive, greyscale)
    ("noise", 100, "4:4:4", False, False),
    ("checker", 100, "4:2:0", True, False),
    ("edges", 75, "4:2:2", False, False),
    ("noise", 95, "4:2:0", False, True),
]


def _stress(path, size, index, normals=False):
    kind, quality, sampling, progressive, grey = STRESS[index % len(STRESS)]
    pixels = _content(kind, size, 300 + index)
    if grey and not normals:
        return _save(path, pixels[..., 1], "L", quality=quality,
                     progressive=progressive)
    return _save(path, pixels, quality=quality, subsampling=sampling,
                 progressive=progressive)


@pytest.fixture(scope="module")
def stressed(tmp_path_factory):
    """NYUD-MT and PASCAL-MT copies at an odd size (37x53) whose JPEGs are
    the high-frequency, greyscale and progressive kinds above."""
    out = {}
    for name, writer, folder, images in (
            ("nyud", write_fixtures.write_nyud_mt, "NYUD_MT", "images"),
            ("pascal_context", write_fixtures.write_pascal_mt, "PASCAL_MT",
             "JPEGImages")):
        manual_dir = str(tmp_path_factory.mktemp(name + "_stressed_manual"))
        data_dir = str(tmp_path_factory.mktemp(name + "_stressed_tfds"))
        written = writer(manual_dir, num_train=1, num_val=len(STRESS),
                         size=(37, 53))
        root = os.path.join(manual_dir, folder)
        for i, image_id in enumerate(sorted(written)):
            _stress(os.path.join(root, images, image_id + ".jpg"), (37, 53),
                    i)
            if name == "nyud":
                _stress(os.path.join(root, "normals", image_id + ".jpg"),
                        (37, 53), i + 1, normals=True)
        datasets.prepare(name, data_dir, manual_dir)
        out[name] = (manual_dir, data_dir, written)
    return out


def _check_validation_split(name, manual_dir, data_dir, written):
    """Each validation example as the pipeline decodes it against Pillow's
    reading of the file on disk; returns the JPEG paths checked."""
    nyud = name == "nyud"
    root = os.path.join(manual_dir, "NYUD_MT" if nyud else "PASCAL_MT")
    images = "images" if nyud else "JPEGImages"
    # The builders keep the files' bytes: they name each example's file.
    by_bytes = {}
    for image_id in written:
        path = os.path.join(root, images, image_id + ".jpg")
        by_bytes[_read(path)] = image_id
    tasks = ["semseg", "depth", "normals", "edge"] if nyud else [
        "semseg", "human_parts", "saliency", "normals"]
    examples, decode_fn, _, count = datasets.tfds_examples(
        name, "validation", tasks, data_dir)
    ds = examples.map(lambda ex: (ex["image"], decode_fn(ex)))
    seen, checked = [], []
    for encoded, decoded in ds:
        image_id = by_bytes.get(encoded.numpy())
        assert image_id is not None, "image bytes unlike every file"
        seen.append(image_id)
        path = os.path.join(root, images, image_id + ".jpg")
        image = decoded["image"].numpy()
        assert image.dtype == np.float32
        assert np.array_equal(image, _pil(path).astype(np.float32)), (
            image_id, np.abs(image - _pil(path)).max())
        checked.append(path)
        normals = decoded["normals"].numpy()
        assert normals.dtype == np.float32
        if nyud:
            path = os.path.join(root, "normals", image_id + ".jpg")
            truth = _authors_normals(path)
            checked.append(path)
        else:
            truth = _authors_normals(os.path.join(
                root, "NormalsDistill", image_id + ".png"))
            valid = np.isin(written[image_id]["label_map"],
                            write_fixtures.NORMALS_CLASSES)
            truth = np.where(valid[..., None], truth, 0.0)
        assert np.array_equal(normals, truth), (
            image_id, np.abs(normals - truth).max())
    assert len(seen) == len(set(seen)) == count > 0
    return checked


def _mode(path):
    with Image.open(path) as image:
        return image.mode


@pytest.mark.parametrize("name", ["nyud", "pascal_context"])
def test_builders_and_pipeline_decode_as_the_authors(name, stressed, nyud,
                                                     pascal):
    fixture = nyud if name == "nyud" else pascal
    _check_validation_split(name, *fixture)
    checked = _check_validation_split(name, *stressed[name])
    # The stressed split has a greyscale JPEG, and files on which
    # TensorFlow's default DCT is off Pillow (it would be caught).
    assert any(_mode(p) == "L" for p in checked)
    assert any(not np.array_equal(tf.io.decode_jpeg(
        _read(p), channels=3).numpy(), _pil(p)) for p in checked)


def _read(path):
    with open(path, "rb") as f:
        return f.read()
