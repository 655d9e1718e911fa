"""Tests of the MobileNetV2 backbone (`rmtl_tf/models/mobilenet_backbone.py`):
Keras' own network as the reference, the frozen bank (depthwise kernels
included), task isolation, incremental tasks and serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.layers.bank_depthwise_conv2d import BankDepthwiseConv2D
from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models import bank, keras_applications_bank, parameter_counts
from rmtl_tf.models import response_init
from rmtl_tf.models.layer_factory import LayerFactory
from rmtl_tf.models.mobilenet_backbone import mobilenet_features
from rmtl_tf.models.multitask_model import add_task, build_model
from rmtl_tf.tasks import registry

ALPHA = 0.35
TINY = {"num_classes": {"semseg": 5}, "head_channels": 16,
        "low_level_channels": 8, "width_multiplier": ALPHA}
NUM_DEPTHWISE = 17  # One per block.
NUM_BANK_CONVS = 1 + 17  # Stem, 17 project (the 16 expand are per task).
# Float32 convolutions summed in other orders (oneDNN's 1x1 and depthwise
# kernels against Keras' ops): measured max |diff| 2.4e-7 on features up
# to 2.3.
FEATURE_TOL = 1e-4


def _tiny(tasks, **kwargs):
    keras.utils.set_random_seed(0)
    return build_model("mobilenet_v2", tasks, **{**TINY, **kwargs})


@pytest.fixture(name="model", scope="module")
def _model():
    """An rc model of two tasks, any image size (tests that change its
    weights load them first or only read shapes and flags)."""
    return _tiny(["semseg", "depth"])


def _images(size=64, seed=0, batch=2):
    return np.random.default_rng(seed).uniform(
        0, 255, (batch, size, size, 3)).astype(np.float32)


def _snapshot(variables):
    return {v.path: np.array(v.numpy(), copy=True) for v in variables}


class _RecordingFactory(LayerFactory):
    """Reuses every layer of a model and records the outputs of the named
    stateless layers (the residual adds) on the path it builds."""

    def __init__(self, model, task):
        super().__init__(model.architecture, model.tasks,
                         reuse={l.name: l for l in model.layers})
        self.outputs = {}
        self.task = task

    def shared(self, name, make):
        layer = super().shared(name, make)

        def call(*args, **kwargs):
            out = layer(*args, **kwargs)
            self.outputs[name] = out
            return out
        return call


def _features(model, task):
    """`task`'s backbone features and residual-add outputs, from the
    model's own layers (none created)."""
    factory = _RecordingFactory(model, task)
    image = keras.Input((None, None, 3))
    normalized = model.get_layer("normalize")(image)
    features = mobilenet_features(factory, normalized, task,
                                  model.width_multiplier)
    assert set(factory.layers) == {l.name for l in model.layers}
    outputs = {**features, "block_12_add": factory.outputs["block_12_add"]}
    return keras.Model(image, outputs)


def _keras_mobilenet(size, seed=0):
    """Keras' MobileNetV2 (alpha 0.35) with random weights and random
    BatchNorm statistics, so a BatchNorm mistake shows."""
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=ALPHA, include_top=False,
        weights=None)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.2, n).astype(
                np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2, n).astype(
                np.float32))
    return model


def _output_stride_16(reference):
    """Keras' network with DeepLab's output stride 16: block 13's depthwise
    conv unstrided (its ZeroPadding2D a no-op) and blocks 13-16 dilated by
    2. Keras' own layers and weights, only those configs changed."""
    def clone(layer):
        config = layer.get_config()
        if layer.name == "block_13_pad":
            return keras.layers.ZeroPadding2D(0, name=layer.name)
        block = (int(layer.name.split("_")[1])
                 if layer.name.startswith("block_") else 0)
        if isinstance(layer, keras.layers.DepthwiseConv2D) and block >= 13:
            config.update(strides=(1, 1), dilation_rate=(2, 2),
                          padding="same")
        return layer.__class__.from_config(config)

    model = keras.models.clone_model(reference, clone_function=clone)
    for layer in reference.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model


def _relative_error(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    return float(np.abs(got - expected).max() / np.abs(expected).max())


# -- Keras' MobileNetV2 as the reference -------------------------------------

@pytest.mark.parametrize("size", [64, 63])
def test_rc_model_from_keras_weights_computes_keras_features(model, size):
    """Built from a Keras MobileNetV2's weights (identity modulators), each
    task's backbone computes Keras' own features: block_2_add ("P2",
    stride 4) and block_12_add (stride 16) of Keras' network on Keras'
    preprocessing, and "P5" of its output-stride-16 clone. 63 px: the
    stride-2 depthwise convs pad as Keras' `correct_pad` does on odd
    sizes."""
    reference = _keras_mobilenet(size)
    weights = keras_applications_bank.bank_weights_from_mobilenet_v2(
        reference)
    bank.load_bank_into(model, weights)
    images = _images(size)
    inputs = keras.applications.mobilenet_v2.preprocess_input(images.copy())
    probe = keras.Model(reference.input, {
        "P2": reference.get_layer("block_2_add").output,
        "block_12_add": reference.get_layer("block_12_add").output})
    expected = {k: np.asarray(v)
                for k, v in probe(inputs, training=False).items()}
    dilated = _output_stride_16(reference)
    expected["P5"] = np.asarray(keras.Model(
        dilated.input, dilated.get_layer("block_16_project_BN").output)(
            inputs, training=False))
    strides = {"P2": 4, "block_12_add": 16, "P5": 16}
    for task in model.tasks:
        got = _features(model, task)(images, training=False)
        for key, value in expected.items():
            assert value.shape[1] == -(-size // strides[key])
            assert got[key].shape == value.shape, key
            error = _relative_error(got[key], value)
            assert error < FEATURE_TOL, (task, key, error)


def test_channels_and_names_follow_keras(model):
    reference = keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=ALPHA, include_top=False,
        weights=None)
    ours = {l.name: l for l in model.layers}
    for layer in reference.layers:
        if not layer.weights or layer.name in ("Conv_1", "Conv_1_bn"):
            continue
        name = layer.name
        if isinstance(layer, keras.layers.BatchNormalization) or (
                name.endswith("_expand")):
            name = f"{name}_depth"
        assert name in ours, name
        shapes = [tuple(v.shape) for v in layer.weights]
        own = ours[name]
        own_shapes = ([tuple(own.bank.shape)] if isinstance(
            own, ReparamConv2D) else [tuple(v.shape) for v in own.weights])
        assert own_shapes == shapes, name
    features = _features(model, "depth")(_images(), training=False)
    assert features["P2"].shape == (2, 16, 16, 8)    # 24 * 0.35 -> 8.
    assert features["P5"].shape == (2, 4, 4, 112)    # 320 * 0.35 -> 112.


# -- the frozen bank ---------------------------------------------------------

def test_bank_is_frozen_depthwise_included(model):
    depthwise = [l for l in model.layers
                 if isinstance(l, BankDepthwiseConv2D)]
    assert len(depthwise) == NUM_DEPTHWISE
    assert len(model.reparam_layers()) == NUM_BANK_CONVS
    banks = model.bank_variables()
    assert len(banks) == NUM_BANK_CONVS + NUM_DEPTHWISE
    assert {id(l.kernel) for l in depthwise} <= {id(v) for v in banks}
    assert not any(v.trainable for v in banks)
    # Frozen whatever the layer flags say.
    model.trainable = True
    for layer in model.layers:
        layer.trainable = True
    trainable = {id(v) for v in model.trainable_variables}
    assert not trainable & {id(v) for v in banks}
    summary = parameter_counts.parameter_summary(model)
    assert summary["bank"] == sum(int(np.prod(v.shape)) for v in banks)
    assert summary["shared_trainable"] == 0


def test_set_trainable_tasks_leaves_only_that_task_trainable(model):
    for tasks in (["semseg"], ["depth"], ["semseg", "depth"]):
        model.set_trainable_tasks(tasks)
        trainable = {id(v) for v in model.trainable_variables}
        assert trainable == {id(v) for t in tasks
                             for v in model.task_variables(t)
                             if "moving_" not in v.path}, tasks


@pytest.mark.parametrize("architecture,depthwise_type,owned", [
    ("conv", keras.layers.DepthwiseConv2D, True),
    ("shared", keras.layers.DepthwiseConv2D, False),
    ("ra_parallel", BankDepthwiseConv2D, False),
])
def test_depthwise_rule_per_architecture(architecture, depthwise_type,
                                         owned):
    model = _tiny(["semseg", "depth"], architecture=architecture,
                  image_size=(32, 32), head_channels=8)
    names = {"conv": ["block_3_depthwise_semseg", "block_3_depthwise_depth"],
             }.get(architecture, ["block_3_depthwise"])
    for name in names:
        layer = model.get_layer(name)
        assert layer.__class__ is depthwise_type
        assert (name in model.layer_owners) == owned
    parameter_counts.parameter_summary(model)  # Raises unless it adds up.
    shared = {id(v) for v in model.shared_variables()}
    kernel = id(model.get_layer(names[0]).kernel)
    assert (kernel in shared) == (architecture == "shared")


# -- incremental tasks, serialization ----------------------------------------

def test_adding_and_training_a_task_keeps_old_outputs_bit_identical():
    """One SGD step of the new task moves its own weights and nothing
    else: the bank (depthwise kernels included) and the old task's
    weights and outputs stay bit-identical."""
    images = _images(32)
    model = _tiny(["semseg"], image_size=(32, 32), head_channels=8)
    before = model(images, training=False)["semseg"].numpy()
    bank_ids = [id(v) for v in model.bank_variables()]
    semseg_ids = [id(v) for v in model.task_variables("semseg")]
    new = add_task(model, "depth")
    assert [id(v) for v in new.bank_variables()] == bank_ids
    assert [id(v) for v in new.task_variables("semseg")] == semseg_ids
    assert new.get_layer("block_4_depthwise") is model.get_layer(
        "block_4_depthwise")
    snapshot = _snapshot(new.variables)
    new.set_trainable_tasks(["depth"])
    target = np.random.default_rng(2).uniform(1, 5, (2, 32, 32, 1))
    with tf.GradientTape() as tape:
        loss = registry.get_task("depth").loss(
            target.astype(np.float32), new(images, training=True)["depth"])
    grads = tape.gradient(loss, new.trainable_variables)
    keras.optimizers.SGD(0.1).apply_gradients(
        zip(grads, new.trainable_variables))
    after = _snapshot(new.variables)
    for v in new.bank_variables() + new.task_variables("semseg"):
        assert np.array_equal(snapshot[v.path], after[v.path]), v.path
    for key in ("block_5_project/modulator_depth_v",
                "block_5_expand_depth/kernel",
                "block_5_depthwise_BN_depth/gamma"):
        assert not np.array_equal(snapshot[key], after[key]), key
    out = new(images, training=False)["semseg"].numpy()
    assert np.array_equal(out, before)


def test_keras_save_load_round_trip(tmp_path):
    model = _tiny(["semseg", "depth"], image_size=(32, 32), head_channels=8)
    rng = np.random.default_rng(0)
    for v in model.variables:
        noise = rng.normal(0, 0.05, v.shape).astype(np.float32)
        v.assign(v.numpy() + (np.abs(noise) if "variance" in v.path
                              else noise))
    images = _images(32)
    expected = model(images, training=False)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.layer_owners == model.layer_owners
    out = loaded(images, training=False)
    for task in model.tasks:
        assert np.array_equal(out[task].numpy(), expected[task].numpy())
    assert isinstance(loaded.get_layer("block_1_depthwise"),
                      BankDepthwiseConv2D)
    assert len(loaded.bank_variables()) == NUM_BANK_CONVS + NUM_DEPTHWISE
    assert not any(v.trainable for v in loaded.bank_variables())


def test_normalization_maps_pixels_to_minus_one_one(model):
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    np.testing.assert_allclose(model.get_layer("normalize")(pixels),
                               [[[[-1.0, 0.0, 1.0]]]], atol=1e-7)


# -- response initialization --------------------------------------------------

def test_response_initialization_keeps_the_pretrained_function():
    """RI of every bank conv (the stem and the 1x1 project convs):
    `W U U^T = W`,
    so the response-initialized model computes what the identity one
    does, with non-identity modulators."""
    plain = bank.build_plain_backbone("mobilenet_v2", ALPHA)
    weights = bank.weights_from_plain(plain)
    images = _images(32, batch=2)
    ri = response_init.compute(weights, [images], "mobilenet_v2", ALPHA,
                               log=lambda _: None)
    assert {k.rsplit("/", 1)[0] for k in ri} == set(plain.bank_convs)
    model = _tiny(["depth"], image_size=(32, 32), head_channels=8,
                  nff=False)
    bank.load_bank_into(model, weights)
    expected = model(images, training=False)["depth"].numpy()
    response_init.apply(model, weights, ri)
    modulator = model.get_layer("block_3_project").task_variables("depth")[0]
    assert not np.allclose(modulator.numpy(), np.eye(modulator.shape[0]))
    got = model(images, training=False)["depth"].numpy()
    assert _relative_error(got, expected) < 1e-4
