"""ONNX Runtime: the model a command runs, sessions on a named provider, inputs (checked,
with the fix for each mistake), and running a model.

onnxruntime is imported here only, and lazily, so `netc check` and `netc summary` never pay
for it. ONNX Runtime falls back to the CPU silently when the CUDA provider cannot be created;
netc refuses instead, and says why.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

import numpy as np

from .errors import fail
from .layers.base import fmt_shape as dims  # a shape as netc writes it: N×3×224×224

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


# --- the model: an .onnx file as it is, or a spec compiled in memory ---------------------------


def load_model(args, check=None):
    """(model, graph) for `netc run`: an .onnx path as is (its external data lies beside it)
    and None, or the spec `args.model` checked (warnings to standard error) and compiled in
    memory with `args.seed`, `args.weights` (`args.allow_missing`), `args.dtype` and
    `args.fold_bn` (pipeline.runnable: bytes, or a path for weights past 1.5 GiB), and its
    checked graph. `check(graph)`, if given, runs on a spec's graph before its weights are read
    and it is compiled (a command's own refusal, raised before seconds of compiling). Raises
    NetcError: E001 no such file, E507 --weights with an .onnx model, the spec's and the
    weights file's errors."""
    if args.model.endswith(".onnx"):
        from .load import regular_file

        regular_file(args.model, "E001")  # (a FIFO, a device, a folder: refused, unread)
        if args.weights:
            raise fail("E507", "--weights goes with a spec; an .onnx model has its weights",
                       None)
        from .files import note_input

        note_input(args.model, "the model")  # (no output of this run may replace it)
        return args.model, None
    from .pipeline import Emission, runnable

    graph = spec_graph(args.model, args.limits)
    if check is not None:
        check(graph)
    return runnable(graph, Emission(args.seed, spec_weights(args, graph), args.dtype,
                                    args.fold_bn)), graph


def spec_graph(path: str, limits):
    """The checked graph of the spec at `path`, its warnings printed to standard error;
    NetcError with every error."""
    from .errors import Diagnostics
    from .pipeline import check_file

    warnings = Diagnostics()
    graph = check_file(path, warnings, limits)
    if len(warnings):
        print(warnings.render(), file=sys.stderr)
    return graph


def spec_weights(args, graph) -> dict | None:
    """The weights named by `args.weights` (checked against `graph`; with
    `args.allow_missing`, the missing ones listed on standard error and left to their initial
    values), or None: every tensor gets its initial value."""
    if not args.weights:
        if args.allow_missing:
            raise fail("E507", "--allow-missing goes with --weights FILE", None)
        return None
    from .errors import Diagnostics
    from .weights import read_weights

    # (read_weights refuses a FIFO, a device or a folder unread, and records the file as an
    # input that no output of this run may replace)
    warnings = Diagnostics()
    found = read_weights(args.weights, graph, allow_missing=args.allow_missing,
                         warnings=warnings)
    if len(warnings):
        print(warnings.render(), file=sys.stderr)
    return found


def _ort():
    import onnxruntime

    return onnxruntime


def session(model: bytes | str, provider: str = "cpu", options=None,
            provider_options: dict | None = None, graph=None):
    """An InferenceSession on exactly `provider` (cpu or cuda), or a netc error (E601).
    `provider_options` go to that provider (for cuda, e.g. {"prefer_nhwc": "1"}). A model
    given as a path has its external-data references checked before ONNX Runtime follows
    them. `graph`, when the model was compiled from a spec, lets a failure name the layer
    and its position (`ort_failure`)."""
    ort = _ort()
    if isinstance(model, str):
        from .files import note_model
        from .weights import check_onnx_file

        note_model(model, check_onnx_file(model))  # the model and its data: inputs
    wanted = PROVIDERS[provider]
    if wanted not in ort.get_available_providers():
        raise fail("E601", f"this onnxruntime ({ort.__version__}) was built without the "
                   f"{provider.upper()} execution provider", None,
                   hints=["install onnxruntime-gpu (and CUDA 12/13 with cuDNN 9) for --provider cuda"])
    first = (wanted, provider_options) if provider_options else wanted
    providers = [first] if provider == "cpu" else [first, "CPUExecutionProvider"]
    log = _Capture() if provider != "cpu" else None
    if log is None:
        # ONNX Runtime's own warnings (coloured `[W:onnxruntime ...]` lines, e.g. "Initializer
        # x appears in graph inputs" for a model from elsewhere) are not netc's words and
        # change nothing: only its errors are kept. (A CUDA session's log is captured, not
        # shown: netc reads the reason a provider failed from its warnings.)
        options = options if options is not None else ort.SessionOptions()
        options.log_severity_level = max(options.log_severity_level, 3)
    try:
        if log:
            log.start()
        try:
            sess = ort.InferenceSession(model, sess_options=options, providers=providers)
        finally:
            said = log.stop() if log else ""
    except Exception as e:  # onnxruntime raises its own exception types
        raise ort_failure(e, "load", graph, model if isinstance(model, str) else None) from None
    if wanted not in sess.get_providers():
        reason = _last_error(said) or "ONNX Runtime gave no reason"
        raise fail("E601", f"the {provider.upper()} execution provider could not be created, and "
                   "netc does not fall back to the CPU silently", None,
                   details=[f"ONNX Runtime said: {reason}"],
                   hints=["check that a GPU is visible (nvidia-smi) and that the CUDA and cuDNN "
                          "libraries onnxruntime-gpu needs are installed",
                          "or run with --provider cpu"])
    return sess


def run_model(sess, feeds: dict, graph=None, model=None, provider: str = "cpu") -> list:
    """`sess.run(None, feeds)`, with a failure turned into a netc error naming the layer
    (`ort_failure`). ONNX Runtime's optimisers rename the nodes they fuse (`relu1_nchwc`), so
    on a failure the model (`model`: its bytes or path) is run once more unoptimised, to
    learn the name of the node that fails."""
    try:
        return sess.run(None, feeds)
    except Exception as e:  # onnxruntime raises its own exception types
        error = e
    if model is not None:
        ort = _ort()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 4  # the first failure was logged already
        try:
            plain = ort.InferenceSession(model, sess_options=options,
                                         providers=[PROVIDERS[provider]])
            plain.run(None, feeds)
        except Exception as e:  # the same failure, with the spec's node names
            if _node_name(str(e)) is not None:
                error = e
    raise ort_failure(error, "run", graph, model if isinstance(model, str) else None)


# --- ONNX Runtime's failures, mapped back to the spec -------------------------------------------

# how ONNX Runtime names the node at fault in its messages
_NODE = [re.compile(p) for p in (r"Name:'([^']*)'", r'In Node, \("([^"]*)"',
                                  r"\b[Nn]ode \(([^)]*)\)", r"\bnode '([^']*)'")]
_MEMORY = re.compile(r"failed to allocate|out of memory|bad_alloc|\bOOM\b", re.I)


def _node_name(message: str) -> str | None:
    for pattern in _NODE:
        m = pattern.search(message)
        if m and m[1]:
            return m[1]
    return None


def layer_of(name: str, graph):
    """The graph node (layer) an ONNX node is part of: node names are layer names, helper
    nodes are `<layer>/<Op><n>`, and ONNX Runtime names fused nodes `<node>_<suffix>`."""
    nodes = {n.name: n for n in graph.nodes}
    for candidate in (name, name.split("/", 1)[0]):
        if candidate in nodes:
            return nodes[candidate]
    prefixes = [n for n in nodes if name.startswith(n + "_")]
    return nodes[max(prefixes, key=len)] if prefixes else None


def ort_failure(error: Exception, stage: str, graph=None, path: str | None = None):
    """The NetcError (E604) for ONNX Runtime failing to load (`stage` "load") or to run
    ("run") a model. For a model netc compiled from a spec (`graph` given), it names the layer
    whose node failed and points at the layer in the spec; ONNX Runtime rejecting a model that
    netc checked is a netc bug, and the error says so (`NetcError.bug`: the CLI exits 70).
    Running out of memory is not a bug. `path` is the .onnx file's, for a model from disk."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(error).strip())
    name = _node_name(text)
    node = layer_of(name, graph) if name and graph is not None else None
    doing = "could not load" if stage == "load" else "failed while running"
    what = f"'{path}'" if path else "the model"
    details = [f"ONNX Runtime said: {text[:2000]}"]
    if _MEMORY.search(text):
        return fail("E604", f"ONNX Runtime {doing} {what}: it ran out of memory", None,
                    details=details, hints=["try a smaller --batch, or a machine with more "
                                            "memory"])
    if graph is None:
        at = f" (node '{name}')" if name else ""
        hint = ("is the file a complete ONNX model (with its .data file beside it)?"
                if stage == "load" else "the model fails on this input in ONNX Runtime itself")
        return fail("E604", f"ONNX Runtime {doing} {what}{at}", None, details=details,
                    hints=[hint, "if netc compiled this model, this is a netc bug: please report "
                                 "it with the spec"])
    if node is not None:
        message = f"ONNX Runtime {doing} the model netc built, at layer '{node.name}' ({node.kind})"
    else:
        message = f"ONNX Runtime {doing} the model netc built" + (
            f" (node '{name}')" if name else "")
    err = fail("E604", message, node.span if node is not None else None, details=details,
               hints=["netc checked this spec and built the model, so this is a bug in netc: "
                      "please report it with the spec and this message"])
    err.bug = True
    return err


def _last_error(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes
    text = re.sub(r"^\S+ \S+ \[\w:onnxruntime:[^\]]*\] ", "", text, flags=re.M)  # log prefix
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "rror" in ln or "ailed" in ln]
    return (errors or lines or [""])[-1][:500]


class _Capture:
    """Capture what native code writes to stderr (ONNX Runtime's log) during a call."""

    def start(self) -> None:
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)

    def stop(self) -> str:
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        text = self.file.read().decode("utf-8", "replace")
        self.file.close()
        return text


def input_specs(sess) -> list[tuple[str, list]]:
    """(name, shape) of each model input; symbolic dimensions are strings (ONNX Runtime
    gives None, or a negative size, for a dimension without a name: "?" here). An input that
    is not a tensor (an ONNX sequence or map) has the shape []: input_dtype refuses it."""
    return [(i.name, [d if isinstance(d, str) or (isinstance(d, int) and d >= 0) else "?"
                      for d in (i.shape or [])]) for i in sess.get_inputs()]


# ONNX Runtime's element type names -> numpy's, for the inputs netc can feed
ORT_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
             "tensor(double)": np.float64, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
             "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def input_dtype(sess, name: str):
    """The numpy dtype of input `name`; E602 for one netc cannot feed (strings, booleans)."""
    kind = next(i.type for i in sess.get_inputs() if i.name == name)
    if kind not in ORT_NUMPY:
        raise fail("E602", f"input '{name}' is a {kind}: netc feeds numeric tensors only", None)
    return np.dtype(ORT_NUMPY[kind])


def fixed_batch(shape) -> int | None:
    """The batch (first dimension) of a declared input shape when it is fixed, else None."""
    return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None


def fixed_batch_error(name: str, shape, got: str, spec: bool):
    """E602 for a batch that input `name` (declared `shape`, whose batch is fixed) cannot
    take: `got` says what asked for it ("--batch 10", "a batch of 4 (...) from 'x.npy'"). The fix
    is the same everywhere (`netc run`, `netc bench`, `--image`): N in the spec's `inputs:`,
    which netc keeps symbolic in the model it compiles (`spec`: the model is a spec, else an
    .onnx file)."""
    fixed = shape[0]
    return fail("E602", f"input '{name}' has a fixed batch of {fixed} ({dims(shape)}): {got} "
                "does not fit it", None,
                hints=[f"use --batch {fixed}" if got.startswith("--batch")
                       else f"give {fixed} at a time: np.save(path, x[i:i + {fixed}])",
                       _any_batch(name, shape, spec)])


def _any_batch(name: str, shape, spec: bool) -> str:
    """The fix for a fixed batch: N in the spec's `inputs:` (`image: [N, 3, 224, 224]`)."""
    wanted = f"{name}: [{', '.join(['N', *map(str, shape[1:])])}]"
    where = ("write N for the batch in the spec's `inputs:`" if spec else
             "compile the model from its spec with N for the batch in `inputs:`")
    return f"for any batch size, {where} ({wanted}); netc keeps it symbolic in the model"


def random_inputs(sess, batch: int | None, seed: int = 0, spec: bool = True
                  ) -> dict[str, np.ndarray]:
    """Random inputs of the model's types: standard-normal floats, uint8 pixels 0..255
    (a model compiled with --uint8-input), integers 0..9. Symbolic dimensions become `batch`
    (None: 1); a fixed batch is kept, and a `batch` it cannot take is E602
    (`fixed_batch_error`; `spec`: the model was compiled from a spec, for the hint)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in input_specs(sess):
        fixed = fixed_batch(shape)
        if batch is not None and fixed is not None and fixed != batch:
            raise fixed_batch_error(name, shape, f"--batch {batch}", spec)
        sizes = [(batch or 1) if not isinstance(d, int) else d for d in shape]
        dtype = input_dtype(sess, name)
        too_large(name, sizes)
        if dtype == np.uint8:
            feeds[name] = rng.integers(0, 256, sizes, dtype=np.uint8)
        elif dtype.kind in "iu":
            feeds[name] = rng.integers(0, 10, sizes).astype(dtype)
        else:
            feeds[name] = rng.standard_normal(sizes, dtype=np.float32).astype(dtype, copy=False)
    return feeds


MAX_RANDOM = 1 << 31  # values of one random input (check.MAX_TENSOR's default: 8 GiB of float32)


def too_large(name: str, sizes: list[int]) -> None:
    """E602 before allocating a random input of `sizes` that holds more than MAX_RANDOM
    values: an .onnx model from elsewhere may declare any size (an input of 10^6 × 10^6), and
    numpy would fail on it with its own error, or take all the memory."""
    count = 1
    for d in sizes:
        count *= d
    if count > MAX_RANDOM:
        raise fail("E602", f"input '{name}' is {dims(sizes)}: {count:,} values, more than "
                   f"netc makes at random ({MAX_RANDOM:,})", None,
                   hints=["give the input from a file: --input FILE.npy", "or a smaller "
                          "--batch, if the batch is what makes it large"])


def check_input(sess, name: str, array: np.ndarray, batch: int | None = None,
                source: str = "the file", spec: bool = True) -> np.ndarray:
    """A user's input array (from `source`, e.g. "'x.npy'") checked against the model's
    declared input `name` and converted to its dtype. `batch`: the --batch asked for, which
    the array's first axis must then equal. Raises E602 with a diagnosis and its fix: the
    axes in another order (channels last: the transpose), a missing batch axis (`x[None]`),
    1 channel for 3 or 3 for 1, a batch the model's fixed batch cannot take, values that
    do not fit a uint8 input."""
    declared = dict(input_specs(sess))[name]
    dtype = input_dtype(sess, name)
    if array.dtype.kind not in "fiu":
        raise fail("E602", f"input '{name}' must hold numbers, and {source} holds "
                   f"{array.dtype} values", None,
                   hints=[f"save a numeric array: np.save(path, x.astype(np.{dtype.name}))"])
    problem = shape_problem(name, declared, array.shape, source, spec)
    if problem is not None:
        raise problem
    if array.size == 0:  # a batch of 0 (or a 0 in a symbolic size): nothing to run on
        raise fail("E602", f"{source} holds no values ({dims(array.shape)}): input '{name}' "
                   "needs at least one", None,
                   hints=["save the array with at least one item in each dimension"
                          + (f" (a batch of 1: {dims([1, *array.shape[1:]])})"
                             if array.ndim and array.shape[0] == 0 else "")])
    if batch is not None and array.ndim and array.shape[0] != batch:
        raise fail("E602", f"{source} holds a batch of {array.shape[0]} ({dims(array.shape)}), "
                   f"and --batch says {batch}", None,
                   hints=["leave out --batch: an input file's batch is its first axis"])
    if array.dtype.kind == "f" and not _all_finite(array):
        raise _unfit(name, array, array, source, "float")
    if dtype == np.uint8 and array.dtype != np.uint8:
        whole = array.dtype.kind in "iu" or bool(np.all(np.equal(np.mod(array, 1), 0)))
        if not whole or (array.size and (array.min() < 0 or array.max() > 255)):
            raise fail("E602", f"input '{name}' takes uint8 pixels 0..255 ({dims(declared)}, "
                       f"channels last), and {source} holds {array.dtype} values from "
                       f"{array.min():.4g} to {array.max():.4g}", None,
                       hints=["this model was compiled with --uint8-input: it scales and "
                              "normalises the pixels itself; give it the decoded image "
                              "(np.asarray(image), after the resize and crop) as uint8",
                              "or run it on the image file: --image FILE"])
    return fit_dtype(name, array, dtype, source)


def _all_finite(array: np.ndarray) -> bool:
    from .weights import all_finite

    return all_finite(array)


def fit_dtype(name: str, array: np.ndarray, dtype, source: str = "the file") -> np.ndarray:
    """`array` (finite numbers) as the `dtype` of input `name`, or E602 naming `source`, the
    first value that dtype can't hold and its index: beyond a float dtype's range (float64
    1e300 for a float32 input becomes infinity), or, for an integer input, a fraction or a
    value outside its range. No numpy warning reaches the user: the cast is checked, not
    warned about."""
    dtype = np.dtype(dtype)
    if array.dtype == dtype:
        return array
    with np.errstate(all="ignore"):
        converted = array.astype(dtype)
        if dtype.kind == "f":
            if not _all_finite(converted):
                raise _unfit(name, array, converted, source, dtype.name)
            return converted
        info = np.iinfo(dtype)
        if array.dtype.kind == "f":
            bad = (array < info.min) | (array > info.max) | (np.mod(array, 1) != 0)
        else:
            bad = (array < info.min) | (array > info.max)
    if bad.any():
        raise _unfit(name, array, bad, source, dtype.name)
    return converted


def _unfit(name: str, array: np.ndarray, stored: np.ndarray, source: str, kind: str):
    """E602 for an input array holding values input `name` can't take (`kind`: the input's
    dtype, or "float" for NaN and infinities, which no input takes); `stored` is the array as
    that dtype (a float array, checked for finite values) or, for an integer dtype, a mask of
    the bad values."""
    if stored.dtype == bool:  # an integer input
        count = int(stored.sum())
        at = int(np.argmax(stored.reshape(-1)))
        index = ", ".join(str(int(i)) for i in np.unravel_index(at, array.shape))
        value = array.reshape(-1)[at]
        where = f"[{index}] = {value:.8g}" if array.ndim else f"its value is {value:.8g}"
        said = (f"holds {count:,} value{'s' * (count != 1)} of {array.size:,} that {kind} "
                f"can't hold (a fraction, or outside {np.iinfo(kind).min:,}.."
                f"{np.iinfo(kind).max:,}); the first is {where}")
        hints = [f"input '{name}' takes {kind} values: round and clip them first "
                 f"(np.clip(np.rint(x), {np.iinfo(kind).min}, {np.iinfo(kind).max}))"]
    else:
        from .weights import bad_values

        said, counts = bad_values(array, stored)
        hints = (["NaN and infinities are no input: the model's outputs would be NaN; fix the "
                  "values where they come from"] if counts["nan"] or counts["inf"] else
                 [f"input '{name}' takes {kind} values: scale the array into its range"])
    return fail("E602", f"{source} {said}", None, hints=hints)


def _fits(declared, shape) -> bool:
    return len(declared) == len(shape) and all(
        not isinstance(d, int) or d == a for d, a in zip(declared, shape))


def _layout_fix(declared, shape) -> tuple[str, tuple] | None:
    """The numpy expression that makes an array of `shape` fit `declared`, by reordering
    its axes and/or adding the batch axis (`x.transpose(0, 3, 1, 2)`, `x[None]`), and the
    shape it gives; None when none does. Of several orders that fit (a square image), the one
    closest to the array's own (fewest swaps of neighbouring axes), so that height stays
    before width."""
    import itertools

    best = None
    if len(shape) > 6:  # 7! orders and more: no image array has that many axes
        return None
    for add in (False, True):
        want = declared[1:] if add else declared
        if len(want) != len(shape) or (add and not declared):
            continue
        for order in itertools.permutations(range(len(shape))):
            if _fits(want, [shape[i] for i in order]):
                # the fewest swaps of neighbouring axes: H and W keep their order
                moved = sum(a > b for i, a in enumerate(order) for b in order[i + 1:])
                if best is None or (moved, add) < best[0]:
                    best = ((moved, add), order, add)
    if best is None:
        return None
    _, order, add = best
    expr = "x" if order == tuple(range(len(order))) else f"x.transpose{order}"
    made = ((1,) if add else ()) + tuple(shape[i] for i in order)
    return expr + ("[None]" if add else ""), made


def shape_problem(name: str, declared, shape, source: str = "the file", spec: bool = True):
    """The NetcError (E602) for an array of `shape` given to input `name` (declared
    `declared`), or None when it fits. See `check_input`."""
    shape = tuple(shape)
    if _fits(declared, shape):
        return None
    want, got = dims(declared), dims(shape)
    head = f"input '{name}' must be {want}, and {source} holds {got}"
    fixed = fixed_batch(declared)
    if fixed is not None and len(shape) == len(declared) and _fits(declared[1:], shape[1:]):
        return fixed_batch_error(name, declared, f"a batch of {shape[0]} ({got}) from {source}",
                                 spec)
    image_hint = "or give the image file itself: --image FILE (the preprocessing the spec " \
                 "declares makes it the input)"
    loose = ["N", *declared[1:]] if declared else declared  # the batch is told apart below

    def batch_hints(made) -> list[str]:
        if fixed is None or made[0] == fixed:
            return []
        return [f"the model's batch is fixed at {fixed}; {_any_batch(name, declared, spec)}"]

    found = _layout_fix(loose, shape)
    if found is not None and len(declared) == 4 and declared[1] in (1, 3) and len(shape) == 4 \
            and shape[1] == 4 - declared[1] and _fits(declared[2:], shape[2:]):
        found = None  # 3 channels for 1 (or 1 for 3) in the right layout: not a transposition
    if found is not None:
        fix, made = found
        if fix == "x[None]":
            return fail("E602", f"{head}: it has no batch axis", None,
                        hints=[f"add one: np.save(path, x[None]) makes it {dims(made)}"])
        what = "its axes in another order"
        if len(declared) == 4 and isinstance(declared[1], int) and fix.startswith(
                ("x.transpose(0, 3, 1, 2)", "x.transpose(2, 0, 1)")):
            what = "channels last (H×W×C, as image libraries decode images), and the model " \
                   "takes channels first (C×H×W)"
        if fix.endswith("[None]"):
            what += ", and no batch axis"
        return fail("E602", f"{head}: {what}", None,
                    hints=[f"np.save(path, {fix}) gives the model's layout ({dims(made)})",
                           *batch_hints(made), image_hint])
    # one channel for three, or three for one (with the axes in any order)
    if len(declared) == 4 and declared[1] in (1, 3):
        c = 4 - declared[1]
        found = _layout_fix([loose[0], c, *loose[2:]], shape)
        if found is not None:
            fix, made = found
            names = {1: "1 channel (grayscale)", 3: "3 channels (RGB)"}
            if c == 1:
                how = ("repeat the channel before normalising, as Pillow's convert('RGB') does "
                       f"for a grayscale image: np.repeat({fix}, 3, axis=1)")
            else:
                how = ("convert to grayscale before normalising, as Pillow's convert('L') does: "
                       "L = R × 299/1000 + G × 587/1000 + B × 114/1000")
            return fail("E602", f"{head}: it has {names[c]}, and the model takes "
                        f"{names[declared[1]]}", None,
                        hints=[how, *batch_hints(made), image_hint])
    if len(declared) == 4 and declared[1] in (1, 3) and len(shape) == 2 \
            and _fits(declared[2:], shape):  # one grayscale image: no batch, no channel axis
        fix = "x[None, None]" if declared[1] == 1 else "np.repeat(x[None, None], 3, axis=1)"
        what = "" if declared[1] == 1 else ", and the model takes 3 channels (RGB)"
        return fail("E602", f"{head}: it has neither a batch nor a channel axis{what}", None,
                    hints=[f"np.save(path, {fix}) gives the model's layout"
                           + (" (repeat before normalising, as Pillow's convert('RGB') does)"
                              if declared[1] == 3 else ""), image_hint])
    hints = []
    if len(declared) == 4 and len(shape) in (3, 4):
        hints.append("an image? give the file with --image FILE: the spec's `preprocess:` "
                     "resizes and crops it to the input's size")
    return fail("E602", head, None, hints=hints)
