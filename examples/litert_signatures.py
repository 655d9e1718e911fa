"""Runs every signature of an exported .tflite file with LiteRT.

Plain LiteRT, no rmtl_tf import: what an app does with the file.

  python examples/litert_signatures.py exports/rmtl/rmtl-1.tflite
  python examples/litert_signatures.py exports/rmtl/rmtl-1-int8.tflite \
      --threads=2 --image=photo.png

XNNPACK (LiteRT's CPU delegate) is on by default: `OpResolverType.BUILTIN`
applies it to every op it supports, float and int8;
`--noxnnpack` runs the built-in kernels only, to compare.
"""

import argparse
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def load_image(path, height, width):
    """float32 [1, H, W, 3] RGB pixels in [0, 255] (what the file takes)."""
    if path is None:  # A gradient: enough to run the graph.
        y, x = np.mgrid[0:height, 0:width]
        image = np.stack([255 * x / width, 255 * y / height,
                          np.full_like(x, 128.0)], axis=-1)
        return image[None].astype(np.float32)
    import cv2  # pylint: disable=import-outside-toplevel
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(cv2.resize(bgr, (width, height)), cv2.COLOR_BGR2RGB)
    return rgb[None].astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tflite")
    parser.add_argument("--image", help="an image file; default: a "
                        "gradient")
    parser.add_argument("--size", default="",
                        help="H,W for files exported with "
                        "--dynamic_image_size (default 480,640)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--noxnnpack", action="store_true")
    args = parser.parse_args()

    interpreter = Interpreter(
        model_path=args.tflite, num_threads=args.threads,
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            if args.noxnnpack else OpResolverType.BUILTIN))
    signatures = interpreter.get_signature_list()
    print(f"{args.tflite}: {len(signatures)} signatures")
    for name, io in sorted(signatures.items()):
        runner = interpreter.get_signature_runner(name)
        detail = runner.get_input_details()["image"]
        # -1: any size (batch always; height and width when dynamic).
        _, height, width, _ = detail["shape_signature"]
        if height < 0 or width < 0:
            height, width = (int(s) for s in (args.size or "480,640")
                             .split(","))
        image = load_image(args.image, height, width)
        runner(image=image)  # Warm-up: allocates and plans once.
        start = time.perf_counter()
        outputs = runner(image=image)
        ms = 1000 * (time.perf_counter() - start)
        print(f"  {name}: inputs {io['inputs']}, {ms:.1f} ms")
        for key, value in sorted(outputs.items()):
            print(f"    {key}: {value.dtype} {list(value.shape)}, "
                  f"range [{value.min():.3g}, {value.max():.3g}]")


if __name__ == "__main__":
    main()
