"""IR -> ONNX ModelProto with weights; the only module that builds protobuf.

The model is pinned to ONNX IR version 8 and opset 17, which every onnxruntime since 1.14
loads (onnx 1.23 would otherwise write IR 14, which onnxruntime 1.31 refuses). Node names and
value names are the spec's layer names; every intermediate value carries netc's shape in
`value_info`, with the batch kept symbolic.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
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

    def constant(self, output: str, values: list[int]) -> None:
        """A Constant node holding a 1-D int64 tensor (shapes, pads) for the current layer."""
        tensor = helper.make_tensor(output, TensorProto.INT64, [len(values)], values)
        self.node("Constant", [], output, value=tensor)

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> None:
        # the first node of a layer carries the layer's name; any helper nodes get a suffix
        name = self.layer if self.count == 0 else f"{self.layer}/{op}{self.count}"
        self.count += 1
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))


DTYPES = {"float32": (TensorProto.FLOAT, "<f4"), "float16": (TensorProto.FLOAT16, "<f2")}


def _value_info(v: Value, elem_type=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    dims = [d if isinstance(d, str) else int(d) for d in v.shape]
    return helper.make_tensor_value_info(v.name, elem_type, dims)


def _tensor(name: str, shape, array: np.ndarray | None, dtype: str = "float32"):
    t = TensorProto()
    t.name = name
    t.data_type = DTYPES[dtype][0]
    t.dims.extend(shape)
    if array is not None:
        t.raw_data = np.ascontiguousarray(array, dtype=DTYPES[dtype][1]).tobytes()
    return t


def weight_values(graph: Graph, seed: int = DEFAULT_SEED, weights=None, fold_bn: bool = False):
    """(graph, value) where value(weight) is the float32 array a weight gets: from `weights`
    (loaded by name) or its initial value; with `fold_bn`, the graph after folding batchnorm
    into convolutions, and the folded values."""

    def value(w):
        if weights and w.name in weights:
            return np.ascontiguousarray(weights[w.name], dtype=np.float32)
        return initial_value(w, seed)

    if fold_bn:
        from .fold import fold_batchnorm

        return fold_batchnorm(graph, value)
    return graph, value


def emit(graph: Graph, seed: int = DEFAULT_SEED, weights=None, with_data: bool = True,
         dtype: str = "float32", fold_bn: bool = False) -> onnx.ModelProto:
    """Build the ONNX model of a checked graph.

    `weights` maps names to arrays to use instead of initial values (float32, shapes already
    checked). `dtype="float16"` stores weights and computes in float16, while the model's
    inputs and outputs keep float32 (Cast nodes named `<name>/cast` convert them). `fold_bn`
    folds batchnorm into the conv before it. Without `with_data`, the initializers carry
    names and shapes only: `write_model` streams their values."""
    graph, value = weight_values(graph, seed, weights, fold_bn)
    elem = DTYPES[dtype][0]
    b = Builder()
    # with float16, graph inputs and outputs are converted at the edges of the graph
    rename = {}
    if dtype != "float32":
        for v in graph.inputs:
            rename[v.name] = f"{v.name}/{dtype}"
            b.begin(f"{v.name}/cast")
            b.node("Cast", [v.name], rename[v.name], to=elem)
        rename.update({v.name: f"{v.name}/{dtype}" for v in graph.outputs})
    internal = lambda v: Value(rename.get(v.name, v.name), v.shape)  # noqa: E731
    initializers = []
    for node in graph.nodes:
        names = {}
        for w in node.weights:
            initializers.append(_tensor(w.name, w.shape, value(w) if with_data else None, dtype))
            names[w.spec.param] = w.name
        b.begin(node.name)
        node.layer.lower(b, [internal(x) for x in node.inputs], names, internal(node.output))
    if dtype != "float32":
        for v in graph.outputs:
            b.begin(f"{v.name}/cast")
            b.node("Cast", [rename[v.name]], v.name, to=TensorProto.FLOAT)
    outputs = {v.name for v in graph.outputs}
    value_info = [_value_info(internal(n.output), elem) for n in graph.nodes
                  if n.output.name not in outputs or dtype != "float32"]
    value_info += [_value_info(internal(v), elem) for v in graph.inputs if v.name in rename]
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
                external: bool | None = None, dtype: str = "float32",
                fold_bn: bool = False) -> list[str]:
    """Write the model to `path` (atomically), streaming the weights; returns the files
    written. With `external` (by default: when the weights pass EXTERNAL_THRESHOLD), the
    weights go to one data file beside the model, named by netc after the model and a hash of
    its contents, so that a model and its data always belong together. `dtype` and `fold_bn`
    are as for `emit`."""
    if external is None:
        external = weight_bytes(graph) > EXTERNAL_THRESHOLD
    skeleton = emit(graph, seed, with_data=False, dtype=dtype, fold_bn=fold_bn)
    graph, float_value = weight_values(graph, seed, weights, fold_bn)
    storage = DTYPES[dtype][1]
    itemsize = np.dtype(storage).itemsize

    def value(w):
        array = float_value(w)
        return array if storage == "<f4" else array.astype(storage)

    tensors = {t.name: t for t in skeleton.graph.initializer}
    written = []
    data_existed = False
    if external:
        data_name, data_existed = _write_external(graph, path, value, tensors, itemsize)
        written.append(os.path.join(os.path.dirname(path), data_name))
    # initializers in graph order: an external one is its header alone (it points at the
    # data file), an inline one its header followed by its raw values
    heads = {w.name: tensors[w.name].SerializeToString(deterministic=True) for w in graph.weights}
    inline = {w.name for w in graph.weights if not tensors[w.name].external_data}
    del skeleton.graph.initializer[:]
    graph_bytes = skeleton.graph.SerializeToString(deterministic=True)
    skeleton.ClearField("graph")
    model_bytes = skeleton.SerializeToString(deterministic=True)

    def entry_length(w) -> int:
        if w.name not in inline:
            return len(heads[w.name])
        raw = w.size * itemsize
        return len(heads[w.name]) + len(_field(_RAW_DATA, raw)) + raw

    graph_length = len(graph_bytes) + sum(
        len(_field(_INITIALIZER, entry_length(w))) + entry_length(w) for w in graph.weights)

    def chunks():
        yield model_bytes + _field(_GRAPH, graph_length) + graph_bytes
        for w in graph.weights:
            head = _field(_INITIALIZER, entry_length(w)) + heads[w.name]
            if w.name not in inline:
                yield head
                continue
            yield head + _field(_RAW_DATA, w.size * itemsize)
            yield value(w)

    try:
        write_atomic(path, chunks())
    except BaseException:  # a data file nothing points at would be left behind
        if external and not data_existed:
            _unlink(written[0])
        raise
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


def _write_external(graph: Graph, path: str, value, tensors, itemsize: int) -> tuple[str, bool]:
    """Stream the large tensors into `<model>.<hash>.data`; point the skeleton's tensors at
    it. An earlier data file of the same model is removed once the new one is in place.
    Returns the data file's name, and whether a file of that name (the same data) was there
    before."""
    digest = hashlib.sha256()
    offsets = {}
    position = 0

    def chunks():
        nonlocal position
        for w in graph.weights:
            if w.size * itemsize < INLINE_BELOW:
                continue
            pad = -position % ALIGN
            if pad:
                digest.update(bytes(pad))
                yield bytes(pad)
                position += pad
            array = value(w)
            digest.update(memoryview(array).cast("B"))
            offsets[w.name] = (position, w.size * itemsize)
            position += w.size * itemsize
            yield array

    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp_name = write_atomic(os.path.join(folder, f"{base}.data"), chunks(), keep_tmp=True)
    data_name = f"{base}.{digest.hexdigest()[:16]}.data"  # generated: no separators, no `..`
    final = os.path.join(folder, data_name)
    try:
        existed = os.path.isfile(final)
        os.replace(tmp_name, final)
    except BaseException as e:
        _unlink(tmp_name)
        if isinstance(e, OSError):
            raise fail("E603", f"cannot write '{final}': {e.strerror or e}", None) from None
        raise
    for name, (offset, length) in offsets.items():
        t = tensors[name]
        t.data_location = TensorProto.EXTERNAL
        for key, val in (("location", data_name), ("offset", str(offset)),
                         ("length", str(length))):
            entry = t.external_data.add()
            entry.key, entry.value = key, val
    return data_name, existed


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic bytes: the same model always serialises identically."""
    return model.SerializeToString(deterministic=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Temporary files are named `.<target>.<pid>-<host>-<random>.netc-tmp`, beside the target.
# A writer that is killed (SIGKILL, a power cut) cannot remove its own; the next netc that
# writes into the folder removes those whose writer, on this machine, no longer runs. The host
# tag keeps a folder shared between machines (NFS) safe: another machine's PIDs are not ours.
TMP_SUFFIX = ".netc-tmp"
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_TMP_NAME = re.compile(r"\..+\.(\d{1,10})-([0-9a-f]{8})-[a-z0-9_]+" + re.escape(TMP_SUFFIX) + r"\Z")


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (a process of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # no process can have this number
        return False
    except OSError:  # EPERM: it exists, and belongs to someone else
        return True
    return True


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files of netc processes that died while writing into `folder`
    (never a running writer's); returns the names removed."""
    if os.name != "posix":  # os.kill(pid, 0) sends CTRL_C_EVENT on Windows
        return []
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _TMP_NAME.match(name)
        if m is None or m[2] != _HOST or _alive(int(m[1])):
            continue
        if _unlink(os.path.join(folder, name)):
            removed.append(name)
    return removed


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:  # already gone (another netc cleaned it), or not ours to remove
        return False


def _fsync_folder(folder: str) -> None:
    """Make a rename in `folder` durable (POSIX); a no-op where folders can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str, data, keep_tmp: bool = False):
    """Write `data` (bytes, or an iterable of bytes-like chunks) to `path` so that a crash
    leaves the old file or the new one, never half: a temporary file in the same folder,
    flushed to disk, then renamed over the target (a symbolic link at `path` is replaced by
    the file, its target left alone). With `keep_tmp`, the flushed temporary file is left for
    the caller to rename, and its name returned. Temporary files that dead netc processes
    left in the folder are removed first. An OSError (a missing or read-only folder, a full
    disk) is E603; on any failure or interruption the temporary file is removed."""
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temps(folder)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.{os.getpid()}-{_HOST}-",
            suffix=TMP_SUFFIX)
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
        _fsync_folder(folder)
    except OSError as e:
        raise fail("E603", f"cannot write '{path}': {e.strerror or e}", None) from None
    finally:
        if tmp is not None:
            _unlink(tmp)
