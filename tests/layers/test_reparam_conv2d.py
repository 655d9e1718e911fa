"""Tests for `ReparamConv2D`, checked against a plain numpy convolution."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.testing import run_layer_test

BATCH = 2
C_IN = 3


# -- independent numpy reference ---------------------------------------------


def _pads(size, kernel, stride, dilation, padding, axis):
    """(before, after) zero padding of one spatial axis."""
    if padding == "valid":
        return 0, 0
    if padding == "same":  # TF: the odd pixel goes at the end.
        effective = (kernel - 1) * dilation + 1
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + effective - size, 0)
        return total // 2, total - total // 2
    pad = (padding, padding)[axis] if isinstance(padding, int) else padding[axis]
    return pad, pad


def conv2d_ref(x, kernel, strides=(1, 1), padding="same", dilation=(1, 1)):
    """NHWC x HWIO convolution as a sum over kernel taps, in float64."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    kh, kw = kernel.shape[:2]
    (sh, sw), (dh, dw) = strides, dilation
    ph = _pads(x.shape[1], kh, sh, dh, padding, 0)
    pw = _pads(x.shape[2], kw, sw, dw, padding, 1)
    xp = np.pad(x, [(0, 0), ph, pw, (0, 0)])
    out_h = (xp.shape[1] - ((kh - 1) * dh + 1)) // sh + 1
    out_w = (xp.shape[2] - ((kw - 1) * dw + 1)) // sw + 1
    y = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            taps = xp[:, i * dh:i * dh + (out_h - 1) * sh + 1:sh,
                      j * dw:j * dw + (out_w - 1) * sw + 1:sw, :]
            y += np.einsum("nhwc,co->nhwo", taps, kernel[i, j])
    return y


def reparam_ref(x, bank, modulator, **conv_kwargs):
    """`Wt . (Ws * x)`: the bank convolution, then the 1x1 modulator."""
    return conv2d_ref(x, bank, **conv_kwargs) @ np.asarray(modulator,
                                                           np.float64)


def nff_ref(v, g):
    """`g * v / ||v||`, the norm per output filter (a column of `v`)."""
    return v * (g / np.linalg.norm(v, axis=0))[None, :]


def assert_close(actual, expected, rtol=1e-4):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


# -- helpers -------------------------------------------------------------------


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _randomize(layer, seed=1):
    """Random bank and random (non-identity) modulators; returns numpy copies."""
    rng = np.random.default_rng(seed)
    layer.bank.assign(rng.normal(size=layer.bank.shape).astype("float32"))
    effective = {}
    for task in layer.tasks:
        shape = (layer.filters, layer.filters)
        if layer.nff:
            v = rng.normal(size=shape).astype("float32")
            g = rng.uniform(0.5, 2.0, size=layer.filters).astype("float32")
            layer.modulators[task]["v"].assign(v)
            layer.modulators[task]["g"].assign(g)
            effective[task] = nff_ref(v.astype(np.float64), g)
        else:
            w = rng.normal(size=shape).astype("float32")
            layer.modulators[task].assign(w)
            effective[task] = w.astype(np.float64)
    return layer.bank.numpy(), effective


# (kernel_size, strides, dilation_rate, padding, input height/width)
CONV_CASES = [
    (3, 1, 1, "same", (8, 8)),
    (3, 2, 1, "same", (8, 8)),     # TF puts the odd pad pixel at the end.
    (3, 2, 1, "same", (9, 7)),
    (3, 1, 2, "same", (8, 8)),
    (3, 1, 1, "valid", (8, 8)),
    (3, 2, 1, "valid", (9, 8)),
    (3, 1, 2, "valid", (9, 8)),
    (3, 2, 1, 1, (8, 8)),          # The ResNet strided 3x3.
    (7, 2, 1, 3, (12, 12)),        # The ResNet stem.
    (3, 1, 2, (2, 1), (8, 8)),
    ((3, 2), (2, 1), 1, (1, 0), (9, 8)),
]
CONV_IDS = [f"k{k}-s{s}-d{d}-p{p}-{hw[0]}x{hw[1]}"
            for k, s, d, p, hw in CONV_CASES]


# -- math ------------------------------------------------------------------------


@pytest.mark.parametrize("compute_mode", ["auto", "fused", "factorized"])
@pytest.mark.parametrize("kernel_size,strides,dilation,padding,hw",
                         CONV_CASES, ids=CONV_IDS)
def test_output_matches_numpy(kernel_size, strides, dilation, padding, hw,
                              compute_mode):
    layer = ReparamConv2D(4, kernel_size, strides=strides, padding=padding,
                          dilation_rate=dilation, tasks=["semseg", "depth"],
                          compute_mode=compute_mode)
    x = _inputs((BATCH, *hw, C_IN))
    layer.build(x.shape)
    bank, modulators = _randomize(layer)
    conv_kwargs = dict(strides=_pair(strides), padding=padding,
                       dilation=_pair(dilation))
    outputs = {}
    for task in ("semseg", "depth"):
        outputs[task] = layer(x, task=task)
        expected = reparam_ref(x, bank, modulators[task], **conv_kwargs)
        assert_close(outputs[task], expected)
        assert layer.compute_output_shape(x.shape) == expected.shape
        symbolic = layer(keras.Input(x.shape[1:], batch_size=BATCH),
                         task=task)
        assert tuple(symbolic.shape) == expected.shape
    # Different modulators, different functions of the same bank.
    assert not np.allclose(outputs["semseg"], outputs["depth"], atol=1e-3)


@pytest.mark.parametrize("compute_mode", ["auto", "fused", "factorized"])
def test_nff_output_matches_numpy(compute_mode):
    layer = ReparamConv2D(5, 3, strides=2, padding=1, tasks=["a", "b"],
                          nff=True, compute_mode=compute_mode)
    x = _inputs((BATCH, 9, 8, C_IN))
    layer.build(x.shape)
    bank, modulators = _randomize(layer)
    for task in ("a", "b"):
        expected = reparam_ref(x, bank, modulators[task], strides=(2, 2),
                               padding=1, dilation=(1, 1))
        assert_close(layer(x, task=task), expected)


def test_nff_modulator_is_normalized_per_output_filter():
    layer = ReparamConv2D(5, 3, tasks=["a"], nff=True)
    layer.build((None, 8, 8, C_IN))
    rng = np.random.default_rng(3)
    # Scale rows and columns differently so the two possible norms differ.
    v = (rng.normal(size=(5, 5)) * np.arange(1, 6)[:, None]).astype("float32")
    g = rng.uniform(0.5, 2.0, size=5).astype("float32")
    layer.modulators["a"]["v"].assign(v)
    layer.modulators["a"]["g"].assign(g)
    effective = layer.modulator("a").numpy()
    assert_close(effective, nff_ref(v.astype(np.float64), g))
    # Column j (output filter j) has norm g[j], whatever the scale of v.
    np.testing.assert_allclose(np.linalg.norm(effective, axis=0), g,
                               rtol=1e-5)
    # The folded kernel uses the same effective modulator.
    kernel = np.einsum("hwio,oj->hwij", layer.bank.numpy(),
                       effective.astype(np.float64))
    assert_close(layer.task_kernel("a"), kernel)


@pytest.mark.parametrize("modulator_init",
                         ["identity", "orthogonal", "random_normal"])
def test_nff_starts_as_v(modulator_init):
    layer = ReparamConv2D(4, 3, tasks=["a"], nff=True,
                          modulator_init=modulator_init)
    layer.build((None, 8, 8, C_IN))
    v = layer.modulators["a"]["v"].numpy()
    np.testing.assert_allclose(layer.modulator("a"), v, rtol=1e-5, atol=1e-6)
    if modulator_init == "identity":
        np.testing.assert_array_equal(v, np.eye(4))
    else:
        assert not np.allclose(v, np.eye(4))


@pytest.mark.parametrize("nff", [False, True])
@pytest.mark.parametrize("compute_mode", ["auto", "fused", "factorized"])
def test_identity_init_is_the_plain_bank_conv(nff, compute_mode):
    layer = ReparamConv2D(4, 3, strides=2, padding="same", tasks=["a"],
                          nff=nff, compute_mode=compute_mode)
    x = _inputs((BATCH, 9, 9, C_IN))
    y = layer(x, task="a")
    np.testing.assert_array_equal(layer.modulator("a"), np.eye(4))
    expected = conv2d_ref(x, layer.bank.numpy(), strides=(2, 2),
                          padding="same")
    assert_close(y, expected)


# -- weights -------------------------------------------------------------------


@pytest.mark.parametrize("nff", [False, True])
def test_weights_trainability_and_counts(nff):
    k, c_in, c_out, tasks = 3, C_IN, 4, ["semseg", "depth", "edge"]
    layer = ReparamConv2D(c_out, k, tasks=tasks, nff=nff)
    layer.build((None, 8, 8, c_in))
    assert layer.non_trainable_weights == [layer.bank]
    assert all(w is not layer.bank for w in layer.trainable_weights)
    assert tuple(layer.bank.shape) == (k, k, c_in, c_out)
    per_task = c_out * c_out + (c_out if nff else 0)
    assert len(layer.trainable_weights) == len(tasks) * (2 if nff else 1)
    trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    assert trainable == len(tasks) * per_task
    assert layer.count_params() == k * k * c_in * c_out + len(tasks) * per_task
    for task in tasks:
        variables = layer.task_variables(task)
        assert sum(int(np.prod(w.shape)) for w in variables) == per_task
        assert all(w.trainable for w in variables)
        assert all(task in w.name for w in variables)


@pytest.mark.parametrize("nff", [False, True])
@pytest.mark.parametrize("compute_mode", ["auto", "fused", "factorized"])
def test_gradient_step_changes_only_its_task(nff, compute_mode):
    layer = ReparamConv2D(4, 3, tasks=["a", "b", "c"], nff=nff,
                          compute_mode=compute_mode)
    x = _inputs((BATCH, 8, 8, C_IN))
    layer.build(x.shape)
    _randomize(layer)
    before = {t: layer(x, task=t).numpy() for t in layer.tasks}
    bank = layer.bank.numpy()
    values = [w.numpy() for w in layer.trainable_weights]

    assert not any(w is layer.bank for w in layer.trainable_variables)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.ops.square(
            layer(x, task="a", training=True)))
    grads = tape.gradient(loss, layer.trainable_variables)
    own = {id(w) for w in layer.task_variables("a")}
    for w, grad in zip(layer.trainable_variables, grads):
        if id(w) in own:
            assert grad is not None and np.abs(grad.numpy()).max() > 0
        else:
            assert grad is None or not np.any(grad.numpy())
    keras.optimizers.SGD(0.1).apply_gradients(
        [(g, w) for g, w in zip(grads, layer.trainable_variables)
         if g is not None])

    np.testing.assert_array_equal(layer.bank.numpy(), bank)
    for w, value in zip(layer.trainable_weights, values):
        changed = not np.array_equal(w.numpy(), value)
        assert changed == (id(w) in own), w.name
    assert not np.allclose(layer(x, task="a"), before["a"])
    for task in ("b", "c"):
        np.testing.assert_array_equal(layer(x, task=task), before[task])


# -- tasks ---------------------------------------------------------------------


def test_add_task_before_build():
    layer = ReparamConv2D(4, 3, tasks=["a"])
    layer.add_task("b")
    assert layer.tasks == ["a", "b"]
    x = _inputs((BATCH, 8, 8, C_IN))
    y = layer(x, task="b")
    np.testing.assert_array_equal(layer.modulator("b"), np.eye(4))
    assert_close(y, conv2d_ref(x, layer.bank.numpy()))
    assert len(layer.trainable_weights) == 2


@pytest.mark.parametrize("nff", [False, True])
def test_add_task_after_build(nff):
    layer = ReparamConv2D(4, 3, tasks=["a"], nff=nff)
    x = _inputs((BATCH, 8, 8, C_IN))
    layer.build(x.shape)
    bank, modulators = _randomize(layer)
    y_a = layer(x, task="a").numpy()

    layer.add_task("b")
    layer.add_task("c", init="random_normal")
    assert layer.tasks == ["a", "b", "c"]
    assert len(layer.trainable_weights) == 3 * (2 if nff else 1)
    for task in ("b", "c"):
        assert all(any(w is v for v in layer.trainable_weights)
                   for w in layer.task_variables(task))
    np.testing.assert_array_equal(layer.bank.numpy(), bank)
    np.testing.assert_array_equal(layer(x, task="a"), y_a)
    # A new task starts as the bank (identity) unless told otherwise.
    assert_close(layer(x, task="b"), conv2d_ref(x, bank))
    modulator_c = layer.modulator("c").numpy()
    assert not np.allclose(modulator_c, np.eye(4))
    assert_close(layer(x, task="c"), reparam_ref(x, bank, modulator_c))
    assert_close(layer(x, task="a"), reparam_ref(x, bank, modulators["a"]))


def test_add_task_bad_init_leaves_layer_unchanged():
    layer = ReparamConv2D(4, 3, tasks=["a"])
    layer.build((None, 8, 8, C_IN))
    with pytest.raises(ValueError, match="Received: init='zeros'"):
        layer.add_task("b", init="zeros")
    assert layer.tasks == ["a"]
    assert len(layer.trainable_weights) == 1


def test_duplicate_task_raises():
    with pytest.raises(ValueError, match="'semseg' already exists"):
        ReparamConv2D(4, 3, tasks=["semseg", "depth", "semseg"])
    layer = ReparamConv2D(4, 3, tasks=["semseg"])
    layer.build((None, 8, 8, C_IN))
    with pytest.raises(ValueError, match="'semseg' already exists"):
        layer.add_task("semseg")
    assert layer.tasks == ["semseg"]


def test_unknown_task_raises_and_lists_known_tasks():
    layer = ReparamConv2D(4, 3, tasks=["semseg", "depth"])
    x = _inputs((BATCH, 8, 8, C_IN))
    layer(x, task="depth")
    with pytest.raises(ValueError,
                       match=r"'normals'.*\['semseg', 'depth'\]"):
        layer(x, task="normals")
    with pytest.raises(ValueError, match="'normals'"):
        layer.modulator("normals")


def test_missing_task_raises():
    layer = ReparamConv2D(4, 3, tasks=["semseg"])
    with pytest.raises(ValueError, match="task="):
        layer(_inputs((BATCH, 8, 8, C_IN)))


@pytest.mark.parametrize("task", ["Semseg", "1x", "a-b", "", "a" * 65,
                                  "_a", "a b", 3, None])
def test_bad_task_name_raises(task):
    with pytest.raises(ValueError, match=f"Received: task={task!r}"):
        ReparamConv2D(4, 3, tasks=[task])
    layer = ReparamConv2D(4, 3, tasks=["a"])
    with pytest.raises(ValueError, match="Received: task="):
        layer.add_task(task)
    assert layer.tasks == ["a"]


def test_longest_task_name_is_accepted():
    name = "a" + "b1_" * 21  # 64 characters.
    layer = ReparamConv2D(4, 3, tasks=[name])
    assert layer(_inputs((BATCH, 8, 8, C_IN)), task=name).shape == (
        BATCH, 8, 8, 4)


@pytest.mark.parametrize("kwargs,received", [
    (dict(filters=-1), "filters=-1"),
    (dict(filters=0), "filters=0"),
    (dict(filters=2.0), "filters=2.0"),
    (dict(padding="full"), "padding='full'"),
    (dict(padding=-1), "padding=-1"),
    (dict(padding=(1, True)), r"padding=\(1, True\)"),
    (dict(padding=(1, 2, 3)), r"padding=\(1, 2, 3\)"),
    (dict(compute_mode="x"), "compute_mode='x'"),
    (dict(modulator_init="zeros"), "modulator_init='zeros'"),
    (dict(kernel_size=0), "kernel_size=0"),
    (dict(kernel_size=True), "kernel_size=True"),
    (dict(dilation_rate="2"), "dilation_rate='2'"),
    (dict(strides=(1, 2, 3)), r"strides=\(1, 2, 3\)"),
    (dict(strides=2, dilation_rate=2), r"strides=\(2, 2\)"),
])
def test_bad_constructor_args_raise(kwargs, received):
    args = dict(filters=4, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=f"Received: {received}"):
        ReparamConv2D(**args)


def test_unknown_channels_raise():
    layer = ReparamConv2D(4, 3, tasks=["a"])
    with pytest.raises(ValueError, match="channel"):
        layer.build((None, 8, 8, None))


# -- serialization -------------------------------------------------------------


def _full_layer():
    return ReparamConv2D(
        filters=6,
        kernel_size=(3, 5),
        strides=(2, 1),
        padding=(1, 2),
        dilation_rate=1,
        tasks=["semseg", "depth"],
        nff=True,
        compute_mode="factorized",
        modulator_init="orthogonal",
        bank_initializer=keras.initializers.GlorotUniform(seed=7),
        use_bias=True,
        name="every_option",
        dtype="float32",
    )


def test_config_holds_every_option():
    config = _full_layer().get_config()
    for key, value in dict(filters=6, kernel_size=(3, 5), strides=(2, 1),
                           padding=(1, 2), dilation_rate=(1, 1),
                           tasks=["semseg", "depth"], nff=True,
                           compute_mode="factorized",
                           modulator_init="orthogonal",
                           use_bias=True).items():
        assert config[key] == value, key


# The plain layer, and one with every option set (`_full_layer`, one task:
# the training check wants a gradient for every trainable weight).
@pytest.mark.parametrize("init_kwargs,output_shape,num_trainable", [
    (dict(filters=4, kernel_size=3, strides=2, padding=1, tasks=["a"]),
     (BATCH, 4, 4, 4), 1),
    (dict(filters=6, kernel_size=(3, 5), strides=(2, 1), padding=(1, 2),
          dilation_rate=1, tasks=["a"], nff=True, compute_mode="factorized",
          modulator_init="orthogonal",
          bank_initializer=keras.initializers.GlorotUniform(seed=7),
          use_bias=True),
     (BATCH, 4, 8, 6), 3),
], ids=["plain", "every_option"])
def test_layer_checks(tmp_path, init_kwargs, output_shape, num_trainable):
    run_layer_test(ReparamConv2D, init_kwargs, _inputs((BATCH, 8, 8, C_IN)),
                   output_shape, call_kwargs={"task": "a"},
                   expected_num_trainable_weights=num_trainable,
                   expected_num_non_trainable_weights=1, tmp_dir=tmp_path)


def _two_task_model(tasks=("semseg", "depth"), nff=True):
    inputs = keras.Input((8, 8, C_IN))
    conv = ReparamConv2D(4, 3, strides=2, padding=1, tasks=list(tasks),
                         nff=nff, name="rc")
    outputs = {task: conv(inputs, task=task) for task in tasks}
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("nff", [False, True])
def test_keras_save_load_keeps_every_task(tmp_path, nff):
    model = _two_task_model(nff=nff)
    _randomize(model.get_layer("rc"))
    x = _inputs((BATCH, 8, 8, C_IN))
    expected = model(x)
    path = str(tmp_path / "model.keras")
    model.save(path)

    loaded = keras.models.load_model(path)
    actual = loaded(x)
    assert set(actual) == {"semseg", "depth"}
    for task in ("semseg", "depth"):
        np.testing.assert_array_equal(actual[task], expected[task])
    assert not np.allclose(actual["semseg"], actual["depth"])


# Keras warns about the empty `_operations_by_depth` container; unrelated.
@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_load_into_other_tasks_raises(tmp_path):
    model = _two_task_model(("semseg", "depth"), nff=False)
    path = str(tmp_path / "two.weights.h5")
    model.save_weights(path)
    other = _two_task_model(("semseg", "normals"), nff=False)
    with pytest.raises(ValueError, match="modulator_normals"):
        other.load_weights(path)


def test_load_own_variables_names_missing_and_unexpected():
    source = ReparamConv2D(4, 3, tasks=["semseg", "depth"], nff=True)
    source.build((None, 8, 8, C_IN))
    store = {}
    source.save_own_variables(store)
    assert set(store) == {"bank", "modulator_semseg_v", "modulator_semseg_g",
                          "modulator_depth_v", "modulator_depth_g"}

    target = ReparamConv2D(4, 3, tasks=["semseg", "normals"], nff=True)
    target.build((None, 8, 8, C_IN))
    with pytest.raises(ValueError) as info:
        target.load_own_variables(store)
    message = str(info.value)
    assert "modulator_normals_v" in message and "modulator_depth_v" in message
    assert "other tasks" in message

    narrow = ReparamConv2D(4, 3, tasks=["semseg", "depth"], nff=True)
    narrow.build((None, 8, 8, C_IN + 1))
    with pytest.raises(ValueError, match="'bank' has shape"):
        narrow.load_own_variables(store)

    same = ReparamConv2D(4, 3, tasks=["semseg", "depth"], nff=True)
    same.build((None, 8, 8, C_IN))
    same.load_own_variables(store)
    reloaded = {}
    same.save_own_variables(reloaded)
    assert set(reloaded) == set(store)
    for name, value in store.items():
        np.testing.assert_array_equal(reloaded[name], value)


@pytest.mark.parametrize("compute_mode,training,backprop_filters", [
    ("fused", True, {(3, 3, C_IN, 4)}),
    ("factorized", True, set()),
    ("auto", True, set()),   # Trains factorized: no k x k kernel gradient.
])
def test_training_computes_kernel_gradient_only_when_fused(
        compute_mode, training, backprop_filters):
    layer = ReparamConv2D(4, 3, tasks=["a"], nff=True,
                          compute_mode=compute_mode)
    x = _inputs((BATCH, 8, 8, C_IN))
    layer.build(x.shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            y = layer(x, task="a", training=training)
            loss = tf.reduce_mean(tf.square(y))
        return tape.gradient(loss, layer.trainable_variables)

    graph = step.get_concrete_function(
        tf.TensorSpec(x.shape, tf.float32)).graph
    shapes = {tuple(op.outputs[0].shape)
              for op in graph.get_operations()
              if op.type == "Conv2DBackpropFilter"}
    assert shapes == backprop_filters


def test_auto_is_fused_at_inference_and_factorized_in_training():
    layers = {mode: ReparamConv2D(4, 3, tasks=["a"], nff=True,
                                  compute_mode=mode)
              for mode in ("auto", "fused", "factorized")}
    x = _inputs((BATCH, 8, 8, C_IN))
    for layer in layers.values():
        layer.build(x.shape)
    weights = layers["auto"].get_weights()
    for layer in layers.values():
        layer.set_weights(weights)
    auto = layers["auto"]
    np.testing.assert_array_equal(
        auto(x, task="a", training=False).numpy(),
        layers["fused"](x, task="a", training=False).numpy())
    np.testing.assert_array_equal(
        auto(x, task="a", training=True).numpy(),
        layers["factorized"](x, task="a", training=True).numpy())


@pytest.mark.parametrize("compute_mode", ["fused", "factorized"])
def test_per_task_bias_matches_numpy(compute_mode):
    layer = ReparamConv2D(5, 3, strides=2, tasks=["a", "b"], use_bias=True,
                          compute_mode=compute_mode, nff=True)
    x = _inputs((BATCH, 9, 9, C_IN))
    layer(x, task="a")
    rng = np.random.default_rng(3)
    for task in ("a", "b"):
        for variable in layer.task_variables(task):
            variable.assign(rng.normal(size=variable.shape))
    for task in ("a", "b"):
        v, g, bias = (layer.task_variables(task)[i].numpy() for i in range(3))
        expected = reparam_ref(x, layer.bank.numpy(), nff_ref(v, g),
                               strides=(2, 2)) + bias
        np.testing.assert_allclose(layer(x, task=task), expected, rtol=1e-4,
                                   atol=1e-4)
    assert [v.name for v in layer.task_variables("b")] == [
        "modulator_b_v", "modulator_b_g", "bias_b"]
