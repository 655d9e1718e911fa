"""Incremental multi-task training: one task at a time on a frozen bank.

`train(config)` is what `train.py` runs. It writes the model directory
that `rmtl_tf.models.model_dir` describes: the model, its bank, the
checkpoints of the task in training, TensorBoard logs and `summary.json`.
"""

import math
import os
import shutil
import sys
import time

import keras

from rmtl_tf.data import datasets
from rmtl_tf.evaluation import baseline_report
from rmtl_tf.export import export_lib
from rmtl_tf.models import bank as bank_lib
from rmtl_tf.models import response_init
from rmtl_tf.models.model_dir import (MODEL_FILE, SUMMARY_FILE, load_model,
                                      read_summary)
from rmtl_tf.models.multitask_model import MultiTaskModel, add_task
from rmtl_tf.tasks import registry
from rmtl_tf.training import bank_setup, checkpoint, distribute, precision
from rmtl_tf.training import probe as probe_lib
from rmtl_tf.training.callbacks import (CheckpointCallback, ImageSummary,
                                        NaNGuard, StepTimer, StopAtStep)


def check_architecture(model, config):
    """Raises with a diff when `model` was built with other settings."""
    found = model.get_config()
    diff = {k: (found[k], v) for k, v in config.model_kwargs().items()
            if found[k] != v}
    if diff:
        lines = ", ".join(f"{k}: model has {a!r}, flags say {b!r}"
                          for k, (a, b) in sorted(diff.items()))
        raise ValueError(
            f"The model in {config.model_dir!r} has another architecture "
            f"than the flags ({lines}). Use the flags it was trained with or "
            "a new --model_dir.")


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


def train_task(model, task, config, data, log=print):
    """Trains `task`'s own variables for `config.train_steps` steps.

    `data` is the resolved dataset (`datasets.resolve`).

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
    train_ds = data.split(
        "train", [task], config.image_size, config.batch_size,
        config.train_examples, seed=config.seed, training=True,
        augment=config.augment, start_batch=start)
    val_ds = data.split(
        "validation", [task], config.image_size, config.batch_size,
        config.batch_size, seed=config.seed)
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
    hint = precision.bfloat16_hint(
        config.mixed_precision,
        accelerator=bool(keras.distribution.list_devices("gpu")))
    if hint:
        log(hint)
    data = datasets.resolve(config.dataset, config.data_dir,
                            manual_dir=config.manual_dir,
                            download=config.download,
                            skip_bad_examples=config.skip_bad_examples)
    model_path = os.path.join(config.model_dir, MODEL_FILE)
    model = None
    if os.path.isfile(model_path):
        model = load_model(config.model_dir)
        check_architecture(model, config)
        log(f"Loaded {model_path} with tasks {model.tasks}.")
    os.makedirs(config.model_dir, exist_ok=True)
    summary = read_summary(config.model_dir) or {"tasks": {}}
    new_tasks = [t for t in config.tasks if model is None
                 or t not in model.tasks]
    for task in config.tasks:
        if task not in new_tasks:
            log(f"Task {task!r} is already trained: its variables stay "
                "frozen.")
    weights = bank_setup.bank_weights(config, log) if new_tasks else None
    probe = None
    for task in new_tasks:
        if model is not None:
            probe = probe_lib.probe_outputs(model, config, data)
        if model is None:
            model = MultiTaskModel(
                tasks=[task], num_classes=data.num_classes,
                image_size=config.image_size, **config.model_kwargs())
            if weights is not None:
                bank_lib.load_bank_into(model, weights)
            if config.response_init:
                response_init.apply(model, weights,
                                    bank_setup.response_init_weights(
                                        config, data, weights, log, model))
        else:
            model = add_task(model, task, num_classes=data.num_classes,
                             pretrained=weights)
            if config.response_init:
                response_init.apply_task(
                    model, task,
                    bank_setup.response_init_weights(config, data, weights,
                                                     log, model))
        log(f"Training task {task!r} ({config.train_steps} steps, batch "
            f"{config.batch_size}, {config.image_size[0]}x"
            f"{config.image_size[1]}); frozen: the bank and "
            f"{[t for t in model.tasks if t != task]}.")
        stats = train_task(model, task, config, data, log=log)
        if probe is not None:
            stats["old_tasks_bit_identical"] = probe_lib.check_probe(
                model, probe, log)
        checkpoint.atomic_save_model(model, model_path)
        shutil.rmtree(os.path.join(config.model_dir, "checkpoints", task),
                      ignore_errors=True)
        summary["tasks"][task] = {**stats, "config": config.to_json()}
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
        model, data, config.image_size, config.eval_examples,
        config.batch_size, seed=config.seed, log=log)
    summary["evaluation"] = results
    checkpoint.atomic_write_json(
        os.path.join(config.model_dir, SUMMARY_FILE), summary)
    log(baseline_report.format_table(results))
    if config.export_dir:
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
