"""Response initialization cost: time per layer and peak memory; prints JSON.

  python benchmarks/bench_response_init.py              # ResNet-18, 64 images
  python benchmarks/bench_response_init.py --quick      # tiny smoke test

Per layer: the time to fold the layer's responses into the streaming
statistics (float64 sums and outer products) and the eigendecomposition;
the forward passes of the pretrained network are timed once for all layers.
Peak memory is the process's maximum resident size; it does not grow with
the number of images (the statistics are c_out x c_out per layer).
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    import keras  # pylint: disable=import-outside-toplevel
    from rmtl_tf.data import synthetic_dataset  # pylint: disable=import-outside-toplevel
    from rmtl_tf.models import bank, response_init  # pylint: disable=import-outside-toplevel

    backbone, size, batch = (("resnet_tiny", (64, 64), 4) if args.quick
                             else ("resnet18", (256, 320), 8))
    images = args.images if not args.quick else 8
    plain = bank.build_plain_backbone(backbone, 1.0)
    weights = bank.weights_from_plain(plain)
    data = synthetic_dataset.synthetic_arrays("train", images, size)["image"]
    convs = [l for l in plain.layers if type(l).__name__ == "Conv2D"
             and l.kernel_size != (1, 1)]
    probe = keras.Model(plain.input, {l.name: l.output for l in convs})
    stats = {l.name: response_init.ResponseStatistics(l.filters)
             for l in convs}
    update_s = {name: 0.0 for name in stats}
    forward_s = 0.0
    for start in range(0, images, batch):
        x = data[start:start + batch].astype("float32")
        t = time.perf_counter()
        out = {k: keras.ops.convert_to_numpy(v)
               for k, v in probe(x, training=False).items()}
        forward_s += time.perf_counter() - t
        for name, responses in out.items():
            t = time.perf_counter()
            stats[name].update(responses)
            update_s[name] += time.perf_counter() - t
    layers = {}
    for name, stat in stats.items():
        t = time.perf_counter()
        _, variances, _ = stat.pca()
        layers[name] = {
            "channels": int(variances.shape[0]),
            "pixels": int(stat.count),
            "statistics_s": round(update_s[name], 3),
            "eigh_s": round(time.perf_counter() - t, 4),
            "variance_top10_fraction": round(float(
                variances[:10].sum() / variances.sum()), 3),
        }
    report = {
        "backbone": backbone, "image_size": list(size), "images": images,
        "forward_s_all_layers": round(forward_s, 2),
        "statistics_s_all_layers": round(sum(update_s.values()), 2),
        "peak_memory_mb": round(resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "layers": layers,
    }
    # Sanity: the end-to-end function agrees with the per-layer loop.
    ri = response_init.compute(weights, [data[:batch].astype("float32")],
                               backbone, 1.0, log=lambda *_: None)
    report["layers_computed"] = len([k for k in ri if k.endswith(
        "/components")])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
