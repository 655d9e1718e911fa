r"""Writes a stand-in of NYUD-MT or PASCAL-MT (`rmtl_tf.data.standins`):
synthetic scenes in the authors' exact layout, at the real counts and sizes
by default.

    python -m rmtl_tf.cli.standins --dataset=nyud --out=/tmp/manual \
        --num_train=795 --num_val=654 --size=480,640
    python -m rmtl_tf.cli.standins --dataset=pascal_context \
        --out=/tmp/manual --num_train=4998 --num_val=5105
"""

import os
import time

from absl import flags

from rmtl_tf.cli import errors
from rmtl_tf.cli.flag_groups import define, parse_image_size
from rmtl_tf.data import dataset_specs
from rmtl_tf.data.standin_plan import (NYUD_SIZE, PASCAL_SIZES, check_counts,
                                       check_size)
from rmtl_tf.data.standins import write_nyud_mt, write_pascal_mt

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Defines the CLI's flags on `flag_values` (skips those it has)."""
    fv = flag_values
    define(flags.DEFINE_enum, "dataset", None, fv,
           enum_values=["nyud", "pascal_context"],
           help="Which stand-in to write.")
    define(flags.DEFINE_string, "out", None, fv, help="Folder to write "
           "NYUD_MT/ or PASCAL_MT/ into (the manual_dir of prepare).")
    define(flags.DEFINE_integer, "num_train", None, fv, help="Training "
           "images (default: the real count, 795 / 4998).")
    define(flags.DEFINE_integer, "num_val", None, fv, help="Validation "
           "images (default: the real count, 654 / 5105).")
    define(flags.DEFINE_list, "size", None, fv, help="H,W of every image. "
           "Default: 480,640 for nyud; for pascal_context the sizes cycle "
           "through 375x500, 500x375, 333x500, 500x333.")
    define(flags.DEFINE_integer, "seed", 0, fv, help="Seed of the scenes.")
    define(flags.DEFINE_integer, "workers", min(2, os.cpu_count() or 1), fv,
           help="Processes rendering in parallel.")
    define(flags.DEFINE_bool, "overwrite", False, fv, help="Replace a "
           "stand-in written with other parameters.")
    define(flags.DEFINE_integer, "progress_every", 100, fv,
           help="Print progress every this many images.")


def _parse_size(values):
    try:
        size = parse_image_size(values, "size")
    except ValueError:
        size = None
    if size is None or len(size) != 2:
        raise ValueError(f"--size must be H,W (two integers). Received: "
                         f"--size={','.join(values)}")
    return size


def main(argv, flag_values=FLAGS):
    """Writes the stand-in the flags describe; prints progress."""
    fv = flag_values
    if len(argv) > 1:
        raise ValueError(f"Unexpected arguments: {argv[1:]}")
    if not fv.dataset or not fv.out:
        raise ValueError("--dataset and --out are required.")
    spec = dataset_specs.get_spec(fv.dataset)
    num_train = (spec.train_examples if fv.num_train is None
                 else fv.num_train)
    num_val = (spec.validation_examples if fv.num_val is None
               else fv.num_val)
    every = max(1, fv.progress_every)
    total = num_train + num_val
    started = time.time()

    def progress(done, total, rate):
        if done % every and done != total:
            return
        speed = f", {rate:.2f} images/s" if rate else ""
        eta = (f", {(total - done) / rate / 60:.1f} min left" if rate
               and done < total else "")
        print(f"{fv.dataset}: {done}/{total} images{speed}{eta} "
              f"({time.time() - started:.0f} s)", flush=True)

    kwargs = {"seed": fv.seed, "progress": progress, "workers": fv.workers,
              "overwrite": fv.overwrite}
    default = NYUD_SIZE if fv.dataset == "nyud" else PASCAL_SIZES[0]
    size = check_size(_parse_size(fv.size) if fv.size else default)
    check_counts(num_train, num_val)
    print(f"Writing the {fv.dataset} stand-in ({num_train} train, {num_val} "
          f"val, {total} images) into {fv.out} with {fv.workers} "
          "worker(s).", flush=True)
    if fv.dataset == "nyud":
        result = write_nyud_mt(fv.out, num_train, num_val, size, **kwargs)
    else:
        sizes = (size,) if fv.size else PASCAL_SIZES
        result = write_pascal_mt(fv.out, num_train, num_val, sizes,
                                 **kwargs)
    if result.status == "exists":
        params = result.params or {}
        print(f"{result.root} is already complete (train {num_train}, val "
              f"{num_val}; seed {params.get('seed', '?')}, size(s) "
              f"{params.get('size', params.get('sizes', '?'))}): left as "
              "it is.")
        return 0
    rate = (f", {result.images_per_s:.2f} images/s" if result.images_per_s
            else "")
    resumed = (f" (resumed: {total - result.written} were already there)"
               if result.status == "resumed" else "")
    print(f"Wrote {result.root}: train {num_train}, val {num_val}; "
          f"{result.written} images in {result.seconds:.0f} s{rate}"
          f"{resumed}.")
    return 0


if __name__ == "__main__":
    errors.run(define_flags, main)
