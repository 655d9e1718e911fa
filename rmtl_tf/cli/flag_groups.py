"""Flags shared by the command-line tools, each defined in one place.

A tool calls the groups it needs on its `FlagValues`. Every `define_*`
skips the flags `flag_values` already has, so groups may overlap and a
tool's `define_flags` may run twice (tests). Tools read values as
`flag_values.name`.
"""

import sys

from absl import flags

from rmtl_tf.data.dataset_specs import DATASETS
from rmtl_tf.models import backbones
from rmtl_tf.models.variants import VARIANTS

FLAGS = flags.FLAGS


def define(define_fn, name, default, flag_values, **kwargs):
    """`define_fn(name, default, ...)` on `flag_values` unless it has `name`
    already; returns whether it defined the flag. `--helpfull` lists the
    flag under the module calling this."""
    if name in flag_values:
        return False
    define_fn(name, default, flag_values=flag_values,
              module_name=sys._getframe(1).f_globals["__name__"],  # pylint: disable=protected-access
              **kwargs)
    return True


def define_dataset_flags(flag_values=FLAGS, prepare=False):
    """--dataset, --data_dir; with `prepare` also how a real dataset is
    prepared on first use (--manual_dir, --download, --skip_bad_examples)."""
    fv = flag_values
    define(flags.DEFINE_enum, "dataset", "synthetic", fv,
           enum_values=list(DATASETS), help="Dataset to train and evaluate "
           "on.")
    define(flags.DEFINE_string, "data_dir", None, fv, help="nyud / "
           "pascal_context: the TFDS data directory the dataset is prepared "
           "in (once) and read from. Not for synthetic.")
    if not prepare:
        return
    define(flags.DEFINE_string, "manual_dir", None, fv, help="Folder "
           "holding the authors' archive (NYUD_MT.zip, PASCAL_MT.zip) or the "
           "folder it extracts to; read when --data_dir has no prepared copy "
           "yet.")
    define(flags.DEFINE_bool, "download", False, fv, help="Download the "
           "authors' archive when --manual_dir has no copy (needs "
           "internet).")
    define(flags.DEFINE_bool, "skip_bad_examples", False, fv, help="While "
           "preparing a dataset, skip examples with missing, corrupt or "
           "inconsistent files (counted in a warning) instead of stopping "
           "with an error naming the file.")


def define_read_flags(flag_values=FLAGS):
    """How a split is read: --batch_size, --seed, --eval_examples."""
    fv = flag_values
    define(flags.DEFINE_integer, "batch_size", 8, fv, help="Batch size.")
    define(flags.DEFINE_integer, "seed", 0, fv, help="Seed of data and "
           "initialization.")
    define(flags.DEFINE_integer, "eval_examples", 64, fv, help="Validation "
           "scenes (or first N validation images) scored (by train.py: in "
           "its end-of-run report), whole as the authors (docs/evaluation.md,"
           " 'Evaluation protocol').")


def define_split_flags(flag_values=FLAGS):
    """What is read of a split: --tasks, --image_size, and the read flags
    (`define_read_flags`)."""
    fv = flag_values
    define(flags.DEFINE_list, "tasks", None, fv, help="Tasks, e.g. "
           "semseg,depth. train.py trains them one after another (at least "
           "one); evaluation scores them (default: every task of the model "
           "or export).")
    define(flags.DEFINE_list, "image_size", ["256", "320"], fv,
           help="Training image size: H,W.")
    define_read_flags(fv)


def define_eval_split_flag(flag_values=FLAGS):
    """--split: the split evaluated."""
    define(flags.DEFINE_enum, "split", "validation", flag_values,
           enum_values=["validation", "test"], help="Split to evaluate.")


def define_model_flags(flag_values=FLAGS):
    """The architecture: --backbone, --width_multiplier, --head_channels,
    --low_level_channels, --variant."""
    fv = flag_values
    define(flags.DEFINE_string, "backbone", "resnet18", fv,
           help=f"One of {', '.join(backbones.NAMES)}: ResNets (BasicBlock) "
           "or MobileNetV2 (depthwise convs frozen and shared in the bank "
           "variants), output stride 16, DeepLabv3+ heads.")
    define(flags.DEFINE_float, "width_multiplier", 1.0, fv,
           help="Scales the backbone's channel widths.")
    define(flags.DEFINE_integer, "head_channels", 256, fv,
           help="DeepLabv3+ width.")
    define(flags.DEFINE_integer, "low_level_channels", 48, fv,
           help="Width of the reduced low-level features.")
    define(flags.DEFINE_enum, "variant", "rc_nff", fv,
           enum_values=list(VARIANTS), help="The paper's variant: rc_ri_nff "
           "(RCM with response initialization and NFF), rc_nff, rc_ri, rc; "
           "ra_series / ra_parallel (residual adapters); conv (a network "
           "per task); shared (one trainable encoder).")


def parse_image_size(values, name="image_size"):
    """`--image_size`'s values (strings) -> a tuple of ints; the configs
    check how many and their range."""
    try:
        return tuple(int(s) for s in values)
    except ValueError as e:
        raise ValueError(f"--{name} must be two integers H,W. "
                         f"Received: {values}") from e
