"""Evaluation time with the edge benchmark scored in background threads
(`--edge_workers`, `evaluate_lib.EDGE_WORKERS`) against in the loop.

The network is real: a ResNet-18 RCM model (semseg, depth, normals, edge;
random weights) run by `evaluate_lib.evaluate` at full resolution on
synthetic scenes, batches of 8. Its edge output is replaced by a plausible
edge map of the truth (`bench_edge_eval.fake_prediction`: an untrained
network's edge map is flat and thresholds away in no time), so the edge
scoring does the work a trained model gives it. Each worker count runs once
per round, the rounds alternate the order; the scores must be identical.
Prints JSON: seconds per image of each worker count and their ratios to
`edge_workers=0`.

  python benchmarks/bench_eval_overlap.py                  # NYUD size
  python benchmarks/bench_eval_overlap.py --images=8 --rounds=1 --quick
"""

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

# pylint: disable=wrong-import-position
import rmtl_tf
from bench_edge_eval import fake_prediction
from rehearsal import _cpu
from rmtl_tf.data import synthetic_scenes
from rmtl_tf.evaluation import evaluate_lib, predictors
from rmtl_tf.metrics import edge_ods

TASKS = ["semseg", "depth", "normals", "edge"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="a tiny network (smoke test; times meaningless)")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    scenes = synthetic_scenes.make_scenes(range(args.images), args.height,
                                          args.width)
    rng = np.random.default_rng(0)
    edges = np.stack([fake_prediction(g[..., 0] > 0.5, rng)
                      for g in scenes["edge"]])[..., None]
    batches = []
    for i in range(0, args.images, args.batch_size):
        labels = {t: scenes[t][i:i + args.batch_size] for t in TASKS}
        batches.append((scenes["image"][i:i + args.batch_size], labels,
                        edges[i:i + args.batch_size]))
    model = rmtl_tf.build_model(
        "resnet_tiny" if args.quick else "resnet18", TASKS,
        num_classes={"semseg": int(scenes["semseg"].max()) + 1},
        image_size=(args.height, args.width))
    network = predictors.model_predictor(model)
    state = {}

    def predict(images):
        out = network.predict(images)
        out["edge"] = state["edges"].pop(0)
        return out

    predictor = predictors.Predictor(predict, TASKS, network.image_size,
                                     "keras", "bench", network.parameters,
                                     network.num_classes)
    network.predict(batches[0][0])  # Traced once, outside the timings.
    seconds = {w: [] for w in workers}
    scores = {}
    for r in range(args.rounds):
        for w in (workers if r % 2 == 0 else workers[::-1]):
            state["edges"] = [b[2] for b in batches]
            started = time.perf_counter()
            result = evaluate_lib.evaluate(
                predictor, [(b[0], b[1]) for b in batches], TASKS,
                progress=False, edge_workers=w)
            seconds[w].append(time.perf_counter() - started)
            scores.setdefault(w, result["tasks"]["edge"]["ods_f"])
    if len(set(scores.values())) != 1:
        raise AssertionError(f"Edge scores differ by worker count: {scores}")
    per_image = {w: min(s) / args.images for w, s in seconds.items()}
    base = per_image[workers[0]]
    print(json.dumps({
        "cpu": _cpu(), "cores": os.cpu_count(),
        "image_size": [args.height, args.width], "images": args.images,
        "batch_size": args.batch_size, "tasks": TASKS,
        "network": "resnet_tiny" if args.quick else "resnet18",
        "edge_max_dist": edge_ods.MAX_DIST["synthetic"],
        "seconds_per_image": {str(w): round(v, 3)
                              for w, v in per_image.items()},
        "all_runs_seconds": {str(w): [round(x, 1) for x in s]
                             for w, s in seconds.items()},
        f"time_ratio_to_edge_workers_{workers[0]}": {
            str(w): round(v / base, 3) for w, v in per_image.items()},
        "edge_ods_f": scores[workers[0]],
    }, indent=1))


if __name__ == "__main__":
    main()
