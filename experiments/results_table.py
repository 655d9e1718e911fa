r"""Assembles the paper's kind of table from trained models: one row per
variant, the headline metric of every task, dm against a reference row, and
parameters.

A row is `NAME=PATH[,PATH...]`: each PATH a model directory (evaluated here,
results kept in PATH/eval_<split>/results.json) or a results.json file
already written by `python -m rmtl_tf.evaluate`. A row of several paths is
one variant made of several models, e.g. one single-task network per task:
their tasks are merged and their parameters summed.

  python experiments/results_table.py \
      --row="single-task=runs/st_semseg,runs/st_depth" \
      --row="RCM=runs/rcm" --reference=single-task \
      --output=experiments/results/table.md

Evaluation settings (dataset, split, examples, seed) apply to every model;
models are scored with the authors' protocol (`python -m rmtl_tf.evaluate`:
whole images, their metrics; docs/evaluation.md, "Evaluation protocol").
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # pylint: disable=wrong-import-position

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from rmtl_tf.cli import errors, flag_groups  # pylint: disable=wrong-import-position
from rmtl_tf.evaluation import evaluate_lib, results_table  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """The rows, and the evaluation settings every model is scored with
    (the shared dataset and read flags, --split)."""
    fv = flag_values
    flags.DEFINE_multi_string(
        "row", [], "NAME=PATH[,PATH...]: a variant and its model "
        "directories or results.json files. Repeat for each row, in table "
        "order.", flag_values=fv)
    flags.DEFINE_string(
        "reference", None, "Name of the row dm is computed against (the "
        "single-task networks).", flag_values=fv)
    flag_groups.define_dataset_flags(fv)
    flag_groups.define_eval_split_flag(fv)
    flag_groups.define_read_flags(fv)
    flags.DEFINE_bool(
        "reuse", True, "Reuse a model's results.json when it was written "
        "with the same dataset, split, examples and seed.", flag_values=fv)
    flags.DEFINE_string(
        "output", None, "Also write the markdown table here (and the rows "
        "as JSON beside it, same name with .json).", flag_values=fv)


def parse_row(text):
    """'NAME=PATH[,PATH...]' -> (name, [paths])."""
    name, sep, paths = text.partition("=")
    paths = [p.strip() for p in paths.split(",") if p.strip()]
    if not sep or not name.strip() or not paths:
        raise ValueError("--row must be NAME=PATH[,PATH...]. Received: "
                         f"row={text!r}")
    return name.strip(), paths


def _load_json(path):
    import json  # pylint: disable=import-outside-toplevel
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def results_of(path, settings, log=print):
    """The evaluation results of a model directory or results file."""
    if path.endswith(".json"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No results file {path!r}.")
        return _load_json(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"The model directory does not exist: "
                                f"{path!r}.")
    output_dir = os.path.join(path, f"eval_{settings['split']}")
    stored = os.path.join(output_dir, "results.json")
    if FLAGS.reuse and os.path.isfile(stored):
        data = _load_json(stored)
        if all(data.get(k) == settings[k]
               for k in ("dataset", "split", "num_examples", "seed")):
            log(f"Reusing {stored}.")
            return data
    config = evaluate_lib.EvalConfig(
        output_dir=output_dir, model_dir=path, dataset=settings["dataset"],
        data_dir=settings["data_dir"], split=settings["split"],
        batch_size=settings["batch_size"],
        num_examples=settings["num_examples"], seed=settings["seed"])
    return evaluate_lib.run_evaluation(config, log=log)


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.row:
        raise ValueError("Give at least one --row=NAME=PATH[,PATH...].")
    settings = {"dataset": FLAGS.dataset, "data_dir": FLAGS.data_dir,
                "split": FLAGS.split, "num_examples": FLAGS.eval_examples,
                "batch_size": FLAGS.batch_size, "seed": FLAGS.seed}
    rows, details = [], []
    for text in FLAGS.row:
        name, paths = parse_row(text)
        parts = []
        for path in paths:
            result = results_of(path, settings)
            parts.append({"tasks": result["tasks"],
                          "parameters": result.get("parameters"),
                          "source": path})
        rows.append((name, results_table.merge_rows(parts)))
        details.append({"name": name, "paths": paths})
    table = results_table.format_markdown(rows, FLAGS.reference)
    _, entries = results_table.build_table(rows, FLAGS.reference)
    print(table)
    if FLAGS.output:
        results_table.write_table(
            FLAGS.output, table,
            {"settings": settings, "reference": FLAGS.reference,
             "rows": [{**d, **e} for d, e in zip(details, entries)]})


if __name__ == "__main__":
    errors.run(define_flags, main)
