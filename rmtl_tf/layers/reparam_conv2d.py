"""`ReparamConv2D`: a frozen shared filter bank followed by per-task modulators."""

import re

import keras
from keras import ops

TASK_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
COMPUTE_MODES = ("auto", "fused", "factorized")
MODULATOR_INITS = ("identity", "orthogonal", "random_normal")


def validate_task_name(task):
    """Raises `ValueError` unless `task` can name a variable and a signature."""
    if not isinstance(task, str) or not TASK_NAME_PATTERN.match(task):
        raise ValueError(
            "A task name must be lower-case letters, digits and '_', start "
            "with a letter and be at most 64 characters long (it names "
            f"variables and export signatures). Received: task={task!r}"
        )
    return task


def _normalize_tuple(value, name):
    pair = (value, value) if isinstance(value, int) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool)
                       and v > 0 for v in pair)):
        raise ValueError(
            f"`{name}` must be a positive int or a pair of positive ints. "
            f"Received: {name}={value!r}"
        )
    return tuple(pair)


def _normalize_padding(padding):
    if isinstance(padding, str) and padding.lower() in ("same", "valid"):
        return padding.lower()
    pair = padding
    if isinstance(padding, int) and not isinstance(padding, bool):
        pair = (padding, padding)
    if (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(p, int) and not isinstance(p, bool)
                    and p >= 0 for p in pair)):
        return tuple(pair)
    raise ValueError(
        "`padding` must be 'same', 'valid', a non-negative int or a pair of "
        f"non-negative ints. Received: padding={padding!r}"
    )


def bank_conv(inputs, kernel, strides, padding, dilation_rate):
    """A 2-D convolution, channels last, with explicit padding support.

    `padding` is "same", "valid" or a pair `(pad_h, pad_w)` of symmetric
    zero padding. Explicit padding is part of the convolution op, not a
    separate `Pad` op, so graph optimizers cannot merge it across tasks and
    fuse differently in one- and many-task graphs.

    On TensorFlow this is always one `Conv2D` op: `keras.ops.conv` runs
    dilated convolutions through `tf.nn.convolution`, which wraps them in
    `SpaceToBatchND`/`BatchToSpaceND`, 4x to 45x slower on the CPU for the
    rates of layer4 and ASPP (benchmarks/bench_speed.py, `atrous` part).
    TensorFlow's own CPU kernels (used when oneDNN is off, e.g. on CPUs
    without AVX-512, where TensorFlow leaves it off by default) run a
    dilated `Conv2D` forward but have no dilated gradient kernels; there
    the gradient is taken through the space-to-batch form instead
    (`_dilated_conv_with_space_to_batch_gradient`).
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        if isinstance(padding, tuple):
            (ph, pw) = padding
            padding = [[0, 0], [ph, ph], [pw, pw], [0, 0]]
        else:
            padding = padding.upper()
        dilated = any(rate > 1 for rate in dilation_rate)
        if dilated and not _dilated_gradients_supported(padding,
                                                         inputs.dtype):
            if any(stride > 1 for stride in strides):
                raise ValueError(
                    "A dilated convolution with strides > 1 cannot be "
                    "trained on this TensorFlow build (no dilated gradient "
                    f"kernels). Received: strides={strides}, "
                    f"dilation_rate={dilation_rate}")
            return _dilated_conv_with_space_to_batch_gradient(
                inputs, kernel, padding, dilation_rate)
        return tf.nn.conv2d(inputs, kernel, strides=(1, *strides, 1),
                            padding=padding,
                            dilations=(1, *dilation_rate, 1))
    if isinstance(padding, tuple):
        (ph, pw) = padding
        inputs = ops.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        padding = "valid"
    return ops.conv(inputs, kernel, strides=strides, padding=padding,
                    dilation_rate=dilation_rate, data_format="channels_last")


_DILATED_GRADIENTS = {}


def _dilated_gradients_supported(padding, dtype="float32"):
    """Whether this TensorFlow build has gradient kernels for a dilated
    `Conv2D` op with this kind of padding (a string, or explicit pads) and
    compute dtype.

    oneDNN kernels do for "SAME"/"VALID" but not for explicit padding, and
    in bfloat16/float16 only on some CPUs; TensorFlow's Eigen CPU kernels
    never do ("Current CPU implementations do not yet support dilation
    rates larger than 1"). Probed once per process, padding kind and dtype
    by running both gradient ops on tiny tensors.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    explicit, dtype = isinstance(padding, list), tf.as_dtype(dtype).name
    key = (explicit, dtype)
    if key not in _DILATED_GRADIENTS:
        kwargs = dict(strides=[1, 1, 1, 1], dilations=[1, 2, 2, 1],
                      padding="EXPLICIT" if explicit else "SAME")
        if explicit:
            kwargs["explicit_paddings"] = [0, 0, 2, 2, 2, 2, 0, 0]
        with tf.init_scope():
            x = tf.ones((1, 5, 5, 1), dtype=dtype)
            kernel = tf.ones((3, 3, 1, 1), dtype=dtype)
            try:
                tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(x), filter=kernel, out_backprop=x,
                    **kwargs)
                tf.raw_ops.Conv2DBackpropFilter(
                    input=x, filter_sizes=tf.shape(kernel), out_backprop=x,
                    **kwargs)
                _DILATED_GRADIENTS[key] = True
            except (tf.errors.InvalidArgumentError,
                    tf.errors.UnimplementedError,
                    tf.errors.NotFoundError):
                _DILATED_GRADIENTS[key] = False
    return _DILATED_GRADIENTS[key]


def _dilated_conv_with_space_to_batch_gradient(inputs, kernel, padding,
                                               dilation_rate):
    """A stride-1 dilated conv: one `Conv2D` op forward; its gradient from
    the equivalent `tf.nn.convolution` (space-to-batch, undilated kernels).

    In a graph the space-to-batch forward convolution is traced for its
    gradient only: no op reads its output, so TensorFlow prunes it from
    what runs (the gradient ops need its inputs, not its result).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    dilations = (1, *dilation_rate, 1)

    @tf.custom_gradient
    def conv(x, k):
        y = tf.nn.conv2d(x, k, strides=1, padding=padding,
                         dilations=dilations)

        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch([x, k])
                padded, pad = x, padding
                if isinstance(pad, list):
                    padded, pad = tf.pad(x, pad), "VALID"
                y_s2b = tf.nn.convolution(padded, k, strides=1, padding=pad,
                                          dilations=dilation_rate)
            return tape.gradient(y_s2b, [x, k], output_gradients=dy)

        return y, grad

    # A tensor, not the variable: the tape records the variable's read, and
    # the custom gradient sees no variables of its own.
    return conv(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


def bank_conv_output_shape(input_shape, filters, kernel_size, strides,
                           padding, dilation_rate):
    """Output shape of `bank_conv` for a channels-last `input_shape`."""
    spatial = []
    for i, size in enumerate(input_shape[1:3]):
        if size is None:
            spatial.append(None)
            continue
        effective = (kernel_size[i] - 1) * dilation_rate[i] + 1
        if padding == "same":
            spatial.append(-(-size // strides[i]))
            continue
        if isinstance(padding, tuple):
            size = size + 2 * padding[i]
        spatial.append((size - effective) // strides[i] + 1)
    return (input_shape[0], *spatial, filters)


def save_bank_and_tasks(layer, store):
    """Saves `layer.bank` and every task's variables under stable names."""
    for name, variable in _bank_and_task_variables(layer).items():
        store[name] = variable.numpy()


def load_bank_and_tasks(layer, store):
    """Loads what `save_bank_and_tasks` wrote, checking names and shapes."""
    named = _bank_and_task_variables(layer)
    stored = set(store.keys())
    if stored != set(named):
        raise ValueError(
            f"Layer {layer.name!r} cannot load these weights: missing "
            f"{sorted(set(named) - stored)}, unexpected "
            f"{sorted(stored - set(named))}. The checkpoint was written "
            "by a model with other tasks or another architecture."
        )
    for name, variable in named.items():
        value = store[name]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Layer {layer.name!r}: weight {name!r} has shape "
                f"{tuple(value.shape)} in the checkpoint, expected "
                f"{tuple(variable.shape)}."
            )
        variable.assign(value)


def _bank_and_task_variables(layer):
    named = {"bank": layer.bank}
    for task in layer.tasks:
        for variable in layer.task_variables(task):
            named[variable.name] = variable
    return named


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
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(
                f"`filters` must be a positive int. Received: filters={filters}"
            )
        padding = _normalize_padding(padding)
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
        self.kernel_size = _normalize_tuple(kernel_size, "kernel_size")
        self.strides = _normalize_tuple(strides, "strides")
        self.dilation_rate = _normalize_tuple(dilation_rate, "dilation_rate")
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
        self.tasks = []
        self.modulators = {}
        for task in tasks:
            self._check_new_task(task)
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

    def _check_new_task(self, task):
        validate_task_name(task)
        if task in self.tasks:
            raise ValueError(
                f"Task {task!r} already exists in layer {self.name!r}; its "
                f"tasks are {self.tasks}. Task names must be unique."
            )

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

    def add_task(self, task, init=None):
        """Adds a modulator for `task` (identity-initialized by default).

        Works before and after the layer is built; the bank is untouched.
        """
        self._check_new_task(task)
        init = self.modulator_init if init is None else init
        self._modulator_initializer(init)  # Validates `init` first.
        self.tasks.append(task)
        if self.built:
            locked = self._tracker.locked
            self._tracker.unlock()
            try:
                self._create_modulator(task, init)
            finally:
                if locked:
                    self._tracker.lock()

    def task_variables(self, task):
        """The variables owned by `task` in this layer."""
        self._check_task(task)
        modulator = self.modulators[task]
        return list(modulator.values()) if self.nff else [modulator]

    def _check_task(self, task):
        if task not in self.tasks:
            raise ValueError(
                f"Unknown task {task!r} for layer {self.name!r}. "
                f"Expected one of {self.tasks}."
            )

    # -- math ----------------------------------------------------------------

    def modulator(self, task):
        """The effective `(filters, filters)` modulator matrix of `task`."""
        self._check_task(task)
        modulator = self.modulators[task]
        if not self.nff:
            return modulator
        v, g = modulator["v"], modulator["g"]
        norm = ops.sqrt(ops.sum(ops.square(v), axis=0, keepdims=True))
        return v * (g[None, :] / ops.maximum(norm, 1e-12))

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
        self._check_task(task)
        fused = (self.compute_mode == "fused"
                 or (self.compute_mode == "auto" and not training))
        if fused:
            kernel = ops.cast(self.task_kernel(task), inputs.dtype)
            return self._conv(inputs, kernel)
        responses = self._conv(inputs, ops.cast(self.bank, inputs.dtype))
        modulator = ops.cast(self.modulator(task), inputs.dtype)
        return ops.tensordot(responses, modulator, axes=[[3], [0]])

    def _conv(self, inputs, kernel):
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
            }
        )
        return config

    def save_own_variables(self, store):
        save_bank_and_tasks(self, store)

    def load_own_variables(self, store):
        load_bank_and_tasks(self, store)
