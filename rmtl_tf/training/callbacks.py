"""Training callbacks: atomic checkpoints and TensorBoard image summaries."""

import keras
import numpy as np
import tensorflow as tf

from rmtl_tf.models.multitask_model import predictions
from rmtl_tf.training import checkpoint
from rmtl_tf.visualization.image_summaries import write_task_images


class CheckpointCallback(keras.callbacks.Callback):
    """Writes an atomic checkpoint of `model` and `optimizer` every epoch."""

    def __init__(self, directory, model, optimizer, steps_per_epoch):
        super().__init__()
        self.directory = directory
        self.full_model = model
        self.optimizer = optimizer
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        if logs and not np.isfinite(logs.get("loss", 0.0)):
            raise FloatingPointError(
                f"Loss is {logs['loss']} at step "
                f"{(epoch + 1) * self.steps_per_epoch}; the last good "
                f"checkpoint in {self.directory!r} is kept.")
        checkpoint.save(self.directory, self.full_model, self.optimizer,
                        (epoch + 1) * self.steps_per_epoch)


class ImageSummary(keras.callbacks.Callback):
    """Writes input | ground truth | prediction panels to TensorBoard.

    One panel per example (the first `max_images` of `dataset`'s first
    batch), colour-coded by task (see `rmtl_tf.visualization.colorize`),
    under `<log_dir>/images`, at the end of every epoch.
    """

    def __init__(self, log_dir, task_model, dataset, task, max_images=3):
        super().__init__()
        self.writer = tf.summary.create_file_writer(f"{log_dir}/images")
        self.task_model = task_model
        self.task = task
        images, labels = next(iter(dataset))
        self.images = images[:max_images]
        self.labels = labels[task][:max_images].numpy()

    def on_epoch_end(self, epoch, logs=None):
        output = self.task_model(self.images, training=False)[self.task]
        pred = keras.ops.convert_to_numpy(predictions(self.task, output))
        step = (epoch + 1) * (self.params or {}).get("steps", 1)
        write_task_images(self.writer, step, np.asarray(self.images),
                          {self.task: self.labels}, {self.task: pred},
                          [self.task])
