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


def save(directory, model, optimizer, step, keep=2):
    """Writes checkpoint `step` and keeps the last `keep` of them."""
    weights = os.path.join(directory, f"ckpt-{step}.weights.h5")
    opt = os.path.join(directory, f"ckpt-{step}.optimizer.npz")

    def write_weights(tmp):
        os.remove(tmp)
        model.save_weights(tmp + ".weights.h5")
        os.replace(tmp + ".weights.h5", tmp)

    def write_optimizer(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, *[v.numpy() for v in optimizer.variables])

    _atomic_write(weights, write_weights)
    _atomic_write(opt, write_optimizer)
    state = latest(directory) or {"steps": []}
    steps = [s for s in state["steps"] if s != step] + [step]
    atomic_write_json(os.path.join(directory, STATE_FILE),
                      {"step": step, "steps": steps[-keep:]})
    for old in steps[:-keep]:
        for path in (os.path.join(directory, f"ckpt-{old}.weights.h5"),
                     os.path.join(directory, f"ckpt-{old}.optimizer.npz")):
            if os.path.exists(path):
                os.remove(path)


def latest(directory):
    """The state of the last complete checkpoint, or None."""
    return read_json(os.path.join(directory, STATE_FILE))


def restore(directory, model, optimizer):
    """Restores the last checkpoint into `model`/`optimizer`; returns its
    step (0 when there is none)."""
    state = latest(directory)
    if state is None:
        return 0
    step = state["step"]
    model.load_weights(os.path.join(directory, f"ckpt-{step}.weights.h5"))
    with np.load(os.path.join(directory,
                              f"ckpt-{step}.optimizer.npz")) as data:
        values = [data[f"arr_{i}"] for i in range(len(data.files))]
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"Checkpoint {directory!r} step {step} holds {len(values)} "
            f"optimizer variables, the optimizer has "
            f"{len(optimizer.variables)}: it was written by another setup.")
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)
    return step
