"""netc: a declarative network compiler, from YAML specs to checked ONNX models.

    import netc
    graph = netc.check_spec("specs/lenet5.yaml")       # shapes, params, MACs; raises NetcError
    model = netc.compile_spec("specs/lenet5.yaml")     # an onnx.ModelProto

The pipeline, one module per stage: load (safe YAML with positions) -> expand (layer
entries) -> check (attributes and shapes -> IR) -> emit (ONNX, written by proto) -> run (ONNX
Runtime); pipeline.py calls them in order. docs/architecture.md is the map.
"""

from __future__ import annotations

from .errors import Diagnostic, Diagnostics, NetcError
from .version import __version__


def check_spec(path):
    """Check a spec file and return its graph (`netc.ir.Graph`: every layer with its shapes,
    weights and MACs). Raises NetcError with every problem found."""
    from .pipeline import check_file

    return check_file(path)


def compile_spec(path, seed: int = 0):
    """Check a spec and build its ONNX model (an onnx.ModelProto, opset 17) with the initial
    weights of `seed`. Raises NetcError for a bad spec; needs onnx."""
    from .pipeline import Emission, compile_model

    return compile_model(check_spec(path), Emission(seed=seed))


__all__ = ["__version__", "check_spec", "compile_spec", "Diagnostic", "Diagnostics", "NetcError"]
