"""The validated configuration of a training run."""

import dataclasses
from typing import Optional, Tuple

from rmtl_tf.data import dataset_specs
from rmtl_tf.models import variants
from rmtl_tf.models.backbones import get_backbone
from rmtl_tf.tasks import registry
from rmtl_tf.training import precision, strategies

DATASETS = dataset_specs.DATASETS
# The model-building arguments (`model_kwargs`): a model directory is only
# resumed or extended by a run that agrees on all of them.
MODEL_FIELDS = ("backbone", "width_multiplier", "head_channels",
                "low_level_channels", "nff", "architecture")


@dataclasses.dataclass
class TrainConfig:
    """Everything `train.py` needs; built from flags, validated on creation.

    `train_steps` is per task: tasks are trained one after another, each on
    the frozen bank with only its own variables trainable.
    """

    model_dir: str
    tasks: Tuple[str, ...]
    dataset: str = "synthetic"
    data_dir: Optional[str] = None
    manual_dir: Optional[str] = None
    download: bool = False
    skip_bad_examples: bool = False
    augment: bool = True
    backbone: str = "resnet18"
    width_multiplier: float = 1.0
    head_channels: int = 256
    low_level_channels: int = 48
    variant: str = "rc_nff"
    image_size: Tuple[int, int] = (256, 320)
    batch_size: int = 8
    train_steps: int = 1000
    checkpoint_every: int = 100
    learning_rate: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    bank: str = "pretrain"
    ri_decompositions: Optional[str] = None
    ri_images: Optional[str] = None
    pretrain_steps: int = 300
    pretrain_learning_rate: float = 0.002
    train_examples: int = 512
    eval_examples: int = 64
    seed: int = 0
    jit_compile: bool = False
    # Distribution (see rmtl_tf.training.distribute); batch_size is global.
    strategy: str = "default"
    num_cpu_devices: int = 0
    mixed_precision: str = "float32"
    export_dir: Optional[str] = None
    deterministic: bool = False
    overwrite: bool = False

    def __post_init__(self):
        self.tasks = registry.parse_tasks(self.tasks)
        if not self.tasks:
            raise ValueError("--tasks must name at least one task. "
                             f"Received: tasks={self.tasks}")
        if self.dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {self.dataset!r}. Expected one"
                             f" of {DATASETS}.")
        dataset_specs.check_tasks(self.dataset, self.tasks)
        variants.get_variant(self.variant)
        get_backbone(self.backbone)  # Raises, listing the backbones.
        self.image_size = tuple(int(s) for s in self.image_size)
        if len(self.image_size) != 2 or min(self.image_size) < 32:
            raise ValueError("--image_size must be H,W with both >= 32. "
                             f"Received: image_size={self.image_size}")
        for name in ("batch_size", "train_steps", "checkpoint_every",
                     "head_channels", "low_level_channels", "train_examples",
                     "eval_examples"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be > 0. "
                                 f"Received: {name}={getattr(self, name)}")
        for name in ("learning_rate", "width_multiplier",
                     "pretrain_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be > 0. "
                                 f"Received: {name}={getattr(self, name)}")
        if self.pretrain_steps < 0 or self.weight_decay < 0:
            raise ValueError(
                "--pretrain_steps and --weight_decay must be >= 0. Received: "
                f"pretrain_steps={self.pretrain_steps}, "
                f"weight_decay={self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1). "
                             f"Received: momentum={self.momentum}")
        if self.dataset == "synthetic" and (self.data_dir or self.manual_dir
                                            or self.download):
            raise ValueError(
                "--data_dir, --manual_dir and --download are for real "
                "datasets; --dataset=synthetic renders its scenes. Received: "
                f"data_dir={self.data_dir!r}, manual_dir={self.manual_dir!r}"
                f", download={self.download}")
        for flag in ("ri_decompositions", "ri_images"):
            if getattr(self, flag) and not self.response_init:
                raise ValueError(
                    f"--{flag} is response initialization, which "
                    f"--variant={self.variant} does not use (an rc_ri_* "
                    f"variant does). Received: {flag}="
                    f"{getattr(self, flag)!r}")
        if self.ri_decompositions and self.ri_images:
            raise ValueError(
                "--ri_decompositions (their precomputed PCA) and --ri_images "
                "(compute it on a folder) are two sources of one response "
                "initialization: pass one. Received: ri_decompositions="
                f"{self.ri_decompositions!r}, ri_images={self.ri_images!r}")
        strategies.check_strategy(self.strategy)
        precision.check_precision(self.mixed_precision)
        if self.num_cpu_devices < 0 or (self.num_cpu_devices > 1
                                        and self.strategy != "mirrored"):
            raise ValueError(
                "--num_cpu_devices (logical CPU devices to split the CPU "
                "into) must be >= 0 and only goes with --strategy=mirrored. "
                f"Received: num_cpu_devices={self.num_cpu_devices}, "
                f"strategy={self.strategy!r}")

    @property
    def nff(self):
        return variants.get_variant(self.variant).nff

    @property
    def response_init(self):
        return variants.get_variant(self.variant).response_init

    def model_kwargs(self):
        """The `MultiTaskModel` arguments of `MODEL_FIELDS`: the backbone,
        its width, the heads, and the variant's `nff` and `architecture`."""
        kwargs = {f: getattr(self, f) for f in MODEL_FIELDS
                  if f != "architecture"}
        kwargs["architecture"] = variants.get_variant(
            self.variant).architecture
        return kwargs

    def to_json(self):
        """The fields as a JSON-able dict (tuples as lists): the `config`
        of each task in `summary.json`."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}
