"""Attribute checking and shape inference: flat layer uses -> a checked IR graph.

This is the only stage that turns a rule failure into a user-facing error with a position:
layer classes raise position-free `RuleError`s, and this module knows which span (the
attribute, the `from` entry, or the layer) each one belongs to. Errors are collected for the
whole file; a layer whose input is already wrong is not checked again, so every error shown
is an independent one.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import NamedTuple
from .alignment import Growth, find_pattern, fit_growth, lcm, nearest, ranges
from .errors import (Diagnostics, Note, RuleError, closest_attribute, did_you_mean,
                     did_you_mean_attribute, did_you_mean_type)
from .expand import LIST_KINDS as _LIST_KINDS, LOCAL_NAME_RE as _LOCAL_NAME_RE
from .expand import FlatSpec, LayerUse
from .ir import Graph, Node, Value, Weight
from .layers import REGISTRY, AttrSpec, Site, attributes, fmt_shape
from .layers.base import (INITIALISERS, INITIALISERS_WITH_VALUE, MAX_ITEMS, Layer, float_hint,
                          float_problem, init_hints, parse_init, volume)
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


def _channels_last_hint(layer, inputs) -> str | None:
    """A hint for a shape error at a layer that reads a declared input written channels last
    (`image: [N, 32, 32, 3]`, the lecture's 32x32x3): netc is NCHW, so that reads as 32
    channels of 32x3. Offered only where the last size is 1, 3 or 4 and the second isn't,
    and only with the corrected line that the layer's own rule accepts."""
    shapes = [d.value.shape for d in inputs]
    for k, ref in enumerate(inputs):
        shape = ref.value.shape
        if ref.index >= 0 or len(shape) != 4 or shape[3] not in (1, 3, 4) \
                or shape[1] in (1, 3, 4):
            continue
        fixed = (shape[0], shape[3], shape[1], shape[2])
        try:
            layer.infer(*shapes[:k], fixed, *shapes[k + 1:])
        except RuleError:
            continue
        except Exception:  # (a trial only: the error already found is the one to report)
            continue
        written = ", ".join(map(str, fixed))
        return (f"netc is NCHW (channels first): input '{ref.value.name}' "
                f"[{', '.join(map(str, shape))}] reads as {shape[1]} channels of "
                f"{shape[2]}x{shape[3]}; for a {shape[1]}x{shape[2]} image with {shape[3]} "
                f"channel{'s' * (shape[3] > 1)}, write `{ref.value.name}: [{written}]`")
    return None


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
        # the names netc gives the layers' tensors (`<layer>.<param>`, and the bias --fold-bn
        # gives a conv without one) -> (the layer, its use, the param, whether --fold-bn
        # makes it): in an ONNX model a tensor and a layer's output can't share a name
        self.derived: dict[str, tuple[str, LayerUse, str, bool]] = {}
        self._taken: set[str] | None = None  # every layer and input name (`_free_name`)
        self._place = None  # the use whose attribute is being read (errors are placed by it)
        self._key = None  # ... and the attribute
        # layer -> the warning codes its spec silences (`allow:`: its own, its enclosing block
        # uses' and branches', the spec's)
        self.allowed: dict[str, frozenset] = {u.name: u.allow for u in spec.layers}
        # joins whose operands differ in height or width, reported once every layer is read
        # (`_report_joins`): which input sizes line them up depends on the layers after them
        # too. A caller with its own `cache` checks many sizes itself: no replay for it.
        self.joins: list[tuple] = []
        self.replays = cache is None

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
        if self.joins:
            self._report_joins()
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
        """`labels:` name the classes of the (first) output, one name each: the classes on
        axis 1 of an N×classes output (a classifier) or of an N×classes×H×W one (a score per
        class per pixel, as PyTorch's segmentation models give them)."""
        labels = self.spec.labels
        if labels is None or not outputs:
            return
        out = outputs[0]
        span = self.spec.labels_node.span
        if len(out.shape) not in (2, 4):
            self.diags.error("E118", f"labels name the classes of an N×classes or "
                             f"N×classes×H×W output, and output '{out.name}' is "
                             f"{fmt_shape(out.shape)}", span,
                             hints=["a classifier ends with a dense layer (or a flatten after "
                                    "a global pool); a segmentation model with a conv to one "
                                    "channel per class"])
        elif out.shape[1] != len(labels):
            # the fix, by where the names come from (images.read_labels): a list, netc's
            # ImageNet or VOC names (`labels: imagenet`), or a file (any other scalar)
            from .images import SHIPPED_LABELS

            node, classes = self.spec.labels_node, out.shape[1]
            if isinstance(node, YList):
                hint = "one name per output, in order"
            elif isinstance(node, YScalar) and node.value in SHIPPED_LABELS:
                hint = (f"`labels: {node.value}` names {SHIPPED_LABELS[node.value][1]}, for an "
                        f"output of {len(labels):,}; name these {classes:,} as a list, or in a "
                        "file (`labels: classes.txt`, one name a line)")
            else:
                hint = (f"the labels file {str(getattr(node, 'value', ''))!r} has one name a "
                        f"line, line k for output k - 1: give it {classes:,} lines")
            where = "" if len(out.shape) == 2 else \
                f" on axis 1 ({fmt_shape(out.shape)}: a score per class per pixel)"
            self.diags.error("E118", f"labels name {len(labels):,} classes, and output "
                             f"'{out.name}' has {classes:,}{where}", span, hints=[hint])

    # --- one layer ---------------------------------------------------------------------------

    def _layer(self, index: int, use: LayerUse) -> None:
        name = use.name
        if name in self.defined:  # two expansions made the same name
            self.diags.error("E110", f"the name '{name}' is already used",
                             use.name_span or use.kind_span,
                             notes=[Note(self.defined[name].span, "first used here")],
                             hints=["every layer and input needs its own name"])
            return
        if name in self.derived:  # an earlier layer's tensor is named so
            self._tensor_name_used(name, use, self.derived[name])
        cls = REGISTRY.get(use.kind)
        inputs = self._inputs(use)
        if cls is None:
            self.diags.error("E107", f"unknown layer type '{use.kind}'", use.kind_span,
                             hints=lambda kind=use.kind: did_you_mean_type(kind, REGISTRY)
                             or [f"known types: {', '.join(sorted(REGISTRY))}"])
            self.defined[name] = _Defined(None, use, index)
            return
        layer = self._read_attributes(cls, use, name) if use.ok else None
        lo, hi = cls.arity
        if inputs is not None and not (lo <= len(inputs) <= (hi or len(inputs))):
            # the layers a `to:` names are inputs too (the last ones), but not the user's
            # count: say how many data inputs `from:` gave
            refs = sum(getattr(layer, r, None) is not None for r in cls.references) \
                if layer is not None else 0
            data, hi_data = len(inputs) - refs, None if hi is None else hi - len(cls.references)
            lo = min(lo, hi_data) if hi_data is not None else lo
            want = f"{lo} or more inputs" if hi is None else f"{lo} input{'s' * (lo > 1)}"
            besides = (" besides the layer" + "s" * (refs > 1) + " "
                       + ", ".join(f"`{r}:`" for r in cls.references) + " names") if refs else ""
            span = use.input_span(0) if use.inputs else use.kind_span
            hint = ("name them with `from: [a, b]`" if lo > 1
                    else "give one name in `from:`")
            self.diags.error("E113", f"{use.kind} '{name}' takes {want}{besides}, got {data}",
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
                self._rule_error(e, use, name, inputs, layer)
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
        for w in weights:
            if not w.spec.own_name:  # (an own_name tensor is the layer's output: one name)
                self._derive(w.name, name, use, w.spec.param)
        if layer.absorbs_affine and not layer.bias:  # (absorbs_affine: it has a bias switch)
            self._derive(f"{name}.bias", name, use, "bias", folded=True)
        self.nodes.append(Node(name, layer, values, value, weights, macs, use.span, use.allow))
        self.defined[name] = _Defined(value, use, index)
        self.uses[name] = use

    def _derive(self, tensor: str, owner: str, use: LayerUse, param: str,
                folded: bool = False) -> None:
        """Note the name `tensor` that netc gives tensor `param` of layer `owner` (made by
        --fold-bn: `folded`); E110 where an input or an earlier layer has that name."""
        entry = (owner, use, param, folded)
        found = self.defined.get(tensor)
        if found is not None:
            self._tensor_name_used(tensor, found.where, entry)
        self.derived.setdefault(tensor, entry)

    def _tensor_name_used(self, name: str, where: Span | LayerUse, entry: tuple) -> None:
        """E110 at the input or layer (`where`) whose name `name` netc gives a layer's tensor
        (`entry`, as in `self.derived`), with a name that is free."""
        owner, use, param, folded = entry
        if isinstance(where, LayerUse):
            span, what = where.name_span or where.kind_span, "layer"
            written = _written_name(where.raw_name_span)
        else:
            span, what, written = where, "input", name
        tensor = f"the {param} tensor of {use.kind} '{owner}'"
        self.diags.error(
            "E110", f"the name '{name}' is the name of {tensor}" + (
                " that --fold-bn makes (folding a batchnorm after it into it)" if folded
                else ""),
            span, details=["netc names a layer's tensors <layer>.<param>, as PyTorch's "
                           "state_dict keys, and in an ONNX model a tensor and a layer's output "
                           "can't share a name"],
            notes=[Note(use.name_span or use.kind_span, f"{use.kind} '{owner}' is here")],
            hints=[f"rename the {what}: for example `{self._free_name(name, written)}` is "
                   "free"])

    def _free_name(self, full: str, written: str | None) -> str:
        """A name to write instead of `written` (the end of full name `full`, as the spec
        writes it, else `full`) that no layer, input or tensor has: its dots made `_`, and a
        number added if that is taken too."""
        if self._taken is None:
            self._taken = {d.name for d in self.spec.inputs} | {u.name for u in self.spec.layers}
        local = written if written and full.endswith(written) else full
        prefix, base = full[:len(full) - len(local)], local.replace(".", "_")
        candidate, k = base, 1
        while prefix + candidate in self._taken or prefix + candidate in self.derived:
            k += 1
            candidate = f"{base}{k}"
        return candidate

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
                    # (a layer type defined outside netc may lack the table)
                    foreign = getattr(cls, "foreign_attributes", None)
                    meant.add(closest_attribute(key, specs, foreign))
                    misspelt = True
                    def hints(key=key, foreign=foreign, kind=use.kind):  # (if shown)
                        if key == "name":
                            return ["write `name:` beside the layer type, not among its "
                                    "attributes"]
                        return did_you_mean_attribute(key, specs, foreign) \
                            or [f"{kind} attributes: {', '.join(specs) or 'none'}"]
                    self.diags.error("E102", f"unknown attribute '{key}' for {use.kind}",
                                     use.attr_span(key, node.key_span(key)), hints=hints)
        elif isinstance(node, YScalar) and node.value is not None:
            if cls.main is None:
                self.diags.error("E108", f"{use.kind} takes no value", use.place(node.span),
                                 hints=[f"write `- {use.kind}`"])
                return None
            given[cls.main] = node
        elif isinstance(node, YList):
            main = specs.get(cls.main) if cls.main is not None else None
            if main is None or main.kind not in _LIST_KINDS:
                self.diags.error("E103", f"the attributes of {what} must be a mapping, not a "
                                 "list", use.place(node.span), hints=[_mapping_hint(use.kind, cls)])
                return None
            if self.spec.defaults.get(use.kind) is not None:
                # expand.py merges `defaults:` into a mapping (a scalar shorthand becomes
                # one); a list that reaches here was not merged, and reading it would drop
                # the defaults without a word
                self.diags.error("E103", f"the attributes of {what} must be a mapping here, "
                                 f"where `defaults:` gives {use.kind} attributes too",
                                 use.place(node.span),
                                 hints=[f"write `- {use.kind}: {{{cls.main}: "
                                        f"{_flow(node)}}}`"])
                return None
            given[cls.main] = node  # `- maxpool: [2, 3]`, `- resize: [0.5, 2]`
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
        if isinstance(node, (YScalar, YList)) and key is not None \
                and key == REGISTRY[use.kind].main:  # the shorthand, `- maxpool: [2, 3]`
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
        if spec.kind == "ref":
            return self._ref(spec, node, label)
        if spec.kind == "scales":
            return self._scales(spec, node, label)
        if spec.kind == "padding" and isinstance(node, YScalar) and isinstance(node.value, str):
            return self._scalar(spec, node, label)
        if isinstance(node, YScalar):
            v = self._scalar(spec, node, label, as_int=True)
            if v is _BAD:
                return _BAD
            return (v, v) if spec.kind == "pair" else (v, v, v, v)
        allowed = (2,) if spec.kind == "pair" else (2, 4)
        if not isinstance(node, YList) or len(node.items) not in allowed:
            form = {"pair": "an int or [height, width]",
                    "sides": "an int, [h, w] or [top, left, bottom, right]"}.get(
                spec.kind, "an int, [h, w], [top, left, bottom, right], same, same_lower or valid")
            self.diags.error("E103", f"{label} must be {form}, not {_list_or(node)}",
                             self._at(node.span))
            return _BAD
        items = [self._scalar(spec, item, label, as_int=True) for item in node.items]
        if _BAD in items:
            return _BAD
        if spec.kind in ("padding", "sides") and len(items) == 2:
            items = items * 2
        return tuple(items)

    def _scales(self, spec: AttrSpec, node: YNode, label: str):
        """A number, or [height, width] numbers (`scale: 2`, `scale: [1.5, 2]`), as floats."""
        number = dataclasses.replace(spec, kind="float")
        if isinstance(node, YScalar):
            v = self._scalar(number, node, label)
            return _BAD if v is _BAD else (v, v)
        if not isinstance(node, YList) or len(node.items) != 2:
            self.diags.error("E103", f"{label} must be a number or [height, width], not "
                             f"{_list_or(node)}", self._at(node.span))
            return _BAD
        items = [self._scalar(number, item, label) for item in node.items]
        return _BAD if _BAD in items else tuple(items)

    def _ref(self, spec: AttrSpec, node: YNode, label: str):
        """The name of a layer or input (`to: skip`), as written. expand.py resolved it (the
        value it names is one of the layer's inputs) and reported a name that is wrong, so a
        value that is not a string is only skipped here; except one that `defaults:` gave,
        which expand doesn't resolve (a default applies everywhere, where a name means one
        layer)."""
        if spec.name in self._place.defaulted:
            self.diags.error("E105", f"{label} names a layer, so `defaults:` can't give it",
                             self._at(node.span),
                             hints=[f"write `{spec.name}:` on each layer that needs it"])
            return _BAD
        value = node.value if isinstance(node, YScalar) else None
        return value if isinstance(value, str) else _BAD

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
                                 hints=lambda v=v, choices=spec.choices: did_you_mean(v, choices)
                                 or [f"choose one of: {', '.join(choices)}"])
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
        if kind == "float":
            # a real attribute is written as a float32 (an ONNX float attribute or constant):
            # one float32 can't hold would fail the writer or change meaning (an eps of 0)
            problem = float_problem(v)
            if problem is not None:
                self.diags.error("E105", f"{label} must be a float32 number, and it is "
                                 f"{problem}", self._at(node.span), hints=[float_hint()])
                return _BAD
            return float(v)
        return v

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
                hints = init_hints(name, problem)
            else:
                def hints(v=v, choices=spec.choices):  # (if shown)
                    return did_you_mean(v, INITIALISERS) or [f"choose one of: {', '.join(choices)}"]
            self.diags.error("E105", f"{label}: {problem}", self._at(node.span), hints=hints)
            return _BAD
        return v

    def _type_error(self, label: str, want: str, node: YNode):
        hints = []
        if isinstance(node, YScalar) and isinstance(node.value, str) and want != "true or false":
            hints = ["remove the quotes"] if node.quoted else []
            cls = REGISTRY.get(self._place.kind) if self._place is not None else None
            if cls is not None and cls.references and self._key == cls.main \
                    and _LOCAL_NAME_RE.match(node.value) and not node.value[0].isdigit():
                # `- resize: skip`: the shorthand sets the main attribute (a number), while a
                # layer's size is taken with `to:`
                hints = [f"to take the height and width of layer '{node.value}', write "
                         f"`{self._place.kind}: {{{cls.references[0]}: {node.value}}}`"]
        self.diags.error("E103", f"{label} must be {want}, not {kind_name(node)}",
                         self._at(node.span), hints=hints)
        return _BAD

    def _rule_error(self, e: RuleError, use: LayerUse, name, inputs, layer=None) -> None:
        if layer is not None and e.code.startswith("E3"):
            hint = _channels_last_hint(layer, inputs)
            if hint is not None:
                e = RuleError(e.message, code=e.code, attr=e.attr, input=e.input,
                              details=e.details, hints=[hint, *e.hints])
        span = self._attr_span(use, e.attr) if e.attr is not None else None
        if span is None and e.input is not None and use.inputs and e.input < len(use.inputs):
            span = use.input_span(e.input)
        span = span or use.kind_span
        if e.code == "E305" and len(inputs) > 1:
            layer = self.cache.get((REGISTRY.get(use.kind), id(use.attrs)), (None, None))[1]
            found = _misaligned(layer, [d.value.shape for d in inputs], e.input)
            if found is not None:  # reported when every layer is read: `_report_joins`
                self.joins.append((e, use, name, layer, inputs, span, *found))
                return
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

    # --- joins whose operands differ in height or width (encoder-decoder skips) ------------

    def _report_joins(self) -> None:
        """E305 for each join whose operands differ in height or width only (the classic
        U-Net mistake: an input size that is not a multiple of 2^depth, so that a `round:
        floor` pool drops a row the upsampling doesn't give back). It names each operand's
        size and the layers that made it, the input sizes at which they line up (the network
        replayed there: `_line_up`) and fixes. Run after every layer is read, since whether
        the network checks at a size depends on the layers after the join too."""
        for e, use, name, layer, inputs, span, k, j, axes in self.joins:
            a, b = inputs[k], inputs[j]
            # the operands by the names the join's own `from:` gives them (as written there,
            # else a block instance's name for its output, names inside the join's block
            # relative to it)
            shown = {inputs[i].value.name: _written(use, i) or self._local(inputs[i].value.name,
                                                                           use) for i in (k, j)}
            notes, changes = self._chains(a, b, shown)
            sizes = " and ".join(_AXIS_NOUNS[x] for x in axes)
            sa, sb = shown[a.value.name], shown[b.value.name]
            details = list(e.details) + [
                f"'{sa}' is {fmt_shape(a.value.shape[1:])} and '{sb}' is "
                f"{fmt_shape(b.value.shape[1:])}: their {sizes} differ"]
            more, hints = self._line_up(layer, a, b, axes, changes, shown)
            # (a layer joined instead of an operand: not for the concat `branches:` makes,
            # whose inputs no `from:` names)
            hints += list(e.hints) + ([] if use.joins_branches else
                                      _aligning_hints(a.value, b.value, shown))
            if hints and hints[0].startswith("or "):  # (nothing before it to be the other)
                hints[0] = hints[0][3:]
            self.diags.error(e.code, f"{use.kind} '{name}': {e.message}", span,
                             details=details + more, hints=hints, notes=notes)

    def _local(self, full: str, join: LayerUse) -> str:
        """The name that the `from:` of layer `join` gives the value `full`: names inside a
        block instance are relative to it (the block's input is `input`), and a block
        instance's output is the instance's name (`e2` for `e2.act`), as the instance's own
        scope names them (expand.py)."""
        instances = self.spec.instances
        # the block instance the join was expanded from (its layers' origin is its use)
        scope = next((i for i, inst in instances.items() if join.origin is not None
                      and inst.kind_span == join.origin and join.name.startswith(i + ".")), "")
        prefix = scope + "." if scope else ""
        if not full.startswith(prefix):
            return "input"  # (all that a block's body sees from outside it)
        # the outermost instance in this scope that `full` is inside: `full` is its output
        owners = [i for i in instances if i.startswith(prefix) and full.startswith(i + ".")]
        return (min(owners, key=len) if owners else full)[len(prefix):]

    def _chains(self, a: _Defined, b: _Defined,
                shown: dict[str, str]) -> tuple[list[Note], list[tuple]]:
        """Where two joined operands' sizes came from: for each, a note on the operand (by
        the name `shown` gives it, and the layer that made it if that differs), then one on
        each layer that changed the height or width on the shortest way back to what both
        operands share (or to an input), in the order they run; the layers both share are
        left out. Also those layers, as (node, the name of the input it changed)."""
        producers = {n.name: n for n in self.nodes}
        common = _ancestors(a.value.name, producers) & _ancestors(b.value.name, producers)
        notes, changes = [], []
        for ref in (a, b):
            value = ref.value
            path = _path_back(value.name, common, producers)  # [the operand, ..., the start]
            label = shown.get(value.name, value.name)
            head = (f"input '{value.name}' is {fmt_shape(value.shape)}" if ref.index < 0
                    else f"'{label}' is {fmt_shape(value.shape)}, made here")
            if ref.index >= 0 and label != value.name:
                head += f" (by {producers[value.name].kind} '{value.name}')"
            if path[-1] != value.name:
                start = self.defined[path[-1]]
                what = "input " if start.index < 0 else ""
                head += (f" from {what}'{shown.get(path[-1], path[-1])}' "
                         f"({fmt_shape(start.value.shape)})")
            notes.append(Note(ref.span, head))
            forward = path[::-1]
            for before, after in zip(forward, forward[1:]):
                node, x = producers[after], self.defined[before].value.shape
                y = node.output.shape
                if len(x) != len(y) or x[2:] != y[2:]:
                    notes.append(Note(self.defined[after].span,
                                      f"{node.kind} '{after}' turned {fmt_shape(x)} into "
                                      f"{fmt_shape(y)}{_rounding(node)}"))
                    changes.append((node, before))
        return notes, changes

    def _line_up(self, join: Layer, a: _Defined, b: _Defined, axes: tuple[int, ...],
                 changes: list[tuple], shown: dict[str, str]) -> tuple[list[str], list[str]]:
        """Details and hints on the input sizes at which operands `a` and `b` of `join` line
        up (its rule accepts them along `axes`), and at which every layer checks: each
        layer's shape rule replayed (`_replay`, as `_layer` runs them) at input sizes near
        the declared one, along the axes where they differ (both at once for a square
        input). The layers that feed the join are replayed at every size of the range (the
        declared size ± _REPLAY_HALF, fewer for a network too large for _REPLAY_BUDGET, more
        while the sizes tried show neither a size that lines up nor how each operand grows);
        the whole network only where the join lines up, nearest first, the range cut to the
        sizes where that is known. Only for a join that one image input feeds, and not for a
        caller that checks many sizes itself (`netc sizes`)."""
        producers = {n.name: n for n in self.nodes}
        feeding = _ancestors(a.value.name, producers) | _ancestors(b.value.name, producers)
        images = [d for d in self.spec.inputs if d.name in feeding and len(d.shape) == 4]
        if not self.replays or len(images) != 1 or self.defined[images[0].name].value is None:
            return [], []
        decl = images[0]
        every = _replay_steps(self.spec, self.cache)
        # whether the join lines up depends only on the layers before it: those are replayed
        # at every size, the layers after it only where it lines up
        steps = [step for step in every if step[0] in feeding]
        square = len(axes) == 2 and decl.shape[2] == decl.shape[3]
        groups = [axes] if square else [(x,) for x in axes]
        cost = max(1, len(steps)) * len(groups)  # shape rules per size of a range
        half = max(4, min(_REPLAY_HALF, (_REPLAY_BUDGET // cost - 1) // 2))
        fixed = {d.name: self.defined[d.name].value.shape if self.defined[d.name].value
                 else None for d in self.spec.inputs}
        watched = {a.value.name, b.value.name}
        watched |= {n.name for n, _ in changes} | {before for _, before in changes}
        memo: dict = {}
        whole: dict[tuple, tuple] = {}  # input shape -> (every layer checks, the first failing)
        spent = [0]  # shape rules run by `check_all`

        def check_all(shape, first=False):
            """The whole network replayed at input `shape`: (every layer checks, the first
            layer that fails); None once _REPLAY_BUDGET is spent (`first`: run regardless)."""
            if shape not in whole:
                if spent[0] + len(every) > _REPLAY_BUDGET and not first:
                    return None
                spent[0] += len(every)
                inputs = dict(fixed)
                inputs[decl.name] = shape
                ok, _, failed = _replay(every, inputs, self.limits, memo, set())
                whole[shape] = (ok, failed)
            return whole[shape]

        def sweep(group, at, half):
            """The replay at each size of the range along `group`, the other axis at `at`
            (whether every layer checks: not yet known)."""
            declared = decl.shape[group[0]]
            # not below half the declared size: a much smaller input is seldom wanted, and
            # the smallest ones fail for reasons of their own (a filter larger than the map)
            low = max(1, declared - half, (declared + 1) // 2)
            found = []
            for s in range(low, declared + half + 1):
                shape = list(decl.shape)
                for x in (2, 3):
                    shape[x] = s if x in group else at.get(x, shape[x])
                inputs = dict(fixed)
                inputs[decl.name] = tuple(shape)
                shapes = _replay(steps, inputs, self.limits, memo, watched)[1]
                found.append(_Trial(s, tuple(shape), False, shapes, None))
            return found

        def lined_up(trial, group):
            sa, sb = trial.shapes.get(a.value.name), trial.shapes.get(b.value.name)
            if sa is None or sb is None:
                return False
            # (the other axis as `a`'s: only this sweep's axes are in question)
            return _joins(join, sa, tuple(sb[i] if i in group else sa[i] for i in range(4)))

        def unclear(trials, group):
            """Whether the sizes tried show neither a size that lines up nor how each operand
            grows with the input (a period seen twice, and not only a constant size)."""
            if any(lined_up(t, group) for t in trials):
                return False
            growths = [_growth(trials, name, group[0]) for name in (a.value.name, b.value.name)]
            return any(g is None or g.per == 0 for g in growths)

        def settle(trials, group):
            """The trials with whether every layer checks where the join lines up (the
            whole network replayed, nearest the declared size first), cut to the sizes
            around the declared one where that is known."""
            declared = decl.shape[group[0]]
            order = sorted((t for t in trials if lined_up(t, group)),
                           key=lambda t: (abs(t.size - declared), -t.size))
            known, reach = {}, None
            for t in order:  # (the nearest, on both sides, whatever the budget)
                nearest_ones = abs(t.size - declared) == abs(order[0].size - declared)
                found = check_all(t.shape, first=nearest_ones)
                if found is None:
                    reach = abs(t.size - declared) - 1
                    break
                known[t.size] = found
            return [t._replace(ok=known.get(t.size, (False, None))[0],
                               failed=known.get(t.size, (False, None))[1])
                    for t in trials if reach is None or abs(t.size - declared) <= reach]

        sweeps = {group: sweep(group, {}, half) for group in groups}
        while half < _REPLAY_WIDEST and cost * (4 * half + 1) <= _REPLAY_BUDGET \
                and any(unclear(sweeps[g], g) for g in groups):
            half *= 2
            sweeps = {group: sweep(group, {}, half) for group in groups}
        if len(groups) == 2:
            # a non-square input whose height and width are both off: while one is off, the
            # network checks at no size of the other. Find the nearest pair of sizes at which
            # it checks (each lining this join up), then sweep each axis with the other there.
            declared = decl.shape
            joined = [[t.size for t in sweeps[g] if lined_up(t, g)] for g in groups]
            pairs = sorted(((h, w) for h in joined[0] for w in joined[1]),
                           key=lambda p: (abs(p[0] - declared[2]) + abs(p[1] - declared[3]),
                                          -p[0], -p[1]))
            for k, (h, w) in enumerate(pairs):
                found = check_all((*declared[:2], h, w), first=k == 0)
                if found is None:
                    break
                if found[0]:
                    sweeps = {(2,): sweep((2,), {3: w}, half), (3,): sweep((3,), {2: h}, half)}
                    break
        details, best = [], None
        for group in groups:
            trials = settle(sweeps[group], group)
            low, high = trials[0].size, trials[-1].size
            declared = decl.shape[group[0]]
            what = "input sizes" if len(group) == 2 else f"input {_AXIS_NOUNS[group[0]]}"
            joined = [t.size for t in trials if lined_up(t, group)]
            checks = [t.size for t in trials if t.ok]
            tried = f"({what} {low} to {high} tried)"
            if len(groups) == 2:  # the other axis's size in this sweep
                other = 5 - group[0]
                tried = (f"({what} {low} to {high} tried, the {_AXIS_NOUNS[other][:-1]} at "
                         f"{trials[0].shape[other]})")
            if not joined:
                details.append(f"no {what[:-1]} from {low} to {high} lines them up: "
                               + _why_never(trials, group, a.value.name, b.value.name,
                                            changes, shown, half < _REPLAY_HALF))
                continue
            near = nearest(checks or joined, declared)
            shown_near = " and ".join(map(str, near)) + (" are" if len(near) > 1 else " is")
            if checks == joined:
                details.append(f"they line up, and every layer checks, at {what} "
                               f"{_which(joined, low, high)} {tried}: {shown_near} the nearest")
            elif checks:
                only = _which(checks, low, high)
                only = f"those {only}" if only.startswith("that") else only
                details.append(f"they line up at {what} {_which(joined, low, high)} {tried}, "
                               f"but every layer checks only at {only}: {shown_near} the "
                               "nearest")
            else:
                failed = next(t for t in trials if t.size == near[0]).failed
                kind = next(u.kind for u in self.spec.layers if u.name == failed)
                details.append(f"they line up at {what} {_which(joined, low, high)} {tried}, "
                               f"but at none of them does every layer check (at {near[0]}, "
                               f"{kind} '{failed}' fails)")
                continue
            pick = min(near, key=lambda s: (abs(s - declared), -s))
            shape = next(t.shape for t in trials if t.size == pick)
            # (both axes off: each sweep's pick, with the other axis at its own pick)
            best = shape if best is None else tuple(shape[i] if i in group else best[i]
                                                    for i in range(4))
        if best is not None and len(groups) == 2 and not (check_all(best) or (False,))[0]:
            best = None  # (the axes are not independent, or not known: no size to name)
        hints = []
        if best is not None:
            shape = ", ".join(map(str, best))
            hints.append(f"make the input {best[2]}×{best[3]}, the nearest size at which the "
                         f"network checks: `{decl.name}: [{shape}]`")
        return details, hints

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
                                 hints=lambda key=key: did_you_mean(key, ("params", "macs", "outputs"))
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
                                 hints=lambda name=name: did_you_mean(name, actual)
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


def _flow(node: YList) -> str:
    """A list of scalars as a spec writes it: `[2, 3]`."""
    return "[" + ", ".join(str(i.value) if isinstance(i, YScalar) else "..."
                           for i in node.items) + "]"


def _mapping_hint(kind: str, cls) -> str:
    """E103's hint for a list of attributes: the mapping form, with the required ones."""
    examples = {"filters": "16", "kernel": "3", "units": "10"}
    specs = attributes(cls)
    if not specs:
        return f"{kind} takes no attributes: write `- {kind}`"
    shown = [s for s in specs if s.required] or [s for s in specs if s.name == cls.main] \
        or specs[:1]
    inside = ", ".join(f"{s.name}: {examples.get(s.name, '...')}" for s in shown)
    return f"write its attributes as a mapping, for example `- {kind}: {{{inside}}}`"


# --- joins whose operands differ in height or width ------------------------------------------

_AXIS_NOUNS = {2: "heights", 3: "widths"}
# the input sizes a misaligned join's replay tries: the declared size ± this many, fewer when
# the layers before the join are so many that the replay would run more than this many shape
# rules (each 1-2 µs: most are found in the memo, as a repeated block's are), up to ± the
# widest while no size lines up and the sizes tried don't show how each operand grows; the
# whole network is replayed where the join lines up, up to the same number of shape rules
_REPLAY_HALF = 64
_REPLAY_WIDEST = 512
_REPLAY_BUDGET = 300_000


def _joins(layer: Layer, *xs) -> bool:
    """Whether `layer`'s rule accepts inputs of shapes `xs`."""
    try:
        layer.infer(*xs)
    except RuleError:
        return False
    return True


def _written_name(span: Span | None) -> str | None:
    """A `name:` as the spec writes it (quotes taken off), from its span; None for a layer
    whose name is not written on one line (an unnamed layer's is made by netc)."""
    if span is None or span.line != span.end_line:
        return None
    return span.source.line(span.line)[span.col - 1:span.end_col - 1].strip("'\"")


def _written(use: LayerUse, k: int) -> str | None:
    """Input k of `use` as its `from:` (or `to:`) writes it, when it is written there as a
    plain name; None for one the layer reads without naming it (the previous layer)."""
    ref, span = use.inputs[k]
    if use.joins_branches or span is use.raw_kind_span or span.line != span.end_line:
        return None  # (a `branches:` concat's inputs are spanned by the branches)
    text = span.source.line(span.line)[span.col - 1:span.end_col - 1]
    return text if re.fullmatch(r"[A-Za-z_][\w.-]*", text) else None


def _misaligned(layer: Layer | None, xs: list, clash: int | None) -> tuple | None:
    """For a join whose rule refused its inputs `xs` (E305, at input `clash`): (k, clash,
    axes) when input `clash` and an earlier-listed input k that it can't join differ only in
    their height or width (axes 2 and 3: those whose difference alone is refused); None for
    any other mismatch (channels, batch, rank), which keeps the join's own message. Which
    inputs can join is the layer's own rule, asked with shapes that differ in one axis."""
    if layer is None or clash is None or not 0 <= clash < len(xs) or len(xs[clash]) != 4:
        return None
    y = xs[clash]
    for k, x in enumerate(xs):
        if k == clash or len(x) != 4 or _joins(layer, x, y):
            continue
        if not _joins(layer, x, (*y[:2], *x[2:])):
            return None
        axes = tuple(a for a in (2, 3) if x[a] != y[a]
                     and not _joins(layer, x, tuple(y[i] if i == a else x[i] for i in range(4))))
        return k, clash, axes or tuple(a for a in (2, 3) if x[a] != y[a])
    return None


def _ancestors(name: str, producers: dict[str, Node]) -> set[str]:
    """`name` and every value it is computed from (layers and inputs)."""
    seen, todo = {name}, [name]
    while todo:
        node = producers.get(todo.pop())
        if node is not None:
            for x in node.inputs:
                if x.name not in seen:
                    seen.add(x.name)
                    todo.append(x.name)
    return seen


def _path_back(name: str, common: set[str], producers: dict[str, Node]) -> list[str]:
    """The shortest way back from `name` along the layers' inputs to a name in `common` (or,
    if none is reached, to an input): [name, ..., that name]."""
    parent: dict[str, str | None] = {name: None}
    queue, end, first_input = [name], None, None
    for current in queue:  # breadth first: the queue grows as it is read
        if current in common:
            end = current
            break
        node = producers.get(current)
        if node is None:
            first_input = first_input or current
            continue
        for x in node.inputs:
            if x.name not in parent:
                parent[x.name] = current
                queue.append(x.name)
    path = [end or first_input or name]
    while parent[path[-1]] is not None:
        path.append(parent[path[-1]])
    return path[::-1]


def _rounding(node: Node) -> str:
    """`: height: (35 + 0 + 0 - 2) / 2 + 1 = 17.5, rounded down ...` when the layer's declared
    rounding rounds there (the arithmetic from the layer's own `equation`), else ''."""
    xs = tuple([x.shape for x in node.inputs])
    if not node.layer.rounds(*xs):
        return ""
    # (axis, its arithmetic), from lines such as `height: (35 + 0 + 0 - 2) / 2 + 1 = 17.5,
    # rounded down by `round: floor` to 17: the last 1 row of the input is in no window`
    found = []
    for line in node.layer.equation(node.output.shape, *xs)[1:]:
        axis, _, rest = line.strip().partition(":")
        if "round" in rest:
            found.append((axis, re.split(r"(?<=\d): ", rest.strip())[0]))
    if not found:
        return " (it rounds)"
    if len(found) > 1 and found[0][1] == found[1][1]:
        return f": {found[0][0]} and {found[1][0]}: {found[0][1]}"
    return f": {found[0][0]}: {found[0][1]}"


class _Trial(NamedTuple):
    """The network replayed at one input size: the size tried along the axes swept, the
    input's whole shape, whether every layer checks, the shapes of the names watched (None:
    not reached) and the first layer that fails."""

    size: int
    shape: tuple
    ok: bool
    shapes: dict
    failed: str | None


def _replay_steps(spec: FlatSpec, cache: dict) -> list[tuple[str, int, Layer, tuple]]:
    """The layers whose shape rule a replay can run, in order: (name, id of the layer, the
    layer, the names it reads). Those with an error no input size changes (attributes,
    names, number of inputs) are left out: the layers after them are not reached."""
    steps, names = [], {d.name for d in spec.inputs}
    for use in spec.layers:
        cls = REGISTRY.get(use.kind)
        found = cache.get((cls, id(use.attrs))) if cls is not None and use.ok else None
        if found is None or use.inputs is None or use.name in names:
            continue
        lo, hi = cls.arity
        if not lo <= len(use.inputs) <= (hi or len(use.inputs)):
            continue
        names.add(use.name)
        steps.append((use.name, id(found[1]), found[1], tuple([ref for ref, _ in use.inputs])))
    return steps


def _replay(steps, inputs: dict, limits: Limits, memo: dict,
            watched: set[str]) -> tuple[bool, dict, str | None]:
    """The steps' shape rules at these input shapes, with the limits `Checker._layer`
    applies: (whether every layer checks, the shapes of the `watched` names (None: not
    reached), the first layer that fails). `memo` keeps each rule's outcome by layer and
    input shapes, across calls: most steps of a replay are found there (a repeated block's
    layers are shared, and most sizes give a deep layer the same input), so this loop is
    what a replay costs."""
    shapes = dict(inputs)
    get, remember = shapes.get, memo.get
    failed, total, params = None, 0, limits.params
    for name, key, layer, refs in steps:
        xs = (get(refs[0]),) if len(refs) == 1 else tuple([get(ref) for ref in refs])
        if None in xs:
            shapes[name] = None
            continue
        found = remember((key, xs))
        if found is None:
            try:
                out = layer.infer(*xs)
                sizes = [volume(w.shape) for w in layer.weights(*xs)]
            except RuleError:
                out, sizes = None, []
            # (the output within the tensor limit, and each weight: then only the total
            # of all weights so far is left to check)
            ok = out is not None and volume(out[1:]) <= limits.tensor \
                and all(size <= limits.tensor for size in sizes)
            found = memo[key, xs] = (out if ok else None, sum(sizes))
        out, size = found
        if out is not None and total + size <= params:
            total += size
            shapes[name] = out
        else:
            shapes[name] = None
            if failed is None:
                failed = name
    return failed is None, {n: shapes.get(n) for n in watched}, failed


def _which(sizes: list[int], low: int, high: int) -> str:
    """`that are multiples of 16`, or the sizes themselves (`36, 40-41`)."""
    pattern = find_pattern(sizes, low, high)
    if pattern is None or pattern.period == 1:  # (a run of sizes reads best as one)
        return ranges(sizes)
    return f"that are {pattern.text(low)}"


def _growth(trials: list[_Trial], name: str, axis: int) -> Growth | None:
    """How `name`'s size along `axis` grows with the input size, over the sizes tried."""
    return fit_growth({t.size: t.shapes[name][axis] for t in trials
                       if t.shapes.get(name) is not None})


def _why_never(trials: list[_Trial], group, a: str, b: str, changes, shown: dict[str, str],
               shrunk: bool) -> str:
    """Why no input size lines up `a` and `b` (called by the names `shown` gives them), from
    their sizes at every size tried, as functions of the input size n: they differ by the
    same amount at every size (a layer on one path adds or takes off a fixed number of
    pixels: a conv without padding); they grow at the same rate but one is always larger (a
    layer's offset: a transposed conv's 2m + 1 where the other path has 2m); or they grow at
    different rates (a stride or a pooling on one path only). Only what the sizes tried
    show: when they don't show how each grows, it says so (`shrunk`: fewer were tried, the
    network being large)."""
    axis = group[0]
    sa, sb = shown.get(a, a), shown.get(b, b)
    pairs = [(t.size, t.shapes[a][axis], t.shapes[b][axis]) for t in trials
             if t.shapes.get(a) is not None and t.shapes.get(b) is not None]
    if not pairs:
        return f"'{sa}' and '{sb}' are not both computed at any of them"
    diffs = {x - y for _, x, y in pairs}
    if len(diffs) == 1:
        diff = diffs.pop()
        text = (f"'{sa}' is {abs(diff)} {'larger' if diff > 0 else 'smaller'} than '{sb}' at "
                "every one of them")
        fixed = []
        for node, before in changes:
            steps = {t.shapes[node.name][axis] - t.shapes[before][axis] for t in trials
                     if t.shapes.get(node.name) is not None and t.shapes.get(before) is not None}
            if len(steps) == 1 and (step := steps.pop()) != 0:
                fixed.append(f"{node.kind} '{node.name}' {'adds' if step > 0 else 'takes off'} "
                             f"{abs(step)}")
        if fixed:
            text += f" (a fixed amount: {', '.join(fixed)})"
        return text
    few = (" (only these sizes were tried, the network being large: `netc sizes --range` "
           "tries others)") if shrunk else ""
    ga, gb = _growth(trials, a, axis), _growth(trials, b, axis)
    if ga is None or gb is None:
        spans = [f"{min(v)}" if min(v) == max(v) else f"{min(v)} to {max(v)}"
                 for v in ([x for _, x, _ in pairs], [y for _, _, y in pairs])]
        return (f"'{sa}' is {spans[0]} and '{sb}' {spans[1]} at these sizes, too few to show "
                f"how each grows with the input{few}")
    exact = ga.shift is not None and gb.shift is not None
    forms = f"'{sa}' is {ga.text()} and '{sb}' is {gb.text()}" if exact else ""
    if (ga.per == 0) != (gb.per == 0):  # one stays the same at every size tried
        grows, still = (sa, ga), (sb, gb)
        if ga.per == 0:
            grows, still = still, grows
        value = pairs[0][1] if still[0] == sa else pairs[0][2]
        stays = (f"is {value} at every one of them" if still[1].every == 1 else
                 f"does not grow (it repeats every {still[1].every} sizes)")
        return (f"'{grows[0]}' grows by {grows[1].rate} per pixel of input, and '{still[0]}' "
                f"{stays}{few}")
    if ga.rate != gb.rate:
        return ((f"for an input size n, {forms}: " if forms else "")
                + f"'{sa}' grows by {ga.rate} and '{sb}' by {gb.rate} per pixel of input, so the "
                "two paths scale the size differently (a stride or a pooling on one path only)"
                + few)
    # the same rate: the difference repeats, and is never 0 at the sizes tried
    larger = sorted(d for d in diffs if d > 0)
    smaller = sorted(-d for d in diffs if d < 0)
    if larger and smaller:
        differ = f"'{sa}' is {_or(larger)} larger or {_or(smaller)} smaller than '{sb}'"
    elif larger:
        differ = f"'{sa}' is {_or(larger)} larger"
    else:
        differ = f"'{sb}' is {_or(smaller)} larger"
    period = lcm(ga.every, gb.every)
    again = (f", and the difference repeats every {period} sizes" if exact
             and len(pairs) >= period else "")
    layers = []
    for node, before in changes:
        g = fit_growth({t.shapes[before][axis]: t.shapes[node.name][axis] for t in trials
                        if t.shapes.get(node.name) is not None
                        and t.shapes.get(before) is not None})
        if g is not None and g.shift is not None:
            layers.append(f"{node.kind} '{node.name}' turns m into {g.text('m')}")
    made = f" ({', '.join(layers)})" if layers else ""
    both = f"both grow by {ga.rate} per pixel of input" if ga.per else \
        "neither grows with the input"
    if forms:
        return f"for an input size n, {forms}: {both}, but {differ} at every one of them" \
               f"{again}{made}{few}"
    return f"{both}, but {differ} at every one of them{made}{few}"


def _or(items) -> str:
    """`1`, `1 or 2`, `1, 2 or 4`; `1 to 5` for more than two consecutive numbers."""
    items = sorted(items)
    if len(items) > 2 and items[-1] - items[0] == len(items) - 1:
        return f"{items[0]} to {items[-1]}"
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _aligning_hints(a: Value, b: Value, shown: dict[str, str]) -> list[str]:
    """Fixes that line the two operands up at any input size: the layer types that take
    another layer's size (an attribute in their `references`, `to: skip`), each tried on one
    operand with the other as its reference, and kept where its rule gives that size; the
    operands by the names `shown` gives them (those the join's `from:` can use)."""
    fixes = []
    # the smaller one brought up to the larger first (nothing of either is lost), else the
    # larger one brought down
    pairs = sorted([(a, b), (b, a)], key=lambda p: volume(p[0].shape[2:]))
    for cls in REGISTRY.values():
        for ref in cls.references:
            for x, y in pairs:
                try:
                    out = cls(**{ref: y.name}).infer(x.shape, y.shape)
                except (RuleError, TypeError, ValueError):
                    continue
                if tuple(out[:2]) == tuple(x.shape[:2]) and tuple(out[2:]) == y.shape[2:]:
                    fixes.append(f"`- {cls.kind}: {{from: {shown.get(x.name, x.name)}, "
                                 f"{ref}: {shown.get(y.name, y.name)}}}` "
                                 f"({x.shape[2]}×{x.shape[3]} -> {y.shape[2]}×{y.shape[3]})")
                    break
    if not fixes:
        return []
    listed = ", ".join(fixes[:-1]) + " or " + fixes[-1] if len(fixes) > 1 else fixes[0]
    return ["or line them up at any input size with a layer that takes the other's size, "
            f"joined instead of the one it reads: {listed}"]
