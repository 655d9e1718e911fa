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

from absl import logging  # pylint: disable=wrong-import-position

from rmtl_tf.cli import errors, export_flags  # pylint: disable=wrong-import-position
from rmtl_tf.export import export_lib, export_report, quantize  # pylint: disable=wrong-import-position
from rmtl_tf.export.saved_model import export_image_size  # pylint: disable=wrong-import-position
from rmtl_tf.models import model_dir as model_dir_lib  # pylint: disable=wrong-import-position


def _calibration_images(config, model):
    """int8 calibration images: the training split of the model's dataset
    (its summary.json), at the model's size."""
    size = export_image_size(model)
    dataset, data_dir = model_dir_lib.training_data(config.model_dir)
    data_dir = config.calibration_data_dir or data_dir
    print(f"int8 calibration: {config.calibration_examples} images of "
          f"the {dataset} training split (the model's).")
    return quantize.calibration_images(
        size if None not in size else (64, 64), config.calibration_examples,
        dataset=dataset, data_dir=data_dir)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines.
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}. Flags are "
                         "--name=value (in a --flagfile, one per line).")
    config = export_flags.config_from_flags()
    model = model_dir_lib.load_model(config.model_dir)
    images = (_calibration_images(config, model)
              if "int8" in config.quantize_modes else None)
    result = export_lib.export(model, calibration_images=images,
                               **config.export_kwargs())
    export_report.print_result(result)


if __name__ == "__main__":
    errors.run(export_flags.define_flags, main)
