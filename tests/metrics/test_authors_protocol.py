"""Our streaming metrics against the authors' evaluation protocol.

`authors_reference` restates the RCM authors' `evaluation/*.py` (with the
PNG / .mat round trip their predictions go through); each metric here must
match it to 1e-6 on random and edge-case images of different sizes, fed
one image at a time or as a batch. The `test_*_conventions_differ` tests
check that the test data tells the authors' convention from the naive one
(so a metric with the naive convention cannot pass by accident).
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import authors_reference as ref  # pylint: disable=wrong-import-position

from rmtl_tf.metrics import (  # pylint: disable=wrong-import-position
    depth, normals, saliency, task_metrics)

SIZES = ((7, 9), (12, 5), (16, 16))
SEEDS = (0, 1, 2)
# Seed 4: pixels read back as exactly 51/255, 102/255, ... (the thresholds
# 0.2, 0.4, ...) decide maxF, so float64 threshold comparisons fail it.
SAL_SEEDS = (0, 1, 2, 4)
TOL = {"rtol": 1e-6, "atol": 1e-6}


def _close(ours, expected, keys, **tol):
    for key in keys:
        np.testing.assert_allclose(np.asarray(ours[key], np.float64),
                                   np.asarray(expected[key], np.float64),
                                   err_msg=key, **{**TOL, **tol})


def _run(metric, pairs, batch=False):
    """Feeds `pairs` one image at a time (B = 1), or as one batch."""
    if batch:
        metric.update(np.stack([p[0] for p in pairs]),
                      np.stack([p[1] for p in pairs]))
    else:
        for label, pred in pairs:
            metric.update(label[None], pred[None])
    return metric.result()


def _unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


# --- Cases: lists of (label, prediction) in our layout. ---

def depth_pairs(seed, sizes=SIZES):
    """Metres, (H, W, 1); ~15% label 0, some predictions 0 or negative."""
    rng = np.random.default_rng(seed)
    pairs = []
    for h, w in sizes:
        label = rng.uniform(0.5, 10.0, (h, w, 1))
        label[rng.random(label.shape) < 0.15] = 0.0
        pred = label * rng.uniform(0.6, 1.5, label.shape) + rng.normal(
            0, 0.3, label.shape)
        pred[rng.random(pred.shape) < 0.05] = 0.0
        pred[rng.random(pred.shape) < 0.05] *= -1.0
        pairs.append((label.astype(np.float32), pred.astype(np.float32)))
    return pairs


def depth_edge_pairs():
    """An all-0 label image (with 0 / negative predictions) among others."""
    rng = np.random.default_rng(10)
    pred = rng.uniform(0.5, 5.0, (6, 8, 1)).astype(np.float32)
    pred[0, :3] = 0.0
    pred[1, :3] = -2.0
    return [(np.zeros((6, 8, 1), np.float32), pred)] + depth_pairs(11)


def depth_all_valid_pairs():
    rng = np.random.default_rng(12)
    pairs = []
    for h, w in SIZES:
        label = rng.uniform(0.5, 10.0, (h, w, 1))
        pred = label * rng.uniform(0.7, 1.3, label.shape)
        pairs.append((label.astype(np.float32), pred.astype(np.float32)))
    return pairs


def saliency_pairs(seed, sizes=SIZES):
    """Binary truth, probabilities loosely following it, (H, W, 1)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for h, w in sizes:
        truth = (rng.random((h, w, 1)) < 0.4).astype(np.float32)
        prob = np.clip(0.45 * truth + 0.65 * rng.random(truth.shape), 0, 1)
        pairs.append((truth, prob.astype(np.float32)))
    return pairs


def saliency_edge_pairs():
    """Empty truth with an empty mask at every threshold (IoU 1); empty
    truth with a mask that empties above 0.55; probabilities on 8-bit
    boundaries (k / 255 at the thresholds 0.2, 0.4, 0.6, 0.8, and halfway
    between two levels)."""
    rng = np.random.default_rng(20)
    both_empty = (np.zeros((7, 9, 1), np.float32),
                  rng.uniform(0, 0.19, (7, 9, 1)).astype(np.float32))
    prob = np.zeros((12, 5, 1), np.float32)
    prob[3:8, 1:4] = 0.55
    empty_truth = (np.zeros((12, 5, 1), np.float32), prob)
    levels = np.array([50, 51, 52, 101, 102, 103, 152, 153, 154, 203, 204,
                       205, 0, 255])
    codes = np.concatenate([levels / 255.0, (levels[:-2] + 0.5) / 255.0])
    boundary = rng.choice(codes, (16, 16, 1)).astype(np.float32)
    truth = (rng.random((16, 16, 1)) < 0.5).astype(np.float32)
    return [both_empty, empty_truth, (truth, boundary)]


def saliency_at_boundary_pairs(value=51 / 255):
    """The truth is exactly the pixels predicted `value`. At 51/255 (= 0.2)
    the authors' float32 `png / 255 > 0.2` is false; 0.2015 goes to the
    PNG as 51, so it is false too. Nothing is ever predicted salient."""
    truth = np.zeros((6, 7, 1), np.float32)
    truth[1:4, 2:6] = 1.0
    return [(truth, truth * np.float32(value))]


def semseg_pairs(seed, n_classes, sizes=SIZES):
    """Labels (H, W) int32, ~10% 255; scores (H, W, C) loosely following
    them. Class 2 is in neither truth nor prediction, C-2 only in the
    truth (never argmaxed), C-1 only in the prediction."""
    rng = np.random.default_rng(seed)
    in_truth = [c for c in range(n_classes) if c not in (2, n_classes - 1)]
    pairs = []
    for h, w in sizes:
        label = rng.choice(in_truth, (h, w))
        label[rng.random((h, w)) < 0.1] = 255
        scores = rng.normal(0, 1, (h, w, n_classes))
        scores += 1.5 * (label[..., None] == np.arange(n_classes))
        scores[..., [2, n_classes - 2]] = -10.0
        pairs.append((label.astype(np.int32), scores.astype(np.float32)))
    return pairs


def human_parts_pairs(seed):
    """Part images plus one all-0 image, one all-255 and one of only 0 and
    255 (scored by the authors), each with parts predicted on it."""
    rng = np.random.default_rng(seed)
    pairs = semseg_pairs(seed, 7)
    for fill in (np.zeros, lambda s: np.full(s, 255)):
        label = fill((9, 6)).astype(np.int32)
        pairs.append((label, rng.normal(0, 1, (9, 6, 7)).astype(np.float32)))
    mixed = np.where(rng.random((8, 8)) < 0.5, 0, 255).astype(np.int32)
    pairs.append((mixed, rng.normal(0, 1, (8, 8, 7)).astype(np.float32)))
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def normals_pairs(seed, sizes=SIZES, zero_fraction=0.15):
    """NYUD-like labels 2 * png / 255 - 1 (float32) with zero-vector
    (invalid) pixels; unit predictions near them, some far off."""
    rng = np.random.default_rng(seed)
    pairs = []
    for h, w in sizes:
        true = _unit(rng.normal(0, 1, (h, w, 3)))
        png = np.round((true + 1) / 2 * 255).astype(np.uint8)
        label = (2.0 * png.astype(np.float32) / 255.0 - 1.0).astype(
            np.float32)
        label[rng.random((h, w)) < zero_fraction] = 0.0
        noise = rng.normal(0, 0.25, (h, w, 3))
        noise[rng.random((h, w)) < 0.2] *= 8.0
        pairs.append((label, _unit(true + noise)))
    return pairs


def normals_edge_pairs():
    """An all-0 label image (skipped) among partly-0 ones."""
    rng = np.random.default_rng(30)
    skipped = (np.zeros((5, 4, 3), np.float32),
               _unit(rng.normal(0, 1, (5, 4, 3))))
    return [skipped] + normals_pairs(31, zero_fraction=0.5)


# --- Depth ---

DEPTH_KEYS = ("rmse", "log_rmse")


@pytest.mark.parametrize("seed", SEEDS)
def test_depth_random(seed):
    pairs = depth_pairs(seed)
    _close(_run(depth.DepthMetric(), pairs), ref.eval_depth(pairs),
           DEPTH_KEYS)


@pytest.mark.parametrize("case", ["all_zero_label", "all_valid"])
def test_depth_edge_cases(case):
    pairs = (depth_edge_pairs() if case == "all_zero_label"
             else depth_all_valid_pairs())
    _close(_run(depth.DepthMetric(), pairs), ref.eval_depth(pairs),
           DEPTH_KEYS)


def test_depth_batch_equals_per_image():
    pairs = depth_pairs(3, sizes=[(8, 6)] * 4)
    batched = _run(depth.DepthMetric(), pairs, batch=True)
    _close(batched, _run(depth.DepthMetric(), pairs), DEPTH_KEYS)
    _close(batched, ref.eval_depth(pairs), DEPTH_KEYS)


def test_depth_conventions_differ():
    pairs = depth_pairs(0)
    expected = ref.eval_depth(pairs)
    label = np.concatenate([p[0].ravel() for p in pairs]).astype(np.float64)
    pred = np.concatenate([p[1].ravel() for p in pairs]).astype(np.float64)
    valid = label > 0
    pooled_valid = np.sqrt(np.mean((label[valid] - pred[valid])**2))
    pooled_all = np.sqrt(np.mean((label - np.maximum(pred, 1e-9))**2))
    per_image_valid = np.mean(
        [np.sqrt(np.mean((l[l > 0] - p[l > 0])**2)) for l, p in pairs])
    for naive in (pooled_valid, pooled_all, per_image_valid):
        assert abs(naive - expected["rmse"]) > 1e-3
    log_rmse = [np.sqrt(np.mean((np.log(np.where(l > 0, l, 1e-9))
                                 - np.log(np.maximum(p, 1e-9)))**2))
                for l, p in pairs]
    np.testing.assert_allclose(np.median(log_rmse), expected["log_rmse"],
                               rtol=1e-5)
    assert abs(np.mean(log_rmse) - expected["log_rmse"]) > 1e-3


# --- Saliency ---

SAL_KEYS = ("max_f", "miou")


@pytest.mark.parametrize("seed", SAL_SEEDS)
def test_saliency_random(seed):
    pairs = saliency_pairs(seed)
    _close(_run(saliency.SaliencyMetric(), pairs), ref.eval_saliency(pairs),
           SAL_KEYS)


@pytest.mark.parametrize("case", ["mixed", "at_0.2", "rounds_to_0.2"])
def test_saliency_edge_cases(case):
    pairs = {"mixed": saliency_edge_pairs() + saliency_pairs(21),
             "at_0.2": saliency_at_boundary_pairs(),
             "rounds_to_0.2": saliency_at_boundary_pairs(0.2015)}[case]
    _close(_run(saliency.SaliencyMetric(), pairs), ref.eval_saliency(pairs),
           SAL_KEYS)


def test_saliency_batch_equals_per_image():
    pairs = saliency_pairs(4, sizes=[(8, 6)] * 4)
    batched = _run(saliency.SaliencyMetric(), pairs, batch=True)
    _close(batched, _run(saliency.SaliencyMetric(), pairs), SAL_KEYS)
    _close(batched, ref.eval_saliency(pairs), SAL_KEYS)


def _naive_saliency(pairs, beta2=1.0, pooled=False):
    """maxF / best mIoU on the raw probabilities in float64 (no PNG)."""
    t = ref.SAL_THRESHOLDS[:, None]
    counts = []
    for truth, prob in pairs:
        g = truth.ravel() > 0.5
        m = prob.astype(np.float64).ravel()[None] > t
        counts.append([(m & g).sum(1), (m & ~g).sum(1), (~m & g).sum(1)])
    counts = np.array(counts, np.float64)  # (images, 3, thresholds)
    if pooled:
        counts = counts.sum(0, keepdims=True)
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    p = (tp / (tp + fp + 1e-12)).mean(0)
    r = (tp / (tp + fn + 1e-12)).mean(0)
    union = tp + fp + fn
    iou = np.where(union > 0, tp / np.maximum(union, 1), 1.0).mean(0)
    f = (1 + beta2) * p * r / (beta2 * p + r + 1e-12)
    return {"max_f": f.max(), "miou": iou.max()}


def test_saliency_conventions_differ():
    pairs = saliency_edge_pairs() + saliency_pairs(21)
    expected = ref.eval_saliency(pairs)
    for naive in (_naive_saliency(pairs, beta2=0.3),
                  _naive_saliency(pairs, pooled=True)):
        assert abs(naive["max_f"] - expected["max_f"]) > 1e-3
    # PNG round trip: 0.2015 is read back as 51/255. float32 comparison
    # (the authors' numpy 1.x): 51/255 is not above 0.2. So the authors
    # never predict the truth's pixels; raw float64 scoring always does.
    for value in (0.2015, 51 / 255):
        pairs = saliency_at_boundary_pairs(value)
        assert ref.eval_saliency(pairs) == {"max_f": 0.0, "miou": 0.0}
        raw = _naive_saliency(pairs)
        assert raw["miou"] == 1.0 and raw["max_f"] > 0.99


# --- Semantic segmentation ---

SEG_KEYS = ("miou", "per_class_iou")


def _semseg_metric(n_classes):
    return task_metrics.make_task_metric("semseg", {"semseg": n_classes})


def _human_parts_metric():
    return task_metrics.make_task_metric("human_parts", {"human_parts": 7})


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [6, 21])
def test_semseg_random(seed, n_classes):
    pairs = semseg_pairs(seed, n_classes)
    _close(_run(_semseg_metric(n_classes), pairs),
           ref.eval_semseg(pairs, n_classes), SEG_KEYS)


def test_semseg_absent_classes_count_as_zero():
    pairs = semseg_pairs(5, 6)
    expected = ref.eval_semseg(pairs, 6)
    # Class 2: in neither truth nor prediction; 4: only in the truth; 5:
    # only in the prediction. All three count as 0 in the mean.
    assert [expected["per_class_iou"][c] for c in (2, 4, 5)] == [0.0] * 3
    assert min(expected["per_class_iou"][c] for c in (0, 1, 3)) > 0.1
    _close(_run(_semseg_metric(6), pairs), expected, SEG_KEYS)


def test_semseg_batch_equals_per_image():
    pairs = semseg_pairs(6, 6, sizes=[(8, 6)] * 4)
    batched = _run(_semseg_metric(6), pairs, batch=True)
    _close(batched, _run(_semseg_metric(6), pairs), SEG_KEYS)
    _close(batched, ref.eval_semseg(pairs, 6), SEG_KEYS)


def test_semseg_conventions_differ():
    pairs = semseg_pairs(0, 21)
    expected = ref.eval_semseg(pairs, 21)
    iou = np.array(expected["per_class_iou"])
    # Only classes seen in truth or prediction (nanmean convention).
    seen = np.zeros(21, bool)
    for label, scores in pairs:
        seen[np.unique(label[label != 255])] = True
        seen[np.unique(scores.argmax(-1)[label != 255])] = True
    assert not seen.all()
    assert abs(iou[seen].mean() - expected["miou"]) > 1e-3
    # Mean over images of per-image mIoU.
    per_image = np.mean([ref.eval_semseg([p], 21)["miou"] for p in pairs])
    assert abs(per_image - expected["miou"]) > 1e-3


# --- Human parts ---

HP_KEYS = ("miou", "per_class_iou", "num_images")


@pytest.mark.parametrize("seed", SEEDS)
def test_human_parts_random_with_skipped_images(seed):
    pairs = human_parts_pairs(seed)
    expected = ref.eval_human_parts(pairs)
    # All-0 and all-255 images are skipped; the 0/255 one is scored.
    assert expected["num_images"] == len(pairs) - 2
    _close(_run(_human_parts_metric(), pairs), expected, HP_KEYS)


def test_human_parts_batch_equals_per_image():
    rng = np.random.default_rng(7)
    pairs = semseg_pairs(7, 7, sizes=[(6, 5)] * 3)
    scores = rng.normal(0, 1, (6, 5, 7)).astype(np.float32)
    pairs += [(np.zeros((6, 5), np.int32), scores),
              (np.full((6, 5), 255, np.int32), scores),
              (np.where(rng.random((6, 5)) < 0.5, 0, 255).astype(np.int32),
               scores)]
    batched = _run(_human_parts_metric(), pairs, batch=True)
    _close(batched, _run(_human_parts_metric(), pairs), HP_KEYS)
    _close(batched, ref.eval_human_parts(pairs), HP_KEYS)


def test_human_parts_conventions_differ():
    pairs = human_parts_pairs(0)
    expected = ref.eval_human_parts(pairs)["miou"]
    # Scoring every image (no skip rule).
    assert abs(ref.eval_semseg(pairs, 7)["miou"] - expected) > 1e-3
    # Also skipping the images without parts (only 0 and 255).
    with_parts = [p for p in pairs if (p[0] % 255).any()]
    assert len(with_parts) == len(pairs) - 3
    assert abs(ref.eval_human_parts(with_parts)["miou"] - expected) > 1e-3


# --- Normals ---

NORMAL_KEYS = ("mean", "rmse", "within_11.25", "within_22.5", "within_30")


def _close_normals(ours, expected):
    _close(ours, expected, NORMAL_KEYS)
    _close(ours, expected, ["median"], rtol=0, atol=1e-3)


@pytest.mark.parametrize("seed", SEEDS)
def test_normals_random(seed):
    pairs = normals_pairs(seed)
    _close_normals(_run(normals.NormalsMetric(), pairs),
                   ref.eval_normals(pairs))


def test_normals_zero_labels():
    pairs = normals_edge_pairs()
    _close_normals(_run(normals.NormalsMetric(), pairs),
                   ref.eval_normals(pairs))


def test_normals_batch_equals_per_image():
    pairs = normals_pairs(8, sizes=[(8, 6)] * 4)
    batched = _run(normals.NormalsMetric(), pairs, batch=True)
    _close_normals(batched, _run(normals.NormalsMetric(), pairs))
    _close_normals(batched, ref.eval_normals(pairs))


def test_normals_conventions_differ():
    pairs = normals_pairs(0)
    expected = ref.eval_normals(pairs)
    angles = []
    for label, pred in pairs:
        valid = np.any(label != 0, axis=-1)
        t = label[valid].astype(np.float64)
        t /= np.linalg.norm(t, axis=-1, keepdims=True)
        p = pred[valid].astype(np.float64)  # raw: no PNG round trip
        angles.append(np.degrees(np.arccos(np.clip((t * p).sum(-1), -1, 1))))
    raw_mean = np.mean(np.concatenate(angles))
    per_image_mean = np.mean([a.mean() for a in angles])
    # Tolerance of the comparisons above: ~1e-6 * mean, 1e-5 degrees here.
    assert abs(raw_mean - expected["mean"]) > 1e-3
    assert abs(per_image_mean - expected["mean"]) > 1e-3
