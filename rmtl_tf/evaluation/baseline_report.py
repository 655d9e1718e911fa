"""train.py's end-of-run report: the simple metrics of every task beside a
trivial baseline.

The baseline of each task is a model that ignores the image (majority class,
mean depth, mean normal, majority value; see `simple_metrics.
trivial_prediction`), fit on training labels: a model must beat it to have
learned anything. The benchmark metrics are `evaluate_lib.evaluate`'s.
"""

import numpy as np

from rmtl_tf.data import datasets
from rmtl_tf.metrics import simple_metrics
from rmtl_tf.models.multitask_model import predictions
from rmtl_tf.tasks import registry


def _collect(dataset, tasks):
    images, labels = [], {t: [] for t in tasks}
    for image, label in dataset:
        images.append(image.numpy())
        for t in tasks:
            labels[t].append(label[t].numpy())
    return (np.concatenate(images),
            {t: np.concatenate(v) for t, v in labels.items()})


def evaluate_arrays(predict_fn, images, labels, tasks, num_classes,
                    batch_size, baseline_labels=None):
    """Metrics of `predict_fn(images) -> {task: activated prediction}`.

    With `baseline_labels` (training labels by task), also the metrics of
    the trivial baseline fit on them.
    """
    results = {}
    model_metrics = {t: simple_metrics.make_metric(t, num_classes)
                     for t in tasks}
    for start in range(0, len(images), batch_size):
        out = predict_fn(images[start:start + batch_size])
        for t in tasks:
            model_metrics[t].update(labels[t][start:start + batch_size],
                                    np.asarray(out[t]))
    for t in tasks:
        spec = registry.get_task(t)
        entry = {"metric": spec.metric, "model": model_metrics[t].result(),
                 "lower_is_better": spec.lower_is_better}
        if baseline_labels is not None:
            baseline = simple_metrics.make_metric(t, num_classes)
            shape = labels[t].shape
            if t in ("semseg", "human_parts"):
                shape = shape + (1,)
            baseline.update(labels[t], simple_metrics.trivial_prediction(
                t, baseline_labels[t], shape))
            entry["baseline"] = baseline.result()
        results[t] = entry
    return results


def evaluate_with_baselines(model, dataset, image_size, num_examples,
                            batch_size, seed=0, data_dir=None,
                            num_classes=None):
    """Evaluates every task of `model` on the validation split."""
    tasks = list(model.tasks)
    val = datasets.load_split(dataset, "validation", tasks, image_size,
                              batch_size, num_examples, seed=seed,
                              data_dir=data_dir)
    train = datasets.load_split(dataset, "train", tasks, image_size,
                                batch_size, num_examples, seed=seed,
                                data_dir=data_dir)
    images, labels = _collect(val, tasks)
    _, train_labels = _collect(train, tasks)

    def predict_fn(batch):
        out = model(batch, training=False)
        return {t: predictions(t, out[t]) for t in tasks}

    return evaluate_arrays(predict_fn, images, labels, tasks, num_classes,
                           batch_size, baseline_labels=train_labels)


def format_table(results):
    """A markdown table: task, metric, model, trivial baseline, ratio."""
    rows = ["| task | metric | model | trivial baseline | model / baseline |",
            "|---|---|---|---|---|"]
    for task, r in results.items():
        baseline = r.get("baseline")
        ratio = (f"{r['model'] / baseline:.2f}" if baseline else "-")
        direction = "lower is better" if r["lower_is_better"] else \
            "higher is better"
        rows.append(f"| {task} | {r['metric']} ({direction}) | "
                    f"{r['model']:.4f} | "
                    f"{baseline if baseline is None else f'{baseline:.4f}'} |"
                    f" {ratio} |")
    return "\n".join(rows)


