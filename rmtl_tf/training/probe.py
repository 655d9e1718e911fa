"""The promise of incremental training, checked on every new task: the old
tasks' outputs on fixed images are bit-identical before and after."""

import keras
import numpy as np



def probe_outputs(model, config, data):
    """The old tasks' outputs on fixed images, to verify they never change.

    The old tasks run eagerly, op by op, before and after, so the promise
    is bit for bit on the very weights. (Keras' `predict` would trace a new
    function for every probe, and TensorFlow warns of retracing when
    several come in a row; each export signature's own graph is checked by
    the export tests.)
    """
    images = next(iter(data.split(
        "validation", [], config.image_size, 2, 2, seed=config.seed)))[0]
    return images, _task_outputs(model, model.tasks, images)


def _task_outputs(model, tasks, images):
    outputs = model.task_model(sorted(tasks))(images, training=False)
    return {t: keras.ops.convert_to_numpy(v) for t, v in outputs.items()}


def check_probe(model, probe, log):
    """Whether the old tasks' outputs are still those of `probe`
    (`probe_outputs`); a change raises unless the backbone is shared."""
    images, before = probe
    after = _task_outputs(model, before, images)
    same = all(np.array_equal(before[t], after[t]) for t in before)
    log(f"Old tasks {sorted(before)}: outputs "
        f"{'bit-identical' if same else 'CHANGED'} after training the new "
        "task.")
    if not same and model.architecture != "shared":
        raise AssertionError("An old task's outputs changed; this is a bug.")
    if not same:
        log("(Expected with --variant=shared: training a task changes the "
            "shared encoder under every other task.)")
    return same
