"""An in-process stand-in for TF Serving, to test clients without Docker.

Not a production server: it serves one model base path the way
`tensorflow_model_server` does, to exercise the exported signatures and
the clients end to end:

- it loads each version with the TF1 SavedModel loader into a session
  and runs a signature by its tensor names through the C API
  (`Session::Run`), feeding the request tensor unchecked: TF Serving
  does no shape check either (tensorflow/serving#1436), so what a bad
  request meets is the graph's own input check;
- REST: `GET /v1/models/<name>[/versions/<v>][/metadata]` and
  `POST .../<name>[/versions/<v>]:predict` in row ("instances") or
  columnar ("inputs") format, errors as `{"error": ...}` with HTTP 400;
- gRPC (needs `tensorflow-serving-api`): `PredictionService.Predict` and
  `GetModelMetadata`.

```python
with LocalServing("exports/rmtl", "rmtl") as server:
    client = RestClient(server.rest_url, "rmtl")
```
"""

import http.server
import json
import os
import re
import threading

import numpy as np
import tensorflow as tf

from rmtl_tf.export import serving_client


class ServingRequestError(ValueError):
    """A request the server rejects (HTTP 400, gRPC INVALID_ARGUMENT)."""


class _Version:
    """One loaded SavedModel version: a graph, a session, signatures."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(
                self.session, ["serve"], path)
        self.signature_defs = meta_graph.signature_def
        self.signatures = serving_client.signatures_from_defs(
            self.signature_defs)

    def run(self, signature, inputs):
        if signature not in self.signature_defs:
            raise ServingRequestError(
                f"Serving signature key \"{signature}\" not found.")
        sig = self.signature_defs[signature]
        unknown = sorted(set(inputs) - set(sig.inputs))
        if unknown or len(inputs) != len(sig.inputs):
            raise ServingRequestError(
                f"input size does not match signature: {len(inputs)}!="
                f"{len(sig.inputs)} len({sorted(inputs)}) != "
                f"len({sorted(sig.inputs)})")
        feeds = {self.graph.get_tensor_by_name(
            sig.inputs[k].name)._as_tf_output(): v  # pylint: disable=protected-access
            for k, v in inputs.items()}
        names = sorted(sig.outputs)
        fetches = [self.graph.get_tensor_by_name(
            sig.outputs[k].name)._as_tf_output() for k in names]  # pylint: disable=protected-access
        try:
            # The C API call `Session.run` makes after its Python-side
            # shape and dtype checks, which TF Serving does not have.
            values = self.session._call_tf_sessionrun(  # pylint: disable=protected-access
                None, feeds, fetches, [], None)
        except tf.errors.OpError as e:
            raise ServingRequestError(e.message) from None
        return dict(zip(names, values))


class LocalServing:
    """Serves `<model_base_path>/<version>/` as `model_name`; see the
    module docstring. Ports 0 pick free ones; `grpc_port=None` skips
    gRPC."""

    def __init__(self, model_base_path, model_name, rest_port=0,
                 grpc_port=0):
        self.model_base_path = model_base_path
        self.model_name = model_name
        self._versions = {}
        self._lock = threading.Lock()
        self._rest = http.server.ThreadingHTTPServer(
            ("127.0.0.1", rest_port), _rest_handler(self))
        self.rest_url = f"http://127.0.0.1:{self._rest.server_address[1]}"
        self._grpc, self.grpc_target = None, None
        if grpc_port is not None:
            self._grpc, port = _grpc_server(self, grpc_port)
            self.grpc_target = f"127.0.0.1:{port}"

    def available_versions(self):
        return sorted(int(d) for d in os.listdir(self.model_base_path)
                      if re.fullmatch(r"\d+", d))

    def version(self, version=None):
        """The loaded `_Version` (the latest one by default)."""
        available = self.available_versions()
        if version is None and available:
            version = available[-1]
        if version not in available:
            raise LookupError(f"Servable not found for request: "
                              f"{self.model_name} version {version}")
        with self._lock:
            if version not in self._versions:
                self._versions[version] = _Version(os.path.join(
                    self.model_base_path, str(version)))
            return self._versions[version]

    def start(self):
        threading.Thread(target=self._rest.serve_forever,
                         daemon=True).start()
        if self._grpc is not None:
            self._grpc.start()
        return self

    def stop(self):
        self._rest.shutdown()
        self._rest.server_close()
        if self._grpc is not None:
            self._grpc.stop(None)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _rest_inputs(body, signature):
    dtypes = {k: v[0] for k, v in signature.inputs.items()}
    if "instances" in body:
        rows = body["instances"]
        if rows and isinstance(rows[0], dict):
            columns = {k: [row.get(k) for row in rows] for k in rows[0]}
        elif len(dtypes) == 1:
            columns = {next(iter(dtypes)): rows}
        else:
            raise ServingRequestError("instances must be objects keyed by "
                                      "input name for several inputs")
    elif "inputs" in body:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            columns = {next(iter(dtypes)): columns}
    else:
        raise ServingRequestError("Missing 'instances' or 'inputs' key")
    try:
        return {k: np.asarray(v, dtype=dtypes.get(k, "float32"))
                for k, v in columns.items()}
    except (ValueError, TypeError) as e:
        raise ServingRequestError(f"Failed to process input: {e}") from None


def _rest_handler(server):
    route = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?"
                       r"(/metadata|:predict)?$")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # Quiet.
            pass

        def _reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, post):
            match = route.match(self.path)
            if not match or match.group(1) != server.model_name:
                return self._reply(404, {"error": "Servable not found for "
                                         f"request: {self.path}"})
            _, version, action = match.groups()
            try:
                loaded = server.version(None if version is None
                                        else int(version))
                if action == ":predict" and post:
                    return self._reply(200, self._predict(loaded))
                if action == "/metadata" and not post:
                    return self._reply(200, _rest_metadata(server, loaded))
                if action is None and not post:
                    return self._reply(200, {"model_version_status": [
                        {"version": str(v), "state": "AVAILABLE"}
                        for v in server.available_versions()]})
                return self._reply(405, {"error": "Unsupported request"})
            except LookupError as e:
                return self._reply(404, {"error": str(e)})
            except ServingRequestError as e:
                return self._reply(400, {"error": str(e)})

        def _predict(self, loaded):
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError as e:
                raise ServingRequestError(f"JSON Parse error: {e}") from None
            name = body.get("signature_name", "serving_default")
            signature = loaded.signatures.get(name)
            if signature is None:
                raise ServingRequestError(
                    f"Serving signature name: \"{name}\" not found in "
                    "signature def")
            outputs = loaded.run(name, _rest_inputs(body, signature))
            if "instances" in body:
                if len(outputs) == 1:
                    return {"predictions": next(iter(outputs.values()))
                            .tolist()}
                batch = len(next(iter(outputs.values())))
                return {"predictions": [{k: v[i].tolist() for k, v in
                                         outputs.items()}
                                        for i in range(batch)]}
            return {"outputs": {k: v.tolist() for k, v in outputs.items()}}

        def do_GET(self):  # pylint: disable=invalid-name
            self._handle(post=False)

        def do_POST(self):  # pylint: disable=invalid-name
            self._handle(post=True)

    return Handler


def _rest_metadata(server, loaded):
    from google.protobuf import json_format  # pylint: disable=import-outside-toplevel
    defs = {k: json_format.MessageToDict(v,
                                         preserving_proto_field_name=True)
            for k, v in loaded.signature_defs.items()}
    return {"model_spec": {"name": server.model_name},
            "metadata": {"signature_def": {"signature_def": defs}}}


def _grpc_server(server, port):
    from concurrent import futures  # pylint: disable=import-outside-toplevel
    import grpc  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
        get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc)

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def _loaded(self, spec, context):
            try:
                return server.version(spec.version.value
                                      if spec.HasField("version") else None)
            except LookupError as e:
                context.abort(grpc.StatusCode.NOT_FOUND, str(e))

        def Predict(self, request, context):  # pylint: disable=invalid-name
            loaded = self._loaded(request.model_spec, context)
            name = request.model_spec.signature_name or "serving_default"
            inputs = {k: tf.make_ndarray(v) for k, v in
                      request.inputs.items()}
            try:
                outputs = loaded.run(name, inputs)
            except ServingRequestError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(request.model_spec)
            for k, v in outputs.items():
                response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
            return response

        def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
            loaded = self._loaded(request.model_spec, context)
            defs = get_model_metadata_pb2.SignatureDefMap()
            for k, v in loaded.signature_defs.items():
                defs.signature_def[k].CopyFrom(v)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = server.model_name
            response.metadata["signature_def"].Pack(defs)
            return response

    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        Servicer(), grpc_server)
    bound = grpc_server.add_insecure_port(f"127.0.0.1:{port}")
    return grpc_server, bound
