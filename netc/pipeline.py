"""The driver: load -> expand -> check -> (fold) -> emit, written once.

Read this module as the table of contents of netc (like chibicc's main.c): each stage is one
module, and this is the only place that calls them in order. Every command and the Python
API go through these functions, so a new option or limit is threaded through once.

    parse(path)        load.py (safe YAML, a Span on every node) + expand.py (blocks,
                       repeats, defaults -> a FlatSpec of layer uses)
    check_spec(...)    check.py: attributes and shapes -> an ir.Graph, errors with positions
    checked(path)      both, raising NetcError if the spec has errors
    write(...)         emit.py (fold.py for --fold-bn): the ONNX file(s) on disk
    runnable(...)      the same model for ONNX Runtime: bytes in memory, or a file when the
                       weights are too large for one protobuf message
    compile_model(...) the same model as an onnx.ModelProto (the Python API)

Stages exchange plain values: a SourceFile and a tree of Y-nodes, a FlatSpec, a Graph, ONNX
bytes. Errors are collected within a stage and raised (NetcError) between stages, so a
spec whose structure is broken is never shape-checked.
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass

from .check import Checker
from .errors import Diagnostics, NetcError
from .expand import FlatSpec, flatten
from .ir import Graph
from .limits import DEFAULT, Limits
from .load import YNode, load_bytes, load_file
from .source import SourceFile


@dataclass(frozen=True)
class Parsed:
    """A spec loaded and expanded: its text, its tree (None: an empty document), its flat
    spec (None: the structure is unusable) and the diagnostics so far."""

    source: SourceFile
    root: YNode | None
    spec: FlatSpec | None
    diags: Diagnostics


def parse(path, limits: Limits = DEFAULT) -> Parsed:
    """Load and expand the spec file at `path`. Raises NetcError for a file that can't be
    read or is not YAML a spec may hold (E0xx); expansion errors are in `diags`."""
    with collection_paused():
        source, root = load_file(path, limits)
    return _expand(source, root, limits)


def parse_bytes(data: bytes, path: str = "<spec>", limits: Limits = DEFAULT) -> Parsed:
    """`parse` for a spec's bytes (`path` is only used in messages)."""
    with collection_paused():
        source, root = load_bytes(data, path, limits)
    return _expand(source, root, limits)


def _expand(source: SourceFile, root: YNode | None, limits: Limits) -> Parsed:
    with collection_paused():
        spec, diags = flatten(source, root, limits)
    return Parsed(source, root, spec, diags)


_frozen = False


@contextmanager
def collection_paused():
    """Loading, expansion and checking make many small objects that all live until the stage
    ends (100,000 YAML nodes or layer uses at the limits): a cyclic garbage collection in
    between finds nothing to free, and took a third of a large expansion's time. So it waits
    for the end of the stage; memory is bounded by the limits all the same. The modules,
    classes and functions imported before the first stage (most of the objects a full
    collection would walk, and never garbage) are frozen out of the collector's sight
    (`gc.freeze`) once: a collection after a stage then walks only what is new. The pauses
    nest: a caller that drops a stage's result before its own pause ends (`netc check`) saves
    even that collection."""
    global _frozen
    if not _frozen:  # what the imports made lives as long as the process: out of sight
        gc.freeze()
        _frozen = True
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def check_spec(spec: FlatSpec, diags: Diagnostics, limits: Limits = DEFAULT,
               cache: dict | None = None) -> Graph:
    """Check a flat spec: attributes and shapes. Errors and warnings go to `diags`; the graph
    is valid only if they hold no errors. `cache` keeps attributes between checks of the same
    spec at other input sizes (see check.Checker)."""
    with collection_paused():
        return Checker(spec, diags, limits, cache).run()


def checked(parsed: Parsed, limits: Limits = DEFAULT,
            warnings: Diagnostics | None = None) -> Graph:
    """The checked graph of a parsed spec. Raises NetcError with every error found; the
    warnings go to `warnings` when given."""
    if parsed.spec is None:
        raise NetcError(parsed.diags)
    graph = check_spec(parsed.spec, parsed.diags, limits)
    parsed.diags.raise_if_errors()
    if warnings is not None:
        warnings.extend(parsed.diags)
    return graph


def check_file(path, warnings: Diagnostics | None = None, limits: Limits = DEFAULT) -> Graph:
    """Load, expand and check a spec file (`netc check`). Raises NetcError with every problem
    found; warnings go to `warnings` when given."""
    with collection_paused():
        return checked(parse(path, limits), limits, warnings)


# --- emission --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Emission:
    """How a checked graph becomes a model: the seed of the initial weights, weights loaded by
    name (`<layer>.<param>` -> float32 array, shapes already checked; None: all initial), the
    precision of weights and computation, whether batchnorm is folded into convs, and whether
    the input is raw uint8 pixels N×H×W×C with the declared preprocessing's cast, layout
    change and normalisation inside the model (`--uint8-input`)."""

    seed: int = 0
    weights: dict | None = None
    dtype: str = "float32"
    fold_bn: bool = False
    uint8_input: bool = False


def write(graph: Graph, path: str, emission: Emission = Emission(),
          external: bool | None = None) -> list[str]:
    """Write the ONNX model to `path` atomically; returns the files written (the model, and
    its weights' data file with `external`, by default when they pass 1.5 GiB). The model
    carries the spec's preprocessing and labels in its metadata_props. Raises NetcError
    (E603) when the file can't be written, E606 for `uint8_input` without `preprocess:`."""
    from .emit import write_model

    return write_model(graph, path, emission.seed, emission.weights, external,
                       emission.dtype, emission.fold_bn, emission.uint8_input)


def runnable(graph: Graph, emission: Emission = Emission(), folder: str | None = None):
    """The model for ONNX Runtime: its bytes, or, when the weights are too large for one
    protobuf message, the path of a model written with external data into `folder` (by
    default a temporary folder removed when the process exits). Either carries the same
    metadata_props as the file `write` makes; errors as for `write`."""
    from .emit import EXTERNAL_THRESHOLD, model_bytes, weight_bytes

    if weight_bytes(graph) <= EXTERNAL_THRESHOLD:
        return model_bytes(graph, emission.seed, emission.weights, emission.dtype,
                           emission.fold_bn, emission.uint8_input)
    if folder is None:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="netc-run-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return write(graph, os.path.join(folder, "model.onnx"), emission, external=True)[0]


def compile_model(graph: Graph, emission: Emission = Emission()):
    """The model as an `onnx.ModelProto` (the Python API; imports onnx), metadata_props
    included; E606 for `uint8_input` without `preprocess:`."""
    from .emit import emit

    return emit(graph, emission.seed, emission.weights, emission.dtype, emission.fold_bn,
                emission.uint8_input)
