"""Tests for `rmtl_tf.reparameterize`: RCM for any Keras CNN.

The reference is always the original Keras backbone itself (its own
layers, computing its own function), never our reparameterized copy.
"""

import keras
import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models.reparameterize import (ReparameterizedModel, layer_rule,
                                           reparameterize)

SIZE = 32


def _images(batch=2, size=SIZE, seed=0):
    return np.random.default_rng(seed).uniform(
        -1, 1, (batch, size, size, 3)).astype("float32")


def _perturb(model, seed=1):
    """Non-trivial normalization statistics and biases (fresh layers hold
    zeros and ones, under which a wrong BN copy would go unseen)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable, low, high in ((layer.gamma, 0.5, 1.5),
                                        (layer.beta, -0.2, 0.2),
                                        (layer.moving_mean, -0.2, 0.2),
                                        (layer.moving_variance, 0.5, 2.0)):
                if variable is not None:
                    variable.assign(rng.uniform(low, high, variable.shape))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    return model


def _mobilenet_v2():
    return keras.applications.MobileNetV2(
        weights=None, include_top=False, alpha=0.35,
        input_shape=(SIZE, SIZE, 3))


def _resnet50():
    return keras.applications.ResNet50(weights=None, include_top=False,
                                       input_shape=(SIZE, SIZE, 3))


def _keras_hub_resnet():
    keras_hub = pytest.importorskip("keras_hub")
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 32], stackwise_num_blocks=[2, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(SIZE, SIZE, 3))


def _small_cnn():
    """Every default rule in one graph: a biased conv with its own
    activation, a separable conv, a depthwise conv, a 1x1 expansion,
    BatchNorm, LayerNorm, input Normalization, a Dense head, two outputs."""
    image = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Normalization(mean=[0.1, 0.2, 0.3],
                                   variance=[1.0, 2.0, 3.0])(image)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu",
                            name="conv")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.SeparableConv2D(6, 3, padding="same",
                                     depth_multiplier=2, activation="relu6",
                                     name="separable")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2,
                                     name="depthwise")(x)
    x = keras.layers.Conv2D(12, 1)(x)  # Expands: a per-task copy.
    x = keras.layers.LayerNormalization()(x)
    features = keras.layers.Conv2D(4, 1, name="project")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    logits = keras.layers.Dense(5)(pooled)
    return keras.Model(image, {"features": features, "logits": logits},
                       name="small_cnn")


BACKBONES = {"mobilenet_v2": _mobilenet_v2, "resnet50": _resnet50,
             "keras_hub_resnet": _keras_hub_resnet, "small_cnn": _small_cnn}


def _assert_outputs_equal(actual, expected, atol):
    for a, e in zip(keras.tree.flatten(actual), keras.tree.flatten(expected)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=0,
                                   atol=atol)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_task_starts_as_the_backbone(name):
    backbone = _perturb(BACKBONES[name]())
    model = reparameterize(backbone, ["semseg", "depth"], nff=True)
    images = _images()
    expected = backbone(images, training=False)
    outputs = model(images, training=False)
    assert set(outputs) == {"semseg", "depth"}
    scale = max(float(np.abs(e).max()) for e in keras.tree.flatten(expected))
    for task in ("semseg", "depth"):
        _assert_outputs_equal(outputs[task], expected, atol=1e-5 * scale)
    assert model.bank_layers(), "no conv was reparameterized"


@pytest.mark.parametrize("pointwise", ["auto", "reparameterize"])
def test_which_convs_are_reparameterized(pointwise):
    backbone = _mobilenet_v2()
    model = reparameterize(backbone, ["a"], pointwise=pointwise)
    reparameterized = {l.name for l in model.bank_layers()}
    for layer in backbone.layers:
        if not isinstance(layer, keras.layers.Conv2D) or isinstance(
                layer, keras.layers.DepthwiseConv2D):
            continue
        expands = (layer.kernel_size == (1, 1)
                   and layer.filters >= layer.kernel.shape[2])
        expected = pointwise == "reparameterize" or not expands
        assert (layer.name in reparameterized) == expected, layer.name
        if not expected:
            assert model.layer_owners[f"{layer.name}_a"] == "a"


def test_bank_and_frozen_layers_never_train():
    backbone = _small_cnn()
    model = reparameterize(backbone, ["a", "b"])
    trainable = {id(v) for v in model.trainable_variables}
    frozen = model.bank_variables()
    # The banks (3x3, separable pointwise, projection), the separable's
    # depthwise part, the depthwise conv (the input Normalization holds
    # constants, no weights).
    assert {l.name for l in model.bank_layers()} == {
        "conv", "separable", "project"}
    assert {l.name for l in model.layers if l.weights
            and not isinstance(l, ReparamConv2D)
            and l.name not in model.layer_owners} == {
        "separable_depthwise", "depthwise"}
    assert not trainable & {id(v) for v in frozen}
    owned = {id(v) for t in model.tasks for v in model.task_variables(t)
             if not v.name.startswith("moving_")}  # Statistics never are.
    assert trainable == owned
    model.set_trainable_tasks(["b"])
    assert {id(v) for v in model.trainable_variables} == {
        id(v) for v in model.task_variables("b")
        if not v.name.startswith("moving_")}


def test_training_one_task_changes_nothing_else():
    backbone = _perturb(_small_cnn())
    model = reparameterize(backbone, ["a", "b"], nff=True)
    model.set_trainable_tasks(["a"])
    before = {id(v): np.array(v) for v in model.weights}
    head = model.task_model(["a"])
    head.compile(optimizer=keras.optimizers.SGD(0.1),
                 loss={"a": {"features": "mse", "logits": "mse"}})
    images = _images(4)
    head.fit(images, {"a": {"features": np.ones((4, 15, 15, 4)),
                            "logits": np.ones((4, 5))}},
             epochs=1, verbose=0)
    changed = {id(v) for v in model.weights
               if not np.array_equal(before[id(v)], np.asarray(v))}
    own = {id(v) for v in model.task_variables("a")}
    assert changed and changed <= own
    untouched = [v.path for v in model.task_variables("b")
                 + model.bank_variables() if id(v) in changed]
    assert not untouched


def test_added_task_keeps_old_tasks_bit_identical():
    backbone = _perturb(_small_cnn())
    model = reparameterize(backbone, ["a", "b"], nff=True)
    model.set_trainable_tasks(["a"])
    for variable in model.task_variables("a"):  # "a" as if trained.
        variable.assign(variable + 0.01)
    images = _images()
    old = model(images)
    grown = rmtl_tf.add_task(model, "c")
    assert grown.tasks == ["a", "b", "c"]
    new = grown(images)
    for task in ("a", "b"):
        for x, y in zip(keras.tree.flatten(old[task]),
                        keras.tree.flatten(new[task])):
            assert np.array_equal(np.asarray(x), np.asarray(y)), task
    # The new task starts from the pretrained backbone, not from "a".
    _assert_outputs_equal(new["c"], backbone(images), atol=1e-5)
    # Training "c" leaves "a" and "b" alone.
    grown.set_trainable_tasks(["c"])
    for variable in grown.task_variables("c"):
        variable.assign(variable * 1.5)
    after = grown(images)
    for task in ("a", "b"):
        for x, y in zip(keras.tree.flatten(old[task]),
                        keras.tree.flatten(after[task])):
            assert np.array_equal(np.asarray(x), np.asarray(y)), task
    with pytest.raises(ValueError, match="'a' already exists"):
        rmtl_tf.add_task(grown, "a")


def test_keras_file_round_trip_and_grow_after_loading(tmp_path):
    backbone = _perturb(_small_cnn())
    model = reparameterize(backbone, ["a", "b"], nff=True)
    for variable in model.task_variables("b"):
        variable.assign(variable * 0.9)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ReparameterizedModel)
    assert loaded.get_config() == model.get_config()
    images = _images()
    _assert_outputs_equal(loaded(images), model(images), atol=0)
    # The pretrained values came back from the file (the rebuilt backbone
    # had random ones): a task added now starts as the backbone.
    grown = rmtl_tf.add_task(loaded, "c")
    _assert_outputs_equal(grown(images)["c"], backbone(images), atol=1e-5)


def test_response_initialization():
    image = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(2, 1, name="squeeze")(image)  # 3 -> 2: kept.
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    backbone = _perturb(keras.Model(image, x))
    batches = [_images(2, seed=s) for s in range(3)]
    model = reparameterize(backbone, ["a"], images=batches)
    _assert_outputs_equal(model(batches[0])["a"], backbone(batches[0]),
                          atol=1e-4)
    # Independent restatement: the PCA of the 1x1 conv's responses (the
    # kernel applied to the pixels, numpy) gives the bank `W U`.
    pixels = np.concatenate(batches).reshape(-1, 3).astype(np.float64)
    kernel = np.asarray(backbone.get_layer("squeeze").kernel)[0, 0]
    responses = pixels @ kernel
    variances, vectors = np.linalg.eigh(np.cov(responses.T, bias=True))
    vectors = vectors[:, np.argsort(variances)[::-1]]
    bank = np.asarray(model.get_layer("squeeze").bank)[0, 0]
    for j in range(2):  # Components are defined up to their sign.
        expected = kernel @ vectors[:, j]
        sign = np.sign(expected @ bank[:, j])
        np.testing.assert_allclose(bank[:, j], sign * expected, atol=1e-4)


def test_refuses_layers_without_a_rule():
    image = keras.Input((SIZE, SIZE, 4))
    x = keras.layers.Conv2DTranspose(4, 3, name="upsample")(image)
    with pytest.raises(ValueError, match=r"'upsample' \(Conv2DTranspose\) "
                       "has weights and no rule"):
        reparameterize(keras.Model(image, x), ["a"])
    grouped = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(image)
    with pytest.raises(ValueError, match="'grouped'.*rules="):
        reparameterize(keras.Model(image, grouped), ["a"])
    # Named by a rule, it works: a per-task copy.
    model = reparameterize(keras.Model(image, grouped), ["a", "b"],
                           rules={"grouped": "per_task"})
    assert model.layer_owners == {"grouped_a": "a", "grouped_b": "b"}
    with pytest.raises(ValueError, match="Unknown rule 'share'"):
        reparameterize(keras.Model(image, grouped), ["a"],
                       rules={"Conv2D": "share"})


def test_bad_tasks_and_backbones():
    backbone = _small_cnn()
    with pytest.raises(ValueError, match="each once"):
        reparameterize(backbone, ["a", "a"])
    with pytest.raises(ValueError, match="Received: task='Depth'"):
        reparameterize(backbone, ["Depth"])
    with pytest.raises(TypeError, match="functional Keras model"):
        reparameterize(keras.layers.Dense(3), ["a"])


def test_layer_rule_of_subclasses():
    class MyConv(keras.layers.Conv2D):
        pass

    conv = MyConv(4, 3)
    conv.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="no rule"):
        layer_rule(conv)  # Its call may differ from Conv2D's.
    bn = rmtl_tf.layers.FusedBatchNormalization()
    bn.build((None, 8, 8, 3))
    assert layer_rule(bn) == "per_task"
