"""train.py's end-of-run report: every task's headline metric (the authors'
protocol, `evaluate_lib.evaluate`) beside a trivial baseline.

The validation split is streamed at full resolution (images padded, never
cropped; predictions cut back to each image's size), so the report's
numbers are those `python -m rmtl_tf.evaluate` prints for the same images.

The baseline of each task is a model that ignores the image, fit on
training labels (streamed too): the majority class, the mean valid depth,
the mean normal, the majority edge / saliency value. A model must beat it
to have learned anything.
"""

import numpy as np

from rmtl_tf.evaluation import evaluate_lib, predictors
from rmtl_tf.metrics import task_metrics
from rmtl_tf.tasks import registry

IGNORE_LABEL = 255


class TrivialBaseline:
    """Constant predictions fit on training labels (see the module doc)."""

    def __init__(self, tasks, num_classes=None):
        self.tasks = list(tasks)
        self.num_classes = dict(num_classes or {})
        self.class_counts = {}
        self.sums = {t: 0.0 for t in self.tasks}
        self.counts = {t: 0 for t in self.tasks}

    def update(self, labels):
        """Accumulates one batch of training labels {task: array}."""
        for task in self.tasks:
            value = np.asarray(labels[task])
            if task in ("semseg", "human_parts"):
                ids = value[value != IGNORE_LABEL].astype(np.int64)
                counts = np.bincount(ids, minlength=registry.output_channels(
                    task, self.num_classes))
                previous = self.class_counts.get(task)
                self.class_counts[task] = counts if previous is None else \
                    previous + counts
            elif task == "depth":
                valid = value[value > 0]
                self.sums[task] += float(valid.sum())
                self.counts[task] += int(valid.size)
            elif task == "normals":
                flat = value.reshape(-1, 3)
                self.sums[task] = self.sums[task] + flat[
                    np.any(flat != 0, axis=1)].astype(np.float64).sum(0)
            else:
                valid = value[value != IGNORE_LABEL]
                self.sums[task] += float((valid > 0.5).sum())
                self.counts[task] += int(valid.size)

    def constants(self):
        """{task: the constant prediction}."""
        out = {}
        for task in self.tasks:
            if task in ("semseg", "human_parts"):
                out[task] = int(np.argmax(self.class_counts[task]))
            elif task == "normals":
                mean = np.asarray(self.sums[task], np.float64)
                norm = np.linalg.norm(mean)
                out[task] = (mean / norm if norm > 0 else
                             np.array([0.0, 0.0, 1.0]))
            elif task == "depth":
                out[task] = self.sums[task] / max(self.counts[task], 1)
            else:
                out[task] = float(self.sums[task] / max(self.counts[task], 1)
                                  >= 0.5)
        return out

    def predictor(self):
        """A `Predictor` giving the constant predictions for any image."""
        constants = self.constants()

        def predict(images):
            shape = tuple(np.shape(images)[:3])
            out = {}
            for task, value in constants.items():
                if task in ("semseg", "human_parts"):
                    out[task] = np.full(shape, value, np.int64)
                elif task == "normals":
                    out[task] = np.broadcast_to(
                        np.asarray(value, np.float32), shape + (3,))
                else:
                    out[task] = np.full(shape + (1,), value, np.float32)
            return out

        return predictors.Predictor(predict, self.tasks, None, "baseline",
                                    "trivial baseline", any_size=True)


def evaluate_with_baselines(model, data, image_size, num_examples,
                            batch_size, seed=0, log=None):
    """Every task of `model` and its trivial baseline on the validation
    split (full resolution, padded to at least `image_size`, the training
    crop: the authors pad to theirs, NYUD 425x560, PASCAL 512x512) of
    `data`, the resolved dataset (`datasets.resolve`).

    Returns {task: {"metric", "model", "baseline", "lower_is_better"}}: the
    headline metric (`task_metrics.HEADLINE`) of each. `log(str)` gets a
    progress line every few batches (a real split takes an hour on a CPU).
    """
    tasks = list(model.tasks)
    size = tuple(image_size)

    def split(name):
        return data.split(name, tasks, size, batch_size, num_examples,
                          seed=seed, full_resolution=True)

    baseline = TrivialBaseline(tasks, data.num_classes)
    for _, labels in split("train"):
        baseline.update({t: labels[t].numpy() for t in tasks})
    scored = {}
    for name, predictor in (
            ("model", predictors.model_predictor(model)),
            ("baseline", baseline.predictor())):
        scored[name] = evaluate_lib.evaluate(
            predictor, split("validation"), tasks, data.name,
            data.num_classes,
            progress=False, log=log)["headline"]
    results = {}
    for task in tasks:
        head = task_metrics.headline(task)
        results[task] = {"metric": head.label,
                         "model": scored["model"][task]["value"],
                         "baseline": scored["baseline"][task]["value"],
                         "lower_is_better": head.lower_is_better}
    return results


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
