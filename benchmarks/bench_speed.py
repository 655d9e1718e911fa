"""Speed, size and memory of rmtl_tf on this machine; prints JSON.

Compares variants in one run, as ratios, since shared machines are noisy.
Each measurement runs in its own subprocess so peak memory (ru_maxrss) is
that measurement's own.

  python benchmarks/bench_speed.py                  # everything (~15 min)
  python benchmarks/bench_speed.py --parts=train    # one part
  python benchmarks/bench_speed.py --quick          # tiny shapes, smoke test

Parts:
  train   training images/s, ResNet-18 DeepLabv3+ RCM (NFF), 1 task
          (semseg, 41 classes), batch 8, 256x320, Model.fit: the default
          (`compute_mode="auto"`: factorized when training), fused,
          mixed_bfloat16, and the ablation `keras_ops` (Keras's
          BatchNormalization and dilated-conv path, fused mode: this
          library before `FusedBatchNormalization`/`AtrousConv2D`); peak
          memory. The authors' PyTorch code on the same machine:
          benchmarks/bench_authors_pytorch.py (run it right after).
  xla     the same with jit_compile=True (slow on CPU: about 12 s/step).
  infer   per-task latency at batch 1, 425x560: Keras (tf.function),
          SavedModel signature, TFLite signature (XNNPACK, 2 threads), the
          `export.py --precision=bfloat16` SavedModel, and the float32
          SavedModel under TensorFlow's oneDNN bfloat16 graph rewrite
          (`auto_mixed_precision_onednn_bfloat16`; AMX/AVX512-BF16 CPUs).
  onednn  train (auto) and infer with TensorFlow's oneDNN kernels on and
          off (TF_ENABLE_ONEDNN_OPTS), whatever this machine's default.
  sizes   export sizes (SavedModel variables, TFLite) for 1..3 tasks against
          the bank's size.
Reference (authors' PyTorch code on this kind of machine, shared/
paper_results.md): 4.0 images/s training, 195-200 ms per image inference.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
AUTHORS = {"train_images_per_s": 4.0, "infer_ms_per_image": 197.5}
TASKS3 = ("semseg", "depth", "normals")


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(tasks, image_size, quick, compute_mode="auto"):
    from rmtl_tf import build_model  # pylint: disable=import-outside-toplevel
    if quick:
        return build_model("resnet_tiny", tasks, num_classes={"semseg": 41},
                           head_channels=16, low_level_channels=8,
                           image_size=image_size, compute_mode=compute_mode)
    return build_model("resnet18", tasks, num_classes={"semseg": 41},
                       image_size=image_size, compute_mode=compute_mode)


def _keras_ops_ablation():
    """Builds models with Keras's own BatchNormalization and dilated convs
    (space-to-batch), as this library did before its own layers."""
    import keras  # pylint: disable=import-outside-toplevel
    from rmtl_tf.layers import reparam_conv2d  # pylint: disable=import-outside-toplevel
    from rmtl_tf.models import layer_factory  # pylint: disable=import-outside-toplevel
    layer_factory.FusedBatchNormalization = keras.layers.BatchNormalization
    layer_factory.AtrousConv2D = keras.layers.Conv2D

    def keras_conv(inputs, kernel, strides, padding, dilation_rate):
        if isinstance(padding, tuple):
            import tensorflow as tf  # pylint: disable=import-outside-toplevel
            (ph, pw) = padding
            return tf.nn.conv2d(
                inputs, kernel, strides=(1, *strides, 1),
                padding=[[0, 0], [ph, ph], [pw, pw], [0, 0]])
        return keras.ops.conv(inputs, kernel, strides=strides,
                              padding=padding, dilation_rate=dilation_rate)
    # `bank_conv` lives in layers/conv_ops.py; ReparamConv2D looks it up as a
    # global of reparam_conv2d at call time, so this replaces it there.
    reparam_conv2d.bank_conv = keras_conv


def bench_train(jit, compute_mode, quick, policy="float32", ablation=None):
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from rmtl_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel
    from rmtl_tf.tasks import registry  # pylint: disable=import-outside-toplevel
    if ablation == "keras_ops":
        _keras_ops_ablation()
    batch, size = (2, (64, 64)) if quick else (8, (256, 320))
    keras.mixed_precision.set_global_policy(policy)
    model = _model(["semseg"], size, quick, compute_mode)
    model.set_trainable_tasks(["semseg"])
    task_model = model.task_model(["semseg"])
    spec = registry.get_task("semseg")
    task_model.compile(optimizer=keras.optimizers.SGD(0.005, momentum=0.9,
                                                      weight_decay=1e-4),
                       loss={"semseg": spec.loss}, jit_compile=jit)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, *size, 3)).astype(np.float32)
    labels = rng.integers(0, 41, (batch, *size)).astype(np.int32)
    # As train.py's pipeline: tf.data autotuning off, else each fit call
    # waits for the autotuner's sleep when it returns (input_pipeline).
    ds = input_pipeline.without_autotune(tf.data.Dataset.from_tensors(
        (images, {"semseg": labels})).repeat())
    warmup, steps = (2, 3) if quick else (3, 10)
    task_model.fit(ds, epochs=1, steps_per_epoch=warmup, verbose=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    task_model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return {"images_per_s": round(steps * batch / seconds, 3),
            "ms_per_step": round(1000 * seconds / steps, 1),
            "cpu_ms_per_step": round(1000 * cpu / steps, 1),
            "batch": batch, "image_size": list(size),
            "peak_memory_mb": round(_peak_mb(), 1)}


def _time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return round(1000 * times[len(times) // 2], 2)


def bench_infer(quick, precision="float32"):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from rmtl_tf.export import export_lib, runners  # pylint: disable=import-outside-toplevel
    if precision == "onednn_bfloat16":
        # Grappler rewrites every graph run in this process to bfloat16
        # compute (variables stay float32): what a server can switch on.
        tf.config.optimizer.set_experimental_options(
            {"auto_mixed_precision_onednn_bfloat16": True})
    size = (64, 64) if quick else (425, 560)
    repeats = 3 if quick else 10
    model = _model(list(TASKS3[:2]), size, quick)
    image = np.random.default_rng(0).uniform(
        0, 255, (1, *size, 3)).astype(np.float32)
    result = {"image_size": list(size), "batch": 1, "precision": precision,
              "ms_per_image": {}}
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_lib.export(model, tmp)
        saved = tf.saved_model.load(exported["saved_model"])
        tfl = runners.TFLiteRunner(exported["tflite"], num_threads=2)
        if precision != "float32":
            tfl = None  # TFLite does not run the grappler rewrite.
        for task in model.tasks:
            sub = model.task_model([task])
            keras_fn = tf.function(lambda x, m=sub: m(x, training=False),
                                   jit_compile=False)
            sig = saved.signatures[task]
            x = tf.constant(image)
            result["ms_per_image"][task] = {
                "keras_tf_function": _time(lambda: keras_fn(x), repeats),
                "saved_model": _time(lambda: sig(image=x), repeats),
            }
            if tfl is not None:
                result["ms_per_image"][task]["tflite"] = _time(
                    lambda: tfl(image, task), repeats)
        if precision == "float32":
            bf16 = export_lib.export(model, tmp, model_name="bf16",
                                     tflite=False, precision="bfloat16")
            bf16_saved = tf.saved_model.load(bf16["saved_model"])
            for task in model.tasks:
                sig = bf16_saved.signatures[task]
                result["ms_per_image"][task]["saved_model_bfloat16"] = _time(
                    lambda: sig(image=tf.constant(image)), repeats)
        result["ms_per_image"]["serving_default_all_tasks"] = {
            "saved_model": _time(
                lambda: saved.signatures["serving_default"](
                    image=tf.constant(image)), repeats)}
        if tfl is not None:
            result["ms_per_image"]["serving_default_all_tasks"]["tflite"] = (
                _time(lambda: tfl(image, "serving_default"), repeats))
    result["peak_memory_mb"] = round(_peak_mb(), 1)
    return result


def bench_sizes(quick):
    import numpy as np  # pylint: disable=import-outside-toplevel
    from rmtl_tf import add_task  # pylint: disable=import-outside-toplevel
    from rmtl_tf.export import export_lib  # pylint: disable=import-outside-toplevel
    size = (64, 64)
    rng = np.random.default_rng(0)
    model = _model([TASKS3[0]], size, quick)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in range(1, len(TASKS3) + 1):
            if t > 1:
                model = add_task(model, TASKS3[t - 1])
            # Distinct non-identity modulators so no buffers are merged.
            for layer in model.reparam_layers():
                for v in layer.task_variables(TASKS3[t - 1]):
                    v.assign(rng.normal(size=v.shape).astype("float32"))
            out = export_lib.export(model, tmp, model_name=f"t{t}")
            variables = os.path.join(out["saved_model"], "variables")
            rows.append({
                "tasks": t,
                "saved_model_variables_mb": round(sum(
                    os.path.getsize(os.path.join(variables, f))
                    for f in os.listdir(variables)) / 2**20, 2),
                "tflite_mb": round(os.path.getsize(out["tflite"]) / 2**20,
                                   2),
            })
    bank = sum(int(np.prod(v.shape)) for v in model.bank_variables())
    per_task = {t: sum(int(np.prod(v.shape)) for v in model.task_variables(t))
                for t in model.tasks}
    return {"bank_mb": round(4 * bank / 2**20, 2),
            "per_task_mb": {t: round(4 * n / 2**20, 2)
                            for t, n in per_task.items()},
            "exports": rows}


PARTS = {
    "train": [("train_float32_auto", ["train", "0", "auto"]),
              ("train_float32_fused", ["train", "0", "fused"]),
              ("train_float32_keras_ops",
               ["train", "0", "fused", "float32", "keras_ops"]),
              ("train_bf16_auto", ["train", "0", "auto", "mixed_bfloat16"])],
    "xla": [("train_xla_fused", ["train", "1", "fused"])],
    "infer": [("infer", ["infer", "float32"]),
              ("infer_onednn_bf16", ["infer", "onednn_bfloat16"])],
    "sizes": [("sizes", ["sizes"])],
    # TensorFlow turns oneDNN on by default only on x86 CPUs with AVX-512
    # and newer; elsewhere (e.g. AVX2-only CPUs) its Eigen kernels run.
    # Both, whatever this machine's default, in the same run.
    "onednn": [("train_float32_auto_onednn_on", ["train", "0", "auto"],
                {"TF_ENABLE_ONEDNN_OPTS": "1"}),
               ("train_float32_auto_onednn_off", ["train", "0", "auto"],
                {"TF_ENABLE_ONEDNN_OPTS": "0"}),
               ("infer_onednn_on", ["infer", "float32"],
                {"TF_ENABLE_ONEDNN_OPTS": "1"}),
               ("infer_onednn_off", ["infer", "float32"],
                {"TF_ENABLE_ONEDNN_OPTS": "0"})],
}


def _onednn_enabled():
    """Whether TensorFlow runs its oneDNN kernels in this process."""
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=import-outside-toplevel
    return bool(_pywrap_util_port.IsMklEnabled())


def _child(args, quick):
    kind = args[0]
    if kind == "train":
        return bench_train(args[1] == "1", args[2], quick, *args[3:])
    if kind == "infer":
        return bench_infer(quick, args[1])
    return bench_sizes(quick)


def _ratios(report, authors, quick):
    speeds = {k: v["images_per_s"] for k, v in report.items()
              if k.startswith("train_") and "images_per_s" in v}
    ratios = {}
    base = speeds.get("train_float32_auto")
    for name, value in speeds.items():
        if base and name != "train_float32_auto":
            ratios[f"{name}_vs_float32_auto"] = round(value / base, 3)
        if not quick:  # The authors' figures are for the full size.
            ratios[f"{name}_vs_authors"] = round(
                value / authors["train_images_per_s"], 3)
    infer = report.get("infer", {}).get("ms_per_image", {})
    bf16 = report.get("infer_onednn_bf16", {}).get("ms_per_image", {})
    for task, times in infer.items():
        for kind, ms in times.items():
            if not quick:
                ratios[f"infer_{task}_{kind}_vs_authors"] = round(
                    authors["infer_ms_per_image"] / ms, 3)
        if "saved_model" in bf16.get(task, {}):
            ratios[f"infer_{task}_saved_model_bf16_speedup"] = round(
                times["saved_model"] / bf16[task]["saved_model"], 3)
    for mode in ("on", "off"):
        times = report.get(f"infer_onednn_{mode}", {}).get("ms_per_image", {})
        for task, by_kind in times.items():
            for kind, ms in by_kind.items():
                if not quick:
                    ratios[f"infer_onednn_{mode}_{task}_{kind}_vs_authors"] = (
                        round(authors["infer_ms_per_image"] / ms, 3))
    return ratios


def _authors_reference(path):
    """The authors' figures measured on this machine by
    bench_authors_pytorch.py (`path`), else shared/paper_results.md's."""
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        rcm = data.get("models", {}).get("rcm1", {})
        if "train_images_per_s" in rcm:
            return {"train_images_per_s": rcm["train_images_per_s"],
                    "infer_ms_per_image": rcm["infer_ms_per_image_median"],
                    "source": os.path.relpath(path, ROOT)}
    return dict(AUTHORS, source="shared/paper_results.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="train,infer,sizes")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--authors_json",
        default=os.path.join(ROOT, "benchmarks", "results",
                             "bench_authors.json"),
        help="JSON written by bench_authors_pytorch.py on this machine "
             "(else shared/paper_results.md's figures are the reference).")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _child(args.child, args.quick)
        result["onednn"] = _onednn_enabled()
        print(json.dumps(result))
        return
    authors = _authors_reference(args.authors_json)
    report = {"cpu_count": os.cpu_count(), "quick": args.quick,
              "load_average_at_start": list(os.getloadavg()),
              "authors_pytorch": authors}
    for part in args.parts.split(","):
        for name, child, *env in PARTS[part]:
            cmd = [sys.executable, __file__, "--child", *child]
            if args.quick:
                cmd.append("--quick")
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  check=False,
                                  env={**os.environ, **(env[0] if env else {})})
            if proc.returncode:
                report[name] = {"error": proc.stderr[-2000:]}
                continue
            report[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{name}: {report[name]}", file=sys.stderr)
    report["ratios"] = _ratios(report, authors, args.quick)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
