"""`netc check --update-expect`: rewrite a spec's `expect:` block with the network's numbers.

The file is edited as text, not re-serialised: only the values inside `expect:` change (their
positions come from the loader's spans), so comments, quoting and layout everywhere else stay
as written. A value is replaced where it stands (`params: 61706` keeps its line and its
trailing comment); keys the block lacks are added under it, in its indentation; a spec
without `expect:` gets one at the end.

A spec with errors outside `expect:` is left alone (its numbers would be those of a broken
network). The rewritten text is checked again before it is written, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Diagnostics, NetcError
from ..ir import Graph
from ..limits import DEFAULT, Limits
from ..load import YList, YMap, YNode, YScalar
from ..pipeline import check_spec, parse, parse_bytes
from ..source import SourceFile, Span
from .unparse import scalar

KEYS = ("params", "macs", "outputs")
BOM = b"\xef\xbb\xbf"
# the errors inside `expect:` that the rewrite fixes (wrong numbers, shapes or types); any other
# there, such as E102 for a misspelt `parms:`, is for the author to fix, not for netc to guess
FIXABLE = {"E103", "E401", "E402", "E403"}


@dataclass(frozen=True)
class Outcome:
    """What `update_expect` did to one file."""

    path: str
    changed: bool
    old: dict  # the numbers the block held (those it could read), by key
    new: dict  # the network's numbers: params, macs, outputs (name -> shape)

    @property
    def keys_changed(self) -> list[str]:
        """The keys of `expect:` whose values changed (or were added)."""
        return [key for key in KEYS if self.old.get(key) != self.new[key]]


def update_expect(path: str, warnings: Diagnostics | None = None, write: bool = True,
                  limits: Limits = DEFAULT) -> Outcome:
    """Rewrite the `expect:` block of the spec at `path` with its actual params, MACs and
    output shapes. Raises NetcError (and writes nothing) if the spec has other errors."""
    parsed = parse(path, limits)
    source, root, spec, diags = parsed.source, parsed.root, parsed.spec, parsed.diags
    if spec is None:
        raise NetcError(diags)
    expect = _expect_entry(root)
    # complete unless there are errors outside `expect:`
    graph = check_spec(spec, diags, limits)
    others = Diagnostics()
    for d in diags:
        if d.severity == "error" and not _fixable(d, expect):
            others.add(d)
    if others.has_errors():
        raise NetcError(others)
    if warnings is not None:
        for d in diags:
            if d.severity == "warning":
                warnings.add(d)
    actual = numbers(graph)
    text = rewrite(source, expect, actual)
    _recheck(text, source.path, limits)
    changed = text != source.text
    if changed and write:
        from ..files import write_atomic

        with open(path, "rb") as f:  # the loader drops a byte-order mark; keep it
            prefix = BOM if f.read(len(BOM)) == BOM else b""
        # in place, on purpose: through a symbolic link to the file, keeping its mode and owner
        write_atomic(str(path), prefix + text.encode("utf-8"), in_place=True)
    return Outcome(str(path), changed, _old(expect), actual)


def numbers(graph: Graph) -> dict:
    """The values `expect:` holds for a checked graph."""
    return {"params": graph.params, "macs": graph.macs,
            "outputs": {v.name: list(v.shape) for v in graph.outputs}}


def _expect_entry(root) -> tuple[YScalar, YNode] | None:
    """The `expect` key and its value, as written (None if the spec has none)."""
    if isinstance(root, YMap) and "expect" in root:
        return root.keys["expect"], root.get("expect")
    return None


def _fixable(d, expect) -> bool:
    """Is `d` an error about the values of `expect:`, which the rewrite replaces?"""
    if expect is None or d.span is None or d.code not in FIXABLE:
        return False
    key, value = expect
    end = _content_end(_Text(key.span.source), value)
    return (key.span.line, key.span.col) <= (d.span.line, d.span.col) <= end


def _old(expect) -> dict:
    """The numbers the block held, as plain values (to say which ones changed)."""
    if expect is None or not isinstance(expect[1], YMap):
        return {}
    return {key: _plain(node) for key, node in expect[1].items() if key in KEYS}


def _plain(node: YNode):
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YList):
        return [_plain(item) for item in node.items]
    return {key: _plain(value) for key, value in node.items()}


def _recheck(text: str, path: str, limits: Limits) -> None:
    """The rewritten spec must check without errors: anything else is a netc bug."""
    parsed = parse_bytes(text.encode("utf-8"), path, limits)
    spec, diags = parsed.spec, parsed.diags
    if spec is not None:
        check_spec(spec, diags, limits)
    if spec is None or diags.has_errors():
        raise AssertionError("netc check --update-expect produced a spec with errors:\n"
                             + diags.render())


# --- editing the text -------------------------------------------------------------------------


class _Text:
    """The source text with (line, col) -> offset, and a list of edits applied at the end."""

    def __init__(self, source: SourceFile) -> None:
        self.text = source.text
        self.starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                self.starts.append(i + 1)
        self.newline = "\r\n" if "\r\n" in self.text else "\n"
        self.edits: list[tuple[int, int, str]] = []

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col - 1

    def start(self, span: Span) -> int:
        return self.offset(span.line, span.col)

    def end(self, span: Span) -> int:
        return self.offset(span.end_line, span.end_col)

    def line_end(self, line: int) -> int:
        """The offset just after line `line`'s newline (the end of the text if it has none)."""
        return self.starts[line] if line < len(self.starts) else len(self.text)

    def after_colon(self, key: YScalar) -> int:
        """The offset just after the `:` that follows a mapping key."""
        i = self.end(key.span)
        while self.text[i] in " \t":
            i += 1
        assert self.text[i] == ":", "a mapping key is followed by a colon"
        return i + 1

    def is_flow(self, node: YNode) -> bool:
        return isinstance(node, (YMap, YList)) and self.text[self.start(node.span)] in "[{"

    def edit(self, start: int, end: int, new: str) -> None:
        self.edits.append((start, end, new))

    def result(self) -> str:
        text = self.text
        for start, end, new in sorted(self.edits, reverse=True):
            text = text[:start] + new + text[end:]
        return text


def _content_end(t: _Text, node: YNode) -> tuple[int, int]:
    """(line, col) where the text of a value ends. A block collection's own end mark lies at
    the next key (after any comments and blank lines), so its last item's end is used."""
    if isinstance(node, YScalar) or t.is_flow(node):
        return node.span.end_line, node.span.end_col
    items = node.items if isinstance(node, YList) else list(node.entries.values())
    ends = [_content_end(t, item) for item in items]
    if isinstance(node, YMap):
        ends += [(k.span.end_line, k.span.end_col) for k in node.keys.values()]
    return max(ends, default=(node.span.line, node.span.col))


def _empty(node: YNode) -> bool:
    """A value written as nothing (`key:` at the end of a line)."""
    return isinstance(node, YScalar) and node.value is None and \
        (node.span.line, node.span.col) == (node.span.end_line, node.span.end_col)


def _flow_outputs(outputs: dict) -> str:
    return "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in outputs.items()) + "}"


def _flow_value(key: str, actual: dict) -> str:
    return _flow_outputs(actual[key]) if key == "outputs" else str(actual[key])


def rewrite(source: SourceFile, expect: tuple[YScalar, YNode] | None, actual: dict) -> str:
    """The spec's text with its `expect:` block holding `actual` (see `numbers`)."""
    t = _Text(source)
    nl = t.newline
    block = nl.join(f"  {key}: {_flow_value(key, actual)}" for key in KEYS)
    if expect is None:
        text = t.text
        if text and not text.endswith("\n"):
            text += nl
        return text + "expect:" + nl + block + nl
    key, node = expect
    if not isinstance(node, YMap) or t.is_flow(node):
        # a flow mapping, or not a mapping at all: write the whole block anew
        start, end = t.after_colon(key), t.offset(*_content_end(t, node))
        if isinstance(node, YMap):
            new = " {" + ", ".join(f"{k}: {_flow_value(k, actual)}" for k in KEYS) + "}"
        else:
            new = nl + block
        t.edit(start, end, new)
        return t.result()
    indent = " " * (node.span.col - 1)
    missing = []
    for name in KEYS:
        if name not in node:
            missing.append(name)
            continue
        if name == "outputs":
            _outputs(t, node.keys[name], node.get(name), actual["outputs"], indent)
        else:
            _value(t, node.keys[name], node.get(name), str(actual[name]))
    if missing:
        at = t.line_end(_content_end(t, node)[0])
        lead = "" if at == 0 or t.text[at - 1] == "\n" else nl
        lines = "".join(f"{indent}{name}: {_flow_value(name, actual)}{nl}" for name in missing)
        t.edit(at, at, lead + lines)
    return t.result()


def _value(t: _Text, key: YScalar, node: YNode, new: str) -> None:
    """Replace the value of `key: node` by the flow text `new`, where it stands."""
    if _empty(node):
        at = t.after_colon(key)
        t.edit(at, at, " " + new)
    elif isinstance(node, YScalar) or t.is_flow(node):
        t.edit(t.start(node.span), t.end(node.span), new)
    else:  # a block collection: from the colon to the end of its last item
        t.edit(t.after_colon(key), t.offset(*_content_end(t, node)), " " + new)


def _outputs(t: _Text, key: YScalar, node: YNode, outputs: dict, indent: str) -> None:
    """The shapes are replaced one by one when the block names exactly the outputs; otherwise
    the whole mapping is written anew, in the style it had (flow or block)."""
    if isinstance(node, YMap) and set(node.entries) == set(outputs):
        for name, shape in outputs.items():
            _value(t, node.keys[name], node.get(name), scalar(shape))
        return
    if isinstance(node, YMap) and not t.is_flow(node) and node.entries:
        inner = " " * (next(iter(node.keys.values())).span.col - 1)
        lines = [f"{inner}{scalar(k)}: {scalar(v)}" for k, v in outputs.items()]
        t.edit(t.after_colon(key), t.offset(*_content_end(t, node)),
               t.newline + t.newline.join(lines))
        return
    _value(t, key, node, _flow_outputs(outputs))
