"""Datasets by name: one entry point for train.py and evaluation.

Every dataset yields `(image, labels)` batches: float32 RGB pixels in
[0, 255] of shape (B, H, W, 3), and a dict keyed by task of dense labels.
"""

import os

from rmtl_tf.training.config import DATASETS


def _check_dataset(name):
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Expected one of "
                         f"{DATASETS}.")


def _require_data_dir(name, data_dir):
    if not data_dir or not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"The {name} dataset directory does not exist: data_dir="
            f"{data_dir!r}. Download the authors' packaged {name} set and "
            "pass its folder with --data_dir (see README, 'Datasets')."
        )
    raise NotImplementedError(
        f"Found {data_dir!r}, but the {name} loader is not part of this "
        "release yet; train on --dataset=synthetic meanwhile."
    )


def check_available(name, data_dir=None):
    """Raises a clear error when dataset `name` cannot be read."""
    _check_dataset(name)
    if name != "synthetic":
        _require_data_dir(name, data_dir)


def dataset_info(name):
    """{"num_classes": {task: classes}} for the dataset's class tasks."""
    _check_dataset(name)
    if name == "synthetic":
        from rmtl_tf.data import synthetic_scenes  # pylint: disable=import-outside-toplevel
        return {"num_classes": {"semseg": synthetic_scenes.NUM_CLASSES}}
    if name == "nyud":
        return {"num_classes": {"semseg": 41}}
    return {"num_classes": {"semseg": 21, "human_parts": 7}}


def load_split(name, split, tasks, image_size, batch_size, num_examples,
               seed=0, data_dir=None, training=False):
    """A batched `tf.data.Dataset` of `split`; repeats and shuffles when
    `training`."""
    check_available(name, data_dir)
    from rmtl_tf.data import synthetic_dataset  # pylint: disable=import-outside-toplevel
    return synthetic_dataset.synthetic_dataset(
        split, num_examples, tuple(image_size), batch_size, seed=seed,
        shuffle=training, repeat=training, tasks=list(tasks))
