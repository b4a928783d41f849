"""The spec document -> a flat list of layer uses, each with its positions.

This stage reads the top-level keys (`netc`, `name`, `inputs`, `layers`, `outputs`, `expect`)
and splits each layer entry into its type, its attributes (still YAML nodes, with spans) and
the common keys `name` and `from`. check.py reads the attributes against the layer classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Diagnostics, Note, closest, did_you_mean
from .load import YList, YMap, YNode, YScalar, kind_name
from .source import SourceFile, Span, file_span

FORMAT_VERSION = 1
TOP_KEYS = ("netc", "name", "description", "inputs", "layers", "outputs", "expect")
COMMON_KEYS = ("name", "from")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.\-][A-Za-z0-9_]+)*\Z")
MAX_NAME = 128
MAX_LAYERS = 100_000
MAX_RANK_DIM = 1 << 20  # one dimension of an input


@dataclass(frozen=True)
class LayerUse:
    """One layer entry of a spec, not yet checked against its layer class."""

    kind: str
    kind_span: Span
    attrs: YNode | None  # a mapping of attributes, a scalar shorthand, or None (bare name)
    name: str | None
    name_span: Span | None
    inputs: tuple[tuple[str, Span], ...] | None  # `from`, or None for the previous layer
    span: Span
    bad_from: bool = False  # `from` was given but is wrong (reported): the input is unknown


@dataclass(frozen=True)
class InputDecl:
    name: str
    span: Span
    shape: tuple
    dim_spans: tuple[Span, ...]


@dataclass
class FlatSpec:
    """A spec with every layer spelled out in order."""

    source: SourceFile
    name: str
    description: str
    inputs: list[InputDecl]
    layers: list[LayerUse]
    outputs: list[tuple[str, Span]] | None
    expect: YMap | None
    span: Span


def check_name(diags: Diagnostics, node: YNode, what: str) -> str | None:
    """A layer, input or spec name: a string of letters, digits, `_`, `.` and `-`."""
    if not isinstance(node, YScalar) or not isinstance(node.value, str):
        diags.error("E103", f"{what} must be a string, not {kind_name(node)}", node.span)
        return None
    name = node.value
    if len(name) > MAX_NAME:
        diags.error("E109", f"{what} is longer than {MAX_NAME} characters", node.span)
        return None
    if not NAME_RE.match(name):
        diags.error("E109", f"{what} {name!r} is not a valid name", node.span,
                    hints=["use letters, digits and `_`, with `.` or `-` between parts "
                           "(like `conv1` or `layer1.0.conv1`)"])
        return None
    return name


def flatten(source: SourceFile, root: YNode | None) -> tuple[FlatSpec | None, Diagnostics]:
    """Read the document. Returns the flat spec (None if its structure is unusable)."""
    diags = Diagnostics()
    if root is None:
        diags.error("E101", "the spec is empty", file_span(source),
                    hints=["a spec needs `netc: 1`, `name`, `inputs` and `layers`"])
        return None, diags
    if not isinstance(root, YMap):
        diags.error("E103", f"a spec must be a mapping of keys, not {kind_name(root)}", root.span)
        return None, diags

    meant = set()  # required keys that a misspelt key stands for: one error, not two
    for key in root.entries:
        if key not in TOP_KEYS:
            meant.add(closest(key, TOP_KEYS))
            diags.error("E102", f"unknown key '{key}' at the top of the spec", root.key_span(key),
                        hints=did_you_mean(key, TOP_KEYS) or [f"known keys: {', '.join(TOP_KEYS)}"])
    for key in ("netc", "name", "inputs", "layers"):
        if key not in root and key not in meant:
            diags.error("E101", f"the spec has no `{key}:`", root.span,
                        hints=[_REQUIRED_HINT[key]])

    version = root.get("netc")
    if version is not None and (not isinstance(version, YScalar) or version.value != FORMAT_VERSION
                                or type(version.value) is not int):
        diags.error("E106", f"unsupported spec format version: {_shown(version)}", version.span,
                    hints=[f"this netc reads `netc: {FORMAT_VERSION}`"])

    name = check_name(diags, root.get("name"), "the spec name") if "name" in root else None
    description = ""
    if "description" in root:
        node = root.get("description")
        if isinstance(node, YScalar) and isinstance(node.value, str):
            description = node.value
        else:
            diags.error("E103", f"description must be a string, not {kind_name(node)}", node.span)

    inputs = _inputs(diags, root.get("inputs")) if "inputs" in root else []
    layers = _layers(diags, root.get("layers")) if "layers" in root else []
    outputs = _outputs(diags, root.get("outputs")) if "outputs" in root else None
    expect = root.get("expect")
    if expect is not None and not isinstance(expect, YMap):
        diags.error("E103", f"expect must be a mapping, not {kind_name(expect)}", expect.span)
        expect = None

    spec = FlatSpec(source, name or "", description, inputs, layers, outputs, expect, root.span)
    return spec, diags


_REQUIRED_HINT = {
    "netc": f"start the file with `netc: {FORMAT_VERSION}` (the format version)",
    "name": "add `name: mynet` (it names the model and its default output file)",
    "inputs": "add `inputs: {image: [N, 3, 224, 224]}` (NCHW; N is the batch)",
    "layers": "add `layers:` with a list of layers",
}


def _shown(node: YNode) -> str:
    if isinstance(node, YScalar) and isinstance(node.value, bool):
        return "true" if node.value else "false"  # as written in YAML, not Python's True
    return repr(node.value) if isinstance(node, YScalar) else kind_name(node)


def _inputs(diags: Diagnostics, node: YNode) -> list[InputDecl]:
    if not isinstance(node, YMap) or not node.entries:
        diags.error("E103", f"inputs must be a mapping of names to shapes, not {kind_name(node)}",
                    node.span, hints=["inputs: {image: [N, 3, 224, 224]}"])
        return []
    decls = []
    for key, shape in node.items():
        name = check_name(diags, node.keys[key], "an input name")
        if name is None:
            continue
        if not isinstance(shape, YList) or len(shape.items) not in (2, 4):
            diags.error("E307", f"input '{key}' must be a list of 4 sizes [N, C, H, W] "
                        f"(or 2: [N, features]), not {_describe_list(shape)}", shape.span)
            continue
        dims, ok = [], True
        for i, d in enumerate(shape.items):
            v = d.value if isinstance(d, YScalar) else None
            if i == 0 and isinstance(v, str) and NAME_RE.match(v):
                dims.append(v)  # a symbolic batch size
            elif isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_RANK_DIM:
                dims.append(v)
            else:
                ok = False
                if isinstance(v, int) and not isinstance(v, bool) and v > MAX_RANK_DIM:
                    diags.error("E112", f"input size {v} is larger than {MAX_RANK_DIM:,}", d.span)
                elif isinstance(v, str) and i > 0:
                    diags.error("E103", f"only the batch size (the first) may be symbolic; "
                                f"'{v}' is dimension {i}", d.span,
                                hints=["netc checks every spatial size: give a number"])
                else:
                    diags.error("E103", f"an input size must be a positive integer"
                                f"{' or a name' if i == 0 else ''}, not {kind_name(d)}", d.span)
        if ok:
            decls.append(InputDecl(name, node.keys[key].span, tuple(dims),
                                   tuple(d.span for d in shape.items)))
    return decls


def _describe_list(node: YNode) -> str:
    if isinstance(node, YList):
        return f"a list of {len(node.items)}"
    return kind_name(node)


def _layers(diags: Diagnostics, node: YNode) -> list[LayerUse]:
    if not isinstance(node, YList) or not node.items:
        diags.error("E103", f"layers must be a non-empty list, not {kind_name(node)}", node.span,
                    hints=["layers:\n      - conv: {filters: 6, kernel: 5}\n      - relu"])
        return []
    if len(node.items) > MAX_LAYERS:
        diags.error("E112", f"more than {MAX_LAYERS:,} layers", node.span)
        return []
    uses = []
    for entry in node.items:
        use = layer_entry(diags, entry)
        if use is not None:
            uses.append(use)
    return uses


def layer_entry(diags: Diagnostics, entry: YNode) -> LayerUse | None:
    """One item of `layers:`: `relu`, or `{conv: {...}, name: c1, from: x}`."""
    if isinstance(entry, YScalar):
        if isinstance(entry.value, str) and entry.value:
            return LayerUse(entry.value, entry.span, None, None, None, None, entry.span)
        diags.error("E108", f"a layer must be a type name or a mapping, not {kind_name(entry)}",
                    entry.span, hints=["write `- relu` or `- conv: {filters: 6, kernel: 5}`"])
        return None
    if isinstance(entry, YList):
        diags.error("E108", "a layer must be a type name or a mapping, not a list", entry.span)
        return None
    types = [k for k in entry.entries if k not in COMMON_KEYS]
    if len(types) != 1:
        if types:
            message = (f"a layer entry has one type, but this one has {len(types)}: "
                       f"{', '.join(types)}")
            hint = "start a new list item (`- `) for each layer"
        else:
            message = "this layer entry has no layer type"
            hint = "add the type, e.g. `- relu`, or `- conv: {filters: 6, kernel: 5}`"
        diags.error("E108", message, entry.span, hints=[hint])
        return None
    kind = types[0]
    attrs = entry.get(kind)
    inner_from = None
    if isinstance(attrs, YMap) and "from" in attrs:
        # `- add: {from: [a, b]}` reads well for joins: accept `from` among the attributes too
        inner_from = attrs.get("from")
        if "from" in entry:
            diags.error("E110", "`from` is given twice", attrs.key_span("from"),
                        notes=[Note(entry.key_span("from"), "also given here")])
        rest = {k: v for k, v in attrs.entries.items() if k != "from"}
        attrs = YMap(rest, {k: attrs.keys[k] for k in rest}, attrs.span)
    name = name_span = None
    if "name" in entry:
        name = check_name(diags, entry.get("name"), "a layer name")
        name_span = entry.get("name").span
    inputs = None
    if "from" in entry or inner_from is not None:
        inputs = _from(diags, entry.get("from") or inner_from)
    return LayerUse(kind, entry.key_span(kind), attrs, name, name_span, inputs, entry.span,
                    bad_from=inputs is None and ("from" in entry or inner_from is not None))


def _from(diags: Diagnostics, node: YNode) -> tuple[tuple[str, Span], ...] | None:
    items = node.items if isinstance(node, YList) else [node]
    if not items:
        diags.error("E103", "from must name at least one layer or input", node.span)
        return None
    names = []
    for item in items:
        name = check_name(diags, item, "a `from` entry")
        if name is None:
            return None
        names.append((name, item.span))
    return tuple(names)


def _outputs(diags: Diagnostics, node: YNode) -> list[tuple[str, Span]] | None:
    items = node.items if isinstance(node, YList) else [node]
    names = []
    for item in items:
        name = check_name(diags, item, "an output name")
        if name is not None:
            names.append((name, item.span))
    return names or None
