"""Checkpoint size and write time, resume time, and the cost of
--deterministic; prints JSON.

  python benchmarks/bench_checkpoint.py               # ResNet-18, 1 task
  python benchmarks/bench_checkpoint.py --mode=demo   # demo.cfg's model
  python benchmarks/bench_checkpoint.py --quick       # resnet_tiny, seconds

What is measured (the model and optimizer train.py builds: `MultiTaskModel`
with one task, semseg, variant rc_nff; SGD momentum with the poly schedule):
  * checkpoint: `checkpoint.save` (model weights .npz + optimizer .npz +
    checkpoint.json, each written to a temporary file and renamed): bytes on
    disk and the median write time of --repeats writes;
  * resume: what a restarted run pays before it trains again, in a fresh
    model: build + compile, `checkpoint.restore`, the first training step
    (which traces the train function), and the skip of the data pipeline to
    the checkpoint's step (`load_split(start_batch=...)`, time to the first
    batch);
  * --deterministic: seconds per training step (after 2 warm-up steps)
    with and without `tf.config.experimental.enable_op_determinism()`,
    each in its own process (op determinism cannot be turned off again),
    alternated over --rounds; the ratios of the minimum and median step
    times. On a shared machine the minimum is the fairer figure.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

QUICK = dict(backbone="resnet_tiny", width_multiplier=1.0, head_channels=16,
             low_level_channels=8, image_size=(64, 64), batch_size=2)
FULL = dict(backbone="resnet18", width_multiplier=1.0, head_channels=256,
            low_level_channels=48, image_size=(256, 320), batch_size=8)
# configs/demo.cfg's model.
DEMO = dict(backbone="resnet18", width_multiplier=0.25, head_channels=64,
            low_level_channels=16, image_size=(96, 128), batch_size=8)
MODES = {"quick": QUICK, "demo": DEMO, "full": FULL}


def _setup(settings, seed=0):
    import keras  # pylint: disable=import-outside-toplevel
    from rmtl_tf.data import datasets  # pylint: disable=import-outside-toplevel
    from rmtl_tf.tasks import registry  # pylint: disable=import-outside-toplevel
    from rmtl_tf.training import train_lib  # pylint: disable=import-outside-toplevel
    from rmtl_tf.training.config import TrainConfig  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(seed)
    config = TrainConfig(model_dir="unused", tasks=("semseg",),
                         variant="rc_nff", bank="random", jit_compile=False,
                         **settings)
    model = train_lib.MultiTaskModel(
        tasks=["semseg"], image_size=config.image_size,
        num_classes=datasets.dataset_info("synthetic")["num_classes"],
        **config.model_kwargs())
    model.set_trainable_tasks(["semseg"])
    task_model = model.task_model(["semseg"])
    optimizer = train_lib._optimizer(config, 1000)  # pylint: disable=protected-access
    spec = registry.get_task("semseg")
    task_model.compile(optimizer=optimizer, loss={"semseg": spec.loss},
                       loss_weights={"semseg": spec.loss_weight},
                       jit_compile=False)
    optimizer.build(task_model.trainable_variables)
    return config, model, task_model, optimizer


def _dataset(config, start_batch=0):
    from rmtl_tf.data import datasets  # pylint: disable=import-outside-toplevel
    return datasets.load_split(
        "synthetic", "train", ["semseg"], config.image_size,
        config.batch_size, 4 * config.batch_size, seed=0, training=True,
        augment=True, start_batch=start_batch)


class _StepTimes:
    """Seconds of each training step (the loss is read every batch, so each
    step has finished when its time is taken)."""

    def __new__(cls):
        import keras  # pylint: disable=import-outside-toplevel

        class StepTimes(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times, self.started = [], None

            def on_train_batch_begin(self, batch, logs=None):
                self.started = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                float((logs or {}).get("loss", 0.0))
                self.times.append(time.perf_counter() - self.started)

        return StepTimes()


def _steps_worker(settings, steps, warmup, deterministic):
    if deterministic:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.config.experimental.enable_op_determinism()
    config, _, task_model, _ = _setup(settings)
    ds = _dataset(config)
    task_model.fit(ds, epochs=1, steps_per_epoch=warmup, verbose=0,
                   shuffle=False)
    times = _StepTimes()
    task_model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0,
                   shuffle=False, callbacks=[times])
    return {"step_seconds": times.times}


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def _checkpoint_and_resume(settings, repeats):
    from rmtl_tf.training import checkpoint  # pylint: disable=import-outside-toplevel
    config, model, task_model, optimizer = _setup(settings)
    task_model.fit(_dataset(config), epochs=1, steps_per_epoch=2, verbose=0,
                   shuffle=False)
    result = {}
    with tempfile.TemporaryDirectory() as directory:
        times = []
        for step in range(1, repeats + 1):
            started = time.perf_counter()
            checkpoint.save(directory, model, optimizer, step)
            times.append(time.perf_counter() - started)
        files = {f: os.path.getsize(os.path.join(directory, f))
                 for f in os.listdir(directory)
                 if f.startswith(f"ckpt-{repeats}.")
                 or f == checkpoint.STATE_FILE}
        result["checkpoint"] = {
            "bytes": sum(files.values()), "files": files,
            "write_seconds_median": _median(times),
            "write_seconds_all": [round(t, 4) for t in times],
            "model_variables": len(model.weights),
            "optimizer_variables": len(optimizer.variables)}

        started = time.perf_counter()
        config, model, task_model, optimizer = _setup(settings, seed=1)
        build = time.perf_counter() - started
        started = time.perf_counter()
        step = checkpoint.restore(directory, model, optimizer)
        restore = time.perf_counter() - started
        started = time.perf_counter()
        ds = _dataset(config, start_batch=1000)
        next(iter(ds))
        skip = time.perf_counter() - started
        started = time.perf_counter()
        task_model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0,
                       shuffle=False)
        first_step = time.perf_counter() - started
        result["resume"] = {
            "restored_step": step, "build_and_compile_seconds": build,
            "restore_seconds": restore,
            "data_skip_1000_batches_seconds": skip,
            "first_step_seconds": first_step,
            "restore_plus_first_step_seconds": restore + first_step}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="full")
    parser.add_argument("--quick", action="store_true",
                        help="the same as --mode=quick")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternations of default / deterministic runs")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--worker", choices=["steps"], help=argparse.SUPPRESS)
    parser.add_argument("--deterministic", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    mode = "quick" if args.quick else args.mode
    settings = MODES[mode]
    steps = args.steps or {"quick": 20, "demo": 10, "full": 4}[mode]
    if args.worker == "steps":
        print(json.dumps(_steps_worker(settings, steps, 2,
                                       args.deterministic)))
        return
    load = os.getloadavg()
    result = {"mode": mode,
              "settings": {**settings,
                           "image_size": list(settings["image_size"])},
              "load_average_before": [round(x, 2) for x in load]}
    result.update(_checkpoint_and_resume(settings, args.repeats))
    # Each mode in its own process (op determinism cannot be turned off),
    # alternated over --rounds so both see the same machine load; the
    # minimum step time is the least disturbed by other processes.
    timing = {"default": [], "deterministic": []}
    for _ in range(args.rounds):
        for deterministic in (False, True):
            command = [sys.executable, os.path.abspath(__file__),
                       "--worker=steps", f"--steps={steps}",
                       f"--mode={mode}"]
            command += ["--deterministic"] if deterministic else []
            out = subprocess.run(command, capture_output=True, text=True,
                                 check=True).stdout
            timing["deterministic" if deterministic else "default"] += \
                json.loads(out.strip().splitlines()[-1])["step_seconds"]
    result["deterministic"] = {
        "steps_timed_per_mode": len(timing["default"]),
        **{f"step_seconds_{name}_{k}": stat(v)
           for k, v in timing.items()
           for name, stat in (("min", min), ("median", _median))},
        "ratio_min": min(timing["deterministic"]) / min(timing["default"]),
        "ratio_median": (_median(timing["deterministic"])
                         / _median(timing["default"]))}
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
