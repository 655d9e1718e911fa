"""Shared exports for the export tests: each model is exported once per run.

Two model families, both resnet_tiny at 32x32:
- `SMALL`: the tiny test settings (16 head channels), for the version tests.
- `WIDE`: width x4 and 8 head channels, for everything exported: the shared
  bank (1.49 MB) is then about 3.6x one task's weights (0.41 MB) and far
  above the files' graph overheads, so the size tests can tell one bank
  from two. The convolutions still run in milliseconds at 32x32.

Every task-owned weight (modulators, BatchNorm, shortcut convs, head) is
perturbed with seeded noise, task by task: at build time the modulators are
identity and the BatchNorms 1/0, equal in every task, and the TFLite
converter merges equal constant buffers, which would hide a per-task copy.
"""

import keras
import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.export import export_lib
from rmtl_tf.testing import perturb_task_weights as randomize_task

IMAGE_SIZE = (32, 32)
SMALL = {"head_channels": 16, "low_level_channels": 8}
WIDE = {"width_multiplier": 4.0, "head_channels": 8, "low_level_channels": 8}
ALL_TASKS = ("semseg", "depth", "normals", "edge", "saliency")
# The two-task export also writes depth folded (test_fold.py): one export
# shared by the runner, signature, client, quantization and fold tests.
FOLD_TASKS = {("semseg", "depth"): ("depth",)}


def randomize_task_weights(model, seed):
    """Adds seeded noise to every task's own weights."""
    for i, task in enumerate(model.tasks):
        randomize_task(model, task, seed * 100 + i)


def build(tasks, family, seed=0, image_size=IMAGE_SIZE):
    keras.utils.set_random_seed(seed)  # The bank's initializer too.
    model = rmtl_tf.build_model("resnet_tiny", list(tasks),
                                num_classes={"semseg": 6},
                                image_size=image_size, **family)
    randomize_task_weights(model, seed)
    return model


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """`exported(tasks)` -> (WIDE model, its export result), cached."""
    cache = {}

    def get(tasks, fold_modulators=False):
        key = (tuple(tasks), fold_modulators)
        if key not in cache:
            model = build(tasks, WIDE)
            export_dir = tmp_path_factory.mktemp("export")
            result = export_lib.export(
                model, str(export_dir), fold_modulators=fold_modulators,
                fold_tasks=() if fold_modulators else FOLD_TASKS.get(
                    tuple(tasks), ()))
            cache[key] = (model, result)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def small_model():
    """A one-task SMALL model, for tests that export it themselves."""
    return build(["semseg"], SMALL)


@pytest.fixture(scope="session")
def image():
    """A batch of two RGB images, float32 pixels in [0, 255]."""
    return np.random.default_rng(1).uniform(
        0, 255, (2, *IMAGE_SIZE, 3)).astype(np.float32)


def keras_predictions(model, image, compute_mode="fused"):
    """The activated predictions of `model` as trained ("fused"), or with
    its reparameterized convs run as the export traces them ("factorized").
    """
    layers = model.reparam_layers()
    saved = [layer.compute_mode for layer in layers]
    try:
        for layer in layers:
            layer.compute_mode = compute_mode
        outputs = model(image, training=False)
    finally:
        for layer, mode in zip(layers, saved):
            layer.compute_mode = mode
    return {t: np.asarray(rmtl_tf.predictions(t, outputs[t]))
            for t in model.tasks}


@pytest.fixture(scope="session")
def reference():
    return keras_predictions
