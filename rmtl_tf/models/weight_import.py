"""Pretrained PyTorch weights: the authors' RCM checkpoints and torchvision.

Two namings are read, from a dict of arrays (numpy or torch), an `.npz` or a
`.pth` file (read without PyTorch, by a loader that builds tensors and
dicts only: `rmtl_tf.models.pth_file`):

- The authors' RCM models (github.com/menelaoskanakis/RCM, per-task
  parameters): `conv1.Ws.weight` (the bank), `conv1.Wt.<task>.weight_g` /
  `weight_v` (NFF modulator) or `conv1.Wt.<task>.weight`,
  `layer1.0.bn1.bnorm.<task>.*`, `layer2.0.downsample.conv.conv.<task>.weight`
  and `downsample.bnorm.bnorm.<task>.*`, the head `layer5.<task>.*` (ASPP),
  `low_level_reduce.<task>.*`, `concat.<task>.*`, `predict.<task>.*`. The
  tasks come from the names (the authors' `sal` is our `saliency`).
- torchvision's ResNets: `conv1.weight`, `bn1.*`, `layer1.0.conv1.weight`,
  `layer2.0.downsample.0.weight` / `.1.*`; `fc.*` is ignored. The convs
  become the banks, BatchNorm and shortcut weights initialize every task's
  copies (bank weights, see `rmtl_tf.models.bank`).

Layouts: conv `(out, in, kh, kw)` -> HWIO; modulator `(out, in, 1, 1)` ->
`M[in, out]`; NFF `weight_g` `(out, 1, 1, 1)` -> `(out,)`; BatchNorm
weight/bias/running_mean/running_var -> gamma/beta/moving_mean/
moving_variance; `num_batches_tracked` is ignored. NFF and plain modulators
convert into each other (`Wt = g * v / ||v||` per output filter).
"""

import os
import re
from collections.abc import Mapping

import keras
import numpy as np

from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models import pth_file

TASK_ALIASES = {"sal": "saliency"}  # The authors' task name -> ours.
BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
            "running_var": "moving_variance"}
_TASK = r"[a-z][a-z0-9_]*"
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
# Where a task appears in the authors' names.
_TASK_IN_NAME = (
    re.compile(rf"^(?:layer5|low_level_reduce|concat|predict)\.({_TASK})\."),
    re.compile(rf"\.Wt\.({_TASK})\.weight(?:_g|_v)?$"),
    re.compile(rf"\.bnorm\.({_TASK})\.(?:{'|'.join(BN_NAMES)}|"
               r"num_batches_tracked)$"),
    re.compile(rf"\.downsample\.conv\.conv\.({_TASK})\.weight$"),
)
_TORCHVISION_CONV = re.compile(
    r"(conv1|layer\d+\.\d+\.conv\d+|layer\d+\.\d+\.downsample\.0)\.weight")
_TORCHVISION_BN = re.compile(
    rf"(bn1|layer\d+\.\d+\.bn\d+|layer\d+\.\d+\.downsample\.1)\."
    rf"({'|'.join(BN_NAMES)})")

# Torch layout -> ours, and back, by kind of tensor.
_TO_KERAS = {
    "conv": lambda w: np.transpose(w, (2, 3, 1, 0)),
    "modulator": lambda w: np.transpose(w[:, :, 0, 0]),
    "nff_g": lambda w: np.reshape(w, (-1,)),
    "vector": lambda w: w,
}
_TO_TORCH = {
    "conv": lambda w: np.transpose(w, (3, 2, 0, 1)),
    "modulator": lambda w: np.transpose(w)[:, :, None, None],
    "nff_g": lambda w: np.reshape(w, (-1, 1, 1, 1)),
    "vector": lambda w: w,
}


# -- reading ---------------------------------------------------------------

def _to_numpy(value):
    if hasattr(value, "detach"):  # A torch tensor.
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _torch_load(path):
    """A `.pth` file's object, read without PyTorch (`pth_file`)."""
    try:
        return pth_file.load(path)
    except pth_file.UnsafeCheckpointError as e:
        raise ValueError(f"{path!r}: {e}") from e


def load_state_dict(source):
    """A state dict as `{name: numpy array}` from a mapping or a file.

    `source` is a mapping of names to arrays or torch tensors, or the path
    of an `.npz` or a PyTorch file (`.pth`, `.pt`, `.tar`). A checkpoint
    dict holding `"state_dict"` (the authors' trainer) is unwrapped, the
    `module.` prefix of `DataParallel` dropped, and weight-norm
    parametrizations (`parametrizations.weight.original0/1`) renamed to
    `weight_g` / `weight_v`.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"State dict file not found: {path!r}")
        if path.endswith(".npz"):
            from rmtl_tf.models import bank  # pylint: disable=import-outside-toplevel
            source = bank.load_npz(path, what="State dict")
        else:
            source = _torch_load(path)
    if not isinstance(source, Mapping):
        raise TypeError("A state dict must be a mapping of names to arrays "
                        "or a path. Received: " f"{type(source).__name__}")
    if isinstance(source.get("state_dict"), Mapping):
        source = source["state_dict"]
    state_dict = {}
    for name, value in source.items():
        name = name[len("module."):] if name.startswith("module.") else name
        name = name.replace(".parametrizations.weight.original0", ".weight_g")
        name = name.replace(".parametrizations.weight.original1", ".weight_v")
        state_dict[name] = _to_numpy(value)
    return state_dict


def is_torchvision(state_dict):
    """True for torchvision ResNet names (plain convs, no banks `Ws`)."""
    return "conv1.weight" in state_dict and not any(
        ".Ws." in name for name in state_dict)


def checkpoint_tasks(state_dict):
    """Our names of the tasks in the authors' names, in order of appearance."""
    tasks = []
    for name in state_dict:
        for pattern in _TASK_IN_NAME:
            match = pattern.search(name)
            if match:
                task = TASK_ALIASES.get(match.group(1), match.group(1))
                if task not in tasks:
                    tasks.append(task)
                break
    return tasks


def authors_task(task):
    """The authors' name of our `task` (`saliency` is their `sal`)."""
    inverse = {ours: theirs for theirs, ours in TASK_ALIASES.items()}
    return inverse.get(task, task)


def _name_task(name):
    for pattern in _TASK_IN_NAME:
        match = pattern.search(name)
        if match:
            return TASK_ALIASES.get(match.group(1), match.group(1))
    return None


# -- torchvision: bank weights ---------------------------------------------

def bank_weights_from_torchvision(source):
    """Bank weights (`rmtl_tf.models.bank` naming) from a torchvision ResNet.

    `source`: anything `load_state_dict` reads. `fc.*` and
    `num_batches_tracked` are dropped; any other unknown name is an error.
    """
    state_dict = load_state_dict(source)
    weights, unknown = {}, []
    for name, value in state_dict.items():
        if name.startswith("fc.") or name.endswith(".num_batches_tracked"):
            continue
        conv = _TORCHVISION_CONV.fullmatch(name)
        bn = _TORCHVISION_BN.fullmatch(name)
        if conv:
            module, key = conv.group(1), "kernel"
            value = _TO_KERAS["conv"](value)
        elif bn:
            module, key = bn.group(1), BN_NAMES[bn.group(2)]
        else:
            unknown.append(name)
            continue
        module = module.replace("downsample.0", "downsample_conv")
        module = module.replace("downsample.1", "downsample_bn")
        weights[f"{module.replace('.', '_')}/{key}"] = value
    if unknown:
        raise ValueError(
            f"Not torchvision ResNet weights: {_listing(unknown)} match no "
            "conv, BatchNorm or shortcut of a torchvision ResNet.")
    return weights


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
        path = None
        if task is not None and layer.name.endswith(f"_{task}"):
            path = _module_path(layer.name[:-len(task) - 1], task,
                                pool_index)
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


def _listing(names, limit=12):
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more"
                    if len(names) > limit else "")


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
                        f"{_listing(sorted(unmapped))}")
    if unset:
        problems.append(f"model variables the state dict leaves unset: "
                        f"{_listing(unset)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listing(mismatched)}")
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
            base = layer.name[:-len(task) - 1]
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
            task = _name_task(name)
            if task is None or task in tasks:
                unmapped.append(name)
            continue
        variable, kind = targets[name]
        assignments.append((variable, _TO_KERAS[kind](value), name,
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
        state_dict[name] = _TO_TORCH[kind](np.asarray(variable.numpy()))
        if name.endswith(".running_var"):
            state_dict[name[:-len("running_var")] + "num_batches_tracked"] = (
                np.zeros((), np.int64))
    return state_dict
