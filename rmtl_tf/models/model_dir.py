"""The model directory's layout: what `train.py` writes into `--model_dir`,
and how the rest (evaluation, export) reads it back.

- `model.keras` (`MODEL_FILE`): the model after the last completed task;
- `bank.npz` (`BANK_FILE`): the pretrained weights (bank, and the
  BatchNorm/shortcut weights every new task starts from);
- `ri.npz` (`RI_FILE`): the response initialization's decompositions, for
  the rc_ri* variants;
- `checkpoints/<task>/`: atomic checkpoints of the task being trained, so a
  killed run resumes where it stopped;
- `logs/<task>/`: TensorBoard scalars and images;
- `summary.json` (`SUMMARY_FILE`): what was trained, with which settings
  (`{"tasks": {task: {..., "config": TrainConfig fields}}}`), and the
  metrics.
"""

import os
import zipfile

import keras

from rmtl_tf.atomic_files import read_json

MODEL_FILE = "model.keras"
BANK_FILE = "bank.npz"
SUMMARY_FILE = "summary.json"
RI_FILE = "ri.npz"


def load_model(model_dir):
    """Loads `model_dir/model.keras`, with a clear error when missing."""
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No trained model in model_dir={model_dir!r} (expected "
            f"{path!r}). Train one first with train.py --model_dir=...")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a .keras file (not a zip archive): damaged or "
            "truncated. Restore it, or retrain into a new --model_dir.")
    # safe_mode: a saved file never brings code (no lambdas are loaded).
    return keras.models.load_model(path, safe_mode=True)


def read_summary(model_dir):
    """The `summary.json` of `model_dir`, or None when there is none."""
    return read_json(os.path.join(model_dir, SUMMARY_FILE))


def training_data(model_dir):
    """(dataset, data_dir) the model in `model_dir` was trained on, from
    its `summary.json` (the first task's settings); ("synthetic", None)
    when there is none."""
    tasks = (read_summary(model_dir or "") or {}).get("tasks", {})
    for stats in tasks.values():
        config = stats.get("config", {})
        return config.get("dataset", "synthetic"), config.get("data_dir")
    return "synthetic", None
