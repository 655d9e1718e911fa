"""The multi-task performance score dm against single-task references.

    dm = (1/T) sum_t (-1)^{l_t} (M_t - M_single,t) / M_single,t   (x 100 %)

with l_t = 1 when lower is better (depth RMSE, normals mean error): a
positive dm means better than the single-task networks on average, as in the
multi-task survey's reference code. M_t is each task's headline metric
(`task_metrics.HEADLINE`).
"""

import json
import os

from rmtl_tf.metrics.task_metrics import headline


def headline_values(results):
    """{task: headline value} from a results dict.

    `results` maps task -> metrics dict (as `evaluate_lib.evaluate` writes
    under "tasks") or task -> number.
    """
    values = {}
    for task, metrics in results.items():
        key = headline(task).key
        if isinstance(metrics, dict):
            if key not in metrics:
                raise ValueError(f"The results of task {task!r} have no "
                                 f"{key!r} (its headline metric); keys: "
                                 f"{sorted(metrics)}.")
            metrics = metrics[key]
        values[task] = float(metrics)
    return values


def delta_m(results, reference, tasks=None):
    """dm in %, and the signed relative change of each task in %.

    Args:
        results: {task: metrics dict or headline value} of the model.
        reference: the same for the single-task references.
        tasks: the tasks to average over (default: those of `results`).

    Returns:
        `(dm, {task: (-1)^l_t (M_t - M_ref) / M_ref x 100})`.
    """
    values, ref = headline_values(results), headline_values(reference)
    tasks = list(values) if tasks is None else list(tasks)
    if not tasks:
        raise ValueError("dm needs at least one task.")
    per_task = {}
    for task in tasks:
        if task not in values:
            raise ValueError(f"No result for task {task!r}; have "
                             f"{sorted(values)}.")
        if task not in ref:
            raise ValueError(f"No single-task reference for task {task!r}; "
                             f"have {sorted(ref)}.")
        if ref[task] == 0:
            raise ValueError(f"The reference {headline(task).key} of task "
                             f"{task!r} is 0: dm divides by it.")
        sign = -1.0 if headline(task).lower_is_better else 1.0
        per_task[task] = 100.0 * sign * (values[task] - ref[task]) / ref[task]
    return sum(per_task.values()) / len(per_task), per_task


def load_task_results(paths):
    """Merges the "tasks" of results JSON files (one per single-task model,
    or one for all); a task found in two files is an error."""
    merged = {}
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No results file {path!r}.")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if "tasks" not in data:
            raise ValueError(f"{path!r} is not an evaluation results file "
                             "(no 'tasks').")
        for task, metrics in data["tasks"].items():
            if task in merged:
                raise ValueError(f"Task {task!r} is in two reference files "
                                 f"(the second: {path!r}).")
            merged[task] = metrics
    return merged
