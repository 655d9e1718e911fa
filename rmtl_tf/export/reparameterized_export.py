"""Exports a `ReparameterizedModel` (`rmtl_tf.reparameterize`): a SavedModel
with one signature per task, and its TFLite file.

The served function of a task is the model's own: `image` (the backbone's
input, float32) -> the task's outputs, keyed `output` for a backbone with
one output, else by the backbone's output names (`features`, `logits`,
...). `serving_default` returns every task's, keyed `<task>_<key>`.
Traced in `ReparamConv2D`'s "factorized" mode, so the TFLite converter
keeps one copy of each bank for every task (see `saved_model`).

```python
model = rmtl_tf.reparameterize(backbone, ["semseg", "depth"])
...  # Train each task's own variables.
names = write_saved_model(model, "export/1")
quantize.write_tflite("export/1", "export/model.tflite", names)
```
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from rmtl_tf.export import signatures as signatures_lib
from rmtl_tf.export.saved_model import compute_mode
from rmtl_tf.models.reparameterize import ReparameterizedModel

DEFAULT_SIGNATURE = signatures_lib.DEFAULT_SIGNATURE
INPUT_NAME = signatures_lib.INPUT_NAME


def output_keys(structure):
    """`structure` (one task's output) as a flat dict of signature keys."""
    if not isinstance(structure, dict):
        flat = keras.tree.flatten(structure)
        if len(flat) == 1:
            return {"output": flat[0]}
        return {f"output_{i}": x for i, x in enumerate(flat)}
    return {"_".join(str(p) for p in path): x for path, x in
            keras.tree.flatten_with_path(structure)}


def write_saved_model(model, path):
    """Writes `model`'s tasks as signatures of a SavedModel at `path`
    (written to a temporary directory, then renamed). Returns the
    signature names: the tasks, then `serving_default`."""
    if not isinstance(model, ReparameterizedModel):
        raise TypeError("Expected a ReparameterizedModel (made by "
                        "rmtl_tf.reparameterize); received "
                        f"{type(model).__name__}. MultiTaskModels are "
                        "exported by export.py.")
    if len(model.inputs) != 1:
        raise ValueError(f"Model {model.name!r} has {len(model.inputs)} "
                         "inputs; a signature here takes one image.")
    if os.path.exists(path):
        raise FileExistsError(f"Export path already exists: {path!r}.")
    spec = model.inputs[0]
    archive = keras.export.ExportArchive()
    # The tf.Variables themselves, stored once (see saved_model).
    archive.add_variable_collection(
        "variables", [signatures_lib.tf_variable(v) for v in model.variables])
    input_spec = tf.TensorSpec(spec.shape, spec.dtype, name=INPUT_NAME)

    def serve(tasks, prefix):
        def fn(image):
            outputs = model(image, training=False)
            served = {}
            for task in tasks:
                for key, value in output_keys(outputs[task]).items():
                    served[f"{task}_{key}" if prefix else key] = value
            return served
        return fn

    for task in model.tasks:
        archive.add_endpoint(task, serve([task], False), [input_spec])
    archive.add_endpoint(DEFAULT_SIGNATURE, serve(model.tasks, True),
                         [input_spec])
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    try:
        with compute_mode(model, "factorized"):
            archive.write_out(tmp, verbose=False)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [*model.tasks, DEFAULT_SIGNATURE]
