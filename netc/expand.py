"""The spec document -> a flat list of layer uses, with names resolved and positions kept.

This stage reads the top-level keys and expands what makes specs short:

- `defaults:` per layer type (`conv: {bias: false}`), applied wherever an attribute is not given;
- `blocks:`, parametric sub-graphs used like layer types, with typed arguments substituted by
  the safe expression language of `expr.py` (`$filters * 4`);
- `repeat: N` (instances named `<name>.0`, `<name>.1`, ...; `first:` overrides the first one's
  arguments), or `repeat: {count: N, name: "denselayer{i}", start: 1}` (instances named by a
  pattern), `when:` (a layer left out when false: its name then stands for its input), and
  `branches:` (parallel chains from one input, concatenated along the channels; a branch may
  be named: `{name: branch3x3, layers: [...]}`);
- `allow:` (warning codes silenced for one layer, everything a block use or `branches:` entry
  expands to, or, at the top, the whole spec): each `LayerUse` carries its allowed codes.

Names are hierarchical like PyTorch module paths: block instance `layer1`, repeat index `0`,
inner layer `conv1` give `layer1.0.conv1`. A name below a block instance or a `branches:`
entry may start with a digit (`name: "0"` gives `<instance>.0`, as nn.Sequential names its
children); a top-level name, which starts every full name, may not. Every layer use remembers
the block use it came from, and a span inside an expansion is placed there when it is reported
(`Span.origin`), so errors point at both. A body's entries and attributes are read once, not
once per use. check.py then reads each layer's attributes against its class.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from .errors import CODES, Diagnostics, Note, closest, did_you_mean, did_you_mean_type
from .expr import ExprError, evaluate, is_expression
from .images import Preprocess, read_labels, read_preprocess
from .layers import REGISTRY, attributes
from .limits import DEFAULT, Limits
from .load import YList, YMap, YNode, YScalar, kind_name
from .source import SourceFile, Span, file_span

FORMAT_VERSION = 1
TOP_KEYS = ("netc", "name", "description", "inputs", "preprocess", "labels", "defaults", "blocks",
            "layers", "outputs", "expect", "allow")
COMMON_KEYS = ("name", "from", "repeat", "first", "when", "allow")
BLOCK_KEYS = ("description", "args", "layers", "branches", "output")
REPEAT_KEYS = ("count", "name", "start")  # `repeat: {count: 6, name: "denselayer{i}", start: 1}`
BRANCH_KEYS = ("name", "layers")  # a named branch: `{name: branch3x3, layers: [...]}`
ARG_TYPES = ("int", "bool", "float")
# the warnings a spec can silence with `allow:`: those `netc check` gives about a valid network
ALLOWABLE = tuple(code for code in CODES if code.startswith("W2"))
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.\-][A-Za-z0-9_]+)*\Z")
# a name below a block instance or a `branches:` entry: any part may start with a digit
LOCAL_NAME_RE = re.compile(r"[A-Za-z0-9_]+(?:[.\-][A-Za-z0-9_]+)*\Z")
NAME_RULE = ("a name is parts of letters, digits and `_` joined by `.` or `-` (`conv1`, "
             "`layer1.0.conv1`); at the top level it starts with a letter or `_`, while inside "
             "a block or `branches:` a part may start with a digit (`name: \"0\"` there gives "
             "`<instance>.0`)")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_NAME = 128
MAX_LAYERS = DEFAULT.layers  # the default limits (a run's own are in its `Limits`)
MAX_NESTING = DEFAULT.nesting
MAX_RANK_DIM = 1 << 20  # one dimension of an input
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")  # `{i}` or `{$arg}` in a repeat's name pattern


@dataclass(frozen=True, init=False)
class LayerUse:
    """One layer after expansion, not yet checked against its layer class.

    `name` is the full hierarchical name; `inputs` the full names it reads, each with the span
    of the reference as written (None when they are unknown because of an error already
    reported); `attrs` a mapping of attribute nodes with expressions evaluated and defaults
    merged (or a scalar shorthand, or None); `ok` is False when the attributes could not be
    expanded (reported), so check.py skips the layer; `joins_branches` is True for the concat
    that `branches:` adds after its branches; `allow` holds the warning codes silenced for this
    layer (its own `allow:`, its enclosing block uses' and `branches:` entries', and the spec's).

    Spans are kept as written in the block's body and placed at the use site only when asked
    for (`kind_span`, `place`, `attr_span`): `origin` is the block use this layer was expanded
    from (None at the top level), and `defaulted` the attribute keys that `defaults:` gave,
    whose spans lie outside every block. Block instances with equal arguments then share one
    attributes node, which check.py reads once.
    """

    kind: str
    raw_kind_span: Span
    attrs: YNode | None
    name: str
    raw_name_span: Span | None
    inputs: tuple[tuple[str, Span], ...] | None
    raw_span: Span
    ok: bool = True
    joins_branches: bool = False
    allow: frozenset = frozenset()
    origin: Span | None = None
    defaulted: frozenset = frozenset()

    def __init__(self, kind: str, raw_kind_span: Span, attrs: YNode | None, name: str,
                 raw_name_span: Span | None, inputs: tuple[tuple[str, Span], ...] | None,
                 raw_span: Span, ok: bool = True, joins_branches: bool = False,
                 allow: frozenset = frozenset(), origin: Span | None = None,
                 defaulted: frozenset = frozenset()) -> None:  # (init=False: see ir.Value)
        d = self.__dict__
        d["kind"], d["raw_kind_span"], d["attrs"], d["name"] = kind, raw_kind_span, attrs, name
        d["raw_name_span"], d["inputs"], d["raw_span"], d["ok"] = \
            raw_name_span, inputs, raw_span, ok
        d["joins_branches"], d["allow"], d["origin"], d["defaulted"] = \
            joins_branches, allow, origin, defaulted

    def place(self, span: Span | None) -> Span | None:
        """A span of this layer's entry, placed at the block use it was expanded from."""
        return span if span is None or self.origin is None else span.with_origin(self.origin)

    @property
    def kind_span(self) -> Span:
        return self.place(self.raw_kind_span)

    @property
    def name_span(self) -> Span | None:
        return self.place(self.raw_name_span)

    @property
    def span(self) -> Span:
        return self.place(self.raw_span)

    def input_span(self, i: int) -> Span:
        return self.place(self.inputs[i][1])

    def attr_span(self, key: str, span: Span) -> Span:
        """`span`, inside the value of attribute `key`, placed (a default's stays where
        `defaults:` wrote it)."""
        return span if key in self.defaulted else self.place(span)


@dataclass(frozen=True)
class InputDecl:
    name: str
    span: Span
    shape: tuple
    dim_spans: tuple[Span, ...]


@dataclass
class FlatSpec:
    """A spec with every layer spelled out in order and every name resolved."""

    source: SourceFile
    name: str
    description: str
    inputs: list[InputDecl]
    layers: list[LayerUse]
    outputs: list[tuple[str, Span]] | None  # full names; None: the last layer
    expect: YMap | None
    span: Span
    last: str | None = None  # the full name of the last layer's output
    # every block instance by full name (`layer2.0`), and the `defaults:` per layer type: what
    # `netc explain` needs to say where a value came from
    instances: dict[str, BlockInstance] = field(default_factory=dict)
    defaults: dict[str, YMap] = field(default_factory=dict)
    allow: frozenset = frozenset()  # the top-level `allow:` (also in every LayerUse's)
    # how an image file becomes the input, and the output's class names (images.py); the
    # `labels:` node, for check.py's message when their number is not the output's
    preprocess: Preprocess | None = None
    labels: tuple[str, ...] | None = None
    labels_node: YNode | None = None


def check_name(diags: Diagnostics, node: YNode, what: str, local: bool = False,
               span: Span | None = None) -> str | None:
    """A layer, input or spec name: a string of letters, digits, `_`, `.` and `-`. `local`:
    the name sits below a block instance or `branches:` entry, so it may start with a digit.
    `span`, when given, is where to report (the node's own span placed at its use site)."""
    span = span or node.span
    if not isinstance(node, YScalar) or not isinstance(node.value, str):
        hints = []
        if isinstance(node, YScalar) and type(node.value) is int and node.value >= 0:
            # inside a block a name may start with a digit (`"0"` is `<instance>.0`); at the
            # top level it may not, so quotes alone would only give E109
            hints = [f'a name is a string: write "{node.value}" in quotes' if local else
                     f"a name is a string that starts with a letter or `_` (`layer"
                     f"{node.value}`), so {node.value} can't be one: write the name of the layer "
                     "or input you mean, giving it a `name:` if it has none"]
        diags.error("E103", f"{what} must be a string, not {kind_name(node)}", span, hints=hints)
        return None
    return _valid_name(diags, node.value, what, local, span)


def _valid_name(diags: Diagnostics, name: str, what: str, local: bool, span: Span) -> str | None:
    if len(name) > MAX_NAME:
        diags.error("E109", f"{what} is {len(name)} characters long, more than {MAX_NAME}", span)
        return None
    if NAME_RE.match(name) or (local and LOCAL_NAME_RE.match(name)):
        return name
    if LOCAL_NAME_RE.match(name):  # a digit first, where a top-level name is needed
        diags.error("E109", f"{what} {name!r} is not a valid name here: it starts with a digit",
                    span, hints=[NAME_RULE])
    else:
        diags.error("E109", f"{what} {name!r} is not a valid name", span, hints=[NAME_RULE])
    return None


def flatten(source: SourceFile, root: YNode | None,
            limits: Limits = DEFAULT) -> tuple[FlatSpec | None, Diagnostics]:
    """Read and expand the document (the tree `load` made of `source`). Returns the flat spec
    (None if its structure is unusable) and every diagnostic found; the spec is usable only if
    they hold no errors. `limits.layers` and `limits.nesting` bound the expansion (E112, E115).
    """
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
                        hints=lambda key=key: did_you_mean(key, TOP_KEYS)
                        or [f"known keys: {', '.join(TOP_KEYS)}"])
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
    defaults = _defaults(diags, root.get("defaults"))
    allow = allowed_codes(diags, root.get("allow"), lambda span: span)
    expander = Expander(diags, defaults, _blocks(diags, root.get("blocks")), limits, allow)
    layers, last, scope = [], None, None
    if "layers" in root:
        layers, last, scope = expander.top(root.get("layers"), inputs, bool(root.get("inputs")))
    outputs = None
    if "outputs" in root and scope is not None:
        outputs = expander.outputs(root.get("outputs"), scope)
    expect = root.get("expect")
    if expect is not None and not isinstance(expect, YMap):
        diags.error("E103", f"expect must be a mapping, not {kind_name(expect)}", expect.span)
        expect = None

    preprocess = read_preprocess(diags, root.get("preprocess"), inputs)
    labels = read_labels(diags, root.get("labels"), source.path)

    spec = FlatSpec(source, name or "", description, inputs, layers, outputs, expect, root.span,
                    last if isinstance(last, str) else None, expander.instances, defaults, allow,
                    preprocess, labels, root.get("labels"))
    return spec, diags


def allowed_codes(diags: Diagnostics, node: YNode | None, at) -> frozenset:
    """`allow: [W202]` (or `allow: W202`): the warning codes to silence. An unknown code, or
    one that is not a silenceable warning, is an error at the code (`at` places a span)."""
    if node is None:
        return frozenset()
    items = node.items if isinstance(node, YList) else [node]
    found = set()
    for item in items:
        code = item.value if isinstance(item, YScalar) else None
        if not isinstance(code, str):
            diags.error("E103", f"allow takes warning codes such as W202, not {kind_name(item)}",
                        at(item.span), hints=["allow: [W202]"])
        elif code in ALLOWABLE:
            found.add(code)
        elif code in CODES:
            diags.error("E105", f"{code} ({CODES[code]}) can't be allowed: only the warnings "
                        f"about a valid network can ({', '.join(ALLOWABLE)})", at(item.span),
                        hints=["an error must be fixed" if code.startswith("E") else
                               "it is not about the spec"])
        else:
            diags.error("E105", f"unknown warning code {code!r} in allow", at(item.span),
                        hints=lambda code=code: did_you_mean(code.upper(), ALLOWABLE)
                        or [f"the warnings that can be allowed: {', '.join(ALLOWABLE)}"])
    return frozenset(found)


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


# --- defaults and blocks ---------------------------------------------------------------------


def _defaults(diags: Diagnostics, node: YNode | None) -> dict[str, YMap]:
    """`defaults: {conv: {bias: false}}`: attribute defaults per layer type."""
    if node is None:
        return {}
    if not isinstance(node, YMap):
        diags.error("E103", f"defaults must map layer types to attributes, not {kind_name(node)}",
                    node.span, hints=["defaults: {conv: {bias: false}}"])
        return {}
    found = {}
    for kind, attrs in node.items():
        if kind not in REGISTRY:
            diags.error("E107", f"unknown layer type '{kind}' in defaults", node.key_span(kind),
                        hints=lambda kind=kind: did_you_mean_type(kind, REGISTRY)
                        or [f"known types: {', '.join(sorted(REGISTRY))}"])
        elif not isinstance(attrs, YMap):
            diags.error("E103", f"defaults for {kind} must be a mapping of attributes, not "
                        f"{kind_name(attrs)}", attrs.span)
        else:
            for key, value in attrs.items():
                for scalar in _expressions(value):
                    diags.error("E114", "defaults can't use block arguments", scalar.span,
                                hints=["write the value, or give it in the block"])
            found[kind] = attrs
    return found


def _expressions(node: YNode) -> list[YScalar]:
    """The scalars of `node` (a value, list or mapping) that are expressions."""
    if isinstance(node, YScalar):
        return [node] if is_expression(node.value) else []
    items = node.items if isinstance(node, YList) else list(node.entries.values())
    return [s for item in items for s in _expressions(item)]


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: str  # int, bool or float
    required: bool
    default: object
    span: Span


@dataclass
class BlockDef:
    """A parametric sub-graph from `blocks:`."""

    name: str
    span: Span
    args: dict[str, ArgSpec]
    body: YList | None  # `layers:`
    branches: YNode | None  # or `branches:` (parallel chains, concatenated)
    output: YScalar | None
    ok: bool = True


def _blocks(diags: Diagnostics, node: YNode | None) -> dict[str, BlockDef]:
    if node is None:
        return {}
    if not isinstance(node, YMap):
        diags.error("E103", f"blocks must map block names to definitions, not {kind_name(node)}",
                    node.span)
        return {}
    blocks = {}
    for name, body in node.items():
        span = node.key_span(name)
        errors_before = len(diags.items)
        block = _block_def(diags, name, span, body)
        if block is None:  # reported: its uses are skipped quietly, not reported again
            block = BlockDef(name, span, {}, None, None, None, ok=False)
        block.ok = block.ok and len(diags.items) == errors_before
        blocks[name] = block
    return blocks


def _block_def(diags: Diagnostics, name: str, span: Span, body: YNode) -> BlockDef | None:
    """One block definition, or None if it is unusable (reported)."""
    if not IDENT_RE.match(name):
        diags.error("E109", f"block name {name!r} is not a valid name", span,
                    hints=["use letters, digits and `_`"])
        return None
    if name in REGISTRY or name == "branches":
        diags.error("E116", f"a block can't be named '{name}': that is a layer type", span,
                    hints=[f"call it, for example, `{name}_block`"])
        return None
    if not isinstance(body, YMap):
        diags.error("E103", f"block '{name}' must be a mapping with `layers:` (and `args:`), "
                    f"not {kind_name(body)}", body.span)
        return None
    meant = set()  # keys that a misspelt key stands for: one error, not two
    for key in body.entries:
        if key not in BLOCK_KEYS:
            meant.add(closest(key, BLOCK_KEYS))
            diags.error("E102", f"unknown key '{key}' in block '{name}'", body.key_span(key),
                        hints=lambda key=key: did_you_mean(key, BLOCK_KEYS)
                        or [f"a block has: {', '.join(BLOCK_KEYS)}"])
    layers, branches = body.get("layers"), body.get("branches")
    if layers is not None and branches is not None:
        diags.error("E108", f"block '{name}' has both `layers:` and `branches:`; it takes one",
                    body.key_span("branches"))
        return None
    if layers is None and branches is None:
        if not meant & {"layers", "branches"}:
            diags.error("E101", f"block '{name}' needs either `layers:` or `branches:`", span)
        return None
    if layers is not None and (not isinstance(layers, YList) or not layers.items):
        diags.error("E103", f"the layers of block '{name}' must be a non-empty list", layers.span)
        return None
    output = body.get("output")
    if output is not None and not (isinstance(output, YScalar) and isinstance(output.value, str)):
        diags.error("E103", f"the output of block '{name}' must be a layer name", output.span)
        output = None
    return BlockDef(name, span, _args(diags, name, body.get("args")), layers, branches, output)


def _args(diags: Diagnostics, block: str, node: YNode | None) -> dict[str, ArgSpec]:
    """`args: {filters: int, stride: 1}`: a type name makes a required argument, a value an
    optional one of that value's type."""
    if node is None:
        return {}
    if not isinstance(node, YMap):
        diags.error("E103", f"the args of block '{block}' must be a mapping, not {kind_name(node)}",
                    node.span, hints=["args: {filters: int, stride: 1}"])
        return {}
    args = {}
    for name, value in node.items():
        span = node.key_span(name)
        if not IDENT_RE.match(name):
            diags.error("E109", f"argument name {name!r} is not a valid name", span)
            continue
        v = value.value if isinstance(value, YScalar) else None
        if isinstance(v, str) and v in ARG_TYPES:
            args[name] = ArgSpec(name, v, True, None, span)
        elif isinstance(v, bool):
            args[name] = ArgSpec(name, "bool", False, v, span)
        elif isinstance(v, int):
            args[name] = ArgSpec(name, "int", False, v, span)
        elif isinstance(v, float):
            args[name] = ArgSpec(name, "float", False, v, span)
        else:
            diags.error("E103", f"argument '{name}' must be a type (int, bool, float) or a "
                        f"default value, not {kind_name(value)}", value.span)
    return args


# --- expansion -------------------------------------------------------------------------------


class _Unknown:
    """The output of a layer that has an error: later layers reading it are skipped quietly."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


@dataclass
class Entry:
    """One layer entry as written: its type, attributes and common keys. Its spans are as
    written too (a body's entries are read once and reused by every instance of the body):
    `Expander._at(scope)` places them at the scope's use site."""

    kind: str
    kind_span: Span
    attrs: YNode | None
    name: str | None
    name_span: Span | None
    sources: tuple[tuple[str, Span], ...] | None  # `from`
    repeat: YNode | None
    first: YNode | None
    when: YNode | None
    span: Span
    bad: bool = False  # a common key is wrong (reported)
    inline: bool = True  # `branches:` as a list entry (not a block's body): names its own layers
    allow: frozenset = frozenset()  # `allow:`: warning codes silenced here
    # the names its layer type's `references` attributes give (`to: skip`), each with the span
    # of its value: read as `from` names are, they become inputs after the data inputs
    refs: tuple[tuple[str, Span], ...] = ()


@dataclass
class Scope:
    """Names visible in one body (the top level or one block instance)."""

    prefix: str  # full-name prefix of layers in this body: '' or 'layer1.0.'
    env: dict  # argument values
    origin: Span | None  # the use site this body was instantiated from
    names: dict = field(default_factory=dict)  # local name -> full output name (or UNKNOWN)
    spans: dict = field(default_factory=dict)  # local name -> where it was defined
    later: dict = field(default_factory=dict)  # names defined further down -> span
    counters: dict = field(default_factory=dict)
    stack: tuple = ()  # the blocks being expanded (to catch a block that uses itself)
    allow: frozenset = frozenset()  # warning codes silenced for everything in this body

    def env_key(self) -> tuple:
        """The argument values as a hashable key (types included: `true` is not `1`)."""
        return tuple((k, type(v), v) for k, v in self.env.items())


class _TooMany(Exception):
    pass


@dataclass
class BlockInstance:
    """One use of a block: its full name, the entry that used it, the block, the arguments as
    given (`first:` merged into instance 0 of a repeat), where it is used, and the arguments'
    values, defaults included."""

    full: str
    entry: Entry
    block: BlockDef
    attrs: YNode | None
    kind_span: Span  # where it is used, placed (entry spans are as written)
    values: dict = field(default_factory=dict)


class Expander:
    """Expands layer lists into `LayerUse`s, recording each block instance; errors go to
    `diags`."""

    def __init__(self, diags: Diagnostics, defaults: dict[str, YMap],
                 blocks: dict[str, BlockDef], limits: Limits = DEFAULT,
                 allow: frozenset = frozenset()) -> None:
        self.diags = diags
        self.defaults = defaults
        self.blocks = blocks
        self.limits = limits
        self.allow = allow  # the spec's `allow:`
        self.out: list[LayerUse] = []
        self.instances: dict[str, BlockInstance] = {}
        # A block's body is expanded once per use. What does not depend on the use is worked
        # out once: each list item's entry (by the item, and whether it is in a block), whether
        # a node holds expressions, and each attributes node with its arguments' values (so
        # equal instances share one node). Each value keeps its key's node alive, so that an
        # id is never reused while it is a key.
        self._entries: dict[tuple, tuple] = {}
        self._has_expr: dict[int, tuple] = {}
        self._attr_memo: dict[tuple, tuple] = {}

    def top(self, node: YNode, inputs: list[InputDecl], declared: bool):
        """Expand the spec's `layers:`; returns (layers, last output, top scope)."""
        if not isinstance(node, YList) or not node.items:
            self.diags.error("E103", f"layers must be a non-empty list, not {kind_name(node)}",
                             node.span,
                             hints=["layers:\n      - conv: {filters: 6, kernel: 5}\n      - relu"])
            return [], None, None
        scope = Scope("", {}, None, allow=self.allow)
        for decl in inputs:
            scope.names[decl.name] = decl.name
            scope.spans[decl.name] = decl.span
        if len(inputs) == 1:
            start = inputs[0].name
        elif not inputs and declared:
            start = UNKNOWN  # `inputs:` is wrong, and already reported
        else:
            start = None  # several inputs (or none declared): the first layer needs `from`
        try:
            last = self.body(node.items, scope, start)
        except _TooMany:
            return [], None, scope
        return self.out, last, scope

    def outputs(self, node: YNode, scope: Scope) -> list[tuple[str, Span]] | None:
        items = node.items if isinstance(node, YList) else [node]
        names = []
        for item in items:
            name = check_name(self.diags, item, "an output name")
            if name is None:
                continue
            target = self._lookup(name, item.span, scope)
            if isinstance(target, str):
                names.append((target, item.span))
        return names or None

    # --- bodies and entries --------------------------------------------------------------

    def body(self, items: list, scope: Scope, start):
        """Expand a list of entries, the first reading `start`; returns the last output."""
        entries = [self._entry(item, scope) for item in items]
        for e in entries:
            if e is not None and e.name is not None and e.name not in scope.later:
                scope.later[e.name] = e.name_span
        previous = start
        for e in entries:
            previous = UNKNOWN if e is None else self.place(e, scope, previous)
        return previous

    def _entry(self, item: YNode, scope: Scope) -> Entry | None:
        """Split one list item into its layer type, attributes and common keys (once per item:
        a mistake in it is reported at its first use, as it would be once anyway)."""
        key = (id(item), bool(scope.prefix))
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = (self._read_entry(item, scope), item)
        return found[0]

    def _read_entry(self, item: YNode, scope: Scope) -> Entry | None:
        at = self._at(scope)
        if isinstance(item, YScalar):
            if isinstance(item.value, str) and item.value:
                return Entry(item.value, item.span, None, None, None, None, None, None, None,
                             item.span)
            self.diags.error("E108", f"a layer must be a type name or a mapping, not "
                             f"{kind_name(item)}", at(item.span),
                             hints=["write `- relu` or `- conv: {filters: 6, kernel: 5}`"])
            return None
        if isinstance(item, YList):
            self.diags.error("E108", "a layer must be a type name or a mapping, not a list",
                             at(item.span))
            return None
        types = [k for k in item.entries if k not in COMMON_KEYS]
        if len(types) > 1:
            # `nmae: foo` or `form: conv1` beside the type is a misspelt common key, not a
            # second layer type: say which key it stands for (a real type keeps E108 below)
            known = set(REGISTRY) | set(self.blocks) | {"branches"}
            near = {k: closest(k, COMMON_KEYS) for k in types if k not in known}
            near = {k: v for k, v in near.items() if v is not None}
            rest = [k for k in types if k not in near]
            if near and len(rest) == 1:
                for key, meant in near.items():
                    self.diags.error("E102", f"unknown key '{key}' beside the layer type "
                                     f"'{rest[0]}'", at(item.key_span(key)),
                                     hints=[f"did you mean '{meant}'?"])
                return None
        if len(types) != 1:
            if types:
                message = (f"a layer entry has one type, but this one has {len(types)}: "
                           f"{', '.join(types)}")
                hint = "start a new list item (`- `) for each layer"
            else:
                message = "this layer entry has no layer type"
                hint = "add the type, e.g. `- relu`, or `- conv: {filters: 6, kernel: 5}`"
            self.diags.error("E108", message, at(item.span), hints=[hint])
            return None
        kind = types[0]
        attrs = item.get(kind)
        bad = False
        source_node = item.get("from")
        if isinstance(attrs, YMap) and "from" in attrs:
            # `- add: {from: [a, b]}` reads well for joins: `from` may sit among the attributes
            if source_node is not None:
                self.diags.error("E110", "`from` is given twice", at(attrs.key_span("from")),
                                 notes=[Note(at(item.key_span("from")), "also given here")])
                bad = True
            source_node = attrs.get("from")
            rest = {k: v for k, v in attrs.entries.items() if k != "from"}
            attrs = YMap(rest, {k: attrs.keys[k] for k in rest}, attrs.span)
        name = name_span = None
        if "name" in item:
            name_span = item.get("name").span
            name = check_name(self.diags, item.get("name"), "a layer name", bool(scope.prefix),
                              at(name_span))
            bad = bad or name is None
        sources = None
        if source_node is not None:
            sources = self._from(source_node, scope)
            bad = bad or sources is None
        refs = self._refs(kind, attrs, item.get("first"), scope)
        bad = bad or refs is None
        allow = allowed_codes(self.diags, item.get("allow"), at)
        return Entry(kind, item.key_span(kind), attrs, name, name_span, sources,
                     item.get("repeat"), item.get("first"), item.get("when"), item.span, bad,
                     allow=allow, refs=refs or ())

    def _refs(self, kind: str, attrs, first, scope: Scope):
        """The layer names that the attributes in the layer type's `references` give (`to:
        skip`), as written, each with its span; None if one is wrong (reported). `first:`
        can't give or change one: every instance of a repeat names the same layer."""
        cls = REGISTRY.get(kind)
        if cls is None or not cls.references:
            return ()
        at = self._at(scope)
        found, ok = [], True
        for key in cls.references:
            if isinstance(first, YMap) and key in first:
                self.diags.error("E105", f"`{key}:` names a layer, which `first:` can't change",
                                 at(first.key_span(key)),
                                 hints=[f"write `{key}:` beside the other attributes: every "
                                        "instance of the repeat reads the same layer"])
                ok = False
            node = attrs.get(key) if isinstance(attrs, YMap) else None
            if node is None:
                continue
            name = check_name(self.diags, node, f"`{key}:` (a layer or input name)",
                              bool(scope.prefix), at(node.span))
            if name is None:
                ok = False
            else:
                found.append((name, node.span))
        return tuple(found) if ok else None

    def _from(self, node: YNode, scope: Scope) -> tuple[tuple[str, Span], ...] | None:
        items = node.items if isinstance(node, YList) else [node]
        if not items:
            self.diags.error("E103", "from must name at least one layer or input",
                             self._at(scope)(node.span))
            return None
        names = []
        for item in items:
            name = check_name(self.diags, item, "a `from` entry", bool(scope.prefix),
                              self._at(scope)(item.span))
            if name is None:
                return None
            names.append((name, item.span))
        return tuple(names)

    def place(self, e: Entry, scope: Scope, previous, default_local: str | None = None):
        """Expand one entry (with its repeat and condition); returns its output's full name.

        The entry's name (given, `default_local`, or `<type><k>`) stands for its output; a
        repeat whose instances are named by a pattern has such a name only when one is given."""
        patterned = isinstance(e.repeat, YMap) and "name" in e.repeat
        local = e.name or default_local
        if local is None and not patterned:
            local = self._default_name(scope, e.kind)
        if local is not None:
            scope.later.pop(local, None)
            if local in scope.names:
                self._duplicate(local, e.name_span or e.kind_span, scope)
                return UNKNOWN
            scope.spans[local] = e.name_span or e.kind_span
        shown = local if local is not None else e.repeat.get("name").value
        inputs = UNKNOWN if e.bad else self._inputs(e, scope, previous, shown)
        if e.when is not None:
            keep = self._value(e.when, scope, "bool", "when")
            if keep is UNKNOWN or not keep:
                # left out: its name stands for its input, so a shortcut can name it either way
                out = inputs[0][0] if isinstance(inputs, tuple) and keep is not UNKNOWN else UNKNOWN
                if local is not None:
                    scope.names[local] = out
                return out
        if e.repeat is None:
            if e.first is not None:
                self.diags.error("E102", "`first` only goes with `repeat`", self._at(scope)(e.first.span))
            out = self._instance(e, e.attrs, local, inputs, scope)
            scope.names[local] = out
            return out
        names = self._repeat(e, scope, local)
        first = self._first(e, scope)
        if names is UNKNOWN or first is UNKNOWN:
            if local is not None:
                scope.names[local] = UNKNOWN
            return UNKNOWN
        out = inputs
        for i, name in enumerate(names):
            attrs = e.attrs
            if i == 0 and first is not None:  # (a bare `- unit:` has no attributes to merge)
                attrs = _merge(first, e.attrs if isinstance(e.attrs, YMap) else None)
            out = self._instance(e, attrs, name, inputs, scope)
            scope.names[name] = out
            # the next instance reads this one, and the same layers its `to:` names
            refs = inputs[len(inputs) - len(e.refs):] if isinstance(inputs, tuple) else ()
            inputs = ((out, e.kind_span), *refs) if isinstance(out, str) else UNKNOWN
        if local is not None:
            scope.names[local] = out
        return out

    def _duplicate(self, local: str, span: Span, scope: Scope) -> None:
        at = self._at(scope)  # (spans in scope.spans may be as written)
        first = scope.spans.get(local)
        self.diags.error("E110", f"the name '{local}' is already used", at(span),
                         notes=[Note(at(first), "first used here")] if first else [],
                         hints=["every layer and input needs its own name"])

    def _repeat(self, e: Entry, scope: Scope, local: str | None):
        """The local names of a repeat's instances, or UNKNOWN (reported). `repeat: N` names
        them `<name>.0` ... `<name>.N-1`; `repeat: {count: N, name: PATTERN, start: S}` by the
        pattern, `{i}` standing for S, S+1, ... (and `{$arg}` for a block argument)."""
        at = self._at(scope)
        node = e.repeat
        if not isinstance(node, YMap):
            count = self._count(node, scope, "repeat")
            return UNKNOWN if count is UNKNOWN else [f"{local}.{i}" for i in range(count)]
        meant = set()  # keys that a misspelt key stands for: one error, not two
        for key in node.entries:
            if key not in REPEAT_KEYS:
                meant.add(closest(key, REPEAT_KEYS) or key)
                self.diags.error("E102", f"unknown key '{key}' in repeat", at(node.key_span(key)),
                                 hints=lambda key=key: did_you_mean(key, REPEAT_KEYS)
                                 or [f"repeat takes: {', '.join(REPEAT_KEYS)}"])
        if "count" not in node:
            if "count" not in meant:
                self.diags.error("E101", "repeat needs `count`, the number of instances",
                                 at(node.span), hints=['repeat: {count: 6, name: "layer{i}", '
                                                       'start: 1}'])
            return UNKNOWN
        if meant:
            return UNKNOWN
        count = self._count(node.get("count"), scope, "repeat count")
        start = 0
        if "start" in node:
            start = self._value(node.get("start"), scope, "int", "repeat start")
            if start is not UNKNOWN and not 0 <= start <= MAX_RANK_DIM:
                self.diags.error("E105", f"repeat start must be between 0 and {MAX_RANK_DIM:,}, "
                                 f"not {start}", at(node.get("start").span))
                start = UNKNOWN
        pattern = self._pattern(node.get("name"), scope) if "name" in node else None
        if UNKNOWN in (count, start, pattern):
            return UNKNOWN
        if pattern is None:
            return [f"{local}.{start + i}" for i in range(count)]
        span = at(node.get("name").span)
        names = []
        for i in range(start, start + count):
            name = "".join(str(i) if part is None else part for part in pattern)
            what = f"the name of instance {i} of the repeat"
            if _valid_name(self.diags, name, what, bool(scope.prefix), span) is None:
                return UNKNOWN
            if name in scope.names or name == local:
                self._duplicate(name, span, scope)
                return UNKNOWN
            scope.later.pop(name, None)
            scope.spans[name] = span
            names.append(name)
        return names

    def _count(self, node: YNode, scope: Scope, what: str):
        count = self._value(node, scope, "int", what)
        if count is not UNKNOWN and not 1 <= count <= self.limits.layers:
            self.diags.error("E105", f"{what} must be between 1 and {self.limits.layers:,}, "
                             f"not {count}", self._at(scope)(node.span))
            return UNKNOWN
        return count

    def _pattern(self, node: YNode, scope: Scope):
        """A repeat's name pattern as literal strings and None (where `{i}` goes), with each
        `{$expr}` evaluated; UNKNOWN when it is wrong (reported)."""
        span = self._at(scope)(node.span)
        text = node.value if isinstance(node, YScalar) else None
        example = 'name: "denselayer{i}"'
        if not isinstance(text, str):
            self.diags.error("E103", f"a repeat's name must be a string with `{{i}}`, not "
                             f"{kind_name(node)}", span, hints=[example])
            return UNKNOWN
        parts, pos = [], 0
        for m in _PLACEHOLDER.finditer(text):
            parts.append(text[pos:m.start()])
            pos = m.end()
            inner = m.group(1).strip()
            if inner == "i":
                parts.append(None)
                continue
            if is_expression(inner):
                try:
                    value = evaluate(inner, scope.env)
                except ExprError as err:
                    self.diags.error("E114", f"in `{{{inner}}}` of the repeat's name: "
                                     f"{err.message}", span, hints=err.hints)
                    return UNKNOWN
                if type(value) is int:
                    parts.append(str(value))
                    continue
                problem = f"`{{{inner}}}` is {kind_name(YScalar(value, span))}, not an integer"
            else:
                problem = f"`{{{inner}}}` is not a placeholder"
            self.diags.error("E105", f"the repeat's name {text!r}: {problem}", span,
                             hints=["`{i}` stands for the instance's number, `{$arg}` for a "
                                    "block argument"])
            return UNKNOWN
        parts.append(text[pos:])
        stray = next((c for part in parts if part is not None for c in part if c in "{}"), None)
        if stray is not None:
            self.diags.error("E105", f"the repeat's name {text!r} has an unmatched {stray!r}",
                             span, hints=[example])
            return UNKNOWN
        if None not in parts:
            self.diags.error("E105", f"the repeat's name {text!r} has no `{{i}}`, so every "
                             "instance would have the same name", span,
                             hints=[f'name: "{text}{{i}}"', "`{i}` stands for the instance's "
                                    "number (from `start`, default 0)"])
            return UNKNOWN
        return [p for p in parts if p != ""]

    def _first(self, e: Entry, scope: Scope):
        if e.first is None:
            return None
        bare = e.attrs is None or (isinstance(e.attrs, YScalar) and e.attrs.value is None)
        if not isinstance(e.first, YMap) or not (bare or isinstance(e.attrs, YMap)):
            self.diags.error("E103", "`first` must be a mapping of attributes that the first "
                             "instance changes, with the attributes written as a mapping too",
                             self._at(scope)(e.first.span), hints=["first: {stride: 2}"])
            return UNKNOWN
        return e.first

    def _inputs(self, e: Entry, scope: Scope, previous, local: str):
        """The full names the layer reads, each with the span of its reference: its data
        inputs (`from:`, or the previous layer), then the layers its `references` name."""
        found = []
        if e.sources is None:
            if previous is UNKNOWN:
                return UNKNOWN
            if previous is None:
                names = ", ".join(k for k, v in scope.names.items() if v == k and not scope.prefix)
                self.diags.error("E113", f"{e.kind} '{scope.prefix}{local}' has no input: the spec "
                                 f"has several inputs ({names})", self._at(scope)(e.kind_span),
                                 hints=["say which with `from: <input name>`"])
                return UNKNOWN
            found.append((previous, e.kind_span))
        for ref, span in (e.sources or ()) + e.refs:
            target = self._lookup(ref, span, scope)
            if target is UNKNOWN:
                return UNKNOWN
            found.append((target, span))
        return tuple(found)

    def _lookup(self, ref: str, span: Span, scope: Scope):
        """The full name a local name stands for, or UNKNOWN (reported unless already known bad)."""
        if ref in scope.names:
            return scope.names[ref]
        at = self._at(scope)
        span = at(span)
        if ref in scope.later:
            self.diags.error("E111", f"'{ref}' is defined later; a layer can only use earlier ones",
                             span, notes=[Note(at(scope.later[ref]), "defined here")],
                             hints=["move the layer, or name another input (a graph has no cycles)"])
        else:
            # the hints are computed only if the error is shown (`Diagnostic`): a search of
            # every earlier name for each of 20,000 unknown ones would take minutes. Names
            # are only ever added to scope.names, so its first `known` are those defined now.
            known, prefix = len(scope.names), scope.prefix

            def hints():
                near = did_you_mean(ref, itertools.islice(scope.names, known))
                if not near and prefix:
                    return ["inside a block, `input` is the block's input; other names are "
                            "the block's own layers"]
                if not near and ref == "input":
                    return ["`input` names a block's input inside the block; here, name one "
                            "of the spec's `inputs:`"]
                return near

            self.diags.error("E111", f"no layer or input is named '{ref}'", span, hints=hints)
        return UNKNOWN

    def _default_name(self, scope: Scope, kind: str) -> str:
        """`<type><k>`: conv1, conv2, relu1, ... (skipping names given explicitly)."""
        base = "concat" if kind == "branches" else kind
        k = scope.counters.get(base, 0)
        while True:
            k += 1
            candidate = f"{base}{k}"
            if candidate not in scope.names and candidate not in scope.later:
                scope.counters[base] = k
                return candidate

    # --- one instance: a layer, a block, or branches -------------------------------------

    def _instance(self, e: Entry, attrs, local: str, inputs, scope: Scope):
        full = scope.prefix + local
        if len(self.out) >= self.limits.layers:
            self.diags.error("E112", f"the network expands to more than {self.limits.layers:,} layers",
                             self._at(scope)(e.kind_span))
            raise _TooMany
        if e.kind in self.blocks:
            return self._block(e, attrs, full, inputs, scope)
        if e.kind == "branches":
            return self._branches(e, attrs, full, inputs, scope)
        resolved, defaulted = self._attrs(e.kind, attrs, scope)
        self.out.append(LayerUse(
            e.kind, e.kind_span, None if resolved is UNKNOWN else resolved, full, e.name_span,
            inputs if isinstance(inputs, tuple) else None, e.span, ok=resolved is not UNKNOWN,
            allow=scope.allow | e.allow if e.allow else scope.allow, origin=scope.origin,
            defaulted=defaulted))
        return full

    def _block(self, e: Entry, attrs, full: str, inputs, scope: Scope):
        block = self.blocks[e.kind]
        used = self._at(scope)(e.kind_span)  # the use site: the origin of every span inside
        instance = self.instances[full] = BlockInstance(full, e, block, attrs, used)
        if not block.ok:  # its definition is wrong (reported): checking uses would only repeat it
            return UNKNOWN
        if e.kind in scope.stack:
            chain = " -> ".join(scope.stack + (e.kind,))
            self.diags.error("E115", f"block '{e.kind}' uses itself ({chain})", used,
                             notes=[Note(block.span, "defined here")])
            return UNKNOWN
        if len(scope.stack) >= self.limits.nesting:
            self.diags.error("E115", f"blocks are nested more than {self.limits.nesting} deep",
                             used)
            return UNKNOWN
        args = self._block_args(e, block, attrs, scope)
        if args is UNKNOWN:
            return UNKNOWN
        instance.values = dict(args)
        if isinstance(inputs, tuple) and len(inputs) != 1:
            self.diags.error("E113", f"block '{e.kind}' takes 1 input, got {len(inputs)}",
                             self._at(scope)(inputs[0][1]),
                             hints=["a block reads one input, named `input` inside"])
            return UNKNOWN
        source = inputs[0][0] if isinstance(inputs, tuple) else UNKNOWN
        inner = Scope(full + ".", args, used, stack=scope.stack + (e.kind,),
                      allow=scope.allow | e.allow)
        inner.names["input"] = source
        inner.spans["input"] = block.span
        if block.branches is not None:
            fake = Entry("branches", block.span, block.branches, None, None, None, None, None,
                         None, block.span, inline=False)
            out = self.place(fake, inner, source, "concat")
        else:
            out = self.body(block.body.items, inner, source)
        if block.output is not None:
            out = self._lookup(block.output.value, block.output.span, inner)
        return out

    def _block_args(self, e: Entry, block: BlockDef, attrs, scope: Scope):
        at = self._at(scope)
        if attrs is not None and not isinstance(attrs, YMap) and not (
                isinstance(attrs, YScalar) and attrs.value is None):
            self.diags.error("E108", f"block '{block.name}' takes its arguments as a mapping",
                             at(attrs.span), hints=lambda args=block.args, name=block.name:
                             [f"- {name}: {{{', '.join(f'{a}: ...' for a in args)}}}"])
            return UNKNOWN
        given = attrs.entries if isinstance(attrs, YMap) else {}
        values, ok = {}, True
        meant = set()  # arguments that a misspelt one stands for: one error, not two
        for key, node in given.items():
            spec = block.args.get(key)
            if spec is None:
                meant.add(closest(key, block.args))
                self.diags.error("E102", f"block '{block.name}' has no argument '{key}'",
                                 at(attrs.key_span(key)),
                                 hints=lambda key=key, args=block.args: did_you_mean(key, args)
                                 or [f"its arguments: {', '.join(args) or 'none'}"])
                ok = False
                continue
            value = self._value(node, scope, spec.type, f"argument '{key}'")
            if value is UNKNOWN:
                ok = False
            values[key] = value
        for spec in block.args.values():
            if spec.name not in given:
                if spec.required and spec.name in meant:
                    ok = False
                elif spec.required:
                    self.diags.error("E101", f"block '{block.name}' needs the argument "
                                     f"`{spec.name}` ({spec.type})", at(e.kind_span),
                                     notes=[Note(spec.span, "declared here")])
                    ok = False
                else:
                    values[spec.name] = spec.default
        return values if ok else UNKNOWN

    def _branches(self, e: Entry, attrs, full: str, inputs, scope: Scope):
        """Parallel chains reading one input, concatenated along the channels. A branch of one
        layer is named `branch<k>`, a longer one's layers `branch<k>.0`, `branch<k>.1`, ...
        (torchvision's Inception naming). In a block's body these names are the block
        instance's (`inception3a.branch1`); written as an entry in a list of layers, under the
        entry's own name (`mixed.branch1`), so that two such entries don't collide."""
        at = self._at(scope)
        if not isinstance(attrs, YList) or len(attrs.items) < 2:
            self.diags.error("E103", "branches must be a list of at least two branches",
                             at(attrs.span if attrs is not None else e.kind_span),
                             hints=["branches:\n      - [conv: {filters: 64, kernel: 1}]\n"
                                    "      - [maxpool: {kernel: 3, stride: 1, pad: 1}, ...]"])
            return UNKNOWN
        if isinstance(inputs, tuple) and len(inputs) != 1:
            self.diags.error("E113", f"branches take 1 input, got {len(inputs)}",
                             at(inputs[0][1]), hints=["every branch reads the same one input"])
            return UNKNOWN
        source = inputs[0][0] if isinstance(inputs, tuple) else UNKNOWN
        allow = scope.allow | e.allow
        if e.inline:  # later `from:` can't name the branches' layers, as with a block's
            scope = Scope(full + ".", scope.env, scope.origin, dict(scope.names),
                          dict(scope.spans), stack=scope.stack, allow=allow)
        outs = []
        for k, branch in enumerate(attrs.items, 1):
            named = self._named_branch(branch, scope)
            if named is UNKNOWN:
                outs.append((UNKNOWN, at(branch.span)))
                continue
            name, items = named if named is not None else (f"branch{k}", None)
            if items is None:
                items = branch.items if isinstance(branch, YList) else [branch]
            entries = [self._entry(item, scope) for item in items]
            out = source
            for i, entry in enumerate(entries):
                if entry is None:
                    out = UNKNOWN
                    continue
                default = name if len(entries) == 1 else f"{name}.{i}"
                out = self.place(entry, scope, out, default)
            if named is not None and name not in scope.names:
                scope.names[name] = out  # a named branch's name stands for its output
            outs.append((out, at(branch.span)))
        known = all(isinstance(o, str) for o, _ in outs)
        self.out.append(LayerUse("concat", e.kind_span, None, full, e.name_span,
                                 tuple(outs) if known else None, e.span, joins_branches=True,
                                 allow=allow, origin=scope.origin))
        return full

    def _named_branch(self, branch: YNode, scope: Scope):
        """A branch written `{name: branch3x3, layers: [...]}`: (its name, its layer items);
        None for a branch written as a layer entry or a list of them; UNKNOWN if it is wrong
        (reported). Its layers are named `<name>` (one) or `<name>.0`, `<name>.1`, ... unless
        they have names; `<name>` then stands for the branch's output."""
        if not isinstance(branch, YMap) or "layers" not in branch.entries:
            return None
        at = self._at(scope)
        ok = True
        for key in branch.entries:
            if key not in BRANCH_KEYS:
                self.diags.error("E102", f"unknown key '{key}' in a named branch",
                                 at(branch.key_span(key)),
                                 hints=lambda key=key: did_you_mean(key, BRANCH_KEYS)
                                 or ["a named branch has `name` and `layers`"])
                ok = False
        layers = branch.get("layers")
        if not isinstance(layers, YList) or not layers.items:
            self.diags.error("E103", f"the layers of a named branch must be a non-empty list, "
                             f"not {kind_name(layers)}", at(layers.span),
                             hints=["- {name: branch3x3, layers: [conv: {filters: 8, kernel: 1}, "
                                    "relu]}"])
            return UNKNOWN
        if "name" not in branch.entries:
            self.diags.error("E101", "a branch written as a mapping needs `name:`",
                             at(branch.span), hints=["or write the branch as a list of layers"])
            return UNKNOWN
        node = branch.get("name")
        span = at(node.span)
        name = check_name(self.diags, node, "a branch name", True, span)
        if name is None or not ok:
            return UNKNOWN
        if name in scope.names:
            self._duplicate(name, span, scope)
            return UNKNOWN
        scope.spans[name] = span
        return name, layers.items

    # --- values --------------------------------------------------------------------------

    def _at(self, scope: Scope):
        origin = scope.origin
        return (lambda span: span) if origin is None else (lambda span: span.with_origin(origin))

    def _value(self, node: YNode, scope: Scope, want: str, what: str):
        """A scalar (or expression) of type `want`, or UNKNOWN after reporting why."""
        span = self._at(scope)(node.span)
        value = node.value if isinstance(node, YScalar) else None
        if is_expression(value):
            value = self._evaluate(node, scope)
            if value is UNKNOWN:
                return UNKNOWN
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "bool": isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool)}[want]
        if not ok:
            shown = kind_name(YScalar(value, span)) if isinstance(node, YScalar) else kind_name(node)
            word = {"int": "an integer", "bool": "true or false", "float": "a number"}[want]
            self.diags.error("E103", f"{what} must be {word}, not {shown}", span)
            return UNKNOWN
        return float(value) if want == "float" else value

    def _evaluate(self, node: YScalar, scope: Scope):
        try:
            return evaluate(node.value, scope.env)
        except ExprError as err:
            span = self._at(scope)(node.span)
            if span.line == span.end_line:  # point at the character in the expression
                col = span.col + err.offset + (1 if node.quoted else 0)
                span = Span(span.source, span.line, col, span.line, col + 1, span.origin)
            text = node.value if len(node.value) <= 60 else node.value[:57] + "..."
            self.diags.error("E114", f"in `{text}`: {err.message}", span, hints=err.hints)
            return UNKNOWN

    def _attrs(self, kind: str, attrs, scope: Scope):
        """Attributes with expressions evaluated and spec defaults merged, and the keys the
        defaults gave; (UNKNOWN, ...) after an error (reported). Spans stay as written. Equal
        attributes (the same node, with the same argument values where it holds expressions)
        give the same result node."""
        key = (kind, id(attrs), scope.env_key() if self._expressive(attrs) else None)
        found = self._attr_memo.get(key)
        if found is not None:
            return found[1], found[2]
        result, defaulted = self._read_attrs(kind, attrs, scope)
        if result is not UNKNOWN:
            self._attr_memo[key] = (attrs, result, defaulted)
        return result, defaulted

    def _read_attrs(self, kind: str, attrs, scope: Scope):
        cls = REGISTRY.get(kind)
        if cls is not None and cls.main is not None and (
                (isinstance(attrs, YScalar) and attrs.value is not None)
                or (isinstance(attrs, YList) and _main_takes_list(cls))):
            # the shorthands, `- dense: 10` and `- maxpool: [2, 3]`: a mapping of the main
            # attribute, so that `defaults:` merge into them as into any mapping
            attrs = YMap({cls.main: attrs}, {cls.main: YScalar(cls.main, attrs.span)}, attrs.span)
        if isinstance(attrs, YScalar) and attrs.value is None:
            attrs = None
        result = self._subst(attrs, scope) if attrs is not None else None
        if result is UNKNOWN:
            return UNKNOWN, frozenset()
        defaults = self.defaults.get(kind)
        defaulted = frozenset()
        if defaults is not None and (result is None or isinstance(result, YMap)):
            defaulted = frozenset(k for k in defaults.entries
                                  if result is None or k not in result.entries)
            result = _merge(result, defaults) if result is not None else defaults
            if _expressions(result):  # only a default can still hold one (reported there)
                return UNKNOWN, frozenset()
        return result, defaulted

    def _expressive(self, node) -> bool:
        """Whether `node` (a value, list or mapping) holds an expression anywhere."""
        if node is None:
            return False
        found = self._has_expr.get(id(node))
        if found is None:
            if isinstance(node, YScalar):
                value = is_expression(node.value)
            elif isinstance(node, YList):
                value = any([self._expressive(i) for i in node.items])
            else:
                value = any([self._expressive(v) for v in node.entries.values()])
            found = self._has_expr[id(node)] = (value, node)
        return found[0]

    def _subst(self, node: YNode, scope: Scope):
        """`node` with its expressions evaluated (itself when it has none)."""
        if not self._expressive(node):
            return node
        if isinstance(node, YScalar):
            value = self._evaluate(node, scope)
            return UNKNOWN if value is UNKNOWN else YScalar(value, node.span)
        if isinstance(node, YList):
            items = [self._subst(i, scope) for i in node.items]
            return UNKNOWN if UNKNOWN in items else YList(items, node.span)
        entries = {k: self._subst(v, scope) for k, v in node.entries.items()}
        if any(v is UNKNOWN for v in entries.values()):
            return UNKNOWN
        return YMap(entries, node.keys, node.span)


# attribute kinds whose value may be a list: a layer type whose main attribute is one takes
# the list shorthand (`- maxpool: [2, 3]` for `{kernel: [2, 3]}`; docs/spec.md, Layers)
LIST_KINDS = ("pair", "padding", "sides", "scales", "ints")


def _main_takes_list(cls) -> bool:
    return any(a.name == cls.main and a.kind in LIST_KINDS for a in attributes(cls))


def _merge(mine: YMap | None, defaults: YMap | None) -> YMap | None:
    """`mine` with the keys of `defaults` that it does not set."""
    if defaults is None:
        return mine
    entries = dict(defaults.entries)
    keys = dict(defaults.keys)
    if mine is not None:
        entries.update(mine.entries)
        keys.update(mine.keys)
    span = mine.span if mine is not None else defaults.span
    return YMap(entries, keys, span)
