"""`ReparamConv2D`: a frozen shared filter bank followed by per-task modulators."""

import keras
import numpy as np
from keras import ops

from rmtl_tf.layers import task_state
from rmtl_tf.layers.conv_ops import bank_conv, bank_conv_output_shape
from rmtl_tf.layers.conv_ops import normalize_padding, normalize_tuple

COMPUTE_MODES = ("auto", "fused", "factorized")
MODULATOR_INITS = ("identity", "orthogonal", "random_normal")


@keras.saving.register_keras_serializable(package="rmtl_tf")
class ReparamConv2D(keras.layers.Layer):
    """Reparameterized 2-D convolution: `y = Wt_task . (Ws * x)`.

    The filter bank `Ws` (`kernel_size + (c_in, filters)`, HWIO) is shared by
    every task and is never trained. Each task owns a `filters x filters`
    modulator `Wt_task` (a 1x1 convolution) that recombines the bank's
    responses. Since nothing shared is trained, training one task cannot
    change another task's outputs.

    With `nff=True` (normalized feature fusion) the modulator is weight
    normalized per output filter: `Wt = g * v / ||v||`, the norm taken over
    the input axis of each output filter (a column of the HWIO matrix `v`).

    Args:
        filters: int, number of output channels (`c_out`).
        kernel_size: int or pair, size of the bank's kernel.
        strides: int or pair.
        padding: `"same"`, `"valid"`, or explicit symmetric zero padding:
            an int or a pair `(pad_h, pad_w)` added on both sides, as
            PyTorch's `Conv2d(padding=...)` (so imported weights compute the
            same function). Explicit padding is part of the convolution op,
            not a separate `Pad` op, so graph optimizers cannot merge it
            across tasks.
        dilation_rate: int or pair.
        tasks: sequence of task names to create modulators for at build.
        nff: bool, use weight-normalized modulators.
        compute_mode: `"fused"` computes the per-task kernel `Ws @ Wt` once
            per call and runs one convolution; `"factorized"` runs the bank
            convolution then the 1x1 modulator, as written in the paper.
            Both give the same function. `"auto"` (default) is factorized
            when training, so the gradient of the k x k kernel (the frozen
            bank's shape) is never computed, only the 1x1 modulator's (10%
            of a ResNet-18 DeepLabv3+ training step in float32 on the CPU,
            40% in bfloat16), and fused at inference.
        modulator_init: how new modulators start: `"identity"` (default, the
            task starts as the bank), `"orthogonal"` or `"random_normal"`.
        use_bias: bool, give each task its own bias (`bias_<task>`, zeros
            at creation), added after the modulator. False by default (the
            paper's convs have none); `rmtl_tf.reparameterize` sets it for
            convs that had a bias, initialized with the pretrained one.
        bank_initializer: initializer of the bank before pretrained weights
            are loaded into it.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor `(batch, height, width, c_in)`.
        task: str, the task whose modulator to use (keyword, required).

    Example:

    ```python
    layer = ReparamConv2D(64, 3, tasks=["semseg", "depth"])
    y = layer(keras.random.normal((2, 32, 32, 16)), task="depth")
    layer.add_task("normals")
    ```

    Reference:
        Kanakis et al., "Reparameterizing Convolutions for Incremental
        Multi-Task Learning without Task Interference", ECCV 2020.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        dilation_rate=1,
        tasks=(),
        nff=False,
        compute_mode="auto",
        modulator_init="identity",
        bank_initializer="he_normal",
        use_bias=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(
                f"`filters` must be a positive int. Received: filters={filters}"
            )
        padding = normalize_padding(padding)
        if compute_mode not in COMPUTE_MODES:
            raise ValueError(
                f"`compute_mode` must be one of {COMPUTE_MODES}. "
                f"Received: compute_mode={compute_mode!r}"
            )
        if modulator_init not in MODULATOR_INITS:
            raise ValueError(
                f"`modulator_init` must be one of {MODULATOR_INITS}. "
                f"Received: modulator_init={modulator_init!r}"
            )
        self.filters = filters
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size")
        self.strides = normalize_tuple(strides, "strides")
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides` > 1 with `dilation_rate` > 1 is not supported. "
                f"Received: strides={self.strides}, "
                f"dilation_rate={self.dilation_rate}"
            )
        self.padding = padding
        self.nff = bool(nff)
        self.compute_mode = compute_mode
        self.modulator_init = modulator_init
        self.bank_initializer = keras.initializers.get(bank_initializer)
        self.use_bias = bool(use_bias)
        self.biases = {}
        self.tasks = []
        self.modulators = {}
        for task in tasks:
            task_state.check_new_task(self, task)
            self.tasks.append(task)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    # -- state ---------------------------------------------------------------

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(
                "The channel dimension of the inputs must be known. "
                f"Received: input_shape={input_shape}"
            )
        self.bank = self.add_weight(
            name="bank",
            shape=self.kernel_size + (in_channels, self.filters),
            initializer=self.bank_initializer,
            trainable=False,
        )
        for task in self.tasks:
            self._create_modulator(task, self.modulator_init)

    def _modulator_initializer(self, init):
        if init == "identity":
            return keras.initializers.Identity()
        if init == "orthogonal":
            return keras.initializers.Orthogonal()
        if init == "random_normal":
            return keras.initializers.RandomNormal(
                stddev=1.0 / self.filters**0.5
            )
        raise ValueError(
            f"`init` must be one of {MODULATOR_INITS}. Received: init={init!r}"
        )

    def _create_modulator(self, task, init):
        shape = (self.filters, self.filters)
        initializer = self._modulator_initializer(init)
        if self.nff:
            v = self.add_weight(
                name=f"modulator_{task}_v",
                shape=shape,
                initializer=initializer,
                trainable=True,
            )
            g = self.add_weight(
                name=f"modulator_{task}_g",
                shape=(self.filters,),
                initializer="zeros",
                trainable=True,
            )
            # g starts as ||v|| per output filter, so Wt = v at start.
            g.assign(ops.sqrt(ops.sum(ops.square(v), axis=0)))
            self.modulators[task] = {"v": v, "g": g}
        else:
            self.modulators[task] = self.add_weight(
                name=f"modulator_{task}",
                shape=shape,
                initializer=initializer,
                trainable=True,
            )
        if self.use_bias:
            self.biases[task] = self.add_weight(
                name=f"bias_{task}",
                shape=(self.filters,),
                initializer="zeros",
                trainable=True,
            )

    def add_task(self, task, init=None):
        """Adds a modulator for `task` (identity-initialized by default).

        Works before and after the layer is built; the bank is untouched.
        """
        task_state.check_new_task(self, task)
        init = self.modulator_init if init is None else init
        self._modulator_initializer(init)  # Validates `init` first.
        self.tasks.append(task)
        if self.built:
            with task_state.unlocked_tracker(self):
                self._create_modulator(task, init)

    def task_variables(self, task):
        """The variables owned by `task` in this layer."""
        task_state.check_task(self, task)
        modulator = self.modulators[task]
        variables = list(modulator.values()) if self.nff else [modulator]
        return variables + ([self.biases[task]] if self.use_bias else [])

    # -- math ----------------------------------------------------------------

    def modulator(self, task):
        """The effective `(filters, filters)` modulator matrix of `task`."""
        task_state.check_task(self, task)
        modulator = self.modulators[task]
        if not self.nff:
            return modulator
        v, g = modulator["v"], modulator["g"]
        norm = ops.sqrt(ops.sum(ops.square(v), axis=0, keepdims=True))
        return v * (g[None, :] / ops.maximum(norm, 1e-12))

    def set_modulator(self, task, matrix):
        """Sets `task`'s effective modulator to `matrix` (`(filters,
        filters)`, `[in, out]`); with NFF, `v = matrix` and `g` its norm per
        output filter (computed in `matrix`'s precision)."""
        task_state.check_task(self, task)
        matrix = np.asarray(matrix)
        if self.nff:
            self.modulators[task]["v"].assign(matrix.astype(np.float32))
            self.modulators[task]["g"].assign(
                np.linalg.norm(matrix, axis=0).astype(np.float32))
        else:
            self.modulators[task].assign(matrix.astype(np.float32))

    def task_kernel(self, task):
        """The bank folded with `task`'s modulator: an ordinary HWIO kernel."""
        return ops.tensordot(self.bank, self.modulator(task), axes=[[3], [0]])

    def call(self, inputs, task=None, training=None):
        if task is None:
            raise ValueError(
                f"Layer {self.name!r} needs the task by keyword, e.g. "
                f"`layer(x, task={self.tasks[0] if self.tasks else 'semseg'!r})`."
                f" Known tasks: {self.tasks}"
            )
        task_state.check_task(self, task)
        fused = (self.compute_mode == "fused"
                 or (self.compute_mode == "auto" and not training))
        if fused:
            kernel = ops.cast(self.task_kernel(task), inputs.dtype)
            outputs = self._conv(inputs, kernel)
        else:
            responses = self._conv(inputs, ops.cast(self.bank, inputs.dtype))
            modulator = ops.cast(self.modulator(task), inputs.dtype)
            outputs = ops.tensordot(responses, modulator, axes=[[3], [0]])
        if self.use_bias:
            outputs = outputs + ops.cast(self.biases[task], outputs.dtype)
        return outputs

    def _conv(self, inputs, kernel):
        # A module global looked up at call time: benchmarks/bench_speed.py
        # replaces `reparam_conv2d.bank_conv` for its ablation.
        return bank_conv(inputs, kernel, self.strides, self.padding,
                         self.dilation_rate)

    def compute_output_shape(self, input_shape):
        return bank_conv_output_shape(
            input_shape, self.filters, self.kernel_size, self.strides,
            self.padding, self.dilation_rate)

    # -- serialization ---------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "tasks": list(self.tasks),
                "nff": self.nff,
                "compute_mode": self.compute_mode,
                "modulator_init": self.modulator_init,
                "bank_initializer": keras.initializers.serialize(
                    self.bank_initializer
                ),
                "use_bias": self.use_bias,
            }
        )
        return config

    def save_own_variables(self, store):
        task_state.save_bank_and_tasks(self, store)

    def load_own_variables(self, store):
        task_state.load_bank_and_tasks(self, store)
