"""Exports a multi-task model for TF Serving and LiteRT.

Layout (each `<export_dir>/<name>` is a TF Serving model base path):

    <export_dir>/models.config                        TF Serving config
    <export_dir>/<model_name>/<version>/              SavedModel, all tasks
    <export_dir>/<model_name>/<model_name>-<version>.json       metadata
    <export_dir>/<model_name>/<model_name>-<version>[-<q>].tflite
    <export_dir>/<model_name>/packs/<task>-<version>.npz        task packs
    <export_dir>/<model_name>_<task>_folded/...       the same for a folded
                                                      task (same version)

`<q>` is a quantization (`dynamic`, `float16`, `int8`); no suffix is
float32. Signatures (see `signatures`): one per task, named after it, and
`serving_default` returning every task; input `image`.

The multi-task graphs are traced with `ReparamConv2D`'s "factorized"
compute mode (bank convolution, then the task's 1x1 modulator). The
TFLite converter freezes variables into constants and folds constant
subexpressions: in the "fused" mode it would fold `bank @ modulator` into
one kernel per task, a full copy of the bank for every task.
`fold_modulators=True` asks for exactly that; `fold_tasks` goes further
(modulators and BatchNorm folded, see `fold`) and writes each such task
as its own model.

Exporting again after a task was added writes the next version; the
metadata records each task's fingerprint, so it lists which tasks are new
and which are unchanged (their outputs are then bit-identical).
"""

import contextlib
import glob
import os
import re
import shutil
import tempfile

import keras

from rmtl_tf.export import export_metadata, fingerprint, quantize
from rmtl_tf.export import signatures as signatures_lib
from rmtl_tf.export.signatures import DEFAULT_SIGNATURE, INPUT_NAME  # pylint: disable=unused-import
from rmtl_tf.models import multitask_model

MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def next_version(model_base):
    """1 + the largest integer version directory in `model_base` (or 1)."""
    return max(versions(model_base), default=0) + 1


def versions(model_base):
    """The integer version directories of `model_base`, sorted."""
    if not os.path.isdir(model_base):
        return []
    return sorted(int(d) for d in os.listdir(model_base)
                  if re.fullmatch(r"\d+", d)
                  and os.path.isdir(os.path.join(model_base, d)))


def tflite_path(model_base, model_name, version, quantization="none"):
    suffix = "" if quantization == "none" else f"-{quantization}"
    return os.path.join(model_base, f"{model_name}-{version}{suffix}.tflite")


@contextlib.contextmanager
def _compute_mode(model, mode):
    """Traces `model`'s reparameterized convs in `mode`, then restores."""
    layers = model.reparam_layers() if hasattr(model, "reparam_layers") \
        else []
    saved = [layer.compute_mode for layer in layers]
    try:
        for layer in layers:
            layer.compute_mode = mode
        yield
    finally:
        for layer, old in zip(layers, saved):
            layer.compute_mode = old


PRECISIONS = ("float32", "bfloat16")


def bfloat16_copy(model):
    """`model` rebuilt to compute in bfloat16 (Keras "mixed_bfloat16"):
    the same weights, stored float32 and cast to bfloat16 in the graph, the
    same inputs; outputs are bfloat16 (signatures cast them to float32).

    On CPUs with AMX or AVX512-BF16 (oneDNN) a bfloat16 graph runs several
    times faster than float32; elsewhere it is emulated and slower.
    """
    if not hasattr(model, "reparam_layers"):
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
        with _compute_mode(model, "fused" if fold_modulators
                           else "factorized"):
            archive.write_out(tmp, verbose=False)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names


def write_tflite(saved_model_path, path, signature_keys, quantization="none",
                 images=None):
    """Converts the SavedModel's `signature_keys` into one `.tflite` file;
    see `quantize` for the quantizations."""
    return quantize.write_tflite(saved_model_path, path, signature_keys,
                                 quantization, images)


def _check_arguments(model, model_name, version, quantize_modes, fold_tasks):
    # A leading letter or digit: "." or ".." would put the versions in
    # `export_dir` itself or outside it.
    if not (isinstance(model_name, str)
            and MODEL_NAME_PATTERN.fullmatch(model_name)):
        raise ValueError("--model_name must be letters, digits, '_', '-' or "
                         "'.', starting with a letter or digit. "
                         f"Received: model_name={model_name!r}")
    if version is not None and (isinstance(version, bool)
                                or not isinstance(version, int)
                                or version <= 0):
        raise ValueError(f"--version must be a positive integer. "
                         f"Received: version={version!r}")
    for mode in quantize_modes:
        quantize.check_quantization(mode)
    for task in fold_tasks:
        if task not in model.tasks:
            raise ValueError(f"--fold_task: unknown task {task!r}. This "
                             f"model's tasks are {list(model.tasks)}.")


def _export_one(model, model_base, model_name, version, kind, tflite,
                quantize_modes, images, dynamic_image_size, fold_modulators,
                extra, precision="float32"):
    """SavedModel + metadata + TFLite files of one servable model."""
    path = os.path.join(model_base, str(version))
    metadata = export_metadata.build(model, model_name, version, kind,
                                     export_image_size(model,
                                                       dynamic_image_size),
                                     model_base=model_base, **extra)
    if precision != "float32":
        metadata["precision"] = precision
    served = model if precision == "float32" else bfloat16_copy(model)
    names = write_saved_model(served, path, fold_modulators=fold_modulators,
                              dynamic_image_size=dynamic_image_size,
                              metadata=metadata)
    tflite_source = path
    tmp = None
    if precision != "float32" and (tflite or quantize_modes):
        # TFLite files come from a float32 SavedModel (LiteRT has its own
        # reduced-precision files: --quantize).
        tmp = tempfile.mkdtemp(prefix=".tmp-float32-", dir=model_base)
        tflite_source = os.path.join(tmp, "saved_model")
        write_saved_model(model, tflite_source,
                          fold_modulators=fold_modulators,
                          dynamic_image_size=dynamic_image_size)
    try:
        result = _write_tflite_files(
            tflite_source, model, model_base, model_name, version, names,
            tflite, quantize_modes, images)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result.update({"saved_model": path, "version": version,
                   "signatures": names})
    metadata["files"] = export_metadata.relative_files(model_base, result)
    result["metadata"] = export_metadata.write(
        os.path.join(model_base, f"{model_name}-{version}.json"), metadata)
    return result


def version_files(export_dir, model_name, version):
    """The existing files and directories of `version` of `model_name`:
    its SavedModel, metadata, TFLite files and task packs."""
    base = os.path.join(export_dir, model_name)
    pattern = glob.escape(base)
    found = [os.path.join(base, str(version))]
    found += glob.glob(os.path.join(pattern, f"{model_name}-{version}.json"))
    found += glob.glob(os.path.join(pattern,
                                    f"{model_name}-{version}.tflite"))
    found += glob.glob(os.path.join(pattern,
                                    f"{model_name}-{version}-*.tflite"))
    found += glob.glob(os.path.join(pattern, "packs", f"*-{version}.npz"))
    return sorted(p for p in set(found) if os.path.lexists(p))


@contextlib.contextmanager
def _replacing(paths, export_dir):
    """Moves `paths` aside; restores them if the body fails, else deletes
    them: an export that fails leaves the old version intact."""
    if not paths:
        yield
        return
    backup = tempfile.mkdtemp(prefix=".tmp-overwrite-", dir=export_dir)
    moved = []
    try:
        for i, path in enumerate(paths):
            target = os.path.join(backup, f"old-{i}")
            os.replace(path, target)
            moved.append((path, target))
        yield
    except BaseException:
        for path, target in moved:
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
            os.replace(target, path)
        shutil.rmtree(backup, ignore_errors=True)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _write_tflite_files(source, model, model_base, model_name, version,
                        names, tflite, quantize_modes, images):
    result = {"tasks": signatures_lib.served_tasks(model),
              "tflite_files": {}}
    for mode in (["none"] if tflite else []) + list(quantize_modes):
        if mode in result["tflite_files"]:
            continue
        result["tflite_files"][mode] = write_tflite(
            source, tflite_path(model_base, model_name, version, mode),
            names, mode, images if mode == "int8" else None)
    if "none" in result["tflite_files"]:
        result["tflite"] = result["tflite_files"]["none"]
    return result


def export(model, export_dir, model_name="rmtl", version=None, tflite=True,
           fold_modulators=False, quantize_modes=(), fold_tasks=(),
           dynamic_image_size=False, calibration_images=None,
           task_packs=False, precision="float32", overwrite=False):
    """SavedModel (+ TFLite files) of `model` under `export_dir/model_name/`.

    Args:
        quantize_modes: extra TFLite files, each of "dynamic", "float16",
            "int8" (see `quantize`); also written for every folded task.
        fold_tasks: tasks also exported folded (modulators and BatchNorm
            folded into plain convs) as the model `<model_name>_<task>_
            folded`, same version.
        dynamic_image_size: serve any height and width (>= 32) instead of
            the model's image size.
        calibration_images: float32 `[n, H, W, 3]` for "int8"; default:
            images of the synthetic training split at the model's size.
        task_packs: also save each task's pack (see `task_pack`) in
            `<model_name>/packs/`.
        precision: "float32", or "bfloat16": the multi-task SavedModel's
            signatures compute in bfloat16 (see `bfloat16_copy`; inputs and
            outputs stay float32, weights are stored once in float32). TFLite
            and folded files stay float32 (LiteRT has `quantize_modes`).
        overwrite: replace the files of an existing `version` (otherwise
            a `FileExistsError` names them). The old files are moved aside
            and restored if the export fails.

    Returns a dict with the paths written, the version and the signature
    names (plus `folded`: {task: the same dict for its folded model}).
    """
    quantize_modes, fold_tasks = list(quantize_modes), list(fold_tasks)
    _check_arguments(model, model_name, version, quantize_modes, fold_tasks)
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision={precision!r}; expected one of "
                         f"{PRECISIONS}.")
    model_base = os.path.join(export_dir, model_name)
    folded_names = {t: f"{model_name}_{t}_folded" for t in fold_tasks}
    if version is None:
        version = max([next_version(model_base)] + [
            next_version(os.path.join(export_dir, n))
            for n in folded_names.values()])
    existing = [p for name in [model_name, *folded_names.values()]
                for p in version_files(export_dir, name, version)]
    if existing and not overwrite:
        raise FileExistsError(
            f"Version {version} already exists in export_dir="
            f"{export_dir!r}: {existing[:4]}. Choose another --version, or "
            "pass --overwrite to replace it.")
    with _replacing(existing, export_dir):
        return _export(model, export_dir, model_name, version, tflite,
                       fold_modulators, quantize_modes, fold_tasks,
                       dynamic_image_size, calibration_images, task_packs,
                       folded_names, precision)


def _export(model, export_dir, model_name, version, tflite, fold_modulators,
            quantize_modes, fold_tasks, dynamic_image_size,
            calibration_images, task_packs, folded_names, precision):
    model_base = os.path.join(export_dir, model_name)
    images = calibration_images
    if "int8" in quantize_modes and images is None:
        size = export_image_size(model)
        images = quantize.calibration_images(
            size if None not in size else (64, 64))
    result = _export_one(model, model_base, model_name, version, "multitask",
                         tflite, quantize_modes, images, dynamic_image_size,
                         fold_modulators, {}, precision=precision)
    if task_packs:
        from rmtl_tf.export import task_pack  # pylint: disable=import-outside-toplevel
        result["packs"] = {
            t: task_pack.save_pack(model, t, os.path.join(
                model_base, "packs", f"{t}-{version}.npz"))
            for t in model.tasks}
    result["folded"] = {}
    if fold_tasks:
        from rmtl_tf.export import fold  # pylint: disable=import-outside-toplevel
        bank = (fingerprint.bank_fingerprint(model)
                if fingerprint.has_bank(model) else None)
        for task in fold_tasks:
            result["folded"][task] = _export_one(
                fold.fold_task(model, task),
                os.path.join(export_dir, folded_names[task]),
                folded_names[task], version, "folded", tflite,
                quantize_modes, images, dynamic_image_size, False,
                {"bank_fingerprint": bank,
                 "task_fingerprints": {
                     task: fingerprint.task_fingerprint(model, task)},
                 "folded_from": {"model_name": model_name, "task": task}})
    result["models_config"] = export_metadata.write_models_config(export_dir)
    return result


def read_saved_model_metadata(saved_model_path):
    """The metadata dict stored inside a SavedModel (no graph loaded)."""
    return export_metadata.read_from_saved_model(saved_model_path)

