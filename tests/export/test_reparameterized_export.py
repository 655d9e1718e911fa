"""Exporting a `ReparameterizedModel`: a SavedModel and a TFLite file with a
signature per task, loaded back and run, and one copy of the bank."""

import keras
import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.export import quantize, tflite_file
from rmtl_tf.export.reparameterized_export import write_saved_model
from rmtl_tf.export.runners import SavedModelRunner, TFLiteRunner

SIZE = 32
WIDTH = 48  # Wide 3x3 convs: each bank (83 KB) dwarfs a task's modulator.


def _backbone():
    image = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(WIDTH, 3, strides=2, name="stem")(image)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(WIDTH, 3, padding="same", name="conv")(x)
    features = keras.layers.Conv2D(8, 1, name="project")(x)
    logits = keras.layers.Dense(3, name="classifier")(
        keras.layers.GlobalAveragePooling2D()(features))
    return keras.Model(image, {"features": features, "logits": logits})


def _model(tasks, seed=0):
    keras.utils.set_random_seed(seed)
    model = rmtl_tf.reparameterize(_backbone(), tasks)
    rng = np.random.default_rng(seed)
    for task in tasks:  # Unequal tasks: the converter merges equal buffers.
        for variable in model.task_variables(task):
            variable.assign(variable + rng.normal(0, 0.05, variable.shape))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("reparameterized")
    files = {}
    for tasks in (["a"], ["a", "b"]):
        model = _model(tasks)
        path = str(root / "_".join(tasks))
        names = write_saved_model(model, path)
        tflite = path + ".tflite"
        quantize.write_tflite(path, tflite, names)
        files[len(tasks)] = (model, path, tflite, names)
    return files


def test_every_signature_matches_keras(exported):
    model, path, tflite, names = exported[2]
    assert names == ["a", "b", "serving_default"]
    image = np.random.default_rng(5).uniform(
        0, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    expected = model(image)
    saved, lite = SavedModelRunner(path), TFLiteRunner(tflite)
    for runner in (saved, lite):
        for task in ("a", "b"):
            out = runner(image, signature=task)
            assert set(out) == {"features", "logits"}
            for key in out:
                np.testing.assert_allclose(out[key], expected[task][key],
                                           rtol=1e-4, atol=1e-4)
        both = runner(image)
        np.testing.assert_allclose(both["b_logits"], expected["b"]["logits"],
                                   rtol=1e-4, atol=1e-4)


def test_one_copy_of_the_bank(exported):
    one = tflite_file.constant_bytes(tflite_file.load(exported[1][2]))
    two = tflite_file.constant_bytes(tflite_file.load(exported[2][2]))
    model = exported[2][0]
    bank = 4 * sum(int(np.prod(v.shape)) for v in model.bank_variables())
    task = 4 * sum(int(np.prod(v.shape)) for v in model.task_variables("b"))
    assert bank > 3 * task  # Else the test could not tell.
    # A second task adds its own weights, not a second bank.
    assert two - one < task + bank / 2, (one, two, bank, task)


def test_refuses_other_models(tmp_path):
    with pytest.raises(TypeError, match="ReparameterizedModel"):
        write_saved_model(_backbone(), str(tmp_path / "x"))
