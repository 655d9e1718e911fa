"""Distributed and mixed-precision training on `tf.distribute`.

`train_lib.train` runs inside `run_context(config)`, which

- builds the `tf.distribute` strategy named by `config.strategy` and enters
  its scope, so models, optimizers and compiled train steps are created
  under it (Keras 3 `fit` on the TensorFlow backend then runs each step on
  every replica and all-reduces the gradients);
- sets the Keras global dtype policy named by `config.mixed_precision` for
  the run and restores the previous one afterwards;
- seeds initialization with `config.seed`;
- on a multi-worker non-chief worker, points `model_dir` and `export_dir` at
  a temporary directory (deleted at the end): every worker runs the same
  code, only the chief's files are kept.

`train_lib` also scales the task losses per replica (`replica_loss`), makes
every replica start and end each task with the chief's weights
(`SyncReplicas`), and evaluates and exports after `end_training`, which
leaves the scope and returns a local float32 copy of the model.

Strategies:

- `default`: one device, no distribution.
- `mirrored`: `tf.distribute.MirroredStrategy`, one replica per local GPU,
  or per logical CPU device. With `num_cpu_devices=N` (`--num_cpu_devices`)
  the physical CPU is split into N logical devices first (mostly for tests
  and benchmarks: on one CPU the replicas share the same cores).
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`; the cluster
  comes from the `TF_CONFIG` environment variable of each worker.

The batch size is global: each step, `batch_size` images are split evenly
across the replicas (it must be divisible by their number). Nothing scales
the learning rate. BatchNorm normalizes with per-replica batch statistics
(not synchronized) and each replica updates its own moving statistics; the
chief's first replica's are the ones kept.
"""

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from rmtl_tf.models import multitask_model

STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def check_strategy(name):
    """Raises `ValueError` naming `name` unless it is a known strategy."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown --strategy={name!r}. Expected one of "
                         f"{STRATEGIES}.")
    return name


def check_precision(name):
    """Raises `ValueError` naming `name` unless it is a known dtype policy."""
    if name not in PRECISIONS:
        raise ValueError(f"Unknown --mixed_precision={name!r}. Expected one "
                         f"of {PRECISIONS}.")
    return name


def cpu_flags(path="/proc/cpuinfo"):
    """The instruction-set flags of this machine's CPU (Linux), else
    an empty set."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bfloat16_hint(precision, flags=None):
    """What `--mixed_precision=mixed_bfloat16` would save, on a CPU that
    computes bfloat16 natively (AMX or AVX512-BF16) running float32; else
    None. On CPUs without it bfloat16 is emulated and slower."""
    flags = cpu_flags() if flags is None else flags
    native = sorted(flags & {"amx_bf16", "avx512_bf16"})
    if precision != "float32" or not native:
        return None
    return (f"This CPU computes bfloat16 natively ({', '.join(native)}): "
            "--mixed_precision=mixed_bfloat16 trained ResNet-18 RCM at "
            "256x320 in 2.0 s per step against 3.0 s in float32 on an Intel "
            "Xeon with AMX, the loss curve within 1% (variables and the "
            "saved model stay float32).")


def parse_tf_config(value=None):
    """The cluster spec of this worker from `TF_CONFIG`, validated.

    Returns `{"cluster": {...}, "task": {"type": ..., "index": ...}}`.
    Raises `ValueError` naming the value when it is missing or malformed.
    """
    value = os.environ.get("TF_CONFIG") if value is None else value
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not value:
        raise ValueError(
            "--strategy=multi_worker needs the TF_CONFIG environment "
            "variable describing the cluster and this worker's task, e.g. "
            f"TF_CONFIG='{example}'. Received: TF_CONFIG unset or empty.")
    try:
        spec = json.loads(value)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: "
                         f"TF_CONFIG={value!r}. Expected e.g. '{example}'."
                         ) from e
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if (not isinstance(cluster, dict) or not cluster
            or not all(isinstance(v, list) and v and all(
                isinstance(a, str) and ":" in a for a in v)
                for v in cluster.values())):
        raise ValueError(
            "TF_CONFIG needs 'cluster': a dict of job name -> list of "
            f"'host:port' addresses. Received: TF_CONFIG={value!r}. Expected "
            f"e.g. '{example}'.")
    if (not isinstance(task, dict) or task.get("type") not in cluster
            or not isinstance(task.get("index"), int)
            or not 0 <= task["index"] < len(cluster[task["type"]])):
        raise ValueError(
            "TF_CONFIG needs 'task': {'type': a job of the cluster "
            f"({sorted(cluster)}), 'index': its position in that job's "
            f"address list}}. Received: TF_CONFIG={value!r}.")
    bad = sorted(set(cluster) - {"chief", "worker"})
    if bad or len(cluster.get("chief", [])) > 1:
        raise ValueError(
            f"TF_CONFIG cluster jobs {bad or ['chief']} are not supported "
            "by --strategy=multi_worker (expected 'worker' and optionally "
            f"one 'chief'). Received: TF_CONFIG={value!r}.")
    return spec


def split_cpu(num_devices):
    """Splits the physical CPU into `num_devices` logical devices.

    Must run before TensorFlow initializes its devices (before any op).
    """
    if not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError("--num_cpu_devices must be an int >= 1. Received: "
                         f"num_cpu_devices={num_devices!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as e:
        raise RuntimeError(
            f"Cannot split the CPU into num_cpu_devices={num_devices} "
            "logical devices: TensorFlow has already initialized its "
            "devices. Build the strategy before running any TensorFlow op "
            "(train.py does).") from e


# Strategies built in this process: one per kind. A second
# MirroredStrategy would reuse the first one's collective keys, and TF
# supports a single MultiWorkerMirroredStrategy per process.
_BUILT = {}


def build_strategy(name, num_cpu_devices=None):
    """The `tf.distribute.Strategy` called `name` (see the module doc); the
    same object for the same arguments within a process."""
    check_strategy(name)
    if name == "default":
        return tf.distribute.get_strategy()
    key = (name, num_cpu_devices or 0)
    if key not in _BUILT:
        _BUILT[key] = _build_strategy(name, num_cpu_devices)
    return _BUILT[key]


def _build_strategy(name, num_cpu_devices):
    if name == "multi_worker":
        parse_tf_config()  # Clear errors before TF's own.
        return _multi_worker_strategy()
    if num_cpu_devices and num_cpu_devices > 1:
        split_cpu(num_cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])


def _multi_worker_strategy():
    """`MultiWorkerMirroredStrategy` with a `reduce` Keras 3 `fit` can use.

    Keras 3.15 `fit` under MultiWorkerMirroredStrategy fails twice in
    `strategy.reduce` (keras-team/keras#20585, tensorflow#72388):
    `_maybe_symbolic_build` reduces the whole first `(x, y)` batch in one
    call ("Attempt to convert a value (PerReplica...) to a Tensor"), and
    `reduce_per_replica` reduces scalar metrics with `axis=0` ("Invalid
    reduction dimension 0 for input with 0 dimensions"). This reduces each
    leaf of a structure on its own, and scalars over replicas only.
    """

    class NestedReduceMultiWorkerStrategy(
            tf.distribute.MultiWorkerMirroredStrategy):

        def reduce(self, reduce_op, value, axis):  # pylint: disable=missing-function-docstring
            if (tf.nest.is_nested(value)
                    and not isinstance(value, tf.distribute.DistributedValues)):
                return tf.nest.map_structure(
                    lambda v: super(NestedReduceMultiWorkerStrategy,
                                    self).reduce(reduce_op, v, axis), value)
            parts = (value.values if isinstance(
                value, tf.distribute.DistributedValues) else (value,))
            if axis is not None and parts[0].shape.rank == 0:
                axis = None  # A scalar: the mean over replicas.
            return super().reduce(reduce_op, value, axis)

    return NestedReduceMultiWorkerStrategy()


def is_chief(strategy):
    """True unless `strategy` is multi-worker and this worker is not chief.

    The chief is the `chief` task, or `worker` 0 when there is none.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def check_batch_size(strategy, batch_size):
    """The global batch must split evenly across the replicas."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"--batch_size={batch_size} is the global batch and must be "
            f"divisible by the {replicas} replicas of the strategy.")


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


def float32_copy(model, force=False):
    """`model` rebuilt with float32 layers under the current strategy (none
    outside a scope), with its weights; `model` itself when its layers
    already compute in float32, unless `force`."""
    if not force and all(
            layer.dtype_policy.name == "float32"
            for layer in model._flatten_layers()):  # pylint: disable=protected-access
        return model
    return multitask_model.with_dtype_policy(model, "float32")


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
