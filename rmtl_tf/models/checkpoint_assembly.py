"""One multi-task model from the authors' per-task RCM checkpoints.

The authors train each task on its own (one checkpoint per task), all on the
same frozen bank. Since the bank is shared bit for bit, the checkpoints
combine into one model: the bank once, and each checkpoint's modulators,
BatchNorms, shortcut convs and head. `rmtl_tf.export.export_lib.export` then
writes it as one file with a signature per task.
"""

import os

import numpy as np

from rmtl_tf.models import torch_state, weight_import
from rmtl_tf.models.multitask_model import build_model
from rmtl_tf.models.resnet_backbone import RESNET_SPECS, resnet_spec
from rmtl_tf.tasks import registry


def _backbone(state_dict):
    blocks = {}
    for name in state_dict:
        parts = name.split(".")
        if (len(parts) == 5 and parts[0].startswith("layer")
                and parts[2:] == ["conv1", "Ws", "weight"]):
            stage = int(parts[0][len("layer"):])
            blocks[stage] = max(blocks.get(stage, 0), int(parts[1]) + 1)
    blocks = tuple(blocks.get(s, 0) for s in range(1, 5))
    names = [n for n, spec in RESNET_SPECS.items() if spec["blocks"] == blocks]
    if not names:
        raise ValueError(f"No known backbone has {blocks} blocks per stage "
                         f"(known: {sorted(RESNET_SPECS)}).")
    widths = tuple(state_dict[f"layer{s}.0.conv1.Ws.weight"].shape[0]
                   for s in range(1, 5))
    for backbone in names:
        multiplier = widths[0] / RESNET_SPECS[backbone]["widths"][0]
        if resnet_spec(backbone, multiplier)["widths"] == widths:
            return backbone, multiplier
    raise ValueError(f"Backbone widths {widths} are no width multiple of "
                     f"{names}.")


def config_from_state_dict(state_dict):
    """`build_model` arguments of the authors' RCM model in `state_dict`.

    The backbone and width, the head widths, NFF, the tasks and their
    classes are read off the tensors' names and shapes; the ASPP rates are
    not in the weights (the authors' are 6, 12, 18 at output stride 16).
    """
    state_dict = torch_state.load_state_dict(state_dict)
    tasks = torch_state.checkpoint_tasks(state_dict)
    if not tasks:
        raise ValueError("The state dict has no task-specific weights: not "
                         "the authors' RCM model (a torchvision ResNet goes "
                         "to `import_state_dict` or `--bank=torchvision:`).")
    backbone, multiplier = _backbone(state_dict)
    first = torch_state.authors_task(tasks[0])
    num_classes = {}
    for task in tasks:
        theirs = torch_state.authors_task(task)
        channels = state_dict[f"predict.{theirs}.weight"].shape[0]
        if registry.get_task(task).channels != channels:
            num_classes[task] = int(channels)
    return {
        "backbone": backbone,
        "tasks": tasks,
        "num_classes": num_classes,
        "width_multiplier": multiplier,
        "head_channels": int(
            state_dict[f"layer5.{first}.conv2d_final.0.weight"].shape[0]),
        "low_level_channels": int(
            state_dict[f"low_level_reduce.{first}.0.weight"].shape[0]),
        "nff": any(name.endswith(".weight_g") for name in state_dict),
    }


def _check_same_banks(state_dicts, labels):
    banks = [{n: v for n, v in sd.items() if n.endswith(".Ws.weight")}
             for sd in state_dicts]
    for label, bank in zip(labels[1:], banks[1:]):
        if set(bank) != set(banks[0]):
            raise ValueError(
                f"{labels[0]} and {label} have different bank layers: only "
                f"in the first {sorted(set(banks[0]) - set(bank))[:5]}, only "
                f"in the second {sorted(set(bank) - set(banks[0]))[:5]}.")
        for name, value in banks[0].items():
            if not np.array_equal(value, bank[name]):
                raise ValueError(
                    f"{labels[0]} and {label} were trained on different "
                    f"banks: they differ first at layer "
                    f"{name[:-len('.Ws.weight')]!r} ({name}). RCM tasks "
                    "combine only on one shared bank.")


def assemble_checkpoints(checkpoints, model=None, **model_kwargs):
    """One model with the tasks of several checkpoints of the authors.

    Args:
        checkpoints: state dicts or paths (`.pth`, `.npz`), each with one
            task or more, all on the same bank (checked: the first
            differing layer is named otherwise).
        model: a `MultiTaskModel` to import into; by default one is built
            with every checkpoint's tasks (see `config_from_state_dict`).
        **model_kwargs: more `build_model` arguments (`image_size`,
            `aspp_rates`, ...) or overrides of the inferred ones.

    Returns:
        The model, each task's weights from its checkpoint.
    """
    labels = [os.fspath(c) if isinstance(c, (str, os.PathLike))
              else f"checkpoint #{i}"
              for i, c in enumerate(checkpoints)]
    state_dicts = [torch_state.load_state_dict(c) for c in checkpoints]
    if not state_dicts:
        raise ValueError("`checkpoints` is empty.")
    configs = [config_from_state_dict(sd) for sd in state_dicts]
    owner = {}
    for label, config in zip(labels, configs):
        for task in config["tasks"]:
            if task in owner:
                raise ValueError(f"Task {task!r} is in both {owner[task]} "
                                 f"and {label}.")
            owner[task] = label
    _check_same_banks(state_dicts, labels)
    if model is None:
        architecture = ("backbone", "width_multiplier", "head_channels",
                        "low_level_channels", "nff")
        for label, config in zip(labels[1:], configs[1:]):
            diff = {k: (configs[0][k], config[k]) for k in architecture
                    if config[k] != configs[0][k]}
            if diff:
                raise ValueError(f"{labels[0]} and {label} differ in "
                                 f"architecture (first, second): {diff}.")
        config = dict(configs[0], tasks=list(owner))
        config["num_classes"] = {k: v for c in configs
                                 for k, v in c["num_classes"].items()}
        config.update(model_kwargs)
        model = build_model(**config)
    for state_dict in state_dicts:
        weight_import.import_state_dict(model, state_dict)
    return model
