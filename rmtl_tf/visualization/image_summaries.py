"""Input | ground truth | prediction panels per task, for TensorBoard."""

import numpy as np

from rmtl_tf.visualization.colorize import colorize, depth_range

SEPARATOR = 2  # White pixels between the three images of a panel.


def task_panels(task, images, labels, predictions):
    """(B, H, 3 W + 2 sep, 3) uint8: input, ground truth, prediction.

    Args:
        images: (B, H, W, 3) RGB pixels in [0, 255].
        labels: ground truth of `task` (as the dataset gives it).
        predictions: activated predictions of `task` (probabilities, unit
            normals, metres), see `rmtl_tf.predictions`.
    """
    images = np.clip(np.asarray(images, np.float32), 0, 255).astype(np.uint8)
    value_range = depth_range(labels) if task == "depth" else None
    truth = colorize(task, labels, value_range)
    pred = colorize(task, predictions, value_range)
    if not images.shape[:3] == truth.shape[:3] == pred.shape[:3]:
        raise ValueError(
            f"Task {task!r}: image, label and prediction sizes differ: "
            f"{images.shape[:3]}, {truth.shape[:3]}, {pred.shape[:3]}.")
    gap = np.full(images.shape[:2] + (SEPARATOR, 3), 255, np.uint8)
    return np.concatenate([images, gap, truth, gap, pred], axis=2)


def write_task_images(writer, step, images, labels, predictions, tasks,
                      prefix=""):
    """Writes one panel image per example and task with `writer`.

    `labels` and `predictions` map task -> batch arrays. Image names are
    `<prefix><task>/input_truth_prediction`.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with writer.as_default():
        for task in tasks:
            panels = task_panels(task, images, labels[task],
                                 predictions[task])
            tf.summary.image(f"{prefix}{task}/input_truth_prediction",
                             panels, step, max_outputs=len(panels))
    writer.flush()
