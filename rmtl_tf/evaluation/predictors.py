"""What gets evaluated: a trained Keras model, an exported SavedModel or a
TFLite file, each as a `Predictor`.

A predictor knows its tasks and input size (None: any) and maps a batch
of images
(float32 RGB in [0, 255]) to {task: activated prediction} numpy arrays:
class probabilities, sigmoid probabilities, unit normals, metres.

Exports are run per signature: by default every task through its own
signature (the graph that serves it); `signature="serving_default"` runs
all tasks in one call, and a task's name runs only that task.
"""

import dataclasses
import math
import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from rmtl_tf.export.runners import SavedModelRunner, TFLiteRunner
from rmtl_tf.export.signatures import INPUT_NAME
from rmtl_tf.models.model_dir import load_model
from rmtl_tf.models.multitask_model import predictions, with_image_size

DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass
class Predictor:
    """`predict(images) -> {task: numpy}`, with what describes it.

    `image_size`: the input size the model was built or exported for
    (None: any); `any_size`: it also runs images of other sizes.
    """

    predict: Callable[[np.ndarray], Dict[str, np.ndarray]]
    tasks: List[str]
    image_size: Optional[Tuple[int, int]]
    kind: str
    path: str
    parameters: Optional[int] = None
    num_classes: Dict[str, int] = dataclasses.field(default_factory=dict)
    any_size: bool = False

    def runs(self, size):
        """Whether the predictor runs (height, width) images."""
        return (self.any_size or self.image_size is None
                or tuple(size) == tuple(self.image_size))


def count_parameters(model):
    """Weights of `model`, each shared variable once, without BatchNorm's
    moving statistics (PyTorch's `parameters()` convention)."""
    seen, total = set(), 0
    for variable in model.weights:
        if id(variable) in seen or "moving_" in variable.path:
            continue
        seen.add(id(variable))
        total += math.prod(variable.shape)
    return int(total)


def _select_tasks(available, tasks, what):
    if not tasks:
        return list(available)
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise ValueError(f"Task(s) {unknown} are not in {what}; it has "
                         f"{list(available)}.")
    return list(tasks)


def model_predictor(model, tasks=None, path="model"):
    """A `MultiTaskModel` in memory, run on images of any size: a model
    built for one input size is rebuilt once for any size
    (`multitask_model.with_image_size`, same weights) when an image of
    another size comes."""
    tasks = _select_tasks(model.tasks, tasks, f"the model in {path!r}")
    size = tuple(model.image_size)
    built = {"own": model.task_model(tasks), "any": None}

    def predict(images):
        if None in size or tuple(images.shape[1:3]) == size:
            task_model = built["own"]
        else:
            if built["any"] is None:
                built["any"] = with_image_size(model, None).task_model(tasks)
            task_model = built["any"]
        # One compiled predict function per model, reused for every batch
        # (traced per new shape). Called eagerly, the graph's buffers were
        # allocated op by op: resident memory grew by about 2 GB per batch
        # of 8 480x640 images (5.0 -> 11 GB in 6 batches, a 4-task
        # ResNet-18), against a flat 1.6 GB here, and 30% slower.
        out = task_model.predict_on_batch(images)
        return {t: np.asarray(predictions(t, out[t])) for t in tasks}

    return Predictor(predict, tasks, None if None in size else size,
                     "keras", path, count_parameters(model),
                     dict(model.get_config()["num_classes"] or {}),
                     any_size=True)


def keras_predictor(model_dir, tasks=None):
    """The model in `model_dir/model.keras` (as train.py saves it)."""
    if not model_dir or not os.path.isdir(model_dir):
        raise FileNotFoundError(f"The model directory does not exist: "
                                f"model_dir={model_dir!r}.")
    return model_predictor(load_model(model_dir), tasks, model_dir)


def _export_plan(signatures, tasks, signature, path):
    """{signature: [tasks]} to run, with clear errors for bad names."""
    available = [s for s in signatures if s != DEFAULT_SIGNATURE]
    if signature is not None and signature not in signatures:
        raise ValueError(f"Unknown signature {signature!r} in {path!r}. "
                         f"Available: {sorted(signatures)}.")
    if signature is None:
        tasks = _select_tasks(available, tasks, repr(path))
        return {t: [t] for t in tasks}
    if signature == DEFAULT_SIGNATURE:
        return {signature: _select_tasks(available, tasks, repr(path))}
    return {signature: _select_tasks([signature], tasks,
                                     f"signature {signature!r}")}


def _run_in_chunks(run, images, batch):
    """Runs `run` on chunks of `batch` images when the input batch is
    fixed, and concatenates."""
    if batch is None or len(images) == batch:
        return run(images)
    parts = [run(images[i:i + batch]) for i in range(0, len(images), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def saved_model_predictor(path, tasks=None, signature=None):
    """An exported SavedModel directory (see `rmtl_tf.export`)."""
    if not os.path.isfile(os.path.join(path or "", "saved_model.pb")):
        raise FileNotFoundError(f"No SavedModel at {path!r} (expected "
                                "saved_model.pb inside).")
    runner = SavedModelRunner(path)
    plan = _export_plan(runner.signatures, tasks, signature, path)
    shape = runner.signatures[next(iter(plan))].structured_input_signature[
        1][INPUT_NAME].shape.as_list()
    return _export_predictor(runner, plan, shape, "saved_model", path)


def tflite_predictor(path, tasks=None, signature=None, num_threads=None):
    """An exported `.tflite` file (LiteRT interpreter)."""
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"No TFLite file at {path!r}.")
    runner = TFLiteRunner(path, num_threads=num_threads)
    plan = _export_plan(runner.signatures, tasks, signature, path)
    details = runner.interpreter.get_signature_runner(
        next(iter(plan))).get_input_details()[INPUT_NAME]
    shape = [int(s) for s in details["shape_signature"]]
    return _export_predictor(runner, plan, shape, "tflite", path)


def _export_predictor(runner, plan, shape, kind, path):
    batch = shape[0] if shape[0] is not None and shape[0] > 0 else None
    size = tuple(shape[1:3]) if all(
        s is not None and s > 0 for s in shape[1:3]) else None

    def predict(images):
        images = np.asarray(images, np.float32)
        out = {}
        for signature, tasks in plan.items():
            result = _run_in_chunks(lambda x, s=signature: runner(x, s),
                                    images, batch)
            out.update({t: np.asarray(result[t]) for t in tasks})
        return out

    tasks = [t for ts in plan.values() for t in ts]
    return Predictor(predict, tasks, size, kind, path)


def make_predictor(model_dir=None, saved_model=None, tflite=None,
                   tasks=None, signature=None):
    """The predictor of exactly one of `model_dir`, `saved_model`,
    `tflite`."""
    given = {k: v for k, v in (("model_dir", model_dir),
                               ("saved_model", saved_model),
                               ("tflite", tflite)) if v}
    if len(given) != 1:
        raise ValueError("Give exactly one of --model_dir, --saved_model, "
                         f"--tflite. Received: {given or 'none'}.")
    if model_dir:
        if signature is not None:
            raise ValueError("--signature is for exports (--saved_model, "
                             f"--tflite). Received: signature={signature!r}")
        return keras_predictor(model_dir, tasks)
    if saved_model:
        return saved_model_predictor(saved_model, tasks, signature)
    return tflite_predictor(tflite, tasks, signature)
