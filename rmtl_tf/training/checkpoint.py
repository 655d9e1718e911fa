"""Atomic training checkpoints: model weights, optimizer state, step.

A checkpoint is two files written under temporary names and renamed into
place, then `checkpoint.json` (itself replaced atomically) names the step.
A run killed at any moment leaves the previous complete checkpoint in force.

Resuming is exact: the optimizer's variables include `iterations` (the poly
learning-rate schedule's step) and the momentum slots; the data position is
the step (the training pipeline is a deterministic function of its seed
and position, `input_pipeline.build(skip=...)`); `run` settings (batch size,
learning rate, seed, ...) are stored so that a run with other settings
cannot silently continue a checkpoint it did not write. Files are plain
`.npz` arrays (no pickles) and JSON.
"""

import json
import os

import numpy as np

from rmtl_tf import atomic_files
from rmtl_tf.atomic_files import read_json

STATE_FILE = "checkpoint.json"


def atomic_write_json(path, data):
    """Writes `data` as JSON (indent 2, sorted keys), atomically."""
    atomic_files.write_json(path, data, indent=2, sort_keys=True)


def atomic_save_model(model, path):
    """`model.save(path)` through a temporary file and a rename."""
    def write(tmp):
        model.save(tmp + ".keras")
        os.replace(tmp + ".keras", tmp)
    atomic_files.atomic_write(path, write)


def _named(variables, what):
    named = {}
    for variable in variables:
        if variable.path in named:
            raise ValueError(f"Two {what} variables are named "
                             f"{variable.path!r}; cannot checkpoint them.")
        named[variable.path] = variable
    return named


def _write_npz(path, arrays):
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    atomic_files.atomic_write(path, write)


def check_finite(model, step, where=""):
    """Raises `FloatingPointError` naming the first NaN/Inf variable."""
    for variable in model.weights:
        if not np.all(np.isfinite(np.asarray(variable))):
            raise FloatingPointError(
                f"Variable {variable.path!r} is NaN or Inf at step {step}"
                f"{where}; no checkpoint is written for it.")


def save(directory, model, optimizer, step, keep=2, run=None):
    """Writes checkpoint `step` and keeps the last `keep` of them.

    Model variables are stored by their unique path (`layer/variable`), so a
    restore checks every name and shape instead of trusting layer order.
    `run`: JSON-able settings of the run that writes it (see `restore`).
    """
    weights = os.path.join(directory, f"ckpt-{step}.weights.npz")
    opt = os.path.join(directory, f"ckpt-{step}.optimizer.npz")
    _write_npz(weights, {k: np.asarray(v) for k, v in
                         _named(model.weights, "model").items()})
    _write_npz(opt, {f"{i:05d}": np.asarray(v)
                     for i, v in enumerate(optimizer.variables)})
    state = latest(directory) or {"steps": []}
    steps = [s for s in state["steps"] if s != step] + [step]
    atomic_write_json(os.path.join(directory, STATE_FILE),
                      {"step": step, "steps": steps[-keep:],
                       "model_config": _jsonable(model.get_config()),
                       "run": _jsonable(run)})
    for old in steps[:-keep]:
        for path in (os.path.join(directory, f"ckpt-{old}.weights.npz"),
                     os.path.join(directory, f"ckpt-{old}.optimizer.npz")):
            if os.path.exists(path):
                os.remove(path)


def _jsonable(value):
    return json.loads(json.dumps(value, default=list))


def latest(directory):
    """The state of the last complete checkpoint, or None."""
    return read_json(os.path.join(directory, STATE_FILE))


def _config_diff(saved, current, what="model"):
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint has {saved.get(k)!r}, {what} has "
            f"{current.get(k)!r}" for k in keys
            if k != "name" and saved.get(k) != current.get(k)]


def _load_npz(path):
    """The arrays of `path` (never pickles), or a `ValueError` naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Checkpoint file {path!r} is missing ({STATE_FILE} names it). "
            "Delete the checkpoint directory or pass --overwrite to start "
            "the task over.")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as e:  # pylint: disable=broad-except
        raise ValueError(
            f"Checkpoint file {path!r} is damaged ({type(e).__name__}: "
            f"{e}). Pass --overwrite to discard the checkpoints and start the "
            "task over.") from e


def restore(directory, model, optimizer, run=None):
    """Restores the last checkpoint into `model`/`optimizer`; returns its
    step (0 when there is none).

    Raises `ValueError` with a diff when the checkpoint was written by a
    model of another architecture or task set, or (given `run`) by a run
    with other settings, and when its files are missing or damaged.
    """
    state = latest(directory)
    if state is None:
        return 0
    step = state["step"]
    if run is not None and state.get("run") is not None:
        # A setting the checkpoint predates (not recorded then) is not
        # compared, so older checkpoints still resume.
        current = {k: v for k, v in _jsonable(run).items()
                   if k in state["run"]}
        diff = _config_diff(state["run"], current, "this run")
        if diff:
            raise ValueError(
                f"Checkpoint {directory!r} (step {step}) was written by a "
                f"run with other settings: {'; '.join(diff)}. Rerun with "
                "the same flags to resume it, or pass --overwrite to "
                "discard it and start this task over.")
    saved_config = state.get("model_config")
    if saved_config is not None:
        diff = _config_diff(saved_config, _jsonable(model.get_config()))
        if diff:
            raise ValueError(
                f"Checkpoint {directory!r} (step {step}) was written by "
                f"another model: {'; '.join(diff)}. Use the flags it was "
                "written with, or pass --overwrite to discard it.")
    path = os.path.join(directory, f"ckpt-{step}.weights.npz")
    stored = _load_npz(path)
    named = _named(model.weights, "model")
    missing = sorted(set(named) - set(stored))
    unexpected = sorted(set(stored) - set(named))
    wrong = sorted(f"{k} {tuple(stored[k].shape)} vs {tuple(named[k].shape)}"
                   for k in set(named) & set(stored)
                   if tuple(stored[k].shape) != tuple(named[k].shape))
    if missing or unexpected or wrong:
        raise ValueError(
            f"Checkpoint {path!r} does not fit this model: missing "
            f"{missing[:10]}, unexpected {unexpected[:10]}, shapes "
            f"(checkpoint vs model) {wrong[:10]}.")
    optimizer_arrays = _load_npz(
        os.path.join(directory, f"ckpt-{step}.optimizer.npz"))
    values = [optimizer_arrays[k] for k in sorted(optimizer_arrays)]
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"Checkpoint {directory!r} step {step} holds {len(values)} "
            f"optimizer variables, the optimizer has "
            f"{len(optimizer.variables)}: it was written by another setup.")
    for variable, value in zip(optimizer.variables, values):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(
                f"Checkpoint {directory!r} step {step}: optimizer variable "
                f"{variable.path!r} has shape {tuple(variable.shape)}, the "
                f"checkpoint {tuple(value.shape)}.")
    # Everything checked: only now is anything assigned.
    for name, variable in named.items():
        variable.assign(stored[name])
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)
    return step
