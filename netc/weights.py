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
from .layers.base import FLOATS, fmt_shape, gaussian_kernel, parse_init, volume

DEFAULT_SEED = 0
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
    if 2 * bound <= FLOATS["float32"][0]:
        out *= np.float32(2 * bound)
        out -= np.float32(bound)
    else:  # (2a is past float32 for an a above 1.7e38: u·2 - 1 first, then · a)
        out *= np.float32(2)
        out -= np.float32(1)
        out *= np.float32(bound)
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
    read: object  # () -> its values as the file holds them (a float array)


# "did you mean ...?" hints compare names with difflib: only for the diagnostics shown
# (errors.SHOW_PER_CODE), and among at most this many candidates. A file of 200,000 misnamed
# tensors is no misspelling, and comparing every pair took 17 s of a 29 s refusal.
MAX_NEAR = 1000


def read_weights(path: str, graph: Graph, allow_missing: bool = False,
                 warnings: Diagnostics | None = None) -> dict[str, np.ndarray]:
    """The graph's weights from a .safetensors or .npz file, matched by name, as float32.

    Raises one NetcError listing every missing, unexpected, wrongly shaped and wrongly typed
    tensor (E501-E505); once the names, shapes and dtypes match, every tensor holding NaN, an
    infinity or a value beyond float32's range (E508, at its layer: netc writes no such value
    into a model). With `allow_missing`, missing tensors are left out of the result (the
    caller initialises them) and listed in `warnings`.
    """
    from .errors import SHOW_PER_CODE

    entries = _declared(path)
    # PyTorch's batchnorm counts its training steps in a buffer inference never reads
    entries = {k: v for k, v in entries.items() if not k.endswith(".num_batches_tracked")}
    expected = {w.name: w for w in graph.weights}
    spans = {w.name: n.span for n in graph.nodes for w in n.weights}
    first: dict[str, str] = {}  # layer -> its first tensor, where the layer's problems point
    for name in expected:
        first.setdefault(name.rsplit(".", 1)[0], name)
    diags = Diagnostics()
    missing = [name for name in expected if name not in entries]
    unexpected = [name for name in entries if name not in expected]
    for i, name in enumerate(unexpected):
        near = _near(name, missing) if i < SHOW_PER_CODE else None
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
        diags.error(code, f"in '{path}', {'; '.join(problems)}", spans[first[layer]],
                    hints=hints.get(layer, []))
    if missing and not allow_missing:
        by_layer: dict[str, list[str]] = {}
        for name in missing:
            by_layer.setdefault(name.rsplit(".", 1)[0], []).append(name)
        for i, (layer, names) in enumerate(by_layer.items()):
            nears = [n for n in (_near(name, unexpected) for name in names) if n] \
                if i < SHOW_PER_CODE else []
            listed = ", ".join(f"'{n}'" for n in names)
            diags.error("E502", f"'{path}' has no tensor{'s' * (len(names) > 1)} {listed}",
                        spans[names[0]],
                        hints=[f"the file has '{nears[0]}': rename the layer or the tensor"]
                        if nears else [])
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
    for name in expected:
        if name in entries:
            found[name] = _float32(path, name, entries[name].read(), spans[name], diags)
            if expected[name].spec.nonnegative:
                _nonnegative(path, name, found[name], spans[name], diags)
    diags.raise_if_errors()
    if missing and warnings is not None:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        one = len(missing) == 1
        warnings.warning("W501", f"{len(missing)} tensor{'' if one else 's'} "
                         f"{'is' if one else 'are'} not in '{path}' and "
                         f"{'was' if one else 'were'} initialised: {shown}", None)
    return found


def _near(name: str, candidates: list[str]) -> str | None:
    """A candidate that is probably the same tensor under a slightly different layer name
    (None among more than MAX_NEAR candidates)."""
    if len(candidates) > MAX_NEAR:
        return None
    layer, _, param = name.rpartition(".")
    same_param = [c.rpartition(".")[0] for c in candidates if c.rpartition(".")[2] == param]
    near = closest(layer, same_param, cutoff=0.8) if same_param else None
    return f"{near}.{param}" if near else None


# --- values: finite, and within the range of the dtype they are stored in -------------------
#
# netc writes no NaN, no infinity and no value its dtype can't hold into a model, whatever
# made it: a weights file (refused as it is read, `_float32`), --fold-bn, an initial value, the
# cast to float16 (emit.Lowered.value, the one place every weight becomes bytes). The check
# reads each tensor once more, in chunks that stay in the cache, without a temporary of its
# size: 40-60 ms for VGG-16's 138 M float32 values here (under 2 % of its 3.2 s compile).

CHECK_CHUNK = 1 << 16  # values per step (a 64 KiB mask, in L2)


def all_finite(array: np.ndarray) -> bool:
    """Whether every value of a float array is finite (True for other dtypes)."""
    if array.dtype.kind != "f" or array.size == 0:
        return True
    flat = array.reshape(-1)  # (a copy only for an array that isn't contiguous)
    if flat.dtype.itemsize == 2:
        return _float16_finite(flat)
    mask = np.empty(min(flat.size, CHECK_CHUNK), dtype=bool)
    for start in range(0, flat.size, CHECK_CHUNK):
        part = flat[start:start + CHECK_CHUNK]
        ok = mask[:part.size]
        np.isfinite(part, out=ok)
        if not ok.all():
            return False
    return True


def _float16_finite(flat: np.ndarray) -> bool:
    """`all_finite` for float16, on its bits: numpy's isfinite has no fast float16 path (230
    ms for VGG-16's values, against 35 ms here). A float16 is NaN or infinite exactly when
    its five exponent bits are all ones: without the sign bit, 0x7C00 or more."""
    bits = flat.view(np.uint16)
    buffer = np.empty(min(bits.size, CHECK_CHUNK), dtype=np.uint16)
    for start in range(0, bits.size, CHECK_CHUNK):
        part = bits[start:start + CHECK_CHUNK]
        magnitude = buffer[:part.size]
        np.bitwise_and(part, 0x7FFF, out=magnitude)
        if magnitude.max() >= 0x7C00:
            return False
    return True


def bad_values(values: np.ndarray, stored: np.ndarray) -> tuple[str, dict[str, int]]:
    """What is wrong with a tensor whose `stored` form (a float array, `values` converted to
    its dtype) is not all finite: ("holds 1 value of 108 beyond float32's range (±3.4028235e+38):
    [0, 0, 0, 0] = 1e+300", and its counts by kind: nan, inf, over). Indices and values are those
    of `values`, the first bad one in C order. Called only once a tensor failed `all_finite`."""
    dtype = stored.dtype.name
    limit = float(np.finfo(stored.dtype).max)
    with np.errstate(all="ignore"):
        given = np.asarray(values).reshape(-1)
        bad = ~np.isfinite(stored.reshape(-1))
        nan = int(np.isnan(given).sum())
        inf = int(np.isinf(given).sum())
        count = int(bad.sum())
    counts = {"nan": nan, "inf": inf, "over": count - nan - inf}
    at = int(np.argmax(bad))
    index = ", ".join(str(int(i)) for i in np.unravel_index(at, stored.shape))
    value = float(given[at])
    shown = "NaN" if np.isnan(value) else f"{value:.8g}".replace("inf", "infinity")
    one = count == 1
    kinds = [(counts["nan"], "NaN"), (counts["inf"], "infinite"),
             (counts["over"], f"beyond {dtype}'s range (±{limit:,.8g})")]
    present = [(n, what) for n, what in kinds if n]
    of = f"{count:,} value{'s' * (not one)} of {stored.size:,}"
    if len(present) == 1:
        what = present[0][1]
        said = f"{of} {'that ' + ('is' if one else 'are') + ' ' if what[0] != 'b' else ''}{what}"
    else:
        said = f"{of} that {dtype} can't hold (" + ", ".join(
            f"{n:,} {w}" for n, w in present) + ")"
    where = f"[{index}] = {shown}" if stored.ndim else f"its value is {shown}"
    return f"holds {said}: {where}" if one else f"holds {said}; the first is {where}", counts


def _float32(path: str, name: str, values: np.ndarray, span, diags: Diagnostics) -> np.ndarray:
    """A tensor read from a weights file as float32 (exact but for float64's rounding); E508
    in `diags`, at the layer, where it holds NaN, an infinity, or a value float32 can't hold."""
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.ascontiguousarray(values, dtype=np.float32)
    if not all_finite(array):
        said, counts = bad_values(values, array)
        hints = []
        if counts["nan"] or counts["inf"]:
            hints.append("NaN and infinities are not weights (a training run that diverged, or "
                         "a broken export): netc writes none into a model; export the weights "
                         "again from a good checkpoint")
        if counts["over"]:
            hints.append("netc stores weights as float32, and no trained weight is this large: "
                         "check how the file was written (a wrong dtype or scale?)")
        diags.error("E508", f"in '{path}', '{name}' {said}", span, hints=hints)
    return array


def _nonnegative(path: str, name: str, array: np.ndarray, span, diags: Diagnostics) -> None:
    """E508 where a tensor that can't be negative (a batchnorm's running_var: the model
    divides by its square root) holds negative values; NaN is `_float32`'s to report."""
    with np.errstate(invalid="ignore"):
        negative = array < 0
    count = int(np.count_nonzero(negative))
    if count:
        first = tuple(int(i) for i in np.argwhere(negative)[0])
        index = ", ".join(str(i) for i in first)
        diags.error("E508", f"in '{path}', '{name}' holds {count:,} negative value"
                    f"{'s' * (count != 1)} of {array.size:,}; the first is [{index}] = "
                    f"{float(array[first]):.6g}", span,
                    details=["a variance is never negative: the layer divides by "
                             "sqrt(running_var + eps), which is NaN for these channels"],
                    hints=["the checkpoint is corrupt or its tensors were swapped (is "
                           "running_mean stored as running_var?): export it again"])


# --- weights files ---------------------------------------------------------------------------


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


def _regular(path: str) -> os.stat_result:
    """The status of the weights file at `path`, which must be a regular file that can be
    read (E506, `load.regular_file`: a FIFO would block the read forever, a device never
    ends), noted as an input of this run (no output of the run may replace it)."""
    from .files import note_input
    from .load import regular_file

    st = regular_file(path, "E506")
    note_input(path, "the weights file", st)
    return st


# safetensors' own limit on the header (safetensors/src/tensor.rs, MAX_HEADER_SIZE)
MAX_HEADER = 100_000_000
# bytes per value of each safetensors dtype, to word a refusal
_ST_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
                "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
                "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def _safetensors(path: str) -> dict[str, _Entry]:
    """The tensors a safetensors file declares. safetensors' own reader validates the file
    before netc uses a byte of it (a header within the file and 100,000,000 bytes, UTF-8 JSON
    of its form, known dtypes, each tensor's bytes matching its shape, the tensors tiling the
    data exactly: no gap, no overlap, nothing past the end); when it refuses one, `_refusal`
    says why in numbers. netc then reads the data itself, later and only for the tensors the
    spec uses, where the validated header puts them: np.fromfile reads VGG-16's 528 MB in
    0.15 s where safetensors' numpy reader takes 0.54 s (it copies twice), and that reader
    refuses bfloat16, which numpy lacks."""
    from safetensors import SafetensorError, safe_open

    _regular(path)
    try:
        with safe_open(path, framework="numpy") as handle:
            declared = {}
            for name in handle.keys():
                view = handle.get_slice(name)
                declared[name] = (view.get_dtype(), tuple(view.get_shape()))
    except SafetensorError as e:
        raise _bad(path, _refusal(path, str(e))) from None
    except OSError as e:  # gone or unreadable since: safetensors' message names the file
        raise _bad(path, getattr(e, "strerror", None) or str(e)) from None
    changed = _bad(path, "the file changed while netc read it")
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n)) if n <= MAX_HEADER else None
    except (OSError, ValueError, struct.error, RecursionError):
        raise changed from None
    if not isinstance(header, dict):
        raise changed
    entries = {}
    for name, (dtype, shape) in declared.items():
        info = header.get(name)  # as safetensors saw it, unless the file was replaced
        try:
            if info["dtype"] != dtype or info["shape"] != list(shape):
                raise changed
            begin = int(info["data_offsets"][0])
        except (KeyError, TypeError, ValueError, IndexError):
            raise changed from None
        entries[name] = _Entry(name, dtype, shape, _st_reader(path, 8 + n + begin, dtype, shape))
    return entries


def _st_reader(path: str, offset: int, dtype: str, shape: tuple[int, ...]):
    def read() -> np.ndarray:
        count = volume(shape)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = np.fromfile(f, dtype=SAFETENSORS_DTYPES[dtype], count=count)
        except OSError as e:
            raise _bad(path, e.strerror or str(e)) from None
        if data.size != count:
            raise _bad(path, "the file ended early: it is truncated")
        if dtype == "BF16":  # bfloat16 is the top half of a float32
            data = (data.astype(np.uint32) << 16).view(np.float32)
        return data.reshape(shape)

    return read


def _refusal(path: str, said: str) -> str:
    """Why safetensors refused the file at `path` (`said`: its message), in netc's words and
    with the numbers (which tensor, which bytes). It decides nothing (safetensors did): it
    reads the header again only to word the refusal, and where it finds nothing to add,
    safetensors' own words stand."""
    reason = said.removeprefix("Error while deserializing header: ")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return "the file is too short to be a safetensors file"
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or n > size - 8:
                return f"its header claims {n:,} bytes; the file has {size:,}"
            raw = f.read(n)
    except OSError:
        return f"it is not a valid safetensors file ({reason})"
    return _header_problem(raw, size - 8 - n) or f"it is not a valid safetensors file ({reason})"


def _header_problem(raw: bytes, data_size: int) -> str | None:
    """The first thing wrong with a safetensors header `raw` before `data_size` bytes of data,
    in words, or None."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        return f"its header is not valid JSON ({e})"
    except RecursionError:  # `[[[[...]]]]`: no real header nests deeply
        return "its header is nested too deeply"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    ranges = []
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
            return f"the header entry of '{name}' is malformed"
        if not 0 <= begin <= end:  # (a range that runs backwards: no bytes to name)
            return (f"the header entry of '{name}' has data offsets that run backwards "
                    f"(it begins after it ends): the file is corrupt")
        if end > data_size:
            return (f"tensor '{name}' lies outside the file (bytes {begin:,}-{end:,} of "
                    f"{data_size:,}): the file is truncated or corrupt")
        # (a dtype not listed, newer or unknown, is left to safetensors' words)
        if dtype in _ST_ITEMSIZE and end - begin != volume(shape) * _ST_ITEMSIZE[dtype]:
            return (f"tensor '{name}' declares {fmt_shape(shape)} {dtype} but holds "
                    f"{end - begin:,} bytes")
        ranges.append((begin, end, name))
    ranges.sort()
    position = 0
    for (b1, e1, n1), (b2, e2, n2) in zip(ranges, ranges[1:]):
        if b2 < e1:
            return f"tensors '{n1}' and '{n2}' overlap in the file"
    for begin, end, name in ranges:
        if begin != position:
            return f"bytes {position:,}-{begin:,} of the data belong to no tensor"
        position = end
    if position != data_size:
        return (f"the data is {data_size:,} bytes and its tensors end at byte {position:,}: "
                "the file is corrupt, or has data appended")
    return None


def _no_duplicates(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the tensor '{key}' is declared twice")
        seen.add(key)
    return dict(pairs)


def _npz(path: str) -> dict[str, _Entry]:
    """An .npz archive of .npy arrays: zipfile reads the archive and numpy.lib.format each
    member's header (and, later, its data), never unpickling. netc adds what they lack: each
    member's size checked against its header before any data is read (zip bombs), and names
    that are no tensor's refused (a NUL, two members of one name)."""
    _regular(path)
    try:
        archive = zipfile.ZipFile(path)
    except UnicodeDecodeError as e:  # zip's flag bit 11 says UTF-8, and a name isn't
        raise _bad(path, f"a member's name is not valid UTF-8 (byte 0x{e.object[e.start]:02x}), "
                   "though the archive says its names are") from None
    except Exception as e:  # zipfile raises many kinds on a corrupt archive; all mean that
        raise _bad(path, f"it is not a valid .npz (zip) file ({e})") from None
    entries = {}
    with archive:
        names = archive.namelist()
        if len(names) != len(set(names)):
            seen: set[str] = set()
            dup = next(n for n in names if n in seen or seen.add(n))
            raise _bad(path, f"the archive holds two members named {dup!r}")
        # np.load's keys: a member's name without its `.npy`, if it has one (numpy's NpzFile);
        # `c.weight.npy` and `c.weight` are then both 'c.weight', and np.load would give one
        # of them without a word
        keys: dict[str, str] = {}
        for member in names:
            key = member.removesuffix(".npy")
            if key in keys:
                raise _bad(path, f"the members {keys[key]!r} and {member!r} are both the "
                           f"tensor '{key}' (np.load drops the `.npy` of a member's name): "
                           "which one is meant is not clear")
            keys[key] = member
        for member in archive.infolist():
            if member.orig_filename != member.filename:  # zipfile cuts a name at a NUL
                raise _bad(path, f"the member name {member.orig_filename!r} holds a NUL "
                           "character")
            name = member.filename.removesuffix(".npy")
            try:
                with archive.open(member) as f:
                    if name == member.filename and f.read(6) != b"\x93NUMPY":
                        continue  # np.load gives such a member as bytes: it is no array
                    if name == member.filename:
                        f.seek(0)
                    shape, _, dtype, header_len = npy_header(f)
            except Exception as e:  # numpy and zipfile raise many kinds; all mean "corrupt"
                raise _bad(path, f"the entry '{member.filename}' is not a valid .npy array "
                           f"({e})") from None
            if dtype.hasobject:
                raise _bad(path, f"the entry '{name}' holds Python objects, which netc never "
                           "unpickles")
            need = header_len + volume(shape) * dtype.itemsize
            if member.file_size != need:
                # (bytes past the data are refused too, as in an --input .npy: the member
                # is not what its header says)
                said = ("it is shorter" if member.file_size < need else
                        f"it has {member.file_size - need:,} bytes past the data")
                raise _bad(path, f"the entry '{name}' declares {fmt_shape(shape) or 'a scalar'}"
                           f" values of {dtype} ({need:,} bytes with its header) but its size "
                           f"does not match ({member.file_size:,} bytes: {said}): the file is "
                           "corrupt")
            entries[name] = _Entry(name, dtype if dtype in NUMPY_KINDS else str(dtype),
                                   tuple(shape), _npz_reader(path, member.filename))
    return entries


class NpyHeaderError(ValueError):
    """A .npy header that numpy.lib.format reads but that declares no array of numbers."""


def npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length in bytes) of the .npy array whose header
    starts at `f`'s position, read by numpy.lib.format's public readers, in any format version
    np.load reads (1.0, 2.0, 3.0). Version 3.0 differs from 2.0 only in its header's encoding
    (UTF-8 for Latin-1), which matters only for non-ASCII field names of structured dtypes,
    dtypes netc refuses anyway: read_array_header_2_0 reads its header. netc adds what numpy
    lacks: a shape of non-negative integers (numpy takes True and -4 as sizes). numpy's
    warnings (a Python 2 header) never reach the user. Raises ValueError (numpy's) or
    NpyHeaderError, in words."""
    import warnings

    start = f.tell()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
                (3, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise NpyHeaderError(f".npy format version {version[0]}.{version[1]} is not one "
                                 "numpy reads (1.0, 2.0, 3.0)")
        shape, fortran, dtype = read(f, max_header_size=10000)
    if not all(type(d) is int and d >= 0 for d in shape):
        shown = repr(tuple(shape))[:80]
        raise NpyHeaderError(f"its header's shape {shown} is not a list of sizes (whole "
                             "numbers 0 or more)")
    return tuple(shape), fortran, dtype, f.tell() - start


def _npz_reader(path: str, member: str):
    def read() -> np.ndarray:
        # read only for a tensor whose header matched the spec's shape and the member's size
        import warnings

        try:
            with zipfile.ZipFile(path) as archive, archive.open(member) as f, \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (a Python 2 header: read, not shown)
                return np.lib.format.read_array(f, allow_pickle=False, max_header_size=10000)
        except Exception as e:  # a bad CRC, corrupt deflate data, a file changed meanwhile
            raise _bad(path, f"the entry '{member}' is corrupt ({e})") from None

    return read


# --- writing ---------------------------------------------------------------------------------


def save_weights(path: str, tensors: dict[str, np.ndarray]) -> None:
    """Write named float32 tensors to .safetensors (via the safetensors package) or .npz,
    atomically."""
    from .files import write_atomic

    if path.endswith(".safetensors"):
        from safetensors.numpy import save

        with np.errstate(over="ignore", invalid="ignore"):  # (checked: _writable)
            tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
        _writable(path, tensors)
        data = save(tensors)
    elif path.endswith(".npz"):
        import io

        _writable(path, tensors)
        buf = io.BytesIO()
        np.savez(buf, **tensors)
        data = buf.getvalue()
    else:
        raise fail("E507", f"'{path}': netc writes weights to .safetensors or .npz files", None)
    write_atomic(path, data)


def _writable(path: str, tensors: dict[str, np.ndarray]) -> None:
    """E508 naming the first tensor that holds NaN, an infinity or a value beyond float32's
    range (`netc weights` writes no file that `--weights` would refuse)."""
    for name, array in tensors.items():
        stored = array
        if array.dtype.kind == "f":  # what `--weights` makes of it
            with np.errstate(over="ignore", invalid="ignore"):
                stored = np.asarray(array, dtype=np.float32)
        if not all_finite(stored):
            said, _ = bad_values(array, stored)
            raise fail("E508", f"cannot write '{path}': tensor '{name}' {said}", None,
                       hints=["netc writes no NaN or infinity into a weights file or a model: "
                              "fix the values where they come from"])


def onnx_weights(path: str) -> dict[str, np.ndarray]:
    """The initializers of an ONNX model (external data included), by name. The model's
    external-data references are checked first (`check_onnx_file`)."""
    from onnx import numpy_helper
    from onnx.external_data_helper import load_external_data_for_model

    model = check_onnx_file(path)
    try:
        from .files import note_model
    except ImportError:  # (files.py without it)
        pass
    else:
        note_model(path, model)  # the model and its data files: no output may replace them
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
