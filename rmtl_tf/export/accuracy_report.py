"""How much quantization costs: each task's metric, float vs quantized.

Runs every task's signature of each `.tflite` file over a labelled split
(the synthetic validation scenes by default) and scores it with the task's
simple metric (`rmtl_tf.metrics.simple_metrics.make_metric`: mIoU, RMSE,
mean angle error, F1/IoU). The report gives, per file and task, the
metric, its change against the float32 file ("worse_by", positive when
quantization hurts, whichever way the metric points), and how far the
outputs moved (max and mean absolute difference of the predictions).
"""

import os

import numpy as np

from rmtl_tf.data import datasets
from rmtl_tf.export import runners as runners_lib
from rmtl_tf.metrics import simple_metrics
from rmtl_tf.tasks import registry


def _interpreter(path, num_threads=None):
    interpreter, _ = runners_lib.litert()
    return interpreter(model_path=path, num_threads=num_threads)


def predict_split(path, tasks, batches, num_threads=None):
    """{task: [prediction batch, ...]} of `path`'s task signatures."""
    interpreter = _interpreter(path, num_threads)
    runners = {t: interpreter.get_signature_runner(t) for t in tasks}
    outputs = {t: [] for t in tasks}
    for images, _ in batches:
        for task in tasks:
            outputs[task].append(runners[task](image=images)[task])
    return outputs


def _score(task, predictions, batches, num_classes):
    metric = simple_metrics.make_metric(task, num_classes)
    for prediction, (_, labels) in zip(predictions, batches):
        metric.update(labels[task], prediction)
    return float(metric.result())


def load_batches(tasks, image_size, num_examples=32, batch_size=4,
                 dataset="synthetic", split="validation", seed=0,
                 data_dir=None):
    """[(images, {task: labels})] as numpy, from `rmtl_tf.data`."""
    ds = datasets.load_split(dataset, split, list(tasks), tuple(image_size),
                             batch_size, num_examples, seed=seed,
                             data_dir=data_dir)
    return [(np.asarray(images), {t: np.asarray(v) for t, v in
                                  labels.items()}) for images, labels in ds]


def report(files, tasks, batches, num_classes=None, reference="none",
           num_threads=None):
    """The accuracy report of `files` ({variant: .tflite path}).

    `reference` names the float file the others are compared with.
    Returns {variant: {"size_bytes", "metrics": {task: {"metric", "value",
    "worse_by", "max_abs_diff", "mean_abs_diff"}}}}.
    """
    if reference not in files:
        raise ValueError(f"The reference {reference!r} is not among the "
                         f"files {sorted(files)}.")
    predicted = {v: predict_split(p, tasks, batches, num_threads)
                 for v, p in files.items()}
    result = {}
    for variant, path in files.items():
        rows = {}
        for task in tasks:
            spec = registry.get_task(task)
            value = _score(task, predicted[variant][task], batches,
                           num_classes)
            base = _score(task, predicted[reference][task], batches,
                          num_classes)
            diff = np.concatenate([
                np.abs(a - b).reshape(-1) for a, b in
                zip(predicted[variant][task], predicted[reference][task])])
            rows[task] = {
                "metric": spec.metric, "value": round(value, 5),
                "worse_by": round((value - base) if spec.lower_is_better
                                  else (base - value), 5),
                "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
            }
        result[variant] = {"size_bytes": os.path.getsize(path),
                           "metrics": rows}
    return result


def format_report(result):
    """A plain-text table of `report`'s result."""
    lines = [f"{'file':<10} {'MB':>7}  {'task':<10} {'metric':<17} "
             f"{'value':>9} {'worse by':>9} {'max|diff|':>10}"]
    for variant, row in result.items():
        for task, m in row["metrics"].items():
            lines.append(
                f"{variant:<10} {row['size_bytes'] / 2**20:>7.3f}  "
                f"{task:<10} {m['metric']:<17} {m['value']:>9.4f} "
                f"{m['worse_by']:>9.4f} {m['max_abs_diff']:>10.4g}")
    return "\n".join(lines)
