"""Exports a trained model for TF Serving (SavedModel) and LiteRT (TFLite).

Usage:
  python export.py --model_dir=/tmp/rmtl_demo --export_dir=/tmp/rmtl_export
  # -> /tmp/rmtl_export/rmtl/1/ (SavedModel) and rmtl/rmtl-1.tflite, with
  #    one signature per task plus serving_default (all tasks).
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
_TFLITE = flags.DEFINE_bool("tflite", True, "Also write the .tflite file.")
_FOLD_MODULATORS = flags.DEFINE_bool(
    "fold_modulators", False,
    "Trace the fused graph: the TFLite file then holds a plain network per "
    "task (fastest for one task), with one bank copy per task.")
flags.mark_flags_as_required(["model_dir", "export_dir"])


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines.
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    from rmtl_tf.export import export_lib  # pylint: disable=import-outside-toplevel
    from rmtl_tf.training.train_lib import load_model  # pylint: disable=import-outside-toplevel
    model = load_model(_MODEL_DIR.value)
    result = export_lib.export(model, _EXPORT_DIR.value, _MODEL_NAME.value,
                               _VERSION.value, tflite=_TFLITE.value,
                               fold_modulators=_FOLD_MODULATORS.value)
    print(f"SavedModel: {result['saved_model']}")
    if "tflite" in result:
        print(f"TFLite:     {result['tflite']}")
    print(f"Signatures: {', '.join(result['signatures'])}")


if __name__ == "__main__":
    app.run(lambda argv: run_cli(main, argv))
