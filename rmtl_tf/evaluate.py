r"""Evaluates a trained model, or an exported SavedModel / TFLite file, with
the benchmark metrics the papers report; writes JSON, PR-curve PNGs and
TensorBoard panels, and prints a markdown results table.

Usage (from the repository root, so the config's relative paths resolve):
  python -m rmtl_tf.evaluate --flagfile=configs/demo.cfg --model_dir=runs/demo
  # An export, each task through its own signature (or --signature=NAME):
  python -m rmtl_tf.evaluate --flagfile=configs/demo.cfg \
      --saved_model=runs/demo_export/rmtl/1
  python -m rmtl_tf.evaluate --flagfile=configs/demo.cfg \
      --tflite=runs/demo_export/rmtl/rmtl-1.tflite --signature=depth
  # dm against single-task results files:
  python -m rmtl_tf.evaluate ... --reference=st_semseg.json,st_depth.json

The training flagfile gives the dataset, split sizes, batch size, seed and
`--tasks`, the tasks to score (without it: every task of the model or
export); a task the model lacks is an error.
`--saved_model` / `--tflite` take precedence over the flagfile's
`--model_dir`.
"""

import os

from absl import app, flags, logging

# The training flags (defined once there), so a training flagfile parses.
from rmtl_tf.cli import train_flags  # pylint: disable=unused-import
from rmtl_tf.cli.errors import run_cli

_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "Evaluate this exported SavedModel directory.")
_TFLITE = flags.DEFINE_string("tflite", None,
                              "Evaluate this exported .tflite file.")
_SIGNATURE = flags.DEFINE_string(
    "signature", None, "Export signature to run: a task's name or "
    "serving_default (all tasks). Default: each task through its own.")
_SPLIT = flags.DEFINE_enum("split", "validation", ["validation", "test"],
                           "Split to evaluate.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where results.json, pr_<task>.png and TensorBoard "
    "logs go. Default: <model_dir>/eval_<split>, or beside the export.")
_NAME = flags.DEFINE_string("name", None,
                            "Row label in the table (default: the path).")
_REFERENCE = flags.DEFINE_list(
    "reference", [], "Single-task results.json files (one per task or one "
    "for all) to compute dm against.")
_EDGE_MAX_DIST = flags.DEFINE_float(
    "edge_max_dist", None, "Edge match tolerance, fraction of the image "
    "diagonal. Default: by dataset (PASCAL 0.0075, NYUD/synthetic 0.011).")
_IMAGES = flags.DEFINE_bool("image_summaries", True,
                            "Write TensorBoard panels and PR curves.")

# Training flagfiles name a model_dir and tasks; for evaluation neither is
# required (an export has no model_dir; tasks default to all).
flags.FLAGS.set_default("model_dir", "")
flags.FLAGS.set_default("tasks", [])


def _flag(name):
    """A training flag's value (defined in `rmtl_tf.cli.train_flags`)."""
    return flags.FLAGS[name].value


def _default_output_dir(model_dir, saved_model, tflite, split):
    if saved_model:
        return os.path.normpath(saved_model) + f"_eval_{split}"
    if tflite:
        return os.path.splitext(tflite)[0] + f"_eval_{split}"
    return os.path.join(model_dir, f"eval_{split}")


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    from rmtl_tf.evaluation import evaluate_lib  # pylint: disable=import-outside-toplevel
    export = _SAVED_MODEL.value or _TFLITE.value
    model_dir = None if export else _flag("model_dir")
    config = evaluate_lib.EvalConfig(
        model_dir=model_dir, saved_model=_SAVED_MODEL.value,
        tflite=_TFLITE.value, signature=_SIGNATURE.value,
        tasks=_flag("tasks"), dataset=_flag("dataset"),
        data_dir=_flag("data_dir"), split=_SPLIT.value,
        image_size=(_flag("image_size")
                    if flags.FLAGS["image_size"].present else None),
        batch_size=_flag("batch_size"), num_examples=_flag("eval_examples"),
        seed=_flag("seed"),
        edge_max_dist=_EDGE_MAX_DIST.value,
        output_dir=_OUTPUT_DIR.value or _default_output_dir(
            model_dir, _SAVED_MODEL.value, _TFLITE.value, _SPLIT.value),
        name=_NAME.value, references=_REFERENCE.value,
        image_summaries=_IMAGES.value)
    results = evaluate_lib.run_evaluation(config)
    print(results["table"])
    print(f"Results: {results['json']}")


if __name__ == "__main__":
    app.run(lambda argv: run_cli(main, argv))
