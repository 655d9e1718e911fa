"""Evaluates multi-task models with the benchmark metrics the papers report
(`rmtl_tf.metrics`: mIoU, maxF, angle errors, depth RMSE and more, edge
ODS/OIS/AP), streamed over a split; writes results JSON, PR-curve PNGs and
TensorBoard panels. `run_evaluation` is what `python -m rmtl_tf.evaluate`
runs.

Every score is the authors' protocol: whole validation images (padded,
never cropped), predictions cut back to each image's size, the authors'
metrics (`rmtl_tf.metrics`). train.py's end-of-run report (the same
headline metrics beside trivial baselines) is `baseline_report`.
"""

import dataclasses
import os
import sys
import time
from typing import Optional, Sequence, Tuple

import numpy as np

from rmtl_tf import atomic_files
from rmtl_tf.data import datasets
from rmtl_tf.data.transforms import crop_offsets
from rmtl_tf.evaluation import predictors, results_table
from rmtl_tf.metrics import multitask_score, task_metrics
from rmtl_tf.tasks import registry
from rmtl_tf.visualization import image_summaries, pr_curve_plot


@dataclasses.dataclass
class EvalConfig:
    """What `run_evaluation` evaluates, on what, and where results go.

    Exactly one of `model_dir`, `saved_model`, `tflite`. `image_size`:
    the size images are padded to at least (None: the authors' for the
    dataset, else the model's or export's input size). `tasks` None: all
    of the model's (an empty sequence is refused). `references`: single-task results.json
    files for dm.
    """

    output_dir: str
    model_dir: Optional[str] = None
    saved_model: Optional[str] = None
    tflite: Optional[str] = None
    signature: Optional[str] = None
    tasks: Optional[Sequence[str]] = None
    dataset: str = "synthetic"
    data_dir: Optional[str] = None
    split: str = "validation"
    image_size: Optional[Tuple[int, int]] = None
    batch_size: int = 8
    num_examples: int = 64
    seed: int = 0
    edge_max_dist: Optional[float] = None
    edge_workers: Optional[int] = None
    name: Optional[str] = None
    references: Sequence[str] = ()
    image_summaries: bool = True

    def __post_init__(self):
        self.tasks = registry.parse_tasks(self.tasks)
        if self.tasks == ():
            raise ValueError("--tasks must name at least one task, or be left"
                             " out for every task of the model. Received: "
                             "tasks=()")
        for field in ("batch_size", "num_examples"):
            if getattr(self, field) <= 0:
                raise ValueError(f"--{field} must be > 0. Received: "
                                 f"{field}={getattr(self, field)}")
        if self.edge_workers is not None and self.edge_workers < 0:
            raise ValueError("--edge_workers must be >= 0 (0: edge maps "
                             "scored in the loop). Received: edge_workers="
                             f"{self.edge_workers}")
        if self.image_size is not None:
            try:
                self.image_size = tuple(int(s) for s in self.image_size)
            except ValueError as e:
                raise ValueError("--image_size must be two integers H,W. "
                                 f"Received: {self.image_size}") from e
            if len(self.image_size) != 2:
                raise ValueError("--image_size must be H,W. Received: "
                                 f"image_size={self.image_size}")


def _pad_size(config, predictor, source):
    """The size images are padded to at least (never cropped): --image_size,
    else the authors' for the dataset (`DatasetSpec.eval_size`), else the
    model's or export's input size."""
    size = (config.image_size
            or source.eval_size
            or predictor.image_size)
    if size is None:
        raise ValueError(f"{predictor.path!r} accepts any image size: pass "
                         "--image_size=H,W (the size images are padded to "
                         "at least).")
    return tuple(size)


def run_evaluation(config, log=print, log_every=None):
    """Evaluates `config`'s model on its split; writes results.json (and
    PNGs, TensorBoard logs) to `config.output_dir`. On a terminal a
    progress bar shows the batches; otherwise (a log file, a job) `log`
    gets a line every `log_every` batches (default `LOG_EVERY`).

    Returns the results dict plus "table" (markdown) and "json" (its path).
    """
    source = datasets.resolve(config.dataset, config.data_dir)
    predictor = predictors.make_predictor(
        config.model_dir, config.saved_model, config.tflite,
        None if config.tasks is None else list(config.tasks),
        config.signature)
    size = _pad_size(config, predictor, source)
    tasks = predictor.tasks
    data = source.split(config.split, tasks, size, config.batch_size,
                        config.num_examples, seed=config.seed,
                        full_resolution=True)
    writer = None
    if config.image_summaries:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        writer = tf.summary.create_file_writer(
            os.path.join(config.output_dir, "logs"))
    name = config.name or predictor.path
    log(f"Evaluating {predictor.kind} {predictor.path!r} on {config.dataset}"
        f" {config.split} (up to {config.num_examples} images at full "
        f"resolution, padded to at least {size[0]}x{size[1]}); tasks "
        f"{tasks}.")
    terminal = sys.stdout.isatty()
    results = evaluate(
        predictor, data, tasks, config.dataset, source.num_classes,
        config.edge_max_dist, edge_workers=config.edge_workers,
        num_batches=-(-config.num_examples // config.batch_size),
        summary_writer=writer, progress=terminal,
        log=None if terminal else log, log_every=log_every or LOG_EVERY)
    results.update(
        name=name, source={"kind": predictor.kind, "path": predictor.path,
                           "signature": config.signature},
        dataset=config.dataset, split=config.split, seed=config.seed,
        image_size=list(size), full_resolution=True,
        parameters=predictor.parameters)
    if config.image_summaries:
        results["pr_curves"] = write_pr_curves(
            results["tasks"], config.output_dir, name, writer)
    rows = [(name, results_table.merge_rows([results]))]
    reference = None
    if config.references:
        ref_tasks = multitask_score.load_task_results(config.references)
        if not set(tasks) & set(ref_tasks):
            raise ValueError(f"The reference files have results for "
                             f"{sorted(ref_tasks)}, none of the evaluated "
                             f"tasks {tasks}: no dm.")
        rows.append(("single-task reference",
                     {"tasks": ref_tasks, "parameters": None}))
        reference = "single-task reference"
        dm, per_task = multitask_score.delta_m(
            {t: results["tasks"][t] for t in tasks if t in ref_tasks},
            ref_tasks)
        results["dm"] = {"value": dm, "per_task": per_task,
                         "references": list(config.references)}
    path = write_json(os.path.join(config.output_dir, "results.json"),
                      results)
    return {**results, "json": path,
            "table": results_table.format_markdown(rows, reference, tasks)}


LOG_EVERY = 10  # Batches between `log` lines of `evaluate`.
# Threads scoring edge maps beside the network (`evaluate`'s default).
# benchmarks/bench_eval_overlap.py, 2 cores, NYUD size: 0.92 of the time of
# scoring in the loop with 1 thread, 0.76 with 2.
EDGE_WORKERS = 2


def _progress_bar(target):
    import keras  # pylint: disable=import-outside-toplevel
    return keras.utils.Progbar(target, unit_name="batch",
                               verbose=1 if sys.stdout.isatty() else 2)


def evaluate(predictor, dataset, tasks=None, dataset_name="synthetic",
             num_classes=None, edge_max_dist=None, num_batches=None,
             summary_writer=None, max_images=3, progress=True, log=None,
             log_every=LOG_EVERY, edge_workers=None):
    """Benchmark metrics of `predictor` on `dataset`.

    Args:
        predictor: a `predictors.Predictor`.
        dataset: iterable of `(images, {task: labels})` batches; images
            may be padded (centred) beyond their labels' size: each
            prediction is cut back to its labels' size before scoring
            (`crop_to_labels`).
        tasks: tasks to score (default: all of the predictor's).
        dataset_name: picks the edge tolerance (`edge_ods.MAX_DIST`).
        num_classes: {task: classes}; default: the predictor's.
        edge_max_dist: overrides the edge tolerance.
        num_batches: for the progress bar.
        summary_writer: a `tf.summary` writer; the first batch's panels
            (input | truth | prediction) are written with it.
        max_images: panels written per task.
        progress: a Keras progress bar.
        log: optional `log(str)`: a line every `log_every` batches (images
            so far, seconds, images/s), for runs without a terminal.
        edge_workers: threads scoring edge maps while the network runs the
            next batch (None: `EDGE_WORKERS`; 0: in the loop). The scores
            are the same; "metric_seconds_per_image" then counts only the
            time the loop waited for them.

    Returns:
        {"tasks": {task: metrics}, "headline": {task: {"metric", "value",
        "lower_is_better"}}, "num_examples", "seconds" and
        "metric_seconds_per_image" (time spent in each task's metric).
    """
    tasks = list(predictor.tasks if tasks is None else tasks)
    for task in tasks:
        if task not in predictor.tasks:
            raise ValueError(f"Task {task!r} is not predicted by "
                             f"{predictor.path!r}; it has {predictor.tasks}.")
    classes = {**predictor.num_classes, **(num_classes or {})}
    if edge_workers is None:
        edge_workers = EDGE_WORKERS
    metrics = {t: task_metrics.make_task_metric(
        t, classes, dataset_name, edge_max_dist, edge_workers)
        for t in tasks}
    try:
        return _evaluate(predictor, dataset, tasks, metrics, num_batches,
                         summary_writer, max_images, progress, log, log_every)
    finally:  # After an error: no thread left scoring (a no-op otherwise).
        for metric in metrics.values():
            if hasattr(metric, "close"):
                metric.close(collect=False)


def _evaluate(predictor, dataset, tasks, metrics, num_batches,
              summary_writer, max_images, progress, log, log_every):
    bar = _progress_bar(num_batches) if progress else None
    started, count, timing = time.time(), 0, {t: 0.0 for t in tasks}
    for i, (images, labels) in enumerate(dataset):
        images = np.asarray(images, np.float32)
        _check_input_size(predictor, images)
        out = predictor.predict(images)
        for task in tasks:
            truth = np.asarray(labels[task])
            out[task] = crop_to_labels(out[task], truth.shape[1:3])
            tic = time.time()
            metrics[task].update(truth, out[task])
            timing[task] += time.time() - tic
        if i == 0 and summary_writer is not None:
            first = np.asarray(labels[tasks[0]]) if tasks else images
            image_summaries.write_task_images(
                summary_writer, 0,
                crop_to_labels(images[:max_images], first.shape[1:3]),
                {t: np.asarray(labels[t])[:max_images] for t in tasks},
                {t: out[t][:max_images] for t in tasks}, tasks)
        count += len(images)
        if bar is not None:
            bar.update(i + 1)
        if log is not None and (i + 1) % log_every == 0:
            elapsed = time.time() - started
            log(f"Evaluating {predictor.kind}: {count} images in "
                f"{elapsed:.0f} s ({count / elapsed:.2f} images/s).")
    if count == 0:
        raise ValueError("The evaluation split is empty.")
    results = {}
    for task in tasks:
        tic = time.time()
        results[task] = metrics[task].result()
        timing[task] += time.time() - tic
    seconds = time.time() - started
    return {
        "tasks": results,
        "headline": headline_table(results),
        "num_examples": count,
        "seconds": round(seconds, 2),
        "metric_seconds_per_image": {t: round(v / count, 4)
                                     for t, v in timing.items()},
    }


def crop_to_labels(prediction, size):
    """The original-size window of a prediction on a padded image: the
    centred placement of the padding (the authors' `util.save_img`)."""
    prediction = np.asarray(prediction)
    padded = prediction.shape[1:3]
    if tuple(padded) == tuple(size):
        return prediction
    if padded[0] < size[0] or padded[1] < size[1]:
        raise ValueError(f"A prediction of {padded[0]}x{padded[1]} is "
                         f"smaller than its labels, {size[0]}x{size[1]}.")
    top, left = crop_offsets(padded, size)
    return prediction[:, top:top + size[0], left:left + size[1]]


def _check_input_size(predictor, images):
    size = predictor.image_size
    if not predictor.runs(images.shape[1:3]):
        raise ValueError(
            f"{predictor.path!r} takes {size[0]}x{size[1]} images; this "
            "evaluation runs the network on whole images (the authors' "
            "protocol: padded to at least the evaluation size, never "
            f"cropped), here {images.shape[1]}x{images.shape[2]}. Export "
            "with --dynamic_image_size (export.py) to evaluate the export "
            "this way.")


def headline_table(task_results):
    """{task: {"metric", "value", "lower_is_better"}} of the headline
    metrics (`task_metrics.HEADLINE`)."""
    table = {}
    for task, metrics in task_results.items():
        head = task_metrics.headline(task)
        table[task] = {"metric": head.key, "value": metrics[head.key],
                       "lower_is_better": head.lower_is_better}
    return table


def write_pr_curves(task_results, output_dir, label=None,
                    summary_writer=None):
    """PR-curve PNGs of the edge and saliency results in `output_dir`
    (`pr_<task>.png`), also written to `summary_writer` if given. Returns
    the paths."""
    paths = {}
    for task in ("edge", "saliency"):
        if task not in task_results:
            continue
        image = pr_curve_plot.draw_pr_curves(
            [pr_curve_plot.task_pr_series(task, task_results[task], label)],
            title=f"{task} precision-recall")
        os.makedirs(output_dir, exist_ok=True)
        paths[task] = pr_curve_plot.write_png(
            os.path.join(output_dir, f"pr_{task}.png"), image)
        if summary_writer is not None:
            import tensorflow as tf  # pylint: disable=import-outside-toplevel
            with summary_writer.as_default():
                tf.summary.image(f"{task}/pr_curve", image[None], 0)
            summary_writer.flush()
    return paths


def write_json(path, data):
    """Writes `data` as indented JSON (atomically: temp file, rename)."""
    return atomic_files.write_json(path, data, indent=1)
