"""What a `.tflite` file holds: signatures, weight bytes, op types.

Reads the flatbuffer with LiteRT's schema (`ai_edge_litert`), no
interpreter: for export summaries, size budgets and quantization checks.
"""

import numpy as np


def _schema():
    from ai_edge_litert import schema_py_generated  # pylint: disable=import-outside-toplevel
    return schema_py_generated


def load(path):
    """The file's `ModelT` (flatbuffers object API)."""
    with open(path, "rb") as f:
        return _schema().ModelT.InitFromPackedBuf(f.read(), 0)


def constant_bytes(model):
    """Bytes of constant data (weights and small operands) in the file.

    Buffers are deduplicated by the converter: a bank shared by every
    signature is one buffer, counted once.
    """
    return sum(len(b.data) for b in model.buffers if b.data is not None)


def _names(enum):
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def op_name(model, op):
    code = model.operatorCodes[op.opcodeIndex]
    # Builtin codes above 127 live in `builtinCode` only.
    return _names(_schema().BuiltinOperator)[
        max(code.builtinCode, code.deprecatedBuiltinCode)]


def _float_ops_of(model, graph):
    float32 = _schema().TensorType.FLOAT32
    found = set()
    for op in graph.operators:
        name = op_name(model, op)
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        tensors = [i for i in list(op.inputs) + list(op.outputs) if i >= 0]
        if any(graph.tensors[i].type == float32 for i in tensors):
            found.add(name)
    return found


def float_ops(model):
    """Sorted names of ops computing in float (a float32 input or output
    other than the quantize/dequantize ops at the file's edges)."""
    return sorted(set().union(*(_float_ops_of(model, graph)
                                for graph in model.subgraphs)))


def float_ops_by_signature(model):
    """{signature key: sorted names of its ops computing in float}."""
    return {_text(sig.signatureKey): sorted(_float_ops_of(
        model, model.subgraphs[sig.subgraphIndex]))
        for sig in model.signatureDefs}


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def weight_types(model):
    """{tensor type name: bytes} of constant tensors (weights)."""
    names = _names(_schema().TensorType)
    sizes = {}
    seen = set()
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            data = model.buffers[tensor.buffer].data
            if data is None or tensor.buffer in seen:
                continue
            seen.add(tensor.buffer)
            kind = names[tensor.type]
            sizes[kind] = sizes.get(kind, 0) + len(data)
    return sizes


def signature_summary(interpreter):
    """Lines describing each signature of a LiteRT `Interpreter`:
    name, inputs with dtype and shape (-1: any), outputs."""
    lines = []
    for name, io in sorted(interpreter.get_signature_list().items()):
        runner = interpreter.get_signature_runner(name)
        inputs = []
        for key, detail in sorted(runner.get_input_details().items()):
            shape = [int(s) for s in detail["shape_signature"]]
            inputs.append(f"{key}: {np.dtype(detail['dtype']).name} "
                          f"{shape}")
        lines.append(f"  {name}({', '.join(inputs)}) -> "
                     f"{', '.join(sorted(io['outputs']))}")
    return lines
