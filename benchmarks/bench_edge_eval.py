"""Seconds per image of the edge benchmark (ODS/OIS/AP) at NYUD's size.

Ground truth: the edge labels of synthetic scenes at 425x560 (thinned, as
the protocol does). Predictions: what an edge network outputs, a blurred
and noisy version of the truth (soft bands several pixels wide, weaker
texture edges, background noise), so low thresholds give thick maps that
thinning must reduce. 99 thresholds, tolerance 0.011 (NYUD). Prints JSON.

  python benchmarks/bench_edge_eval.py            # 4 images
  python benchmarks/bench_edge_eval.py --images=8
"""

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy import ndimage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rmtl_tf.data import synthetic_scenes  # pylint: disable=wrong-import-position
from rmtl_tf.metrics import boundary_thinning, edge_ods  # pylint: disable=wrong-import-position


def fake_prediction(gt, rng):
    """A plausible edge probability map for the boundary map `gt`."""
    band = ndimage.gaussian_filter(gt.astype(np.float32), 2.0)
    band /= max(band.max(), 1e-6)
    texture = ndimage.gaussian_filter(rng.random(gt.shape), 3.0)
    texture = np.abs(ndimage.sobel(texture)) * 8
    prob = 0.85 * band + 0.3 * np.clip(texture, 0, 1) + \
        0.05 * rng.random(gt.shape)
    return np.clip(prob, 0, 1).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--height", type=int, default=425)
    parser.add_argument("--width", type=int, default=560)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scenes = synthetic_scenes.make_scenes(range(args.images), args.height,
                                          args.width)
    gts = scenes["edge"][..., 0]
    preds = np.stack([fake_prediction(g > 0.5, rng) for g in gts])
    metric = edge_ods.EdgeODS(max_dist=edge_ods.MAX_DIST["nyud"])
    started = time.perf_counter()
    for gt, pred in zip(gts, preds):
        metric.update(gt[None], pred[None])
    total = time.perf_counter() - started
    result = metric.result()
    started = time.perf_counter()
    for pred in preds:
        for t in metric.thresholds:
            boundary_thinning.thin(pred >= t)
    thinning = time.perf_counter() - started
    print(json.dumps({
        "image_size": [args.height, args.width],
        "images": args.images,
        "thresholds": len(metric.thresholds),
        "max_dist": metric.max_dist,
        "seconds_per_image": round(total / args.images, 3),
        "thinning_seconds_per_image": round(thinning / args.images, 3),
        "ground_truth_pixels_per_image": int((gts > 0.5).sum()
                                             / args.images),
        "ods_f": round(result["ods_f"], 4),
        "ois_f": round(result["ois_f"], 4),
        "ap": round(result["ap"], 4),
        "nyud_val_minutes_654_images": round(total / args.images * 654 / 60,
                                             1),
    }, indent=1))


if __name__ == "__main__":
    main()
