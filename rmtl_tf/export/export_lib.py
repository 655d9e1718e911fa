"""Exports a multi-task model: one SavedModel and one TFLite file, one
signature per task, the shared bank stored once in each.

Layout (TF Serving's model base path is `<export_dir>/<model_name>`):

    <export_dir>/<model_name>/<version>/          SavedModel
    <export_dir>/<model_name>/<model_name>-<version>.tflite

Signatures: one per task, named after it (`semseg`, `depth`, ...), and
`serving_default` returning every task. Input `image`: float32
`[batch, height, width, 3]`, RGB pixels in [0, 255] (the model normalizes
with the ImageNet mean/std inside). Outputs are keyed by task:
semseg/human_parts class probabilities (softmax), edge/saliency
probabilities (sigmoid), normals unit vectors, depth metres.

The graphs are traced with `ReparamConv2D`'s "factorized" compute mode
(bank convolution, then the task's 1x1 modulator). The TFLite converter
freezes variables into constants and folds constant subexpressions: in the
"fused" mode it would fold `bank @ modulator` into one kernel per task, a
full copy of the bank for every task. `fold_modulators=True` asks for
exactly that: a plain network per task, the fastest graph for one task,
at the price of one bank copy per task in the TFLite file.
"""

import contextlib
import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from rmtl_tf.models.multitask_model import predictions

DEFAULT_SIGNATURE = "serving_default"
INPUT_NAME = "image"


def next_version(model_base):
    """1 + the largest integer version directory in `model_base` (or 1)."""
    if not os.path.isdir(model_base):
        return 1
    versions = [int(d) for d in os.listdir(model_base)
                if re.fullmatch(r"\d+", d)
                and os.path.isdir(os.path.join(model_base, d))]
    return max(versions, default=0) + 1


def input_spec(model, batch_size=None):
    """The serving input: float32 pixels, the model's image size."""
    height, width = model.image_size
    return tf.TensorSpec([batch_size, height, width, 3], tf.float32,
                         name=INPUT_NAME)


def _check_image(image, image_size):
    """In-graph check of the served image, with a message naming both."""
    expected = [-1 if s is None else s for s in image_size] + [3]
    shape = tf.shape(image)
    ok = tf.reduce_all([tf.logical_or(tf.equal(e, -1), tf.equal(shape[i + 1], e))
                        for i, e in enumerate(expected)])
    # summarize=4: print the whole received shape, not its first 3 dims.
    tf.debugging.Assert(ok, [
        f"image must be float32 [batch, {expected[0]}, {expected[1]}, 3] "
        "(RGB pixels in [0, 255]); received shape", shape], summarize=4)
    return image


def _serving_fn(model, tasks):
    # A task's signature runs only that task's path (`task_model`), so each
    # signature traces one path, not every task's.
    runner = model if list(tasks) == list(model.tasks) else (
        model.task_model(tasks))

    def serve(image):
        image = _check_image(image, model.image_size)
        outputs = runner(image, training=False)
        return {t: predictions(t, outputs[t]) for t in tasks}
    return serve


@contextlib.contextmanager
def _compute_mode(model, mode):
    """Traces `model`'s reparameterized convs in `mode`, then restores."""
    layers = model.reparam_layers()
    saved = [layer.compute_mode for layer in layers]
    try:
        for layer in layers:
            layer.compute_mode = mode
        yield
    finally:
        for layer, old in zip(layers, saved):
            layer.compute_mode = old


def write_saved_model(model, path, batch_size=None, fold_modulators=False):
    """Writes `model` as a SavedModel with a signature per task at `path`.

    Written to a temporary directory and renamed, so `path` never holds a
    half-written export. See the module docstring for `fold_modulators`.
    """
    if os.path.exists(path):
        raise FileExistsError(f"Export path already exists: {path!r}. "
                              "Choose another --version.")
    spec = input_spec(model, batch_size)
    archive = keras.export.ExportArchive()
    # Not `archive.track(model)`: it records the `keras.Variable` wrappers,
    # the endpoints capture the `tf.Variable`s inside them, and the
    # checkpoint then stores every weight twice (keras-team/keras#23553).
    # The same `tf.Variable`s in both places are stored once.
    archive.add_variable_collection(
        "variables", [_tf_variable(v) for v in model.variables])
    # The first endpoint is also the default one: all tasks.
    archive.add_endpoint(DEFAULT_SIGNATURE, _serving_fn(model, model.tasks),
                         input_signature=[spec])
    for task in model.tasks:
        archive.add_endpoint(task, _serving_fn(model, [task]),
                             input_signature=[spec])
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    try:
        # The functions are traced here.
        with _compute_mode(model, "fused" if fold_modulators
                           else "factorized"):
            archive.write_out(tmp, verbose=False)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _tf_variable(variable):
    """The `tf.Variable` behind a `keras.Variable` (TensorFlow backend)."""
    value = getattr(variable, "value", variable)
    return value if isinstance(value, tf.Variable) else variable


def write_tflite(saved_model_path, path, signature_keys):
    """Converts the SavedModel's `signature_keys` into one `.tflite` file."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_path, signature_keys=list(signature_keys))
    converter.optimizations = []
    content = converter.convert()
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(content)
    os.replace(tmp, path)
    return path


def export(model, export_dir, model_name="rmtl", version=None, tflite=True,
           fold_modulators=False):
    """SavedModel (+ TFLite) of `model` under `export_dir/model_name/`.

    Returns a dict with the paths written and the signature names.
    """
    # A leading letter or digit: "." or ".." would put the versions in
    # `export_dir` itself or outside it.
    if not (isinstance(model_name, str)
            and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", model_name)):
        raise ValueError("--model_name must be letters, digits, '_', '-' or "
                         "'.', starting with a letter or digit. "
                         f"Received: model_name={model_name!r}")
    model_base = os.path.join(export_dir, model_name)
    if version is None:
        version = next_version(model_base)
    if (isinstance(version, bool) or not isinstance(version, int)
            or version <= 0):
        raise ValueError(f"--version must be a positive integer. "
                         f"Received: version={version!r}")
    saved_model = write_saved_model(model, os.path.join(model_base,
                                                        str(version)),
                                    fold_modulators=fold_modulators)
    signatures = [DEFAULT_SIGNATURE] + list(model.tasks)
    result = {"saved_model": saved_model, "version": version,
              "signatures": signatures, "tasks": list(model.tasks)}
    if tflite:
        result["tflite"] = write_tflite(
            saved_model, os.path.join(model_base,
                                      f"{model_name}-{version}.tflite"),
            signatures)
    return result
