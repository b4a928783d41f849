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
            provider_options: dict | None = None):
    """An InferenceSession on exactly `provider` (cpu or cuda), or a netc error (E601).
    `provider_options` go to that provider (for cuda, e.g. {"prefer_nhwc": "1"})."""
    ort = _ort()
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
        hint = ("is the file a complete ONNX model (with its .data file beside it)?"
                if isinstance(model, str) else
                "a model netc built should always load: please report this as a netc bug")
        raise fail("E604", f"ONNX Runtime could not load the model: {e}", None,
                   hints=[hint]) from None
    if wanted not in sess.get_providers():
        reason = _last_error(said) or "ONNX Runtime gave no reason"
        raise fail("E601", f"the {provider.upper()} execution provider could not be created, and "
                   "netc does not fall back to the CPU silently", None,
                   details=[f"ONNX Runtime said: {reason}"],
                   hints=["check that a GPU is visible (nvidia-smi) and that the CUDA and cuDNN "
                          "libraries onnxruntime-gpu needs are installed",
                          "or run with --provider cpu"])
    return sess


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
