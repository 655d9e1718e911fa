r"""Prepares a benchmark's TFDS dataset once, before training.

    python -m rmtl_tf.cli.prepare --dataset=nyud \
        --manual_dir=data --data_dir=data/tensorflow_datasets

`--manual_dir` holds the authors' archive (NYUD_MT.zip, PASCAL_MT.zip) or
the folder it extracts to; `--download` fetches the archive instead.
train.py does the same on its first run; this only separates the steps.
(`tfds build` would need apache_beam with tensorflow-datasets 4.9.)
"""

from absl import flags

from rmtl_tf.cli import errors, flag_groups
from rmtl_tf.data import dataset_specs, datasets

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Defines the CLI's flags on `flag_values`: train.py's dataset flags."""
    flag_groups.define_dataset_flags(flag_values, prepare=True)


def main(argv, flag_values=FLAGS):
    """Prepares the dataset the flags name, unless it is already."""
    fv = flag_values
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    prepared = [n for n, s in dataset_specs.SPECS.items() if s.tfds_name]
    if fv.dataset not in prepared:
        raise ValueError(f"--dataset must be one of {prepared} (a dataset "
                         f"with a TFDS builder). Received: "
                         f"--dataset={fv.dataset}")
    if not fv.data_dir:
        raise ValueError("--data_dir is required: the TFDS data directory "
                         "to write.")
    if datasets.is_prepared(fv.dataset, fv.data_dir):
        print(f"{fv.dataset} is already prepared in {fv.data_dir}.")
        return 0
    builder = datasets.prepare(fv.dataset, fv.data_dir, fv.manual_dir,
                               fv.download, fv.skip_bad_examples)
    splits = ", ".join(f"{name} {info.num_examples}"
                       for name, info in builder.info.splits.items())
    print(f"Prepared {builder.name} in {builder.data_dir} ({splits}).")
    return 0


if __name__ == "__main__":
    errors.run(define_flags, main)
