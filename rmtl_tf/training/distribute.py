"""Distributed and mixed-precision training on `tf.distribute`.

`train_lib.train` runs inside `run_context(config)`, which

- builds the `tf.distribute` strategy named by `config.strategy`
  (`strategies`) and enters its scope, so models, optimizers and compiled
  train steps are created under it (Keras 3 `fit` on the TensorFlow backend
  then runs each step on every replica and all-reduces the gradients);
- sets the Keras global dtype policy named by `config.mixed_precision`
  (`precision`) for the run and restores the previous one afterwards;
- seeds initialization with `config.seed`;
- on a multi-worker non-chief worker, points `model_dir` and `export_dir` at
  a temporary directory (deleted at the end): every worker runs the same
  code, only the chief's files are kept.

`train_lib` also scales the task losses per replica (`replica_loss`), makes
every replica start and end each task with the chief's weights
(`SyncReplicas`), and evaluates and exports after `end_training`, which
leaves the scope and returns a local float32 copy of the model.

The batch size is global (see `strategies`). Nothing scales the learning
rate. BatchNorm normalizes with per-replica batch statistics (not
synchronized) and each replica updates its own moving statistics; the
chief's first replica's are the ones kept.
"""

import contextlib
import dataclasses
import functools
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from rmtl_tf.training.precision import check_precision, float32_copy
from rmtl_tf.training.strategies import (build_strategy, check_batch_size,
                                         check_strategy, is_chief)


def broadcast_from_chief(variables, strategy=None):
    """Sets every replica's copy of `variables` to the chief's.

    "The chief's" is the first replica of the chief worker. Replicas drift
    apart where nothing all-reduces: what each worker assigns itself
    (pretrained bank, response initialization, a restored checkpoint) and
    the BatchNorm moving statistics, which every replica updates from its
    own share of the batch. Training starts from, and ends with, the
    chief's values (the ones it saves). A no-op with one replica.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        return
    variables = [getattr(v, "value", v) for v in variables]
    by_dtype = {}
    for variable in variables:
        by_dtype.setdefault(variable.dtype, []).append(variable)

    def chief_values(group):
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        own = [tf.where(first, tf.convert_to_tensor(v), tf.zeros_like(v))
               for v in group]
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, own)

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # Not "retracing": one new function per call.
    try:
        for group in by_dtype.values():  # One all-reduce per dtype.
            values = strategy.experimental_local_results(tf.function(
                lambda g=group: strategy.run(chief_values, args=(g,)))())
            for variable, value in zip(group, values[0]):
                variable.assign(value)
    finally:
        logger.setLevel(level)


def replica_loss(loss_fn):
    """`loss_fn` in float32, scaled for gradient all-reduction.

    Keras 3 divides a loss by the number of replicas (so that summing the
    replicas' gradients gives the gradient of the global mean) only when it
    reduces per-example values itself; the task losses return a scalar
    (masked means), which Keras passes through unscaled: with 2 replicas the
    gradient would be doubled. This wrapper divides a scalar loss by the
    number of replicas (Keras multiplies it back for the reported loss) and
    computes it on float32 outputs (mixed precision models output float16
    or bfloat16).
    """
    @functools.wraps(loss_fn)
    def loss(y_true, y_pred, *args, **kwargs):
        value = loss_fn(y_true, keras.ops.cast(y_pred, "float32"), *args,
                        **kwargs)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1 and len(value.shape) == 0:
            value = value / replicas
        return value
    return loss


class SyncReplicas(keras.callbacks.Callback):
    """Broadcasts the chief's model and optimizer state to every replica at
    the start of training, and the model's at the end
    (see `broadcast_from_chief`)."""

    def __init__(self, model, optimizer):
        super().__init__()
        self.full_model = model
        self.optimizer = optimizer

    def on_train_begin(self, logs=None):
        broadcast_from_chief(self.full_model.weights
                             + list(self.optimizer.variables))

    def on_train_end(self, logs=None):
        broadcast_from_chief(self.full_model.weights)


# The strategy scopes `run_context` entered, innermost last.
_SCOPES = []


def end_training(model):
    """Leaves the run's strategy scope; returns `model` for evaluation and
    export: float32 and outside any strategy (a local copy when it was
    built under one), so that each process evaluates and exports on its
    own, with no collectives (SavedModel export cannot broadcast its string
    metadata variable across workers)."""
    distributed = tf.distribute.has_strategy()
    if _SCOPES:
        _SCOPES[-1].close()
    return float32_copy(model, force=distributed)


@contextlib.contextmanager
def run_context(config):
    """Yields `(config, strategy)` for a training run (see the module doc);
    on a non-chief worker `config` writes to a temporary directory."""
    check_strategy(config.strategy)
    check_precision(config.mixed_precision)
    strategy = build_strategy(config.strategy, config.num_cpu_devices)
    check_batch_size(strategy, config.batch_size)
    scratch = None
    if not is_chief(strategy):
        scratch = tempfile.mkdtemp(prefix="rmtl_worker_")
        model_dir = os.path.join(scratch, "model")
        if os.path.isdir(config.model_dir):  # The chief's state, if shared.
            shutil.copytree(config.model_dir, model_dir)
        config = dataclasses.replace(
            config, model_dir=model_dir,
            export_dir=config.export_dir and os.path.join(scratch, "export"))
    # --seed seeds initialization too: equal runs start from equal weights.
    keras.utils.set_random_seed(config.seed)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    scope = contextlib.ExitStack()
    _SCOPES.append(scope)
    try:
        scope.enter_context(strategy.scope())
        yield config, strategy
    finally:
        scope.close()  # Nothing left to close after `end_training`.
        _SCOPES.remove(scope)
        keras.mixed_precision.set_global_policy(previous)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def distributed(train_fn):
    """Decorates `train_fn(config, ...)` to run in `run_context(config)`."""
    @functools.wraps(train_fn)
    def wrapper(config, *args, **kwargs):
        with run_context(config) as (run_config, _):
            return train_fn(run_config, *args, **kwargs)
    return wrapper
