"""Calls a TF Serving model server over REST and gRPC, every signature.

Against a running server (see docs/export.md, "TF Serving"):

  python examples/serving_client.py --rest=http://localhost:8501 \
      --grpc=localhost:8500 --model_name=rmtl

Without Docker, against the in-process stand-in serving an export
directory (`rmtl_tf.export.local_serving`, for trying the clients only):

  python examples/serving_client.py --local=exports/rmtl

gRPC needs `pip install --no-deps tensorflow-serving-api` (its wheel
requires the full `tensorflow`; `--no-deps` keeps tensorflow-cpu).
"""

import argparse
import contextlib

import numpy as np

from rmtl_tf.export import serving_client


def _image(signature):
    """A float32 [1, H, W, 3] image of the size `signature` takes."""
    _, shape = signature.inputs["image"]
    height, width = (s if s > 0 else 480 for s in shape[1:3])
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (1, height, width, 3)).astype(np.float32)


def run(client, label):
    print(f"{label}: signatures {sorted(client.signatures)}")
    for name in sorted(client.signatures):
        outputs = client.predict(_image(client.signatures[name]), name)
        shapes = {k: list(v.shape) for k, v in sorted(outputs.items())}
        print(f"  {name}: {shapes}")
    # A bad request is refused before it is sent, with the reason.
    try:
        client.predict(np.zeros((1, 8, 8, 3), np.uint8), "serving_default")
    except ValueError as e:
        print(f"  bad request: {e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rest", help="REST base URL, e.g. "
                        "http://localhost:8501")
    parser.add_argument("--grpc", help="gRPC target, e.g. localhost:8500")
    parser.add_argument("--model_name", default="rmtl")
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--local", help="serve this model base path "
                        "in-process instead")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        rest, grpc_target = args.rest, args.grpc
        if args.local:
            from rmtl_tf.export.local_serving import LocalServing  # pylint: disable=import-outside-toplevel
            try:
                import tensorflow_serving.apis  # pylint: disable=unused-import,import-outside-toplevel
                grpc_port = 0
            except ImportError:
                grpc_port = None
            server = stack.enter_context(
                LocalServing(args.local, args.model_name,
                             grpc_port=grpc_port))
            rest, grpc_target = server.rest_url, server.grpc_target
        if rest:
            run(serving_client.RestClient(rest, args.model_name,
                                          args.version), f"REST {rest}")
        if grpc_target:
            client = serving_client.GrpcClient(grpc_target, args.model_name,
                                               args.version)
            run(client, f"gRPC {grpc_target}")
            client.close()


if __name__ == "__main__":
    main()
