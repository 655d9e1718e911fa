"""The task registry: what each dense task outputs, how it is trained and scored.

Adding a task kind is one `TaskSpec` entry in `TASKS`. Task names given
as a parameter (`--tasks`, a config, a model) are one type, `Tasks`, made
by `parse_tasks`.
"""

import dataclasses
from typing import Callable, Optional, Tuple

from rmtl_tf.layers.task_state import validate_task_name
from rmtl_tf.tasks import losses

# Task names as a parameter: validated, in order, no duplicates.
Tasks = Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How one dense prediction task is modelled.

    Attributes:
        name: the task name (also its output and signature name).
        channels: output channels, or `None` when the dataset gives the number
            of classes.
        activation: what turns the model output into a prediction at serving
            time: "softmax", "sigmoid", "l2_normalize" or "linear".
        loss: `(y_true, y_pred) -> scalar`, on the raw model output.
        loss_weight: the paper's weight for this loss.
        metric: name of the simple metric reported by training.
        lower_is_better: direction of `metric`.
    """

    name: str
    channels: Optional[int]
    activation: str
    loss: Callable
    loss_weight: float
    metric: str
    lower_is_better: bool


TASKS = {
    spec.name: spec
    for spec in (
        TaskSpec("semseg", None, "softmax",
                 losses.masked_sparse_cross_entropy, 1.0, "miou", False),
        TaskSpec("human_parts", 7, "softmax",
                 losses.masked_sparse_cross_entropy, 2.0, "miou", False),
        TaskSpec("saliency", 1, "sigmoid",
                 losses.binary_cross_entropy, 5.0, "iou", False),
        TaskSpec("normals", 3, "l2_normalize",
                 losses.masked_l1, 10.0, "mean_angle_error", True),
        TaskSpec("edge", 1, "sigmoid",
                 losses.balanced_binary_cross_entropy, 50.0, "f1", False),
        TaskSpec("depth", 1, "linear",
                 losses.masked_l1, 1.0, "rmse", True),
    )
}


def get_task(name):
    """Returns the `TaskSpec` of `name`, with a clear error if unknown."""
    validate_task_name(name)
    if name not in TASKS:
        raise ValueError(
            f"Unknown task {name!r}. Expected one of {sorted(TASKS)}."
        )
    return TASKS[name]


def output_channels(name, num_classes=None):
    """Output channels of task `name`; `num_classes` maps task -> classes."""
    spec = get_task(name)
    if num_classes and name in num_classes:
        return int(num_classes[name])
    if spec.channels is None:
        raise ValueError(
            f"Task {name!r} needs its number of classes from the dataset. "
            f"Received: num_classes={num_classes}"
        )
    return spec.channels


def parse_tasks(tasks) -> Optional[Tasks]:
    """The `Tasks` of a sequence or comma-separated string of task names.

    Each name must be a valid task name of `TASKS`, and appear once.
    `None` stays `None` (the caller decides what it means); an empty string
    gives `()`.
    """
    if tasks is None:
        return None
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    tasks = list(tasks)
    seen = set()
    for task in tasks:
        get_task(task)
        if task in seen:
            raise ValueError(f"Duplicate task {task!r} in tasks={tasks}.")
        seen.add(task)
    return tuple(tasks)
