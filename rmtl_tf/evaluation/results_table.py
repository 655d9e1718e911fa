"""The paper-style results table: one row per variant, one column per task's
headline metric, then dm (vs the single-task references) and parameters.

mIoU, maxF and ODS F are shown in %, as the papers print them; normals in
degrees; depth RMSE in metres.
"""

import os

from rmtl_tf import atomic_files
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


def _mean_std(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5


def aggregate_seeds(tables):
    """Rows of several runs of one table (one per seed), as mean and
    sample standard deviation.

    Args:
        tables: the JSON of `experiments/results_table.py --output` per
            seed ({"reference", "rows": [{"name", "values", "dm",
            "parameters"}]}), with the same rows in the same order.

    Returns:
        A list of {"name", "values": {task: (mean, std)}, "dm": (mean, std)
        or None, "parameters", "seeds": n}.
    """
    if not tables:
        raise ValueError("Give at least one table to aggregate.")
    names = [row["name"] for row in tables[0]["rows"]]
    for i, table in enumerate(tables[1:], start=1):
        other = [row["name"] for row in table["rows"]]
        if other != names:
            raise ValueError(f"Table {i} has rows {other}; table 0 has "
                             f"{names}. Aggregate runs of the same table.")
    aggregated = []
    for j, name in enumerate(names):
        rows = [table["rows"][j] for table in tables]
        tasks = list(rows[0]["values"])
        dms = [row["dm"] for row in rows]
        aggregated.append({
            "name": name,
            "values": {t: _mean_std([row["values"][t] for row in rows])
                       for t in tasks},
            "dm": None if None in dms else _mean_std(dms),
            "parameters": rows[0].get("parameters"),
            "seeds": len(rows)})
    return aggregated


def separated(a, b):
    """+1 if mean a exceeds mean b by more than the sum of their standard
    deviations, -1 if the reverse, 0 when the difference is within that
    spread. `a`, `b`: (mean, std)."""
    gap, spread = a[0] - b[0], a[1] + b[1]
    if gap > spread:
        return 1
    if -gap > spread:
        return -1
    return 0


def dm_orderings(aggregated):
    """Sentences on the dm of each pair of rows: which is higher beyond the
    spread (difference of means > sum of standard deviations), and which
    pairs are within it."""
    rows = [r for r in aggregated if r["dm"] is not None]
    beyond, within = [], []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            side = separated(a["dm"], b["dm"])
            if side == 0:
                within.append(f"{a['name']} ~ {b['name']}")
            else:
                high, low = (a, b) if side > 0 else (b, a)
                beyond.append(f"{high['name']} > {low['name']}")
    return beyond, within


def format_seeds_markdown(aggregated, reference=None):
    """The table of `aggregate_seeds`: mean ± standard deviation per cell,
    then the dm orderings that hold beyond the spread."""
    tasks = []
    for row in aggregated:
        tasks += [t for t in row["values"] if t not in tasks]
    header = (["variant"] + [column_title(t) for t in tasks]
              + ["dm % ↑", "parameters"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in aggregated:
        cells = [row["name"]]
        for task in tasks:
            if task not in row["values"]:
                cells.append("-")
                continue
            mean, std = row["values"][task]
            cells.append(f"{format_value(task, mean)} ± "
                         f"{format_value(task, std)}")
        cells.append("-" if row["dm"] is None else
                     f"{row['dm'][0]:+.2f} ± {row['dm'][1]:.2f}")
        params = row["parameters"]
        cells.append("-" if params is None else f"{params / 1e6:.3f} M")
        lines.append("| " + " | ".join(cells) + " |")
    seeds = sorted({row["seeds"] for row in aggregated})
    lines += ["", f"Mean ± sample standard deviation over {seeds[0]} "
              "seeds." if len(seeds) == 1 else
              f"Mean ± sample standard deviation over {seeds} seeds."]
    if reference:
        lines += [f"{DM_NOTE} Reference: {reference}."]
    beyond, within = dm_orderings(aggregated)
    lines += ["", "dm ordered beyond the spread (difference of means > sum "
              "of the standard deviations): "
              + ("; ".join(beyond) if beyond else "none") + ".",
              "Within the spread: " + ("; ".join(within) if within else
                                       "none") + "."]
    return "\n".join(lines)


def write_table(path, markdown, data):
    """Writes `markdown` to `path` and `data` as JSON beside it (same name,
    .json); each file atomically (temp file, rename)."""
    atomic_files.write_text(path, markdown + "\n")
    atomic_files.write_json(os.path.splitext(path)[0] + ".json", data,
                            indent=1)
