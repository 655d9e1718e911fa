"""Task packs: one task's own weights as a small file, installable into
any model built on the same bank, as adapter libraries do for LoRA.

A task owns its modulators (NFF `v` and `g`), BatchNorms, shortcut convs
and head; the bank is shared and frozen. A pack holds exactly those
weights, keyed `"<layer>/<weight>"`, plus what is needed to check and
rebuild the task: the bank fingerprint, the architecture, the number of
classes. Installing a pack on a model with another bank fails: the
modulators only mean something on the bank they were trained with.

Format: an `.npz` (no pickle) with one array per weight and
`__pack__.json`, the metadata as UTF-8 bytes.

Example:

```python
save_pack(model, "depth", "depth.npz")        # ~1/N of the model
other = install_pack(other, "depth.npz")      # other + depth, same bank
```
"""

import dataclasses
import json

import numpy as np

from rmtl_tf.export import fingerprint
from rmtl_tf.models import multitask_model
from rmtl_tf.models import npz_file

FORMAT = "rmtl_task_pack"
FORMAT_VERSION = 1
METADATA_KEY = "__pack__.json"
# Must agree between the pack's model and the target model.
ARCHITECTURE_KEYS = ("architecture", "backbone", "width_multiplier",
                     "head_channels", "low_level_channels", "aspp_rates",
                     "nff")


@dataclasses.dataclass
class TaskPack:
    """One task's weights and what they need. See the module docstring."""
    task: str
    bank_fingerprint: str
    architecture: dict
    num_classes: dict
    weights: dict

    @property
    def num_bytes(self):
        return sum(v.nbytes for v in self.weights.values())


def _architecture(model):
    config = dict(model.get_config())
    config.setdefault("architecture", "rc")  # Models from before the key.
    return {k: (list(config[k]) if isinstance(config[k], (list, tuple))
                else config[k]) for k in ARCHITECTURE_KEYS}


def _check_packable(model):
    if not fingerprint.has_bank(model):
        raise ValueError(
            "Task packs need a frozen bank shared by the tasks (the 'rc', "
            "'ra_series' and 'ra_parallel' architectures); this model's "
            f"architecture is {getattr(model, 'architecture', None)!r}.")


def make_pack(model, task):
    """The `TaskPack` of `task` in `model`."""
    _check_packable(model)
    num_classes = {k: v for k, v in model.num_classes.items() if k == task}
    return TaskPack(task=task,
                    bank_fingerprint=fingerprint.bank_fingerprint(model),
                    architecture=_architecture(model),
                    num_classes=num_classes,
                    weights=fingerprint.task_weights(model, task))


def save_pack(model, task, path):
    """Writes `task`'s pack to `path` (an `.npz`), atomically."""
    pack = make_pack(model, task)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "task": pack.task, "bank_fingerprint": pack.bank_fingerprint,
                "architecture": pack.architecture,
                "num_classes": pack.num_classes,
                "task_fingerprint": fingerprint.task_fingerprint(model,
                                                                 task)}
    arrays = dict(pack.weights)
    arrays[METADATA_KEY] = np.frombuffer(
        json.dumps(metadata, sort_keys=True).encode(), np.uint8)
    npz_file.atomic_save_npz(path, arrays)
    return path


def load_pack(path):
    """Reads a pack written by `save_pack`."""
    data = npz_file.load_npz(path, what="Task pack")
    if METADATA_KEY not in data:
        raise ValueError(f"{path!r} is not an rmtl_tf task pack (no "
                         f"{METADATA_KEY}).")
    metadata = json.loads(data.pop(METADATA_KEY).tobytes().decode())
    weights = data
    if (metadata.get("format") != FORMAT
            or metadata.get("format_version") != FORMAT_VERSION):
        raise ValueError(f"{path!r} is not an rmtl_tf task pack of format "
                         f"version {FORMAT_VERSION}.")
    return TaskPack(task=metadata["task"],
                    bank_fingerprint=metadata["bank_fingerprint"],
                    architecture=metadata["architecture"],
                    num_classes=metadata["num_classes"], weights=weights)


def _check_compatible(model, pack):
    _check_packable(model)
    bank = fingerprint.bank_fingerprint(model)
    if bank != pack.bank_fingerprint:
        raise ValueError(
            f"Task pack {pack.task!r} was trained on bank "
            f"{fingerprint.short(pack.bank_fingerprint)}, this model's bank "
            f"is {fingerprint.short(bank)}: a pack only computes its task on "
            "the bank it was trained with. Install it on a model built from "
            "that bank.")
    found = _architecture(model)
    diff = [f"{k}: pack has {pack.architecture.get(k)!r}, model has "
            f"{found[k]!r}" for k in ARCHITECTURE_KEYS
            if pack.architecture.get(k) != found[k]]
    if diff:
        raise ValueError(f"Task pack {pack.task!r} comes from another "
                         f"architecture ({'; '.join(diff)}).")


def install_pack(model, pack, overwrite=False):
    """Returns a model computing `pack`'s task on `model`'s bank.

    If `model` lacks the task, it is added (`rmtl_tf.add_task`: the other
    tasks keep their layers and outputs) and the returned model is a new
    one; with `overwrite=True` an existing task's weights are replaced in
    place. `pack` is a `TaskPack` or a path.
    """
    if not isinstance(pack, TaskPack):
        pack = load_pack(pack)
    _check_compatible(model, pack)
    if pack.task in model.tasks:
        if not overwrite:
            raise ValueError(
                f"The model already has task {pack.task!r}. Pass "
                "overwrite=True to replace its weights with the pack's.")
        target = model
    else:
        target = multitask_model.add_task(model, pack.task,
                                          num_classes=pack.num_classes)
    variables = fingerprint.task_variables_by_key(target, pack.task)
    missing = sorted(set(variables) - set(pack.weights))
    unexpected = sorted(set(pack.weights) - set(variables))
    if missing or unexpected:
        raise ValueError(f"Task pack {pack.task!r} does not fit this model: "
                         f"missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}.")
    for key, variable in variables.items():
        value = pack.weights[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"Task pack {pack.task!r}: weight {key!r} has "
                             f"shape {tuple(value.shape)}, the model expects "
                             f"{tuple(variable.shape)}.")
    for key, variable in variables.items():
        variable.assign(pack.weights[key])
    return target
