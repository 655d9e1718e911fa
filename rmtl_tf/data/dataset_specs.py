"""What each dataset holds: tasks, classes, splits, where its files come from.

Pure data (no TensorFlow import), shared by the training config, the TFDS
builders and `datasets.py`.
"""

import dataclasses
from typing import Optional, Tuple

from rmtl_tf.data import synthetic_scenes


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset of `--dataset`.

    Attributes:
        name: the `--dataset` name.
        tasks: the tasks it has labels for.
        num_classes: classes of its class tasks (semseg, human_parts).
        tfds_name: name of its TFDS builder (`None` for synthetic).
        archive: the authors' archive, and the folder it extracts to.
        marker: an entry of that folder that identifies it.
        url: where the authors distribute the archive.
        train_examples / validation_examples: sizes of the authors' splits.
        eval_size: the (height, width) the authors' validation loader pads
            images to at least (`PadImage`), for full-resolution scoring;
            None: the model's input size (synthetic scenes).
    """

    name: str
    tasks: Tuple[str, ...]
    num_classes: dict
    tfds_name: Optional[str] = None
    archive: Optional[str] = None
    marker: Optional[str] = None
    url: Optional[str] = None
    train_examples: Optional[int] = None
    validation_examples: Optional[int] = None
    eval_size: Optional[Tuple[int, int]] = None

    @property
    def folder(self):
        """The folder the archive extracts to (`NYUD_MT`, `PASCAL_MT`)."""
        return self.archive[:-len(".zip")] if self.archive else None

    def check_tasks(self, tasks):
        """Raises when this dataset has no labels for one of `tasks`."""
        for task in tasks:
            if task not in self.tasks:
                raise ValueError(f"The {self.name} dataset has no labels for "
                                 f"task {task!r}. Available: "
                                 f"{list(self.tasks)}.")


SPECS = {
    spec.name: spec
    for spec in (
        DatasetSpec("synthetic",
                    ("semseg", "depth", "normals", "edge", "saliency"),
                    {"semseg": synthetic_scenes.NUM_CLASSES}),
        DatasetSpec("nyud", ("semseg", "depth", "normals", "edge"),
                    {"semseg": 41}, tfds_name="nyud_mt",
                    archive="NYUD_MT.zip", marker="gt_sets",
                    url="https://data.vision.ee.ethz.ch/kanakism/NYUD_MT.zip",
                    train_examples=795, validation_examples=654,
                    eval_size=(425, 560)),
        DatasetSpec("pascal_context",
                    ("semseg", "human_parts", "saliency", "normals", "edge"),
                    {"semseg": 21, "human_parts": 7}, tfds_name="pascal_mt",
                    archive="PASCAL_MT.zip", marker="ImageSets",
                    url=("https://data.vision.ee.ethz.ch/kanakism/"
                         "PASCAL_MT.zip"),
                    train_examples=4998, validation_examples=5105,
                    eval_size=(512, 512)),
    )
}
DATASETS = tuple(SPECS)


def get_spec(name):
    """The `DatasetSpec` of `name`, with a clear error if unknown."""
    if name not in SPECS:
        raise ValueError(f"Unknown dataset {name!r}. Expected one of "
                         f"{DATASETS}.")
    return SPECS[name]


def check_tasks(name, tasks):
    """Raises when dataset `name` has no labels for one of `tasks`."""
    get_spec(name).check_tasks(tasks)
