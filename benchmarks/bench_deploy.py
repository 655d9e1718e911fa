"""Deployment figures of rmtl_tf on this machine; prints and writes JSON.

One run, so the ratios compare like with like on a shared machine. Each
part runs in its own subprocess.

  python benchmarks/bench_deploy.py                   # everything (~30 min)
  python benchmarks/bench_deploy.py --parts=sizes     # one part
  python benchmarks/bench_deploy.py --quick           # tiny shapes, smoke test

Parts:
  latency   per-task latency, batch 1, 425x560 (NYUD), ResNet-18
            DeepLabv3+ RCM (NFF), semseg (41 classes) + depth: Keras eager,
            Keras tf.function, SavedModel signature, TFLite factorized
            (the shared multi-task file), TFLite folded (one task), int8
            factorized and int8 folded (XNNPACK, 2 threads). Median ms.
  sizes     SavedModel variables and TFLite bytes for T = 1..5 tasks, one
            model growing a task at a time, against bank + T x per-task.
  packs     task pack bytes against the full model (.keras, SavedModel).
  accuracy  per-task metric of the float, dynamic, float16 and int8 files
            (multi-task and folded) of the trained demo model (runs/demo,
            `python train.py --flagfile=configs/demo.cfg`) on 64 synthetic
            validation scenes; skipped when it is absent.
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
TASKS = ("semseg", "depth", "normals", "edge", "saliency")
DEMO_MODEL_DIR = os.path.join(ROOT, "runs", "demo")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "bench_deploy.json")
THREADS = 2


def _model(tasks, image_size, quick):
    from rmtl_tf import build_model  # pylint: disable=import-outside-toplevel
    if quick:
        return build_model("resnet_tiny", list(tasks),
                           num_classes={"semseg": 41}, head_channels=16,
                           low_level_channels=8, image_size=image_size)
    return build_model("resnet18", list(tasks), num_classes={"semseg": 41},
                       image_size=image_size)


def _perturb(model, task, seed):
    """Distinct, non-identity task weights (the converter merges equal
    buffers, which would flatter the sizes)."""
    from rmtl_tf.testing import perturb_task_weights  # pylint: disable=import-outside-toplevel
    perturb_task_weights(model, task, seed)


def _interleaved_ms(fns, rounds):
    """Median ms of each of `fns` ({name: fn}), timed in rounds that run
    every fn once, in a rotating order: load from other processes on a
    shared machine then spreads over all of them, not over one."""
    names = list(fns)
    for name in names:  # Warm-up: allocation, planning, tracing.
        fns[name]()
        fns[name]()
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: round(1000 * sorted(t)[len(t) // 2], 2)
            for name, t in times.items()}


def _mb(path):
    if os.path.isdir(path):
        return round(sum(os.path.getsize(os.path.join(r, f))
                         for r, _, fs in os.walk(path) for f in fs) / 2**20,
                     3)
    return round(os.path.getsize(path) / 2**20, 3)


def bench_latency(quick):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from rmtl_tf.export import export_lib, fold, quantize, runners  # pylint: disable=import-outside-toplevel
    size = (64, 64) if quick else (425, 560)
    repeats = 3 if quick else 15
    tasks = TASKS[:2]
    model = _model(tasks, size, quick)
    for i, task in enumerate(tasks):
        _perturb(model, task, i)
    image = quantize.calibration_images(size, 1, split="validation")
    x = tf.constant(image)
    out = {"image_size": list(size), "batch": 1, "threads": THREADS,
           "ms": {}, "export_seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = export_lib.export(
            model, tmp, quantize_modes=["int8"], fold_tasks=tasks,
            calibration_images=quantize.calibration_images(
                size, 2 if quick else 8))
        out["export_seconds"]["all"] = round(time.perf_counter() - start, 1)
        saved = tf.saved_model.load(result["saved_model"])
        lite = {"tflite_factorized": result["tflite"],
                "int8_factorized": result["tflite_files"]["int8"]}
        out["mb"] = {"saved_model_variables": _mb(os.path.join(
            result["saved_model"], "variables")), **{
                k: _mb(v) for k, v in lite.items()}}
        for task in tasks:
            folded = result["folded"][task]
            folded_saved = tf.saved_model.load(folded["saved_model"])
            files = {**lite, "tflite_folded": folded["tflite"],
                     "int8_folded": folded["tflite_files"]["int8"]}
            out["mb"][f"tflite_folded_{task}"] = _mb(folded["tflite"])
            out["mb"][f"int8_folded_{task}"] = _mb(
                folded["tflite_files"]["int8"])
            path = model.task_model([task])
            graph = tf.function(lambda im, m=path: m(im, training=False))
            keras_folded = fold.fold_task(model, task)
            fns = {
                "keras_eager": lambda m=path: m(x, training=False),
                "keras_eager_folded":
                    lambda m=keras_folded: m(x, training=False),
                "keras_tf_function": lambda: graph(x),
                "saved_model": lambda t=task: saved.signatures[t](image=x),
                "saved_model_folded":
                    lambda t=task, s=folded_saved: s.signatures[t](image=x),
            }
            for name, file in files.items():
                run = runners.TFLiteRunner(file, num_threads=THREADS)
                fns[name] = lambda r=run, t=task: r(image, t)
            row = _interleaved_ms(fns, repeats)
            out["ms"][task] = row
    base = "tflite_factorized"
    out["speedup_vs_tflite_factorized"] = {
        task: {k: round(row[base] / v, 3) for k, v in row.items()}
        for task, row in out["ms"].items()}
    out["speedup_vs_keras_eager"] = {
        task: {k: round(row["keras_eager"] / v, 3) for k, v in row.items()}
        for task, row in out["ms"].items()}
    return out


def bench_sizes(quick):
    import numpy as np  # pylint: disable=import-outside-toplevel
    from rmtl_tf import add_task  # pylint: disable=import-outside-toplevel
    from rmtl_tf.export import export_lib  # pylint: disable=import-outside-toplevel

    def numel(variables):
        return sum(int(np.prod(v.shape)) for v in variables)

    model = _model(TASKS[:1], (64, 64), quick)
    _perturb(model, TASKS[0], 0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in range(1, len(TASKS) + 1):
            if t > 1:
                model = add_task(model, TASKS[t - 1])
                _perturb(model, TASKS[t - 1], t)
            start = time.perf_counter()
            result = export_lib.export(model, tmp)
            seconds = time.perf_counter() - start
            bank = 4 * numel(model.bank_variables())
            per_task = 4 * sum(numel(model.task_variables(k))
                               for k in model.tasks)
            budget = bank + 1.05 * per_task
            variables = _mb(os.path.join(result["saved_model"], "variables"))
            tflite = _mb(result["tflite"])
            rows.append({
                "tasks": t, "budget_mb": round(budget / 2**20, 3),
                "saved_model_variables_mb": variables,
                "tflite_mb": tflite,
                "saved_model_vs_budget": round(variables * 2**20 / budget, 4),
                "tflite_vs_budget": round(tflite * 2**20 / budget, 4),
                "separate_single_task_models_mb": round(
                    (t * bank + per_task) / 2**20, 3),
                "export_seconds": round(seconds, 1)})
    return {"bank_mb": round(4 * numel(model.bank_variables()) / 2**20, 3),
            "per_task_mb": {k: round(4 * numel(model.task_variables(k))
                                     / 2**20, 3) for k in model.tasks},
            "exports": rows}


def bench_packs(quick):
    from rmtl_tf.export import export_lib, task_pack  # pylint: disable=import-outside-toplevel
    model = _model(TASKS[:2], (64, 64), quick)
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = os.path.join(tmp, "model.keras")
        model.save(keras_file)
        result = export_lib.export(model, tmp, tflite=False)
        out = {"tasks": list(model.tasks), "keras_mb": _mb(keras_file),
               "saved_model_variables_mb": _mb(os.path.join(
                   result["saved_model"], "variables")), "packs": {}}
        for task in model.tasks:
            path = task_pack.save_pack(model, task,
                                       os.path.join(tmp, f"{task}.npz"))
            out["packs"][task] = {
                "mb": _mb(path),
                "vs_keras": round(_mb(path) / out["keras_mb"], 4)}
    return out


def bench_accuracy(quick):
    from rmtl_tf.export import accuracy_report, export_lib, quantize  # pylint: disable=import-outside-toplevel
    from rmtl_tf.training.train_lib import load_model  # pylint: disable=import-outside-toplevel
    if not os.path.isfile(os.path.join(DEMO_MODEL_DIR, "model.keras")):
        return {"skipped": f"no trained model in {DEMO_MODEL_DIR}"}
    model = load_model(DEMO_MODEL_DIR)
    size = tuple(model.image_size)
    modes = ["dynamic", "float16", "int8"]
    examples = 8 if quick else 64
    batches = accuracy_report.load_batches(model.tasks, size, examples)
    out = {"model_dir": os.path.relpath(DEMO_MODEL_DIR, ROOT),
           "tasks": list(model.tasks), "image_size": list(size),
           "val_examples": examples, "calibration_examples": 32}
    with tempfile.TemporaryDirectory() as tmp:
        result = export_lib.export(
            model, tmp, quantize_modes=modes, fold_tasks=model.tasks,
            calibration_images=quantize.calibration_images(size, 32))
        out["multitask"] = accuracy_report.report(
            result["tflite_files"], model.tasks, batches,
            model.num_classes)
        for task in model.tasks:
            files = result["folded"][task]["tflite_files"]
            out[f"folded_{task}"] = accuracy_report.report(
                files, [task], batches, model.num_classes)
    print(accuracy_report.format_report(out["multitask"]), file=sys.stderr)
    return out


PARTS = {"latency": bench_latency, "sizes": bench_sizes,
         "packs": bench_packs, "accuracy": bench_accuracy}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="latency,sizes,packs,accuracy")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None,
                        help=f"JSON file (default {RESULTS}; none with "
                        "--quick)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(PARTS[args.child](args.quick)))
        return
    # Shared machines: the load says how much the figures are disturbed.
    report = {"cpu_count": os.cpu_count(), "quick": args.quick,
              "load_average_at_start": [round(x, 2)
                                        for x in os.getloadavg()]}
    for part in args.parts.split(","):
        cmd = [sys.executable, __file__, "--child", part]
        if args.quick:
            cmd.append("--quick")
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              check=False)
        if proc.returncode:
            report[part] = {"error": proc.stderr[-3000:]}
        else:
            report[part] = json.loads(proc.stdout.strip().splitlines()[-1])
        report[part]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"{part}: done in {report[part]['seconds']} s",
              file=sys.stderr)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    out = args.out or (None if args.quick else RESULTS)
    if out:
        if os.path.isfile(out):  # Keep the parts not run this time.
            with open(out, encoding="utf-8") as f:
                report = {**json.load(f), **report}
        with open(out, "w", encoding="utf-8") as f:
            f.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
