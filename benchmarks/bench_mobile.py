"""MobileNetV2 against ResNet-18 on the phone path: int8 TFLite latency and
file sizes, in one run; prints and writes JSON.

  python benchmarks/bench_mobile.py            # ~40 min on 2 cores
  python benchmarks/bench_mobile.py --sizes=256x320 --counts=   # latency only
  python benchmarks/bench_mobile.py --quick    # tiny shapes, smoke test

For each model (DeepLabv3+ RCM, NFF, width 1.0; semseg with 41 classes,
depth): ResNet-18 and MobileNetV2 with the paper's head (256 channels,
48 low-level), and MobileNetV2 with a phone-sized head (64 channels, 24
low-level: `--head_channels=64 --low_level_channels=24`), exported as
export.py does with
`--quantize=int8` (calibrated on synthetic images at the served size), and:
  latency  per task, batch 1, 2 threads (XNNPACK), median ms of the int8
           multi-task file's task signature, at 425x560 (NYUD) and 256x320
           (phone-sized); every file timed in the same interleaved rounds,
           so the ratios compare like with like on a shared machine;
  sizes    float32 and int8 TFLite bytes of the file with 1, 2, 3 tasks
           (semseg, depth, normals).
Ratios are ResNet-18 / each model (> 1: faster or smaller than ResNet-18).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
from bench_deploy import _interleaved_ms, _mb  # noqa: E402

# name -> build_model arguments. The DeepLabv3+ head at 256 channels costs
# more than MobileNetV2 itself (its decoder runs two 3x3 convs at stride 4),
# so the phone model narrows it too.
MODELS = {
    "resnet18": {"backbone": "resnet18"},
    "mobilenet_v2": {"backbone": "mobilenet_v2"},
    "mobilenet_v2_head64": {"backbone": "mobilenet_v2", "head_channels": 64,
                            "low_level_channels": 24},
}
BACKBONES = tuple(MODELS)
# Timed tasks. Normals are left out: their int8 L2 normalization failed on
# this untrained (randomly initialized) network at 425x560 (LiteRT's int8
# DIV: "data[i] != zero_point", a norm quantized to zero).
TASKS = ("semseg", "depth")
SIZE_TASKS = ("semseg", "depth", "normals")  # The files sized, 1..3 tasks.
THREADS = 2
RESULTS = os.path.join(ROOT, "benchmarks", "results", "bench_mobile.json")


def _model(name, tasks, image_size, quick):
    from rmtl_tf import build_model  # pylint: disable=import-outside-toplevel
    from rmtl_tf.testing import perturb_task_weights  # pylint: disable=import-outside-toplevel
    kwargs = dict(MODELS[name])
    if quick:
        kwargs.update(width_multiplier=0.35 if "mobilenet" in name else 0.25,
                      head_channels=16, low_level_channels=8)
    model = build_model(tasks=list(tasks), num_classes={"semseg": 41},
                        image_size=image_size, **kwargs)
    for i, task in enumerate(tasks):  # Distinct task weights (see sizes).
        perturb_task_weights(model, task, i)
    return model


def _export(model, directory, image_size, calibration):
    from rmtl_tf.export import export_lib, quantize  # pylint: disable=import-outside-toplevel
    return export_lib.export(
        model, directory, quantize_modes=["int8"],
        calibration_images=quantize.calibration_images(image_size,
                                                       calibration))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="425x560,256x320",
                        help="image sizes timed, HxW,...")
    parser.add_argument("--counts", default="1,2,3",
                        help="task counts whose files are sized ('' none)")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args()
    from rmtl_tf.export import quantize, runners  # pylint: disable=import-outside-toplevel
    from rmtl_tf.models import parameter_counts  # pylint: disable=import-outside-toplevel
    sizes = (((64, 96), (64, 64)) if args.quick else tuple(
        tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")))
    counts = [int(c) for c in args.counts.split(",") if c]
    calibration = 2 if args.quick else 8
    rounds = 3 if args.quick else 15
    out = {"cpu": platform.processor() or platform.machine(),
           "cores": os.cpu_count(), "threads": THREADS,
           "date": time.strftime("%Y-%m-%d"), "image_sizes": sizes,
           "mb": {}, "ms": {}, "parameters": {}, "export_seconds": {}}
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        out["cpu"] = next((l.split(":", 1)[1].strip() for l in f
                           if l.startswith("model name")), out["cpu"])
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name in BACKBONES:
            out["mb"][name] = {}
            for count in counts:  # File sizes, at the last size.
                model = _model(name, SIZE_TASKS[:count], sizes[-1],
                               args.quick)
                result = _export(model, os.path.join(tmp, f"{name}{count}"),
                                 sizes[-1], calibration)
                out["mb"][name][count] = {
                    "float32": _mb(result["tflite"]),
                    "int8": _mb(result["tflite_files"]["int8"])}
                print(f"{name} x{count}: {out['mb'][name][count]}",
                      file=sys.stderr, flush=True)
            for size in sizes:  # The timed files: every timed task.
                model = _model(name, TASKS, size, args.quick)
                start = time.perf_counter()
                result = _export(model, os.path.join(
                    tmp, f"{name}_{size[0]}x{size[1]}"), size, calibration)
                out["export_seconds"][f"{name}_{size[0]}x{size[1]}"] = round(
                    time.perf_counter() - start, 1)
                files[(name, size)] = result["tflite_files"]["int8"]
            out["parameters"][name] = parameter_counts.parameter_summary(
                model)
        for size in sizes:
            key = f"{size[0]}x{size[1]}"
            image = quantize.calibration_images(size, 1, split="validation")
            out["ms"][key] = {}
            for task in TASKS:
                fns = {}
                for backbone in BACKBONES:
                    run = runners.TFLiteRunner(files[(backbone, size)],
                                               num_threads=THREADS)
                    fns[backbone] = lambda r=run, t=task: r(image, t)
                out["ms"][key][task] = _interleaved_ms(fns, rounds)
                print(f"{key} {task}: {out['ms'][key][task]}",
                      file=sys.stderr, flush=True)
    out["int8_speedup_over_resnet18"] = {
        key: {task: {name: round(row["resnet18"] / row[name], 2)
                     for name in BACKBONES} for task, row in rows.items()}
        for key, rows in out["ms"].items()}
    out["int8_size_ratio_resnet18_over"] = {
        name: {count: round(out["mb"]["resnet18"][count]["int8"]
                            / out["mb"][name][count]["int8"], 2)
               for count in out["mb"][name]} for name in BACKBONES}
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if not args.quick:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
