"""The flags of train.py (`define_flags`); `config_from_flags` turns them
into one validated `TrainConfig`."""

from absl import flags

from rmtl_tf.cli import flag_groups
from rmtl_tf.cli.flag_groups import define
from rmtl_tf.training.config import TrainConfig

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS, model_dir_required=True):
    """Defines train.py's flags on `flag_values` (skips those it has).

    `model_dir_required`: train.py needs --model_dir; the evaluate CLI
    defines these flags too (so a training flagfile parses) and does not.
    """
    fv = flag_values
    if (define(flags.DEFINE_string, "model_dir", None, fv, help="Where the "
               "model, checkpoints and logs go. A second run with the same "
               "directory adds the tasks it does not have yet.")
            and model_dir_required):
        flags.mark_flag_as_required("model_dir", flag_values=fv)
    flag_groups.define_dataset_flags(fv, prepare=True)
    flag_groups.define_split_flags(fv)
    flag_groups.define_model_flags(fv)
    define(flags.DEFINE_bool, "augment", True, fv, help="The paper's "
           "augmentation of training images: random scale 0.5-2.0 (steps of "
           "0.25), pad + random crop to --image_size, horizontal flip.")
    define(flags.DEFINE_integer, "train_steps", 1000, fv,
           help="Training steps per task.")
    define(flags.DEFINE_integer, "checkpoint_every", 100, fv,
           help="Steps between atomic checkpoints (the last interval may be "
           "shorter: --train_steps is exact).")
    define(flags.DEFINE_float, "learning_rate", 0.005, fv,
           help="Initial SGD learning rate.")
    define(flags.DEFINE_float, "momentum", 0.9, fv, help="SGD momentum.")
    define(flags.DEFINE_float, "weight_decay", 1e-4, fv,
           help="Weight decay.")
    define(flags.DEFINE_float, "poly_power", 0.9, fv,
           help="Power of the poly LR decay.")
    define(flags.DEFINE_string, "bank", "pretrain", fv, help="Where the "
           "frozen bank comes from: 'imagenet' (the paper's: torchvision's "
           "ImageNet checkpoint of --backbone, fetched once into "
           "~/.keras/models and SHA-256 checked; Keras' ImageNet "
           "MobileNetV2 for --backbone=mobilenet_v2), 'pretrain' (pretrain "
           "the plain backbone on synthetic scenes first), 'random', 'npz:PATH' "
           "(weights saved by rmtl_tf.models.bank.save_bank), "
           "'torchvision:PATH' (a torchvision ResNet state dict, .pth or "
           ".npz), or 'keras_hub:PRESET' (a keras-hub ResNetBackbone preset "
           "such as resnet_18_imagenet, or its local directory).")
    define(flags.DEFINE_string, "ri_decompositions", None, fv,
           help="Response initialization (rc_ri_* variants) from the "
           "authors' precomputed PCA (their RI/resnet18 folder or RI.zip: "
           "<conv>/components.npy, mean.npy) instead of the PCA of this "
           "run's training images.")
    define(flags.DEFINE_string, "ri_images", None, fv, help="Response "
           "initialization (rc_ri_* variants) computed on every image under "
           "this folder (e.g. the authors' mini_val_imagenet), resized to "
           "256 and centre-cropped to 224 as their decomp/main.py, instead "
           "of on 64 training images.")
    define(flags.DEFINE_integer, "pretrain_steps", 300, fv,
           help="Steps of bank pretraining.")
    define(flags.DEFINE_float, "pretrain_learning_rate", 0.002, fv,
           help="Adam learning rate of bank pretraining.")
    define(flags.DEFINE_integer, "train_examples", 512, fv, help="Synthetic "
           "training scenes (generated once); for real datasets, the first "
           "N training images are used.")
    define(flags.DEFINE_bool, "jit_compile", False, fv, help="Compile train "
           "steps with XLA. Off by default: on CPU, XLA convolutions "
           "measured 3-4x slower than oneDNN (benchmarks/).")
    define(flags.DEFINE_string, "strategy", "default", fv,
           help="tf.distribute strategy: 'default' (one device), 'mirrored' "
           "(one replica per local GPU or logical CPU device), "
           "'multi_worker' (one process per worker; the cluster comes from "
           "the TF_CONFIG environment variable). --batch_size is the global "
           "batch, split across replicas.")
    define(flags.DEFINE_integer, "num_cpu_devices", 0, fv, help="With "
           "--strategy=mirrored and no GPU: split the CPU into this many "
           "logical devices, one replica each (0: leave it).")
    define(flags.DEFINE_string, "mixed_precision", "float32", fv,
           help="Keras dtype policy while training: float32, mixed_float16 "
           "(with loss scaling) or mixed_bfloat16. Variables, the frozen "
           "bank and losses stay float32; the saved model and the export "
           "compute in float32.")
    define(flags.DEFINE_bool, "summary", False, fv, help="Print the "
           "parameter counts of every variant for the configured backbone "
           "and tasks, then exit (nothing is trained).")
    define(flags.DEFINE_string, "export_dir", None, fv, help="If set, "
           "export the trained model there at the end (SavedModel + TFLite, "
           "next free version), as export.py does.")
    define(flags.DEFINE_bool, "deterministic", False, fv, help="TensorFlow "
           "op determinism (initialization and data are always seeded by "
           "--seed): a run, and the same run killed and resumed, give "
           "bit-identical weights. Costs speed (see docs/training.md, "
           "'Faults and bad input').")
    define(flags.DEFINE_bool, "overwrite", False, fv, help="Discard a "
           "checkpoint of an interrupted task that was written with other "
           "settings (or is damaged) and start that task over. Trained "
           "tasks are never retrained or overwritten.")


def config_from_flags(flag_values=FLAGS):
    """One validated `TrainConfig` from the parsed flags."""
    fv = flag_values
    return TrainConfig(
        model_dir=fv.model_dir, tasks=fv.tasks, dataset=fv.dataset,
        data_dir=fv.data_dir, manual_dir=fv.manual_dir,
        download=fv.download, skip_bad_examples=fv.skip_bad_examples,
        augment=fv.augment, backbone=fv.backbone,
        width_multiplier=fv.width_multiplier,
        head_channels=fv.head_channels,
        low_level_channels=fv.low_level_channels, variant=fv.variant,
        image_size=flag_groups.parse_image_size(fv.image_size),
        batch_size=fv.batch_size, train_steps=fv.train_steps,
        checkpoint_every=fv.checkpoint_every,
        learning_rate=fv.learning_rate, momentum=fv.momentum,
        weight_decay=fv.weight_decay, poly_power=fv.poly_power,
        bank=fv.bank, ri_decompositions=fv.ri_decompositions or None,
        ri_images=fv.ri_images or None, pretrain_steps=fv.pretrain_steps,
        pretrain_learning_rate=fv.pretrain_learning_rate,
        train_examples=fv.train_examples, eval_examples=fv.eval_examples,
        seed=fv.seed, jit_compile=fv.jit_compile,
        export_dir=fv.export_dir, deterministic=fv.deterministic,
        overwrite=fv.overwrite, strategy=fv.strategy,
        num_cpu_devices=fv.num_cpu_devices,
        mixed_precision=fv.mixed_precision)
