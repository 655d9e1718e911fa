"""The flags of export.py (`define_flags`); `config_from_flags` turns them
into one validated `ExportConfig`."""

from absl import flags

from rmtl_tf.cli.flag_groups import define
from rmtl_tf.export.config import ExportConfig
from rmtl_tf.export.quantize import DEFAULT_CALIBRATION_EXAMPLES

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Defines export.py's flags on `flag_values` (skips those it has)."""
    fv = flag_values
    required = [
        name for name, text in (
            ("model_dir", "Directory of the trained model."),
            ("export_dir", "Base directory of the exports."))
        if define(flags.DEFINE_string, name, None, fv, help=text)]
    define(flags.DEFINE_string, "model_name", "rmtl", fv,
           help="Model name (TF Serving's model name).")
    define(flags.DEFINE_integer, "version", None, fv,
           help="Version number; default: the next free one.")
    define(flags.DEFINE_bool, "tflite", True, fv,
           help="Write the float32 .tflite file.")
    define(flags.DEFINE_list, "quantize", [], fv, help="Quantized .tflite "
           "files to write too: any of dynamic, float16, int8 (none: only "
           "float32). int8 calibrates on the training images of the model's "
           "dataset (--calibration_examples).")
    define(flags.DEFINE_integer, "calibration_examples",
           DEFAULT_CALIBRATION_EXAMPLES, fv,
           help="Images per signature for int8 calibration, from the "
           "training split of the dataset the model was trained on (its "
           "summary.json).")
    define(flags.DEFINE_string, "calibration_data_dir", None, fv,
           help="The prepared dataset's folder for int8 calibration, if it "
           "moved since training (default: the training run's --data_dir).")
    define(flags.DEFINE_list, "fold_task", [], fv, help="Tasks to also "
           "export folded (modulators and BatchNorm folded into plain "
           "convs: the fastest graph for one task) as the model "
           "<model_name>_<task>_folded.")
    define(flags.DEFINE_bool, "dynamic_image_size", False, fv,
           help="Serve any height and width (>= 32), not only the training "
           "size.")
    define(flags.DEFINE_bool, "task_packs", False, fv, help="Also save each "
           "task's pack (its own weights, installable on any model with the "
           "same bank).")
    define(flags.DEFINE_bool, "fold_modulators", False, fv, help="Trace the "
           "fused graph: the TFLite file then holds a plain network per task "
           "(fastest for one task), with one bank copy per task.")
    define(flags.DEFINE_bool, "overwrite", False, fv, help="Replace the "
           "files of an existing --version (without it, an existing version "
           "is an error and is left intact).")
    define(flags.DEFINE_enum, "precision", "float32", fv,
           enum_values=["float32", "bfloat16"], help="Compute dtype of the "
           "SavedModel's signatures. bfloat16: several times faster on CPUs "
           "with AMX/AVX512-BF16, float32 inputs and outputs, weights stored "
           "once in float32; TFLite files stay float32.")
    if required:
        flags.mark_flags_as_required(required, flag_values=fv)


def config_from_flags(flag_values=FLAGS):
    """One validated `ExportConfig` from the parsed flags (--quantize=none
    adds nothing: the float32 file is --tflite)."""
    fv = flag_values
    return ExportConfig(
        model_dir=fv.model_dir, export_dir=fv.export_dir,
        model_name=fv.model_name, version=fv.version, tflite=fv.tflite,
        quantize_modes=[m for m in fv.quantize if m != "none"],
        calibration_examples=fv.calibration_examples,
        calibration_data_dir=fv.calibration_data_dir,
        fold_tasks=fv.fold_task, dynamic_image_size=fv.dynamic_image_size,
        task_packs=fv.task_packs, fold_modulators=fv.fold_modulators,
        overwrite=fv.overwrite, precision=fv.precision)
