"""Which `tf.distribute` strategy a training run uses, built once per process.

- `default`: one device, no distribution.
- `mirrored`: `tf.distribute.MirroredStrategy`, one replica per local GPU,
  or per logical CPU device. With `num_cpu_devices=N` (`--num_cpu_devices`)
  the physical CPU is split into N logical devices first (mostly for tests
  and benchmarks: on one CPU the replicas share the same cores).
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`; the cluster
  comes from the `TF_CONFIG` environment variable of each worker.

The batch size is global: each step, `batch_size` images are split evenly
across the replicas (it must be divisible by their number).
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def check_strategy(name):
    """Raises `ValueError` naming `name` unless it is a known strategy."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown --strategy={name!r}. Expected one of "
                         f"{STRATEGIES}.")
    return name


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
