"""The ONNX protobuf wire format, written by hand: netc's models without importing onnx.

`netc compile` spent a tenth of its time importing onnx (and protobuf) only to serialise
a model that is a few hundred plain records and a stream of weights. This module writes
those records as onnx.proto defines them (proto2: repeated scalars unpacked unless the
.proto says `packed`; fields in field-number order, as protobuf's own serialiser writes
them), so the bytes are the ones `SerializeToString(deterministic=True)` gives for the same
message; tests/test_proto.py checks that against onnx itself, message by message.

Only what netc emits is covered: nodes with int, float, string, int-list, float-list and
tensor attributes; tensors with dims, a type, a name, and raw, int64 or external data;
value infos of tensors with static or symbolic dimensions; a model's metadata_props.
"""

from __future__ import annotations

import numbers
import struct
from dataclasses import dataclass, field

# TensorProto.DataType and AttributeProto.AttributeType values (onnx.proto)
FLOAT, UINT8, INT64, FLOAT16 = 1, 2, 7, 10
ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_FLOATS, ATTR_INTS = 1, 2, 3, 4, 6, 7
EXTERNAL = 1  # TensorProto.DataLocation

# field numbers, from onnx.proto
MODEL_IR_VERSION, MODEL_PRODUCER_NAME, MODEL_PRODUCER_VERSION = 1, 2, 3
MODEL_GRAPH, MODEL_OPSET_IMPORT, MODEL_METADATA_PROPS = 7, 8, 14
GRAPH_NODE, GRAPH_NAME, GRAPH_INITIALIZER, GRAPH_DOC = 1, 2, 5, 10
GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_VALUE_INFO = 11, 12, 13
TENSOR_RAW_DATA = 9


@dataclass(frozen=True)
class Tensor:
    """A TensorProto: `int64s` are stored as int64_data, `raw` (little-endian bytes, for
    constants) as raw_data, `external` as (key, value) pairs with data_location EXTERNAL; an
    initializer's raw data is streamed by the caller (`initializer_head`)."""

    name: str
    elem_type: int
    dims: tuple[int, ...]
    int64s: tuple[int, ...] | None = None
    external: tuple[tuple[str, str], ...] = ()
    raw: bytes | None = None


@dataclass
class Node:
    """A NodeProto; attributes are written sorted by name, as onnx.helper.make_node does."""

    op: str
    inputs: list[str]
    outputs: list[str]
    name: str
    attrs: dict = field(default_factory=dict)


def varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # negative int64s take ten bytes, as two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def header(number: int, length: int) -> bytes:
    """The tag and length prefix of a length-delimited field."""
    return varint(number << 3 | 2) + varint(length)


def _bytes(number: int, data: bytes) -> bytes:
    return header(number, len(data)) + data


def _str(number: int, text: str) -> bytes:
    return _bytes(number, text.encode("utf-8"))


def _int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(int(value))


def _float(number: int, value: float) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<f", value)


def tensor(t: Tensor) -> bytes:
    """A TensorProto without raw data (`initializer_head` streams that after it)."""
    out = b"".join(_int(1, d) for d in t.dims) + _int(2, t.elem_type)
    if t.int64s:  # int64_data is [packed = true]; an empty repeated field is not written
        out += _bytes(7, b"".join(varint(v) for v in t.int64s))
    out += _str(8, t.name)
    if t.raw:
        out += _bytes(9, t.raw)
    if t.external:
        out += b"".join(_bytes(13, _str(1, k) + _str(2, v)) for k, v in t.external)
        out += _int(14, EXTERNAL)
    return out


def _attribute(name: str, value) -> bytes:
    # type inference as onnx.helper.make_attribute: bools and ints are INT, other reals FLOAT
    if isinstance(value, Tensor):
        body, kind = _bytes(5, tensor(value)), ATTR_TENSOR
    elif isinstance(value, str):
        body, kind = _str(4, value), ATTR_STRING
    elif isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"attribute {name!r}: an empty list has no ONNX type")
        if all(isinstance(v, numbers.Integral) for v in value):
            body, kind = b"".join(_int(8, v) for v in value), ATTR_INTS
        else:
            body, kind = b"".join(_float(7, float(v)) for v in value), ATTR_FLOATS
    elif isinstance(value, numbers.Integral):
        body, kind = _int(3, value), ATTR_INT
    else:
        body, kind = _float(2, float(value)), ATTR_FLOAT
    return _str(1, name) + body + _int(20, kind)


def node(n: Node) -> bytes:
    out = b"".join(_str(1, x) for x in n.inputs) + b"".join(_str(2, y) for y in n.outputs)
    out += _str(3, n.name) + _str(4, n.op)
    return out + b"".join(_bytes(5, _attribute(k, n.attrs[k])) for k in sorted(n.attrs))


def value_info(name: str, elem_type: int, dims) -> bytes:
    """A ValueInfoProto of a tensor; string dimensions are symbolic (dim_param)."""
    shape = b"".join(
        _bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, elem_type) + _bytes(2, shape)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def graph(name: str, nodes, inputs, outputs, value_infos,
          doc: str | None = None) -> tuple[bytes, bytes]:
    """A GraphProto's fields before its initializers, and after them (the caller streams
    the initializers between the two, each an `initializer_head` and its data)."""
    before = b"".join(_bytes(GRAPH_NODE, node(n)) for n in nodes) + _str(GRAPH_NAME, name)
    after = _str(GRAPH_DOC, doc) if doc else b""
    after += b"".join(_bytes(GRAPH_INPUT, value_info(*v)) for v in inputs)
    after += b"".join(_bytes(GRAPH_OUTPUT, value_info(*v)) for v in outputs)
    after += b"".join(_bytes(GRAPH_VALUE_INFO, value_info(*v)) for v in value_infos)
    return before, after


def initializer_head(head: bytes, raw: int | None) -> bytes:
    """The start of a graph's initializer field: `head` is the tensor's `tensor()` bytes,
    followed (when `raw` is a length) by the header of `raw` bytes of raw data."""
    if raw is None:
        return _bytes(GRAPH_INITIALIZER, head)
    data = header(TENSOR_RAW_DATA, raw)
    return header(GRAPH_INITIALIZER, len(head) + len(data) + raw) + head + data


def model_head(ir_version: int, producer: str, version: str, graph_length: int) -> bytes:
    """A ModelProto's fields before its graph, and the graph field's header (the graph's
    bytes follow, then `opset_import`)."""
    return (_int(MODEL_IR_VERSION, ir_version) + _str(MODEL_PRODUCER_NAME, producer)
            + _str(MODEL_PRODUCER_VERSION, version) + header(MODEL_GRAPH, graph_length))


def opset_import(domain: str, version: int) -> bytes:
    """A ModelProto's opset_import field (it comes after the graph, by field number)."""
    return _bytes(MODEL_OPSET_IMPORT, _str(1, domain) + _int(2, version))


def metadata_props(entries) -> bytes:
    """A ModelProto's metadata_props (StringStringEntryProto key/value pairs, in the order
    given); they come after opset_import, by field number. No entries: nothing written."""
    return b"".join(_bytes(MODEL_METADATA_PROPS, _str(1, k) + _str(2, v)) for k, v in entries)
