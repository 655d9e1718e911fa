"""Creates or reuses the named layers of a multi-task functional graph.

Every layer of a model is created through a `LayerFactory`, by name. When a
task is added to an existing model, the factory is seeded with the old
model's layers, so the old tasks' layers (and variables) are reused as they
are and only the new task's layers are created.

Architectures (`rmtl_tf.models.variants`), by how the backbone's
convolutions are held:
- `"rc"` (RCM): `ReparamConv2D`, one frozen bank and one modulator per
  task; BatchNorm and shortcut convs are per task.
- `"ra_series"`, `"ra_parallel"`: `AdapterConv2D`, one frozen bank and one
  residual adapter per task; BatchNorm and shortcut convs per task.
- In these three bank architectures a depthwise conv (MobileNetV2's) is a
  `BankDepthwiseConv2D`: part of the frozen bank, shared by all tasks, with
  no per-task part (it mixes no channels; the next 1x1 conv's modulator
  recombines its responses).
- `"conv"`: an ordinary trainable conv per task (one network per task).
- `"shared"`: one trainable backbone for all tasks (convs and BatchNorm
  shared), heads per task: the usual multi-task network.
- `"plain"`: ordinary `Conv2D`/`BatchNormalization` without a task suffix,
  a single-path network (used to pretrain the bank).
"""

import keras

from rmtl_tf.layers.adapter_conv2d import AdapterConv2D
from rmtl_tf.layers.atrous_conv2d import AtrousConv2D
from rmtl_tf.layers.bank_depthwise_conv2d import BankDepthwiseConv2D
from rmtl_tf.layers.fused_batch_norm import FusedBatchNormalization
from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models.variants import (ARCHITECTURES, BANK_ARCHITECTURES, PLAIN,
                                     SHARED_BACKBONE, adapter_mode)

# Layers holding a frozen shared bank and per-task parts.
BANK_LAYER_TYPES = (ReparamConv2D, AdapterConv2D)
# Layers holding a frozen bank shared by all tasks and no per-task part.
FROZEN_SHARED_TYPES = (BankDepthwiseConv2D,)
BN_MOMENTUM = 0.9  # PyTorch's BatchNorm momentum of 0.1.
BN_EPSILON = 1e-5


def conv2d_layer(filters, kernel_size, dilation_rate=1, **kwargs):
    """A `keras.layers.Conv2D`, or an `AtrousConv2D` (same function, one
    conv op instead of space-to-batch) when it is dilated."""
    dilated = max(dilation_rate if isinstance(dilation_rate, (tuple, list))
                  else (dilation_rate,)) > 1
    cls = AtrousConv2D if dilated else keras.layers.Conv2D
    return cls(filters, kernel_size, dilation_rate=dilation_rate, **kwargs)


def task_layer_name(base, task):
    """Per-task layer name; `task=None` names a layer shared by all."""
    return base if task is None else f"{base}_{task}"


def base_layer_name(name, task):
    """The `base` of `task_layer_name(base, task) == name`; None when `name`
    has no `_<task>` suffix."""
    suffix = f"_{task}"
    return name[:-len(suffix)] if name.endswith(suffix) else None


class LayerFactory:
    """Named layer creation with reuse.

    Args:
        architecture: one of `variants.ARCHITECTURES`, or `variants.PLAIN`.
        tasks: every task of the model being built.
        nff: NFF modulators for the reparameterized convs.
        compute_mode: `ReparamConv2D` compute mode.
        reuse: optional dict name -> layer of an existing model.
    """

    def __init__(self, architecture, tasks, nff=True, compute_mode="auto",
                 reuse=None):
        if architecture not in ARCHITECTURES + (PLAIN,):
            raise ValueError(
                f"`architecture` must be one of {ARCHITECTURES + (PLAIN,)}. "
                f"Received: architecture={architecture!r}"
            )
        self.architecture = architecture
        self.tasks = list(tasks)
        self.nff = nff
        self.compute_mode = compute_mode
        self.layers = dict(reuse or {})
        self.owners = {}  # layer name -> the task owning its variables.
        # Names of the backbone convs (`backbone_conv`): the convs a bank
        # holds, in the order first applied.
        self.backbone_convs = []

    def _get(self, name, make):
        if name not in self.layers:
            self.layers[name] = make()
        return self.layers[name]

    def task_name(self, base, task):
        """Per-task layer name; `task=None` names a layer shared by all."""
        return task_layer_name(base, task)

    def backbone_task(self, task):
        """The owner of backbone BN/shortcut layers: none when shared."""
        return None if self.architecture in SHARED_BACKBONE else task

    def backbone_conv(self, x, task, name, filters, kernel_size, strides=1,
                      dilation_rate=1, padding=None):
        """Applies `task`'s path through backbone conv `name` to `x`.

        By default (`padding=None`) strided convs pad `kernel_size // 2` on
        each side, like PyTorch; bank layers pad inside their own op,
        ordinary convs after a `ZeroPadding2D` layer: the same function.
        `padding="same"` pads as TensorFlow does (Keras' own networks).
        """
        if padding not in (None, "same"):
            raise ValueError("`padding` must be None (PyTorch's) or 'same'. "
                             f"Received: padding={padding!r}")
        if name not in self.backbone_convs:
            self.backbone_convs.append(name)
        pad = kernel_size // 2 if strides > 1 and padding is None else None
        if self.architecture in BANK_ARCHITECTURES:
            layer = self._get(name, lambda: self._bank_layer(
                name, filters, kernel_size, strides, dilation_rate,
                "same" if pad is None else pad))
            for t in self.tasks:
                if t not in layer.tasks:
                    layer.add_task(t)
            return layer(x, task=task)
        if pad is not None:
            x = self.shared(f"{name}_pad", lambda: keras.layers.ZeroPadding2D(
                pad, name=f"{name}_pad"))(x)
        conv_name = self.task_name(name, self.backbone_task(task))
        if self.architecture == "conv":
            self.owners[conv_name] = task
        return self._get(conv_name, lambda: conv2d_layer(
            filters, kernel_size, strides=strides,
            padding="same" if pad is None else "valid",
            dilation_rate=dilation_rate, use_bias=False,
            kernel_initializer="he_normal", name=conv_name))(x)

    def _bank_layer(self, name, filters, kernel_size, strides, dilation_rate,
                    padding):
        if self.architecture == "rc":
            return ReparamConv2D(
                filters, kernel_size, strides=strides, padding=padding,
                dilation_rate=dilation_rate, tasks=self.tasks, nff=self.nff,
                compute_mode=self.compute_mode, name=name)
        return AdapterConv2D(
            filters, kernel_size, strides=strides, padding=padding,
            dilation_rate=dilation_rate, tasks=self.tasks,
            mode=adapter_mode(self.architecture), name=name)

    def backbone_depthwise(self, x, task, name, strides=1, dilation_rate=1,
                           kernel_size=3):
        """Applies `task`'s path through backbone depthwise conv `name`
        ("same" padding, no bias): a frozen `BankDepthwiseConv2D` shared by
        all tasks in the bank architectures, a trainable
        `DepthwiseConv2D` per task in "conv", one shared in "shared"."""
        def make(cls, layer_name):
            return lambda: cls(kernel_size, strides=strides, padding="same",
                               dilation_rate=dilation_rate, use_bias=False,
                               name=layer_name)
        if self.architecture in BANK_ARCHITECTURES:
            return self._get(name, make(BankDepthwiseConv2D, name))(x)
        layer_name = self.task_name(name, self.backbone_task(task))
        if self.architecture == "conv":
            self.owners[layer_name] = task
        return self._get(layer_name, make(keras.layers.DepthwiseConv2D,
                                          layer_name))(x)

    def task_conv(self, base, task, filters, kernel_size, strides=1,
                  dilation_rate=1, use_bias=False):
        """An ordinary conv owned by one task (shortcut convs, heads)."""
        name = self.task_name(base, task)
        if task is not None:
            self.owners[name] = task
        return self._get(name, lambda: conv2d_layer(
            filters, kernel_size, strides=strides, padding="same",
            dilation_rate=dilation_rate, use_bias=use_bias,
            kernel_initializer="he_normal", name=name))

    def task_bn(self, base, task, epsilon=BN_EPSILON):
        name = self.task_name(base, task)
        if task is not None:
            self.owners[name] = task
        return self._get(name, lambda: FusedBatchNormalization(
            momentum=BN_MOMENTUM, epsilon=epsilon, name=name))

    def shared(self, name, make):
        """A stateless layer (padding, pooling, activation) for all tasks."""
        return self._get(name, make)
