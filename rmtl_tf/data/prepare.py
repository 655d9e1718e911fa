"""Prepares a benchmark's TFDS dataset once, before training.

    python -m rmtl_tf.data.prepare --dataset=nyud \
        --manual_dir=data --data_dir=data/tensorflow_datasets

`--manual_dir` holds the authors' archive (NYUD_MT.zip, PASCAL_MT.zip) or
the folder it extracts to; `--download` fetches the archive instead.
train.py does the same on its first run; this only separates the steps.
(`tfds build` would need apache_beam with tensorflow-datasets 4.9.)
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    from rmtl_tf.data import dataset_specs, datasets  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dataset", required=True,
                        choices=[n for n, s in dataset_specs.SPECS.items()
                                 if s.tfds_name])
    parser.add_argument("--data_dir", required=True,
                        help="TFDS data directory to write")
    parser.add_argument("--manual_dir", default=None,
                        help="folder with the authors' archive or folder")
    parser.add_argument("--download", action="store_true",
                        help="download the archive (needs internet)")
    parser.add_argument("--skip_bad_examples", action="store_true",
                        help="skip (and count) bad examples")
    args = parser.parse_args(argv)
    try:
        if datasets.is_prepared(args.dataset, args.data_dir):
            print(f"{args.dataset} is already prepared in {args.data_dir}.")
            return 0
        builder = datasets.prepare(args.dataset, args.data_dir,
                                   args.manual_dir, args.download,
                                   args.skip_bad_examples)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{name} {info.num_examples}"
                       for name, info in builder.info.splits.items())
    print(f"Prepared {builder.name} in {builder.data_dir} ({splits}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
