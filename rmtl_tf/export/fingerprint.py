"""Fingerprints of the shared bank and of each task's own weights.

A task's weights (modulators, BatchNorm, shortcut convs, head) only compute
its function on the bank they were trained on: the bank fingerprint says
which one. It is the sha256 of every bank kernel in a fixed order (layer
names sorted), each preceded by its layer name, dtype and shape, so equal
banks give equal fingerprints on any machine, and adding a task (which
never touches the bank) keeps it. Exports and task packs record it.

Banks are the frozen kernels of the layers that hold one and per-task
parts (`MultiTaskModel.bank_layers()`: `ReparamConv2D` in the "rc"
architecture, `AdapterConv2D` in "ra_series"/"ra_parallel"), and of the
frozen shared depthwise convs of MobileNetV2 in those architectures
(`BankDepthwiseConv2D`, no per-task part). The "conv" and "shared"
baselines have no bank: `has_bank` is False.

A task fingerprint is the same hash over one task's own variables: two
export versions with equal task fingerprints serve that task identically.
"""

import hashlib

import numpy as np

from rmtl_tf.layers.adapter_conv2d import AdapterConv2D
from rmtl_tf.layers.bank_depthwise_conv2d import BankDepthwiseConv2D
from rmtl_tf.layers.reparam_conv2d import ReparamConv2D

# Digits shown in messages; the full hex digest is what is stored.
SHORT = 12


def _hash(named_arrays):
    digest = hashlib.sha256()
    for name, value in named_arrays:
        value = np.ascontiguousarray(value)
        # Little-endian bytes whatever the machine.
        value = value.astype(value.dtype.newbyteorder("<"), copy=False)
        digest.update(f"{name}\0{value.dtype.str}\0{value.shape}\0".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _is_bank_layer(layer):
    """A layer with a frozen bank and per-task parts."""
    return isinstance(layer, (ReparamConv2D, AdapterConv2D))


def bank_layers(model):
    """`model`'s layers holding a bank, sorted by layer name."""
    layers = [l for l in model.layers
              if _is_bank_layer(l) or isinstance(l, BankDepthwiseConv2D)]
    return sorted(layers, key=lambda l: l.name)


def has_bank(model):
    return bool(bank_layers(model))


def bank_arrays(model):
    """[(layer name, bank kernel)] in fingerprint order."""
    return [(layer.name, np.asarray(layer.bank.numpy()))
            for layer in bank_layers(model)]


def bank_fingerprint(model):
    """Hex sha256 of `model`'s banks (see the module docstring)."""
    arrays = bank_arrays(model)
    if not arrays:
        raise ValueError(
            f"Model {model.name!r} has no frozen bank (architecture "
            f"{getattr(model, 'architecture', None)!r}), hence no bank "
            "fingerprint.")
    return _hash(arrays)


def task_variables_by_key(model, task):
    """{"<layer>/<weight>": variable} of every variable `task` owns.

    The keys name the same weight in any model of the same architecture
    (layer names are fixed by the builders), whatever its other tasks.
    """
    if task not in model.tasks:
        raise ValueError(f"Unknown task {task!r}. This model's tasks are "
                         f"{list(model.tasks)}.")
    variables = {}
    for layer in model.layers:
        if _is_bank_layer(layer):
            owned = layer.task_variables(task)
        elif model.layer_owners.get(layer.name) == task:
            owned = layer.weights
        else:
            continue
        for variable in owned:
            key = f"{layer.name}/{variable.name}"
            if key in variables:
                raise ValueError(f"Two weights of task {task!r} are both "
                                 f"named {key!r}.")
            variables[key] = variable
    return variables


def task_weights(model, task):
    """{"<layer>/<weight>": numpy array} of `task`'s own variables."""
    return {key: np.asarray(variable.numpy())
            for key, variable in task_variables_by_key(model, task).items()}


def task_fingerprint(model, task):
    """Hex sha256 of `task`'s own weights, keys sorted."""
    return _hash(sorted(task_weights(model, task).items()))


def short(fingerprint):
    return fingerprint[:SHORT]
