"""The multi-task model: a shared reparameterized backbone (ResNet or
MobileNetV2, `backbones`) and a DeepLabv3+ head per task."""

import keras
from keras import ops

from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models import bank as bank_lib
from rmtl_tf.models import reparameterize as reparameterize_lib
from rmtl_tf.models import task_views
from rmtl_tf.models.backbones import get_backbone
from rmtl_tf.models.deeplab_head import deeplab_head
from rmtl_tf.models.layer_factory import (BANK_LAYER_TYPES,
                                          FROZEN_SHARED_TYPES, LayerFactory)
from rmtl_tf.models.variants import ARCHITECTURES, SHARED_BACKBONE
from rmtl_tf.tasks import registry


def _image_size(image_size):
    if image_size is None:
        return (None, None)
    image_size = tuple(image_size)
    if len(image_size) != 2 or not all(
            s is None or (isinstance(s, int) and s >= 32)
            for s in image_size):
        raise ValueError(
            "`image_size` must be (height, width) with sizes >= 32 or None. "
            f"Received: image_size={image_size}"
        )
    return image_size


@keras.saving.register_keras_serializable(package="rmtl_tf")
class MultiTaskModel(keras.Model):
    """ResNet or MobileNetV2 + DeepLabv3+ with reparameterized convolutions,
    one head a task.

    Inputs are RGB images, float32 pixels in [0, 255] (normalized inside
    the model as the backbone's pretrained weights expect: ImageNet mean
    and std for the ResNets, `x / 127.5 - 1` for MobileNetV2); outputs are
    a dict keyed by task of raw predictions at image resolution (class
    logits for semseg and human parts, logits for edge and saliency, unit
    vectors for normals, metres for depth).

    Args:
        tasks: task names (see `rmtl_tf.tasks.registry.TASKS`).
        backbone: "resnet18", "resnet34", "resnet_tiny" or "mobilenet_v2"
            (`rmtl_tf.models.backbones`).
        num_classes: dict task -> classes for tasks whose classes come from
            the dataset (e.g. `{"semseg": 41}`).
        width_multiplier: scales the backbone's channel widths.
        head_channels: ASPP/decoder width (256 in the paper).
        low_level_channels: width of the reduced layer1 features (48).
        aspp_rates: atrous rates of ASPP (6, 12, 18 at output stride 16).
        nff: weight-normalized modulators (normalized feature fusion).
        architecture: how the backbone is shared: "rc" (RCM: a frozen bank
            and per-task modulators, the default), "ra_series" /
            "ra_parallel" (frozen bank, per-task residual adapters), "conv"
            (a trainable backbone per task) or "shared" (one trainable
            backbone for all tasks).
        compute_mode: `ReparamConv2D` compute mode: "auto"
            (factorized when training, fused at inference), "fused" or
            "factorized".
        image_size: (height, width) of the input, or None for any size.
        reuse_layers: dict name -> layer to reuse (used by `add_task`).
    """

    def __init__(self, tasks, backbone="resnet18", num_classes=None,
                 width_multiplier=1.0, head_channels=256,
                 low_level_channels=48, aspp_rates=(6, 12, 18), nff=True,
                 compute_mode="auto", image_size=None, reuse_layers=None,
                 architecture="rc", **kwargs):
        tasks = list(registry.parse_tasks(tasks))  # The model keeps a list.
        if not tasks:
            raise ValueError("A model needs at least one task. "
                             f"Received: tasks={tasks}")
        spec = get_backbone(backbone, width_multiplier)  # Validates both.
        if architecture not in ARCHITECTURES:
            raise ValueError(f"Unknown architecture {architecture!r}. "
                             f"Expected one of {ARCHITECTURES}.")
        num_classes = dict(num_classes or {})
        channels = {t: registry.output_channels(t, num_classes)
                    for t in tasks}
        height, width = _image_size(image_size)
        factory = LayerFactory(architecture, tasks, nff=nff,
                               compute_mode=compute_mode, reuse=reuse_layers)

        image = keras.Input((height, width, 3), name="image")
        normalized = factory.shared("normalize", spec.normalization)(image)
        outputs = {}
        features = None
        for task in tasks:
            # A shared backbone is computed once for all heads.
            if features is None or architecture not in SHARED_BACKBONE:
                features = spec.features(factory, normalized, task,
                                         width_multiplier)
            out = deeplab_head(factory, features, image, task,
                               channels[task], head_channels,
                               low_level_channels, tuple(aspp_rates))
            if task == "normals":
                name = "normals_l2_normalize"
                out = factory.shared(name, lambda: keras.layers.
                                     UnitNormalization(name=name))(out)
            outputs[task] = out
        kwargs.setdefault("name", "rmtl")
        super().__init__(inputs=image, outputs=outputs, **kwargs)

        self.tasks = tasks
        self.layer_owners = dict(factory.owners)
        self.backbone = backbone
        self.num_classes = num_classes
        self.width_multiplier = width_multiplier
        self.head_channels = head_channels
        self.low_level_channels = low_level_channels
        self.aspp_rates = tuple(aspp_rates)
        self.nff = nff
        self.compute_mode = compute_mode
        self.image_size = (height, width)
        self.architecture = architecture

    def get_config(self):
        return {
            "name": self.name,
            "tasks": list(self.tasks),
            "backbone": self.backbone,
            "num_classes": dict(self.num_classes),
            "width_multiplier": self.width_multiplier,
            "head_channels": self.head_channels,
            "low_level_channels": self.low_level_channels,
            "aspp_rates": list(self.aspp_rates),
            "nff": self.nff,
            "compute_mode": self.compute_mode,
            "image_size": list(self.image_size),
            "architecture": self.architecture,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- task-level views ----------------------------------------------------

    def reparam_layers(self):
        """The `ReparamConv2D` layers (none unless architecture is "rc")."""
        return [l for l in self.layers if isinstance(l, ReparamConv2D)]

    def bank_layers(self):
        """Layers holding a frozen shared bank and per-task parts."""
        return [l for l in self.layers if isinstance(l, BANK_LAYER_TYPES)]

    def frozen_shared_layers(self):
        """Layers that are all frozen bank, with no per-task part (the
        depthwise convs of MobileNetV2 in the bank architectures)."""
        return [l for l in self.layers if isinstance(l, FROZEN_SHARED_TYPES)]

    def bank_variables(self):
        """The shared, frozen filter banks (depthwise kernels included)."""
        return [l.bank for l in self.bank_layers()] + [
            v for l in self.frozen_shared_layers() for v in l.weights]

    def shared_variables(self):
        """Variables shared by all tasks and trained ("shared" backbone)."""
        frozen = BANK_LAYER_TYPES + FROZEN_SHARED_TYPES
        return [v for l in self.layers
                if not isinstance(l, frozen)
                and l.name not in self.layer_owners for v in l.weights]

    def task_variables(self, task):
        """Every variable owned by `task`: modulators, BN, shortcuts, head."""
        return task_views.task_variables(self, task)

    def _check_task(self, task):
        task_views.check_task(self, task)

    def set_trainable_tasks(self, tasks):
        """Makes exactly `tasks`' variables trainable; the bank never is.

        BatchNorm layers of the other tasks are frozen too, so they run in
        inference mode and keep their statistics. With the "shared"
        architecture the shared backbone trains with any task (and so
        changes every other task: the interference RCM avoids).
        """
        tasks = list(tasks)
        for task in tasks:
            self._check_task(task)
        for layer in self.bank_layers():
            layer.bank.trainable = False
            for task in layer.tasks:
                statistics = {id(v) for v in getattr(
                    layer, "task_statistics", lambda t: [])(task)}
                for variable in layer.task_variables(task):
                    if id(variable) not in statistics:
                        variable.trainable = task in tasks
        for layer in self.layers:
            if isinstance(layer, BANK_LAYER_TYPES) or not layer.weights:
                continue
            if layer.name in self.layer_owners:
                layer.trainable = self.layer_owners[layer.name] in tasks
            else:  # Shared by all tasks.
                layer.trainable = (self.architecture in SHARED_BACKBONE
                                   and bool(tasks))

    def task_model(self, tasks):
        """A model of the same layers with only `tasks`' outputs."""
        return task_views.task_model(self, tasks)


def build_model(backbone, tasks, **kwargs):
    """Builds a `MultiTaskModel`; see its docstring for the arguments."""
    return MultiTaskModel(tasks=tasks, backbone=backbone, **kwargs)


def add_task(model, task, num_classes=None, pretrained=None):
    """Returns a model with `task` added, sharing every layer of `model`.

    The old tasks' layers and variables are the very same objects, so their
    outputs are unchanged; the new task gets identity modulators, its own
    BatchNorm, shortcut convs and head. `pretrained` (a bank weights dict,
    see `rmtl_tf.models.bank`) initializes the new task's BatchNorm and
    shortcut convs from the pretrained network.

    `model` itself still computes its tasks, but its reparameterized layers
    now carry the new task's modulators too: save and keep using the
    returned model (a `.keras` file of the old one would not load).

    A `ReparameterizedModel` (`rmtl_tf.reparameterize`) takes no
    `num_classes` or `pretrained`: its new task starts from the pretrained
    values it keeps.
    """
    if isinstance(model, reparameterize_lib.ReparameterizedModel):
        if num_classes or pretrained is not None:
            raise ValueError("`num_classes` and `pretrained` are not "
                             "arguments for a ReparameterizedModel: its new "
                             "task starts from the backbone it was made of.")
        return reparameterize_lib.add_task(model, task)
    if not isinstance(model, MultiTaskModel):
        raise TypeError("`model` must be a MultiTaskModel or a "
                        "ReparameterizedModel. "
                        f"Received: {type(model).__name__}")
    tasks = [task] if isinstance(task, str) else list(task)
    for t in tasks:
        if t in model.tasks:
            raise ValueError(f"Task {t!r} already exists; the model's tasks "
                             f"are {model.tasks}.")
    config = model.get_config()
    config["tasks"] = list(model.tasks) + tasks
    config["num_classes"] = {**config["num_classes"], **(num_classes or {})}
    new_model = MultiTaskModel(
        reuse_layers={l.name: l for l in model.layers}, **config)
    if pretrained is not None:
        bank_lib.init_task_layers(new_model, pretrained, tasks)
    return new_model


def with_dtype_policy(model, policy):
    """A copy of `model` whose layers compute under Keras dtype `policy`
    ("float32", "mixed_bfloat16", ...): rebuilt from its config (under the
    current `tf.distribute` strategy, if any), weights copied by variable
    path. Variables are float32 under every policy.
    """
    return _rebuilt(model, policy, {}, policy)


def with_image_size(model, image_size=None):
    """A copy of `model` taking `image_size` inputs (None: any height and
    width; the network is fully convolutional), the same weights copied by
    variable path. Full-resolution evaluation runs it on whole images."""
    return _rebuilt(model, keras.config.dtype_policy(),
                    {"image_size": image_size}, f"image_size={image_size}")


def _rebuilt(model, policy, overrides, what):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        copy = model.__class__.from_config({**model.get_config(),
                                            **overrides})
    finally:
        keras.config.set_dtype_policy(previous)
    source = {v.path: v for v in model.weights}
    target = {v.path: v for v in copy.weights}
    if set(source) != set(target):
        raise ValueError(
            f"The {what} copy of {model.name!r} has other variables: "
            f"missing {sorted(set(source) - set(target))[:5]}, unexpected "
            f"{sorted(set(target) - set(source))[:5]}.")
    for path, variable in target.items():
        variable.assign(source[path])
    return copy


def predictions(task, output):
    """Turns a raw model output into the served prediction of `task`."""
    activation = registry.get_task(task).activation
    if activation == "softmax":
        return ops.softmax(output, axis=-1)
    if activation == "sigmoid":
        return ops.sigmoid(output)
    if activation == "l2_normalize":
        # x * rsqrt(|x|^2), as keras' UnitNormalization: in an int8 file a
        # division by the norm stops the interpreter when the norm rounds
        # to zero (LiteRT's int8 DIV refuses a zero divisor); RSQRT maps a
        # zero to its largest value and the prediction is a zero vector.
        return ops.normalize(output, axis=-1, order=2, epsilon=1e-12)
    return output
