"""Weight tensors: deterministic initial values, and reading and writing them by name.

Initial values: each tensor draws from its own random stream, seeded by the user's `--seed`
and a hash of the tensor's name, so the same spec and seed give the same bytes on any machine,
and a tensor keeps its values when layers elsewhere in the spec are added or removed.

Weight files come from strangers. netc matches tensors by name (`<layer>.<param>`, PyTorch's
state_dict keys), never by position; it never unpickles; and it validates a file's header
(names, dtypes, shapes, byte ranges) against the spec before reading any data, so a file that
declares an 8 TiB tensor costs nothing. Every problem becomes a netc error that names the
tensor and points at the spec line of the layer that needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import Diagnostics, NetcError, closest, fail
from .ir import Graph, Weight
from .layers.base import fmt_shape, gaussian_kernel, parse_init, volume

DEFAULT_SEED = 0
MAX_HEADER = 100 << 20  # a safetensors JSON header; real ones are a few hundred KiB
# dtypes netc reads, and how it makes float32 of them (exactly, except float64 rounding)
SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}
NUMPY_KINDS = {np.dtype("<f4"), np.dtype("<f2"), np.dtype("<f8"), np.dtype(">f4"),
               np.dtype(">f2"), np.dtype(">f8")}


# --- initial values --------------------------------------------------------------------------


# values per random stream: a tensor is drawn in chunks, in parallel. 256 Ki values keeps
# ResNet-50's 1-2.4 M-value tensors on both cores (with 1 Mi chunks most of them were drawn
# on one core: 0.23 s against 0.13 s for its 25.6 M values here).
CHUNK = 1 << 18
_POOL = None


def stream(seed: int, name: str, chunk: int = 0) -> np.random.Generator:
    """The random stream of chunk `chunk` of tensor `name` under `seed` (independent of
    Python's hash seed, of the machine, and of how many threads draw the chunks)."""
    words = np.frombuffer(hashlib.sha256(name.encode("utf-8")).digest(), dtype="<u4")
    entropy = [int(seed) & 0xFFFFFFFF, int(seed) >> 32, *(int(w) for w in words), chunk]
    # SFC64: a small, fast generator of high statistical quality, twice as fast as PCG64 here
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(entropy)))


def _draw(seed: int, name: str, flat: np.ndarray, normal: bool) -> None:
    """Fill `flat` with standard normal or [0, 1) uniform float32 values, chunk by chunk;
    numpy releases the GIL while it fills, so large tensors use both cores."""

    def fill(i: int) -> None:
        part = flat[i * CHUNK:(i + 1) * CHUNK]
        rng = stream(seed, name, i)
        if normal:
            rng.standard_normal(dtype=np.float32, out=part)
        else:
            rng.random(dtype=np.float32, out=part)

    chunks = -(-flat.size // CHUNK)
    if chunks < 2:
        for i in range(chunks):
            fill(i)
        return
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))
    list(_POOL.map(fill, range(chunks)))


def initial_value(weight: Weight, seed: int = DEFAULT_SEED, out: np.ndarray | None = None):
    """The initial float32 value of a weight (written into `out` when given).

    he_normal: N(0, 2/fan_in), He et al. 2015, netc's default for ReLU networks;
    he_uniform: U(±√(6/fan_in)); glorot_normal: N(0, 2/(fan_in+fan_out)); glorot_uniform:
    U(±√(6/(fan_in+fan_out))), Glorot and Bengio 2010; normal(σ): N(0, σ²); uniform(a):
    U(±a); constant(c), zeros, ones. Fans are counted as PyTorch does.

    gaussian(σ), a conv's weight (filters, channels/groups, kh, kw) only: no random draw, the
    fixed blur kernel `gaussian_kernel(σ, kh, kw)` (taps summing to 1) in weight[o, o mod
    channels/groups], zeros elsewhere. So filter o blurs one input channel, the one at o's
    position within its group: in a depthwise conv (groups = channels, one channel a group)
    each filter blurs its own channel; with groups 1 and filters = channels, filter o blurs
    channel o (a diagonal: the other channels would mix colours, which a blur doesn't); with
    more filters than channels, filter o blurs channel o mod channels. A conv's bias is zeros.
    """
    spec = weight.spec
    if out is None:
        out = np.empty(spec.shape, dtype=np.float32)
    name, value = parse_init(spec.init)
    fan_in, fan_out = max(spec.fan_in, 1), max(spec.fan_out, 1)
    if name == "gaussian":
        filters, per_group, kh, kw = spec.shape
        out.fill(0.0)
        o = np.arange(filters)
        out[o, o % per_group] = gaussian_kernel(value, kh, kw).astype(np.float32)
        return out
    if name in ("zeros", "ones", "constant"):
        out.fill({"zeros": 0.0, "ones": 1.0}.get(name, value))
        return out
    if name in ("he_normal", "glorot_normal", "normal"):
        std = {"he_normal": np.sqrt(2.0 / fan_in),
               "glorot_normal": np.sqrt(2.0 / (fan_in + fan_out))}.get(name, value)
        _draw(seed, weight.name, out.reshape(-1), normal=True)
        out *= np.float32(std)
        return out
    bound = {"he_uniform": np.sqrt(6.0 / fan_in),
             "glorot_uniform": np.sqrt(6.0 / (fan_in + fan_out))}.get(name, value)
    _draw(seed, weight.name, out.reshape(-1), normal=False)
    out *= np.float32(2 * bound)
    out -= np.float32(bound)
    return out


def initial_weights(graph: Graph, seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    return {w.name: initial_value(w, seed) for w in graph.weights}


# --- reading ---------------------------------------------------------------------------------


@dataclass
class _Entry:
    """A tensor as a weights file declares it, before any of its data is read."""

    name: str
    dtype: np.dtype | str
    shape: tuple[int, ...]
    read: object  # () -> float32 array


def read_weights(path: str, graph: Graph, allow_missing: bool = False,
                 warnings: Diagnostics | None = None) -> dict[str, np.ndarray]:
    """The graph's weights from a .safetensors or .npz file, matched by name.

    Raises one NetcError listing every missing, unexpected, wrongly shaped and wrongly typed
    tensor. With `allow_missing`, missing tensors are left out of the result (the caller
    initialises them) and listed in `warnings`.
    """
    entries = _declared(path)
    # PyTorch's batchnorm counts its training steps in a buffer inference never reads
    entries = {k: v for k, v in entries.items() if not k.endswith(".num_batches_tracked")}
    expected = {w.name: w for w in graph.weights}
    spans = {w.name: n.span for n in graph.nodes for w in n.weights}
    diags = Diagnostics()
    missing = [name for name in expected if name not in entries]
    unexpected = [name for name in entries if name not in expected]
    for name in unexpected:
        near = _near(name, missing)
        diags.error("E505", f"'{path}' has a tensor '{name}' that no layer of the spec uses",
                    None, hints=[f"did you mean '{near}'? layer names must match the spec"]
                    if near else ["rename the layer in the spec, or drop the tensor"])
    found: dict[str, np.ndarray] = {}
    wrong: dict[str, list[str]] = {}  # layer -> problems, so each layer is reported once
    hints: dict[str, list[str]] = {}
    for name, w in expected.items():
        entry = entries.get(name)
        layer = name.rsplit(".", 1)[0]
        if entry is None:
            continue
        if entry.dtype not in ("F32", "F16", "F64", "BF16") and entry.dtype not in NUMPY_KINDS:
            wrong.setdefault(layer, []).append(f"'{name}' holds {entry.dtype} values")
            hints.setdefault(layer, []).append("netc reads floating-point weights only: save "
                                               "them as float32 (or float16, bfloat16, float64)")
        elif tuple(entry.shape) != tuple(w.shape):
            shown = fmt_shape(entry.shape) if entry.shape else "a scalar"
            wrong.setdefault(layer, []).append(f"'{name}' is {shown} but the "
                                               f"layer needs {fmt_shape(w.shape)}")
            if tuple(reversed(entry.shape)) == tuple(w.shape):
                hints.setdefault(layer, []).append(
                    "it is transposed: dense weights are (units, features), as in PyTorch's "
                    "nn.Linear")
            elif volume(entry.shape) == w.size:
                hints.setdefault(layer, []).append("the same number of values in another "
                                                   "shape: reshape it")
    for layer, problems in wrong.items():
        code = "E503" if any(" is " in p for p in problems) else "E504"
        diags.error(code, f"in '{path}', {'; '.join(problems)}", spans[f"{layer}." + _first(
            expected, layer)], hints=hints.get(layer, []))
    if missing and not allow_missing:
        by_layer: dict[str, list[str]] = {}
        for name in missing:
            by_layer.setdefault(name.rsplit(".", 1)[0], []).append(name)
        for layer, names in by_layer.items():
            nears = [n for n in (_near(name, unexpected) for name in names) if n]
            listed = ", ".join(f"'{n}'" for n in names)
            diags.error("E502", f"'{path}' has no tensor{'s' * (len(names) > 1)} {listed}",
                        spans[names[0]],
                        hints=[f"the file has '{nears[0]}': rename the layer or the tensor"]
                        if nears else [])
    if not diags.has_errors():
        found = {name: entries[name].read() for name in expected if name in entries}
    if diags.has_errors():
        bad_layers = sum(1 for d in diags if d.code in ('E503', 'E504'))
        problems = [f"{len(missing)} missing" if missing and not allow_missing else "",
                    f"{len(unexpected)} unexpected" if unexpected else "",
                    f"{bad_layers} layer{'s' * (bad_layers != 1)} with tensors "
                    "of the wrong shape or dtype"]
        summary = ", ".join(p for p in problems if p and not p.startswith("0 "))
        hints = ["netc matches tensors by name: `<layer name>.<weight|bias|running_mean|"
                 "running_var>`, PyTorch's state_dict keys"]
        if missing and not allow_missing:
            hints.append("--allow-missing initialises the missing tensors instead "
                         "(to learn those layers from scratch)")
        diags.error("E501", f"the weights in '{path}' don't match the spec ({summary})", None,
                    hints=hints)
        raise NetcError(diags)
    if missing and warnings is not None:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        one = len(missing) == 1
        warnings.warning("W501", f"{len(missing)} tensor{'' if one else 's'} "
                         f"{'is' if one else 'are'} not in '{path}' and "
                         f"{'was' if one else 'were'} initialised: {shown}", None)
    return found


def _first(expected: dict, layer: str) -> str:
    return next(n for n in expected if n.startswith(layer + ".")).rsplit(".", 1)[1]


def _near(name: str, candidates: list[str]) -> str | None:
    """A candidate that is probably the same tensor under a slightly different layer name."""
    layer, _, param = name.rpartition(".")
    same_param = [c.rpartition(".")[0] for c in candidates if c.rpartition(".")[2] == param]
    near = closest(layer, same_param, cutoff=0.8) if same_param else None
    return f"{near}.{param}" if near else None


def _declared(path: str) -> dict[str, _Entry]:
    """The tensors a file declares, validated; data is read later, only for tensors used."""
    if path.endswith(".safetensors"):
        return _safetensors(path)
    if path.endswith(".npz"):
        return _npz(path)
    raise fail("E507", f"'{path}': netc reads weights from .safetensors or .npz files", None,
               hints=["save a PyTorch state_dict with safetensors.torch.save_file(model."
                      "state_dict(), 'weights.safetensors')"])


def _bad(path: str, problem: str) -> NetcError:
    return fail("E506", f"cannot read '{path}': {problem}", None)


def _safetensors(path: str) -> dict[str, _Entry]:
    """Parse and check a safetensors header: 8-byte length, JSON, then the data buffer."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _bad(path, "the file is too short to be a safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or n > size - 8:
                raise _bad(path, f"its header claims {n:,} bytes; the file has {size:,}")
            raw = f.read(n)
    except OSError as e:
        raise fail("E506", f"cannot read '{path}': {e.strerror or e}", None) from None
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise _bad(path, f"its header is not valid JSON ({e})") from None
    except RecursionError:  # `[[[[...]]]]`: no real header nests deeply
        raise _bad(path, "its header is nested too deeply") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    data_start, data_size = 8 + n, size - 8 - n
    entries, ranges = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = isinstance(dtype, str) and all(type(d) is int and d >= 0 for d in shape) \
                and type(begin) is int and type(end) is int
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise _bad(path, f"the header entry of '{name}' is malformed")
        if not 0 <= begin <= end <= data_size:
            raise _bad(path, f"tensor '{name}' lies outside the file (bytes {begin}-{end} of "
                       f"{data_size:,}): the file is truncated or corrupt")
        itemsize = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}.get(dtype)
        if itemsize is not None and end - begin != volume(shape) * itemsize:
            raise _bad(path, f"tensor '{name}' declares {fmt_shape(shape)} {dtype} but holds "
                       f"{end - begin:,} bytes")
        ranges.append((begin, end, name))
        entries[name] = _Entry(name, dtype, tuple(shape),
                               _reader(path, data_start + begin, dtype, tuple(shape)))
    ranges.sort()
    for (b1, e1, n1), (b2, e2, n2) in zip(ranges, ranges[1:]):
        if b2 < e1:
            raise _bad(path, f"tensors '{n1}' and '{n2}' overlap in the file")
    return entries


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"the tensor '{dup}' is declared twice")
    return dict(pairs)


def _reader(path: str, offset: int, dtype: str, shape: tuple[int, ...]):
    def read() -> np.ndarray:
        storage = SAFETENSORS_DTYPES[dtype]
        count = volume(shape)
        with open(path, "rb") as f:
            f.seek(offset)
            data = np.fromfile(f, dtype=storage, count=count)
        if data.size != count:
            raise _bad(path, "the file ended early: it is truncated")
        if dtype == "BF16":  # bfloat16 is the top half of a float32
            data = (data.astype(np.uint32) << 16).view(np.float32)
        return data.astype(np.float32, copy=False).reshape(shape)

    return read


def _npz(path: str) -> dict[str, _Entry]:
    """An .npz archive of .npy arrays, read without unpickling and header-first."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise _bad(path, f"it is not a valid .npz (zip) file ({e})") from None
    entries = {}
    with archive:
        names = archive.namelist()
        if len(names) != len(set(names)):
            raise _bad(path, "the archive holds two entries of the same name")
        for member in archive.infolist():
            if not member.filename.endswith(".npy"):
                continue
            name = member.filename[:-4]
            try:
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    # the public readers (numpy 2 has no np.lib.format._read_array_header);
                    # version 3.0 only differs for non-Latin-1 field names, never for weights
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read_header is None:
                        raise ValueError(f".npy format version {version} is not supported")
                    shape, fortran, dtype = read_header(f, max_header_size=10000)
                    header_len = f.tell()
            except Exception as e:  # numpy and zipfile raise many kinds; all mean "corrupt"
                raise _bad(path, f"the entry '{member.filename}' is not a valid .npy array "
                           f"({e})") from None
            if dtype.hasobject:
                raise _bad(path, f"the entry '{name}' holds Python objects, which netc never "
                           "unpickles")
            if member.file_size != header_len + volume(shape) * dtype.itemsize:
                raise _bad(path, f"the entry '{name}' declares {fmt_shape(shape)} values of "
                           f"{dtype} but its size does not match: the file is corrupt")
            entries[name] = _Entry(name, dtype if dtype in NUMPY_KINDS else str(dtype),
                                   tuple(shape), _npz_reader(path, member.filename, header_len,
                                                             dtype, tuple(shape), fortran))
    return entries


def _npz_reader(path, member, header_len, dtype, shape, fortran):
    def read() -> np.ndarray:
        nbytes = volume(shape) * dtype.itemsize
        try:
            with zipfile.ZipFile(path) as archive, archive.open(member) as f:
                f.read(header_len)
                data = f.read(nbytes)
        except Exception as e:  # a bad CRC, corrupt deflate data, a file changed meanwhile
            raise _bad(path, f"the entry '{member}' is corrupt ({e})") from None
        if len(data) != nbytes:
            raise _bad(path, f"the entry '{member}' ended early: it is truncated")
        array = np.frombuffer(data, dtype=dtype)
        array = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
        return np.ascontiguousarray(array, dtype=np.float32)

    return read


# --- writing ---------------------------------------------------------------------------------


def save_weights(path: str, tensors: dict[str, np.ndarray]) -> None:
    """Write named float32 tensors to .safetensors (via the safetensors package) or .npz,
    atomically."""
    from .files import write_atomic

    if path.endswith(".safetensors"):
        from safetensors.numpy import save

        data = save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()})
    elif path.endswith(".npz"):
        import io

        buf = io.BytesIO()
        np.savez(buf, **tensors)
        data = buf.getvalue()
    else:
        raise fail("E507", f"'{path}': netc writes weights to .safetensors or .npz files", None)
    write_atomic(path, data)


def onnx_weights(path: str) -> dict[str, np.ndarray]:
    """The initializers of an ONNX model (external data included), by name. The model's
    external-data references are checked first (`check_onnx_file`)."""
    from onnx import numpy_helper
    from onnx.external_data_helper import load_external_data_for_model

    model = check_onnx_file(path)
    try:
        load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
    except Exception as e:  # checked above; a file changed meanwhile, or a read error
        raise fail("E604", f"cannot read the external data of '{path}': {e}", None) from None
    found = {}
    # a --uint8-input model's normalisation constants are part of its front end, not weights
    # of the spec's layers: `netc weights` leaves them out, so its file loads with --weights
    props = {p.key: p.value for p in model.metadata_props}
    front = set()
    if "netc.input" in props and "netc.preprocess" in props:
        from .images import from_metadata

        try:
            preprocess, _ = from_metadata({"netc.preprocess": props["netc.preprocess"]})
            name = preprocess.input
        except ValueError:  # a record netc did not write: no front end to leave out
            name = None
        if isinstance(name, str):
            front = {f"{name}/normalize.{p}" for p in
                     ("weight", "bias", "running_mean", "running_var")}
    for t in model.graph.initializer:
        if t.name in front:
            continue
        try:
            found[t.name] = numpy_helper.to_array(t)
        except Exception as e:  # data that doesn't fill its declared shape, an odd dtype
            raise fail("E604", f"'{path}': the initializer '{t.name}' is not a valid tensor "
                       f"({e})", None) from None
    return found


# ONNX element types by size in bytes, to check external data's lengths against the dims
_ONNX_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
                  14: 8, 15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1}


def _all_tensors(graph):
    """Every TensorProto of a graph: initializers, sparse ones, attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for g in attr.graphs:
                yield from _all_tensors(g)


def check_onnx_file(path: str):
    """Read the ONNX model at `path` without its external data, and check every
    external-data reference before onnx or ONNX Runtime follows one: its location must name a
    file inside the model's folder (no absolute path, no `..`, no symbolic link: ONNX has had
    three path-traversal CVEs here, and onnx itself refuses links), and its offset and length
    must lie inside that file and match the tensor's shape. Returns the model (without the
    data); raises E604 naming the file, the tensor and the location."""
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf and onnx raise many kinds
        raise fail("E604", f"cannot read '{path}' as an ONNX model: {e}", None) from None
    folder = os.path.dirname(os.path.abspath(path))
    real_folder = os.path.realpath(folder)
    hint = ("netc reads external data only from files inside the model's folder; move the "
            "data file beside the model and set each tensor's `location` to its file name")

    def bad(t, problem: str, hints=(hint,)) -> NetcError:
        return fail("E604", f"'{path}': tensor '{t.name}' {problem}", None, hints=list(hints))

    sizes: dict[str, int] = {}
    for t in _all_tensors(model.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        shown = repr(location)
        if not location or "\0" in location:
            raise bad(t, f"has external data without a valid location ({shown})")
        parts = re.split(r"[/\\]", location)
        if os.path.isabs(location) or location[:1] in "/\\" or re.match(r"[A-Za-z]:", location):
            raise bad(t, f"stores its data at the absolute path {shown}")
        if ".." in parts:
            raise bad(t, f"stores its data at {shown}, outside the model's folder")
        target = os.path.realpath(os.path.join(folder, location))
        if os.path.commonpath([real_folder, target]) != real_folder:
            raise bad(t, f"stores its data at {shown}, a symbolic link that leads outside "
                      "the model's folder")
        linked = [os.path.join(folder, *parts[:i]) for i in range(1, len(parts) + 1)]
        if any(os.path.islink(p) for p in linked):  # onnx refuses them too
            raise bad(t, f"stores its data at {shown}, through a symbolic link: netc follows "
                      "none in external data")
        if target not in sizes:
            if not os.path.isfile(target):
                raise bad(t, f"stores its data in {shown}, which is not a file beside the "
                          "model", hints=["copy the model's data file along with it"])
            sizes[target] = os.path.getsize(target)
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else None
        except ValueError:
            raise bad(t, "has a malformed external-data offset or length", hints=()) from None
        itemsize = _ONNX_ITEMSIZE.get(t.data_type)
        need = volume(t.dims) * itemsize if itemsize and all(d >= 0 for d in t.dims) else None
        if offset < 0 or (length is not None and length < 0):
            raise bad(t, "has a negative external-data offset or length", hints=())
        if length is not None and need is not None and length != need:
            raise bad(t, f"declares {fmt_shape(tuple(t.dims))} values ({need:,} bytes) but "
                      f"its external data is {length:,} bytes", hints=())
        end = offset + (length if length is not None else need or 0)
        if end > sizes[target]:
            raise bad(t, f"needs bytes {offset:,}-{end:,} of {shown}, which holds "
                      f"{sizes[target]:,}: the data file is truncated or not this model's",
                      hints=())
    return model
