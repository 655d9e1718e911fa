"""Exports a trained model for TF Serving (SavedModel) and LiteRT (TFLite).

Usage:
  python export.py --model_dir=/tmp/rmtl_demo --export_dir=/tmp/rmtl_export
  # -> /tmp/rmtl_export/rmtl/1/ (SavedModel) and rmtl/rmtl-1.tflite, with
  #    one signature per task plus serving_default (all tasks).
  python export.py --model_dir=/tmp/rmtl_demo --export_dir=/tmp/rmtl_export \
      --quantize=dynamic,float16,int8 --fold_task=semseg --task_packs
  # -> also rmtl-2-{dynamic,float16,int8}.tflite, the folded semseg model
  #    rmtl_semseg_folded/2/ (+ its TFLite files), rmtl/packs/<task>-2.npz.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # pylint: disable=wrong-import-position

from rmtl_tf.cli.errors import run_cli  # pylint: disable=wrong-import-position

_MODEL_DIR = flags.DEFINE_string("model_dir", None,
                                 "Directory of the trained model.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None,
                                  "Base directory of the exports.")
_MODEL_NAME = flags.DEFINE_string("model_name", "rmtl",
                                  "Model name (TF Serving's model name).")
_VERSION = flags.DEFINE_integer("version", None,
                                "Version number; default: the next free one.")
_TFLITE = flags.DEFINE_bool("tflite", True,
                            "Write the float32 .tflite file.")
_QUANTIZE = flags.DEFINE_list(
    "quantize", [], "Quantized .tflite files to write too: any of dynamic, "
    "float16, int8 (none: only float32). int8 calibrates on the training "
    "images of the model's dataset (--calibration_examples).")
_CALIBRATION_EXAMPLES = flags.DEFINE_integer(
    "calibration_examples", 32, "Images per signature for int8 calibration, "
    "from the training split of the dataset the model was trained on (its "
    "summary.json).")
_CALIBRATION_DATA_DIR = flags.DEFINE_string(
    "calibration_data_dir", None, "The prepared dataset's folder for int8 "
    "calibration, if it moved since training (default: the training "
    "run's --data_dir).")
_FOLD_TASK = flags.DEFINE_list(
    "fold_task", [], "Tasks to also export folded (modulators and "
    "BatchNorm folded into plain convs: the fastest graph for one task) as "
    "the model <model_name>_<task>_folded.")
_DYNAMIC_IMAGE_SIZE = flags.DEFINE_bool(
    "dynamic_image_size", False,
    "Serve any height and width (>= 32), not only the training size.")
_TASK_PACKS = flags.DEFINE_bool(
    "task_packs", False, "Also save each task's pack (its own weights, "
    "installable on any model with the same bank).")
_FOLD_MODULATORS = flags.DEFINE_bool(
    "fold_modulators", False,
    "Trace the fused graph: the TFLite file then holds a plain network per "
    "task (fastest for one task), with one bank copy per task.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace the files of an existing --version "
    "(without it, an existing version is an error and is left intact).")
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "bfloat16"],
    "Compute dtype of the SavedModel's signatures. bfloat16: several times "
    "faster on CPUs with AMX/AVX512-BF16, float32 inputs and outputs, "
    "weights stored once in float32; TFLite files stay float32.")
flags.mark_flags_as_required(["model_dir", "export_dir"])


def _print_result(result, indent=""):
    from rmtl_tf.export import export_metadata, runners, tflite_file  # pylint: disable=import-outside-toplevel
    try:
        interpreter, _ = runners.litert()
    except ImportError:
        interpreter = None
    print(f"{indent}SavedModel: {result['saved_model']}")
    for mode, path in result["tflite_files"].items():
        label = "TFLite:" if mode == "none" else f"TFLite {mode}:"
        size = os.path.getsize(path) / 2**20
        print(f"{indent}{label:<16}{path} ({size:.2f} MB)")
        if interpreter is None:
            print(f"{indent}  (to list its signatures: pip install "
                  "ai-edge-litert)")
            continue
        for line in tflite_file.signature_summary(
                interpreter(model_path=path)):
            print(f"{indent}{line}")
    print(f"{indent}Signatures: {', '.join(result['signatures'])}")
    metadata = export_metadata.read(result["metadata"])
    print(f"{indent}Metadata:   {result['metadata']} (bank "
          f"{metadata['bank_fingerprint'][:12]})")
    previous = metadata["previous_version"]
    if previous:
        print(f"{indent}Since version {previous['version']}: new "
              f"{previous['new_tasks']}, unchanged "
              f"{previous['unchanged_tasks']}, changed "
              f"{previous['changed_tasks']}")


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines.
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}. Flags are "
                         "--name=value (in a --flagfile, one per line).")
    from rmtl_tf.export import export_lib, quantize  # pylint: disable=import-outside-toplevel
    from rmtl_tf.training.train_lib import load_model  # pylint: disable=import-outside-toplevel
    modes = [m for m in _QUANTIZE.value if m != "none"]
    for mode in modes:
        quantize.check_quantization(mode)
    model = load_model(_MODEL_DIR.value)
    images = None
    if "int8" in modes:
        size = export_lib.export_image_size(model)
        dataset, data_dir = quantize.training_data(_MODEL_DIR.value)
        data_dir = _CALIBRATION_DATA_DIR.value or data_dir
        print(f"int8 calibration: {_CALIBRATION_EXAMPLES.value} images of "
              f"the {dataset} training split (the model's).")
        images = quantize.calibration_images(
            size if None not in size else (64, 64),
            _CALIBRATION_EXAMPLES.value, dataset=dataset, data_dir=data_dir)
    result = export_lib.export(
        model, _EXPORT_DIR.value, _MODEL_NAME.value, _VERSION.value,
        tflite=_TFLITE.value, fold_modulators=_FOLD_MODULATORS.value,
        quantize_modes=modes, fold_tasks=_FOLD_TASK.value,
        dynamic_image_size=_DYNAMIC_IMAGE_SIZE.value,
        calibration_images=images, task_packs=_TASK_PACKS.value,
        overwrite=_OVERWRITE.value, precision=_PRECISION.value)
    _print_result(result)
    for task, folded in result["folded"].items():
        print(f"Folded {task}:")
        _print_result(folded, indent="  ")
    for task, path in result.get("packs", {}).items():
        print(f"Task pack {task}: {path} "
              f"({os.path.getsize(path) / 2**20:.2f} MB)")
    print(f"TF Serving config: {result['models_config']}")


if __name__ == "__main__":
    app.run(lambda argv: run_cli(main, argv))
