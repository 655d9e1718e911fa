"""Speed of the authors' RCM code (PyTorch) on THIS machine; prints JSON.

shared/paper_results.md quotes the authors' code measured on another 2-core
machine (Zen 5). To compare it with rmtl_tf fairly, run their code here, in
one run, next to benchmarks/bench_speed.py.

None of the authors' code is in this repository (licence, house rule): the
script imports it at run time from a checkout you make yourself:

  git clone https://github.com/menelaoskanakis/RCM /path/to/RCM
  pip install torch==2.13.0          # the CPU wheel on disk; nothing else
  python benchmarks/bench_authors_pytorch.py --rcm_dir /path/to/RCM
  python benchmarks/bench_authors_pytorch.py --rcm_dir /path/to/RCM --quick

(--quick: batch 2, 64x64, 2 timed steps; a smoke test, numbers meaningless.)
torchvision, scikit-image, datasets, ImageNet weights and the RI
decompositions are not needed.

What is measured, with their own classes and configs:
  * model: their `trainer.Trainer` built from their YAML config
    (configs/NYUD/semseg_RC_RI_NFF.yaml for RCM, semseg_single_task.yaml for
    the plain network): ResNet-18 + DeepLabv3+, output stride 16, RCM
    (frozen Ws bank + per-task 1x1 Wt with weight norm = NFF), per-task BN,
    per-task ASPP / low_level_reduce / concat / predict; semseg, 41 classes.
    Only change: `pretrained_architecture: None` (random init instead of
    downloading ImageNet weights and the RI decompositions). The weights'
    values do not change the work done; the parameter counts are the same.
  * training: `Trainer.update_model` (their loop: task-conditional forward,
    CrossEntropyLoss(ignore_index=255), backward, SGD lr 0.005 momentum 0.9
    wd 1e-4 with their per-task param groups, PolynomialLR step), model in
    train mode, synthetic batch (8, 3, 256, 320) and labels in [0, 41) with
    some 255s. Warm-up steps, then each timed step separately; images/s =
    batch * steps / total time.
  * inference: model.eval(), torch.no_grad(), batch 1, 425x560, one forward
    per task (their evaluate_model); warm-up, then median of the timed runs.
  * GFLOP of one inference forward (torch.utils.flop_counter, 2 per MAC),
    to check the model against paper_results.md (79.9 RCM, 75.9 plain).

Models (--models): rcm1 (RCM, 1 task), plain (their single-task network,
conv_layer Conv), rcm2 (RCM, semseg + depth, their task-conditional loop:
one forward/backward/step per task). Default: rcm1,plain.

Shims, applied here (their files are not edited):
  * utils/gray2rgb.py does `from skimage.color import grey2rgb` (image
    logging only): if scikit-image is absent, a stub `skimage.color` is put in
    sys.modules; if it is present without `grey2rgb`, the alias is added.
  * utils/prediction_decoding.py does `import scipy.misc` (saving
    predictions only): stubbed if this SciPy has no scipy.misc.
  * util.get_config calls yaml.load without a Loader (an error in PyYAML 6):
    not used; the configs are read with yaml.safe_load.
  * torch.nn.utils.weight_norm (used for NFF) is deprecated in PyTorch 2.x
    but still works (weight_g / weight_v); its FutureWarning is silenced.
Their construction logs go to stderr; stdout carries only the JSON.

Run it on a quiet machine: with 2 OpenMP threads, PyTorch slows down
several-fold when other processes hold the cores (a --quick step took 2.2 s
with 2 threads against 0.3 s with 1 at load average 5). The JSON records the
load average before and after the run.
"""

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
import types
import warnings

AUTHORS_ZEN5 = {  # shared/paper_results.md, authors' code on a Zen 5 2-core.
    "rcm1": {"params_m": 18.01, "trainable_m": 7.02, "frozen_m": 10.99,
             "train_images_per_s": 4.0, "infer_ms_per_image": [195, 200],
             "gflop_per_image": 79.9},
    "rcm2": {"params_m": 25.02, "trainable_m": 14.03, "frozen_m": 10.99,
             "train_images_per_s": 2.2, "infer_ms_per_image": [380, 395]},
    "plain": {"params_m": 16.61, "trainable_m": 16.61,
              "train_images_per_s": 4.1, "infer_ms_per_image": [180, 180],
              "gflop_per_image": 75.9},
}
CONFIGS = {"rcm1": "configs/NYUD/semseg_RC_RI_NFF.yaml",
           "rcm2": "configs/NYUD/semseg_RC_RI_NFF.yaml",
           "plain": "configs/NYUD/semseg_single_task.yaml"}
HEADS = ("layer5", "low_level_reduce", "concat", "predict")
NUM_CLASSES = 41


def _install_shims():
    """Compatibility shims for the authors' imports (see docstring)."""
    try:
        import skimage.color  # pylint: disable=import-outside-toplevel
        if not hasattr(skimage.color, "grey2rgb"):
            skimage.color.grey2rgb = skimage.color.gray2rgb
    except ImportError:
        import numpy as np  # pylint: disable=import-outside-toplevel
        skimage = types.ModuleType("skimage")
        color = types.ModuleType("skimage.color")
        color.grey2rgb = lambda img: np.stack([img] * 3, axis=-1)
        skimage.color = color
        sys.modules["skimage"] = skimage
        sys.modules["skimage.color"] = color
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import scipy.misc  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        sys.modules["scipy.misc"] = types.ModuleType("scipy.misc")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*weight_norm.*")


def _config(rcm_dir, name):
    import yaml  # pylint: disable=import-outside-toplevel
    with open(os.path.join(rcm_dir, CONFIGS[name]), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config["model"]["parameters"]["pretrained_architecture"] = None
    if name == "rcm2":
        # Second task as in their commented NYUD config lines (depth: 5.).
        config["dataset"]["tasks_weighting"] = {"semseg": 1.0, "depth": 5.0}
        config["loss"]["depth"] = {"loss_function": "L1MaskedLossDepth"}
    return config


def _count(model):
    total = trainable = trainable_enc = 0
    for pname, p in model.named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            if pname.split(".")[0] not in HEADS:
                trainable_enc += p.numel()
    return {"params": total, "trainable": trainable,
            "frozen": total - trainable,
            "trainable_encoder": trainable_enc,
            "trainable_decoder": trainable - trainable_enc,
            "params_m": round(total / 1e6, 2),
            "trainable_m": round(trainable / 1e6, 2),
            "frozen_m": round((total - trainable) / 1e6, 2)}


def _samples(torch, tasks, batch, hw, gen):
    h, w = hw
    labels = {}
    for task in tasks:
        if task == "semseg":
            lab = torch.randint(0, NUM_CLASSES, (batch, h, w), generator=gen)
            lab[torch.rand(batch, h, w, generator=gen) < 0.1] = 255
            labels[task] = lab
        elif task == "depth":
            dep = torch.rand(batch, h, w, generator=gen) * 10
            dep[torch.rand(batch, h, w, generator=gen) < 0.1] = 0
            labels[task] = dep
        else:
            raise ValueError(task)
    return {"image": torch.randn(batch, 3, h, w, generator=gen),
            "labels": labels}


def _train(trainer, samples, warmup, steps):
    for _ in range(warmup):
        trainer.update_model(samples)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer.update_model(samples)
        times.append(time.perf_counter() - t0)
    batch = samples["image"].shape[0]
    return {"train_images_per_s": round(batch * steps / sum(times), 3),
            "train_step_s": [round(t, 3) for t in times],
            "train_step_median_s": round(statistics.median(times), 3)}


def _infer(torch, trainer, image, warmup, iters):
    model = trainer.model
    model.eval()

    def run():
        out = {}
        for task in trainer.tasks:  # task-conditional, as evaluate_model
            out.update(model({"tensor": image, "task": task}))
        return out

    with torch.no_grad():
        for _ in range(warmup):
            run()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    ms = [1000 * t / image.shape[0] for t in times]
    return {"infer_ms_per_image_median": round(statistics.median(ms), 1),
            "infer_ms_per_image_min": round(min(ms), 1),
            "infer_ms": [round(m, 1) for m in ms]}


def _gflop(torch, trainer, image):
    from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=import-outside-toplevel
    model = trainer.model
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        for task in trainer.tasks:
            model({"tensor": image, "task": task})
    return round(counter.get_total_flops() / 1e9 / image.shape[0], 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rcm_dir", required=True,
                        help="checkout of github.com/menelaoskanakis/RCM")
    parser.add_argument("--models", default="rcm1,plain",
                        help="comma list from rcm1, plain, rcm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: batch 2, 64x64, 2 timed steps")
    parser.add_argument("--train_batch", type=int, default=8)
    parser.add_argument("--train_size", default="256x320")
    parser.add_argument("--infer_size", default="425x560")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5,
                        help="timed training steps")
    parser.add_argument("--infer_iters", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the train/infer measurements, "
                             "alternating models, to see drift")
    parser.add_argument("--no_flops", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.train_batch, args.train_size, args.infer_size = 2, "64x64", "64x64"
        args.warmup, args.steps, args.infer_iters = 1, 2, 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in CONFIGS:
            parser.error(f"unknown model {m!r}")
    train_hw = tuple(int(v) for v in args.train_size.split("x"))
    infer_hw = tuple(int(v) for v in args.infer_size.split("x"))
    rcm_dir = os.path.abspath(args.rcm_dir)
    if not os.path.isfile(os.path.join(rcm_dir, "modules", "deeplab_resnet.py")):
        parser.error(f"{rcm_dir} is not a checkout of menelaoskanakis/RCM")

    load_before = [round(v, 2) for v in os.getloadavg()]
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before} before the run; with 2 "
              "OpenMP threads PyTorch slows down several-fold on a busy "
              "machine", file=sys.stderr)
    _install_shims()
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(args.threads)
    sys.path.insert(0, rcm_dir)
    with contextlib.redirect_stdout(sys.stderr):
        from trainer import Trainer  # pylint: disable=import-outside-toplevel,import-error

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    trainers, results = {}, {}
    for name in models:
        with contextlib.redirect_stdout(sys.stderr):
            trainers[name] = Trainer(_config(rcm_dir, name))
        results[name] = {"tasks": list(trainers[name].tasks),
                         "config": CONFIGS[name],
                         "task_conditional": trainers[name].task_conditional,
                         **_count(trainers[name].model)}

    image = torch.randn(1, 3, *infer_hw, generator=gen)
    for rnd in range(args.rounds):
        for name in models:
            trainer = trainers[name]
            samples = _samples(torch, trainer.tasks, args.train_batch,
                               train_hw, gen)
            with contextlib.redirect_stdout(sys.stderr):
                res = _train(trainer, samples, args.warmup, args.steps)
                res.update(_infer(torch, trainer, image, args.warmup,
                                  args.infer_iters))
            if args.rounds == 1:
                results[name].update(res)
            else:
                results[name].setdefault("rounds", []).append(res)
            print(f"[round {rnd}] {name}: {res['train_images_per_s']} img/s "
                  f"train, {res['infer_ms_per_image_median']} ms infer",
                  file=sys.stderr)
    if not args.no_flops:
        for name in models:
            results[name]["gflop_per_image"] = _gflop(torch, trainers[name],
                                                      image)

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f
                       if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(json.dumps({
        "what": "authors' RCM PyTorch code (menelaoskanakis/RCM), this machine",
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "threads": torch.get_num_threads(),
        "cpu": cpu,
        "quick": args.quick,
        "train": {"batch": args.train_batch, "size": list(train_hw),
                  "warmup": args.warmup, "steps": args.steps,
                  "optimizer": "their SGD lr 0.005 momentum 0.9 wd 1e-4"},
        "infer": {"batch": 1, "size": list(infer_hw), "warmup": args.warmup,
                  "iters": args.infer_iters},
        "loadavg_1_5_15_before": load_before,
        "loadavg_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
        "peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "models": results,
        "reference_zen5": {m: AUTHORS_ZEN5[m] for m in models},
    }, indent=1))


if __name__ == "__main__":
    main()
