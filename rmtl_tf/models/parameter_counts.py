"""Parameter counts of a multi-task model and of every variant side by side."""

import math

from rmtl_tf.models.multitask_model import build_model
from rmtl_tf.models.variants import VARIANTS, get_variant


def _count(variables):
    return int(sum(math.prod(v.shape) for v in variables))


def parameter_summary(model):
    """Parameter counts of a `MultiTaskModel`.

    Returns a dict: `total`; `bank` (shared, frozen); `shared_trainable`
    (the "shared" backbone); `per_task` {task: parameters owned by the task,
    trainable and statistics alike}.
    """
    per_task = {t: _count(model.task_variables(t)) for t in model.tasks}
    summary = {
        "total": _count(model.weights),
        "bank": _count(model.bank_variables()),
        "shared_trainable": _count(model.shared_variables()),
        "per_task": per_task,
    }
    accounted = (summary["bank"] + summary["shared_trainable"]
                 + sum(per_task.values()))
    if accounted != summary["total"]:
        raise AssertionError(
            f"Parameters do not add up: {summary['total']} in the model, "
            f"{accounted} accounted for: a variable has no owner.")
    return summary


def format_summary(name, summary, single_task_total=None):
    """A markdown row block describing `summary` of variant `name`."""
    lines = [f"variant {name}: {summary['total']:,} parameters; frozen bank "
             f"{summary['bank']:,}; shared trainable "
             f"{summary['shared_trainable']:,}"]
    for task, n in summary["per_task"].items():
        fraction = (f" ({n / single_task_total:.1%} of a single-task "
                    "network)" if single_task_total else "")
        lines.append(f"  {task}: {n:,} own parameters{fraction}")
    return "\n".join(lines)


def summary_table(backbone, tasks, num_classes=None, **model_kwargs):
    """A markdown table of parameter counts of every variant on `tasks`.

    Columns: total, frozen bank, shared trainable, added per task (mean over
    tasks), and that as a fraction of one single-task network (`conv` with
    the first task). `model_kwargs`: more `build_model` arguments (head
    widths, image size, ...); each variant sets its own architecture and NFF.
    """
    for key in ("nff", "architecture", "backbone"):
        model_kwargs.pop(key, None)

    def count(name, model_tasks):
        spec = get_variant(name)
        model = build_model(backbone, list(model_tasks),
                            num_classes=num_classes,
                            architecture=spec.architecture, nff=spec.nff,
                            **model_kwargs)
        return parameter_summary(model)

    single = count("conv", tasks[:1])["total"]
    rows = [f"Parameters, {backbone}, {len(tasks)} tasks ({', '.join(tasks)})"
            f"; one single-task network: {single:,}.", "",
            "| variant | total | frozen bank | shared trainable | "
            "added per task | per task / single-task network |",
            "|---|---|---|---|---|---|"]
    for name in VARIANTS:
        summary = count(name, tasks)
        per_task = sum(summary["per_task"].values()) / len(tasks)
        rows.append(f"| {name} | {summary['total']:,} | {summary['bank']:,}"
                    f" | {summary['shared_trainable']:,} | {per_task:,.0f} |"
                    f" {per_task / single:.3f} |")
    return "\n".join(rows)
