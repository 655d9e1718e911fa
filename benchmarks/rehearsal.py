"""A full-size rehearsal of the real-data runs; prints JSON.

Before days of training on NYUD-MT or PASCAL-Context, run the real commands
once at the real image counts and sizes, on stand-ins written in the
authors' exact layout (`rmtl_tf.data.standins`: synthetic scenes as NYUD_MT
/ PASCAL_MT), and record per stage the wall time and the peak resident
memory of its process:

  write     python -m rmtl_tf.cli.standins (795 / 654 NYUD images at
            480x640; 4,998 / 5,105 PASCAL-Context-sized images)
  prepare   python -m rmtl_tf.cli.prepare (the TFDS builder)
  train     python train.py --flagfile=configs/<config>.cfg: every task of
            the config for --train_steps steps at the paper's crop, RI on
            64 training images, then the end-of-training report over every
            validation image at full resolution
  evaluate  python -m rmtl_tf.evaluate: every validation image at full
            resolution, every task
  export    python export.py --quantize=int8 --dynamic_image_size: the
            SavedModel and TFLite files, int8 calibrated on the training
            split
  train_mixed_bfloat16 (with --precision_steps=N) train.py again, semseg
            alone for N steps with --mixed_precision=mixed_bfloat16, at
            the same crop from the same bank: its median step time
            beside the float32 one of `train` ("precision" in the JSON)

The bank is a randomly initialized ResNet (`--bank=npz:`; the ImageNet
checkpoint cannot be fetched offline and does not change time or memory).

  python benchmarks/rehearsal.py --work_dir=/tmp/rehearsal   # hours
  python benchmarks/rehearsal.py --work_dir=/tmp/r --configs=nyud \\
      --train_steps=12 --output=benchmarks/results/rehearsal_nyud.json
  # CI size (tests/cli/test_rehearsal.py): a few 480x640 images, tiny net
  python benchmarks/rehearsal.py --work_dir=/tmp/r --quick

Peak memory is `ru_maxrss` of each stage's process (os.wait4), so stages
do not mask each other. Each finished stage is recorded in
`<work_dir>/<config>/stages/<stage>.json`; run the same command again after
an interruption and the recorded stages are reported, not run again
(`--restart` runs every stage anew).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Real counts and sizes (NYUD-MT, PASCAL-Context MT).
FULL = {
    "nyud": {"num_train": 795, "num_val": 654, "size": "480,640"},
    "pascal_context": {"num_train": 4998, "num_val": 5105, "size": None},
}
QUICK_COUNTS = {"num_train": 3, "num_val": 2}
# A tiny network and batch for --quick; the images keep the real size.
QUICK_FLAGS = ["--backbone=resnet_tiny", "--head_channels=16",
               "--low_level_channels=8", "--batch_size=2", "--nojit_compile",
               "--tasks=semseg"]
GIB = 1 << 30


def _cpu():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


SAMPLE_SECONDS = 2.0


def _rss_gib(pid):
    """Resident memory of process `pid` now (GiB), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) * 1024 / GIB, 3)
    except OSError:
        pass
    return None


def _thin(samples, keep=40):
    """At most `keep` (seconds, GiB) samples, evenly spread, the peak kept."""
    if len(samples) <= keep:
        return samples
    step = len(samples) / keep
    chosen = {int(i * step) for i in range(keep)} | {len(samples) - 1}
    chosen.add(max(range(len(samples)), key=lambda i: samples[i][1]))
    return [samples[i] for i in sorted(chosen)]


def run_stage(name, command, log, record=None):
    """Runs `command`; returns its wall time, peak RSS and exit code.

    With `record` (a JSON path): a stage recorded there by an earlier,
    successful run with the same command is returned without running it
    again; a new success is recorded there (written atomically).
    """
    if record and os.path.isfile(record):
        with open(record, encoding="utf-8") as f:
            done = json.load(f)
        if done.get("command") == command and done.get("returncode") == 0:
            done["resumed"] = True
            print(json.dumps(done), file=sys.stderr, flush=True)
            return done
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    started = time.time()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        samples = []
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = _rss_gib(proc.pid)
            if rss is not None:
                samples.append((round(time.time() - started, 1), rss))
            time.sleep(SAMPLE_SECONDS)
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {"stage": name, "seconds": round(time.time() - started, 1),
              "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 3),
              "returncode": proc.returncode, "log": log,
              "rss_gib_over_time": _thin(samples),
              "command": command,
              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(json.dumps(result), file=sys.stderr, flush=True)
    if proc.returncode:
        with open(log, encoding="utf-8") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"Stage {name} failed ({command}):\n{tail}")
    if record:
        os.makedirs(os.path.dirname(record), exist_ok=True)
        with open(record + ".tmp", "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        os.replace(record + ".tmp", record)
    return result


def random_bank(path, backbone):
    """A randomly initialized plain backbone's weights, as a bank file."""
    from rmtl_tf.models import bank  # pylint: disable=import-outside-toplevel
    if not os.path.isfile(path):
        bank.save_bank(path, bank.weights_from_plain(
            bank.build_plain_backbone(backbone)))
    return path


def rehearse(config, work_dir, train_steps, quick=False, counts=None,
             calibration_examples=32, restart=False, eval_examples=None,
             precision_steps=0):
    """Runs every stage of `config` (nyud or pascal_context) in
    `work_dir/<config>`; returns the JSON record. Stages recorded by an
    earlier run of the same commands are not run again unless `restart`.
    `eval_examples`: the report and evaluation score only the first N
    validation images (a partial run; all are written and prepared).
    `precision_steps`: also train semseg that many steps in
    mixed_bfloat16 (stage "train_mixed_bfloat16")."""
    counts = dict(FULL[config], **(QUICK_COUNTS if quick else {}),
                  **(counts or {}))
    scored = min(eval_examples or counts["num_val"], counts["num_val"])
    base = os.path.join(work_dir, config)
    manual, tfds_dir = os.path.join(base, "manual"), os.path.join(base, "tfds")
    model_dir, export_dir = (os.path.join(base, "model"),
                             os.path.join(base, "export"))
    logs = os.path.join(base, "logs")
    extra = QUICK_FLAGS if quick else []
    backbone = "resnet_tiny" if quick else "resnet18"
    bank_file = random_bank(os.path.join(base, "random_bank.npz"), backbone)
    py = sys.executable
    write = [py, "-m", "rmtl_tf.cli.standins", f"--dataset={config}",
             f"--out={manual}", f"--num_train={counts['num_train']}",
             f"--num_val={counts['num_val']}"]
    if counts["size"]:
        write.append(f"--size={counts['size']}")
    data_flags = [f"--flagfile=configs/{config}.cfg",
                  f"--manual_dir={manual}", f"--data_dir={tfds_dir}",
                  f"--model_dir={model_dir}",
                  f"--eval_examples={scored}",
                  f"--train_examples={counts['num_train']}", *extra]
    stages = [
        ("write", write),
        ("prepare", [py, "-m", "rmtl_tf.cli.prepare", f"--dataset={config}",
                     f"--manual_dir={manual}", f"--data_dir={tfds_dir}"]),
        ("train", [py, "train.py", *data_flags, f"--bank=npz:{bank_file}",
                   f"--train_steps={train_steps}",
                   f"--checkpoint_every={train_steps}"]),
        ("evaluate", [py, "-m", "rmtl_tf.evaluate", *data_flags]),
        ("export", [py, "export.py", f"--model_dir={model_dir}",
                    f"--export_dir={export_dir}", "--quantize=int8",
                    f"--calibration_examples={calibration_examples}",
                    "--dynamic_image_size", "--overwrite", "--version=1"]),
    ]
    bf16_dir = os.path.join(base, "model_mixed_bfloat16")
    if precision_steps:
        stages.append(("train_mixed_bfloat16", [
            py, "train.py", *data_flags, f"--model_dir={bf16_dir}",
            "--tasks=semseg", "--eval_examples=1", f"--bank=npz:{bank_file}",
            f"--train_steps={precision_steps}",
            f"--checkpoint_every={precision_steps}",
            "--mixed_precision=mixed_bfloat16"]))
    recorded = os.path.join(base, "stages")
    if restart and os.path.isdir(recorded):
        for name in os.listdir(recorded):
            os.remove(os.path.join(recorded, name))
    results = [run_stage(name, command, os.path.join(logs, f"{name}.log"),
                         record=os.path.join(recorded, f"{name}.json"))
               for name, command in stages]
    with open(os.path.join(model_dir, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    steps = {task: {"median_step_seconds": s.get("median_step_seconds"),
                    "images_per_second": s.get("images_per_second")}
             for task, s in summary["tasks"].items()}
    first = next(iter(summary["tasks"].values()))["config"]
    precision = None
    if precision_steps:
        with open(os.path.join(bf16_dir, "summary.json"),
                  encoding="utf-8") as f:
            bf16 = json.load(f)["tasks"]["semseg"]
        fp32_s = steps["semseg"]["median_step_seconds"]
        bf16_s = bf16["median_step_seconds"]
        precision = {
            "task": "semseg", "float32_median_step_seconds": fp32_s,
            "float32_steps": summary["tasks"]["semseg"]["steps"],
            "mixed_bfloat16_median_step_seconds": bf16_s,
            "mixed_bfloat16_steps": bf16["steps"],
            "mixed_bfloat16_over_float32": round(bf16_s / fp32_s, 3)}
    return {"config": config, "quick": quick, **counts,
            "eval_examples": scored,
            "train_steps": train_steps, "backbone": first["backbone"],
            "image_size": first["image_size"],
            "batch_size": first["batch_size"], "stages": results,
            "training_steps": steps, "precision": precision,
            "peak_rss_gib": max(r["peak_rss_gib"] for r in results)}


def markdown(records):
    rows = ["| config | stage | wall time | peak memory |",
            "|---|---|---|---|"]
    for record in records:
        scored = record.get("eval_examples", record["num_val"])
        partial = (f" ({scored} of {record['num_val']} validation images)"
                   if scored < record["num_val"] else "")
        for stage in record["stages"]:
            minutes = stage["seconds"] / 60
            label = stage["stage"] + (
                partial if stage["stage"] in ("train", "evaluate") else "")
            rows.append(f"| {record['config']} | {label} | "
                        f"{minutes:.1f} min | "
                        f"{stage['peak_rss_gib']:.2f} GiB |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--configs", default="nyud,pascal_context")
    parser.add_argument("--train_steps", type=int, default=24,
                        help="steps per task")
    parser.add_argument("--quick", action="store_true",
                        help="CI size: 3 train / 2 val images at the real "
                        "size, a tiny network")
    parser.add_argument("--num_val", type=int, default=None,
                        help="override the validation count (partial runs)")
    parser.add_argument("--eval_examples", type=int, default=None,
                        help="score only the first N validation images in "
                        "the report and evaluation (partial runs; every "
                        "image is still written and prepared)")
    parser.add_argument("--precision_steps", type=int, default=0,
                        help="also train semseg this many steps with "
                        "--mixed_precision=mixed_bfloat16 (median step time "
                        "beside float32's)")
    parser.add_argument("--output", default=None, help="also write JSON here")
    parser.add_argument("--restart", action="store_true",
                        help="run every stage again, even those an earlier "
                        "run recorded")
    args = parser.parse_args()
    counts = {"num_val": args.num_val} if args.num_val else None
    records = [rehearse(c, args.work_dir, args.train_steps, args.quick,
                        counts, calibration_examples=2 if args.quick else 32,
                        restart=args.restart,
                        eval_examples=args.eval_examples,
                        precision_steps=args.precision_steps)
               for c in args.configs.split(",")]
    report = {"cpu": _cpu(), "cores": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d"), "records": records,
              "table": markdown(records)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
