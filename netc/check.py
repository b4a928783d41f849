"""Attribute checking and shape inference: flat layer uses -> a checked IR graph.

This is the only stage that turns a rule failure into a user-facing error with a position:
layer classes raise position-free `RuleError`s, and this module knows which span (the
attribute, the `from` entry, or the layer) each one belongs to. Errors are collected for the
whole file; a layer whose input is already wrong is not checked again, so every error shown
is an independent one.
"""

from __future__ import annotations

import math
from .errors import Diagnostics, Note, RuleError, closest, did_you_mean, did_you_mean_type
from .expand import FlatSpec, LayerUse
from .ir import Graph, Node, Value, Weight
from .layers import REGISTRY, AttrSpec, Site, attributes, fmt_shape
from .layers.base import (INITIALISERS, INITIALISERS_WITH_VALUE, MAX_ITEMS, Layer, init_hints,
                          parse_init, volume)
from .layers.base import fmt_number as _num
from .limits import DEFAULT, Limits
from .load import YList, YMap, YNode, YScalar, kind_name
from .source import Span

MAX_TENSOR = DEFAULT.tensor  # the default limits (a run's own are in its `Limits`)
MAX_PARAMS = DEFAULT.params


class _Defined:
    """A name's value (None: this layer is wrong, so its output shape is unknown), where it is
    defined (a layer's span is placed only when a message needs it) and its position in the
    layer list (-1 for inputs)."""

    __slots__ = ("value", "where", "index")

    def __init__(self, value: Value | None, where: Span | LayerUse, index: int) -> None:
        self.value = value
        self.where = where
        self.index = index

    @property
    def span(self) -> Span:
        return self.where.kind_span if isinstance(self.where, LayerUse) else self.where


class Checker:
    """Checks one flat spec; `run` returns the graph (valid only if `diags` has no errors).

    `limits.tensor` and `limits.params` bound each tensor and all weights (E308). Attributes are
    read once per attributes node (block instances with equal arguments share one) and a
    layer's shape rule runs once per layer and input shapes. `cache`, when given, keeps the
    attributes between checks, for a caller that checks the same spec many times at other
    input sizes (`netc sizes`): attributes don't depend on the input's size."""

    def __init__(self, spec: FlatSpec, diags: Diagnostics, limits: Limits = DEFAULT,
                 cache: dict | None = None) -> None:
        self.spec = spec
        self.diags = diags
        self.limits = limits
        # (layer class, id of the attributes node) -> (the node, the layer): the node is kept
        # alive so that its id is not reused while it is a key
        self.cache = {} if cache is None else cache
        # (id of a layer, input shapes) -> (the layer, output shape, weights, MACs)
        self.inferred: dict[tuple, tuple] = {}
        self.defined: dict[str, _Defined] = {}
        self.nodes: list[Node] = []
        self.weight_total = 0  # weight values so far, against limits.params
        self.uses: dict[str, LayerUse] = {}  # checked layer -> its use (for attribute spans)
        self._place = None  # the use whose attribute is being read (errors are placed by it)
        self._key = None  # ... and the attribute
        # layer -> the warning codes its spec silences (`allow:`: its own, its enclosing block
        # uses' and branches', the spec's)
        self.allowed: dict[str, frozenset] = {u.name: u.allow for u in spec.layers}

    def run(self) -> Graph:
        spec = self.spec
        for decl in spec.inputs:
            elements = volume(decl.shape[1:])
            if elements > self.limits.tensor:
                self.diags.error("E308", f"input '{decl.name}' has {elements:,} elements per "
                                 f"image, more than the limit of {self.limits.tensor:,}",
                                 decl.span)
                self.defined[decl.name] = _Defined(None, decl.span, -1)
            else:
                self.defined[decl.name] = _Defined(Value(decl.name, decl.shape), decl.span, -1)
        for index, use in enumerate(spec.layers):
            self._layer(index, use)
        outputs = self._outputs()
        if not self.diags.has_errors():
            self._expect(outputs)
            self._labels(outputs)
            self._unused(outputs)
            self._lint(outputs)
        inputs = tuple(Value(d.name, d.shape) for d in spec.inputs)
        return Graph(spec.name, spec.description, inputs, tuple(self.nodes), tuple(outputs),
                     spec.preprocess, spec.labels)

    def _labels(self, outputs: list[Value]) -> None:
        """`labels:` name the classes of the (first) output, N × classes: one name each."""
        labels = self.spec.labels
        if labels is None or not outputs:
            return
        out = outputs[0]
        span = self.spec.labels_node.span
        if len(out.shape) != 2:
            self.diags.error("E118", f"labels name the classes of an N×classes output, and "
                             f"output '{out.name}' is {fmt_shape(out.shape)}", span,
                             hints=["a classifier ends with a dense layer (or a flatten after "
                                    "a global pool)"])
        elif out.shape[1] != len(labels):
            # the fix, by where the names come from (images.read_labels): a list, netc's
            # ImageNet names (`labels: imagenet`), or a file (any other scalar)
            from .images import IMAGENET

            node, classes = self.spec.labels_node, out.shape[1]
            if isinstance(node, YList):
                hint = "one name per output, in order"
            elif isinstance(node, YScalar) and node.value == IMAGENET:
                hint = (f"`labels: imagenet` names the 1,000 ImageNet classes, for an output "
                        f"of 1,000; name these {classes:,} as a list, or in a file "
                        "(`labels: classes.txt`, one name a line)")
            else:
                hint = (f"the labels file {str(getattr(node, 'value', ''))!r} has one name a "
                        f"line, line k for output k - 1: give it {classes:,} lines")
            self.diags.error("E118", f"labels name {len(labels):,} classes, and output "
                             f"'{out.name}' has {classes:,}", span, hints=[hint])

    # --- one layer ---------------------------------------------------------------------------

    def _layer(self, index: int, use: LayerUse) -> None:
        name = use.name
        if name in self.defined:  # two expansions made the same name
            self.diags.error("E110", f"the name '{name}' is already used",
                             use.name_span or use.kind_span,
                             notes=[Note(self.defined[name].span, "first used here")],
                             hints=["every layer and input needs its own name"])
            return
        cls = REGISTRY.get(use.kind)
        inputs = self._inputs(use)
        if cls is None:
            self.diags.error("E107", f"unknown layer type '{use.kind}'", use.kind_span,
                             hints=did_you_mean_type(use.kind, REGISTRY)
                             or [f"known types: {', '.join(sorted(REGISTRY))}"])
            self.defined[name] = _Defined(None, use, index)
            return
        layer = self._read_attributes(cls, use, name) if use.ok else None
        lo, hi = cls.arity
        if inputs is not None and not (lo <= len(inputs) <= (hi or len(inputs))):
            want = f"{lo} or more inputs" if hi is None else f"{lo} input{'s' * (lo > 1)}"
            span = use.input_span(0) if use.inputs else use.kind_span
            hint = ("name them with `from: [a, b]`" if lo > 1
                    else "give one name in `from:`")
            self.diags.error("E113", f"{use.kind} '{name}' takes {want}, got {len(inputs)}",
                             span, hints=[hint])
            inputs = None
        values = tuple([d.value for d in inputs]) if inputs is not None else ()
        if layer is None or inputs is None or any([v is None for v in values]):
            self.defined[name] = _Defined(None, use, index)
            return
        xs = tuple([v.shape for v in values])
        key = (id(layer), xs)
        found = self.inferred.get(key)
        if found is None:
            try:
                out = layer.infer(*xs)
                weight_specs = layer.weights(*xs)
            except RuleError as e:
                self._rule_error(e, use, name, inputs)
                self.defined[name] = _Defined(None, use, index)
                return
            found = self.inferred[key] = (
                layer, out, weight_specs, layer.macs(out, *xs), volume(out[1:]),
                tuple([volume(w.shape) for w in weight_specs]))
        _, out, weight_specs, macs, elements, sizes = found
        if not self._within_limits(use, name, out, weight_specs, elements, sizes):
            self.defined[name] = _Defined(None, use, index)
            return
        value = Value(name, out)
        weights = tuple([Weight(name if w.own_name else f"{name}.{w.param}", w)
                         for w in weight_specs])
        self.nodes.append(Node(name, layer, values, value, weights, macs, use.span, use.allow))
        self.defined[name] = _Defined(value, use, index)
        self.uses[name] = use

    def _inputs(self, use: LayerUse) -> list[_Defined] | None:
        """What the layer reads; None when that is unknown (the cause is already reported)."""
        if use.inputs is None:
            return None
        found = [self.defined.get(ref) for ref, _ in use.inputs]
        return None if None in found else found

    def _read_attributes(self, cls, use: LayerUse, name: str):
        """`_attributes`, once per attributes node (only a layer read without errors is kept,
        so that every use of a wrong one is reported, as one error: they share its position).
        """
        key = (cls, id(use.attrs))
        found = self.cache.get(key)
        if found is not None:
            return found[1]
        layer = self._attributes(cls, use, name)
        if layer is not None:
            self.cache[key] = (use.attrs, layer)
        return layer

    def _at(self, span: Span) -> Span:
        """A span inside the attribute being read, placed at its layer's block use."""
        return self._place.attr_span(self._key, span) if self._place is not None else span

    def _attributes(self, cls, use: LayerUse, name: str):
        """Read `use.attrs` against the class's fields; the layer, or None (reported)."""
        specs = {a.name: a for a in attributes(cls)}
        given: dict[str, YNode] = {}
        node = use.attrs
        self._place, self._key = use, None
        what = f"{use.kind} '{name}'"
        meant = set()  # attributes that a misspelt key stands for: one error, not two
        # (a flag, not a count of diagnostics: inside a block used twice, the second use's
        # error is the first's, dropped as a duplicate)
        misspelt = False
        if isinstance(node, YMap):
            for key, value in node.items():
                if key in specs:
                    given[key] = value
                else:
                    meant.add(closest(key, specs))
                    misspelt = True
                    hints = did_you_mean(key, specs)
                    if key == "name":
                        hints = ["write `name:` beside the layer type, not among its attributes"]
                    elif not hints:
                        known = ", ".join(specs) or "none"
                        hints = [f"{use.kind} attributes: {known}"]
                    self.diags.error("E102", f"unknown attribute '{key}' for {use.kind}",
                                     use.attr_span(key, node.key_span(key)), hints=hints)
        elif isinstance(node, YScalar) and node.value is not None:
            if cls.main is None:
                self.diags.error("E108", f"{use.kind} takes no value", use.place(node.span),
                                 hints=[f"write `- {use.kind}`"])
                return None
            given[cls.main] = node
        elif isinstance(node, YList):
            self.diags.error("E103", f"the attributes of {what} must be a mapping, not a list",
                             use.place(node.span))
            return None
        values, ok = {}, True
        for spec in specs.values():
            if spec.name not in given:
                if spec.required and spec.name not in meant:
                    self.diags.error("E101", f"{what} needs `{spec.name}` ({spec.doc})",
                                     use.kind_span, hints=[_example(use.kind, spec)])
                    ok = False
                continue
            self._key = spec.name
            value = self._convert(spec, given[spec.name], what)
            if value is _BAD:
                ok = False
            else:
                values[spec.name] = value
        self._place = None
        if not ok or misspelt:
            return None  # a misspelt attribute would make the shapes below meaningless
        return cls(**values)

    def _attr_span(self, use: LayerUse, key: str | None) -> Span | None:
        """Where attribute `key` of `use` is written (placed), or None if it is not."""
        node = use.attrs
        if isinstance(node, YMap) and key in node.entries:
            return use.attr_span(key, node.entries[key].span)
        if isinstance(node, YScalar) and key is not None and key == REGISTRY[use.kind].main:
            return use.place(node.span)
        return None

    def _convert(self, spec: AttrSpec, node: YNode, what: str):
        label = f"`{spec.name}` of {what}"
        if spec.optional and isinstance(node, YScalar) and node.value is None:
            return None
        if spec.kind in ("int", "float", "bool", "choice"):
            return self._scalar(spec, node, label)
        if spec.kind == "init":
            return self._init(spec, node, label)
        if spec.kind == "ints":
            return self._ints(spec, node, label)
        if spec.kind == "padding" and isinstance(node, YScalar) and isinstance(node.value, str):
            return self._scalar(spec, node, label)
        if isinstance(node, YScalar):
            v = self._scalar(spec, node, label, as_int=True)
            if v is _BAD:
                return _BAD
            return (v, v) if spec.kind == "pair" else (v, v, v, v)
        allowed = (2,) if spec.kind == "pair" else (2, 4)
        if not isinstance(node, YList) or len(node.items) not in allowed:
            form = ("an int or [height, width]" if spec.kind == "pair" else
                    "an int, [h, w], [top, left, bottom, right], same, same_lower or valid")
            self.diags.error("E103", f"{label} must be {form}, not {_list_or(node)}",
                             self._at(node.span))
            return _BAD
        items = [self._scalar(spec, item, label, as_int=True) for item in node.items]
        if _BAD in items:
            return _BAD
        if spec.kind == "padding" and len(items) == 2:
            items = items * 2
        return tuple(items)

    def _scalar(self, spec: AttrSpec, node: YNode, label: str, as_int: bool = False):
        v = node.value if isinstance(node, YScalar) else None
        kind = "int" if as_int else spec.kind
        if kind == "bool":
            if isinstance(v, bool):
                return v
            return self._type_error(label, "true or false", node)
        if kind in ("choice", "padding"):
            if isinstance(v, str) and v in spec.choices:
                return v
            if isinstance(v, str):
                self.diags.error("E105", f"{label} can't be {v!r}", self._at(node.span),
                                 hints=did_you_mean(v, spec.choices)
                                 or [f"choose one of: {', '.join(spec.choices)}"])
                return _BAD
            return self._type_error(label, "one of " + ", ".join(spec.choices), node)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or isinstance(node, (YMap, YList)):
            return self._type_error(label, "an integer" if kind == "int" else "a number", node)
        if kind == "int" and not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                self.diags.error("E103", f"{label} must be an integer, not {v}",
                                 self._at(node.span), hints=[f"write {int(v)}"])
                return _BAD
            return self._type_error(label, "an integer", node)
        if not math.isfinite(v):
            self.diags.error("E105", f"{label} must be a finite number, not {v}",
                             self._at(node.span))
            return _BAD
        if spec.min is not None and v < spec.min:
            self.diags.error("E105", f"{label} must be at least {_num(spec.min)}, not {v}",
                             self._at(node.span))
            return _BAD
        if spec.max is not None and (v > spec.max or (spec.exclusive_max and v >= spec.max)):
            code = "E105" if spec.exclusive_max or spec.max <= 8 else "E112"
            bound = "less than" if spec.exclusive_max else "at most"
            self.diags.error(code, f"{label} must be {bound} {_num(spec.max)}, not {v}",
                             self._at(node.span))
            return _BAD
        return float(v) if kind == "float" else v

    def _ints(self, spec: AttrSpec, node: YNode, label: str):
        """A list of integers (`dims: [0, 2, 3, 1]`), each within the attribute's bounds."""
        if not isinstance(node, YList) or not 1 <= len(node.items) <= MAX_ITEMS:
            self.diags.error("E103", f"{label} must be a list of 1 to {MAX_ITEMS} integers, "
                             f"not {_list_or(node)}", self._at(node.span),
                             hints=[f"write it in brackets, for example `{spec.name}: [1, 2]`"])
            return _BAD
        items = [self._scalar(spec, item, label, as_int=True) for item in node.items]
        return _BAD if _BAD in items else tuple(items)

    def _init(self, spec: AttrSpec, node: YNode, label: str):
        v = node.value if isinstance(node, YScalar) else None
        if not isinstance(v, str):
            return self._type_error(label, "an initialiser name such as he_normal", node)
        problem = parse_init(v)
        if isinstance(problem, str):
            name, paren, _ = v.partition("(")
            if paren and name in INITIALISERS_WITH_VALUE:  # `normal(x)`: not a misspelt name
                hints = init_hints(name)
            else:
                hints = did_you_mean(v, INITIALISERS) \
                    or [f"choose one of: {', '.join(spec.choices)}"]
            self.diags.error("E105", f"{label}: {problem}", self._at(node.span), hints=hints)
            return _BAD
        return v

    def _type_error(self, label: str, want: str, node: YNode):
        hints = []
        if isinstance(node, YScalar) and isinstance(node.value, str) and want != "true or false":
            hints = ["remove the quotes"] if node.quoted else []
        self.diags.error("E103", f"{label} must be {want}, not {kind_name(node)}",
                         self._at(node.span), hints=hints)
        return _BAD

    def _rule_error(self, e: RuleError, use: LayerUse, name, inputs) -> None:
        span = self._attr_span(use, e.attr) if e.attr is not None else None
        if span is None and e.input is not None and use.inputs and e.input < len(use.inputs):
            span = use.input_span(e.input)
        span = span or use.kind_span
        notes = []
        if e.code == "E305" or e.input is not None:
            for ref in inputs:
                notes += self._provenance(ref)
        self.diags.error(e.code, f"{use.kind} '{name}': {e.message}", span,
                         details=e.details, hints=e.hints, notes=notes)

    def _provenance(self, ref: _Defined, limit: int = 3) -> list[Note]:
        """Where an operand's shape came from: the operand, then (walking back along first
        inputs) each earlier layer that changed the size, with its position."""
        value = ref.value
        if ref.index < 0:
            return [Note(ref.span, f"input '{value.name}' is {fmt_shape(value.shape)}")]
        notes = [Note(ref.span, f"'{value.name}' is {fmt_shape(value.shape)}, made here")]
        nodes = {n.name: n for n in self.nodes}
        node = nodes.get(value.name)
        while node is not None and node.inputs and len(notes) <= limit:
            before = node.inputs[0]
            if before.shape != node.output.shape:
                if node.name != value.name:
                    notes.append(Note(self.defined[node.name].span,
                                      f"{node.kind} '{node.name}' turned {fmt_shape(before.shape)} "
                                      f"into {fmt_shape(node.output.shape)}"))
            node = nodes.get(before.name)
            if node is None and before.name in self.defined and len(notes) <= limit:
                d = self.defined[before.name]
                if d.index < 0:
                    notes.append(Note(d.span, f"from input '{before.name}' "
                                      f"({fmt_shape(before.shape)})"))
        return notes

    def _within_limits(self, use, name, out, weight_specs, elements, sizes) -> bool:
        """Whether the output (`elements` per image) and the weights (`sizes`) are within the
        limits, all weights so far included (E308 if not)."""
        limits = self.limits
        if elements > limits.tensor:
            self.diags.error("E308", f"{use.kind} '{name}' outputs {elements:,} elements per "
                             f"image, more than the limit of {limits.tensor:,}", use.kind_span)
            return False
        for w, size in zip(weight_specs, sizes):
            total = self.weight_total + size
            if size > limits.tensor or total > limits.params:
                self.diags.error(
                    "E308", f"{use.kind} '{name}' needs a {'×'.join(map(str, w.shape))} "
                    f"{w.param} tensor ({size:,} numbers), more than netc allows "
                    f"({limits.tensor:,} per tensor, {limits.params:,} in all)", use.kind_span,
                    hints=["is a flatten or pooling layer missing before it?"])
                return False
            self.weight_total = total
        return True

    # --- outputs and expectations ------------------------------------------------------------

    def _outputs(self) -> list[Value]:
        refs = self.spec.outputs
        if refs is None:
            refs = [(self.spec.last, None)] if self.spec.last else []
        values = []
        for ref, _ in refs:
            d = self.defined.get(ref)
            if d is not None and d.value is not None:
                values.append(d.value)
        return values

    def _unused(self, outputs: list[Value]) -> None:
        """Warn about layers whose output nothing reads (often a `from:` that names the wrong
        layer); they are still compiled."""
        read = {x.name for n in self.nodes for x in n.inputs} | {v.name for v in outputs}
        for node in self.nodes:
            if node.name not in read and "W201" not in self.allowed.get(node.name, ()):
                self.diags.warning("W201", f"{node.kind} '{node.name}' is not used: no layer "
                                   "reads it and it is not an output", self.defined[node.name].span,
                                   hints=["list it in `outputs:`, or read it with `from:`"])

    # --- warnings about a valid network ---------------------------------------------------------

    def _lint(self, outputs: list[Value]) -> None:
        """Warn about layers that are valid but probably not what was meant: each layer class
        says what (its `lints`: W202-W204, docs/errors.md); this attaches the positions and
        leaves out the codes the spec allows there."""
        readers: dict[str, list[Node]] = {}
        for node in self.nodes:
            for ref in dict.fromkeys(x.name for x in node.inputs):
                readers.setdefault(ref, []).append(node)
        output_names = {v.name for v in outputs}
        quiet = set()
        for node in self.nodes:
            if type(node.layer).lints is Layer.lints:  # a type without lints (most)
                continue
            read_by = readers.get(node.name, ())
            xs = tuple([x.shape for x in node.inputs])
            is_output = node.name in output_names
            # lints depend on the layer, its shapes and its readers' layers (a name only goes
            # into a message): where an equal site had none, this one has none either
            key = (id(node.layer), xs, tuple([id(r.layer) for r in read_by]), is_output)
            if key in quiet:
                continue
            site = Site(node.name, xs, node.output.shape,
                        tuple((r.name, r.layer) for r in read_by), is_output)
            lints = node.layer.lints(site)
            if not lints:
                quiet.add(key)
            allowed = self.allowed.get(node.name, frozenset())
            for lint in lints:
                if lint.code in allowed:
                    continue
                span = (self._attr_span(self.uses[node.name], lint.attr)
                        or self.defined[node.name].span)
                self.diags.warning(lint.code, lint.message, span,
                                   details=list(lint.details), hints=list(lint.hints))

    def _expect(self, outputs: list[Value]) -> None:
        node = self.spec.expect
        if node is None:
            return
        params = sum(n.params for n in self.nodes)
        macs = sum(n.macs for n in self.nodes)
        for key, value in node.items():
            span = value.span
            if key in ("params", "macs"):
                want = value.value if isinstance(value, YScalar) else None
                if not isinstance(want, int) or isinstance(want, bool):
                    self.diags.error("E103", f"expect.{key} must be an integer, not "
                                     f"{kind_name(value)}", span)
                    continue
                got = params if key == "params" else macs
                if want != got:
                    code, what = ("E401", "parameters") if key == "params" else ("E402", "MACs")
                    diff = got - want
                    self.diags.error(code, f"expected {want:,} {what}, the network has {got:,}",
                                     span, details=[f"difference: {diff:+,}"],
                                     hints=[f"if the change is intended, write `{key}: {got}`"])
            elif key == "outputs":
                self._expect_outputs(value, outputs)
            else:
                self.diags.error("E102", f"unknown key '{key}' in expect", node.key_span(key),
                                 hints=did_you_mean(key, ("params", "macs", "outputs"))
                                 or ["expect takes params, macs and outputs"])

    def _expect_outputs(self, node: YNode, outputs: list[Value]) -> None:
        if not isinstance(node, YMap):
            self.diags.error("E103", f"expect.outputs must map output names to shapes, not "
                             f"{kind_name(node)}", node.span)
            return
        actual = {v.name: v.shape for v in outputs}
        for name, shape in node.items():
            if name not in actual:
                self.diags.error("E403", f"'{name}' is not an output of the network",
                                 node.key_span(name),
                                 hints=did_you_mean(name, actual)
                                 or [f"outputs: {', '.join(actual)}"])
                continue
            want = tuple(d.value for d in shape.items if isinstance(d, YScalar)) \
                if isinstance(shape, YList) else None
            numeric = [d for d in shape.items if isinstance(d, YScalar) and d.quoted
                       and d.value.strip().isdigit()] if isinstance(shape, YList) else []
            if numeric:  # "30" would print as 30 and make the mismatch below unreadable
                self.diags.error("E103", f"a size in expect.outputs must be an integer, not "
                                 f"{kind_name(numeric[0])}", numeric[0].span,
                                 hints=["remove the quotes"])
                continue
            if want != actual[name]:
                shown = fmt_shape(want) if want else kind_name(shape)
                got = list(actual[name])
                self.diags.error("E403", f"expected output '{name}' to be {shown}, the network "
                                 f"gives {fmt_shape(actual[name])}", shape.span,
                                 hints=[f"if the change is intended, write "
                                        f"`{name}: [{', '.join(map(str, got))}]`"])


class _Bad:
    def __repr__(self) -> str:
        return "<bad>"


_BAD = _Bad()


def _list_or(node: YNode) -> str:
    if isinstance(node, YList):
        return f"a list of {len(node.items)}"
    return kind_name(node)


def _example(kind: str, spec: AttrSpec) -> str:
    examples = {"filters": "filters: 16", "kernel": "kernel: 3", "units": "units: 10"}
    return f"for example `- {kind}: {{{examples.get(spec.name, spec.name + ': ...')}}}`"
