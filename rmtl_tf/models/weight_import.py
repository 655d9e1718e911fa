"""PyTorch weights onto a model: the authors' RCM checkpoints and torchvision.

`import_state_dict` maps a state dict (read by `rmtl_tf.models.torch_state`,
which describes both namings and the layouts) onto a `MultiTaskModel`: the
authors' per-task tensors onto its banks, modulators, BatchNorms, shortcut
convs and heads; a torchvision ResNet onto its banks and every task's
BatchNorm and shortcut convs. `export_state_dict` writes a model in the
authors' naming. NFF and plain modulators convert into each other
(`Wt = g * v / ||v||` per output filter).
"""

import re

import keras
import numpy as np

from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models.layer_factory import base_layer_name
from rmtl_tf.models.torch_state import (BN_NAMES, TO_KERAS, TO_TORCH,
                                        authors_task,
                                        bank_weights_from_torchvision,
                                        checkpoint_tasks, is_torchvision,
                                        listing, load_state_dict, name_task)

# Our layer name (without its task suffix) -> the authors' module path.
# "{t}" is the task, "{pool}" the index of ASPP's image-pooling branch.
_RCM_PATHS = (
    (r"conv1", "conv1"),
    (r"layer(\d+)_(\d+)_conv(\d+)", r"layer\1.\2.conv\3"),
    (r"bn1", "bn1.bnorm.{t}"),
    (r"layer(\d+)_(\d+)_bn(\d+)", r"layer\1.\2.bn\3.bnorm.{t}"),
    (r"layer(\d+)_(\d+)_downsample_conv",
     r"layer\1.\2.downsample.conv.conv.{t}"),
    (r"layer(\d+)_(\d+)_downsample_bn",
     r"layer\1.\2.downsample.bnorm.bnorm.{t}"),
    (r"head_aspp_conv(\d+)", r"layer5.{t}.conv2d_list.\1.0"),
    (r"head_aspp_conv(\d+)_bn", r"layer5.{t}.conv2d_list.\1.1"),
    (r"head_aspp_pool_conv", "layer5.{t}.conv2d_list.{pool}.1"),
    (r"head_aspp_pool_conv_bn", "layer5.{t}.conv2d_list.{pool}.2"),
    (r"head_aspp_project", "layer5.{t}.conv2d_final.0"),
    (r"head_aspp_project_bn", "layer5.{t}.conv2d_final.1"),
    (r"head_low_level", "low_level_reduce.{t}.0"),
    (r"head_low_level_bn", "low_level_reduce.{t}.1"),
    (r"head_decoder_conv1", "concat.{t}.0"),
    (r"head_decoder_conv1_bn", "concat.{t}.1"),
    (r"head_decoder_conv2", "concat.{t}.3"),
    (r"head_decoder_conv2_bn", "concat.{t}.4"),
    (r"head_predict", "predict.{t}"),
)


# -- the authors' naming ---------------------------------------------------

def _module_path(base, task, pool_index):
    for pattern, template in _RCM_PATHS:
        match = re.fullmatch(pattern, base)
        if match:
            path = match.expand(template)
            return path.replace("{t}", authors_task(task) or "").replace(
                "{pool}", str(pool_index))
    return None


def _targets(model, tasks):
    """The authors' tensor names of `model` -> (variable, layout kind).

    Covers every bank and `tasks`' variables: modulators, BatchNorms,
    shortcut convs and heads.
    """
    pool_index = len(getattr(model, "aspp_rates", (6, 12, 18))) + 1
    targets = {}
    for layer in model.layers:
        if isinstance(layer, ReparamConv2D):
            path = _module_path(layer.name, None, pool_index)
            targets[f"{path}.Ws.weight"] = (layer.bank, "conv")
            for task in tasks:
                prefix = f"{path}.Wt.{authors_task(task)}"
                modulator = layer.modulators[task]
                if layer.nff:
                    targets[f"{prefix}.weight_g"] = (modulator["g"], "nff_g")
                    targets[f"{prefix}.weight_v"] = (modulator["v"],
                                                     "modulator")
                else:
                    targets[f"{prefix}.weight"] = (modulator, "modulator")
            continue
        if not layer.weights:
            continue
        task = model.layer_owners.get(layer.name)
        base = None if task is None else base_layer_name(layer.name, task)
        path = None if base is None else _module_path(base, task, pool_index)
        if path is None:
            raise ValueError(
                f"Cannot map layer {layer.name!r} ({type(layer).__name__}) "
                "to the authors' RCM model: import supports the RC / RC+NFF "
                "ResNet + DeepLabv3+ models.")
        if task not in tasks:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            for theirs, ours in BN_NAMES.items():
                targets[f"{path}.{theirs}"] = (getattr(layer, ours), "vector")
        elif isinstance(layer, keras.layers.Conv2D):
            targets[f"{path}.weight"] = (layer.kernel, "conv")
            if layer.use_bias:
                targets[f"{path}.bias"] = (layer.bias, "vector")
    return targets


def _nff_weight(g, v):
    norm = np.sqrt(np.sum(np.square(v.astype(np.float64)), axis=(1, 2, 3),
                          keepdims=True))
    return (g * v / np.maximum(norm, 1e-12)).astype(v.dtype)


def _match_modulator_style(state_dict, targets):
    """Converts NFF modulators to plain ones and back, as `targets` want."""
    state_dict = dict(state_dict)
    for name in targets:
        if name in state_dict or ".Wt." not in name:
            continue
        if name.endswith(".weight") and f"{name}_g" in state_dict \
                and f"{name}_v" in state_dict:
            state_dict[name] = _nff_weight(state_dict.pop(f"{name}_g"),
                                           state_dict.pop(f"{name}_v"))
        elif name.endswith((".weight_g", ".weight_v")) \
                and name[:-2] in state_dict:
            weight = state_dict.pop(name[:-2])
            state_dict[name[:-2] + "_v"] = weight
            state_dict[name[:-2] + "_g"] = np.sqrt(np.sum(
                np.square(weight), axis=(1, 2, 3), keepdims=True))
    return state_dict


def _check_and_assign(assignments, unmapped, unset, what):
    """Assigns `(variable, value, name, source_shape)` unless anything
    failed to match."""
    mismatched = [f"{name} {tuple(shape)} -> {variable.path} "
                  f"{tuple(variable.shape)}"
                  for variable, value, name, shape in assignments
                  if tuple(value.shape) != tuple(variable.shape)]
    problems = []
    if unmapped:
        problems.append(f"tensors that map to no variable of the model: "
                        f"{listing(sorted(unmapped))}")
    if unset:
        problems.append(f"model variables the state dict leaves unset: "
                        f"{listing(unset)}")
    if mismatched:
        problems.append(f"shape mismatches: {listing(mismatched)}")
    if problems:
        raise ValueError(f"Cannot import {what}: " + "; ".join(problems)
                         + ". Was it saved by a model of another "
                         "architecture, width or tasks?")
    for variable, value, _, _ in assignments:
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _import_torchvision(model, state_dict):
    weights = bank_weights_from_torchvision(state_dict)
    targets = {}
    for layer in model.layers:
        if isinstance(layer, ReparamConv2D):
            targets[f"{layer.name}/kernel"] = [layer.bank]
        elif layer.weights:
            task = model.layer_owners.get(layer.name)
            if task is None or not layer.name.startswith(("bn1_", "layer")):
                continue
            base = base_layer_name(layer.name, task)
            for variable in layer.weights:
                key = f"{base}/{variable.name}"
                targets.setdefault(key, []).append(variable)
    assignments = [(variable, weights[key], key, weights[key].shape)
                   for key, variables in targets.items() if key in weights
                   for variable in variables]
    unset = [key for key in targets if key not in weights]
    unmapped = [key for key in weights if key not in targets]
    _check_and_assign(assignments, unmapped, unset,
                      "torchvision ResNet weights")
    return list(model.tasks)


def import_state_dict(model, state_dict, tasks=None):
    """Loads PyTorch weights into `model`; returns the tasks imported.

    Args:
        model: a `MultiTaskModel` (RC or RC+NFF, any `nff`).
        state_dict: the authors' RCM state dict or a torchvision ResNet's,
            as a mapping or a path (see `load_state_dict`).
        tasks: for the authors' format, the checkpoint's tasks to import
            (default: all of them; each must be a task of `model`). The
            banks are always imported. Ignored for torchvision weights,
            which initialize the banks and every task's BatchNorm and
            shortcut convs (modulators and heads are left as they are).

    Raises:
        ValueError: listing the tensors that map to nothing, the model
            variables left unset and the shape mismatches; nothing is
            assigned then.
    """
    state_dict = load_state_dict(state_dict)
    if is_torchvision(state_dict):
        return _import_torchvision(model, state_dict)
    if not any(".Wt." in name for name in state_dict):
        raise ValueError(
            "The state dict has no modulators (`Wt`): not an RCM model (the "
            "authors' 'Conv' checkpoints fine-tune the whole network per "
            "task) nor a torchvision ResNet (no `conv1.weight`).")
    found = checkpoint_tasks(state_dict)
    tasks = found if tasks is None else list(tasks)
    missing = [t for t in tasks if t not in found]
    if missing:
        raise ValueError(f"The state dict has no weights of tasks {missing};"
                         f" its tasks are {found}.")
    unknown = [t for t in tasks if t not in model.tasks]
    if unknown:
        raise ValueError(f"The model has no tasks {unknown} (its tasks are "
                         f"{model.tasks}); build it with them, e.g. with "
                         "`assemble_checkpoints`.")
    targets = _targets(model, tasks)
    state_dict = _match_modulator_style(state_dict, targets)
    assignments, unmapped = [], []
    for name, value in state_dict.items():
        if name.endswith(".num_batches_tracked"):
            continue
        if name not in targets:
            task = name_task(name)
            if task is None or task in tasks:
                unmapped.append(name)
            continue
        variable, kind = targets[name]
        assignments.append((variable, TO_KERAS[kind](value), name,
                            value.shape))
    unset = [f"{name} ({targets[name][0].path})" for name in targets
             if name not in state_dict]
    _check_and_assign(assignments, unmapped, unset, "the state dict")
    return tasks


def export_state_dict(model, tasks=None):
    """`model`'s weights in the authors' naming and torch layouts (numpy).

    Includes each BatchNorm's `num_batches_tracked` (0), so the result
    loads into the authors' model with `strict=True`.
    """
    tasks = list(model.tasks if tasks is None else tasks)
    state_dict = {}
    for name, (variable, kind) in _targets(model, tasks).items():
        state_dict[name] = TO_TORCH[kind](np.asarray(variable.numpy()))
        if name.endswith(".running_var"):
            state_dict[name[:-len("running_var")] + "num_batches_tracked"] = (
                np.zeros((), np.int64))
    return state_dict
