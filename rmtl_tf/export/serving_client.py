"""Clients of a TF Serving model server: REST and gRPC.

Both read the signatures from the server first (its metadata API) and
check each request against them before sending: unknown signature, wrong
dtype, rank, channels or size are one clear `ValueError` on the client,
not a server error deep in the graph (TF Serving checks no shapes).

REST (no dependency beyond numpy):

```python
client = RestClient("http://localhost:8501", "rmtl")
depth = client.predict(image, "depth")["depth"]  # image: [1, H, W, 3]
```

gRPC (`pip install --no-deps tensorflow-serving-api`, see docs/export.md,
"TF Serving"):

```python
client = GrpcClient("localhost:8500", "rmtl")
both = client.predict(image)                      # serving_default
```

The request builders (`rest_request`, `grpc_request`) and parsers are
separate functions, so the payloads can be checked without a server.
"""

import dataclasses
import json
import os
import urllib.error
import urllib.request

import numpy as np

from rmtl_tf.export.runners import check_image
from rmtl_tf.export.signatures import DEFAULT_SIGNATURE, INPUT_NAME

# TensorFlow DataType enum names -> numpy dtypes (the ones we serve).
DTYPES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_INT32": "int32",
          "DT_INT64": "int64", "DT_UINT8": "uint8", "DT_HALF": "float16"}
DTYPE_ENUM = {"DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_UINT8": 4,
              "DT_INT64": 9, "DT_HALF": 19}


class ServingError(RuntimeError):
    """The server refused a request; the message is the server's."""


@dataclasses.dataclass
class Signature:
    """A served signature: {name: (numpy dtype name, shape)} per side;
    -1 in a shape is any size."""
    name: str
    inputs: dict
    outputs: dict


def _tensor_info(info):
    """(dtype, shape) from a TensorInfo, as proto or as JSON dict."""
    if isinstance(info, dict):
        dtype = info.get("dtype", "DT_INVALID")
        # TF Serving prints proto field names; accept JSON names too.
        shape = info.get("tensor_shape", info.get("tensorShape", {}))
        dims = [int(d.get("size", -1)) for d in shape.get("dim", [])]
        unknown = shape.get("unknown_rank", shape.get("unknownRank", False))
    else:
        from tensorflow.core.framework import types_pb2  # pylint: disable=import-outside-toplevel
        dtype = types_pb2.DataType.Name(info.dtype)
        dims = [d.size for d in info.tensor_shape.dim]
        unknown = info.tensor_shape.unknown_rank
    if isinstance(dtype, int):
        dtype = {v: k for k, v in DTYPE_ENUM.items()}.get(dtype, "DT_INVALID")
    return DTYPES.get(dtype, dtype), (None if unknown else dims)


def signatures_from_defs(signature_defs):
    """{name: Signature} from a SignatureDef map (proto map or JSON),
    without the SavedModel's internal `__saved_model_init_op`."""
    result = {}
    for name, sig in dict(signature_defs).items():
        if name.startswith("__"):
            continue
        get = (lambda k, s=sig: s.get(k) or {}) if isinstance(sig, dict) \
            else (lambda k, s=sig: getattr(s, k))
        result[name] = Signature(
            name,
            {k: _tensor_info(v) for k, v in dict(get("inputs")).items()},
            {k: _tensor_info(v) for k, v in dict(get("outputs")).items()})
    return result


def signatures_from_saved_model(path):
    """The signatures of a SavedModel directory, as TF Serving serves
    them (read from `saved_model.pb`, no graph loaded)."""
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = next(m for m in proto.meta_graphs
                 if "serve" in m.meta_info_def.tags)
    return signatures_from_defs(graph.signature_def)


def signatures_from_rest_metadata(body):
    """{name: Signature} from a REST `GET .../metadata` response."""
    try:
        defs = body["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError) as e:
        raise ServingError(f"Not a model metadata response: {body!r:.200}") \
            from e
    return signatures_from_defs(defs)


def check_request(image, signature, signatures):
    """The validated float32 image for `signature`, or a ValueError."""
    sig = signatures.get(signature)
    shape = []
    if sig is not None:
        if list(sig.inputs) != [INPUT_NAME]:
            raise ValueError(f"Signature {signature!r} takes inputs "
                             f"{sorted(sig.inputs)}, not a single "
                             f"{INPUT_NAME!r}: not an rmtl_tf export?")
        shape = sig.inputs[INPUT_NAME][1]
    return check_image(image, shape, signature, signatures)


# -- REST ------------------------------------------------------------------

def rest_request(image, signature=DEFAULT_SIGNATURE):
    """The JSON body of a row-format predict request."""
    return {"signature_name": signature,
            "instances": np.asarray(image).tolist()}


def rest_predictions(body, output_names):
    """{output: float32 array [batch, ...]} from a row-format response.

    TF Serving omits the output name when a signature has one output.
    """
    if "error" in body:
        raise ServingError(body["error"])
    rows = body["predictions"]
    if len(output_names) == 1 and not (rows and isinstance(rows[0], dict)):
        return {output_names[0]: np.asarray(rows, np.float32)}
    return {name: np.asarray([row[name] for row in rows], np.float32)
            for name in output_names}


class RestClient:
    """TF Serving's REST API (`--rest_api_port`, 8501 by default)."""

    def __init__(self, url, model_name, version=None, timeout=60):
        self.base = f"{url.rstrip('/')}/v1/models/{model_name}"
        if version is not None:
            self.base += f"/versions/{int(version)}"
        self.timeout = timeout
        self.signatures = signatures_from_rest_metadata(
            self._call(f"{self.base}/metadata"))

    def _call(self, url, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                text = json.loads(text).get("error", text)
            except ValueError:
                pass
            raise ServingError(f"HTTP {e.code}: {text}") from None

    def predict(self, image, signature=DEFAULT_SIGNATURE):
        image = check_request(image, signature, self.signatures)
        body = self._call(f"{self.base}:predict",
                          rest_request(image, signature))
        return rest_predictions(body,
                                sorted(self.signatures[signature].outputs))


# -- gRPC ------------------------------------------------------------------

def grpc_request(image, signature=DEFAULT_SIGNATURE, model_name="rmtl",
                 version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest`."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(image))
    return request


def grpc_predictions(response):
    """{output: array} from a `PredictResponse`."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


class GrpcClient:
    """TF Serving's gRPC API (`--port`, 8500 by default)."""

    def __init__(self, target, model_name, version=None, timeout=60):
        import grpc  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
            get_model_metadata_pb2, prediction_service_pb2_grpc)
        self._grpc = grpc
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(
            self.channel)
        self.model_name, self.version, self.timeout = (model_name, version,
                                                       timeout)
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = int(version)
        request.metadata_field.append("signature_def")
        response = self._call(self.stub.GetModelMetadata, request)
        defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(defs)
        self.signatures = signatures_from_defs(defs.signature_def)

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as e:
            raise ServingError(f"{e.code().name}: {e.details()}") from None

    def predict(self, image, signature=DEFAULT_SIGNATURE):
        image = check_request(image, signature, self.signatures)
        request = grpc_request(image, signature, self.model_name,
                               self.version)
        return grpc_predictions(self._call(self.stub.Predict, request))

    def close(self):
        self.channel.close()
