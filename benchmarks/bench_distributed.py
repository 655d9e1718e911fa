"""Training images/s under each tf.distribute strategy, on this machine;
prints JSON.

Same model, same global batch, same step function as train.py (the task
model compiled with the replica-scaled task loss, SGD):

- `default`: one process, one device;
- `mirrored`: one process, MirroredStrategy over 2 logical CPU devices
  (the physical CPU split in two: the replicas share the same cores);
- `multi_worker`: 2 processes on 127.0.0.1 (MultiWorkerMirroredStrategy,
  TF_CONFIG per process), gradients all-reduced over gRPC.

Ratios are to `default`. On one machine the strategies can only share the
same cores, so do not expect a speed-up here: this measures their overhead.
The gain comes from more machines (or GPUs), each running one worker.

  python benchmarks/bench_distributed.py --quick       # resnet_tiny, 64x64
  python benchmarks/bench_distributed.py --width_multiplier=0.25 \
      --image_size=128,160 --batch_size=8 --steps=6
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _child(args):
    """One measurement in this process; returns its JSON-able result."""
    from rmtl_tf.training import distribute  # pylint: disable=import-outside-toplevel
    strategy = distribute.build_strategy(
        args.child, 2 if args.child == "mirrored" else None)
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from rmtl_tf import build_model  # pylint: disable=import-outside-toplevel
    from rmtl_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel
    from rmtl_tf.tasks import registry  # pylint: disable=import-outside-toplevel
    size = tuple(int(s) for s in args.image_size.split(","))
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(args.backbone, ["semseg"],
                            num_classes={"semseg": 41},
                            width_multiplier=args.width_multiplier,
                            head_channels=args.head_channels,
                            low_level_channels=args.low_level_channels,
                            image_size=size)
        model.set_trainable_tasks(["semseg"])
        task_model = model.task_model(["semseg"])
        task_model.compile(
            optimizer=keras.optimizers.SGD(0.005, momentum=0.9),
            loss={"semseg": distribute.replica_loss(
                registry.get_task("semseg").loss)})
    rng = np.random.default_rng(0)
    n = 2 * args.batch_size
    images = rng.uniform(0, 255, (n, *size, 3)).astype(np.float32)
    labels = rng.integers(0, 41, (n, *size)).astype(np.int32)
    ds = input_pipeline.without_autotune(tf.data.Dataset.from_tensor_slices(
        (images, {"semseg": labels})).repeat().batch(
            args.batch_size, drop_remainder=True))
    task_model.fit(ds, epochs=1, steps_per_epoch=args.warmup, verbose=0)
    start = time.perf_counter()
    task_model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0)
    seconds = time.perf_counter() - start
    return {"images_per_s": round(args.steps * args.batch_size / seconds, 3),
            "ms_per_step": round(1000 * seconds / args.steps, 1),
            "replicas": strategy.num_replicas_in_sync}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv, strategy, envs, timeout):
    """Runs one child per env (at once) and returns their parsed JSON."""
    procs = []
    try:
        for env in envs:
            procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), *argv,
                 f"--child={strategy}"], env=dict(os.environ, **env),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            if proc.returncode:
                raise RuntimeError(f"{strategy} child failed:\n{err[-3000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="resnet_tiny, 64x64, batch 4, 3 steps")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--width_multiplier", type=float, default=1.0)
    parser.add_argument("--head_channels", type=int, default=256)
    parser.add_argument("--low_level_channels", type=int, default=48)
    parser.add_argument("--image_size", default="256,320")
    parser.add_argument("--batch_size", type=int, default=8,
                        help="global batch, the same for every strategy")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.backbone, args.head_channels, args.low_level_channels = (
            "resnet_tiny", 16, 8)
        args.image_size, args.batch_size, args.steps = "64,64", 4, 3
    if args.child:
        print(json.dumps(_child(args)))
        return
    argv = [f"--{k}={v}" for k, v in vars(args).items()
            if k not in ("child", "quick", "timeout")]
    default = _run(argv, "default", [{}], args.timeout)[0]
    mirrored = _run(argv, "mirrored", [{}], args.timeout)[0]
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    workers = _run(argv, "multi_worker", [
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {
            "type": "worker", "index": i}})} for i in range(2)],
        args.timeout)
    # Every worker runs the same synchronous steps: the slowest one counts.
    multi = min(workers, key=lambda r: r["images_per_s"])
    report = {
        "config": {k: v for k, v in vars(args).items()
                   if k not in ("child", "timeout")},
        "cpu_count": os.cpu_count(),
        "images_per_s": {"default": default["images_per_s"],
                         "mirrored_2_logical_cpus": mirrored["images_per_s"],
                         "multi_worker_2_processes": multi["images_per_s"]},
        "ratio_to_default": {
            "mirrored_2_logical_cpus": round(
                mirrored["images_per_s"] / default["images_per_s"], 3),
            "multi_worker_2_processes": round(
                multi["images_per_s"] / default["images_per_s"], 3)},
        "replicas": {"default": default["replicas"],
                     "mirrored_2_logical_cpus": mirrored["replicas"],
                     "multi_worker_2_processes": multi["replicas"]},
        "ms_per_step": {"default": default["ms_per_step"],
                        "mirrored_2_logical_cpus": mirrored["ms_per_step"],
                        "multi_worker_2_processes": multi["ms_per_step"]},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
