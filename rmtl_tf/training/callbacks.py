"""Training callbacks: atomic checkpoints and TensorBoard image summaries."""

import time

import keras
import numpy as np
import tensorflow as tf

from rmtl_tf.models.multitask_model import predictions
from rmtl_tf.training import checkpoint
from rmtl_tf.visualization.image_summaries import write_task_images


class CheckpointCallback(keras.callbacks.Callback):
    """Writes an atomic checkpoint of `model` and `optimizer` every epoch.

    The step is `(epoch + 1) * steps_per_epoch`, at most `total_steps`
    (the last epoch may be shorter; equal to the optimizer's `iterations`,
    which the checkpoint also holds); `run` (the settings that decide the
    trajectory) is stored with it. No checkpoint is written of weights that
    are NaN or Inf: the last good one stays in force.
    """

    def __init__(self, directory, model, optimizer, steps_per_epoch,
                 run=None, task=None, total_steps=None):
        super().__init__()
        self.directory = directory
        self.full_model = model
        self.optimizer = optimizer
        self.steps_per_epoch = steps_per_epoch
        self.run = run
        self.task = task
        self.total_steps = total_steps

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.steps_per_epoch
        if self.total_steps is not None:
            step = min(step, self.total_steps)
        if logs and not np.isfinite(logs.get("loss", 0.0)):
            raise FloatingPointError(
                f"Loss is {logs['loss']} at step {step}; the last good "
                f"checkpoint in {self.directory!r} is kept.")
        where = f" of task {self.task!r}" if self.task else ""
        checkpoint.check_finite(self.full_model, step, where)
        checkpoint.save(self.directory, self.full_model, self.optimizer,
                        step, run=self.run)


class StopAtStep(keras.callbacks.Callback):
    """Ends training after step `total_steps` (counted over the task, from
    `steps_per_epoch`), so a schedule that is not a multiple of the
    checkpoint interval runs exactly: the last epoch is cut short."""

    def __init__(self, total_steps, steps_per_epoch):
        super().__init__()
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch * self.steps_per_epoch + batch + 1 >= self.total_steps:
            self.model.stop_training = True


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step (input included: the step fetches
    its batch); `median` skips the first, which compiles."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._started = None

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)

    def median(self):
        steady = self.seconds[1:] or self.seconds
        return float(np.median(steady)) if steady else None


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss, or whose update of the
    trainable weights, is NaN or Inf.

    Both are checked: the forward pass can swallow a NaN (the stem's max
    pooling drops it on CPU), so a finite loss does not prove finite
    weights.
    Raises `FloatingPointError` naming the task, the step (1-based, counted
    over the whole task, resumed steps included), the first bad variable,
    and the last good checkpoint, which stays in force (`CheckpointCallback`
    checks the weights again before writing).
    """

    def __init__(self, task, steps_per_epoch, checkpoint_dir=None):
        super().__init__()
        self.task = task
        self.steps_per_epoch = steps_per_epoch
        self.checkpoint_dir = checkpoint_dir
        self.epoch = 0
        self._all_finite = None

    def on_train_begin(self, logs=None):
        variables = list(self.model.trainable_variables)

        @tf.function
        def all_finite():
            return tf.reduce_all(tf.stack(
                [tf.reduce_all(tf.math.is_finite(v)) for v in variables]))

        self._all_finite = all_finite if variables else None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _kept(self):
        if self.checkpoint_dir:
            state = checkpoint.latest(self.checkpoint_dir)
            if state:
                return (f"the last good checkpoint (step {state['step']}) in "
                        f"{self.checkpoint_dir!r} is kept")
        return "no checkpoint was written yet"

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            raise FloatingPointError(
                f"Loss of task {self.task!r} is {float(loss)} at step {step};"
                f" training stopped and {self._kept()}. Lower "
                "--learning_rate or check the data.")
        if self._all_finite is not None and not bool(self._all_finite()):
            bad = next(v.path for v in self.model.trainable_variables
                       if not np.all(np.isfinite(np.asarray(v))))
            raise FloatingPointError(
                f"Weights of task {self.task!r} became NaN or Inf at step "
                f"{step} (first: {bad!r}; the loss was {loss}); training "
                f"stopped and {self._kept()}. Lower --learning_rate or check"
                " the data.")


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
