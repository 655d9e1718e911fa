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

`saved_model` writes each SavedModel (the compute modes and
`fold_modulators` are explained there); `versions` numbers the versions
and lists the files of one. `fold_tasks` goes further than
`fold_modulators` (modulators and BatchNorm folded, see `fold`) and writes
each such task as its own model.

Exporting again after a task was added writes the next version; the
metadata records each task's fingerprint, so it lists which tasks are new
and which are unchanged (their outputs are then bit-identical).
"""

import os
import shutil
import tempfile

from rmtl_tf.export import export_metadata, fingerprint, fold, quantize
from rmtl_tf.export import signatures as signatures_lib
from rmtl_tf.export import task_pack
from rmtl_tf.export.saved_model import (PRECISIONS, bfloat16_copy,
                                        export_image_size, write_saved_model)
from rmtl_tf.export.versions import (MODEL_NAME_PATTERN, next_version,
                                     replacing, tflite_path, version_files)


def write_tflite(saved_model_path, path, signature_keys, quantization="none",
                 images=None):
    """Converts the SavedModel's `signature_keys` into one `.tflite` file;
    see `quantize` for the quantizations."""
    return quantize.write_tflite(saved_model_path, path, signature_keys,
                                 quantization, images)


def check_arguments(model, model_name, version, quantize_modes, fold_tasks):
    """Raises a `ValueError` for an invalid `export` argument: the model
    name, the version, a quantization mode, or a task to fold that is not
    one of `model`'s tasks."""
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
    check_arguments(model, model_name, version, quantize_modes, fold_tasks)
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
    with replacing(existing, export_dir):
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
        result["packs"] = {
            t: task_pack.save_pack(model, t, os.path.join(
                model_base, "packs", f"{t}-{version}.npz"))
            for t in model.tasks}
    result["folded"] = {}
    if fold_tasks:
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

