"""Tests of `rmtl_tf/export/serving_client.py` (and `local_serving.py`,
the in-process stand-in for TF Serving): request payloads built against
the signatures, REST and gRPC round trips, clear errors at every step."""

import json
import os
import re

import numpy as np
import pytest

from rmtl_tf.export import export_metadata, serving_client
from rmtl_tf.export.local_serving import LocalServing
from rmtl_tf.export.runners import SavedModelRunner

TASKS = ("semseg", "depth")
SIGNATURES = ["depth", "semseg", "serving_default"]
# The session TF Serving runs and the TF2 function differ by float
# rounding (graph rewrites): measured max |diff| 1e-6.
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}

try:
    import tensorflow_serving.apis  # pylint: disable=unused-import
    HAS_SERVING_API = True
except ImportError:
    HAS_SERVING_API = False
needs_serving_api = pytest.mark.skipif(
    not HAS_SERVING_API, reason="pip install --no-deps tensorflow-serving-api")


@pytest.fixture(scope="module")
def export(exported):
    return exported(TASKS)


@pytest.fixture(scope="module")
def signatures(export):
    return serving_client.signatures_from_saved_model(
        export[1]["saved_model"])


def test_signatures_from_saved_model(signatures):
    assert sorted(signatures) == SIGNATURES
    assert signatures["depth"].inputs == {"image": ("float32",
                                                    [-1, 32, 32, 3])}
    assert signatures["serving_default"].outputs == {
        "semseg": ("float32", [-1, 32, 32, 6]),
        "depth": ("float32", [-1, 32, 32, 1])}


def test_rest_payload(signatures, image):
    image = serving_client.check_request(image, "semseg", signatures)
    body = json.loads(json.dumps(serving_client.rest_request(image,
                                                             "semseg")))
    assert body["signature_name"] == "semseg"
    instances = np.asarray(body["instances"], np.float32)
    # Row format: one instance per image, each [H, W, 3]; exact floats.
    assert instances.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(instances, image)


@needs_serving_api
def test_grpc_payload(signatures, image):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    request = serving_client.grpc_request(image, "depth", "rmtl", version=3)
    assert request.model_spec.name == "rmtl"
    assert request.model_spec.signature_name == "depth"
    assert request.model_spec.version.value == 3
    tensor = request.inputs["image"]
    assert tf.dtypes.as_dtype(tensor.dtype) == tf.float32
    assert [d.size for d in tensor.tensor_shape.dim] == [2, 32, 32, 3]
    assert list(request.inputs) == list(signatures["depth"].inputs)
    np.testing.assert_array_equal(tf.make_ndarray(tensor), image)


@pytest.mark.parametrize("image,signature,message", [
    (np.zeros((1, 32, 32, 3), np.float32), "sky",
     "Unknown signature 'sky'. Available: " + str(SIGNATURES)),
    (np.zeros((1, 32, 32, 3), np.uint8), "depth", "received dtype uint8"),
    (np.zeros((32, 32, 3), np.float32), "depth",
     "takes an image of shape ['batch', 32, 32, 3]"),
    (np.zeros((1, 32, 32, 4), np.float32), "depth", "received shape "
     "[1, 32, 32, 4]"),
])
def test_requests_are_checked(signatures, image, signature, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        serving_client.check_request(image, signature, signatures)


def test_rest_response_formats():
    one = {"predictions": [[[1.0]], [[2.0]]]}
    np.testing.assert_array_equal(
        serving_client.rest_predictions(one, ["depth"])["depth"],
        [[[1.0]], [[2.0]]])
    many = {"predictions": [{"a": [1.0], "b": 2.0}, {"a": [3.0], "b": 4.0}]}
    parsed = serving_client.rest_predictions(many, ["a", "b"])
    np.testing.assert_array_equal(parsed["a"], [[1.0], [3.0]])
    np.testing.assert_array_equal(parsed["b"], [2.0, 4.0])
    with pytest.raises(serving_client.ServingError, match="bad thing"):
        serving_client.rest_predictions({"error": "bad thing"}, ["a"])


# -- Served in-process ---------------------------------------------------------

@pytest.fixture(scope="module")
def server(export):
    base = os.path.dirname(export[1]["saved_model"])
    with LocalServing(base, "rmtl",
                      grpc_port=0 if HAS_SERVING_API else None) as running:
        yield running


@pytest.fixture(scope="module")
def expected(export, image):
    runner = SavedModelRunner(export[1]["saved_model"])
    return {s: runner(image, s) for s in SIGNATURES}


def _clients(server):
    clients = [serving_client.RestClient(server.rest_url, "rmtl")]
    if HAS_SERVING_API:
        clients.append(serving_client.GrpcClient(server.grpc_target, "rmtl"))
    return clients


def test_clients_run_every_signature(server, image, expected):
    for client in _clients(server):
        assert sorted(client.signatures) == SIGNATURES
        for signature in SIGNATURES:
            outputs = client.predict(image, signature)
            assert sorted(outputs) == sorted(expected[signature])
            for name, value in outputs.items():
                np.testing.assert_allclose(
                    value, expected[signature][name],
                    err_msg=f"{type(client).__name__} {signature}/{name}",
                    **TOLERANCE)


def test_clients_check_before_sending(server):
    for client in _clients(server):
        with pytest.raises(ValueError, match="Unknown signature 'sky'"):
            client.predict(np.zeros((1, 32, 32, 3), np.float32), "sky")
        with pytest.raises(ValueError, match="received dtype float64"):
            client.predict(np.zeros((1, 32, 32, 3)), "depth")


def test_server_errors_are_clear(server):
    """What a client that checks nothing (curl) gets back."""
    rest = serving_client.RestClient(server.rest_url, "rmtl")
    with pytest.raises(serving_client.ServingError, match=re.escape(
            "HTTP 400: assertion failed: [image must be float32 [batch, 32, "
            "32, 3] (RGB pixels in [0, 255]); received shape] [1 64 64 3]")):
        rest._call(f"{rest.base}:predict", serving_client.rest_request(  # pylint: disable=protected-access
            np.zeros((1, 64, 64, 3), np.float32), "depth"))
    with pytest.raises(serving_client.ServingError,
                       match="HTTP 404: Servable not found"):
        serving_client.RestClient(server.rest_url, "other")
    if HAS_SERVING_API:
        grpc_client = serving_client.GrpcClient(server.grpc_target, "rmtl")
        request = serving_client.grpc_request(
            np.zeros((1, 32, 32, 3), np.uint8), "depth", "rmtl")
        with pytest.raises(serving_client.ServingError, match=(
                "INVALID_ARGUMENT: Expects arg.0. to be float but uint8")):
            grpc_client._call(grpc_client.stub.Predict, request)  # pylint: disable=protected-access


@needs_serving_api
def test_models_config_parses(export):
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=import-outside-toplevel
    path = export[1]["models_config"]
    config = text_format.Parse(open(path, encoding="utf-8").read(),
                               model_server_config_pb2.ModelServerConfig())
    entries = config.model_config_list.config
    # The multi-task model and the folded depth (see conftest).
    assert [e.name for e in entries] == ["rmtl", "rmtl_depth_folded"]
    for entry in entries:
        assert entry.base_path == (f"{export_metadata.SERVING_ROOT}/"
                                   f"{entry.name}")
        assert entry.model_platform == "tensorflow"
        assert entry.model_version_policy.latest.num_versions == 2
    example = os.path.join(os.path.dirname(__file__), "..", "..",
                           "examples", "serving", "models.config")
    text_format.Parse(open(example, encoding="utf-8").read(),
                      model_server_config_pb2.ModelServerConfig())
