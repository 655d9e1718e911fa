r"""Stand-ins of NYUD-MT and PASCAL-MT: synthetic scenes in the authors'
exact on-disk layout.

To rehearse the real commands (prepare, train, evaluate, export) at the real
image counts and sizes without the real archives, these writers render
`synthetic_scenes.make_scene` into the folders, file names, formats, .mat
keys, set files and JSON class lists of the authors' `NYUD_MT/` and
`PASCAL_MT/` (RCM, `dataloaders/NYUDMT.py`, `dataloaders/PascalContextMT.py`;
our TFDS builders in `builders/` read exactly these):

    python -m rmtl_tf.data.standins --dataset=nyud --out=/tmp/manual \
        --num_train=795 --num_val=654 --size=480,640
    python -m rmtl_tf.data.standins --dataset=pascal_context \
        --out=/tmp/manual --num_train=4998 --num_val=5105
    python -m rmtl_tf.data.prepare --dataset=nyud --manual_dir=/tmp/manual \
        --data_dir=/tmp/tfds

NYUD_MT/ (scene classes wall, floor, sphere, box, cylinder, pyramid):
- images/<id>.jpg: the scene image, JPEG;
- segmentation/<id>.mat, key 'segmentation': uint8 NYU-40 ids (`NYUD_IDS`:
  wall 1, floor 2, sphere 40 otherprop, box 29 box, cylinder 35 lamp,
  pyramid 39 otherfurniture; 0 nowhere);
- depth/<id>.mat, key 'depth': float32 metres, the scene depth exactly;
- normals/<id>.jpg: round((n + 1) / 2 * 255) of the unit camera-frame
  normals, JPEG (the authors decode 2 * v / 255 - 1);
- edge/<id>.png: 8-bit grey, 255 on the scene's edges, else 0;
- gt_sets/{train,val}.txt: ids `img_5001`, `img_5002`, ... (NYU's).

PASCAL_MT/ (ids `2008_000000`, `2009_000000`, ...; image sizes cycle
through `PASCAL_SIZES`):
- JPEGImages/<id>.jpg;
- SemanticSegmentation/Context/<id>.png: palette PNG (VOC colours) of the
  21 VOC ids: wall and floor 0, sphere 16 pottedplant, box 20 tvmonitor,
  cylinder 5 bottle, pyramid 9 chair, the person 15;
- Context/trainval/<id>.mat, key 'LabelMap': uint16 PASCAL-Context ids
  (`json/context_classes.json`): wall 440, floor 158, pottedplant 308,
  tvmonitor 427, bottle 34, chair 72, person 284;
- PascalParts/<id>.mat, key 'anno': PASCAL-Part's struct (imname, objects
  with class, class_ind, mask, parts with part_name, mask): one object per
  connected piece of each object class. In every third image (index 0, 3,
  ...) the largest object is a person (class 15) whose mask is cut into
  bands named as PASCAL-Part does (head, neck, torso, arms, hands, legs,
  feet: all 6 human-part groups); the other images have no person;
- SaliencyDistill/<id>.png: 8-bit grey, round(255 * scene saliency);
- NormalsDistill/<id>.png: RGB, round((n + 1) / 2 * 255);
- json/nyu_classes.json ({name: NYU id}), json/context_classes.json
  ({name: Context id}), json/pascal_part.json ({VOC class: {part: id}}):
  the authors' formats, only the classes used here and a few more. Normals
  are kept on the Context classes whose name is an NYU class, plus
  tvmonitor: everything but pottedplant (the spheres);
- ImageSets/Context/{train,val}.txt.

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
from typing import Optional, Tuple

import numpy as np
from absl import app, flags

from rmtl_tf.cli.errors import run_cli
from rmtl_tf.data import dataset_specs, synthetic_scenes

NYUD_FOLDER = "NYUD_MT"
PASCAL_FOLDER = "PASCAL_MT"
NYUD_SIZE = (480, 640)
# (height, width) of PASCAL VOC's most common image sizes, cycled.
PASCAL_SIZES = ((375, 500), (500, 375), (333, 500), (500, 333))
_FORMAT_VERSION = 1
_DATASETS = {"nyud": 1, "pascal_context": 2}  # Part of the scene seeds.

# Scene class (wall, floor, sphere, box, cylinder, pyramid) -> label ids.
NYUD_IDS = np.array([1, 2, 40, 29, 35, 39], np.uint8)
VOC_IDS = np.array([0, 0, 16, 20, 5, 9], np.uint8)
CONTEXT_IDS = np.array([440, 158, 308, 427, 34, 72], np.uint16)
PERSON_VOC = 15
PERSON_CONTEXT = 284
VOC_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle",
             "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
             "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
             "train", "tvmonitor")
# PASCAL-Context ids (labels of the 459 classes) of the classes used here,
# of the other VOC classes, and of a few scene classes.
CONTEXT_CLASSES = {
    "aeroplane": 2, "bed": 18, "bicycle": 23, "bird": 25, "boat": 31,
    "bottle": 34, "box": 37, "building": 44, "bus": 45, "cabinet": 46,
    "car": 59, "cat": 65, "ceiling": 68, "chair": 72, "cow": 98, "dog": 113,
    "floor": 158, "grass": 187, "ground": 189, "horse": 207,
    "motorbike": 258, "person": 284, "plant": 293, "pottedplant": 308,
    "sheep": 347, "sky": 360, "sofa": 368, "table": 397, "train": 416,
    "tree": 420, "tvmonitor": 427, "unknown": 431, "wall": 440,
    "window": 454,
}
# NYU ids (of NYUv2's 894 names) of a few classes; the authors' file has
# all of them.
NYU_CLASSES = {
    "bed": 157, "book": 1, "bottle": 2, "box": 26, "cabinet": 3,
    "ceiling": 4, "chair": 5, "door": 28, "floor": 11, "lamp": 144,
    "person": 331, "plant": 82, "sofa": 83, "table": 19, "television": 172,
    "unknown": 20, "wall": 21, "window": 59,
}
# PASCAL-Part names of a person's parts: (name, rows, columns) as fractions
# of the person's bounding box (its left is the image's right).
PERSON_PARTS = (
    ("head", (0.0, 0.17), (0.0, 1.0)),
    ("neck", (0.17, 0.22), (0.0, 1.0)),
    ("torso", (0.22, 0.55), (0.25, 0.75)),
    ("luarm", (0.22, 0.40), (0.75, 1.0)),
    ("ruarm", (0.22, 0.40), (0.0, 0.25)),
    ("llarm", (0.40, 0.50), (0.75, 1.0)),
    ("rlarm", (0.40, 0.50), (0.0, 0.25)),
    ("lhand", (0.50, 0.55), (0.75, 1.0)),
    ("rhand", (0.50, 0.55), (0.0, 0.25)),
    ("luleg", (0.55, 0.78), (0.5, 1.0)),
    ("ruleg", (0.55, 0.78), (0.0, 0.5)),
    ("llleg", (0.78, 0.93), (0.5, 1.0)),
    ("rlleg", (0.78, 0.93), (0.0, 0.5)),
    ("lfoot", (0.93, 1.0), (0.5, 1.0)),
    ("rfoot", (0.93, 1.0), (0.0, 0.5)),
)
# The authors' part table of class 15 (they override the file's with it).
_PERSON_PART_TABLE = {
    "hair": 1, "head": 1, "lear": 1, "lebrow": 1, "leye": 1, "mouth": 1,
    "nose": 1, "rear": 1, "rebrow": 1, "reye": 1, "neck": 2, "torso": 2,
    "luarm": 3, "ruarm": 3, "lhand": 4, "llarm": 4, "rhand": 4, "rlarm": 4,
    "luleg": 5, "ruleg": 5, "lfoot": 6, "llleg": 6, "rfoot": 6, "rlleg": 6,
}
_MIN_OBJECT_PIXELS = 16  # Smaller pieces get no PASCAL-Part record.
_JPEG_QUALITY = 90
_NORMALS_JPEG_QUALITY = 95


@dataclasses.dataclass(frozen=True)
class Item:
    """One image of a stand-in: where it goes and how it is made."""

    index: int  # Over train then val.
    split: str  # "train" or "val" (the set file).
    image_id: str
    size: Tuple[int, int]  # (height, width)
    scene_seed: int
    person: bool = False  # PASCAL: its largest object is a person.


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


def scene_seed(seed, dataset, index):
    """The `make_scene` seed of image `index` of `dataset`."""
    state = np.random.SeedSequence([int(seed), _DATASETS[dataset],
                                    int(index)]).generate_state(1)
    return int(state[0])


def _check_counts(num_train, num_val):
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: "
                             f"{name}={value!r}")


def _check_size(size, what="size"):
    if (len(size) != 2 or not all(isinstance(v, (int, np.integer))
                                  for v in size) or min(size) < 16):
        raise ValueError(f"{what} must be (height, width), integers >= 16. "
                         f"Received: {what}={size!r}")
    return (int(size[0]), int(size[1]))


def nyud_plan(num_train, num_val, size=NYUD_SIZE, seed=0):
    """The `Item`s of a NYUD-MT stand-in, train then val."""
    _check_counts(num_train, num_val)
    size = _check_size(size)
    return [Item(i, "train" if i < num_train else "val", f"img_{5001 + i}",
                 size, scene_seed(seed, "nyud", i))
            for i in range(num_train + num_val)]


def pascal_plan(num_train, num_val, sizes=PASCAL_SIZES, seed=0):
    """The `Item`s of a PASCAL-MT stand-in, train then val."""
    _check_counts(num_train, num_val)
    if not sizes:
        raise ValueError("sizes must list at least one (height, width).")
    sizes = [_check_size(s, "sizes[]") for s in sizes]
    return [Item(i, "train" if i < num_train else "val",
                 f"{2008 + i % 3}_{i // 3:06d}", sizes[i % len(sizes)],
                 scene_seed(seed, "pascal_context", i), person=i % 3 == 0)
            for i in range(num_train + num_val)]


def encode_normals(normals):
    """Unit normals (H, W, 3) -> uint8 round((n + 1) / 2 * 255)."""
    return np.round((np.clip(normals, -1, 1) + 1) / 2 * 255).astype(np.uint8)


def nyud_labels(scene):
    """{file feature: array} of a NYUD-MT image from a scene."""
    return {
        "image": scene["image"],
        "segmentation": NYUD_IDS[scene["semseg"]],
        "depth": scene["depth"][..., 0].astype(np.float32),
        "normals": encode_normals(scene["normals"]),
        "edge": (scene["edge"][..., 0] > 0.5).astype(np.uint8) * 255,
    }


def _objects(semseg):
    """[(scene class, bool mask)] of the connected object pieces, largest
    first (pieces under `_MIN_OBJECT_PIXELS` are left out)."""
    from scipy import ndimage  # pylint: disable=import-outside-toplevel
    objects = []
    for cls in synthetic_scenes.OBJECT_CLASSES:
        labels, count = ndimage.label(semseg == cls)
        if not count:
            continue
        areas = np.bincount(labels.ravel(), minlength=count + 1)
        for k in range(1, count + 1):
            if areas[k] >= _MIN_OBJECT_PIXELS:
                objects.append((int(areas[k]), cls, labels == k))
    objects.sort(key=lambda o: -o[0])
    return [(cls, mask) for _, cls, mask in objects]


def person_parts(mask):
    """[(PASCAL-Part name, bool mask)] of a person's `mask`, cut in bands
    (`PERSON_PARTS`); empty parts are left out."""
    rows, cols = np.nonzero(mask)
    top, bottom = rows.min(), rows.max() + 1
    left, right = cols.min(), cols.max() + 1
    h, w = bottom - top, right - left
    parts = []
    for name, (r0, r1), (c0, c1) in PERSON_PARTS:
        # The image's left is the person's right: columns are mirrored.
        band = np.zeros_like(mask)
        band[top + int(round(r0 * h)):top + int(round(r1 * h)),
             right - int(round(c1 * w)):right - int(round(c0 * w))] = True
        band &= mask
        if band.any():
            parts.append((name, band))
    return parts


def pascal_labels(scene, person):
    """{file feature: array} of a PASCAL-MT image from a scene; 'objects'
    is [(VOC id, mask, [(part name, mask)])] (PASCAL-Part's records)."""
    semseg = scene["semseg"]
    voc = VOC_IDS[semseg]
    context = CONTEXT_IDS[semseg]
    objects = []
    for k, (cls, mask) in enumerate(_objects(semseg)):
        if person and k == 0:
            voc[mask] = PERSON_VOC
            context[mask] = PERSON_CONTEXT
            objects.append((PERSON_VOC, mask, person_parts(mask)))
        else:
            objects.append((int(VOC_IDS[cls]), mask, []))
    return {
        "image": scene["image"],
        "semseg": voc,
        "label_map": context,
        "saliency": np.round(255 * scene["saliency"][..., 0]).astype(
            np.uint8),
        "normals": encode_normals(scene["normals"]),
        "objects": objects,
    }


def _anno(image_id, objects):
    """PASCAL-Part's 'anno' struct as `scipy.io.loadmat` gives it back."""
    records = np.zeros((1, len(objects)), dtype=[
        ("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    for j, (cls, mask, parts) in enumerate(objects):
        if parts:
            part_records = np.zeros((1, len(parts)), dtype=[
                ("part_name", "O"), ("mask", "O")])
            for k, (name, part_mask) in enumerate(parts):
                part_records[0, k] = (name, part_mask.astype(np.uint8))
        else:
            part_records = np.zeros((0, 0))
        records[0, j] = (VOC_NAMES[cls], np.array([[cls]], np.float64),
                         mask.astype(np.uint8), part_records)
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0] = (image_id, records)
    return anno


def _voc_palette():
    """The PASCAL VOC colour map (bit-interleaved label -> RGB)."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


_PALETTE = _voc_palette()


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
    _save_image(semseg, labels["semseg"], "PNG", _PALETTE)
    _save_mat(context, {"LabelMap": labels["label_map"]})
    _save_mat(parts, {"anno": _anno(item.image_id, labels["objects"])})
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
    parts = {str(c): {} for c in range(1, len(VOC_NAMES))}
    parts[str(PERSON_VOC)] = _PERSON_PART_TABLE
    for name, value in (("nyu_classes.json", NYU_CLASSES),
                        ("context_classes.json", CONTEXT_CLASSES),
                        ("pascal_part.json", parts)):
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


# Command line.

def define_flags(flag_values=None):
    """Defines the CLI's flags on `flag_values` (absl's global by default).

    Only the CLI defines them: importing this module leaves other programs'
    flags (e.g. train.py's --dataset) alone.
    """
    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_enum("dataset", None, ["nyud", "pascal_context"],
                      "Which stand-in to write.", flag_values=fv)
    flags.DEFINE_string("out", None, "Folder to write NYUD_MT/ or PASCAL_MT/ "
                        "into (the manual_dir of prepare).", flag_values=fv)
    flags.DEFINE_integer("num_train", None, "Training images (default: the "
                         "real count, 795 / 4998).", flag_values=fv)
    flags.DEFINE_integer("num_val", None, "Validation images (default: the "
                         "real count, 654 / 5105).", flag_values=fv)
    flags.DEFINE_list("size", None, "H,W of every image. Default: 480,640 "
                      "for nyud; for pascal_context the sizes cycle through "
                      "375x500, 500x375, 333x500, 500x333.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the scenes.", flag_values=fv)
    flags.DEFINE_integer("workers", min(2, os.cpu_count() or 1),
                         "Processes rendering in parallel.", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace a stand-in written with "
                      "other parameters.", flag_values=fv)
    flags.DEFINE_integer("progress_every", 100,
                         "Print progress every this many images.",
                         flag_values=fv)


def _parse_size(values):
    try:
        size = tuple(int(v) for v in values)
    except ValueError:
        size = None
    if size is None or len(size) != 2:
        raise ValueError(f"--size must be H,W (two integers). Received: "
                         f"--size={','.join(values)}")
    return size


def main(argv, flag_values=None):
    """Writes the stand-in the flags describe; prints progress."""
    fv = flags.FLAGS if flag_values is None else flag_values
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    if not fv.dataset or not fv.out:
        raise ValueError("--dataset and --out are required.")
    spec = dataset_specs.get_spec(fv.dataset)
    num_train = (spec.train_examples if fv.num_train is None
                 else fv.num_train)
    num_val = (spec.validation_examples if fv.num_val is None
               else fv.num_val)
    every = max(1, fv.progress_every)
    total = num_train + num_val
    started = time.time()

    def progress(done, total, rate):
        if done % every and done != total:
            return
        speed = f", {rate:.2f} images/s" if rate else ""
        eta = (f", {(total - done) / rate / 60:.1f} min left" if rate
               and done < total else "")
        print(f"{fv.dataset}: {done}/{total} images{speed}{eta} "
              f"({time.time() - started:.0f} s)", flush=True)

    kwargs = {"seed": fv.seed, "progress": progress, "workers": fv.workers,
              "overwrite": fv.overwrite}
    default = NYUD_SIZE if fv.dataset == "nyud" else PASCAL_SIZES[0]
    size = _check_size(_parse_size(fv.size) if fv.size else default)
    _check_counts(num_train, num_val)
    print(f"Writing the {fv.dataset} stand-in ({num_train} train, {num_val} "
          f"val, {total} images) into {fv.out} with {fv.workers} "
          "worker(s).", flush=True)
    if fv.dataset == "nyud":
        result = write_nyud_mt(fv.out, num_train, num_val, size, **kwargs)
    else:
        sizes = (size,) if fv.size else PASCAL_SIZES
        result = write_pascal_mt(fv.out, num_train, num_val, sizes,
                                 **kwargs)
    if result.status == "exists":
        params = result.params or {}
        print(f"{result.root} is already complete (train {num_train}, val "
              f"{num_val}; seed {params.get('seed', '?')}, size(s) "
              f"{params.get('size', params.get('sizes', '?'))}): left as "
              "it is.")
        return 0
    rate = (f", {result.images_per_s:.2f} images/s" if result.images_per_s
            else "")
    resumed = (f" (resumed: {total - result.written} were already there)"
               if result.status == "resumed" else "")
    print(f"Wrote {result.root}: train {num_train}, val {num_val}; "
          f"{result.written} images in {result.seconds:.0f} s{rate}"
          f"{resumed}.")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(lambda argv: run_cli(main, argv))
