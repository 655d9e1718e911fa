"""The flags of `python -m rmtl_tf.evaluate` (`define_flags`);
`config_from_flags` turns them into one `EvalConfig`."""

import os

from absl import flags

from rmtl_tf.cli import flag_groups, train_flags
from rmtl_tf.cli.flag_groups import define
from rmtl_tf.evaluation.evaluate_lib import EvalConfig

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Defines the evaluate CLI's flags on `flag_values`: train.py's (so a
    training flagfile parses; --model_dir is not required, an export has
    none) and the evaluation's own."""
    fv = flag_values
    train_flags.define_flags(fv, model_dir_required=False)
    define(flags.DEFINE_string, "saved_model", None, fv,
           help="Evaluate this exported SavedModel directory.")
    define(flags.DEFINE_string, "tflite", None, fv,
           help="Evaluate this exported .tflite file.")
    define(flags.DEFINE_string, "signature", None, fv, help="Export "
           "signature to run: a task's name or serving_default (all tasks). "
           "Default: each task through its own.")
    flag_groups.define_eval_split_flag(fv)
    define(flags.DEFINE_string, "output_dir", None, fv, help="Where "
           "results.json, pr_<task>.png and TensorBoard logs go. Default: "
           "<model_dir>/eval_<split>, or beside the export.")
    define(flags.DEFINE_string, "name", None, fv,
           help="Row label in the table (default: the path).")
    define(flags.DEFINE_list, "reference", [], fv, help="Single-task "
           "results.json files (one per task or one for all) to compute dm "
           "against.")
    define(flags.DEFINE_float, "edge_max_dist", None, fv, help="Edge match "
           "tolerance, fraction of the image diagonal. Default: by dataset "
           "(PASCAL 0.0075, NYUD/synthetic 0.011).")
    define(flags.DEFINE_integer, "edge_workers", None, fv, help="Threads "
           "scoring edge maps while the network runs the next batch "
           "(0: one after the other). Default: "
           "evaluate_lib.EDGE_WORKERS. The scores are the same.")
    define(flags.DEFINE_bool, "image_summaries", True, fv,
           help="Write TensorBoard panels and PR curves.")


def default_output_dir(model_dir, saved_model, tflite, split):
    """Where results go without --output_dir: beside the export, else in
    the model directory."""
    if saved_model:
        return os.path.normpath(saved_model) + f"_eval_{split}"
    if tflite:
        return os.path.splitext(tflite)[0] + f"_eval_{split}"
    return os.path.join(model_dir or "", f"eval_{split}")


def config_from_flags(flag_values=FLAGS):
    """One `EvalConfig` from the parsed flags. An export (--saved_model,
    --tflite) takes precedence over a flagfile's --model_dir; --image_size
    counts only when given (the training size is no padding size);
    --tasks unset: every task of the model or export."""
    fv = flag_values
    model_dir = None if fv.saved_model or fv.tflite else fv.model_dir
    image_size = (flag_groups.parse_image_size(fv.image_size)
                  if fv["image_size"].present else None)
    return EvalConfig(
        model_dir=model_dir, saved_model=fv.saved_model, tflite=fv.tflite,
        signature=fv.signature, tasks=fv.tasks, dataset=fv.dataset,
        data_dir=fv.data_dir, split=fv.split, image_size=image_size,
        batch_size=fv.batch_size, num_examples=fv.eval_examples,
        seed=fv.seed, edge_max_dist=fv.edge_max_dist,
        edge_workers=fv.edge_workers,
        output_dir=fv.output_dir or default_output_dir(
            model_dir, fv.saved_model, fv.tflite, fv.split),
        name=fv.name, references=fv.reference,
        image_summaries=fv.image_summaries)
