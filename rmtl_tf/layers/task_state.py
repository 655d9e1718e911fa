"""Per-task state of the bank layers: task names and their variables.

The checks and the save/load of `ReparamConv2D` and `AdapterConv2D`, which
both hold a frozen `bank` and, per task, the variables `task_variables(task)`
lists in a list `tasks`.
"""

import contextlib
import re

TASK_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def validate_task_name(task):
    """Raises `ValueError` unless `task` can name a variable and a signature."""
    if not isinstance(task, str) or not TASK_NAME_PATTERN.match(task):
        raise ValueError(
            "A task name must be lower-case letters, digits and '_', start "
            "with a letter and be at most 64 characters long (it names "
            f"variables and export signatures). Received: task={task!r}"
        )
    return task


def check_new_task(layer, task):
    """Raises `ValueError` unless `task` is a valid name new to `layer`."""
    validate_task_name(task)
    if task in layer.tasks:
        raise ValueError(
            f"Task {task!r} already exists in layer {layer.name!r}; its "
            f"tasks are {layer.tasks}. Task names must be unique."
        )


def check_task(layer, task):
    """Raises `ValueError` unless `layer` has `task`."""
    if task not in layer.tasks:
        raise ValueError(
            f"Unknown task {task!r} for layer {layer.name!r}. "
            f"Expected one of {layer.tasks}."
        )


@contextlib.contextmanager
def unlocked_tracker(layer):
    """Lets a built `layer` add weights (Keras locks it after `build`)."""
    tracker = layer._tracker  # pylint: disable=protected-access
    locked = tracker.locked
    tracker.unlock()
    try:
        yield
    finally:
        if locked:
            tracker.lock()


def save_bank_and_tasks(layer, store):
    """Saves `layer.bank` and every task's variables under stable names."""
    for name, variable in _bank_and_task_variables(layer).items():
        store[name] = variable.numpy()


def load_bank_and_tasks(layer, store):
    """Loads what `save_bank_and_tasks` wrote, checking names and shapes."""
    named = _bank_and_task_variables(layer)
    stored = set(store.keys())
    if stored != set(named):
        raise ValueError(
            f"Layer {layer.name!r} cannot load these weights: missing "
            f"{sorted(set(named) - stored)}, unexpected "
            f"{sorted(stored - set(named))}. The checkpoint was written "
            "by a model with other tasks or another architecture."
        )
    for name, variable in named.items():
        value = store[name]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Layer {layer.name!r}: weight {name!r} has shape "
                f"{tuple(value.shape)} in the checkpoint, expected "
                f"{tuple(variable.shape)}."
            )
        variable.assign(value)


def _bank_and_task_variables(layer):
    named = {"bank": layer.bank}
    for task in layer.tasks:
        for variable in layer.task_variables(task):
            named[variable.name] = variable
    return named
