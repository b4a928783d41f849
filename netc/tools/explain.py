"""`netc explain`: the documentation of an error code, or everything about one layer.

`netc explain E301` prints the entry of docs/errors.md for that code, as `rustc --explain`
does. The text ships inside the package as `netc/errors.md`, an exact copy of docs/errors.md
(`python -m netc.tools.docs --write` refreshes the example outputs in docs/errors.md by running
netc on them, then copies the file; a test keeps both true).

`netc explain SPEC LAYER` prints one layer of a spec: its type, each attribute's value and
where that value came from (written in the spec, a `defaults:` entry, a block argument, or
the layer type's default), its inputs, the window arithmetic with the numbers for convs and
pools, its output, its tensors and its MACs.

Provenance comes from spans: expand.py keeps the span of every value it places (with
`Span.origin` inside blocks) and merges `defaults:` by reusing the defaults section's own
nodes. A value written as `$stride` is traced through the block instance that gave the
argument: the expander records each block instance with the (merged `first:`) arguments it
was given (`FlatSpec.instances`). What is said about the layer itself (its shape equation, its
MAC formula) comes from its class.
"""

from __future__ import annotations

import re

from ..errors import CODES, a, closest, fail, layer_name_hints
from ..expand import BlockInstance
from ..limits import DEFAULT, Limits
from ..load import YList, YMap, YNode, YScalar

CODE_RE = re.compile(r"[EWew]\d{3}\Z")
_HEADING = re.compile(r"## ([EW]\d{3}): (.+)")
_ANCHOR = re.compile(r'<a id="[ew]\d{3}"></a>\s*\Z')


# --- error codes ---------------------------------------------------------------------------


def errors_markdown() -> str:
    """The text of errors.md as shipped in the package."""
    from importlib.resources import files

    return files("netc").joinpath("errors.md").read_text(encoding="utf-8")


def entries(text: str | None = None) -> dict[str, str]:
    """Code -> its section of errors.md (from its `## CODE: title` heading to the next one)."""
    text = errors_markdown() if text is None else text
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if _ANCHOR.match(line):
            continue
        m = _HEADING.match(line)
        if m:
            current = m[1]
            found[current] = []
        elif line.startswith("## ") or line.startswith("# "):
            current = None
        if current is not None:
            found[current].append(line)
    return {code: "\n".join(lines).strip() + "\n" for code, lines in found.items()}


def render_entry(markdown: str) -> str:
    """An entry for the terminal: fences dropped and code indented by four spaces."""
    out, in_code = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        out.append(("    " + line).rstrip() if in_code else line)
    return "\n".join(out).rstrip() + "\n"


class UnknownCode(Exception):
    """`netc explain` was given a code netc doesn't have: the message and hints to print."""

    def __init__(self, message: str, hints: list[str]) -> None:
        super().__init__(message)
        self.message, self.hints = message, hints

    def render(self) -> str:
        return "\n".join([f"netc explain: error: {self.message}"]
                         + [f"  hint: {h}" for h in self.hints])


def explain_code(word: str) -> str:
    """The entry for `word` (E301, w201...), rendered for the terminal. Raises UnknownCode
    for a code netc doesn't have, with the likeliest one."""
    code = word.upper()
    found = entries()
    if code not in found:
        hints = []
        near = nearest_code(code, found)
        if near:
            hints.append(f"did you mean {near} ({CODES.get(near, '')})?")
        same = sorted(c for c in found if c[:2] == code[:2] and c != near)
        if same and len(code) == 4:
            hints.append(f"the {code[:2]}xx codes: {', '.join(same)}")
        hints.append("`netc explain` without arguments lists every code")
        raise UnknownCode(f"netc has no diagnostic {word!r}", hints)
    return render_entry(found[code])


def nearest_code(code: str, codes) -> str | None:
    """The code a mistyped one most likely stands for: one digit off, two digits swapped,
    or leading zeros left out (E9 -> E009)."""
    m = re.fullmatch(r"([EW])(\d{1,3})", code)
    if m and f"{m[1]}{int(m[2]):03d}" in codes and len(m[2]) < 3:
        return f"{m[1]}{int(m[2]):03d}"
    best = None
    for c in sorted(codes):
        if len(c) != len(code):
            continue
        diff = [i for i in range(len(c)) if c[i] != code[i]]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 \
            and c[diff[0]] == code[diff[1]] and c[diff[1]] == code[diff[0]]
        if len(diff) == 1 or swapped:
            rank = (0 if swapped else 1, abs(int(c[1:]) - int(code[1:]))
                    if code[1:].isdigit() else 0)
            if best is None or rank < best[0]:
                best = (rank, c)
    return best[1] if best else closest(code, codes, cutoff=0.75)


def code_index() -> str:
    """Every code with its title (`netc explain` without arguments)."""
    lines = ["netc's diagnostics (`netc explain CODE` for one of them; docs/errors.md):", ""]
    lines += [f"  {code}  {title}" for code, title in CODES.items()]
    return "\n".join(lines) + "\n"


# --- one layer -----------------------------------------------------------------------------


def _index(node, path=(), found=None) -> dict:
    """(line, col, end_line, end_col) of every node of the document -> (path, node)."""
    found = {} if found is None else found
    if node is None:
        return found
    span = node.span
    if span is not None:
        found.setdefault((span.line, span.col, span.end_line, span.end_col), (path, node))
    if isinstance(node, YMap):
        for key, value in node.items():
            _index(value, path + (key,), found)
    elif isinstance(node, YList):
        for i, item in enumerate(node.items):
            _index(item, path + (i,), found)
    return found


def _at(span) -> str:
    return f"{span.line}:{span.col}"


def _coords(span) -> tuple:
    return (span.line, span.col, span.end_line, span.end_col)


def _yaml(value) -> str:
    """A value as it would be written in a spec."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (tuple, list)):
        if len(set(value)) == 1:
            return _yaml(value[0])
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class _Provenance:
    """Says where a value of the expanded spec came from."""

    def __init__(self, index: dict, instances: dict[str, BlockInstance], defaults: dict) -> None:
        self.index = index
        self.instances = instances
        self.defaults = defaults

    def enclosing(self, name: str) -> BlockInstance | None:
        """The innermost block instance whose body holds the layer (or instance) `name`."""
        best = None
        for full, inst in self.instances.items():
            if name.startswith(full + ".") and (best is None or len(full) > len(best.full)):
                best = inst
        return best

    def describe(self, node: YNode, kind: str, owner: str) -> list[str]:
        """Lines saying where `node` (a value of layer or instance `owner`) came from."""
        default_map = self.defaults.get(kind)
        if default_map is not None and any(node is v for v in default_map.entries.values()):
            return [f"from `defaults:` at {_at(node.span)}"]
        path, raw = self.index.get(_coords(node.span), ((), None))
        text = raw.value if isinstance(raw, YScalar) else None
        from ..expr import is_expression, references

        if is_expression(text):
            inst = self.enclosing(owner)
            where = f"block '{inst.block.name}'" if inst is not None else "a block"
            lines = [f"`{text}` in {where} at {_at(node.span)}"]
            for arg in dict.fromkeys(references(text)):
                lines += self.argument(inst, arg)
            return lines
        return [self.place(path, node)]

    def place(self, path: tuple, node: YNode) -> str:
        at = _at(node.span)
        if path[:1] == ("blocks",) and len(path) > 1:
            return f"written in block '{path[1]}' at {at}"
        if "first" in path:
            return f"from `first:` at {at} (it sets the first instance of a `repeat:`)"
        if path[:1] == ("defaults",):
            return f"from `defaults:` at {at}"
        return f"written in the spec at {at}"

    def argument(self, inst: BlockInstance | None, arg: str) -> list[str]:
        """Where block argument `arg` of instance `inst` came from, as indented lines."""
        if inst is None:
            return [f"  ${arg}: a block argument"]
        shown = f"  ${arg} = {_yaml(inst.values.get(arg))}"
        given = inst.attrs.entries.get(arg) if isinstance(inst.attrs, YMap) else None
        if given is None:
            spec = inst.block.args.get(arg)
            declared = f", declared at {_at(spec.span)}" if spec is not None else ""
            return [f"{shown}, the default of block '{inst.block.name}'{declared}"]
        to = f"given to {inst.full}"
        path, raw = self.index.get(_coords(given.span), ((), None))
        text = raw.value if isinstance(raw, YScalar) else None
        from ..expr import is_expression

        if is_expression(text):  # an argument of the enclosing block, passed on
            sub = self.describe(given, inst.entry.kind, inst.full)
            return [f"{shown}, {to} as {sub[0]}"] + ["  " + line for line in sub[1:]]
        at = _at(given.span)
        if "first" in path:
            return [f"{shown}, {to} by `first:` at {at} (the first instance of the repeat)"]
        if path[:1] == ("blocks",) and len(path) > 1:
            return [f"{shown}, {to} in block '{path[1]}' at {at}"]
        return [f"{shown}, {to} at {at}"]


def explain_layer(path: str, name: str, limits: Limits = DEFAULT) -> str:
    """Everything about layer `name` of the spec at `path`. Raises NetcError if the spec has
    errors or no such layer."""
    return Explainer(path, limits).layer(name)


class Explainer:
    """One spec, checked once, to explain any of its layers."""

    def __init__(self, path: str, limits: Limits = DEFAULT) -> None:
        from ..pipeline import checked, parse

        self.path = str(path)
        parsed = parse(path, limits)
        self.graph = checked(parsed, limits)  # raises NetcError with the spec's errors
        self.nodes = {n.name: n for n in self.graph.nodes}
        self.inputs = {v.name: v for v in self.graph.inputs}
        self.root = parsed.root
        self.uses = {u.name: u for u in parsed.spec.layers}
        self.instances = parsed.spec.instances
        self.prov = _Provenance(_index(self.root), self.instances, parsed.spec.defaults)

    def layer(self, name: str) -> str:
        if name in self.inputs and name not in self.nodes:
            return _explain_input(self.inputs[name], self.root)
        if name in self.instances and name not in self.nodes:
            return _explain_instance(self.instances[name], self.nodes, self.prov)
        if name not in self.nodes or name not in self.uses:
            raise _unknown_layer(name, list(self.nodes) + list(self.inputs), self.path)
        return _explain_node(self.nodes[name], self.uses[name], self.prov, self.inputs)


def _explain_node(node, use, prov: _Provenance, inputs: dict) -> str:
    from ..layers import REGISTRY, attributes

    name = node.name
    cls = REGISTRY[use.kind]
    out = [f"{name}: {a(use.kind)} layer", f"  {_summary_line(cls)}"]
    out += _location(use, prov)
    out.append("")

    specs = attributes(cls)
    if specs:
        out.append("attributes:")
        given = use.attrs.entries if isinstance(use.attrs, YMap) else {}
        rows = []
        for spec in specs:
            value = getattr(node.layer, spec.name)
            if spec.name in given:
                where = prov.describe(given[spec.name], use.kind, name)
            else:
                where = [f"the default of {use.kind}"]
            shown = _yaml(value)
            implied = node.layer.implied(spec.name) if value is None else None
            if implied is not None:  # a default that another attribute gives
                value, short, long = implied
                shown = f"{_yaml(value)} ({short})"
                where = [f"the default of {use.kind}: {long}"]
            rows.append((spec.name, shown, where))
        w1 = max(len(r[0]) for r in rows)
        w2 = max(len(r[1]) for r in rows)
        for attr_name, shown, where in rows:
            out.append(f"  {attr_name.ljust(w1)}  {shown.ljust(w2)}  {where[0]}")
            out += [f"  {'':{w1}}  {'':{w2}}  {extra}" for extra in where[1:]]
        out.append("")

    out.append("inputs:")
    width = max(len(x.name) for x in node.inputs)
    for x in node.inputs:
        what = " (an input of the spec)" if x.name in inputs else ""
        out.append(f"  {x.name.ljust(width)}  {_shape(x.shape)}{what}")
    out.append("")
    xs = [x.shape for x in node.inputs]
    out += node.layer.equation(node.output.shape, *xs) + [""]
    out.append(f"output: {_shape(node.output.shape)}")
    out.append("")
    out += _tensors(node)
    out += _macs(node)
    return "\n".join(out).rstrip() + "\n"


def _summary_line(cls) -> str:
    """The first sentence of the layer class's doc."""
    import inspect

    doc = " ".join(inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].split())
    first = re.split(r"(?<=\.)\s|;\s", doc)[0].rstrip(".;")
    return first + "."


def _location(use, prov: _Provenance) -> list[str]:
    lines = [f"  defined at {use.kind_span}"]
    span, inst = use.kind_span, prov.enclosing(use.name)
    while span.origin is not None:
        block = f"block '{inst.block.name}'" if inst is not None else "a block"
        owner = f" as {inst.full}" if inst is not None else ""
        lines.append(f"  in {block}, used at {span.origin}{owner}")
        span = span.origin
        inst = prov.enclosing(inst.full) if inst is not None else None
    if use.joins_branches and use.name_span is None:
        lines.append("  (the concatenation that `branches:` makes of its branches)")
    return lines


def _explain_input(value, root) -> str:
    node = root.get("inputs")
    span = node.key_span(value.name) if isinstance(node, YMap) else None
    where = f", declared at {span}" if span is not None else ""
    return (f"{value.name}: an input of the spec{where}\n"
            f"shape: {_shape(value.shape)}\n")


def _explain_instance(inst: BlockInstance, nodes: dict, prov: _Provenance) -> str:
    """A block instance (`layer2.0`, `inception3a`): its arguments and its layers."""
    inside = [n for name, n in nodes.items() if name.startswith(inst.full + ".")]
    out = [f"{inst.full}: a use of block '{inst.block.name}'",
           f"  used at {inst.kind_span}"]
    span = inst.kind_span
    while span.origin is not None:
        out.append(f"  inside a block used at {span.origin}")
        span = span.origin
    out.append("")
    if inst.block.args:
        out.append("arguments:")
        for arg in inst.block.args:
            out += prov.argument(inst, arg)
        out.append("")
    out.append(f"layers ({len(inside)}):")
    width = max((len(n.name) for n in inside), default=0)
    for n in inside:
        out.append(f"  {n.name.ljust(width)}  {n.kind:<13} {_shape(n.output.shape)}")
    if inside:
        params, macs = sum(n.params for n in inside), sum(n.macs for n in inside)
        out += ["", f"params: {params:,}", f"MACs: {macs:,} per image",
                "", f"explain one of them with `netc explain SPEC {inside[0].name}`"]
    return "\n".join(out) + "\n"


def _unknown_layer(name: str, names: list[str], path: str):
    hints = layer_name_hints(name, names)
    hints.append(f"`netc summary {path}` lists every layer with its full name")
    return fail("E111", f"the spec has no layer named '{name}'", None, hints=hints)


def _shape(shape) -> str:
    from ..layers import fmt_shape

    return fmt_shape(shape)


def _tensors(node) -> list[str]:
    if not node.weights:
        return ["params: 0 (no tensors)", ""]
    from ..layers import fmt_shape

    rows = []
    for w in node.weights:
        note = "" if w.spec.trainable else "  (a buffer, not counted as a parameter)"
        rows.append((w.name, fmt_shape(w.shape), f"{w.size:,}", note))
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    w3 = max(len(r[2]) for r in rows)
    lines = [f"params: {node.params:,}"]
    lines += [f"  {a.ljust(w1)}  {b.ljust(w2)}  {c.rjust(w3)}{d}" for a, b, c, d in rows]
    return lines + [""]


def _macs(node) -> list[str]:
    formula = node.layer.macs_formula(node.output.shape, *(x.shape for x in node.inputs))
    if formula is not None:
        return [f"MACs: {node.macs:,} per image = {formula}"]
    if node.macs:
        return [f"MACs: {node.macs:,} per image"]
    from ..layers import counting_macs

    return [f"MACs: {node.macs:,} (netc counts the multiply-accumulates of {counting_macs()} "
            "layers only)"]
