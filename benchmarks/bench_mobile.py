"""MobileNetV2 against ResNet-18 on the phone path: int8 TFLite latency and
file sizes, in one run; prints and writes JSON.

  python benchmarks/bench_mobile.py            # ~20 min on 2 cores
  python benchmarks/bench_mobile.py --quick    # tiny shapes, smoke test

For each backbone (DeepLabv3+ RCM, NFF, width 1.0; semseg 41 classes,
depth, normals), the model is exported as export.py does with
`--quantize=int8` (calibrated on synthetic images at the served size), and:
  latency  per task, batch 1, 2 threads (XNNPACK), median ms of the int8
           multi-task file's task signature, at 425x560 (NYUD) and 256x320
           (phone-sized); every file timed in the same interleaved rounds,
           so the ratios compare like with like on a shared machine;
  sizes    float32 and int8 TFLite bytes of the file with 1, 2, 3 tasks.
Ratios are ResNet-18 / MobileNetV2 (> 1: MobileNetV2 faster or smaller).
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

BACKBONES = ("resnet18", "mobilenet_v2")
TASKS = ("semseg", "depth", "normals")
SIZES = ((425, 560), (256, 320))
THREADS = 2
RESULTS = os.path.join(ROOT, "benchmarks", "results", "bench_mobile.json")


def _model(backbone, tasks, image_size, quick):
    from rmtl_tf import build_model  # pylint: disable=import-outside-toplevel
    from rmtl_tf.testing import perturb_task_weights  # pylint: disable=import-outside-toplevel
    kwargs = ({"width_multiplier": 0.35 if backbone == "mobilenet_v2"
               else 0.25, "head_channels": 16, "low_level_channels": 8}
              if quick else {})
    model = build_model(backbone, list(tasks), num_classes={"semseg": 41},
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
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args()
    from rmtl_tf.export import quantize, runners  # pylint: disable=import-outside-toplevel
    from rmtl_tf.models import parameter_counts  # pylint: disable=import-outside-toplevel
    sizes = ((64, 96), (64, 64)) if args.quick else SIZES
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
        for backbone in BACKBONES:
            out["mb"][backbone] = {}
            for count in range(1, len(TASKS) + 1):
                size = sizes[-1]
                model = _model(backbone, TASKS[:count], size, args.quick)
                start = time.perf_counter()
                result = _export(model, os.path.join(tmp, f"{backbone}{count}"),
                                 size, calibration)
                out["export_seconds"][f"{backbone}_{count}"] = round(
                    time.perf_counter() - start, 1)
                out["mb"][backbone][count] = {
                    "float32": _mb(result["tflite"]),
                    "int8": _mb(result["tflite_files"]["int8"])}
                print(f"{backbone} x{count}: {out['mb'][backbone][count]}",
                      file=sys.stderr, flush=True)
            out["parameters"][backbone] = parameter_counts.parameter_summary(
                model)
            files[(backbone, sizes[-1])] = result["tflite_files"]["int8"]
            model = _model(backbone, TASKS, sizes[0], args.quick)
            result = _export(model, os.path.join(tmp, f"{backbone}_big"),
                             sizes[0], calibration)
            files[(backbone, sizes[0])] = result["tflite_files"]["int8"]
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
    out["speedup_int8_resnet18_over_mobilenet_v2"] = {
        key: {task: round(row["resnet18"] / row["mobilenet_v2"], 2)
              for task, row in rows.items()}
        for key, rows in out["ms"].items()}
    out["size_ratio_int8_resnet18_over_mobilenet_v2"] = {
        count: round(out["mb"]["resnet18"][count]["int8"]
                     / out["mb"]["mobilenet_v2"][count]["int8"], 2)
        for count in out["mb"]["resnet18"]}
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if not args.quick:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
