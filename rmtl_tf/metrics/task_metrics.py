"""Which benchmark metric scores each task, and which number heads it.

`HEADLINE` is the table the papers report (and the multi-task score dm
uses): one metric per task with its direction.
"""

import collections

from rmtl_tf.metrics import depth, edge_ods, normals, saliency, segmentation

Headline = collections.namedtuple("Headline",
                                  ["key", "label", "lower_is_better"])

HEADLINE = {
    "semseg": Headline("miou", "mIoU", False),
    "human_parts": Headline("miou", "mIoU", False),
    "saliency": Headline("max_f", "maxF", False),
    "normals": Headline("mean", "mean error (deg)", True),
    "depth": Headline("rmse", "RMSE (m)", True),
    "edge": Headline("ods_f", "ODS F", False),
}


def headline(task):
    """The `Headline` of `task`, with a clear error for unknown tasks."""
    if task not in HEADLINE:
        raise ValueError(f"Unknown task {task!r}. Expected one of "
                         f"{sorted(HEADLINE)}.")
    return HEADLINE[task]


def make_task_metric(task, num_classes=None, dataset="synthetic",
                     edge_max_dist=None, edge_workers=0):
    """The benchmark metric of `task` (see `rmtl_tf.metrics`).

    Args:
        task: a task name.
        num_classes: {task: classes} for semseg / human_parts (human_parts
            defaults to 7).
        dataset: picks the edge tolerance (`edge_ods.MAX_DIST`).
        edge_max_dist: overrides the edge tolerance (fraction of the image
            diagonal).
        edge_workers: threads scoring edge maps in the background
            (`edge_ods.EdgeODS`); 0 scores them in `update`.
    """
    headline(task)
    if task in ("semseg", "human_parts"):
        classes = (num_classes or {}).get(task)
        if classes is None and task == "human_parts":
            classes = 7
        if classes is None:
            raise ValueError(f"Task {task!r} needs its number of classes. "
                             f"Received: num_classes={num_classes}")
        return segmentation.SegmentationMetric(
            classes, skip_uniform_images=task == "human_parts")
    if task == "saliency":
        return saliency.SaliencyMetric()
    if task == "normals":
        return normals.NormalsMetric()
    if task == "depth":
        return depth.DepthMetric()
    if edge_max_dist is None:
        if dataset not in edge_ods.MAX_DIST:
            raise ValueError(f"No edge tolerance for dataset {dataset!r}; "
                             "pass edge_max_dist. Known: "
                             f"{sorted(edge_ods.MAX_DIST)}.")
        edge_max_dist = edge_ods.MAX_DIST[dataset]
    return edge_ods.EdgeODS(max_dist=edge_max_dist, workers=edge_workers)
