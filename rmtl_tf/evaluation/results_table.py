"""The paper-style results table: one row per variant, one column per task's
headline metric, then dm (vs the single-task references) and parameters.

mIoU, maxF and ODS F are shown in %, as the papers print them; normals in
degrees; depth RMSE in metres.
"""

from rmtl_tf.metrics.multitask_score import delta_m
from rmtl_tf.metrics.task_metrics import headline

PERCENT = ("miou", "max_f", "ods_f")
DM_NOTE = ("dm: mean over tasks of (-1)^l (M - M_single) / M_single in %, "
           "l = 1 when lower is better: positive = better than the "
           "single-task reference.")


def merge_rows(parts):
    """One row from several evaluations (e.g. one single-task model per
    task): tasks merged, parameters summed (None if any is unknown)."""
    tasks, parameters, sources = {}, 0, []
    for part in parts:
        for task, metrics in part["tasks"].items():
            if task in tasks:
                raise ValueError(f"Task {task!r} appears twice in one row "
                                 f"(second time in {part.get('source')}).")
            tasks[task] = metrics
        if parameters is not None and part.get("parameters") is not None:
            parameters += int(part["parameters"])
        else:
            parameters = None
        sources.append(part.get("source"))
    return {"tasks": tasks, "parameters": parameters, "sources": sources}


def format_value(task, value):
    key = headline(task).key
    if key in PERCENT:
        return f"{100 * value:.2f}"
    if key == "rmse":
        return f"{value:.4f}"
    return f"{value:.2f}"


def column_title(task):
    head = headline(task)
    unit = " %" if head.key in PERCENT else ""
    arrow = "↓" if head.lower_is_better else "↑"
    return f"{task} {head.label}{unit} {arrow}"


def build_table(rows, reference=None, tasks=None):
    """Rows with dm: a list of dicts {"name", "values", "dm", "per_task",
    "parameters"}.

    Args:
        rows: list of (name, row) with row = {"tasks", "parameters"} (see
            `merge_rows`).
        reference: name of the single-task reference row, for dm.
        tasks: column order (default: in order of first appearance).
    """
    names = [name for name, _ in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"Row names must be unique. Received: {names}")
    if tasks is None:
        tasks = []
        for _, row in rows:
            tasks += [t for t in row["tasks"] if t not in tasks]
    ref = dict(rows).get(reference) if reference else None
    if reference and ref is None:
        raise ValueError(f"Unknown reference row {reference!r}; rows: "
                         f"{names}.")
    table = []
    for name, row in rows:
        values = {t: row["tasks"][t][headline(t).key]
                  for t in tasks if t in row["tasks"]}
        entry = {"name": name, "values": values, "dm": None,
                 "per_task": None, "parameters": row.get("parameters")}
        if ref is not None:
            common = [t for t in tasks if t in values and t in ref["tasks"]]
            if common:
                entry["dm"], entry["per_task"] = delta_m(
                    {t: row["tasks"][t] for t in common}, ref["tasks"],
                    common)
        table.append(entry)
    return tasks, table


def format_markdown(rows, reference=None, tasks=None):
    """The markdown table (with the dm sign convention below it)."""
    tasks, table = build_table(rows, reference, tasks)
    header = ["variant"] + [column_title(t) for t in tasks]
    header += ["dm % ↑", "parameters"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for entry in table:
        cells = [entry["name"]]
        cells += [format_value(t, entry["values"][t])
                  if t in entry["values"] else "-" for t in tasks]
        cells.append("-" if entry["dm"] is None else f"{entry['dm']:+.2f}")
        params = entry["parameters"]
        cells.append("-" if params is None else f"{params / 1e6:.3f} M")
        lines.append("| " + " | ".join(cells) + " |")
    if reference:
        lines += ["", f"{DM_NOTE} Reference: {reference}."]
    return "\n".join(lines)
