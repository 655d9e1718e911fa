"""The labels of a stand-in image, from its synthetic scene, in the
authors' ids and formats (`standins` writes them as files):

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
through `standin_plan.PASCAL_SIZES`):
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
"""

import numpy as np

from rmtl_tf.data import synthetic_scenes

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
PERSON_PART_TABLE = {
    "hair": 1, "head": 1, "lear": 1, "lebrow": 1, "leye": 1, "mouth": 1,
    "nose": 1, "rear": 1, "rebrow": 1, "reye": 1, "neck": 2, "torso": 2,
    "luarm": 3, "ruarm": 3, "lhand": 4, "llarm": 4, "rhand": 4, "rlarm": 4,
    "luleg": 5, "ruleg": 5, "lfoot": 6, "llleg": 6, "rfoot": 6, "rlleg": 6,
}
_MIN_OBJECT_PIXELS = 16  # Smaller pieces get no PASCAL-Part record.


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


def part_annotation(image_id, objects):
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


VOC_PALETTE = _voc_palette()


def pascal_json_files():
    """{file name: contents} of PASCAL-MT's json/ folder."""
    parts = {str(c): {} for c in range(1, len(VOC_NAMES))}
    parts[str(PERSON_VOC)] = PERSON_PART_TABLE
    return {"nyu_classes.json": NYU_CLASSES,
            "context_classes.json": CONTEXT_CLASSES,
            "pascal_part.json": parts}
