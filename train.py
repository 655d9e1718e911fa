"""Trains tasks one after another on a frozen, shared filter bank.

Usage:
  python train.py --flagfile=configs/demo.cfg --model_dir=/tmp/rmtl_demo
  # Months later: add a task; the old tasks' outputs stay bit-identical.
  python train.py --flagfile=configs/demo.cfg --model_dir=/tmp/rmtl_demo \
      --tasks=normals
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels on x86 unless TF_ENABLE_ONEDNN_OPTS is set: every
# command-line tool does so when it imports rmtl_tf (rmtl_tf/_startup.py).

from absl import flags, logging  # pylint: disable=wrong-import-position

from rmtl_tf.cli import errors, train_flags  # pylint: disable=wrong-import-position
from rmtl_tf.data import datasets  # pylint: disable=wrong-import-position
from rmtl_tf.models import parameter_counts  # pylint: disable=wrong-import-position
from rmtl_tf.training import train_lib  # pylint: disable=wrong-import-position


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines.
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}. Flags are "
                         "--name=value (in a --flagfile, one per line).")
    config = train_flags.config_from_flags()
    if flags.FLAGS.summary:
        model_kwargs = config.model_kwargs()
        print(parameter_counts.summary_table(
            model_kwargs.pop("backbone"), list(config.tasks),
            datasets.dataset_info(config.dataset)["num_classes"],
            **model_kwargs))
        return
    train_lib.train(config)


if __name__ == "__main__":
    errors.run(train_flags.define_flags, main)
