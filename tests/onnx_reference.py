"""The oracle for netc/proto.py: the same model built with onnx.helper and serialised by
protobuf itself. netc writes ONNX's wire format by hand; these bytes are what it must equal."""

from __future__ import annotations

from onnx import TensorProto, helper

import netc
from netc import proto
from netc.emit import IR_VERSION, OPSET, Lowered


def attribute_value(value):
    if isinstance(value, proto.Tensor) and value.raw is not None:
        return helper.make_tensor(value.name, value.elem_type, value.dims, value.raw, raw=True)
    if isinstance(value, proto.Tensor):
        return helper.make_tensor(value.name, value.elem_type, value.dims, list(value.int64s))
    return value


def node(n: proto.Node):
    return helper.make_node(n.op, n.inputs, n.outputs, name=n.name,
                            **{k: attribute_value(v) for k, v in n.attrs.items()})


def value_info(name: str, elem_type: int, dims):
    return helper.make_tensor_value_info(name, elem_type, list(dims))


def model(low: Lowered):
    """The onnx.ModelProto of a lowered graph, weights inline as raw data."""
    initializers = []
    for w in low.graph.weights:
        t = TensorProto()
        t.name, t.data_type = w.name, low.elem_type
        t.dims.extend(w.shape)
        t.raw_data = low.value(w).tobytes()
        initializers.append(t)
    for name, array in low.constants:  # --uint8-input's normalisation, float32
        initializers.append(helper.make_tensor(name, TensorProto.FLOAT, array.shape,
                                               array.astype("<f4").tobytes(), raw=True))
    graph = helper.make_graph(
        [node(n) for n in low.nodes], low.graph.name,
        inputs=[value_info(*v) for v in low.inputs],
        outputs=[value_info(*v) for v in low.outputs],
        initializer=initializers, value_info=[value_info(*v) for v in low.value_info],
        doc_string=low.graph.description or None)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="netc", producer_version=netc.__version__)
    m.ir_version = IR_VERSION
    helper.set_model_props(m, dict(low.metadata))
    return m


def model_bytes(low: Lowered) -> bytes:
    return model(low).SerializeToString(deterministic=True)
