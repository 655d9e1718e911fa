"""The flags of train.py, defined once; `config_from_flags` validates them."""

from absl import flags

from rmtl_tf.models.variants import VARIANTS
from rmtl_tf.training.config import DATASETS, TrainConfig

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Where the model, checkpoints and logs go. A second "
    "run with the same directory adds the tasks it does not have yet.")
_TASKS = flags.DEFINE_list(
    "tasks", None, "Tasks to train, one after another, e.g. semseg,depth.")
_DATASET = flags.DEFINE_enum("dataset", "synthetic", list(DATASETS),
                             "Dataset to train and evaluate on.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "nyud / pascal_context: the TFDS data directory the "
    "dataset is prepared in (once) and read from. Not for synthetic.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Folder holding the authors' archive (NYUD_MT.zip, "
    "PASCAL_MT.zip) or the folder it extracts to; read when --data_dir has "
    "no prepared copy yet.")
_DOWNLOAD = flags.DEFINE_bool(
    "download", False, "Download the authors' archive when --manual_dir "
    "has no copy (needs internet).")
_SKIP_BAD = flags.DEFINE_bool(
    "skip_bad_examples", False, "While preparing a dataset, skip examples "
    "with missing, corrupt or inconsistent files (counted in a warning) "
    "instead of stopping with an error naming the file.")
_AUGMENT = flags.DEFINE_bool(
    "augment", True, "The paper's augmentation of training images: random "
    "scale 0.5-2.0 (steps of 0.25), pad + random crop to --image_size, "
    "horizontal flip.")
_BACKBONE = flags.DEFINE_string("backbone", "resnet18",
                                "resnet18, resnet34 or resnet_tiny.")
_WIDTH = flags.DEFINE_float("width_multiplier", 1.0,
                            "Scales the backbone's channel widths.")
_HEAD = flags.DEFINE_integer("head_channels", 256, "DeepLabv3+ width.")
_LOW = flags.DEFINE_integer("low_level_channels", 48,
                            "Width of the reduced low-level features.")
_VARIANT = flags.DEFINE_enum(
    "variant", "rc_nff", list(VARIANTS),
    "The paper's variant: rc_ri_nff (RCM with response initialization and "
    "NFF), rc_nff, rc_ri, rc; ra_series / ra_parallel (residual adapters); "
    "conv (a network per task); shared (one trainable encoder).")
_IMAGE_SIZE = flags.DEFINE_list("image_size", ["256", "320"],
                                "Training image size: H,W.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Batch size.")
_STEPS = flags.DEFINE_integer("train_steps", 1000,
                              "Training steps per task.")
_CKPT = flags.DEFINE_integer("checkpoint_every", 100,
                             "Steps between atomic checkpoints (the last "
                             "interval may be shorter: --train_steps is "
                             "exact).")
_LR = flags.DEFINE_float("learning_rate", 0.005, "Initial SGD learning rate.")
_MOMENTUM = flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
_WD = flags.DEFINE_float("weight_decay", 1e-4, "Weight decay.")
_POLY = flags.DEFINE_float("poly_power", 0.9, "Power of the poly LR decay.")
_BANK = flags.DEFINE_string(
    "bank", "pretrain", "Where the frozen bank comes from: 'imagenet' "
    "(the paper's: torchvision's ImageNet checkpoint of --backbone, fetched "
    "once into ~/.keras/models and SHA-256 checked), 'pretrain' (pretrain "
    "a plain ResNet on synthetic scenes first), 'random', 'npz:PATH' "
    "(weights saved by rmtl_tf.models.bank.save_bank), 'torchvision:PATH' "
    "(a torchvision ResNet state dict, .pth or .npz), or "
    "'keras_hub:PRESET' (a keras-hub ResNetBackbone preset such as "
    "resnet_18_imagenet, or its local directory).")
_RI_DECOMPOSITIONS = flags.DEFINE_string(
    "ri_decompositions", None, "Response initialization (rc_ri_* variants) "
    "from the authors' precomputed PCA (their RI/resnet18 folder or RI.zip: "
    "<conv>/components.npy, mean.npy) instead of the PCA of this run's "
    "training images.")
_RI_IMAGES = flags.DEFINE_string(
    "ri_images", None, "Response initialization (rc_ri_* variants) computed "
    "on every image under this folder (e.g. the authors' "
    "mini_val_imagenet), resized to 256 and centre-cropped to 224 as their "
    "decomp/main.py, instead of on 64 training images.")
_PRETRAIN_STEPS = flags.DEFINE_integer("pretrain_steps", 300,
                                       "Steps of bank pretraining.")
_PRETRAIN_LR = flags.DEFINE_float("pretrain_learning_rate", 0.002,
                                  "Adam learning rate of bank pretraining.")
_TRAIN_EXAMPLES = flags.DEFINE_integer(
    "train_examples", 512, "Synthetic training scenes (generated once); for "
    "real datasets, the first N training images are used.")
_EVAL_EXAMPLES = flags.DEFINE_integer(
    "eval_examples", 64, "Validation scenes (or first N validation images) "
    "for the report, scored whole as the authors (docs/evaluation.md, "
    "'Evaluation protocol').")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of data and initialization.")
_JIT = flags.DEFINE_bool(
    "jit_compile", False, "Compile train steps with XLA. Off by default: on "
    "CPU, XLA convolutions measured 3-4x slower than oneDNN (benchmarks/).")
_STRATEGY = flags.DEFINE_string(
    "strategy", "default", "tf.distribute strategy: 'default' (one "
    "device), 'mirrored' (one replica per local GPU or logical CPU "
    "device), 'multi_worker' (one process per worker; the cluster comes "
    "from the TF_CONFIG environment variable). --batch_size is the global "
    "batch, split across replicas.")
_NUM_CPU = flags.DEFINE_integer(
    "num_cpu_devices", 0, "With --strategy=mirrored and no GPU: split the "
    "CPU into this many logical devices, one replica each (0: leave it).")
_MIXED = flags.DEFINE_string(
    "mixed_precision", "float32", "Keras dtype policy while training: "
    "float32, mixed_float16 (with loss scaling) or mixed_bfloat16. "
    "Variables, the frozen bank and losses stay float32; the saved model "
    "and the export compute in float32.")
SUMMARY = flags.DEFINE_bool(
    "summary", False, "Print the parameter counts of every variant for the "
    "configured backbone and tasks, then exit (nothing is trained).")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "If set, export the trained model there at the end "
    "(SavedModel + TFLite, next free version), as export.py does.")
_DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", False, "TensorFlow op determinism (initialization and "
    "data are always seeded by --seed): a run, and the same run killed and "
    "resumed, give bit-identical weights. Costs speed (see docs/training.md, "
    "'Faults and bad input').")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Discard a checkpoint of an interrupted task that "
    "was written with other settings (or is damaged) and start that task "
    "over. Trained tasks are never retrained or overwritten.")

flags.mark_flags_as_required(["model_dir", "tasks"])


def config_from_flags():
    """One validated `TrainConfig` from the parsed flags."""
    try:
        image_size = tuple(int(s) for s in _IMAGE_SIZE.value)
    except ValueError as e:
        raise ValueError("--image_size must be two integers H,W. "
                         f"Received: {_IMAGE_SIZE.value}") from e
    return TrainConfig(
        model_dir=_MODEL_DIR.value, tasks=tuple(_TASKS.value),
        dataset=_DATASET.value, data_dir=_DATA_DIR.value,
        manual_dir=_MANUAL_DIR.value, download=_DOWNLOAD.value,
        skip_bad_examples=_SKIP_BAD.value, augment=_AUGMENT.value,
        backbone=_BACKBONE.value, width_multiplier=_WIDTH.value,
        head_channels=_HEAD.value, low_level_channels=_LOW.value,
        variant=_VARIANT.value, image_size=image_size, batch_size=_BATCH.value,
        train_steps=_STEPS.value, checkpoint_every=_CKPT.value,
        learning_rate=_LR.value, momentum=_MOMENTUM.value,
        weight_decay=_WD.value, poly_power=_POLY.value, bank=_BANK.value,
        ri_decompositions=_RI_DECOMPOSITIONS.value or None,
        ri_images=_RI_IMAGES.value or None,
        pretrain_steps=_PRETRAIN_STEPS.value,
        pretrain_learning_rate=_PRETRAIN_LR.value,
        train_examples=_TRAIN_EXAMPLES.value,
        eval_examples=_EVAL_EXAMPLES.value, seed=_SEED.value,
        jit_compile=_JIT.value, export_dir=_EXPORT_DIR.value,
        deterministic=_DETERMINISTIC.value, overwrite=_OVERWRITE.value,
        strategy=_STRATEGY.value, num_cpu_devices=_NUM_CPU.value,
        mixed_precision=_MIXED.value)
