"""Atomic training checkpoints: model weights, optimizer state, step.

A checkpoint is two files written under temporary names and renamed into
place, then `checkpoint.json` (itself replaced atomically) names the step.
A run killed at any moment leaves the previous complete checkpoint in force.
"""

import json
import os
import tempfile

import numpy as np

STATE_FILE = "checkpoint.json"


def _atomic_write(path, write):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                               suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path, data):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
    _atomic_write(path, write)


def read_json(path):
    """The JSON at `path`, or None when there is no such file."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def atomic_save_model(model, path):
    """`model.save(path)` through a temporary file and a rename."""
    def write(tmp):
        os.remove(tmp)
        model.save(tmp + ".keras")
        os.replace(tmp + ".keras", tmp)
    _atomic_write(path, write)


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
    _atomic_write(path, write)


def save(directory, model, optimizer, step, keep=2):
    """Writes checkpoint `step` and keeps the last `keep` of them.

    Model variables are stored by their unique path (`layer/variable`), so a
    restore checks every name and shape instead of trusting layer order.
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
                       "model_config": _jsonable(model.get_config())})
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


def _config_diff(saved, current):
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint has {saved.get(k)!r}, model has "
            f"{current.get(k)!r}" for k in keys
            if k != "name" and saved.get(k) != current.get(k)]


def restore(directory, model, optimizer):
    """Restores the last checkpoint into `model`/`optimizer`; returns its
    step (0 when there is none).

    Raises `ValueError` with a diff when the checkpoint was written by a
    model of another architecture or task set.
    """
    state = latest(directory)
    if state is None:
        return 0
    step = state["step"]
    saved_config = state.get("model_config")
    if saved_config is not None:
        diff = _config_diff(saved_config, _jsonable(model.get_config()))
        if diff:
            raise ValueError(
                f"Checkpoint {directory!r} (step {step}) was written by "
                f"another model: {'; '.join(diff)}.")
    path = os.path.join(directory, f"ckpt-{step}.weights.npz")
    with np.load(path) as data:
        stored = {k: data[k] for k in data.files}
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
    for name, variable in named.items():
        variable.assign(stored[name])
    with np.load(os.path.join(directory,
                              f"ckpt-{step}.optimizer.npz")) as data:
        values = [data[k] for k in sorted(data.files)]
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
        variable.assign(value)
    return step
