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


def _tensor(name: str, shape, array: np.ndarray | None) -> onnx.TensorProto:
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(shape)
    if array is not None:
        t.raw_data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return t


def emit(graph: Graph, seed: int = DEFAULT_SEED, weights=None,
         with_data: bool = True) -> onnx.ModelProto:
    """Build the ONNX model of a checked graph. `weights` maps names to arrays to use instead
    of initial values (all float32, shapes already checked). Without `with_data`, the
    initializers carry names and shapes only: `write_model` streams their values."""
    b = Builder()
    initializers = []
    for node in graph.nodes:
        names = {}
        for w in node.weights:
            value = None
            if with_data:
                value = weights[w.name] if weights and w.name in weights else initial_value(w, seed)
            initializers.append(_tensor(w.name, w.shape, value))
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


# --- writing models to disk, streaming the weights --------------------------------------------
#
# A model's bytes are mostly weights. Rather than building one protobuf message holding them
# all (three copies of every weight, and impossible past protobuf's 2 GiB limit), netc writes
# the message itself: the model and graph without initializers, serialised by protobuf, then
# each initializer's header followed by its raw values, generated straight into a buffer and
# written out one tensor at a time. Protobuf readers accept fields in any order, and the
# result is deterministic by construction.

EXTERNAL_THRESHOLD = 1536 << 20  # weights above this go to an external data file
INLINE_BELOW = 1024  # with external data, tensors smaller than this stay in the model
ALIGN = 4096  # external tensors start on page boundaries, so runtimes can map them

_GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_INITIALIZER = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number
_RAW_DATA = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, length: int) -> bytes:
    """The tag and length prefix of a length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(length)


def weight_bytes(graph: Graph) -> int:
    return sum(w.size for w in graph.weights) * 4


def write_model(graph: Graph, path: str, seed: int = DEFAULT_SEED, weights=None,
                external: bool | None = None) -> list[str]:
    """Write the model to `path` (atomically), streaming the weights; returns the files
    written. With `external` (by default: when the weights pass EXTERNAL_THRESHOLD), the
    weights go to one data file beside the model, named by netc after the model and a hash of
    its contents, so that a model and its data always belong together."""
    if external is None:
        external = weight_bytes(graph) > EXTERNAL_THRESHOLD

    def value(w):
        if weights and w.name in weights:
            return np.ascontiguousarray(weights[w.name], dtype="<f4")
        return initial_value(w, seed)

    skeleton = emit(graph, seed, with_data=False)
    tensors = {t.name: t for t in skeleton.graph.initializer}
    written = []
    if external:
        data_name = _write_external(graph, path, value, tensors)
        written.append(os.path.join(os.path.dirname(path), data_name))
    inline = [w for w in graph.weights if not tensors[w.name].external_data]
    heads = {w.name: tensors[w.name].SerializeToString(deterministic=True) for w in inline}
    external_tensors = [t for t in skeleton.graph.initializer if t.external_data]
    del skeleton.graph.initializer[:]
    skeleton.graph.initializer.extend(external_tensors)
    graph_bytes = skeleton.graph.SerializeToString(deterministic=True)
    skeleton.ClearField("graph")
    model_bytes = skeleton.SerializeToString(deterministic=True)

    def entry_length(w) -> int:
        raw = w.size * 4
        return len(heads[w.name]) + len(_field(_RAW_DATA, raw)) + raw

    graph_length = len(graph_bytes) + sum(
        len(_field(_INITIALIZER, entry_length(w))) + entry_length(w) for w in inline)

    def chunks():
        yield model_bytes + _field(_GRAPH, graph_length) + graph_bytes
        for w in inline:
            yield _field(_INITIALIZER, entry_length(w)) + heads[w.name] + \
                _field(_RAW_DATA, w.size * 4)
            yield value(w)

    write_atomic(path, chunks())
    written.insert(0, path)
    _remove_stale_data(path, keep=[os.path.basename(f) for f in written[1:]])
    return written


def _remove_stale_data(path: str, keep: list[str]) -> None:
    """Delete data files that earlier compiles wrote for this model (`<model>.<hash>.data`)."""
    import re

    folder = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(os.path.basename(path)) + r"\.[0-9a-f]{16}\.data\Z")
    for name in os.listdir(folder):
        if pattern.match(name) and name not in keep:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass  # another process may have removed it; nothing depends on it


def _write_external(graph: Graph, path: str, value, tensors) -> str:
    """Stream the large tensors into `<model>.<hash>.data`; point the skeleton's tensors at
    it. An earlier data file of the same model is removed once the new one is in place."""
    import hashlib

    digest = hashlib.sha256()
    offsets = {}
    position = 0

    def chunks():
        nonlocal position
        for w in graph.weights:
            if w.size * 4 < INLINE_BELOW:
                continue
            pad = -position % ALIGN
            if pad:
                digest.update(bytes(pad))
                yield bytes(pad)
                position += pad
            array = value(w)
            digest.update(memoryview(array).cast("B"))
            offsets[w.name] = (position, w.size * 4)
            position += w.size * 4
            yield array

    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp_name = write_atomic(os.path.join(folder, f".{base}.data.netc-tmp"), chunks(), keep_tmp=True)
    data_name = f"{base}.{digest.hexdigest()[:16]}.data"  # generated: no separators, no `..`
    os.replace(tmp_name, os.path.join(folder, data_name))
    for name, (offset, length) in offsets.items():
        t = tensors[name]
        t.data_location = TensorProto.EXTERNAL
        for key, val in (("location", data_name), ("offset", str(offset)),
                         ("length", str(length))):
            entry = t.external_data.add()
            entry.key, entry.value = key, val
    return data_name


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic bytes: the same model always serialises identically."""
    return model.SerializeToString(deterministic=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, data, keep_tmp: bool = False):
    """Write `data` (bytes, or an iterable of bytes-like chunks) to `path` so that a crash
    leaves the old file or the new one, never half: a temporary file in the same folder,
    flushed to disk, then renamed over the target. With `keep_tmp`, the flushed temporary
    file is left for the caller to rename, and its name returned."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                   suffix=".netc-tmp")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes private files; outputs are ordinary
        with os.fdopen(fd, "wb") as f:
            for chunk in ([data] if isinstance(data, (bytes, bytearray)) else data):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if keep_tmp:
            done, tmp = tmp, None
            return done
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise fail("E603", f"cannot write '{path}': {e.strerror or e}", None) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
