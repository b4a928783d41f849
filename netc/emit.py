"""IR -> ONNX model bytes with weights; the only module that lowers a graph to ONNX.

The model is pinned to ONNX IR version 8 and opset 17, which every onnxruntime since 1.14
loads (onnx 1.23 would otherwise write IR 14, which onnxruntime 1.31 refuses). Node names and
value names are the spec's layer names; every intermediate value carries netc's shape in
`value_info`, with the batch kept symbolic.

Layers lower themselves into plain records (`proto.Node`); `proto.py` writes them as ONNX's
protobuf without importing onnx, so that `netc compile` never loads it. `emit()`, the Python
API, parses those same bytes into an `onnx.ModelProto`.

Every model carries the spec's `preprocess:` and `labels:` in its metadata_props
(`images.to_metadata`: keys `netc.preprocess` and `netc.labels`, JSON), so that a .onnx file
alone runs on images; a spec that declares neither writes none, and its model's bytes are
those of earlier netc versions. With `uint8_input` (`netc compile --uint8-input`) the
preprocessed input takes raw pixels instead, N×H×W×C uint8 as image libraries decode them,
and `netc.input` = `uint8-nhwc` says so (see `_uint8_input`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from . import proto
from .errors import fail
from .files import (TMP_SUFFIX, TempFile, check_target, fit, input_of, output_lock,
                    remove_stale_temps, unlink, write_atomic)
from .images import Preprocess, to_metadata
from .ir import Graph, Value, Weight
from .version import __version__
from .weights import DEFAULT_SEED, all_finite, bad_values, initial_value

IR_VERSION = 8
OPSET = 17
# metadata_props of a --uint8-input model: its preprocessed input takes raw pixels, and the
# `netc.preprocess` record's scale, mean and std are applied inside the model
METADATA_INPUT = "netc.input"
UINT8_NHWC = "uint8-nhwc"


class Builder:
    """Collects ONNX nodes as layers lower themselves; names each after the current layer."""

    def __init__(self, elem_type: int = proto.FLOAT, storage: str = "<f4",
                 nodes: dict | None = None) -> None:
        self.nodes: list[proto.Node] = []
        self.layer = ""
        self.count = 0
        self.elem_type, self.storage = elem_type, storage  # the model's float precision
        self.graph_nodes = nodes or {}  # layer name -> its ir.Node (for E508's position)

    def begin(self, layer: str) -> None:
        self.layer, self.count = layer, 0

    def constant(self, output: str, values: list[int]) -> None:
        """A Constant node holding a 1-D int64 tensor (shapes, pads) for the current layer."""
        values = tuple(int(v) for v in values)
        self.node("Constant", [], output,
                  value=proto.Tensor(output, proto.INT64, (len(values),), int64s=values))

    def float_constant(self, output: str, values, shape: tuple[int, ...] | None = None) -> None:
        """A Constant node holding float `values` (1-D, or of `shape`) in the model's precision
        (float32, or float16 with --dtype float16), for the current layer. E508 at the layer
        for NaN, or a value the precision can't hold (an infinity given as one, such as
        maxpool's -inf padding, is kept)."""
        given = np.asarray(values, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            array = given.astype(self.storage)
        if not all_finite(array):
            self._check_constant(output, given, array)
        dims = tuple(array.shape) if shape is None else tuple(shape)
        array = array.reshape(dims)
        self.node("Constant", [], output,
                  value=proto.Tensor(output, self.elem_type, dims, raw=array.tobytes()))

    def _check_constant(self, output: str, given: np.ndarray, array: np.ndarray) -> None:
        bad = np.isnan(given) | (np.isinf(array) & ~np.isinf(given))
        if not bad.any():
            return
        value = float(given.reshape(-1)[np.argmax(bad.reshape(-1))])
        dtype = np.dtype(self.storage).name
        limit = float(np.finfo(self.storage).max)
        if np.isnan(value):
            problem, hints = "NaN", ["give the layer a number"]
        else:
            problem = f"{value:.8g}, beyond {dtype}'s range (±{limit:,.8g})"
            hints = [f"compile without --dtype {dtype}: float32 holds it"
                     if dtype != "float32" and abs(value) <= np.finfo(np.float32).max else
                     "give the layer a value float32 can hold"]
        node = self.graph_nodes.get(self.layer)
        what = f"{node.layer.kind} '{node.name}'" if node is not None else f"'{self.layer}'"
        # (the constant's own name: the value's name carries the layer's and a /float16)
        raise fail("E508", f"{what}: its constant '{output.rsplit('/', 1)[-1]}' would be "
                   f"{problem}",
                   node.span if node is not None else None, hints=hints)

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> None:
        # the first node of a layer carries the layer's name; any helper nodes get a suffix
        name = self.layer if self.count == 0 else f"{self.layer}/{op}{self.count}"
        self.count += 1
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(proto.Node(op, list(inputs), [output], name, attrs))


DTYPES = {"float32": (proto.FLOAT, "<f4"), "float16": (proto.FLOAT16, "<f2")}


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


@dataclass
class Lowered:
    """A graph lowered to ONNX records; its weights are drawn (or read) only when written."""

    graph: Graph  # after --fold-bn, when asked
    nodes: list[proto.Node]
    inputs: list[tuple]  # (name, elem_type, dims) of each value info
    outputs: list[tuple]
    value_info: list[tuple]
    elem_type: int
    storage: str  # numpy dtype of the stored weights
    float_value: object  # weight -> float32 array
    # float32 initializers that are not weights of the spec (--uint8-input's normalisation),
    # (name, array), stored inline after the weights
    constants: tuple = ()
    metadata: tuple = ()  # metadata_props, (key, value) pairs sorted by key
    # where weights came from, for E508's message: names loaded with --weights, and the
    # layers that --fold-bn folded a batchnorm into
    loaded: frozenset = frozenset()
    folded: frozenset = frozenset()

    @property
    def itemsize(self) -> int:
        return np.dtype(self.storage).itemsize

    def value(self, w: Weight) -> np.ndarray:
        """A weight's stored values, contiguous and little-endian: the one place where every
        weight becomes the bytes of a model, inline or in its data file. E508 at the weight's
        layer where a value is NaN, infinite, or beyond the storage dtype's range (from a
        file, --fold-bn, an initial value, or the cast to float16); numpy's warnings on the
        way are silenced, as the check says what they would."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            values = self.float_value(w)
            stored = np.ascontiguousarray(values, dtype=self.storage)
        if not all_finite(stored):
            raise self._not_finite(w, values, stored)
        return stored

    def _not_finite(self, w: Weight, values: np.ndarray, stored: np.ndarray):
        said, counts = bad_values(values, stored)
        node = next((n for n in self.graph.nodes if any(x.name == w.name for x in n.weights)),
                    None)
        layer = f"{node.layer.kind} '{node.name}'" if node is not None else "a layer"
        dtype = stored.dtype.name
        if node is not None and node.name in self.folded:
            origin = "folded with the batchnorm after it (--fold-bn)"
        elif w.name in self.loaded:
            origin = "loaded with --weights"
        else:
            origin = f"initial value `init: {w.spec.init}`"
        hints = []
        if dtype != "float32" and counts["over"]:
            limit = f"±{float(np.finfo(stored.dtype).max):,.8g}"
            hints.append(f"{dtype} holds at most {limit}: compile without --dtype {dtype} "
                         "(float32 holds these values), or " +
                         (f"choose an `init:` whose values stay within {limit}"
                          if origin.startswith("initial") else
                          "scale this layer's weights down (and the next layer's up)"))
        elif origin.startswith("initial"):
            hints.append(f"`init: {w.spec.init}` gives values a {dtype} model can't hold: "
                         "choose a smaller one (he_normal, the default for conv and dense "
                         "weights, suits ReLU networks)")
        return fail("E508", f"{layer}: tensor '{w.name}' ({origin}) {said}",
                    node.span if node is not None else None, hints=hints)


def _info(v: Value, elem_type: int) -> tuple:
    return v.name, elem_type, tuple(d if isinstance(d, str) else int(d) for d in v.shape)


def lower(graph: Graph, seed: int = DEFAULT_SEED, weights=None, dtype: str = "float32",
          fold_bn: bool = False, uint8_input: bool = False) -> Lowered:
    """Lower a checked graph to ONNX nodes and value infos (see `emit` for the options)."""
    if uint8_input and graph.preprocess is None:
        raise _no_preprocess(graph)
    before = {n.name: n.output.name for n in graph.nodes}
    loaded = frozenset(weights or ())
    graph, value = weight_values(graph, seed, weights, fold_bn)
    # a conv that took in a batchnorm took its output's name too
    folded = frozenset(n.name for n in graph.nodes if before.get(n.name, n.output.name)
                       != n.output.name)
    elem, storage = DTYPES[dtype]
    b = Builder(elem, storage, {n.name: n for n in graph.nodes})
    pixels = graph.preprocess.input if uint8_input else None
    # with float16, graph inputs and outputs are converted at the edges of the graph
    rename = {}
    inputs = {v.name for v in graph.inputs}
    # an output that is an input is the float32 input itself: nothing to convert
    cast_out = [v for v in graph.outputs if v.name not in inputs]
    constants, extra_info = (), []
    if dtype != "float32":
        weights = {w.name for w in graph.weights}
        for v in cast_out:
            if v.name in weights:  # a `param` layer: its value is its float16 initializer
                raise fail("E603", f"can't write a {dtype} model whose output '{v.name}' is a "
                           "learned tensor: its initializer and the float32 output would "
                           "share that name", None,
                           hints=["read it through a layer (for example `- mul: {from: "
                                  f"[{v.name}, ...]}}`) and make that the output, or compile "
                                  "in float32"])
        for v in graph.inputs:
            rename[v.name] = f"{v.name}/{dtype}"
            if v.name != pixels:
                b.begin(f"{v.name}/cast")
                b.node("Cast", [v.name], rename[v.name], to=elem)
        rename.update({v.name: f"{v.name}/{dtype}" for v in cast_out})
    for v in graph.inputs:
        if v.name == pixels:
            rename.setdefault(v.name, f"{v.name}/normalized")
            constants, extra_info = _uint8_input(b, v, graph.preprocess, rename[v.name], dtype)
    internal = lambda v: Value(rename.get(v.name, v.name), v.shape)  # noqa: E731
    for node in graph.nodes:
        names = {w.spec.param: w.name for w in node.weights}
        b.begin(node.name)
        node.layer.lower(b, [internal(x) for x in node.inputs], names, internal(node.output))
    if dtype != "float32":
        for v in cast_out:
            b.begin(f"{v.name}/cast")
            b.node("Cast", [rename[v.name]], v.name, to=proto.FLOAT)
    outputs = {v.name for v in graph.outputs}
    value_info = [_info(internal(n.output), elem) for n in graph.nodes
                  if n.output.name not in outputs or dtype != "float32"]
    value_info += [_info(internal(v), elem) for v in graph.inputs if v.name in rename]
    value_info += extra_info
    input_infos = {v.name: _pixels_info(v) if v.name == pixels else _info(v, proto.FLOAT)
                   for v in graph.inputs}
    props = to_metadata(graph.preprocess, graph.labels)
    if pixels is not None:
        props[METADATA_INPUT] = UINT8_NHWC
    return Lowered(graph, b.nodes, list(input_infos.values()),
                   [input_infos.get(v.name) or _info(v, proto.FLOAT) for v in graph.outputs],
                   value_info, elem, storage, value, constants, tuple(sorted(props.items())),
                   loaded, folded)


def _no_preprocess(graph: Graph):
    """E606: --uint8-input without `preprocess:`, with the declaration to add."""
    images = [v for v in graph.inputs if len(v.shape) == 4]
    if not images:
        return fail("E606", f"--uint8-input makes an image input take raw pixels, and spec "
                    f"'{graph.name}' declares no preprocessing (and has no N×C×H×W input)",
                    None, hints=["compile without --uint8-input"])
    x = images[0]
    _, c, h, w = x.shape
    example = (f"preprocess: {{resize: [{h}, {w}], mean: [0.485, 0.456, 0.406], "
               "std: [0.229, 0.224, 0.225]}" if c == 3 else f"preprocess: {{resize: [{h}, {w}]}}")
    return fail("E606", f"--uint8-input puts the spec's preprocessing inside the model, and "
                f"spec '{graph.name}' declares none (no `preprocess:`)", None,
                hints=[f"declare how an image becomes input '{x.name}' in the spec, for example "
                       f"`{example}` (scale is 1/255, mean 0 and std 1 unless given)",
                       "or compile without --uint8-input: the model then takes the "
                       "preprocessed float input"])


def _pixels_info(v: Value) -> tuple:
    """The value info of a --uint8-input model's input: N×H×W×C uint8 (N as declared)."""
    n, c, h, w = (d if isinstance(d, str) else int(d) for d in v.shape)
    return v.name, proto.UINT8, (n, h, w, c)


def _uint8_input(b: Builder, v: Value, pre: Preprocess, output: str, dtype: str):
    """Lower --uint8-input: pixels `v.name` (N×H×W×C uint8) -> the float input `output`
    (N×C×H×W, the model's precision) that the first layers read. Three nodes (four with
    float16): Transpose the uint8 pixels to N×C×H×W (a quarter of the bytes to move that a
    float transpose would), Cast them to float32, and BatchNormalization with mean 0, var 1
    and epsilon 0, so that it computes exactly x * gamma + beta per channel (x - 0 and
    / sqrt(1 + 0) are exact in IEEE arithmetic), with gamma = scale / std and
    beta = -mean / std (worked out in float64, rounded once): the declared
    (x * scale - mean) / std in one node. With float16 the normalisation stays in float32 and
    a Cast rounds its result once, where the float16 model of a float input rounds that
    input. Returns the normalisation's initializers (name, float32 array) and the value
    infos of the new intermediate values."""
    n, c, h, w = (d if isinstance(d, str) else int(d) for d in v.shape)
    nchw = (n, c, h, w)
    norm = f"{v.name}/normalize"
    std = np.asarray(pre.std, dtype=np.float64)
    with np.errstate(all="ignore"):  # (checked below)
        gamma = (pre.scale / std).astype(np.float32)
        beta = (-np.asarray(pre.mean, dtype=np.float64) / std).astype(np.float32)
    if not (all_finite(gamma) and all_finite(beta)):  # a std too small for its scale or mean
        raise fail("E508", f"--uint8-input: the preprocessing of input '{v.name}' (scale "
                   f"{pre.scale:g}, mean {list(pre.mean)}, std {list(pre.std)}) would multiply "
                   f"by {gamma.tolist()} and add {beta.tolist()}, beyond float32's range", None,
                   hints=["check `std:` in the spec's `preprocess:` (one value per channel, "
                          "about 0.2 for images scaled to 0..1)"])
    constants = ((f"{norm}.weight", gamma), (f"{norm}.bias", beta),
                 (f"{norm}.running_mean", np.zeros(c, np.float32)),
                 (f"{norm}.running_var", np.ones(c, np.float32)))
    normalized = output if dtype == "float32" else f"{v.name}/normalized"
    b.begin(f"{v.name}/transpose")
    b.node("Transpose", [v.name], f"{v.name}/nchw", perm=[0, 3, 1, 2])
    b.begin(f"{v.name}/cast")
    b.node("Cast", [f"{v.name}/nchw"], f"{v.name}/float32", to=proto.FLOAT)
    b.begin(norm)
    b.node("BatchNormalization", [f"{v.name}/float32"] + [name for name, _ in constants],
           normalized, epsilon=0.0)
    infos = [(f"{v.name}/nchw", proto.UINT8, nchw), (f"{v.name}/float32", proto.FLOAT, nchw)]
    if dtype != "float32":
        b.begin(f"{v.name}/cast_{dtype}")
        b.node("Cast", [normalized], output, to=b.elem_type)
        infos.append((normalized, proto.FLOAT, nchw))
    return constants, infos


def _chunks(low: Lowered, external: dict | None = None):
    """The model's bytes, in protobuf field order, the weights streamed one tensor at a time
    (drawn straight into their buffers); `external` maps the names of tensors stored in a
    data file to their external_data entries."""
    external = external or {}
    before, after = proto.graph(low.graph.name, low.nodes, low.inputs, low.outputs,
                                low.value_info, low.graph.description or None)
    entries = []
    for w in low.graph.weights:
        where = external.get(w.name, ())
        head = proto.tensor(proto.Tensor(w.name, low.elem_type, tuple(w.shape), external=where))
        raw = None if where else w.size * low.itemsize
        entries.append((w, proto.initializer_head(head, raw), raw))
    # a few values each: always inline, their data in the head
    constants = b"".join(proto.initializer_head(proto.tensor(proto.Tensor(
        name, proto.FLOAT, array.shape, raw=array.astype("<f4").tobytes())), None)
        for name, array in low.constants)
    length = len(before) + len(after) + len(constants) \
        + sum(len(h) + (raw or 0) for _, h, raw in entries)
    yield proto.model_head(IR_VERSION, "netc", __version__, length) + before
    for w, head, raw in entries:
        yield head
        if raw is not None:
            yield low.value(w)
    yield constants + after + proto.opset_import("", OPSET) + proto.metadata_props(low.metadata)


def model_bytes(graph: Graph, seed: int = DEFAULT_SEED, weights=None, dtype: str = "float32",
                fold_bn: bool = False, uint8_input: bool = False) -> bytes:
    """The serialised ONNX model, weights inline (for models under protobuf's 2 GiB limit;
    `write_model` takes any size). Options as for `emit`."""
    return b"".join(_chunks(lower(graph, seed, weights, dtype, fold_bn, uint8_input)))


def emit(graph: Graph, seed: int = DEFAULT_SEED, weights=None, dtype: str = "float32",
         fold_bn: bool = False, uint8_input: bool = False):
    """The ONNX model (an `onnx.ModelProto`) of a checked graph.

    `weights` maps names to arrays to use instead of initial values (float32, shapes already
    checked). `dtype="float16"` stores weights and computes in float16, while the model's
    inputs and outputs keep float32 (Cast nodes named `<name>/cast` convert them). `fold_bn`
    folds batchnorm into the conv before it. `uint8_input` makes the input that the spec's
    `preprocess:` names take raw pixels, N×H×W×C uint8 (values 0..255, after the resize and
    crop), and applies the declared scale, mean and std inside the model; it raises
    NetcError E606 when the spec declares no `preprocess:`. The model's metadata_props carry
    the spec's preprocessing and labels (module doc)."""
    import onnx

    return onnx.load_model_from_string(model_bytes(graph, seed, weights, dtype, fold_bn,
                                                   uint8_input))


def serialize(model) -> bytes:
    """Deterministic bytes of an `onnx.ModelProto`: the same model always serialises
    identically (and as `model_bytes` wrote it)."""
    return model.SerializeToString(deterministic=True)


# --- writing models to disk, streaming the weights --------------------------------------------
#
# A model's bytes are mostly weights. Rather than building one protobuf message holding them
# all (three copies of every weight, and impossible past protobuf's 2 GiB limit), netc writes
# the message itself (`_chunks`), generating each tensor straight into a buffer and writing it
# out before the next. The result is deterministic by construction.

EXTERNAL_THRESHOLD = 1536 << 20  # weights above this go to an external data file
INLINE_BELOW = 1024  # with external data, tensors smaller than this stay in the model
ALIGN = 4096  # external tensors start on page boundaries, so runtimes can map them


def weight_bytes(graph: Graph) -> int:
    return sum(w.size for w in graph.weights) * 4


def write_model(graph: Graph, path: str, seed: int = DEFAULT_SEED, weights=None,
                external: bool | None = None, dtype: str = "float32",
                fold_bn: bool = False, uint8_input: bool = False) -> list[str]:
    """Write the model to `path` (atomically), streaming the weights; returns the files
    written. With `external` (by default: when the weights pass EXTERNAL_THRESHOLD), the
    weights go to one data file beside the model, named by netc after the model and a hash of
    its contents, so that a model and its data always belong together. `dtype`, `fold_bn`
    and `uint8_input` are as for `emit`.

    Writers of one output take turns (files.output_lock, held over the data file, the model
    and the removal of the data files it replaced), so that concurrent writers leave one
    complete pair. E603 before anything is written where `path` is one of this process's
    inputs or not a regular file (files.check_target)."""
    check_target(path, ".onnx")
    if external is None:
        external = weight_bytes(graph) > EXTERNAL_THRESHOLD
    low = lower(graph, seed, weights, dtype, fold_bn, uint8_input)
    if external and not any(w.size * low.itemsize >= INLINE_BELOW for w in low.graph.weights):
        external = False  # every tensor stays inline: no data file nothing would point at
    with output_lock(path):
        # the data files the model being replaced names: the only ones this write may remove
        replaced = _data_files_of(path)
        written = []
        data_existed = False
        entries = None
        if external:
            data_name, data_existed, entries = _write_external(low, path)
            written.append(os.path.join(os.path.dirname(path), data_name))
        try:
            write_atomic(path, _chunks(low, entries), suffix=".onnx")
        except BaseException:  # a data file nothing points at would be left behind
            if external and not data_existed:
                unlink(written[0])
            raise
        written.insert(0, path)
        _remove_stale_data(path, replaced, keep=[os.path.basename(f) for f in written[1:]])
    return written


def _data_prefix(path: str) -> str:
    """The beginning of the model's data file names, `<model>` (shortened, with a hash, where
    `<model>.<16 hex>.data` would pass the file system's longest name)."""
    folder, base = os.path.split(os.path.abspath(path))
    return fit(base, 1 + 16 + len(".data"), folder)


def _data_files_of(path: str) -> set[str]:
    """The names of the data files netc names after the model at `path` (`<model>.<16
    hex>.data`, _data_prefix) that the model now at `path` references (its external-data
    locations, read with the tensors' data left in their files), or an empty set: nothing
    there, not a regular file, or not a model onnx reads (then nothing is known to be its
    data, and nothing is removed). Read only where such a file exists in the folder."""
    import re
    import stat

    folder = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(_data_prefix(path)) + r"\.[0-9a-f]{16}\.data\Z")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or \
                not any(pattern.match(name) for name in os.listdir(folder)):
            return set()
        import onnx

        from .files import _external_locations

        model = onnx.load_model(path, load_external_data=False)
    except Exception:  # (a model netc did not write, or no model at all: keep every file)
        return set()
    return {name for name in _external_locations(model.graph) if pattern.match(name)}


def _referenced_elsewhere(folder: str, name: str, skip: str) -> bool:
    """Whether a model file in `folder` other than `skip` (a name holding `.onnx`: `m.onnx`,
    `m_v1.onnx`, `m.onnx.bak`) holds the data file name `name`. Its bytes are searched for
    the name (mmap, no protobuf parse: a copy of an old model is found without reading its
    weights), so a model that names it anywhere keeps it: a false match keeps a file, never
    removes one. An unreadable file counts as naming it."""
    import mmap
    import stat

    needle = os.fsencode(name)
    try:
        names = os.listdir(folder)
    except OSError:
        return True
    for other in names:
        if other == skip or ".onnx" not in other.lower() or other.endswith((".data",
                                                                             TMP_SUFFIX)):
            continue
        full = os.path.join(folder, other)
        try:
            st = os.stat(full)
            if not stat.S_ISREG(st.st_mode) or st.st_size < len(needle):
                continue
            with open(full, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if m.find(needle) >= 0:
                    return True
        except (OSError, ValueError):
            return True
    return False


def _remove_stale_data(path: str, replaced: set[str], keep: list[str]) -> None:
    """Delete the data files of the model this write replaced (`replaced`, _data_files_of:
    those it referenced, read before it was replaced) that the new model does not use
    (`keep`): regular files only, never one this process reads (files.note_input), and never
    one another model in the folder names (_referenced_elsewhere: a copy `m_v1.onnx` of the
    old model). A data file no model referenced (a copy's, a killed writer's) is left alone.
    The caller holds the model's output_lock: no other netc is writing this model's data
    meanwhile."""
    import stat

    folder, base = os.path.split(os.path.abspath(path))
    for name in sorted(replaced - set(keep)):
        full = os.path.join(folder, name)
        try:
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode) or input_of(st) is not None \
                    or _referenced_elsewhere(folder, name, skip=base):
                continue
            os.unlink(full)
        except OSError:
            pass  # another process may have removed it; nothing depends on it


def _write_external(low: Lowered, path: str) -> tuple[str, bool, dict]:
    """Stream the large tensors into `<model>.<hash>.data`. An earlier data file of the same
    model is removed once the new one is in place. Returns the data file's name, whether a
    file of that name (the same data) was there before, and each external tensor's
    external_data entries (location, offset, length). The caller holds the model's
    output_lock."""
    digest = hashlib.sha256()
    offsets = {}
    position = 0

    def chunks():
        nonlocal position
        for w in low.graph.weights:
            length = w.size * low.itemsize
            if length < INLINE_BELOW:
                continue
            pad = -position % ALIGN
            if pad:
                digest.update(bytes(pad))
                yield bytes(pad)
                position += pad
            array = low.value(w)
            digest.update(memoryview(array).cast("B"))
            offsets[w.name] = (position, length)
            position += length
            yield array

    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    remove_stale_temps(folder)
    tmp = TempFile(os.path.join(folder, f"{base}.data"), f"{path}.data")
    try:
        tmp.write(chunks())
        # generated: no separators, no `..`
        data_name = f"{_data_prefix(path)}.{digest.hexdigest()[:16]}.data"
        final = os.path.join(folder, data_name)
        tmp.shown = final
        check_target(final)
        existed = os.path.isfile(final)
        tmp.replace(final)
    finally:
        tmp.discard()
    entries = {name: (("location", data_name), ("offset", str(offset)), ("length", str(length)))
               for name, (offset, length) in offsets.items()}
    return data_name, existed, entries
