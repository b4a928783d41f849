"""IR -> ONNX ModelProto with weights; the only module that builds protobuf.

The model is pinned to ONNX IR version 8 and opset 17, which every onnxruntime since 1.14
loads (onnx 1.23 would otherwise write IR 14, which onnxruntime 1.31 refuses). Node names and
value names are the spec's layer names; every intermediate value carries netc's shape in
`value_info`, with the batch kept symbolic.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import __version__
from .errors import fail
from .ir import Graph, Value
from .weights import DEFAULT_SEED, initial_value

IR_VERSION = 8
OPSET = 17


class Builder:
    """Collects ONNX nodes as layers lower themselves; names each after the current layer."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.layer = ""
        self.count = 0

    def begin(self, layer: str) -> None:
        self.layer, self.count = layer, 0

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> None:
        # the first node of a layer carries the layer's name; any helper nodes get a suffix
        name = self.layer if self.count == 0 else f"{self.layer}/{op}{self.count}"
        self.count += 1
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))


def _value_info(v: Value) -> onnx.ValueInfoProto:
    dims = [d if isinstance(d, str) else int(d) for d in v.shape]
    return helper.make_tensor_value_info(v.name, TensorProto.FLOAT, dims)


def _tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(array.shape)
    t.raw_data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return t


def emit(graph: Graph, seed: int = DEFAULT_SEED, weights=None) -> onnx.ModelProto:
    """Build the ONNX model of a checked graph. `weights` maps names to arrays to use instead
    of initial values (all float32, shapes already checked)."""
    b = Builder()
    initializers = []
    for node in graph.nodes:
        names = {}
        for w in node.weights:
            value = weights[w.name] if weights and w.name in weights else initial_value(w, seed)
            initializers.append(_tensor(w.name, value))
            names[w.spec.param] = w.name
        b.begin(node.name)
        node.layer.lower(b, list(node.inputs), names, node.output)
    outputs = {v.name for v in graph.outputs}
    value_info = [_value_info(n.output) for n in graph.nodes if n.output.name not in outputs]
    g = helper.make_graph(
        b.nodes, graph.name,
        inputs=[_value_info(v) for v in graph.inputs],
        outputs=[_value_info(v) for v in graph.outputs],
        initializer=initializers, value_info=value_info,
        doc_string=graph.description or None,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="netc", producer_version=__version__)
    model.ir_version = IR_VERSION
    return model


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic bytes: the same model always serialises identically."""
    return model.SerializeToString(deterministic=True)


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never half:
    a temporary file in the same folder, flushed to disk, then renamed over the target."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                   suffix=".netc-tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise fail("E603", f"cannot write '{path}': {e.strerror or e}", None) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
