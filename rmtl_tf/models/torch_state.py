"""PyTorch weights as read: state dicts and their tensor names, no model.

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

Layouts (`TO_KERAS`, `TO_TORCH`): conv `(out, in, kh, kw)` -> HWIO;
modulator `(out, in, 1, 1)` -> `M[in, out]`; NFF `weight_g` `(out, 1, 1, 1)`
-> `(out,)`; BatchNorm weight/bias/running_mean/running_var -> gamma/beta/
moving_mean/moving_variance; `num_batches_tracked` is ignored.
"""

import os
import re
from collections.abc import Mapping

import numpy as np

from rmtl_tf.models import pth_file
from rmtl_tf.models.npz_file import load_npz

TASK_ALIASES = {"sal": "saliency"}  # The authors' task name -> ours.
BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
            "running_var": "moving_variance"}
_TASK = r"[a-z][a-z0-9_]*"
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
TO_KERAS = {
    "conv": lambda w: np.transpose(w, (2, 3, 1, 0)),
    "modulator": lambda w: np.transpose(w[:, :, 0, 0]),
    "nff_g": lambda w: np.reshape(w, (-1,)),
    "vector": lambda w: w,
}
TO_TORCH = {
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
            source = load_npz(path, what="State dict")
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


def name_task(name):
    """Our name of the task in the authors' tensor `name`, or None."""
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
            value = TO_KERAS["conv"](value)
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
            f"Not torchvision ResNet weights: {listing(unknown)} match no "
            "conv, BatchNorm or shortcut of a torchvision ResNet.")
    return weights


def listing(names, limit=12):
    """`names` comma-separated, at most `limit` of them."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more"
                    if len(names) > limit else "")
