"""Incremental multi-task training: one task at a time on a frozen bank.

`train(config)` is what `train.py` runs. The model directory holds:

- `model.keras`: the model after the last completed task;
- `bank.npz`: the pretrained weights (bank, and the BatchNorm/shortcut
  weights every new task starts from);
- `checkpoints/<task>/`: atomic checkpoints of the task being trained, so a
  killed run resumes where it stopped;
- `logs/<task>/`: TensorBoard scalars and images;
- `summary.json`: what was trained, with which settings, and the metrics.
"""

import math
import os
import shutil
import sys
import time
import zipfile

import keras
import numpy as np

from rmtl_tf.data import datasets, image_folder
from rmtl_tf.evaluation import baseline_report
from rmtl_tf.models import bank as bank_lib
from rmtl_tf.models import response_init
from rmtl_tf.models.multitask_model import MultiTaskModel, add_task
from rmtl_tf.tasks import registry
from rmtl_tf.training import checkpoint, distribute, pretrain_lib
from rmtl_tf.training.callbacks import (CheckpointCallback, ImageSummary,
                                        NaNGuard, StepTimer, StopAtStep)

MODEL_FILE = "model.keras"
BANK_FILE = "bank.npz"
SUMMARY_FILE = "summary.json"
RI_FILE = "ri.npz"
RI_EXAMPLES = 64  # Images whose responses response initialization uses.


def load_model(model_dir):
    """Loads `model_dir/model.keras`, with a clear error when missing."""
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No trained model in model_dir={model_dir!r} (expected "
            f"{path!r}). Train one first with train.py --model_dir=...")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a .keras file (not a zip archive): damaged or "
            "truncated. Restore it, or retrain into a new --model_dir.")
    # safe_mode: a saved file never brings code (no lambdas are loaded).
    return keras.models.load_model(path, safe_mode=True)


def check_architecture(model, config):
    """Raises with a diff when `model` was built with other settings."""
    found = model.get_config()
    diff = {k: (found[k], v) for k, v in config.architecture().items()
            if found[k] != v}
    if diff:
        lines = ", ".join(f"{k}: model has {a!r}, flags say {b!r}"
                          for k, (a, b) in sorted(diff.items()))
        raise ValueError(
            f"The model in {config.model_dir!r} has another architecture "
            f"than the flags ({lines}). Use the flags it was trained with or "
            "a new --model_dir.")


def _check_bank_source(config):
    """A model directory keeps the bank its first task was trained on: a run
    asking for another one is refused instead of silently ignored."""
    summary = checkpoint.read_json(
        os.path.join(config.model_dir, SUMMARY_FILE)) or {}
    sources = {t: s.get("config", {}).get("bank")
               for t, s in summary.get("tasks", {}).items()}
    other = {t: b for t, b in sources.items()
             if b is not None and b != config.bank}
    if other:
        task, bank = sorted(other.items())[0]
        raise ValueError(
            f"--bank={config.bank} conflicts with model_dir="
            f"{config.model_dir!r}: its task {task!r} was trained on "
            f"--bank={bank}, and every task of a model directory shares one "
            f"bank. Pass --bank={bank} to add tasks, or use a new "
            "--model_dir.")


def _bank_weights(config, log):
    _check_bank_source(config)
    path = os.path.join(config.model_dir, BANK_FILE)
    if os.path.isfile(path):
        return bank_lib.load_npz(path)
    if config.bank == "random":
        return None
    if config.bank == "pretrain":
        weights = pretrain_lib.pretrain(config, log=log)
    else:
        weights = bank_lib.load_bank_weights(config.bank, config.backbone)
    bank_lib.save_bank(path, weights)
    return weights


def _response_init(config, weights, log, model=None):
    """The PCA of the pretrained convs' responses, once per model directory
    (stored in `ri.npz`): the authors' decompositions with
    `--ri_decompositions`, else computed on the images of `--ri_images` or
    on training images."""
    path = os.path.join(config.model_dir, RI_FILE)
    if os.path.isfile(path):
        return bank_lib.load_npz(path, what="Response initialization")
    if weights is None:
        raise ValueError("Response initialization (--variant="
                         f"{config.variant}) needs pretrained weights; "
                         "received --bank=random.")
    if config.ri_decompositions:
        ri = response_init.load_decompositions(
            config.ri_decompositions,
            response_init.reparameterized_layers(model), config.backbone)
        log(f"Response initialization: the decompositions of {len(ri) // 2}"
            f" layers from {config.ri_decompositions}.")
        bank_lib.save_bank(path, ri)
        return ri
    if config.ri_images:
        log(f"Response initialization on the images under "
            f"{config.ri_images} (resized to 256, centre 224x224).")
        images = image_folder.batches(config.ri_images, config.batch_size)
    else:
        split = datasets.load_split(
            config.dataset, "train", [], config.image_size,
            config.batch_size, min(config.train_examples, RI_EXAMPLES),
            seed=config.seed, data_dir=config.data_dir)
        images = (image for image, _ in split)
    ri = response_init.compute(weights, images, config.backbone,
                               config.width_multiplier, log=log)
    bank_lib.save_bank(path, ri)
    return ri


def _optimizer(config, total_steps):
    schedule = keras.optimizers.schedules.PolynomialDecay(
        config.learning_rate, decay_steps=total_steps,
        end_learning_rate=0.0, power=config.poly_power)
    return keras.optimizers.SGD(schedule, momentum=config.momentum,
                                weight_decay=config.weight_decay or None)


# Settings a checkpoint must agree with to be resumed: they decide the
# trajectory (data order, batches, schedule), unlike paths or speed flags.
RUN_FIELDS = ("dataset", "augment", "image_size", "batch_size", "train_steps",
              "checkpoint_every", "learning_rate", "momentum", "weight_decay",
              "poly_power", "train_examples", "seed", "mixed_precision",
              "strategy", "deterministic")


def seed_everything(config):
    """Seeds Python, NumPy and TensorFlow/Keras from `config.seed`, and with
    `config.deterministic` turns on TensorFlow's op determinism."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.config.experimental.enable_op_determinism()


def _run_settings(task, config):
    settings = {f: getattr(config, f) for f in RUN_FIELDS}
    settings["image_size"] = list(settings["image_size"])
    return {"task": task, **settings}


def _restore(ckpt_dir, model, optimizer, task, config, log):
    """Restores `ckpt_dir` (the step, 0 if none); with `--overwrite`, a
    checkpoint that conflicts with the flags or is damaged is discarded."""
    try:
        return checkpoint.restore(ckpt_dir, model, optimizer,
                                  run=_run_settings(task, config))
    except (ValueError, FileNotFoundError) as e:
        if not config.overwrite:
            raise
        log(f"--overwrite: discarding the checkpoints of task {task!r} "
            f"({e})")
        shutil.rmtree(ckpt_dir)
        return 0


def train_task(model, task, config, log=print):
    """Trains `task`'s own variables for `config.train_steps` steps.

    Resumes from `checkpoints/<task>/` when a previous run was stopped.
    """
    model.set_trainable_tasks([task])
    task_model = model.task_model([task])
    spec = registry.get_task(task)
    # Epochs of `checkpoint_every` steps; the last one is cut short at
    # exactly `train_steps` (StopAtStep).
    total = config.train_steps
    steps_per_epoch = min(config.checkpoint_every, total)
    epochs = math.ceil(total / steps_per_epoch)
    optimizer = _optimizer(config, total)
    task_model.compile(optimizer=optimizer,
                       loss={task: distribute.replica_loss(spec.loss)},
                       loss_weights={task: spec.loss_weight},
                       jit_compile=config.jit_compile)
    optimizer.build(task_model.trainable_variables)
    ckpt_dir = os.path.join(config.model_dir, "checkpoints", task)
    start = _restore(ckpt_dir, model, optimizer, task, config, log)
    if start:
        log(f"Resuming task {task!r} from step {start}.")
    train_ds = datasets.load_split(
        config.dataset, "train", [task], config.image_size,
        config.batch_size, config.train_examples, seed=config.seed,
        data_dir=config.data_dir, training=True, augment=config.augment,
        start_batch=start)
    val_ds = datasets.load_split(
        config.dataset, "validation", [task], config.image_size,
        config.batch_size, config.batch_size, seed=config.seed,
        data_dir=config.data_dir)
    log_dir = os.path.join(config.model_dir, "logs", task)
    timer = StepTimer()
    callbacks = [
        timer,
        distribute.SyncReplicas(model, optimizer),
        NaNGuard(task, steps_per_epoch, ckpt_dir),
        StopAtStep(total, steps_per_epoch),
        CheckpointCallback(ckpt_dir, model, optimizer, steps_per_epoch,
                           run=_run_settings(task, config), task=task,
                           total_steps=total),
        keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False),
        ImageSummary(log_dir, task_model, val_ds, task),
    ]
    started = time.time()
    losses = []
    if start < total:
        history = task_model.fit(
            train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
            initial_epoch=start // steps_per_epoch, callbacks=callbacks,
            shuffle=False,
            verbose=1 if sys.stdout.isatty() else 2)
        losses = history.history.get("loss", [])
    seconds = time.time() - started
    trained = total - start
    return {
        "steps": total,
        "seconds": round(seconds, 2),
        "images_per_second": round(
            trained * config.batch_size / max(seconds, 1e-9), 2),
        # The steady step (input included), median of this run's steps but
        # the first.
        "median_step_seconds": (None if timer.median() is None
                                else round(timer.median(), 4)),
        "final_loss": float(losses[-1]) if losses else None,
        "trainable_parameters": int(sum(
            math.prod(v.shape) for v in task_model.trainable_variables)),
    }


@distribute.distributed
def train(config, log=print):
    """Trains every task of `config.tasks` the model does not have yet."""
    seed_everything(config)
    hint = distribute.bfloat16_hint(config.mixed_precision)
    if hint:
        log(hint)
    datasets.check_available(config.dataset, config.data_dir,
                             manual_dir=config.manual_dir,
                             download=config.download,
                             skip_bad_examples=config.skip_bad_examples)
    info = datasets.dataset_info(config.dataset)
    model_path = os.path.join(config.model_dir, MODEL_FILE)
    model = None
    if os.path.isfile(model_path):
        model = load_model(config.model_dir)
        check_architecture(model, config)
        log(f"Loaded {model_path} with tasks {model.tasks}.")
    os.makedirs(config.model_dir, exist_ok=True)
    summary = checkpoint.read_json(
        os.path.join(config.model_dir, SUMMARY_FILE)) or {"tasks": {}}
    new_tasks = [t for t in config.tasks if model is None
                 or t not in model.tasks]
    for task in config.tasks:
        if task not in new_tasks:
            log(f"Task {task!r} is already trained: its variables stay "
                "frozen.")
    weights = _bank_weights(config, log) if new_tasks else None
    probe = None
    for task in new_tasks:
        if model is not None:
            probe = _probe_outputs(model, config)
        if model is None:
            model = MultiTaskModel(
                tasks=[task], num_classes=info["num_classes"],
                image_size=config.image_size, **config.architecture())
            if weights is not None:
                bank_lib.load_bank_into(model, weights)
            if config.response_init:
                response_init.apply(model, weights,
                                    _response_init(config, weights, log,
                                                   model))
        else:
            model = add_task(model, task, num_classes=info["num_classes"],
                             pretrained=weights)
            if config.response_init:
                response_init.apply_task(
                    model, task, _response_init(config, weights, log, model))
        log(f"Training task {task!r} ({config.train_steps} steps, batch "
            f"{config.batch_size}, {config.image_size[0]}x"
            f"{config.image_size[1]}); frozen: the bank and "
            f"{[t for t in model.tasks if t != task]}.")
        stats = train_task(model, task, config, log=log)
        if probe is not None:
            stats["old_tasks_bit_identical"] = _check_probe(model, probe, log)
        checkpoint.atomic_save_model(model, model_path)
        shutil.rmtree(os.path.join(config.model_dir, "checkpoints", task),
                      ignore_errors=True)
        summary["tasks"][task] = {**stats, "config": _jsonable(config)}
        checkpoint.atomic_write_json(
            os.path.join(config.model_dir, SUMMARY_FILE), summary)
        log(f"Task {task!r} done in {stats['seconds']:.0f} s "
            f"({stats['images_per_second']:.1f} images/s); saved "
            f"{model_path}.")
    if model is None:
        raise FileNotFoundError(f"No model in {config.model_dir!r}.")
    model = distribute.end_training(model)  # Local, float32 from here on.
    log(format_training_table(model, summary))
    results = baseline_report.evaluate_with_baselines(
        model, config.dataset, config.image_size, config.eval_examples,
        config.batch_size, seed=config.seed, data_dir=config.data_dir,
        num_classes=info["num_classes"])
    summary["evaluation"] = results
    checkpoint.atomic_write_json(
        os.path.join(config.model_dir, SUMMARY_FILE), summary)
    log(baseline_report.format_table(results))
    if config.export_dir:
        from rmtl_tf.export import export_lib  # pylint: disable=import-outside-toplevel
        exported = export_lib.export(model, config.export_dir)
        summary["export"] = exported
        checkpoint.atomic_write_json(
            os.path.join(config.model_dir, SUMMARY_FILE), summary)
        log(f"Exported SavedModel {exported['saved_model']} and TFLite "
            f"{exported['tflite']}; signatures: "
            f"{', '.join(exported['signatures'])}.")
    return summary


def format_training_table(model, summary):
    """A markdown table of what was trained: one row per task of `model`."""
    bank = sum(math.prod(v.shape) for v in model.bank_variables())
    rows = [f"Frozen shared bank: {bank:,} parameters. Per task:",
            "| task | steps | seconds | images/s | own parameters | "
            "old tasks bit-identical |", "|---|---|---|---|---|---|"]
    for task in model.tasks:
        own = sum(math.prod(v.shape) for v in model.task_variables(task))
        stats = summary["tasks"].get(task, {})
        rows.append(
            f"| {task} | {stats.get('steps', '-')} | "
            f"{stats.get('seconds', '-')} | "
            f"{stats.get('images_per_second', '-')} | {own:,} | "
            f"{stats.get('old_tasks_bit_identical', '-')} |")
    return "\n".join(rows)


def _probe_outputs(model, config):
    """The old tasks' outputs on fixed images, to verify they never change.

    The old tasks run eagerly, op by op, before and after, so the promise
    is bit for bit on the very weights. (Keras' `predict` would trace a new
    function for every probe, and TensorFlow warns of retracing when
    several come in a row; each export signature's own graph is checked by
    the export tests.)
    """
    images = next(iter(datasets.load_split(
        config.dataset, "validation", [], config.image_size, 2, 2,
        seed=config.seed, data_dir=config.data_dir)))[0]
    return images, _task_outputs(model, model.tasks, images)


def _task_outputs(model, tasks, images):
    outputs = model.task_model(sorted(tasks))(images, training=False)
    return {t: keras.ops.convert_to_numpy(v) for t, v in outputs.items()}


def _check_probe(model, probe, log):
    images, before = probe
    after = _task_outputs(model, before, images)
    same = all(np.array_equal(before[t], after[t]) for t in before)
    log(f"Old tasks {sorted(before)}: outputs "
        f"{'bit-identical' if same else 'CHANGED'} after training the new "
        "task.")
    if not same and model.architecture != "shared":
        raise AssertionError("An old task's outputs changed; this is a bug.")
    if not same:
        log("(Expected with --variant=shared: training a task changes the "
            "shared encoder under every other task.)")
    return same


def _jsonable(config):
    import dataclasses  # pylint: disable=import-outside-toplevel
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(config).items()}
