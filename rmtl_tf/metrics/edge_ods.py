"""Edge detection scores as the BSDS / seism boundary benchmarks compute
them: ODS F, OIS F and AP.

Per image and per threshold t (99 of them, 0.01 ... 0.99, as the multi-task
survey's seism runs use):

1. binarize the prediction, `prob >= t`, and thin it to one-pixel strokes
   (`bwmorph(.., 'thin', Inf)`, see `boundary_thinning`); the ground truth
   is thinned once;
2. match predicted to ground-truth boundary pixels one to one within the
   tolerance (`max_dist` x image diagonal, see `boundary_matching`);
3. count: cntP matched predicted pixels of sumP predicted, cntR matched
   ground-truth pixels of sumR ground truth.

Over the dataset: precision(t) = sum cntP / sum sumP, recall(t) = sum cntR /
sum sumR (seism's conventions when a sum is 0: no ground truth gives recall
1, precision 0; no prediction gives recall 0, precision 1);
F = 2PR / (P + R).

- ODS F: the best F over thresholds of the dataset-level counts (one
  threshold for the whole dataset);
- OIS F: each image at its own best threshold, counts summed, then F;
- AP: precision interpolated linearly at recall 0, 0.01, ..., 1 over the
  recall range the curve covers, summed / 100 (seism's `general_ap`).

Pixels whose ground truth is 255 (ignore) are removed from both maps.

As the RCM authors' evaluation (`util.save_img`, then seism reading the
PNGs), the probabilities are scored as read back from an 8-bit PNG
(`png_round_trip`), and the tolerance is a fraction of the diagonal of the
map scored: the original image, since evaluation runs at full resolution
(`evaluation.full_resolution`).
"""

import collections
import concurrent.futures

import numpy as np

from rmtl_tf.metrics import (boundary_matching, boundary_thinning,
                             png_round_trip)

IGNORE_LABEL = 255
DEFAULT_THRESHOLDS = tuple(np.round(np.arange(1, 100) / 100.0, 2))
# Tolerances of the benchmarks, fractions of the image diagonal.
MAX_DIST = {"pascal_context": 0.0075, "nyud": 0.011, "synthetic": 0.011}


def precision_recall(cnt_r, sum_r, cnt_p, sum_p):
    """Precision and recall arrays from counts, with seism's conventions."""
    cnt_r, sum_r, cnt_p, sum_p = (np.asarray(a, np.float64)
                                  for a in (cnt_r, sum_r, cnt_p, sum_p))
    recall = np.where(sum_r > 0, cnt_r / np.maximum(sum_r, 1), 1.0)
    precision = np.where(sum_r > 0,
                         np.where(sum_p > 0, cnt_p / np.maximum(sum_p, 1),
                                  1.0), 0.0)
    recall = np.where((sum_r > 0) & (sum_p == 0), 0.0, recall)
    return precision, recall


def f_measure(precision, recall):
    precision, recall = np.asarray(precision), np.asarray(recall)
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(
        total > 0, total, 1.0), 0.0)


def average_precision(precision, recall):
    """seism's `general_ap`: precision interpolated at recall 0:0.01:1."""
    # MATLAB's `unique` (first occurrence): one precision per recall value,
    # that of the lowest threshold reaching it.
    recall, first = np.unique(np.asarray(recall, np.float64),
                              return_index=True)
    precision = np.asarray(precision, np.float64)[first]
    if recall.size < 2:
        return 0.0
    grid = np.round(np.arange(101) / 100.0, 2)
    inside = (grid >= recall[0]) & (grid <= recall[-1])
    return float(np.interp(grid[inside], recall, precision).sum() / 100.0)


def image_counts(prob, gt, max_dist, thresholds=DEFAULT_THRESHOLDS,
                 thin_prediction=True, thin_ground_truth=True):
    """(K, 4) counts [cntR, sumR, cntP, sumP] of one image per threshold.

    Args:
        prob: (H, W) boundary probabilities in [0, 1].
        gt: (H, W) ground truth: 1 boundary, 0 not, 255 ignored.
    """
    prob, gt = np.asarray(prob, np.float32), np.asarray(gt)
    if prob.shape != gt.shape or prob.ndim != 2:
        raise ValueError("Edge prediction and ground truth must be (H, W) "
                         f"maps of one shape. Received {prob.shape} and "
                         f"{gt.shape}.")
    valid = gt != IGNORE_LABEL
    gt_map = (gt > 0.5) & valid
    if thin_ground_truth:
        gt_map = boundary_thinning.thin(gt_map)
    gt_distance = boundary_matching.distance_to(gt_map)
    sum_r = int(gt_map.sum())
    counts = np.zeros((len(thresholds), 4), np.int64)
    previous = None
    for k, t in enumerate(thresholds):
        binary = (prob >= t) & valid
        if previous is not None and np.array_equal(binary, previous[0]):
            counts[k] = previous[1]
            continue
        pred = boundary_thinning.thin(binary) if thin_prediction else binary
        matched_pred, matched_gt = boundary_matching.correspond_pixels(
            pred, gt_map, max_dist, gt_distance=gt_distance)
        counts[k] = (matched_gt.sum(), sum_r, matched_pred.sum(), pred.sum())
        previous = (binary, counts[k].copy())
    return counts


class EdgeODS:
    """Streaming ODS F / OIS F / AP of boundary predictions.

    Args:
        max_dist: match tolerance, a fraction of the image diagonal
            (`MAX_DIST`: 0.0075 PASCAL-Context, 0.011 NYUD).
        thresholds: probability thresholds (default 0.01 ... 0.99).
        thin_prediction / thin_ground_truth: thin the binarized maps first,
            as the benchmarks do.
        png_round_trip: score the probabilities as read back from an 8-bit
            PNG (`uint8 / 255`), as the authors' seism runs do.
        workers: 0 scores each image in `update`; N > 0 scores them in N
            background threads while the caller goes on (TensorFlow
            releases the GIL while the network runs its next batch), at
            most `2 * N` images waiting; `result` collects them in order.
            The same counts either way.
    """

    def __init__(self, max_dist=0.0075, thresholds=DEFAULT_THRESHOLDS,
                 thin_prediction=True, thin_ground_truth=True,
                 png_round_trip=True, workers=0):
        boundary_matching.tolerance_pixels((1, 1), max_dist)  # Validates.
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds or any(not 0 < t <= 1 for t in thresholds):
            raise ValueError("`thresholds` must be non-empty, in (0, 1]. "
                             f"Received: thresholds={thresholds}")
        self.max_dist = max_dist
        self.thresholds = thresholds
        self.thin_prediction = thin_prediction
        self.thin_ground_truth = thin_ground_truth
        self.png_round_trip = png_round_trip
        if isinstance(workers, bool) or not isinstance(workers, int) or (
                workers < 0):
            raise ValueError("`workers` must be an integer >= 0. Received: "
                             f"workers={workers!r}")
        self.workers = workers
        self.counts = []  # One (K, 4) array per image.
        self._pool = None
        self._pending = collections.deque()  # Futures, oldest first.

    def update(self, y_true, prediction):
        """`y_true`, `prediction`: (B, H, W[, 1]) labels and probabilities."""
        y_true, prediction = _squeeze(y_true), _squeeze(prediction)
        if y_true.shape != prediction.shape:
            raise ValueError("Edge labels and predictions differ in shape: "
                             f"{y_true.shape} vs {prediction.shape}.")
        if self.png_round_trip:
            prediction = png_round_trip.to_uint8(prediction) / 255.0
        for gt, prob in zip(y_true, prediction):
            if not self.workers:
                self.counts.append(image_counts(
                    prob, gt, self.max_dist, self.thresholds,
                    self.thin_prediction, self.thin_ground_truth))
                continue
            # Copies: the caller may reuse its buffers before a thread runs.
            args = (np.array(prob), np.array(gt), self.max_dist,
                    self.thresholds, self.thin_prediction,
                    self.thin_ground_truth)
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="edge_ods")
            self._pending.append(self._pool.submit(image_counts, *args))
            self._collect(keep=2 * self.workers)

    def _collect(self, keep):
        """Waits for the oldest images, in order, until `keep` are left."""
        while len(self._pending) > keep:
            self.counts.append(self._pending.popleft().result())

    def close(self, collect=True):
        """Ends the threads. `collect`: first wait for the images still
        being scored and keep their counts; False drops those not started
        (after an error elsewhere)."""
        try:
            if collect:
                self._collect(keep=0)
        finally:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None

    def result(self):
        """ods_f/ois_f/ap and the PR curve (precision, recall per threshold).
        """
        self.close()
        if not self.counts:
            raise ValueError("EdgeODS.result() before any update().")
        per_image = np.stack(self.counts)  # (N, K, 4)
        total = per_image.sum(0)
        precision, recall = precision_recall(*total.T)
        f = f_measure(precision, recall)
        best = int(np.argmax(f))
        image_f = f_measure(*precision_recall(*np.moveaxis(per_image, -1, 0)))
        ois = per_image[np.arange(len(per_image)), image_f.argmax(1)].sum(0)
        ois_p, ois_r = precision_recall(*ois)
        return {
            "ods_f": float(f[best]),
            "ods_threshold": self.thresholds[best],
            "ods_precision": float(precision[best]),
            "ods_recall": float(recall[best]),
            "ois_f": float(f_measure(ois_p, ois_r)),
            "ap": average_precision(precision, recall),
            "max_dist": self.max_dist,
            "thresholds": list(self.thresholds),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
        }


def _squeeze(x):
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError("Edge maps must be (B, H, W) or (B, H, W, 1). "
                         f"Received shape {x.shape}.")
    return x
