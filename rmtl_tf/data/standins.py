r"""Stand-ins of NYUD-MT and PASCAL-MT: synthetic scenes in the authors'
exact on-disk layout.

To rehearse the real commands (prepare, train, evaluate, export) at the real
image counts and sizes without the real archives, these writers render
`synthetic_scenes.make_scene` into the folders, file names, formats, .mat
keys, set files and JSON class lists of the authors' `NYUD_MT/` and
`PASCAL_MT/` (RCM, `dataloaders/NYUDMT.py`, `dataloaders/PascalContextMT.py`;
our TFDS builders in `builders/` read exactly these; the layout and label
ids are in `standin_labels`, the images of a copy in `standin_plan`):

    python -m rmtl_tf.cli.standins --dataset=nyud --out=/tmp/manual \
        --num_train=795 --num_val=654 --size=480,640
    python -m rmtl_tf.cli.standins --dataset=pascal_context \
        --out=/tmp/manual --num_train=4998 --num_val=5105
    python -m rmtl_tf.cli.prepare --dataset=nyud --manual_dir=/tmp/manual \
        --data_dir=/tmp/tfds

Each writer streams (one scene in memory per worker), is deterministic in
`seed` (image i of a dataset is `make_scene` of a seed derived from
(seed, dataset, i), whatever `workers`), and writes into
`<out>/<FOLDER>.partial/`, renamed to `<out>/<FOLDER>` at the end, with
each file written under a temporary name and renamed: a killed run, rerun
with the same arguments, resumes where it stopped. A complete copy with
the same counts is left as it is (and reported). The parameters of a copy
are recorded beside it in `<out>/<FOLDER>.standin.json`.
"""

import dataclasses
import json
import os
import shutil
import time
from typing import Optional

import numpy as np

from rmtl_tf.data import synthetic_scenes
from rmtl_tf.data.standin_labels import (VOC_PALETTE, nyud_labels,
                                         part_annotation, pascal_json_files,
                                         pascal_labels)
from rmtl_tf.data.standin_plan import (NYUD_FOLDER, NYUD_SIZE, PASCAL_FOLDER,
                                       PASCAL_SIZES, nyud_plan, pascal_plan)

_FORMAT_VERSION = 1
_JPEG_QUALITY = 90
_NORMALS_JPEG_QUALITY = 95


@dataclasses.dataclass
class Result:
    """What a writer did."""

    root: str
    num_train: int
    num_val: int
    status: str  # "written", "resumed" or "exists".
    written: int = 0  # Images rendered by this call.
    seconds: float = 0.0
    images_per_s: Optional[float] = None
    params: Optional[dict] = None  # The recorded parameters of the copy.


# Writing files: each under a temporary name, renamed when complete.

def _atomic_write(path, write):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def _save_image(path, array, image_format, palette=None, **params):
    """uint8 (H, W) or (H, W, 3) as grey / RGB, or with `palette` as a
    palette image of those indices."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    array = np.ascontiguousarray(array, np.uint8)
    if palette is not None:
        image = Image.frombytes("P", array.shape[1::-1], array.tobytes())
        image.putpalette(palette)
    else:
        image = Image.fromarray(array)
    _atomic_write(path, lambda f: image.save(f, image_format, **params))


def _save_mat(path, contents):
    import scipy.io  # pylint: disable=import-outside-toplevel
    _atomic_write(path, lambda f: scipy.io.savemat(
        f, contents, do_compression=True))


def _save_json(path, value):
    text = json.dumps(value, indent=1, sort_keys=True) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _save_text(path, text):
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


_NYUD_FILES = (("images", ".jpg"), ("segmentation", ".mat"),
               ("depth", ".mat"), ("normals", ".jpg"), ("edge", ".png"))
_PASCAL_FILES = (("JPEGImages", ".jpg"),
                 (os.path.join("SemanticSegmentation", "Context"), ".png"),
                 (os.path.join("Context", "trainval"), ".mat"),
                 ("PascalParts", ".mat"), ("SaliencyDistill", ".png"),
                 ("NormalsDistill", ".png"))


def _paths(root, files, image_id):
    return [os.path.join(root, folder, image_id + ext)
            for folder, ext in files]


def _make_scene(item):
    # Rays parallel to a face give inf * 0 in make_scene, masked there.
    with np.errstate(invalid="ignore", divide="ignore"):
        return synthetic_scenes.make_scene(item.scene_seed, *item.size)


def _write_nyud_image(root, item):
    """Renders and writes one NYUD-MT image (skipped when complete)."""
    paths = _paths(root, _NYUD_FILES, item.image_id)
    if all(os.path.isfile(p) for p in paths):
        return False
    labels = nyud_labels(_make_scene(item))
    image, segmentation, depth, normals, edge = paths
    _save_image(image, labels["image"], "JPEG", quality=_JPEG_QUALITY)
    _save_mat(segmentation, {"segmentation": labels["segmentation"]})
    _save_mat(depth, {"depth": labels["depth"]})
    _save_image(normals, labels["normals"], "JPEG",
                quality=_NORMALS_JPEG_QUALITY)
    _save_image(edge, labels["edge"], "PNG")
    return True


def _write_pascal_image(root, item):
    """Renders and writes one PASCAL-MT image (skipped when complete)."""
    paths = _paths(root, _PASCAL_FILES, item.image_id)
    if all(os.path.isfile(p) for p in paths):
        return False
    labels = pascal_labels(_make_scene(item), item.person)
    image, semseg, context, parts, saliency, normals = paths
    _save_image(image, labels["image"], "JPEG", quality=_JPEG_QUALITY)
    _save_image(semseg, labels["semseg"], "PNG", VOC_PALETTE)
    _save_mat(context, {"LabelMap": labels["label_map"]})
    _save_mat(parts, {"anno": part_annotation(item.image_id,
                                                labels["objects"])})
    _save_image(saliency, labels["saliency"], "PNG")
    _save_image(normals, labels["normals"], "PNG")
    return True


def _write_one(args):
    dataset, root, item = args
    writer = _write_nyud_image if dataset == "nyud" else _write_pascal_image
    return writer(root, item)


def _set_counts(root, sets_dir):
    """(train, val) counts of a copy's set files, or None if incomplete."""
    counts = []
    for name in ("train", "val"):
        path = os.path.join(root, sets_dir, name + ".txt")
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            counts.append(sum(1 for line in f if line.strip()))
    return tuple(counts)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _map(dataset, root, items, workers):
    """Yields whether each item was written, in order (`workers` processes
    when > 1)."""
    tasks = ((dataset, root, item) for item in items)
    if workers <= 1:
        yield from map(_write_one, tasks)
        return
    import multiprocessing  # pylint: disable=import-outside-toplevel
    # Fork: the workers only render and encode (numpy, Pillow, SciPy), and
    # spawning would import TensorFlow again in each (via rmtl_tf).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context(
        "fork" if "fork" in methods else None)
    with context.Pool(workers) as pool:
        yield from pool.imap(_write_one, tasks, chunksize=1)


def _write(dataset, folder, sets_dir, files, out, items, num_train, num_val,
           params, write_static, workers, overwrite, progress):
    """Writes a stand-in (see the module doc); returns a `Result`."""
    if not out:
        raise ValueError("out must name a folder.")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer. Received: "
                         f"workers={workers!r}")
    root = os.path.join(out, folder)
    partial = root + ".partial"
    record = root + ".standin.json"
    params = dict(params, dataset=dataset, num_train=num_train,
                  num_val=num_val, format_version=_FORMAT_VERSION)
    if os.path.exists(root):
        counts = _set_counts(root, sets_dir)
        recorded = _read_json(record)
        if counts == (num_train, num_val) and not (
                overwrite and recorded != params):
            return Result(root, num_train, num_val, "exists",
                          params=recorded)
        if recorded is None:
            raise FileExistsError(
                f"{root} exists and is not a stand-in written here (no "
                f"{os.path.basename(record)} beside it); not touching it. "
                "Choose another out folder.")
        if not overwrite:
            found = (f"train {counts[0]} / val {counts[1]}" if counts
                     else "incomplete set files")
            raise FileExistsError(
                f"{root} holds a stand-in with {found}, not the train "
                f"{num_train} / val {num_val} asked: remove it, choose "
                "another out folder or pass overwrite (--overwrite).")
        shutil.rmtree(root)
        os.remove(record)
    # A partial copy of other parameters is started again.
    partial_params = os.path.join(partial, "standin.json")
    if os.path.isdir(partial) and _read_json(partial_params) != params:
        shutil.rmtree(partial)
    status = "resumed" if os.path.isdir(partial) else "written"
    for folder_name, _ in files:
        os.makedirs(os.path.join(partial, folder_name), exist_ok=True)
    _save_json(partial_params, params)

    started = time.time()
    written = 0
    total = len(items)
    for done, wrote in enumerate(_map(dataset, partial, items, workers), 1):
        written += bool(wrote)
        if progress is not None:
            elapsed = time.time() - started
            progress(done, total, written / elapsed if written and elapsed
                     else None)
    write_static(partial)
    os.makedirs(os.path.join(partial, sets_dir), exist_ok=True)
    for split in ("train", "val"):
        ids = [item.image_id for item in items if item.split == split]
        _save_text(os.path.join(partial, sets_dir, split + ".txt"),
                   "\n".join(ids) + "\n")
    for directory, _, names in os.walk(partial):  # A killed run's.
        for name in names:
            if name.endswith(".tmp"):
                os.remove(os.path.join(directory, name))
    os.replace(partial_params, record)
    os.rename(partial, root)
    seconds = time.time() - started
    return Result(root, num_train, num_val, status, written, seconds,
                  written / seconds if written and seconds else None,
                  params)


def write_nyud_mt(out, num_train, num_val, size=NYUD_SIZE, seed=0,
                  progress=None, workers=1, overwrite=False):
    """Writes the NYUD-MT stand-in `out/NYUD_MT` (see the module doc).

    Args:
        out: the folder to write into (the manual_dir of `prepare`).
        num_train, num_val: images in gt_sets/train.txt and val.txt.
        size: (height, width) of every image.
        seed: seeds the scenes.
        progress: None, or called after each image as
            `progress(done, total, images_per_s)` (images rendered by this
            call per second, None before the first).
        workers: processes rendering in parallel (the files are the same
            whatever their number).
        overwrite: replace a stand-in of other parameters (never a folder
            that is not one).

    Returns:
        A `Result`; status "exists" when a complete copy with the same
        counts was there (left as it is).
    """
    items = nyud_plan(num_train, num_val, size, seed)
    return _write("nyud", NYUD_FOLDER, "gt_sets", _NYUD_FILES, out, items,
                  num_train, num_val, {"size": list(items[0].size),
                                       "seed": int(seed)},
                  lambda root: None, workers, overwrite, progress)


def _write_pascal_json(root):
    os.makedirs(os.path.join(root, "json"), exist_ok=True)
    for name, value in pascal_json_files().items():
        _save_json(os.path.join(root, "json", name), value)


def write_pascal_mt(out, num_train, num_val, sizes=PASCAL_SIZES, seed=0,
                    progress=None, workers=1, overwrite=False):
    """Writes the PASCAL-MT stand-in `out/PASCAL_MT` (see the module doc).

    As `write_nyud_mt`, but image i is `sizes[i % len(sizes)]` (height,
    width) and every third image has a person with parts.
    """
    items = pascal_plan(num_train, num_val, sizes, seed)
    return _write("pascal_context", PASCAL_FOLDER,
                  os.path.join("ImageSets", "Context"), _PASCAL_FILES, out,
                  items, num_train, num_val,
                  {"sizes": [list(s) for s in dict.fromkeys(
                      item.size for item in items)], "seed": int(seed)},
                  _write_pascal_json, workers, overwrite, progress)

