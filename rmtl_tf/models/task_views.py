"""Per-task views of a multi-task model, shared by `MultiTaskModel` and
`ReparameterizedModel`: both hold a list `tasks`, bank layers (per-task
parts inside one layer) and `layer_owners` (layer name -> its task)."""

import keras

from rmtl_tf.models.layer_factory import BANK_LAYER_TYPES


def check_task(model, task):
    """Raises `ValueError` unless `task` is one of `model.tasks`."""
    if task not in model.tasks:
        raise ValueError(f"Unknown task {task!r}. This model's tasks "
                         f"are {model.tasks}.")


def task_variables(model, task):
    """Every variable owned by `task`: its parts of the bank layers and
    the weights of the layers it owns."""
    check_task(model, task)
    variables = []
    for layer in model.layers:
        if isinstance(layer, BANK_LAYER_TYPES):
            variables.extend(layer.task_variables(task))
        elif model.layer_owners.get(layer.name) == task:
            variables.extend(layer.weights)
    return variables


def task_model(model, tasks):
    """A model of the same layers with only `tasks`' outputs; called with
    an image, as `model` is (`model.input`, not a list of one input)."""
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    for task in tasks:
        check_task(model, task)
    return keras.Model(model.input, {t: model.output[t] for t in tasks},
                       name=f"{model.name}_{'_'.join(tasks)}")
