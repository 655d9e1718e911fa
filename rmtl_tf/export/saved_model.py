"""Writes one model as a SavedModel: a signature per task, traced in the
chosen compute mode and precision.

The multi-task graphs are traced with `ReparamConv2D`'s "factorized"
compute mode (bank convolution, then the task's 1x1 modulator). The
TFLite converter freezes variables into constants and folds constant
subexpressions: in the "fused" mode it would fold `bank @ modulator` into
one kernel per task, a full copy of the bank for every task.
`fold_modulators=True` asks for exactly that.
"""

import contextlib
import os
import shutil
import tempfile

import keras

from rmtl_tf.export import export_metadata
from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.export import signatures as signatures_lib
from rmtl_tf.models import multitask_model

PRECISIONS = ("float32", "bfloat16")


@contextlib.contextmanager
def compute_mode(model, mode):
    """Traces `model`'s reparameterized convs in `mode`, then restores."""
    layers = [l for l in model.layers if isinstance(l, ReparamConv2D)]
    saved = [layer.compute_mode for layer in layers]
    try:
        for layer in layers:
            layer.compute_mode = mode
        yield
    finally:
        for layer, old in zip(layers, saved):
            layer.compute_mode = old


def bfloat16_copy(model):
    """`model` rebuilt to compute in bfloat16 (Keras "mixed_bfloat16"):
    the same weights, stored float32 and cast to bfloat16 in the graph, the
    same inputs; outputs are bfloat16 (signatures cast them to float32).

    On CPUs with AMX or AVX512-BF16 (oneDNN) a bfloat16 graph runs several
    times faster than float32; elsewhere it is emulated and slower.
    """
    if not isinstance(model, multitask_model.MultiTaskModel):
        raise ValueError("A bfloat16 export needs a MultiTaskModel; received "
                         f"{type(model).__name__} {model.name!r}.")
    return multitask_model.with_dtype_policy(model, "mixed_bfloat16")


def export_image_size(model, dynamic_image_size=False):
    """The served (height, width): the model's, or (None, None)."""
    if dynamic_image_size:
        return (None, None)
    return signatures_lib.model_image_size(model)


def write_saved_model(model, path, fold_modulators=False,
                      dynamic_image_size=False, metadata=None):
    """Writes `model` as a SavedModel with a signature per task at `path`.

    `model` is a `MultiTaskModel` or a functional model with a dict
    output keyed by task (a folded task). `metadata` (a JSON-able dict) is
    stored inside as the string variable `rmtl_metadata`. Written to a
    temporary directory and renamed, so `path` never holds a half-written
    export. Returns the signature names.
    """
    if os.path.exists(path):
        raise FileExistsError(f"Export path already exists: {path!r}. "
                              "Choose another --version.")
    archive = keras.export.ExportArchive()
    # Not `archive.track(model)`: it records the `keras.Variable` wrappers,
    # the endpoints capture the `tf.Variable`s inside them, and the
    # checkpoint then stores every weight twice (keras-team/keras#23553).
    # The same `tf.Variable`s in both places are stored once.
    archive.add_variable_collection(
        "variables", [signatures_lib.tf_variable(v) for v in model.variables])
    if metadata is not None:
        archive.add_variable_collection(
            export_metadata.SAVED_MODEL_ATTRIBUTE,
            [export_metadata.as_variable(metadata)])
    image_size = export_image_size(model, dynamic_image_size)
    names = signatures_lib.add_endpoints(archive, model, image_size)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    try:
        # The functions are traced here.
        with compute_mode(model, "fused" if fold_modulators
                           else "factorized"):
            archive.write_out(tmp, verbose=False)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names
