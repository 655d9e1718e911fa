"""Which images a NYUD-MT or PASCAL-MT stand-in holds: ids, splits, sizes
and the seed of each image's synthetic scene (`standins` writes them).

Image i of a dataset is `synthetic_scenes.make_scene` of a seed derived
from (seed, dataset, i): the same whatever the number of processes
rendering, and whichever images a resumed run still has to write.
"""

import dataclasses
from typing import Tuple

import numpy as np

NYUD_FOLDER = "NYUD_MT"
PASCAL_FOLDER = "PASCAL_MT"
NYUD_SIZE = (480, 640)
# (height, width) of PASCAL VOC's most common image sizes, cycled.
PASCAL_SIZES = ((375, 500), (500, 375), (333, 500), (500, 333))
_DATASETS = {"nyud": 1, "pascal_context": 2}  # Part of the scene seeds.

@dataclasses.dataclass(frozen=True)
class Item:
    """One image of a stand-in: where it goes and how it is made."""

    index: int  # Over train then val.
    split: str  # "train" or "val" (the set file).
    image_id: str
    size: Tuple[int, int]  # (height, width)
    scene_seed: int
    person: bool = False  # PASCAL: its largest object is a person.


def scene_seed(seed, dataset, index):
    """The `make_scene` seed of image `index` of `dataset`."""
    state = np.random.SeedSequence([int(seed), _DATASETS[dataset],
                                    int(index)]).generate_state(1)
    return int(state[0])


def check_counts(num_train, num_val):
    """Raises unless both counts are positive integers."""
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: "
                             f"{name}={value!r}")


def check_size(size, what="size"):
    """`size` as (height, width) ints; raises unless both are integers
    >= 16."""
    if (len(size) != 2 or not all(isinstance(v, (int, np.integer))
                                  for v in size) or min(size) < 16):
        raise ValueError(f"{what} must be (height, width), integers >= 16. "
                         f"Received: {what}={size!r}")
    return (int(size[0]), int(size[1]))


def nyud_plan(num_train, num_val, size=NYUD_SIZE, seed=0):
    """The `Item`s of a NYUD-MT stand-in, train then val."""
    check_counts(num_train, num_val)
    size = check_size(size)
    return [Item(i, "train" if i < num_train else "val", f"img_{5001 + i}",
                 size, scene_seed(seed, "nyud", i))
            for i in range(num_train + num_val)]


def pascal_plan(num_train, num_val, sizes=PASCAL_SIZES, seed=0):
    """The `Item`s of a PASCAL-MT stand-in, train then val."""
    check_counts(num_train, num_val)
    if not sizes:
        raise ValueError("sizes must list at least one (height, width).")
    sizes = [check_size(s, "sizes[]") for s in sizes]
    return [Item(i, "train" if i < num_train else "val",
                 f"{2008 + i % 3}_{i // 3:06d}", sizes[i % len(sizes)],
                 scene_seed(seed, "pascal_context", i), person=i % 3 == 0)
            for i in range(num_train + num_val)]

