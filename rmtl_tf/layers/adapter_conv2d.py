"""`AdapterConv2D`: a frozen shared conv with per-task residual adapters."""

import keras
from keras import ops

from rmtl_tf.layers import task_state
from rmtl_tf.layers.conv_ops import bank_conv, bank_conv_output_shape
from rmtl_tf.layers.conv_ops import normalize_padding, normalize_tuple

ADAPTER_MODES = ("series", "parallel")


@keras.saving.register_keras_serializable(package="rmtl_tf")
class AdapterConv2D(keras.layers.Layer):
    """Residual adapters (Rebuffi et al.) on a frozen, shared filter bank.

    The baseline the RCM paper compares with. The bank `Ws` is shared and
    never trained, as in `ReparamConv2D`; each task adds a small 1x1 conv:

    - `"series"`: `z = Ws * x`, then `y = z + A_task(BN_task(z))` with
      `A_task` a `filters x filters` 1x1 conv and `BN_task` a batch norm;
    - `"parallel"`: `y = Ws * x + A_task(x)` with `A_task` a
      `c_in x filters` 1x1 conv with the bank's stride.

    Args:
        filters: int, output channels.
        kernel_size: int or pair, size of the bank's kernel.
        strides: int or pair.
        padding: "same", "valid", or explicit symmetric padding (int or
            pair), as `ReparamConv2D`.
        dilation_rate: int or pair.
        tasks: task names to create adapters for at build.
        mode: "series" or "parallel".
        bn_momentum: momentum of the series adapter's moving statistics.
        bn_epsilon: epsilon of the series adapter's batch norm.
        bank_initializer: initializer of the bank before weights are loaded.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: float tensor `(batch, height, width, c_in)`.
        task: str, keyword, the task whose adapter to use.
        training: bool, batch statistics (series mode) when True.

    Reference:
        Rebuffi et al., "Efficient parametrization of multi-domain deep
        neural networks", CVPR 2018.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="same",
                 dilation_rate=1, tasks=(), mode="series", bn_momentum=0.9,
                 bn_epsilon=1e-5, bank_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        if mode not in ADAPTER_MODES:
            raise ValueError(f"`mode` must be one of {ADAPTER_MODES}. "
                             f"Received: mode={mode!r}")
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError("`filters` must be a positive int. "
                             f"Received: filters={filters}")
        self.filters = filters
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size")
        self.strides = normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate")
        self.mode = mode
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.bank_initializer = keras.initializers.get(bank_initializer)
        self.tasks = []
        self.adapters = {}
        for task in tasks:
            task_state.check_new_task(self, task)
            self.tasks.append(task)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError("The channel dimension of the inputs must be "
                             f"known. Received: input_shape={input_shape}")
        self.in_channels = int(in_channels)
        self.bank = self.add_weight(
            name="bank", shape=self.kernel_size + (in_channels, self.filters),
            initializer=self.bank_initializer, trainable=False)
        for task in self.tasks:
            self._create_adapter(task)

    def _create_adapter(self, task):
        c_in = self.filters if self.mode == "series" else self.in_channels
        adapter = {"kernel": self.add_weight(
            name=f"adapter_{task}_kernel", shape=(c_in, self.filters),
            initializer="zeros", trainable=True)}
        if self.mode == "series":
            for name, init, trainable in (
                    ("gamma", "ones", True), ("beta", "zeros", True),
                    ("moving_mean", "zeros", False),
                    ("moving_variance", "ones", False)):
                adapter[name] = self.add_weight(
                    name=f"adapter_{task}_bn_{name}", shape=(self.filters,),
                    initializer=init, trainable=trainable)
        self.adapters[task] = adapter

    def add_task(self, task):
        """Adds a zero-initialized adapter: the task starts as the bank."""
        task_state.check_new_task(self, task)
        self.tasks.append(task)
        if self.built:
            with task_state.unlocked_tracker(self):
                self._create_adapter(task)

    def task_variables(self, task):
        """The variables owned by `task` in this layer."""
        task_state.check_task(self, task)
        return list(self.adapters[task].values())

    def task_statistics(self, task):
        """`task`'s moving statistics: variables that never train."""
        task_state.check_task(self, task)
        adapter = self.adapters[task]
        return [adapter[k] for k in ("moving_mean", "moving_variance")
                if k in adapter]

    def call(self, inputs, task=None, training=None):
        if task is None:
            raise ValueError(f"Layer {self.name!r} needs the task by keyword."
                             f" Known tasks: {self.tasks}")
        task_state.check_task(self, task)
        adapter = self.adapters[task]
        z = bank_conv(inputs, ops.cast(self.bank, inputs.dtype), self.strides,
                      self.padding, self.dilation_rate)
        kernel = ops.cast(adapter["kernel"], inputs.dtype)
        if self.mode == "parallel":
            return z + self._parallel(inputs, kernel, z)
        normalized = self._series_bn(z, adapter, training)
        return z + ops.tensordot(normalized, kernel, axes=[[3], [0]])

    def _parallel(self, x, kernel, z):
        """The 1x1 adapter on the input, sampled on the bank's output grid."""
        offset = [0, 0]
        if isinstance(self.padding, tuple):
            # Output pixel i of the bank conv is centred on input
            # i * stride - pad + (k - 1) * d / 2.
            offset = [(self.kernel_size[i] - 1) * self.dilation_rate[i] // 2
                      - self.padding[i] for i in (0, 1)]
        elif self.padding == "valid":
            offset = [(self.kernel_size[i] - 1) * self.dilation_rate[i] // 2
                      for i in (0, 1)]
        x = x[:, offset[0]:, offset[1]:, :] if any(offset) else x
        x = x[:, ::self.strides[0], ::self.strides[1], :]
        x = x[:, :ops.shape(z)[1], :ops.shape(z)[2], :]
        return ops.tensordot(x, kernel, axes=[[3], [0]])

    def _series_bn(self, z, adapter, training):
        if training and adapter["gamma"].trainable:
            mean, variance = ops.moments(z, axes=[0, 1, 2])
            momentum = self.bn_momentum
            adapter["moving_mean"].assign(
                adapter["moving_mean"] * momentum + mean * (1 - momentum))
            adapter["moving_variance"].assign(
                adapter["moving_variance"] * momentum
                + variance * (1 - momentum))
        else:
            mean = adapter["moving_mean"]
            variance = adapter["moving_variance"]
        return ops.batch_normalization(
            z, ops.cast(mean, z.dtype), ops.cast(variance, z.dtype), axis=-1,
            offset=ops.cast(adapter["beta"], z.dtype),
            scale=ops.cast(adapter["gamma"], z.dtype),
            epsilon=self.bn_epsilon)

    def compute_output_shape(self, input_shape):
        return bank_conv_output_shape(
            input_shape, self.filters, self.kernel_size, self.strides,
            self.padding, self.dilation_rate)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size,
            "strides": self.strides, "padding": self.padding,
            "dilation_rate": self.dilation_rate, "tasks": list(self.tasks),
            "mode": self.mode, "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "bank_initializer": keras.initializers.serialize(
                self.bank_initializer),
        })
        return config

    def save_own_variables(self, store):
        task_state.save_bank_and_tasks(self, store)

    def load_own_variables(self, store):
        task_state.load_bank_and_tasks(self, store)
