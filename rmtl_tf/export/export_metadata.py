"""What an export records about itself, and the TF Serving config.

Each export version writes `<model_base>/<model_name>-<version>.json` and
stores the same dict inside the SavedModel (the string variable
`rmtl_metadata`, readable without loading the graph):

    {"format": "rmtl_export", "model_name", "version", "kind":
     "multitask" | "folded", "tasks", "signatures", "input": {name, dtype,
     shape (-1: any), pixels}, "bank_fingerprint" (null without a frozen
     bank: the "conv" and "shared" baselines), "task_fingerprints",
     "architecture", "previous_version": {"version", "new_tasks",
     "unchanged_tasks", "changed_tasks", "removed_tasks", "same_bank"},
     "folded_from" (folded only), "files" (JSON file only)}

`previous_version` compares the task fingerprints with the latest older
version's: an unchanged task computes the same function from the same
weights, and its outputs in the new version are bit-identical.
"""

import json
import os
import re

import tensorflow as tf

from rmtl_tf._version import __version__
from rmtl_tf.export import fingerprint
from rmtl_tf.export import signatures as signatures_lib
from rmtl_tf.models.multitask_model import MultiTaskModel

FORMAT = "rmtl_export"
SAVED_MODEL_ATTRIBUTE = "rmtl_metadata"
MODELS_CONFIG = "models.config"
# Where `docker run ... tensorflow/serving` sees the export directory.
SERVING_ROOT = "/models"


def _previous(model_base, model_name, version, bank, task_fingerprints):
    older = []
    if os.path.isdir(model_base):
        older = sorted(int(d) for d in os.listdir(model_base)
                       if re.fullmatch(r"\d+", d) and int(d) < version)
    for old in reversed(older):
        path = os.path.join(model_base, f"{model_name}-{old}.json")
        if not os.path.isfile(path):
            continue
        previous = read(path)
        before = previous.get("task_fingerprints", {})
        return {
            "version": old,
            "same_bank": previous.get("bank_fingerprint") == bank,
            "new_tasks": [t for t in task_fingerprints if t not in before],
            "unchanged_tasks": [t for t, f in task_fingerprints.items()
                                if before.get(t) == f],
            "changed_tasks": [t for t, f in task_fingerprints.items()
                              if t in before and before[t] != f],
            "removed_tasks": [t for t in before
                              if t not in task_fingerprints],
        }
    return None


def build(model, model_name, version, kind, image_size, model_base=None,
          bank_fingerprint=None, task_fingerprints=None, folded_from=None):
    """The metadata dict of one export of `model`."""
    tasks = signatures_lib.served_tasks(model)
    if bank_fingerprint is None and fingerprint.has_bank(model):
        bank_fingerprint = fingerprint.bank_fingerprint(model)
    if task_fingerprints is None:
        task_fingerprints = {t: fingerprint.task_fingerprint(model, t)
                             for t in tasks}
    height, width = (-1 if s is None else int(s) for s in image_size)
    metadata = {
        "format": FORMAT,
        "rmtl_tf_version": __version__,
        "model_name": model_name,
        "version": version,
        "kind": kind,
        "tasks": tasks,
        "signatures": [signatures_lib.DEFAULT_SIGNATURE, *tasks],
        "input": {"name": signatures_lib.INPUT_NAME, "dtype": "float32",
                  "shape": [-1, height, width, signatures_lib.CHANNELS],
                  "pixels": "RGB in [0, 255]"},
        "bank_fingerprint": bank_fingerprint,
        "task_fingerprints": task_fingerprints,
        "architecture": (model.get_config()
                         if isinstance(model, MultiTaskModel) else None),
        "previous_version": (_previous(model_base, model_name, version,
                                       bank_fingerprint, task_fingerprints)
                             if model_base else None),
    }
    if folded_from is not None:
        metadata["folded_from"] = folded_from
    return metadata


def as_variable(metadata):
    """A string `tf.Variable` holding `metadata` as JSON."""
    return tf.Variable(json.dumps(metadata, sort_keys=True),
                       trainable=False, name=SAVED_MODEL_ATTRIBUTE)


def read_from_saved_model(saved_model_path):
    """The metadata stored in a SavedModel, read from its checkpoint."""
    checkpoint = os.path.join(saved_model_path, "variables", "variables")
    key = f"{SAVED_MODEL_ATTRIBUTE}/0/.ATTRIBUTES/VARIABLE_VALUE"
    try:
        value = tf.train.load_variable(checkpoint, key)
    except (tf.errors.NotFoundError, ValueError) as e:
        raise ValueError(f"{saved_model_path!r} holds no rmtl_tf metadata "
                         "(not exported by rmtl_tf?).") from e
    return json.loads(value.decode() if isinstance(value, bytes) else value)


def relative_files(model_base, result):
    """The files of an export result, relative to its model base."""
    def rel(path):
        return os.path.relpath(path, model_base)
    return {"saved_model": rel(result["saved_model"]),
            "tflite": {q: rel(p) for q, p in result["tflite_files"].items()}}


def write(path, metadata):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read(path):
    with open(path, encoding="utf-8") as f:
        metadata = json.load(f)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not rmtl_tf export metadata.")
    return metadata


def model_bases(export_dir):
    """Names of the directories of `export_dir` holding SavedModel
    versions (TF Serving model base paths), sorted."""
    names = []
    for name in sorted(os.listdir(export_dir)):
        base = os.path.join(export_dir, name)
        if os.path.isdir(base) and any(
                re.fullmatch(r"\d+", v) and os.path.isfile(
                    os.path.join(base, v, "saved_model.pb"))
                for v in os.listdir(base)):
            names.append(name)
    return names


def models_config(names, root=SERVING_ROOT, num_versions=2):
    """A TF Serving `--model_config_file` serving `names` under `root`,
    the latest `num_versions` versions of each (the previous one stays up
    while clients move to a new version)."""
    entries = []
    for name in names:
        entries.append(
            "  config {\n"
            f"    name: \"{name}\"\n"
            f"    base_path: \"{root}/{name}\"\n"
            "    model_platform: \"tensorflow\"\n"
            "    model_version_policy { latest { num_versions: "
            f"{num_versions} }} }}\n"
            "  }")
    return "model_config_list {\n" + "\n".join(entries) + "\n}\n"


def write_models_config(export_dir):
    """(Re)writes `<export_dir>/models.config` for every model base."""
    path = os.path.join(export_dir, MODELS_CONFIG)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# Written by rmtl_tf export: mount {export_dir!r} at "
                f"{SERVING_ROOT}.\n")
        f.write(models_config(model_bases(export_dir)))
    os.replace(tmp, path)
    return path
