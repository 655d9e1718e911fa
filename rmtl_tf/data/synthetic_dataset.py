"""The embedded synthetic multi-task dataset as a `tf.data.Dataset`.

Scenes come from `synthetic_scenes.make_scene`, deterministic by seed; each
split draws from its own seed range, so no scene is in two splits.
"""

import tensorflow as tf

from rmtl_tf.data import dataset_specs, input_pipeline, synthetic_scenes

SPEC = dataset_specs.get_spec("synthetic")
SPLIT_SEED_OFFSETS = {"train": 0, "validation": 1_000_000,
                      "test": 2_000_000, "pretrain": 3_000_000}


def scene_seeds(split, num_examples, seed=0):
    """The scene seeds of `split` (disjoint across splits)."""
    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f"Unknown split {split!r}. Expected one of "
                         f"{sorted(SPLIT_SEED_OFFSETS)}.")
    if num_examples <= 0:
        raise ValueError("num_examples must be > 0. "
                         f"Received: num_examples={num_examples}")
    start = SPLIT_SEED_OFFSETS[split] + seed * 100_000
    return range(start, start + num_examples)


def synthetic_arrays(split, num_examples, image_size, seed=0):
    """Numpy arrays of `num_examples` scenes of `split` at `image_size`."""
    height, width = image_size
    return synthetic_scenes.make_scenes(
        scene_seeds(split, num_examples, seed), height, width)


def synthetic_dataset(split, num_examples, image_size, batch_size, seed=0,
                      shuffle=None, repeat=None, tasks=None, augment=False,
                      start_batch=0):
    """Batches `(image, {task: label})` of the synthetic scenes.

    The scenes go through the same pipeline as the real datasets
    (`input_pipeline.build`): `image` is float32 (B, H, W, 3) RGB in
    [0, 255] (the model normalizes); semseg labels are int32 (B, H, W), the
    other labels float32 (B, H, W, C). Training ("train"/"pretrain")
    shuffles and repeats by default; `augment` applies the paper's
    augmentation (random scale, crop, flip). `start_batch`: the first
    batch to yield (a resumed run's step; see `input_pipeline.build`).
    """
    tasks = list(SPEC.tasks if tasks is None else tasks)
    SPEC.check_tasks(tasks)
    training = split in ("train", "pretrain")
    shuffle = training if shuffle is None else shuffle
    repeat = training if repeat is None else repeat
    arrays = synthetic_arrays(split, num_examples, image_size, seed)
    examples = tf.data.Dataset.from_tensor_slices(
        {k: arrays[k] for k in ["image", *tasks]})
    return input_pipeline.build(
        examples, tasks, image_size, batch_size, augment=augment,
        shuffle=shuffle, repeat=repeat, seed=seed,
        shuffle_buffer=num_examples, skip=start_batch * batch_size)
