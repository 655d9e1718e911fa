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

from absl import logging

from rmtl_tf.cli import errors, eval_flags
from rmtl_tf.evaluation import evaluate_lib


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    results = evaluate_lib.run_evaluation(eval_flags.config_from_flags())
    print(results["table"])
    print(f"Results: {results['json']}")


if __name__ == "__main__":
    errors.run(eval_flags.define_flags, main)
