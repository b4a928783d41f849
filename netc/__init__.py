"""netc: a declarative network compiler, from YAML specs to checked ONNX models.

    import netc
    graph = netc.check_spec("specs/lenet5.yaml")       # shapes, params, MACs; raises NetcError
    model = netc.compile_spec("specs/lenet5.yaml")     # an onnx.ModelProto

The pipeline, one module per stage: load (safe YAML with positions) -> expand (layer
entries) -> check (attributes and shapes -> IR) -> emit (ONNX, written by proto) -> run (ONNX
Runtime).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import Diagnostic, Diagnostics, NetcError  # noqa: E402


def check_spec(path):
    """Check a spec file and return its graph (`netc.ir.Graph`); raises NetcError."""
    from .check import check_file

    return check_file(path)


def compile_spec(path, seed: int = 0):
    """Check a spec and build its ONNX model (an onnx.ModelProto) with initial weights."""
    from .emit import emit

    return emit(check_spec(path), seed=seed)


__all__ = ["__version__", "check_spec", "compile_spec", "Diagnostic", "Diagnostics", "NetcError"]
