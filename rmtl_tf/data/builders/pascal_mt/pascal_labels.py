"""PASCAL-MT labels that need more than reading a file, as the authors
compute them (RCM, `dataloaders/PascalContextMT.py`).

- human parts from the PASCAL-Part annotation (`PascalParts/<id>.mat`,
  key 'anno'): 24 part names grouped into 6 parts (`HUMAN_PART`), 0 the
  background; images without a person (class 15) are all 255 (ignored);
- the classes on which the distilled normals are kept: the PASCAL-Context
  classes that also are NYU classes (but 'unknown'), plus 'tvmonitor';
- edges: `label_edges.label_map_edges` of the PASCAL-Context label map.
"""

import json
import os

import numpy as np

from rmtl_tf.data.raw_files import BadExampleError

PERSON_CLASS = 15
# The authors' HUMAN_PART table: PASCAL-Part name -> one of 6 parts.
HUMAN_PART = {
    "hair": 1, "head": 1, "lear": 1, "lebrow": 1, "leye": 1, "mouth": 1,
    "nose": 1, "rear": 1, "rebrow": 1, "reye": 1,
    "neck": 2, "torso": 2,
    "luarm": 3, "ruarm": 3,
    "lhand": 4, "llarm": 4, "rhand": 4, "rlarm": 4,
    "luleg": 5, "ruleg": 5,
    "lfoot": 6, "llleg": 6, "rfoot": 6, "rlleg": 6,
}
NUM_HUMAN_PARTS = 7  # 6 parts + background.


def _objects(anno, path):
    """The object records of a loaded 'anno' struct."""
    try:
        objects = anno[0][0][1]
        return list(objects[0]) if objects.size else []
    except (IndexError, TypeError, ValueError) as e:
        raise BadExampleError(f"Unexpected 'anno' structure in {path}: "
                              f"{e}") from e


def _scalar(value):
    return np.asarray(value).reshape(-1)[0]


def human_parts(anno, size, path):
    """(uint8 (H, W, 1) part map, has_person) from a PASCAL-Part 'anno'.

    As the authors' `_load_human_parts`: when any object is a person, every
    person with parts writes its parts' ids (later objects and parts
    overwrite earlier ones) on zeros; persons without parts leave zeros.
    Without a person the map is all 255.
    """
    objects = _objects(anno, path)
    try:
        classes = [int(_scalar(obj[1])) for obj in objects]
    except (IndexError, TypeError, ValueError) as e:
        raise BadExampleError(f"Unexpected object record in {path}: {e}"
                              ) from e
    has_person = PERSON_CLASS in classes
    if not has_person:
        return np.full((*size, 1), 255, np.uint8), False
    target = np.zeros(size, np.uint8)
    for obj, cls in zip(objects, classes):
        parts = obj[3]
        if cls != PERSON_CLASS or len(parts) == 0:
            continue
        for part in parts[0]:
            name = str(_scalar(part[0]))
            if name not in HUMAN_PART:
                raise BadExampleError(f"Unknown human part {name!r} in "
                                      f"{path}.")
            mask = np.asarray(part[1]).astype(bool)
            if mask.shape != tuple(size):
                raise BadExampleError(
                    f"A part mask in {path} is {mask.shape[0]}x"
                    f"{mask.shape[1]} but its image is {size[0]}x{size[1]}.")
            target[mask] = HUMAN_PART[name]
    return target[..., None], True


def normals_classes(root):
    """PASCAL-Context class ids on which the distilled normals are kept."""
    paths = [os.path.join(root, "json", name)
             for name in ("nyu_classes.json", "context_classes.json")]
    loaded = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Missing class list: {path}")
        try:
            with open(path, encoding="utf-8") as f:
                loaded.append(json.load(f))
        except ValueError as e:
            raise ValueError(f"Cannot parse {path}: {e}") from e
    nyu, context = loaded
    if "tvmonitor" not in context:
        raise ValueError(f"{paths[1]} has no 'tvmonitor' class.")
    valid = [context[name] for name in nyu
             if name in context and name != "unknown"]
    return sorted(set(int(c) for c in valid + [context["tvmonitor"]]))
