"""`export(..., precision="bfloat16")`: signatures that compute in bfloat16."""

import os

import numpy as np
import pytest
import tensorflow as tf

from rmtl_tf import predictions
from rmtl_tf.export import export_lib
from conftest import SMALL, build

TASKS = ("semseg", "depth")


@pytest.fixture(scope="module")
def bf16_export(tmp_path_factory):
    model = build(TASKS, SMALL)
    result = export_lib.export(model, str(tmp_path_factory.mktemp("bf16")),
                               precision="bfloat16")
    return model, result


def _conv_dtypes(fn):
    graph = fn.graph
    dtypes = set()
    for op in graph.get_operations():
        if op.type == "StatefulPartitionedCall":
            name = op.get_attr("f").name
            for inner in graph.as_graph_def().library.function:
                if inner.signature.name == name:
                    dtypes |= {node.attr["T"].type for node in inner.node_def
                               if node.op == "Conv2D"}
    return {tf.dtypes.as_dtype(d).name for d in dtypes}


def test_signatures_compute_in_bfloat16_and_serve_float32(bf16_export):
    model, result = bf16_export
    loaded = tf.saved_model.load(result["saved_model"])
    assert set(loaded.signatures) == {"serving_default", *TASKS}
    image = np.random.default_rng(0).uniform(
        0, 255, (2, 32, 32, 3)).astype(np.float32)
    reference = model(image, training=False)
    for task in TASKS:
        fn = loaded.signatures[task]
        assert _conv_dtypes(fn) == {"bfloat16"}
        out = fn(image=tf.constant(image))[task]
        assert out.dtype == tf.float32
        expected = np.asarray(predictions(task, reference[task]))
        # bfloat16 keeps 8 bits of mantissa: about 2 decimal digits.
        scale = np.abs(expected).max()
        np.testing.assert_allclose(out.numpy(), expected, rtol=0,
                                   atol=0.05 * scale)
        assert not np.array_equal(out.numpy(), expected)


def test_weights_are_stored_once_in_float32(bf16_export):
    model, result = bf16_export
    checkpoint = os.path.join(result["saved_model"], "variables",
                              "variables")
    reader = tf.train.load_checkpoint(checkpoint)
    stored = {name: dtype for name, dtype in
              reader.get_variable_to_dtype_map().items()
              if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
              and not name.startswith("rmtl_metadata/")}
    assert len(stored) == len(model.variables)
    assert set(stored.values()) == {tf.float32}


def test_tflite_file_stays_float32(bf16_export):
    _, result = bf16_export
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    interpreter = Interpreter(model_path=result["tflite"])
    runner = interpreter.get_signature_runner("semseg")
    out = runner(image=np.zeros((1, 32, 32, 3), np.float32))["semseg"]
    assert out.dtype == np.float32
    assert not any(name.startswith(".tmp-") for name in
                   os.listdir(os.path.dirname(result["saved_model"])))


def test_unknown_precision(tmp_path):
    model = build(["semseg"], SMALL)
    with pytest.raises(ValueError, match="precision='float8'"):
        export_lib.export(model, str(tmp_path), precision="float8")
