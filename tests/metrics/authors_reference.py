"""The RCM authors' evaluation, restated in numpy for the tests.

Restates github.com/menelaoskanakis/RCM `evaluation/*.py` at commit 2667e55
(their HEAD) on in-memory (label, prediction) pairs, one pair per image
(sizes may differ), in our channel-last layout. Predictions are the
network's activated outputs; each function first applies the file round
trip the authors' `test.py` puts them through (`util.save_img`,
`utils/prediction_decoding.py`), then scores them as their code does.
Labels are taken as their loaders give them (float32; class ids as ints).

Behaviours kept:

- `to_png8`: `scipy.misc.toimage(x, cmin=0, cmax=1)` (its `bytescale`) in
  the float32 of the network output: uint8(clip(x * 255, 0, 255) + 0.5).
- `eval_depth`: the .mat round trip is lossless float32. Label 0 -> 1e-9
  and prediction <= 0 -> 1e-9, after which their valid mask (label != 0)
  keeps every pixel. Per image, RMSE and natural-log RMSE are
  sqrt(float32 sum / pixel count); `rmse` is their mean over images,
  `log_rmse` their median over images.
- `eval_saliency`: prediction -> 8-bit PNG -> png / 255 (float32). At each
  threshold t, in order, `gt` is replaced by gt > t (their loop reassigns
  it) and the mask is png / 255 > t. Comparisons are in float32, as numpy
  1.x did for their float32 arrays against a float64 threshold, so 51/255
  is not > 0.2. Per image: IoU 1 when truth and mask are both empty, else
  |gt & mask| / |gt | mask| (float32 denominator); precision
  tp / (tp + fp + 1e-12), recall tp / (tp + fn + 1e-12). Per threshold:
  means over images, F = 2PR / (P + R + 1e-12). `max_f` = max F, `miou` =
  max of the mean IoUs (the two maxima may be at different thresholds).
- `eval_semseg`: scores argmaxed; the PNG of class ids is lossless below
  256. tp / fp / fn per class over pixels with label != 255, summed over
  the split; IoU = tp / max(tp + fp + fn, 1e-8), so a class absent from
  truth and prediction has IoU 0; `miou` is the mean over all classes.
- `eval_human_parts`: as `eval_semseg`, but an image whose label holds a
  single value, 0 or 255, is skipped; an image of only 0 and 255 is
  scored. `num_images` counts the scored images.
- `eval_normals`: an image whose label is all zeros is skipped. Prediction
  -> (n + 1) / 2 -> 8-bit RGB PNG -> 2 * png / 255 - 1 (float32) ->
  v / (|v| + 1e-12). Valid pixels: label norm != 0; prediction and label
  are zeroed outside them and the label normalized the same way. Angle =
  degrees(arccos(clip(dot, -1, 1))), all in float32. Statistics over the
  valid pixels of the whole split: mean and median (float32), rmse =
  mean(angle^2)^0.5 (float32 mean, float64 root, as numpy 1.x promoted
  it); `within_t` = 100 * fraction with angle < t.

Where the authors would get nan (no image, no valid normal), these raise
ValueError instead.
"""

import numpy as np

IGNORE = 255
SAL_THRESHOLDS = np.linspace(0.2, 0.9, 15)
_F32 = np.float32


def to_png8(x):
    """Pixel values of `scipy.misc.toimage(x, cmin=0, cmax=1)` (float32)."""
    x = np.asarray(x, _F32)
    return (np.clip(x * _F32(255.0), 0, 255) + _F32(0.5)).astype(np.uint8)


def _ids_to_png8(ids):
    """`scipy.misc.toimage(ids, cmin=0, cmax=255)` of integer class ids."""
    scaled = np.asarray(ids).astype(np.int64) * 1.0  # float64, as bytescale
    return (np.clip(scaled, 0, 255) + 0.5).astype(np.uint8)


def _hw(a):
    """(H, W, 1) -> (H, W); other shapes unchanged."""
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


def _check(label, pred):
    if label.shape != pred.shape:
        raise ValueError("Prediction and ground truth dimension mismatch: "
                         f"{pred.shape} vs {label.shape}.")


def _nonempty(pairs):
    pairs = list(pairs)
    if not pairs:
        raise ValueError("No images.")
    return pairs


def eval_depth(pairs):
    """{"rmse", "log_rmse"} of (label, prediction) depth maps in metres."""
    rmses, log_rmses = [], []
    for label, pred in _nonempty(pairs):
        label = _hw(np.array(label, _F32))  # copies: edited in place below
        pred = _hw(np.array(pred, _F32))
        _check(label, pred)
        label[label == 0] = 1e-9
        pred[pred <= 0] = 1e-9
        # Their valid mask comes after the substitution: all pixels.
        count = np.sum(label != 0)  # int64; float32 sum / int64 -> float64
        log_rmses.append(
            np.sqrt(np.sum((np.log(label) - np.log(pred))**2) / count))
        rmses.append(np.sqrt(np.sum((label - pred)**2) / count))
    return {"rmse": float(np.mean(rmses)),
            "log_rmse": float(np.median(log_rmses))}


def _jaccard(gt, mask):
    """IoU of two boolean maps; 1 when both are empty."""
    if not gt.any() and not mask.any():
        return 1.0
    return np.sum(gt & mask) / np.sum(gt | mask, dtype=_F32)


def _precision_recall(gt, mask):
    tp = np.sum(mask & gt)
    fn = np.sum(~mask & gt)
    fp = np.sum(mask & ~gt)
    return tp / (tp + fp + 1e-12), tp / (tp + fn + 1e-12)


def eval_saliency(pairs, thresholds=SAL_THRESHOLDS):
    """{"max_f", "miou"} of (binary label, probability) pairs."""
    pairs = _nonempty(pairs)
    thresholds = np.asarray(thresholds, np.float64)
    iou, prec, rec = (np.zeros((len(pairs), thresholds.size))
                      for _ in range(3))
    for i, (label, prob) in enumerate(pairs):
        read_back = to_png8(_hw(np.asarray(prob))).astype(_F32) / _F32(255.0)
        gt = _hw(np.array(label, _F32))
        _check(gt, read_back)
        for j, t in enumerate(thresholds):
            t = _F32(t)
            gt = (gt > t).astype(_F32)  # reassigned: the next t sees this
            g, m = gt.astype(bool), read_back > t
            iou[i, j] = _jaccard(g, m)
            prec[i, j], rec[i, j] = _precision_recall(g, m)
    mean_p, mean_r = prec.mean(0), rec.mean(0)
    f = 2 * mean_p * mean_r / (mean_p + mean_r + 1e-12)
    return {"max_f": float(np.max(f)), "miou": float(np.max(iou.mean(0)))}


def _class_ids(pred):
    pred = np.asarray(pred)
    if pred.ndim == 3 and pred.shape[-1] > 1:
        pred = np.argmax(pred, axis=-1)
    return _hw(pred)


def _segmentation(pairs, n_classes, skip_single_bg_or_ignore):
    tp, fp, fn = (np.zeros(n_classes, np.int64) for _ in range(3))
    scored = 0
    for label, pred in _nonempty(pairs):
        gt = _hw(np.asarray(label)).astype(np.int64)
        if skip_single_bg_or_ignore:
            values = np.unique(gt)
            if values.size == 1 and values[0] in (0, IGNORE):
                continue
        mask = _ids_to_png8(_class_ids(pred)).astype(_F32)
        _check(gt, mask)
        scored += 1
        valid = gt != IGNORE
        for c in range(n_classes):
            g, m = gt == c, mask == c
            tp[c] += np.sum(g & m & valid)
            fp[c] += np.sum(~g & m & valid)
            fn[c] += np.sum(g & ~m & valid)
    iou = [float(tp[c]) / max(float(tp[c] + fp[c] + fn[c]), 1e-8)
           for c in range(n_classes)]
    return {"miou": float(np.mean(iou)), "per_class_iou": iou,
            "num_images": scored}


def eval_semseg(pairs, n_classes):
    """{"miou", "per_class_iou"}; `n_classes` counts the background."""
    out = _segmentation(pairs, n_classes, False)
    del out["num_images"]
    return out


def eval_human_parts(pairs, n_classes=7):
    """{"miou", "per_class_iou", "num_images"} (scored images)."""
    return _segmentation(pairs, n_classes, True)


def _unit(v):
    """Their `normalize`: v / (|v| + 1e-12) per pixel, in float32."""
    return v / (np.linalg.norm(v, ord=2, axis=2)[..., None] + _F32(1e-12))


def eval_normals(pairs):
    """Angle statistics (degrees) of (label, unit normal) (H, W, 3) pairs."""
    angles = []
    for label, pred in _nonempty(pairs):
        label = np.array(label, _F32)
        if not np.any(label):
            continue  # all-zero label: skipped
        png = to_png8((np.asarray(pred, _F32) + _F32(1.0)) / _F32(2.0))
        pred = _unit(_F32(2.0) * png.astype(_F32) / _F32(255.0) - _F32(1.0))
        _check(label, pred)
        valid = np.linalg.norm(label, ord=2, axis=2) != 0
        pred[~valid] = 0
        label[~valid] = 0
        label = _unit(label)
        cos = np.clip(np.sum(pred * label, axis=2), _F32(-1), _F32(1))
        angles.append(np.rad2deg(np.arccos(cos))[valid])
    if not angles or not sum(a.size for a in angles):
        raise ValueError("No valid normals.")
    a = np.concatenate(angles)
    return {"mean": float(np.mean(a)), "median": float(np.median(a)),
            # numpy 1.x: float32 scalar ** 0.5 is float64.
            "rmse": float(np.float64(np.mean(a**2))**0.5),
            "within_11.25": float(np.mean(a < 11.25) * 100),
            "within_22.5": float(np.mean(a < 22.5) * 100),
            "within_30": float(np.mean(a < 30) * 100)}
