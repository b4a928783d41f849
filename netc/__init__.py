"""netc: a declarative network compiler, from YAML specs to checked ONNX models.

    import netc
    graph = netc.check_spec("specs/lenet5.yaml")       # shapes, params, MACs; raises NetcError
    model = netc.compile_spec("specs/lenet5.yaml")     # an onnx.ModelProto

    found = []                                         # the warnings `netc check` prints
    graph = netc.check_spec(text="netc: 1\\n...", warnings=found)

The pipeline, one module per stage: load (safe YAML with positions) -> expand (layer
entries) -> check (attributes and shapes -> IR) -> emit (ONNX, written by proto) -> run (ONNX
Runtime); pipeline.py calls them in order. docs/architecture.md is the map.
"""

# (no `from __future__ import annotations`: it would be a public name, `netc.annotations`)
from .errors import Diagnostic, Diagnostics, NetcError
from .version import __version__


def check_spec(path=None, *, text=None, warnings=None):
    """Check a spec and return its graph (`netc.ir.Graph`: every layer with its shapes,
    weights and MACs).

    The spec is the file at `path` (a str or os.PathLike), or, with `text=`, the YAML itself
    (a str or UTF-8 bytes); `path` then only names it in messages, as Python's
    `compile(source, filename)` does (default "<text>"). Text is a keyword of its own rather
    than guessed from a str: `"lenet5.yaml"` is both a file name and a valid YAML document.

    Raises NetcError with every problem found (its `.diagnostics`). The warnings `netc check`
    prints (W2xx) do not stop the check: pass a list (or a `Diagnostics`) as `warnings=` and
    they are added to it, as `netc.Diagnostic`s (`.code`, `.message`, `.render()`)."""
    from .pipeline import check_file, checked, collection_paused, parse_bytes

    if warnings is not None and not hasattr(warnings, "extend"):
        raise TypeError(f"warnings= takes a list or netc.Diagnostics, not {type(warnings).__name__}")
    if text is None:
        if path is None:
            raise TypeError("check_spec() needs a spec: a path, or text=")
        return check_file(path, warnings)
    if isinstance(text, str):
        text = text.encode("utf-8")
    elif not isinstance(text, (bytes, bytearray, memoryview)):
        raise TypeError(f"check_spec(text=...) takes a str or bytes, not {type(text).__name__}")
    name = "<text>" if path is None else str(path)
    with collection_paused():
        return checked(parse_bytes(bytes(text), name), warnings=warnings)


def compile_spec(path=None, seed: int = 0, *, text=None, warnings=None):
    """Check a spec (`path` or `text=`, as for `check_spec`) and build its ONNX model (an
    onnx.ModelProto, opset 17) with the initial weights of `seed`. Raises NetcError for a bad
    spec; warnings go to `warnings=` when given; needs onnx."""
    from .pipeline import Emission, compile_model

    return compile_model(check_spec(path, text=text, warnings=warnings), Emission(seed=seed))


__all__ = ["__version__", "check_spec", "compile_spec", "Diagnostic", "Diagnostics", "NetcError"]
