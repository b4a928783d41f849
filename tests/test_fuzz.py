"""Fuzzing netc with hypothesis (issue 7, reliability.md "Testing it").

Two families, both derandomised (the same examples on every run) and sized for CI:

1. **Loader fuzz**: the shipped specs (specs/*.yaml) mutated (lines and YAML tokens inserted,
   deleted and duplicated; YAML 1.1 traps, anchors, aliases, tags, NUL, a BOM, odd unicode,
   deep nesting, huge numbers, very long lines), random spec-like trees, random text and random
   bytes, through `load_bytes` and the whole check pipeline (`flatten` + `Checker`). The only
   allowed outcomes are a checked graph, or a `NetcError` whose every diagnostic has a
   documented code and a position inside the file, and renders (text and JSON). Any other
   exception is a netc bug.
2. **Pipeline fuzz**: random small networks, valid by construction (conv, pooling, dense,
   add/concat joins with `from:`, batchnorm, activations; random sizes, strides, pads,
   dilations, groups and round modes; and issue 12's layers: relu6, clip, hardswish,
   hardsigmoid, silu, gelu, mish, elu, prelu, stochasticdepth, mul and add broadcasting (an
   N×C×1×1 squeeze-and-excitation scale from a global pool of an earlier map), layer, group
   and instance norm, shuffle, split, permute, reshape (to 2-D to 5-D), dense on the last
   axis, adaptive pools, dilated pools and `pad: same_lower`; and, in half of the networks,
   issue 14's convtranspose (strides, pads, output_padding, dilations, groups), resize (by
   whole and fractional scales, `round: floor`, to a size, every mode, align_corners), crop
   and pad (sizes, amounts, pad modes), resize, crop and pad also `to:` an earlier layer),
   whose shapes are predicted by an independent model of the rules below (`ref_layer`).
   netc's shapes must equal it and ONNX Runtime's (every layer
   is an output, run at batch 2 on the CPU), and the model must pass ONNX's full check (its
   shape inference agreeing with the shapes netc declares). Then one dimension of the network is changed (a
   filter count, kernel, stride, pad, dilation, group count, input size, adaptive output,
   split part, size or index, reshape size, clip bound, output_padding, resize scale or
   size, crop size or amount, pad amount): where the
   reference says the network no longer fits, netc must reject it with one error per failing
   layer, of the predicted code, positioned on that layer's lines, before any ONNX is built;
   where it still fits, netc must accept it and ONNX Runtime must run it to netc's shapes.

Budgets: `NETC_FUZZ_SCALE` (a number, default 1) multiplies every example count. At 1 the
loader fuzz runs 3,000 examples and the pipeline fuzz 2,000 networks (each with one mutant);
`NETC_FUZZ_SCALE=20 pytest tests/test_fuzz.py` is a long run. Examples are derandomised, so a
failure reproduces with the same scale, and hypothesis prints the failing input; with
`NETC_FUZZ_SEED=N` they are drawn from seed N instead (other examples than CI's).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import (HealthCheck, currently_in_test_context, example, given, note, seed,
                        settings)
from hypothesis import event as _event
from hypothesis import strategies as st

import onnx_reference
from conftest import BATCH, concrete, session
from netc.check import Checker
from netc.emit import emit, lower, model_bytes, serialize
from netc.errors import CODES, NetcError
from netc.expand import flatten
from netc.load import load_bytes

SCALE = float(os.environ.get("NETC_FUZZ_SCALE", "1"))


def budget(n: int) -> int:
    return max(1, round(n * SCALE))


SEED = os.environ.get("NETC_FUZZ_SEED")  # other examples than CI's: a long run's seed
FUZZ = dict(derandomize=SEED is None, deadline=None, database=None, print_blob=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.filter_too_much, HealthCheck.large_base_example])


def fuzz(n: int):
    """A fuzz test of `n` examples (times NETC_FUZZ_SCALE): derandomised, or seeded."""
    def wrap(test):
        test = settings(max_examples=budget(n), **FUZZ)(test)
        return seed(int(SEED))(test) if SEED is not None else test
    return wrap

ROOT = Path(__file__).resolve().parent.parent
SPECS = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "specs").glob("*.yaml"))}
PATH = "fuzz.yaml"
HIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
HEAD = re.compile(r"(?P<path>.+):(?P<line>\d+):(?P<col>\d+): (error|warning)\[(?P<code>[EW]\d{3})\]: ")


# --- the allowed outcomes ---------------------------------------------------------------------


def event(text: str) -> None:
    """hypothesis's statistics (`--hypothesis-show-statistics`), also outside a test."""
    if currently_in_test_context():
        _event(text)


def lines_of(data: bytes) -> list[str]:
    """The file's lines as an editor (and netc's excerpts) count them, BOM dropped."""
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.splitlines()


def assert_positioned(diags, data: bytes, path: str = PATH) -> None:
    """Every diagnostic: a documented code, a position inside the file (notes and block use
    sites too), and a text form whose first line is `path:line:col: error[CODE]: ...`."""
    lines = lines_of(data)
    for d in diags:
        assert d.code in CODES, f"undocumented code {d.code}: {d.message}"
        assert d.severity in ("error", "warning")
        assert d.span is not None, f"{d.code} without a position: {d.message}"
        spans = [d.span] + [n.span for n in d.notes]
        origin = d.span.origin
        while origin is not None:
            spans.append(origin)
            origin = origin.origin
        for span in spans:
            where = f"{d.code} at {span.line}:{span.col} ({d.message!r})"
            assert span.path == path, where
            assert 1 <= span.line <= len(lines) + 1, f"{where}: the file has {len(lines)} lines"
            assert span.col >= 1, where
            if span.line <= len(lines):  # the caret lands on the line (or just after it)
                assert span.col <= len(lines[span.line - 1]) + 2, \
                    f"{where}: line {span.line} has {len(lines[span.line - 1])} characters"
        text = d.render()
        head, *rest = text.split("\n")
        m = HEAD.match(head)
        assert m, f"unexpected first line: {head!r}"
        # one first line per diagnostic: the rest is indented, and nothing from the file
        # (a key with a newline, an escape sequence) is printed raw
        assert all(line.startswith(" ") for line in rest), text
        assert not HIDDEN.search(text.replace("\n", "")), repr(text)
        assert (m["code"], int(m["line"]), int(m["col"])) == (d.code, d.span.line, d.span.col)
        json.dumps(d.to_dict())


def pipeline(data: bytes, path: str = PATH):
    """load -> flatten -> check on bytes: the graph, or the NetcError (already vetted)."""
    try:
        source, root = load_bytes(data, path)
        spec, diags = flatten(source, root)
        if spec is None:
            raise NetcError(diags)
        graph = Checker(spec, diags).run()
        diags.raise_if_errors()
    except NetcError as e:
        assert e.diagnostics.has_errors(), "a NetcError without an error"
        event("rejected: " + min(d.code for d in e.diagnostics.errors))
        assert_positioned(e.diagnostics, data, path)
        e.diagnostics.render()
        json.loads(e.diagnostics.to_json())
        return e
    assert_positioned(diags, data, path)  # warnings
    event("accepted")
    if graph.params <= 200_000:  # small enough to build: it must lower to ONNX too, in
        # exactly the bytes onnx's own serialiser writes for the same model
        assert model_bytes(graph) == onnx_reference.model_bytes(lower(graph))
    return graph


# --- mutations of the shipped specs ---------------------------------------------------------

TRAPS = [
    # YAML 1.1 readings
    "no", "yes", "on", "off", "y", "n", "NO", "Off", "010", "0o17", "0x1f", "0b11", "1:30",
    "-1:30", "1_000", "+1", "1.5e3", "1e3", "1e-3", "1E5", ".5", "5.", "-0", "+.inf", ".nan",
    ".NaN", ".inf", "-.inf", "1e999", "-1e999", "1e308", "2001-12-14", "2001-12-14t21:59:43.1Z",
    "~", "null", "Null", "true", "False", "=", "<<",
    # sizes at and past the limits
    "0", "-1", "-3", "3.0", "3.5", "0.0", "4096", "4097", "65536", "1048576", "1048577",
    "2147483648", "4294967297", "9223372036854775808", "1" + "0" * 30, "9" * 100, "9" * 101,
    "9" * 5000, "-" + "9" * 200,
    # expressions
    "$filters", "$x", "$filters * 999999999", "$filters * $filters * $filters * $filters",
    "$filters // 0", "($filters", "$filters +", "not $project", "$project and 1", "$ filters",
    "$stride > 1", "$filters * 4 // 3", "(" * 300 + "1" + ")" * 300, "-" * 500 + "1",
    "not " * 500 + "true", "1" + " + 1" * 2000,
    # other values
    "N", "M", '"3"', "'3'", "[3, 3]", "[1, 2, 3]", "[]", "{}", "[[1]]", "{a: 1}", "[N, 3]",
    "same", "valid", "SAME", "floor", "ceil", "exact", "he_normal", "normal(0.01)",
    "normal(-1)", "normal(1e999)", "normal(nan)", "uniform()", "constant(1e400)",
    "constant(" + "9" * 500 + ")", "normal(" * 50, "relu", "conv", "add", "branches", "input",
    "layer1.0", "a" * 129, "a/b", "..", "-x", "x.", "x..y",
]
TOKENS = [
    ":", ": ", "-", "- ", "[", "]", "{", "}", ",", "#", "&a", "*a", "&a ", "*a ", "&x [*x]",
    "!", "!!", "|", ">", "|-", "? ", "%", "@", "`", '"', "'", "---", "...", "\t", " ", "  ",
    "\n", "\n  ", "\n- ", "<<: ", "<<: *a", "!!python/object/apply:os.system ['true'] ",
    "!!python/name:os.system ", "!!python/object/new:type ", "!!int ", "!!str ", "!!binary ",
    "!!set ", "!!omap ", "!!float ", "!foo ", "!<tag:yaml.org,2002:int> ",
    "%YAML 1.1\n---\n", "%TAG !e! tag:example.com,2000:\n", "from: ", "name: ", "repeat: ",
    "first: ", "when: ", "layers: ", "blocks: ", "args: ", "branches: ", "output: ",
    "defaults: ", "inputs: ", "outputs: ", "expect: ", "netc: ",
]
ODD = [
    "\x00", "\ufeff", "\u202e", "\u200f", "\u200b", "\u0301", "e\u0301", "\uff11", "\uff12\uff14",
    "\u0663", "\u00b2", "\x85", "\u2028", "\u2029", "\r", "\r\n", "\x0b", "\x0c", "\x1b",
    "\x7f", "\ud800", "\udfff", "\U0001F600", "\uffff", "\ufffe", "\u212a", "\ufb01", "\u0130",
    '"\\ud800"', '"\\udfff"', '"\\x00"', '"\\U0010ffff"', '"\\uffff"', '"\\u202e"', '"\\0"',
    '"\\e"', '"\\N\\_\\L\\P"', "'\u0000'", "\\", '"\\', "\ufeff- relu",
    '"a\\nerror[E999]: b"', '"\\e[2J\\e[31m"', '"x\\ry"', '"\\u202egnp.exe"',
]
NEST_SIZES = (8, 63, 64, 65, 200, 1000, 5000, 20000)
TOKEN_RE = re.compile(r"[A-Za-z_$][\w.$-]*|[+-]?\d[\w.:+-]*|\s+|.", re.S)


def nest(kind: str, k: int) -> str:
    if kind == "flow-list":
        return "[" * k + "1" + "]" * k
    if kind == "flow-map":
        return "{a: " * k + "1" + "}" * k
    if kind == "open-list":
        return "[" * k
    if kind == "dashes":
        return "- " * k + "relu"
    k = min(k, 300)  # indentation grows with the depth: keep the file small
    if kind == "block-list":
        return "".join("  " * i + "-\n" for i in range(k)) + "  " * k + "- 1"
    return "".join("  " * i + f"k{i}:\n" for i in range(k)) + "  " * k + "x: 1"


@st.composite
def mutated_spec(draw, sources: dict[str, str] = SPECS) -> bytes:
    """A spec (by default a shipped one) with one to four mutations, as bytes."""
    text = sources[draw(st.sampled_from(sorted(sources)))]
    for _ in range(draw(st.integers(1, 4))):
        text = draw(st.sampled_from(MUTATIONS))(draw, text)
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate is not UTF-8 (E009)
    if draw(st.integers(0, 19)) == 0:
        data = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb"])) \
            + data
    return data


def _lines(text):
    return text.split("\n")


def _pick(draw, n):
    return draw(st.integers(0, max(0, n - 1)))


def m_delete_line(draw, text):
    lines = _lines(text)
    del lines[_pick(draw, len(lines))]
    return "\n".join(lines)


def m_duplicate_line(draw, text):
    lines = _lines(text)
    i = _pick(draw, len(lines))
    lines.insert(i, lines[i])
    return "\n".join(lines)


def m_insert_line(draw, text):
    lines = _lines(text)
    other = _lines(SPECS[draw(st.sampled_from(sorted(SPECS)))])
    new = draw(st.one_of(
        st.sampled_from(other),
        st.sampled_from(TOKENS + TRAPS).map(lambda t: "  " + t),
        st.sampled_from(ODD).map(lambda t: t + ": 1"),  # a key
        st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(["netc", "name", "layers", "inputs",
                  "blocks", "defaults", "outputs", "expect", "  - conv", "  filters"]),
                  st.sampled_from(TRAPS)),
    ))
    lines.insert(_pick(draw, len(lines) + 1), new)
    return "\n".join(lines)


def m_swap_lines(draw, text):
    lines = _lines(text)
    i, j = _pick(draw, len(lines)), _pick(draw, len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def m_token(draw, text):
    tokens = TOKEN_RE.findall(text)
    i = _pick(draw, len(tokens))
    op = draw(st.sampled_from(["delete", "duplicate", "replace", "insert"]))
    new = draw(st.sampled_from(TRAPS + TOKENS + ODD))
    if not tokens:
        return new
    if op == "delete":
        del tokens[i]
    elif op == "duplicate":
        tokens.insert(i, tokens[i])
    elif op == "replace":
        tokens[i] = new
    else:
        tokens.insert(i, new)
    return "".join(tokens)


def m_number(draw, text):
    """Swap one number (or boolean, or value after `: `) for a trap."""
    spots = [m.span(1) for m in re.finditer(r"(?<![\w.$])(\d+|true|false)(?![\w.])", text)]
    if not spots:
        return text
    a, b = spots[_pick(draw, len(spots))]
    return text[:a] + draw(st.sampled_from(TRAPS)) + text[b:]


def m_value(draw, text):
    """An anchor, alias, tag or trap in front of (or instead of) a value."""
    spots = [m.end() for m in re.finditer(r": |- ", text)]
    if not spots:
        return text
    a = spots[_pick(draw, len(spots))]
    prefix = draw(st.sampled_from(["&a ", "*a", "&x ", "*x ", "!!python/object/apply:os.system "
                                   "['echo pwned'] ", "!!int ", "!!str ", "!t ", "<<: ", "? ",
                                   "*a\n", "&a [*a]", "{<<: *a}", ""]))
    if draw(st.booleans()):  # and an alias of it further on
        later = [s for s in spots if s > a]
        if later:
            b = later[_pick(draw, len(later))]
            text = text[:b] + "*a " + text[b:]
    return text[:a] + prefix + text[a:]


def m_char(draw, text):
    i = _pick(draw, len(text) + 1)
    return text[:i] + draw(st.sampled_from(ODD)) + text[i:]


def m_nest(draw, text):
    lines = _lines(text)
    i = _pick(draw, len(lines) + 1)
    deep = nest(draw(st.sampled_from(["flow-list", "flow-map", "open-list", "block-list",
                                      "block-map", "dashes"])), draw(st.sampled_from(NEST_SIZES)))
    where = draw(st.sampled_from(["line", "value"]))
    if where == "line":
        lines.insert(i, deep)
        return "\n".join(lines)
    return m_replace_value(draw, text, deep)


def m_replace_value(draw, text, new):
    spots = [m.span(1) for m in re.finditer(r": ([^\n#]+)", text)]
    if not spots:
        return text
    a, b = spots[_pick(draw, len(spots))]
    return text[:a] + new + text[b:]


def m_long(draw, text):
    n = draw(st.sampled_from([200, 5000, 100_000, 600_000]))
    new = draw(st.sampled_from(["x" * n, "# " + "x" * n, "9" * n, "[" + "1, " * (n // 3) + "1]",
                                "a" * n + ": 1", '"' + "\\u00e9" * (n // 6) + '"']))
    if draw(st.booleans()):
        return m_replace_value(draw, text, new)
    lines = _lines(text)
    lines.insert(_pick(draw, len(lines) + 1), new)
    return "\n".join(lines)


def m_truncate(draw, text):
    return text[: _pick(draw, len(text) + 1)]


def m_indent(draw, text):
    lines = _lines(text)
    i = _pick(draw, len(lines))
    lines[i] = draw(st.sampled_from([" ", "  ", "\t", "    "])) + lines[i] \
        if draw(st.booleans()) else lines[i].lstrip()
    return "\n".join(lines)


MUTATIONS = [m_delete_line, m_duplicate_line, m_insert_line, m_swap_lines, m_token, m_token,
             m_number, m_number, m_value, m_char, m_nest, m_long, m_truncate, m_indent]


# --- random spec-like trees, random text, random bytes ---------------------------------------

KEYS = ["netc", "name", "description", "inputs", "defaults", "blocks", "layers", "outputs",
        "expect", "from", "repeat", "first", "when", "args", "branches", "output", "filters",
        "kernel", "stride", "pad", "dilation", "groups", "bias", "round", "init", "units",
        "axis", "rate", "eps", "size", "alpha", "beta", "include_pad", "params", "macs",
        "conv", "maxpool", "avgpool", "globalavgpool", "dense", "flatten", "relu", "add",
        "concat", "batchnorm", "lrn", "softmax", "dropout", "tanh", "sigmoid", "leakyrelu",
        "x", "image", "input", "b", "conv1", "layer1",
        # issue 12's layers and attributes
        "relu6", "clip", "hardswish", "hardsigmoid", "silu", "gelu", "mish", "elu", "prelu",
        "mul", "layernorm", "groupnorm", "instancenorm", "param", "shuffle", "split", "permute",
        "reshape", "adaptiveavgpool", "adaptivemaxpool", "stochasticdepth", "min", "max",
        "approximate", "affine", "parts", "sizes", "index", "dims", "shape", "p", "mode",
        # issue 14's layers and attributes
        "convtranspose", "resize", "crop", "output_padding", "scale", "to", "amount",
        "align_corners", "value"]
scalars = st.one_of(
    st.integers(-3, 40), st.sampled_from([0, 1, 2, 3, 224, 1 << 20, 1 << 40, -(1 << 70)]),
    st.booleans(), st.none(), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(KEYS + ["N", "$filters", "$x * 2", "$stride > 1", "same", "valid", "ceil",
                            "floor", "he_normal", "normal(0.1)", "0.5", "1e-3", "same_lower",
                            "last", "channels", "none", "row", "batch", "constant(1e-6)"]),
    st.sampled_from(KEYS + ["N", "$filters"]),
    st.text(max_size=8),
    st.sampled_from(TRAPS),  # stops at the loader (E104...): rarely
)
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=40,
)


@st.composite
def spec_like(draw) -> bytes:
    """A document that looks like a spec, with random subtrees: reaches expand and check."""
    doc = {"netc": draw(st.sampled_from([1] * 8 + [2, True, "1"])),
           "name": draw(st.sampled_from(["t"] * 8 + ["a b", "", "x" * 200])),
           "inputs": draw(st.one_of(st.just({"x": ["N", 3, 8, 8]}),
                                    st.dictionaries(st.sampled_from(["x", "image", "a"]), trees,
                                                    max_size=3))),
           "layers": draw(st.lists(st.one_of(
               st.sampled_from(["relu", "flatten", "globalavgpool", "batchnorm", "bogus"]),
               st.dictionaries(st.sampled_from(KEYS), trees, min_size=1, max_size=4),
               st.fixed_dictionaries({"conv": st.fixed_dictionaries(
                   {"filters": scalars, "kernel": st.one_of(scalars, st.lists(scalars, max_size=4))},
                   optional={"stride": scalars, "pad": trees, "dilation": scalars,
                             "groups": scalars, "round": scalars, "from": trees})},
                   optional={"name": scalars, "repeat": scalars, "when": scalars}),
           ), max_size=6))}
    for key in draw(st.lists(st.sampled_from(["defaults", "blocks", "outputs", "expect",
                                               "description", "bogus"]), max_size=3)):
        doc[key] = draw(trees)
    if draw(st.booleans()):
        doc["blocks"] = {"blk": {"args": draw(st.dictionaries(st.sampled_from(["filters", "x",
                                                                                "stride"]),
                                                              scalars, max_size=3)),
                                 "layers": draw(st.lists(trees, min_size=1, max_size=3))}}
        doc["layers"].append({"blk": draw(trees), "repeat": draw(scalars)})
    return _dump(doc).encode("utf-8", "surrogatepass")


def _dump(node, indent="") -> str:
    """A small YAML writer (yaml.safe_dump would quote our traps away)."""
    if isinstance(node, dict):
        if not node:
            return "{}"
        return "".join(f"\n{indent}{k}: {_dump(v, indent + '  ')}" for k, v in node.items())
    if isinstance(node, list):
        if not node:
            return "[]"
        return "".join(f"\n{indent}- {_dump(v, indent + '  ').lstrip()}" for v in node)
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, float):
        return ".nan" if math.isnan(node) else ".inf" if node == math.inf else \
            "-.inf" if node == -math.inf else repr(node)
    if isinstance(node, int):
        return str(node)
    text = str(node)
    if text in TRAPS or re.fullmatch(r"[\w$][\w .$*/()-]*", text):
        return text
    return '"' + "".join(c if " " <= c <= "~" and c not in '"\\' else
                         f"\\x{ord(c):02x}" if ord(c) < 0x100 else
                         f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
                         for c in text) + '"'  # a double-quoted YAML string, escaped


yamlish = st.text(alphabet=st.one_of(st.sampled_from(list("-:[]{},#&*!|>'\"%@` \n\t0123456789"
                                                          "abcdefilnoprsuxN$._\\")),
                                     st.characters()), max_size=300)


# --- the loader fuzz ------------------------------------------------------------------------


@fuzz(1900)
@given(data=mutated_spec())
# found: a misspelt attribute in a block used twice crashed (TypeError) instead of E102
@example(data=SPECS["resnet50.yaml"].replace("{filters: $width, kernel: 1}",
                                             "{filters: $width,\ufeff kernel: 1}").encode())
@example(data=SPECS["resnet18.yaml"].replace("kernel: 3, stride: $stride", "kernl: 3").encode())
# found: a key with a newline or an escape sequence was printed raw, breaking the one-line
# form (and letting a spec write to the terminal)
@example(data=SPECS["lenet5.yaml"].replace("name: lenet5", '"a\\nerror[E999]: b": 1').encode())
@example(data=SPECS["lenet5.yaml"].replace("kernel: 5}", 'kernel: 5, "\\e[2J": 1}').encode())
@example(data=b"netc: 1\nx\x1b[31m: 1\n")
def test_fuzz_mutated_specs(data):
    note(repr(data[:2000]))
    pipeline(data)


@fuzz(500)
@given(data=spec_like())
def test_fuzz_spec_like_trees(data):
    note(data.decode("utf-8", "replace"))
    pipeline(data)


@fuzz(400)
@given(text=yamlish)
@example(text="\r0\x1f")  # found: a forbidden character after a CR was placed on line 1
def test_fuzz_random_text(text):
    pipeline(text.encode("utf-8", "surrogatepass"))


@fuzz(200)
@given(data=st.binary(max_size=400))
@example(data=b"\x0b\x00\x80")  # found: E009 counted only \n, the excerpt every line break
@example(data=b"a\rb: \xff")
def test_fuzz_random_bytes(data):
    pipeline(data)


# --- pipeline fuzz: random valid networks against ONNX Runtime -------------------------------


def f_eff(k, d=1):
    return d * (k - 1) + 1


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


def pads4(pad, hw, k, s, d):
    """(top, left, bottom, right), written independently of netc.layers.window.pads_of."""
    if pad == "valid":
        return (0, 0, 0, 0)
    if pad in ("same", "same_lower"):  # the odd pixel at the end (same) or the start
        out = []
        for i in (0, 1):
            total = max((-(-hw[i] // s[i]) - 1) * s[i] + f_eff(k[i], d[i]) - hw[i], 0)
            small, large = total // 2, total - total // 2
            out.append((large, small) if pad == "same_lower" else (small, large))
        return (out[0][0], out[1][0], out[0][1], out[1][1])
    if isinstance(pad, int):
        return (pad,) * 4
    return tuple(pad) * 2 if len(pad) == 2 else tuple(pad)


def axis_out(n, k, s, pb, pa, d, rounding):
    """One axis of a window: the size, or an error code."""
    span = n + pb + pa - f_eff(k, d)
    if span < 0:
        return "E302"
    if span % s == 0:
        return span // s + 1
    if rounding == "exact":
        return "E301"
    if rounding == "floor":
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= n + pb:
        out -= 1
    return out


def window_out(hw, a, pool):
    """(H, W) or an error code for a conv or pool with attributes `a` on an H x W input."""
    k = pair(a["kernel"])
    s = pair(a.get("stride", a["kernel"] if pool else 1))
    d = pair(a.get("dilation", 1))
    pad = a.get("pad", 0)
    rounding = a.get("round", "exact")
    if pad in ("same", "same_lower") and rounding == "exact":
        rounding = "floor"  # `same` promises ceil(n / s); it skips what a long stride skips
    p = pads4(pad, hw, k, s, d)
    # a pooling window may not be padded as much as it spans (dilated: d·(k-1)+1 pixels)
    if pool and any(p[i] >= f_eff(k[i % 2], d[i % 2]) for i in range(4)):
        return "E105"
    sizes = [axis_out(hw[i], k[i], s[i], p[i], p[i + 2], d[i], rounding) for i in (0, 1)]
    for code in ("E302", "E301"):  # every axis is checked for E302 first
        if code in sizes:
            return code
    return tuple(sizes)


def ref_layer(kind, a, xs):
    """The output shape of one layer, or the code of the error netc must report."""
    x = xs[0]
    if kind == "conv":
        if len(x) != 4:
            return "E307"
        g = a.get("groups", 1)
        if x[1] % g or a["filters"] % g:
            return "E303"
        hw = window_out(x[2:], a, pool=False)
        return hw if isinstance(hw, str) else (x[0], a["filters"], *hw)
    if kind in ("maxpool", "avgpool"):
        if len(x) != 4:
            return "E307"
        hw = window_out(x[2:], a, pool=True)
        return hw if isinstance(hw, str) else (x[0], x[1], *hw)
    if kind == "globalavgpool":
        return (x[0], x[1], 1, 1) if len(x) == 4 else "E307"
    if kind in ("batchnorm",):
        return x if len(x) in (2, 4) else "E307"
    if kind == "lrn":
        return x if len(x) == 4 else "E307"
    if kind in ("relu", "tanh", "sigmoid", "leakyrelu", "dropout", "relu6", "hardswish",
                "hardsigmoid", "silu", "gelu", "mish", "elu", "stochasticdepth"):
        return x
    if kind == "clip":  # at least one bound, and min < max when both are given
        lo, hi = a.get("min"), a.get("max")
        if lo is None and hi is None or lo is not None and hi is not None and lo >= hi:
            return "E105"
        return x
    if kind == "prelu":  # a slope per channel (or feature)
        return x if len(x) in (2, 4) else "E307"
    if kind == "softmax":
        return x if -len(x) <= a.get("axis", 1) < len(x) else "E306"
    if kind == "flatten":
        return (x[0], math.prod(x[1:]))
    if kind == "dense":  # flat: (N, features); last: the last axis of any rank, others kept
        if a.get("axis", "flat") == "last":
            return (*x[:-1], a["units"])
        return (x[0], a["units"]) if len(x) == 2 else "E304"
    if kind == "layernorm":  # channels: axis 1 of (N, C) or NCHW; last: any rank from 2
        if a.get("axis", "channels") == "channels":
            return x if len(x) in (2, 4) else "E307"
        return x if len(x) >= 2 else "E307"
    if kind == "groupnorm":
        if len(x) not in (2, 4):
            return "E307"
        return "E303" if x[1] % a["groups"] else x
    if kind == "instancenorm":
        return x if len(x) == 4 else "E307"
    if kind == "shuffle":  # channels viewed as groups x C/groups
        if len(x) != 4:
            return "E307"
        return "E303" if x[1] % a["groups"] else x
    if kind == "split":  # one part of the channels: torch.chunk (parts) or torch.split (sizes)
        if len(x) < 2:
            return "E307"
        if ("parts" in a) == ("sizes" in a):
            return "E105"
        if "parts" in a:
            if x[1] % a["parts"]:
                return "E303"
            parts = [x[1] // a["parts"]] * a["parts"]
        else:
            parts = list(a["sizes"])
            if sum(parts) != x[1]:
                return "E303"
        if a["index"] >= len(parts):
            return "E105"
        return (x[0], parts[a["index"]], *x[2:])
    if kind == "permute":  # output axis i is input axis dims[i]; the batch stays first
        r = len(x)
        dims = [d + r if -r <= d < 0 else d for d in a["dims"]]
        if sorted(dims) != list(range(r)) or dims[0] != 0:
            return "E306"
        return tuple(x[d] for d in dims)
    if kind == "reshape":  # sizes after the batch, one may be -1; the values must fit
        new = list(a["shape"])
        if 0 in new or new.count(-1) > 1:
            return "E105"
        have, known = math.prod(x[1:]), math.prod(d for d in new if d != -1)
        if -1 in new:
            if have % known:
                return "E305"
            new[new.index(-1)] = have // known
        elif known != have:
            return "E305"
        return (x[0], *new)
    if kind in ("adaptiveavgpool", "adaptivemaxpool"):  # the output no larger than the input
        if len(x) != 4:
            return "E307"
        out = pair(a["output"])
        return "E302" if out[0] > x[2] or out[1] > x[3] else (x[0], x[1], *out)
    if kind in ("add", "mul"):  # numpy's broadcasting, for inputs of one rank
        if any(len(y) != len(x) for y in xs):
            return "E305"
        out = []
        for sizes in zip(*xs):
            big = {d for d in sizes if d != 1}
            if len(big) > 1:
                return "E305"
            out.append(big.pop() if big else 1)
        return tuple(out)
    if kind == "concat":
        ax = a.get("axis", 1)
        if not -len(x) <= ax < len(x) or ax % len(x) == 0:
            return "E306"
        ax %= len(x)
        for y in xs[1:]:
            if len(y) != len(x) or any(p != q for j, (p, q) in enumerate(zip(x, y)) if j != ax):
                return "E305"
        return tuple(sum(y[ax] for y in xs) if j == ax else x[j] for j in range(len(x)))
    if kind == "convtranspose":
        return convtranspose_out(x, a)
    if kind in ("resize", "crop", "pad"):
        # issue 14: `to: <layer>` is a second input, whose height and width are the target
        if len(x) != 4:
            return "E307"
        ref = xs[1] if "to" in a else None
        if ref is not None and len(ref) != 4:
            return "E307"
        return {"resize": resize_out, "crop": crop_out, "pad": pad_out}[kind](x, ref, a)
    raise AssertionError(kind)


def sides4(v):
    """(top, left, bottom, right) of an int, [h, w] or [t, l, b, r] (crop and pad amounts)."""
    if isinstance(v, int):
        return (v,) * 4
    return tuple(v) * 2 if len(v) == 2 else tuple(v)


def convtranspose_out(x, a):
    """PyTorch's ConvTranspose2d: out = (N - 1)·S - Pb - Pe + D·(F - 1) + op + 1 per axis."""
    if len(x) != 4:
        return "E307"
    g = a.get("groups", 1)
    if x[1] % g or a["filters"] % g:
        return "E303"
    k, s = pair(a["kernel"]), pair(a.get("stride", 1))
    d, op = pair(a.get("dilation", 1)), pair(a.get("output_padding", 0))
    # PyTorch: output_padding must be smaller than either the stride or the dilation
    if any(op[i] >= s[i] and op[i] >= d[i] for i in (0, 1)):
        return "E309"
    pad = a.get("pad", 0)
    if pad in ("same", "same_lower"):  # an output of N·S: crop span + op - S in all
        totals = [f_eff(k[i], d[i]) + op[i] - s[i] for i in (0, 1)]
        if min(totals) < 0:  # cropping can't grow the output
            return "E105"
        halves = [(t - t // 2, t // 2) if pad == "same_lower" else (t // 2, t - t // 2)
                  for t in totals]
        p = (halves[0][0], halves[1][0], halves[0][1], halves[1][1])
    else:
        p = pads4(pad, None, k, s, d)
    out = [(x[2 + i] - 1) * s[i] - p[i] - p[i + 2] + f_eff(k[i], d[i]) + op[i]
           for i in (0, 1)]
    return "E302" if min(out) < 1 else (x[0], a["filters"], *out)


def whole_scaled(n, s) -> bool:
    """Whether resizing `n` pixels by the scale `s` gives a whole number: PyTorch's
    floor(n × s) (a double product) is whole, or the exact decimal product as the spec writes
    the scale is a whole number and equals PyTorch's floor (30 × 0.1 = 3.0000000000000004
    in double precision: whole)."""
    p = n * s
    exact = n * Decimal(repr(float(s)))
    return p == math.floor(p) or exact == exact.to_integral_value() == math.floor(p)


def resize_out(x, ref, a):
    """F.interpolate: to `to`'s or `size`'s height and width, or floor(N × scale)."""
    given = [k for k in ("scale", "size", "to") if k in a]
    if len(given) != 1:
        return "E105"
    mode = a.get("mode", "nearest")
    if a.get("align_corners") and mode not in ("bilinear", "bicubic"):
        return "E105"
    if ref is not None:
        return (*x[:2], *ref[2:])
    if "size" in a:
        return (*x[:2], *pair(a["size"]))
    s = pair(a["scale"])
    hw = x[2:]
    out = tuple(math.floor(hw[i] * s[i]) for i in (0, 1))
    if min(out) < 1:  # nothing left
        return "E310"
    if a.get("round", "exact") == "exact" and not all(whole_scaled(hw[i], s[i]) for i in (0, 1)):
        return "E310"
    # bicubic resampling at the input's size: PyTorch interpolates, ONNX Runtime copies
    if mode == "bicubic" and not a.get("align_corners") and out == hw and s != (1, 1):
        return "E310"
    return (*x[:2], *out)


def centre_start(have, want):
    return int(round((have - want) / 2.0))  # torchvision's center_crop


def crop_out(x, ref, a):
    given = [k for k in ("size", "to", "amount") if k in a]
    if len(given) != 1:
        return "E105"
    hw = x[2:]
    if "amount" in a:
        t, l, b, r = sides4(a["amount"])
        out = (hw[0] - t - b, hw[1] - l - r)
        return "E310" if min(out) < 1 else (*x[:2], *out)
    want = ref[2:] if ref is not None else pair(a["size"])
    return "E310" if want[0] > hw[0] or want[1] > hw[1] else (*x[:2], *want)


def pad_out(x, ref, a):
    given = [k for k in ("amount", "to") if k in a]
    if len(given) != 1:
        return "E105"
    mode = a.get("mode", "constant")
    if a.get("value", 0) != 0 and mode != "constant":
        return "E105"
    hw = x[2:]
    if ref is not None:
        if ref[2] < hw[0] or ref[3] < hw[1]:
            return "E310"
        dh, dw = ref[2] - hw[0], ref[3] - hw[1]
        p = (dh // 2, dw // 2, dh - dh // 2, dw - dw // 2)  # the odd pixel at the end
    else:
        p = sides4(a["amount"])
    if mode == "reflect" and any(p[i] >= hw[i % 2] for i in range(4)):
        return "E310"  # reflect mirrors about the edge pixel: less than the input
    return (*x[:2], hw[0] + p[0] + p[2], hw[1] + p[1] + p[3])


@dataclass
class Layer:
    kind: str
    attrs: dict
    name: str
    src: tuple[str, ...] | None = None  # `from:`; None reads the previous layer

    def inputs(self, prev: str) -> tuple[str, ...]:
        """The values it reads: `from:` (or `prev`), then the layer `to:` names."""
        return (*(self.src or (prev,)), *((self.attrs["to"],) if "to" in self.attrs else ()))


@dataclass
class Net:
    input: list  # [N, C, H, W] or [N, F]
    layers: list[Layer] = field(default_factory=list)

    def text(self) -> tuple[str, list[tuple[int, int]]]:
        """The spec, and each layer's first and last line."""
        out = ["netc: 1", "name: fuzz", "inputs:", f"  x: [{', '.join(map(str, self.input))}]",
               "layers:"]
        lines = []
        for layer in self.layers:
            start = len(out) + 1
            if layer.attrs:
                attrs = ", ".join(f"{k}: {_flow(v)}" for k, v in layer.attrs.items())
                out.append(f"  - {layer.kind}: {{{attrs}}}")
            else:
                out.append(f"  - {layer.kind}:")
            out.append(f"    name: {layer.name}")
            if layer.src is not None:
                out.append(f"    from: [{', '.join(layer.src)}]")
            lines.append((start, len(out)))
        out.append(f"outputs: [{', '.join(layer.name for layer in self.layers)}]")
        return "\n".join(out) + "\n", lines

    def reference(self):
        """({name: shape}, [(layer index, code)]): layers that read a failed one are skipped,
        as netc skips them."""
        shapes = {"x": tuple(["N"] + self.input[1:])}
        failed, prev = [], "x"
        for i, layer in enumerate(self.layers):
            src = layer.inputs(prev)
            prev = layer.name
            if any(s not in shapes for s in src):
                continue
            got = ref_layer(layer.kind, layer.attrs, [shapes[s] for s in src])
            if isinstance(got, str):
                failed.append((i, got))
            else:
                shapes[layer.name] = got
        return shapes, failed


def _flow(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def window_attrs(draw, hw, pool):
    """Attributes of a conv or pool that fit an H x W input (valid by construction)."""
    a = {}
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    a["kernel"] = k if draw(st.booleans()) or k[0] != k[1] else k[0]
    if draw(st.integers(0, 2)) or not pool:
        s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
        a["stride"] = s if s[0] != s[1] else s[0]
    if draw(st.integers(0, 3 if not pool else 5)) == 0:  # pools too (issue 12)
        d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
        a["dilation"] = d if d[0] != d[1] else d[0]
    form = draw(st.sampled_from(["none", "int", "hw", "tlbr", "same", "valid", "same_lower"]))
    # a pool may pad less than the (dilated) window spans
    limit = (lambda i: f_eff(pair(a["kernel"])[i % 2], pair(a.get("dilation", 1))[i % 2]) - 1) \
        if pool else (lambda i: 2)
    if form == "int":
        a["pad"] = draw(st.integers(0, min(limit(0), limit(1))))
    elif form == "hw":
        a["pad"] = [draw(st.integers(0, limit(0))), draw(st.integers(0, limit(1)))]
    elif form == "tlbr":
        a["pad"] = [draw(st.integers(0, limit(i))) for i in range(4)]
    elif form in ("same", "valid", "same_lower"):
        a["pad"] = form
    a["round"] = draw(st.sampled_from(["exact", "floor", "ceil"]))
    got = window_out(hw, a, pool)
    if got == "E105":  # `same` on a pool padded as much as its window
        a["pad"] = 0
        got = window_out(hw, a, pool)
    if got == "E302":  # too large: shrink to a 1x1 window without padding or dilation
        a = {"kernel": 1, "stride": a.get("stride", 1), "round": a["round"]}
        got = window_out(hw, a, pool)
    if got == "E301":
        a["round"] = draw(st.sampled_from(["floor", "ceil"]))
        got = window_out(hw, a, pool)
    assert isinstance(got, tuple), (a, hw, got)
    return a


ACTIVATIONS = ["relu", "tanh", "sigmoid", "leakyrelu", "dropout", "softmax"]
# issue 12: the activations since 2016, and stochastic depth (an Identity at inference)
FUNCTIONS = ["relu6", "clip", "hardswish", "hardsigmoid", "silu", "gelu", "mish", "elu",
             "prelu", "stochasticdepth"]
BOUNDS = [-2.5, -1, 0, 0.5, 1, 6]


@st.composite
def function_layer(draw, x) -> tuple[str, dict]:
    """An element-wise layer (old or new) that fits an input of shape `x`."""
    kinds = ACTIVATIONS + FUNCTIONS
    if len(x) not in (2, 4):
        kinds = [k for k in kinds if k != "prelu"]
    kind = draw(st.sampled_from(kinds))
    attrs = {}
    if kind == "softmax" and draw(st.booleans()):
        attrs = {"axis": draw(st.integers(-len(x), len(x) - 1))}
    elif kind == "clip":
        lo, hi = sorted(draw(st.lists(st.sampled_from(BOUNDS), min_size=2, max_size=2,
                                      unique=True)))
        attrs = draw(st.sampled_from([{"min": lo, "max": hi}, {"min": lo}, {"max": hi}]))
    elif kind == "gelu" and draw(st.booleans()):
        attrs = {"approximate": draw(st.sampled_from(["none", "tanh"]))}
    elif kind == "elu" and draw(st.booleans()):
        attrs = {"alpha": draw(st.sampled_from([0.5, 1.0, 2]))}
    elif kind == "stochasticdepth":
        attrs = {"p": draw(st.sampled_from([0, 0.1, 0.5]))}
        if draw(st.booleans()):
            attrs["mode"] = draw(st.sampled_from(["row", "batch"]))
    return kind, attrs


@st.composite
def reshape_attrs(draw, x) -> dict:
    """A `shape` that holds the values of one image of `x` (1 to 4 sizes, maybe one -1)."""
    left = math.prod(x[1:])
    sizes = []
    for _ in range(draw(st.sampled_from([1, 2, 3, 3, 3, 4])) - 1):
        sizes.append(draw(st.sampled_from(_divisors(left))))
        left //= sizes[-1]
    sizes.append(left)
    sizes = draw(st.permutations(sizes))
    if draw(st.booleans()):
        sizes[draw(st.integers(0, len(sizes) - 1))] = -1
    return {"shape": sizes}


@st.composite
def split_attrs(draw, c) -> dict:
    """One part of `c` channels: equal `parts`, or `sizes` adding up to `c`."""
    if draw(st.booleans()):
        parts = draw(st.sampled_from(_divisors(c)))
        return {"parts": parts, "index": draw(st.integers(0, parts - 1))}
    cuts = sorted(draw(st.sets(st.integers(1, c - 1), max_size=3))) if c > 1 else []
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [c])]
    return {"sizes": sizes, "index": draw(st.integers(0, len(sizes) - 1))}


BIG = 40  # the largest height or width the new layers make (keeps ONNX Runtime quick)
SCALES = [2, 0.5, 1.5, 3, 0.25, 1.25, 0.75, 1, 0.3, 0.1, 0.7, 2.5, 1.1, 0.2]


def _fits_in(shape) -> bool:
    return isinstance(shape, tuple) and max(shape[2:]) <= BIG


@st.composite
def convtranspose_attrs(draw, x) -> dict:
    """A transposed conv that fits an N×C×H×W input, its output at most BIG a side."""
    g = draw(st.sampled_from(_divisors(x[1])))
    a = {"filters": g * draw(st.integers(1, max(1, 6 // g)))}
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    a["kernel"] = k if draw(st.booleans()) or k[0] != k[1] else k[0]
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    if draw(st.integers(0, 3)):
        a["stride"] = s if s[0] != s[1] else s[0]
    d = [1, 1]
    if draw(st.integers(0, 3)) == 0:
        d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
        a["dilation"] = d if d[0] != d[1] else d[0]
    s = list(pair(a.get("stride", 1)))
    if draw(st.integers(0, 2)) == 0:  # below the stride or the dilation
        op = [draw(st.integers(0, max(s[i], d[i]) - 1)) for i in (0, 1)]
        a["output_padding"] = op if op[0] != op[1] else op[0]
    form = draw(st.sampled_from(["none", "int", "hw", "tlbr", "same", "valid", "same_lower"]))
    if form == "int":
        a["pad"] = draw(st.integers(0, 2))
    elif form == "hw":
        a["pad"] = [draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    elif form == "tlbr":
        a["pad"] = [draw(st.integers(0, 3)) for _ in range(4)]
    elif form != "none":
        a["pad"] = form
    if g > 1:
        a["groups"] = g
    if draw(st.booleans()):
        a["bias"] = draw(st.booleans())
    got = convtranspose_out(x, a)
    if got in ("E105", "E302"):  # `same` short of the stride, or cropped away: no padding
        a.pop("pad")
        got = convtranspose_out(x, a)
    if not _fits_in(got):  # too large: no upsampling
        a.pop("stride", None)
        a.pop("output_padding", None)
        got = convtranspose_out(x, a)
    if not _fits_in(got):
        a = {"filters": a["filters"], "kernel": 1}
        got = convtranspose_out(x, a)
    assert isinstance(got, tuple), (a, x, got)
    return a


def _targets(shapes, ok) -> list[str]:
    """Earlier NCHW values (inputs and layers) whose height and width pass `ok`: what a
    `to:` may name."""
    return sorted(n for n, y in shapes.items() if len(y) == 4 and ok(y[2:]))


@st.composite
def resize_attrs(draw, x, shapes) -> dict:
    """A resize (by a scale, to a size or to an earlier layer) that fits `x`."""
    a = {}
    mode = draw(st.sampled_from(["nearest", "nearest", "bilinear", "nearest-exact", "bicubic"]))
    if mode != "nearest" or draw(st.booleans()):
        a["mode"] = mode
    if mode in ("bilinear", "bicubic") and draw(st.booleans()):
        a["align_corners"] = draw(st.booleans())
    targets = _targets(shapes, lambda hw: max(hw) <= BIG)
    how = draw(st.sampled_from(["scale", "scale", "scale", "scales", "size", "to"]))
    if how == "to" and targets:
        a["to"] = draw(st.sampled_from(targets))
    elif how == "size" or how == "to":
        a["size"] = [draw(st.integers(1, 12)), draw(st.integers(1, 12))]
        if a["size"][0] == a["size"][1] and draw(st.booleans()):
            a["size"] = a["size"][0]
    else:
        sc = [draw(st.sampled_from(SCALES)), draw(st.sampled_from(SCALES))]
        a["scale"] = sc[0] if how == "scale" else sc
        if draw(st.integers(0, 3)) == 0:
            a["round"] = draw(st.sampled_from(["exact", "floor"]))
        got = ref_layer("resize", a, [x])
        if got == "E310" and a.get("round", "exact") == "exact":
            a["round"] = "floor"  # not whole: rounded down, as PyTorch does
            got = ref_layer("resize", a, [x])
        if not _fits_in(got):  # nothing left, too large, or bicubic at the input's size
            del a["scale"]
            a.pop("round", None)
            a["size"] = [draw(st.integers(1, 12)), draw(st.integers(1, 12))]
    got = ref_layer("resize", a, [x] + ([shapes[a["to"]]] if "to" in a else []))
    assert isinstance(got, tuple), (a, x, got)
    return a


@st.composite
def crop_attrs(draw, x, shapes) -> dict:
    """A centre crop (to a size or an earlier layer) or one by amounts, that fits `x`."""
    hw = x[2:]
    targets = _targets(shapes, lambda t: t[0] <= hw[0] and t[1] <= hw[1])
    how = draw(st.sampled_from(["size", "amount", "amount", "to"]))
    if how == "to" and targets:
        return {"to": draw(st.sampled_from(targets))}
    if how == "size":
        size = [draw(st.integers(1, hw[0])), draw(st.integers(1, hw[1]))]
        return {"size": size[0] if size[0] == size[1] and draw(st.booleans()) else size}
    # amounts that leave a row and a column
    t, b = (draw(st.integers(0, (hw[0] - 1) // 2)) for _ in range(2))
    l, r = (draw(st.integers(0, (hw[1] - 1) // 2)) for _ in range(2))
    form = draw(st.sampled_from(["int", "hw", "tlbr"]))
    if form == "int" and 2 * t < hw[0] and 2 * t < hw[1]:
        return {"amount": t}
    if form in ("int", "hw"):
        return {"amount": [t, l]}
    return {"amount": [t, l, b, r]}


@st.composite
def pad_attrs(draw, x, shapes) -> dict:
    """A pad (by amounts, or up to an earlier layer) that fits `x`."""
    hw = x[2:]
    a = {}
    mode = draw(st.sampled_from(["constant", "constant", "reflect", "replicate"]))
    if mode != "constant" or draw(st.booleans()):
        a["mode"] = mode
    if mode == "constant" and draw(st.integers(0, 3)) == 0:
        a["value"] = draw(st.sampled_from([0, 0.5, -1]))
    # reflect pads by less than the input: at most hw - 1 on each side
    room = (hw[0] - 1, hw[1] - 1) if mode == "reflect" else (3, 3)
    targets = [t for t in _targets(shapes, lambda t: max(t) <= BIG)
               if isinstance(pad_out(x, shapes[t], {**a, "to": t}), tuple)]
    if draw(st.integers(0, 3)) == 0 and targets:
        a["to"] = draw(st.sampled_from(targets))
        return a
    t, b = (draw(st.integers(0, min(room[0], 3))) for _ in range(2))
    l, r = (draw(st.integers(0, min(room[1], 3))) for _ in range(2))
    form = draw(st.sampled_from(["int", "hw", "tlbr"]))
    if form == "int" and t <= room[1]:
        a["amount"] = t
    elif form in ("int", "hw"):
        a["amount"] = [t, l]
    else:
        a["amount"] = [t, l, b, r]
    got = ref_layer("pad", a, [x])
    assert isinstance(got, tuple), (a, x, got)
    return a


@st.composite
def networks(draw) -> Net:
    """A small network that fits, built layer by layer with the reference's shapes."""
    if draw(st.integers(0, 5)):
        net = Net(["N", draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 12))])
    else:
        net = Net(["N", draw(st.integers(1, 6))])
    shapes = {"x": tuple(net.input)}
    cur = "x"
    # half of the networks also gets issue 14's layers (upsampling, crops and pads)
    dense_prediction = draw(st.booleans())

    def side(layer: Layer) -> str:
        """A layer off the main line (an operand of a join): added, its shape recorded."""
        net.layers.append(layer)
        shapes[layer.name] = ref_layer(layer.kind, layer.attrs,
                                       [shapes[s] for s in layer.src])
        assert isinstance(shapes[layer.name], tuple), (layer, shapes[layer.name])
        return layer.name

    for i in range(draw(st.integers(1, 7))):
        x = shapes[cur]
        name = f"l{i}"
        options = ["act", "act", "join", "join", "join"] + (["batchnorm"] if len(x) in (2, 4)
                                                            else [])
        options += {4: ["conv", "conv", "conv", "maxpool", "avgpool", "globalavgpool", "lrn",
                        "flatten", "norm", "adaptive", "shuffle", "split", "permute",
                        "reshape", "dense_last"] + (["convtranspose", "resize", "crop",
                                                     "pad"] * 4 if dense_prediction else []),
                    2: ["dense", "dense", "norm", "split", "reshape", "dense_last"]}.get(
            len(x), ["dense_last", "reshape", "permute", "split", "norm", "flatten"])
        what = draw(st.sampled_from(options))
        src = None
        if what == "act":
            kind, attrs = draw(function_layer(x))
        elif what == "conv":
            kind = "conv"
            g = draw(st.sampled_from(_divisors(x[1])))
            attrs = {"filters": g * draw(st.integers(1, max(1, 6 // g)))}
            attrs.update(draw(window_attrs(x[2:], pool=False)))
            if g > 1:
                attrs["groups"] = g
            if draw(st.booleans()):
                attrs["bias"] = draw(st.booleans())
        elif what == "convtranspose":
            kind, attrs = what, draw(convtranspose_attrs(x))
        elif what in ("resize", "crop", "pad"):
            kind = what
            attrs = draw({"resize": resize_attrs, "crop": crop_attrs, "pad": pad_attrs}[what](
                x, shapes))
        elif what in ("maxpool", "avgpool"):
            kind = what
            attrs = draw(window_attrs(x[2:], pool=True))
            if what == "avgpool" and draw(st.booleans()):
                attrs["include_pad"] = draw(st.booleans())
        elif what == "lrn":
            kind, attrs = "lrn", {"size": draw(st.sampled_from([1, 3, 5]))}
        elif what == "dense":
            kind, attrs = "dense", {"units": draw(st.integers(1, 8))}
        elif what == "dense_last":
            kind, attrs = "dense", {"units": draw(st.integers(1, 8)), "axis": "last"}
        elif what == "norm":
            kind = draw(st.sampled_from(["layernorm", "groupnorm", "instancenorm"]
                                        if len(x) == 4 else ["layernorm", "groupnorm"]
                                        if len(x) == 2 else ["layernorm"]))
            attrs = {}
            if kind == "layernorm":
                if len(x) not in (2, 4) or draw(st.booleans()):
                    attrs["axis"] = "last" if len(x) not in (2, 4) else \
                        draw(st.sampled_from(["channels", "last"]))
            elif kind == "groupnorm":
                attrs["groups"] = draw(st.sampled_from(_divisors(x[1])))
            if draw(st.integers(0, 2)) == 0:
                attrs["affine"] = draw(st.booleans())
        elif what == "adaptive":
            kind = draw(st.sampled_from(["adaptiveavgpool", "adaptivemaxpool"]))
            out = [draw(st.integers(1, x[2])), draw(st.integers(1, x[3]))]
            attrs = {"output": out[0] if out[0] == out[1] and draw(st.booleans()) else out}
        elif what == "shuffle":
            kind, attrs = "shuffle", {"groups": draw(st.sampled_from(_divisors(x[1])))}
        elif what == "split":
            kind, attrs = "split", draw(split_attrs(x[1]))
        elif what == "permute":
            dims = [0] + draw(st.permutations(range(1, len(x))))
            if draw(st.integers(0, 3)) == 0:  # a negative axis counts from the end
                j = draw(st.integers(0, len(x) - 1))
                dims[j] -= len(x)
            kind, attrs = "permute", {"dims": dims}
        elif what == "reshape":
            kind, attrs = "reshape", draw(reshape_attrs(x))
        elif what == "join":
            # another operand: an earlier value, or a new side branch from an earlier value;
            # a sum or product may broadcast (an N×C×1×1 squeeze-and-excitation scale)
            same = [n for n, s in shapes.items() if s == x]
            kind = draw(st.sampled_from(["add", "concat", "mul"]))
            attrs = {}
            how = "concat" if kind == "concat" else draw(st.sampled_from(
                ["same", "same", "broadcast"]))
            if how == "same" and len(same) > 1 and draw(st.booleans()):
                other = draw(st.sampled_from(same))
            elif how == "broadcast" and len(x) == 4 and draw(st.integers(0, 2)):
                # squeeze and excitation: a global pool of an earlier map, maybe a 1x1 conv
                # to this one's channels, maybe a gate
                maps = [n for n, s in shapes.items() if len(s) == 4]
                src0 = draw(st.sampled_from(maps))
                other = side(Layer("globalavgpool", {}, f"l{i}p", (src0,)))
                if shapes[src0][1] != x[1] or draw(st.booleans()):
                    other = side(Layer("conv", {"filters": x[1], "kernel": 1}, f"l{i}e",
                                       (other,)))
                if draw(st.booleans()):
                    other = side(Layer(draw(st.sampled_from(["sigmoid", "hardsigmoid"])), {},
                                       f"l{i}g", (other,)))
            else:
                # a side branch: as wide as this value (a sum or product of one shape), one
                # wide (it broadcasts: N×1×H×W, N×1), or of any width (a concatenation)
                units = x[1 if len(x) == 4 else -1]
                if how == "broadcast":
                    units = 1
                elif kind == "concat":
                    units = draw(st.integers(1, 4))
                from_ = (draw(st.sampled_from(same)),)
                if len(x) == 4:
                    other = side(Layer("conv", {"filters": units,
                                                "kernel": draw(st.sampled_from([1, 3])),
                                                "pad": "same"}, f"l{i}b", from_))
                elif len(x) == 2:
                    other = side(Layer("dense", {"units": units}, f"l{i}b", from_))
                else:
                    other = side(Layer("dense", {"units": units, "axis": "last"}, f"l{i}b",
                                       from_))
                    if kind == "concat" and shapes[other] != x:
                        attrs = {"axis": -1}
            if kind == "concat" and len(x) > 2 and shapes[other] == x and draw(st.booleans()):
                attrs = {"axis": draw(st.sampled_from([j for j in range(1 - len(x), len(x))
                                                       if j % len(x)]))}
            operands = [cur, other] if draw(st.booleans()) else [other, cur]
            src = tuple(operands + ([cur] if kind != "concat" and draw(st.integers(0, 3)) == 0
                                    else []))
        else:
            kind, attrs = what, {}
        layer = Layer(kind, attrs, name, src)
        shape = ref_layer(kind, attrs, [shapes[s] for s in layer.inputs(cur)])
        assert isinstance(shape, tuple), (layer, shape)
        net.layers.append(layer)
        shapes[name] = shape
        cur = name
    return net


# what a mutant may change, and the least value each may take (a valid attribute value)
MUTABLE = {"filters": 1, "kernel": 1, "stride": 1, "pad": 0, "dilation": 1, "groups": 1,
           "units": 1, "output": 1, "parts": 1, "sizes": 1, "index": 0, "shape": 0,
           "min": None, "max": None,
           # issue 14 (an lrn's `size` is no dimension: it stays)
           "output_padding": 0, "scale": 0, "size": 1, "amount": 0}


@st.composite
def mutants(draw, net: Net) -> tuple[Net, str]:
    """`net` with one dimension changed (still a valid attribute value), and what changed."""
    spots = [("input", j) for j in range(1, len(net.input))]
    for i, layer in enumerate(net.layers):
        for key, v in layer.attrs.items():
            if key in MUTABLE and v not in ("same", "valid", "same_lower") and \
                    (key, layer.kind) != ("size", "lrn"):
                # a reshape's -1 stays (changing it is a different spec, not a dimension)
                spots += [(i, key, j) for j in range(len(v)) if v[j] != -1] \
                    if isinstance(v, list) else [(i, key, None)]
        if layer.kind in ("maxpool", "avgpool") and "stride" not in layer.attrs:
            spots.append((i, "stride", None))
        if layer.kind in ("conv", "convtranspose") and "groups" not in layer.attrs:
            spots.append((i, "groups", None))
        if layer.kind == "convtranspose" and "output_padding" not in layer.attrs:
            spots.append((i, "output_padding", None))
    spot = draw(st.sampled_from(spots))
    delta = draw(st.sampled_from([-2, -1, 1, 1, 2, 3]))
    if spot[0] == "input":
        new = list(net.input)
        new[spot[1]] = max(1, new[spot[1]] + delta)
        return replace(net, input=new), f"input dimension {spot[1]}: {new[spot[1]]}"
    i, key, j = spot
    layer = net.layers[i]
    attrs = dict(layer.attrs)
    low = MUTABLE[key]
    old = attrs.get(key, pair(attrs["kernel"])[0] if key == "stride" else
                    0 if key == "output_padding" else 1)

    def moved(v):
        return v + delta if low is None else max(low, v + delta)

    if j is None:
        attrs[key] = moved(old)
    else:
        attrs[key] = list(old)
        attrs[key][j] = moved(old[j])
    layers = list(net.layers)
    layers[i] = replace(layer, attrs=attrs)
    return replace(net, layers=layers), f"{layer.name}.{key}: {old} -> {attrs[key]}"


def check_net(net: Net):
    """netc on the network's spec: (graph or NetcError, the spec text, each layer's lines)."""
    text, lines = net.text()
    return pipeline(text.encode("utf-8")), text, lines


def run_and_compare(graph, shapes):
    """netc's shapes == the reference's == ONNX Runtime's, for every layer."""
    netc_shapes = {v.name: v.shape for v in graph.outputs}
    want = {k: v for k, v in shapes.items() if k != "x"}
    assert netc_shapes == want, f"netc {netc_shapes}\nreference {want}"
    feeds = {v.name: np.random.default_rng(0).standard_normal(concrete(v.shape, BATCH))
             .astype(np.float32) for v in graph.inputs}
    model = emit(graph)
    # ONNX's own shape inference must agree with the shapes netc declares (it is stricter
    # than ONNX Runtime, which only fails where a disagreement meets a join)
    onnx.checker.check_model(model, full_check=True)
    sess = session(serialize(model))
    results = sess.run(None, feeds)
    got = {o.name: r.shape for o, r in zip(sess.get_outputs(), results)}
    assert got == {k: concrete(v, BATCH) for k, v in netc_shapes.items()}, \
        f"ONNX Runtime {got}\nnetc {netc_shapes}"


@fuzz(2000)
@given(data=st.data())
def test_fuzz_networks_against_onnxruntime(data):
    net = data.draw(networks(), label="network")
    shapes, failed = net.reference()
    assert not failed
    for layer in net.layers:  # issue 14's share (`--hypothesis-show-statistics`)
        if layer.kind in ("convtranspose", "resize", "crop", "pad"):
            event(f"has {layer.kind}" + (" to" if "to" in layer.attrs else ""))
    got, text, _ = check_net(net)
    note(text)
    assert not isinstance(got, NetcError), f"netc rejects a valid network:\n{got}"
    run_and_compare(got, shapes)

    mutant, change = data.draw(mutants(net), label="mutant")
    shapes, failed = mutant.reference()
    got, text, lines = check_net(mutant)
    note(f"{change}\n{text}")
    event("mutant: fits" if not failed else "mutant: " + ", ".join(sorted({c for _, c in failed})))
    if not failed:  # the change is harmless: netc must agree, and ONNX Runtime too
        assert not isinstance(got, NetcError), f"netc rejects a network that fits:\n{got}"
        run_and_compare(got, shapes)
        return
    assert isinstance(got, NetcError), f"netc accepts a network that doesn't fit: {failed}"
    errors = sorted((d for d in got.diagnostics.items if d.severity == "error"),
                    key=lambda d: d.span.line)
    want = [(lines[i], code) for i, code in failed]
    assert len(errors) == len(want), f"want {want}, got:\n{got}"
    for d, ((first, last), code) in zip(errors, want):
        assert d.code == code and first <= d.span.line <= last, \
            f"want {code} on lines {first}-{last}, got:\n{d.render()}"


# --- regressions found by the fuzzers above ------------------------------------------------


def test_regression_ceil_pool_window_past_the_input_then_concat():
    """Found by the network fuzz: a `round: ceil` pool whose ceil window would start past the
    input (netc and ONNX Runtime drop it) was lowered to ceil_mode=1, for which ONNX's shape
    inference keeps it: the declared 1 row against an inferred 2 made ONNX Runtime refuse
    the model at the concat ("Can't merge shape info")."""
    net = Net(["N", 1, 2, 1], [
        Layer("maxpool", {"kernel": 1, "stride": [2, 1], "round": "ceil"}, "l3"),
        Layer("maxpool", {"kernel": [2, 1], "pad": [0, 0, 1, 0], "round": "exact"}, "l5"),
        Layer("conv", {"filters": 1, "kernel": 1, "pad": "same"}, "l6b", ("l3",)),
        Layer("concat", {}, "l6", ("l6b", "l5")),
    ])
    shapes, failed = net.reference()
    assert not failed
    graph, _, _ = check_net(net)
    run_and_compare(graph, shapes)


@pytest.mark.parametrize("layer", [
    # height: (8 - 1) / 3 + 1 = 3.33, ceil 4, but the 4th window would start at 9 >= 8:
    # 3; width: (6 - 3) / 4 + 1 = 1.75, ceil 2 (the 2nd window starts at 4 < 6)
    "maxpool: {kernel: [1, 3], stride: [3, 4], round: ceil}",
    "avgpool: {kernel: [1, 3], stride: [3, 4], round: ceil}",
    "avgpool: {kernel: [1, 3], stride: [3, 4], pad: [0, 1, 0, 0], round: ceil, "
    "include_pad: true}",
])
def test_regression_ceil_pool_one_axis_drops_the_other_keeps(layer):
    text = (f"netc: 1\nname: t\ninputs:\n  x: [N, 2, 8, 6]\nlayers:\n  - {layer}\n"
            "  - relu\n")
    graph = pipeline(text.encode())
    assert not isinstance(graph, NetcError), str(graph)
    assert graph.outputs[0].shape[2:] == (3, 2)
    model = emit(graph)
    onnx.checker.check_model(model, full_check=True)
    [y] = session(serialize(model)).run(None, {"x": np.ones((2, 2, 8, 6), np.float32)})
    assert y.shape == (2, 2, 3, 2)


@pytest.mark.parametrize("data, code, line, col", [
    # found by the fuzz: positions counted `\n` only, while the excerpt (and YAML) count
    # every line break; each points at the bad character, on the line the excerpt shows
    (b"a\rb: \xff", "E009", 2, 4),
    (b"\x0b\x00\x80", "E009", 2, 2),
    (b"x: 1\r\ny: \xc3", "E009", 2, 4),
    (b"\r0\x1f", "E003", 2, 2),
    (b"a: 1\r\nb: \x07", "E003", 2, 4),
])
def test_regression_position_after_other_line_breaks(data, code, line, col):
    e = pipeline(data)
    assert isinstance(e, NetcError)
    [d] = e.diagnostics.items
    assert (d.code, d.span.line, d.span.col) == (code, line, col), d.render()
