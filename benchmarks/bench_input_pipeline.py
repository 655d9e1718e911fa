"""Input pipeline throughput against the training step; prints JSON.

Is the data pipeline the bottleneck? A NYUD-MT copy at the real image size
(480x640, the authors' layout, written by tests/data/fixtures/
write_fixtures.py) is prepared with the TFDS builder, then, each in its own
subprocess on this machine's cores:

  pipeline      images/s of `datasets.load_split("nyud", "train", ...)` at
                the paper's 425x560 crop, batch 8, with the augmentation
                (decode, random scale 0.5-2.0, pad + crop, flip), alone;
                for semseg alone and for all four NYUD tasks.
  train         images/s of the training step (ResNet-18 RCM + DeepLabv3+,
                semseg 41 classes, batch 8, 425x560, XLA) on a constant
                in-memory batch: the step alone;
  train_fed     the same step fed by the real pipeline (both share the
                cores): if the pipeline is not the bottleneck, it runs at
                the `train` speed.

  python benchmarks/bench_input_pipeline.py            # ~5 min on 2 cores
  python benchmarks/bench_input_pipeline.py --quick    # tiny smoke test
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "data", "fixtures"))
NYUD_TASKS = ["semseg", "depth", "normals", "edge"]


def _settings(quick):
    if quick:
        return {"image": (64, 80), "crop": (48, 64), "batch": 2,
                "train_examples": 4, "backbone": "resnet_tiny"}
    return {"image": (480, 640), "crop": (425, 560), "batch": 8,
            "train_examples": 32, "backbone": "resnet18"}


def prepare(data_dir, quick):
    """Writes and prepares the NYUD-MT copy; returns seconds per example."""
    import write_fixtures  # pylint: disable=import-outside-toplevel
    from rmtl_tf.data import datasets  # pylint: disable=import-outside-toplevel
    s = _settings(quick)
    manual_dir = os.path.join(data_dir, "manual")
    write_fixtures.write_nyud_mt(manual_dir, num_train=s["train_examples"],
                                 num_val=2, size=s["image"])
    start = time.perf_counter()
    datasets.prepare("nyud", os.path.join(data_dir, "tfds"), manual_dir)
    seconds = time.perf_counter() - start
    return round(seconds / (s["train_examples"] + 2), 4)


def _train_ds(data_dir, tasks, quick, cache):
    from rmtl_tf.data import datasets  # pylint: disable=import-outside-toplevel
    s = _settings(quick)
    return datasets.load_split(
        "nyud", "train", tasks, s["crop"], s["batch"], None,
        data_dir=os.path.join(data_dir, "tfds"), training=True, cache=cache)


def bench_pipeline(data_dir, quick, tasks, cache):
    s = _settings(quick)
    iterator = iter(_train_ds(data_dir, tasks, quick, cache))
    warmup, batches = (2, 5) if quick else (3, 30)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - start
    return {"images_per_s": round(batches * s["batch"] / seconds, 2),
            "tasks": tasks, "cache": cache, "batch": s["batch"],
            "crop": list(s["crop"])}


def bench_train(data_dir, quick, fed):
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from rmtl_tf import build_model  # pylint: disable=import-outside-toplevel
    from rmtl_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel
    from rmtl_tf.tasks import registry  # pylint: disable=import-outside-toplevel
    s = _settings(quick)
    model = build_model(s["backbone"], ["semseg"],
                        num_classes={"semseg": 41}, image_size=s["crop"])
    model.compile(optimizer=keras.optimizers.SGD(0.005, momentum=0.9,
                                                 weight_decay=1e-4),
                  loss={"semseg": registry.get_task("semseg").loss},
                  jit_compile=True)
    if fed:
        ds = _train_ds(data_dir, ["semseg"], quick, cache=False)
    else:
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, (s["batch"], *s["crop"], 3)).astype(
            np.float32)
        labels = rng.integers(0, 41, (s["batch"], *s["crop"])).astype(
            np.int32)
        ds = input_pipeline.without_autotune(tf.data.Dataset.from_tensors(
            (images, {"semseg": labels})).repeat())
    warmup, steps = (2, 3) if quick else (2, 6)
    model.fit(ds, epochs=1, steps_per_epoch=warmup, verbose=0)
    start = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    return {"images_per_s": round(steps * s["batch"] / seconds, 3),
            "ms_per_step": round(1000 * seconds / steps, 1),
            "fed_by_pipeline": fed, "backbone": s["backbone"]}


def _child(args):
    if args.part == "pipeline":
        result = bench_pipeline(args.data_dir, args.quick,
                                args.tasks.split(","), args.cache)
    else:
        result = bench_train(args.data_dir, args.quick,
                             fed=args.part == "train_fed")
    print(json.dumps(result))


def _run(part, data_dir, quick, tasks="semseg", cache=False):
    command = [sys.executable, os.path.abspath(__file__), "--child", part,
               f"--data_dir={data_dir}", f"--tasks={tasks}"]
    command += ["--quick"] if quick else []
    command += ["--cache"] if cache else []
    proc = subprocess.run(command, capture_output=True, text=True,
                          check=False, cwd=ROOT)
    if proc.returncode:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", dest="part", default=None)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--tasks", default="semseg")
    parser.add_argument("--cache", action="store_true")
    args = parser.parse_args()
    if args.part:
        _child(args)
        return
    with tempfile.TemporaryDirectory() as data_dir:
        results = {"cores": os.cpu_count(), "settings": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in _settings(args.quick).items()}}
        results["prepare_seconds_per_example"] = prepare(data_dir,
                                                         args.quick)
        results["pipeline_semseg"] = _run("pipeline", data_dir, args.quick,
                                          tasks="semseg")
        results["pipeline_semseg_cached"] = _run(
            "pipeline", data_dir, args.quick, tasks="semseg", cache=True)
        results["pipeline_all_tasks"] = _run(
            "pipeline", data_dir, args.quick, tasks=",".join(NYUD_TASKS))
        results["train"] = _run("train", data_dir, args.quick)
        results["train_fed"] = _run("train_fed", data_dir, args.quick)
    train = results["train"].get("images_per_s")
    if train:
        for key in ("pipeline_semseg", "pipeline_semseg_cached",
                    "pipeline_all_tasks", "train_fed"):
            speed = results[key].get("images_per_s")
            if speed:
                results[f"ratio_{key}_over_train"] = round(speed / train, 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
