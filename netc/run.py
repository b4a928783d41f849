"""ONNX Runtime: sessions on a named provider, inputs, and running a model.

onnxruntime is imported here only, and lazily, so `netc check` and `netc summary` never pay
for it. ONNX Runtime falls back to the CPU silently when the CUDA provider cannot be created;
netc refuses instead, and says why.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from .errors import fail

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


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
        from .weights import check_onnx_file

        check_onnx_file(model)
    wanted = PROVIDERS[provider]
    if wanted not in ort.get_available_providers():
        raise fail("E601", f"this onnxruntime ({ort.__version__}) was built without the "
                   f"{provider.upper()} execution provider", None,
                   hints=["install onnxruntime-gpu (and CUDA 12/13 with cuDNN 9) for --provider cuda"])
    first = (wanted, provider_options) if provider_options else wanted
    providers = [first] if provider == "cpu" else [first, "CPUExecutionProvider"]
    log = _Capture() if provider != "cpu" else None
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
    """(name, shape) of each model input; symbolic dimensions are strings."""
    return [(i.name, list(i.shape)) for i in sess.get_inputs()]


def random_inputs(sess, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float32 inputs, with symbolic dimensions set to `batch`."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in input_specs(sess):
        dims = [batch if not isinstance(d, int) else d for d in shape]
        feeds[name] = rng.standard_normal(dims, dtype=np.float32)
    return feeds


def check_input(sess, name: str, array: np.ndarray, batch: int | None) -> np.ndarray:
    """Validate a user-provided input array against the model's declared input."""
    declared = dict(input_specs(sess))[name]
    if array.dtype != np.float32:
        if array.dtype.kind not in "fiu":
            raise fail("E602", f"input '{name}' must hold numbers, not {array.dtype}", None)
        array = array.astype(np.float32)
    if array.ndim != len(declared) or any(
            isinstance(d, int) and d != a for d, a in zip(declared, array.shape)):
        want = "×".join(str(d) for d in declared)
        got = "×".join(str(a) for a in array.shape)
        raise fail("E602", f"input '{name}' must be {want}, the file holds {got}", None)
    return array
