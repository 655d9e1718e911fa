"""Tests of `MultiTaskModel`: outputs, variable ownership, task isolation
during training, incremental task addition and serialization."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models.layer_factory import LayerFactory
from rmtl_tf.models.multitask_model import (MultiTaskModel, add_task,
                                            build_model, predictions)
from rmtl_tf.models.resnet_backbone import resnet_features
from rmtl_tf.tasks import registry

NUM_CLASSES = 5
TINY = {"num_classes": {"semseg": NUM_CLASSES}, "head_channels": 16,
        "low_level_channels": 8}
# Reparameterized convs of resnet_tiny: the stem and 2 per block, 4 blocks.
TINY_REPARAM_LAYERS = 1 + 2 * 4


def _images(size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (2, size, size, 3)).astype(np.float32)


def _labels(task, size=32, seed=1):
    rng = np.random.default_rng(seed)
    if task == "semseg":
        return rng.integers(0, NUM_CLASSES, (2, size, size)).astype(np.int32)
    if task == "depth":
        return rng.uniform(0.5, 5.0, (2, size, size, 1)).astype(np.float32)
    raise ValueError(task)


def _tiny(tasks, **kwargs):
    keras.utils.set_random_seed(0)
    return build_model("resnet_tiny", tasks, **{**TINY, **kwargs})


def _snapshot(variables):
    return {v.path: np.array(v.numpy(), copy=True) for v in variables}


def _fit(model, task, steps, learning_rate=0.1):
    """Trains `task` alone as `train_lib.train_task` does: real optimizer."""
    model.set_trainable_tasks([task])
    task_model = model.task_model([task])
    spec = registry.get_task(task)
    task_model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                       loss={task: spec.loss},
                       loss_weights={task: spec.loss_weight})
    ds = tf.data.Dataset.from_tensors(
        (_images(), {task: _labels(task)})).repeat()
    task_model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False,
                   verbose=0)


def _backbone_features(model, task):
    """`task`'s backbone features, computed by the model's own layers.

    The factory is seeded with every layer of `model`, so `resnet_features`
    wires the very same layer objects (it must create none) into a head-free
    graph.
    """
    layers = {layer.name: layer for layer in model.layers}
    factory = LayerFactory("rc", model.tasks, reuse=layers)
    image = keras.Input((None, None, 3))
    normalized = model.get_layer("normalize")(image)
    features = resnet_features(factory, normalized, task, model.backbone,
                               model.width_multiplier)
    assert set(factory.layers) == set(layers), "created new layers"
    return keras.Model(image, features)


# -- outputs -----------------------------------------------------------------

def test_outputs_are_a_dict_of_tasks_at_image_resolution():
    model = _tiny(["semseg", "depth", "normals", "edge"])
    out = {k: v.numpy() for k, v in model(_images(), training=False).items()}
    assert list(out) == ["semseg", "depth", "normals", "edge"]
    assert out["semseg"].shape == (2, 32, 32, NUM_CLASSES)
    assert out["depth"].shape == (2, 32, 32, 1)
    assert out["normals"].shape == (2, 32, 32, 3)
    assert out["edge"].shape == (2, 32, 32, 1)
    for value in out.values():
        assert np.all(np.isfinite(value))
    norms = np.linalg.norm(out["normals"].astype(np.float64), axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_any_image_size_without_fixed_image_size():
    model = _tiny(["depth"])
    images = np.random.default_rng(0).uniform(
        0, 255, (1, 64, 48, 3)).astype(np.float32)
    assert model(images)["depth"].shape == (1, 64, 48, 1)


@pytest.mark.parametrize("backbone,num_reparam", [("resnet18", 17),
                                                  ("resnet34", 33)])
def test_resnet_variants_reparam_layers_and_output_stride(backbone,
                                                          num_reparam):
    keras.utils.set_random_seed(0)
    model = build_model(backbone, ["depth"], width_multiplier=0.125,
                        head_channels=16, low_level_channels=8,
                        image_size=(64, 64))
    assert len(model.reparam_layers()) == num_reparam
    assert sum(isinstance(l, ReparamConv2D) for l in model.layers) == \
        num_reparam
    features = _backbone_features(model, "depth")
    out = features(np.zeros((1, 64, 64, 3), np.float32))
    # 512 * 0.125 = 64 channels at stride 16; 64 * 0.125 = 8 at stride 4.
    assert tuple(out["P5"].shape) == (1, 64 // 16, 64 // 16, 64)
    assert tuple(out["P2"].shape) == (1, 64 // 4, 64 // 4, 8)
    assert model.output["depth"].shape[1:] == (64, 64, 1)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="at least one task"):
        build_model("resnet_tiny", [], **TINY)
    with pytest.raises(ValueError, match="resnet_tiny"):
        build_model("resnet99", ["depth"], **TINY)
    with pytest.raises(ValueError, match="width_multiplier"):
        build_model("resnet_tiny", ["depth"], width_multiplier=0, **TINY)
    with pytest.raises(ValueError, match="image_size"):
        build_model("resnet_tiny", ["depth"], image_size=(16, 16), **TINY)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet_tiny", ["semseg"], head_channels=16)
    with pytest.raises(ValueError, match="Duplicate"):
        build_model("resnet_tiny", ["depth", "depth"], **TINY)


def test_predictions_activations_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(predictions("semseg", logits),
                               exp / exp.sum(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(predictions("edge", logits[..., :1]),
                               1 / (1 + np.exp(-logits[..., :1])), rtol=1e-5)
    normals = logits[..., :3]
    np.testing.assert_allclose(
        predictions("normals", normals),
        normals / np.linalg.norm(normals, axis=-1, keepdims=True), rtol=1e-5)
    np.testing.assert_array_equal(predictions("depth", logits[..., :1]),
                                  logits[..., :1])


# -- variables ---------------------------------------------------------------

def test_banks_are_frozen_and_counted():
    model = _tiny(["semseg", "depth"])
    banks = model.bank_variables()
    assert len(banks) == TINY_REPARAM_LAYERS
    assert not any(v.trainable for v in banks)
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in banks)
    # NFF: a direction `v` and a gain `g` per task and reparameterized conv.
    for task in model.tasks:
        modulators = [v for v in model.task_variables(task)
                      if "modulator" in v.path]
        assert len(modulators) == 2 * TINY_REPARAM_LAYERS


def test_task_variables_partition_all_variables():
    model = _tiny(["semseg", "depth", "normals"])
    owned = {t: model.task_variables(t) for t in model.tasks}
    ids = {t: {id(v) for v in variables} for t, variables in owned.items()}
    bank = {id(v) for v in model.bank_variables()}
    everything = [id(v) for v in model.variables]
    assert len(set(everything)) == len(everything)
    for task, variables in owned.items():
        assert len(ids[task]) == len(variables)  # No variable twice.
        assert not ids[task] & bank
        for other in model.tasks:
            if other != task:
                assert not ids[task] & ids[other], (task, other)
        # Every owned variable is named after its task.
        for v in variables:
            assert f"_{task}" in v.path, v.path
    union = bank.union(*ids.values())
    assert union == set(everything)
    assert sum(len(i) for i in ids.values()) + len(bank) == len(everything)


def test_each_task_path_uses_only_its_own_layers_and_the_banks():
    model = _tiny(["semseg", "depth"])
    for task in model.tasks:
        used = model.task_model([task]).layers
        with_weights = {l.name for l in used
                        if l.weights and not isinstance(l, ReparamConv2D)}
        owned = {name for name, owner in model.layer_owners.items()
                 if owner == task}
        assert with_weights == owned, task
        assert sum(isinstance(l, ReparamConv2D) for l in used) == \
            TINY_REPARAM_LAYERS


def test_set_trainable_tasks_leaves_only_that_task_trainable():
    model = _tiny(["semseg", "depth"])
    model.set_trainable_tasks(["semseg"])
    trainable = {id(v) for v in model.trainable_variables}
    semseg = model.task_variables("semseg")
    # Trainable: exactly semseg's variables but its BatchNorm statistics.
    expected = {id(v) for v in semseg if "moving_" not in v.path}
    assert trainable == expected
    model.set_trainable_tasks(["semseg", "depth"])
    assert len(model.trainable_variables) > len(expected)
    assert not any(v.trainable for v in model.bank_variables())
    with pytest.raises(ValueError, match="nope"):
        model.set_trainable_tasks(["nope"])


def test_gradients_reach_only_the_trained_task():
    model = _tiny(["semseg", "depth"])
    model.set_trainable_tasks(["semseg"])
    images, labels = _images(), _labels("semseg")
    semseg_ids = {id(v) for v in model.task_variables("semseg")}
    depth_vars = model.task_variables("depth")
    loss_fn = registry.get_task("semseg").loss
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([v.value for v in depth_vars])
        loss = loss_fn(labels, model(images, training=True)["semseg"])
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    with_grad = [v for v, g in zip(variables, grads) if g is not None]
    assert with_grad
    assert all(id(v) in semseg_ids for v in with_grad)
    nonzero = [v.path for v, g in zip(variables, grads)
               if g is not None and np.any(g.numpy() != 0)]
    assert "head_predict_semseg/kernel" in nonzero
    assert "conv1/modulator_semseg_v" in nonzero
    # Depth's variables are not on semseg's path at all.
    depth_grads = tape.gradient(loss, [v.value for v in depth_vars])
    assert all(g is None for g in depth_grads)
    del tape


def test_one_optimizer_step_changes_only_the_trained_task():
    model = _tiny(["semseg", "depth"])
    images = _images()
    depth_model = model.task_model(["depth"])
    depth_before = depth_model(images, training=False)["depth"].numpy()
    before = _snapshot(model.variables)
    _fit(model, "semseg", steps=1)
    after = _snapshot(model.variables)
    depth_after = depth_model(images, training=False)["depth"].numpy()
    assert np.array_equal(depth_before, depth_after)
    frozen = model.bank_variables() + model.task_variables("depth")
    for v in frozen:
        assert np.array_equal(before[v.path], after[v.path]), v.path
    changed = [v.path for v in model.task_variables("semseg")
               if not np.array_equal(before[v.path], after[v.path])]
    assert "head_predict_semseg/kernel" in changed
    assert "layer4_0_conv2/modulator_semseg_v" in changed
    assert "bn1_semseg/moving_mean" in changed  # BN ran in training mode.


def test_task_model_and_task_variables_reject_unknown_tasks():
    model = _tiny(["semseg"])
    with pytest.raises(ValueError, match="depth"):
        model.task_model(["depth"])
    with pytest.raises(ValueError, match="depth"):
        model.task_variables("depth")
    sub = model.task_model(["semseg"])
    assert list(sub.output) == ["semseg"]


def test_task_model_takes_the_image_like_the_model():
    model = _tiny(["semseg", "depth"])
    sub = model.task_model(["depth"])
    images = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # No input structure mismatch.
        out = sub(images, training=False)
    assert list(out) == ["depth"]
    assert np.array_equal(out["depth"].numpy(),
                          model(images, training=False)["depth"].numpy())


# -- incremental learning ----------------------------------------------------

def test_adding_and_training_a_task_keeps_old_outputs_bit_identical():
    images = _images()
    model = _tiny(["semseg"])
    full_before = model.predict(images, verbose=0)["semseg"]
    eager_before = model(images, training=False)["semseg"].numpy()
    semseg_ids = [id(v) for v in model.task_variables("semseg")]
    bank_ids = [id(v) for v in model.bank_variables()]

    new = add_task(model, "depth")
    assert isinstance(new, MultiTaskModel)
    assert new.tasks == ["semseg", "depth"]
    # The old task's variables and the banks are the very same objects.
    assert [id(v) for v in new.task_variables("semseg")] == semseg_ids
    assert [id(v) for v in new.bank_variables()] == bank_ids
    for name in ("conv1", "head_predict_semseg", "layer2_0_bn1_semseg"):
        assert new.get_layer(name) is model.get_layer(name)

    depth_before = _snapshot(new.task_variables("depth"))
    _fit(new, "depth", steps=3)
    depth_after = _snapshot(new.task_variables("depth"))
    assert any(not np.array_equal(depth_before[k], depth_after[k])
               for k in depth_before), "depth did not train"

    out = new.predict(images, verbose=0)
    assert out["depth"].shape == (2, 32, 32, 1)
    assert np.array_equal(out["semseg"], full_before)
    alone = new.task_model(["semseg"]).predict(images, verbose=0)["semseg"]
    assert np.array_equal(alone, full_before)
    eager = new(images, training=False)["semseg"].numpy()
    assert np.array_equal(eager, eager_before)


def test_add_task_new_classes_and_errors():
    model = _tiny(["depth"])
    new = add_task(model, ["semseg", "edge"], num_classes={"semseg": 3})
    assert new.tasks == ["depth", "semseg", "edge"]
    out = new(_images())
    assert out["semseg"].shape[-1] == 3 and out["edge"].shape[-1] == 1
    with pytest.raises(ValueError, match="'depth'"):
        add_task(new, "depth")
    without_classes = _tiny(["depth"], num_classes=None)
    with pytest.raises(ValueError, match="num_classes"):
        add_task(without_classes, "semseg")
    with pytest.raises(TypeError, match="MultiTaskModel"):
        add_task(keras.Sequential([keras.layers.Dense(1)]), "depth")


# -- serialization -----------------------------------------------------------

def _perturb(model, seed=0):
    """Moves every variable away from its initial value."""
    rng = np.random.default_rng(seed)
    for v in model.variables:
        value = v.numpy()
        noise = rng.normal(0, 0.05, value.shape).astype(value.dtype)
        if "moving_variance" in v.path:
            noise = np.abs(noise)
        v.assign(value + noise)


def test_keras_save_load_round_trip(tmp_path):
    model = _tiny(["semseg", "depth"])
    _perturb(model)
    images = _images()
    expected = model(images, training=False)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, MultiTaskModel)
    assert loaded.tasks == ["semseg", "depth"]
    assert loaded.layer_owners == model.layer_owners
    assert loaded.get_config() == model.get_config()
    saved = _snapshot(model.variables)
    restored = _snapshot(loaded.variables)
    assert saved.keys() == restored.keys()
    for key, value in saved.items():
        assert np.array_equal(value, restored[key]), key
    out = loaded(images, training=False)
    for task in model.tasks:
        assert np.array_equal(out[task].numpy(), expected[task].numpy()), task
    assert not any(v.trainable for v in loaded.bank_variables())


def test_config_round_trip_with_every_option_set():
    keras.utils.set_random_seed(0)
    model = MultiTaskModel(
        tasks="depth,normals", backbone="resnet_tiny",
        num_classes={"semseg": 7}, width_multiplier=0.5, head_channels=8,
        low_level_channels=4, aspp_rates=(2, 4, 6), nff=False,
        compute_mode="factorized", image_size=(32, 48), name="everything",
        architecture="rc")
    config = model.get_config()
    assert config == {
        "name": "everything", "tasks": ["depth", "normals"],
        "backbone": "resnet_tiny", "num_classes": {"semseg": 7},
        "width_multiplier": 0.5, "head_channels": 8,
        "low_level_channels": 4, "aspp_rates": [2, 4, 6], "nff": False,
        "compute_mode": "factorized", "image_size": [32, 48],
        "architecture": "rc"}
    clone = MultiTaskModel.from_config(config)
    assert clone.get_config() == config
    assert clone.output["normals"].shape[1:] == (32, 48, 3)
    layer = clone.get_layer("layer1_0_conv1")
    assert not layer.nff and layer.compute_mode == "factorized"
