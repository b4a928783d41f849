"""Encoder-decoder checks: a join (concat, add, mul) whose operands differ in height or width
is an E305 that names each operand's size, the layers that made it, and the input sizes at
which they line up; those sizes are checked against an oracle (the spec checked at each size
of the range, through `netc sizes`' solver or by rewriting its input), and the fixes it hints
are applied and checked again."""

from __future__ import annotations

import dataclasses
import math
import re
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netc
from netc.alignment import Pattern, describe, find_pattern, fit_growth, nearest, ranges
from netc.errors import Diagnostics, NetcError
from netc.layers import REGISTRY
from netc.limits import DEFAULT
from netc.pipeline import check_spec as pipeline_check
from netc.pipeline import parse
from netc.tools.sizes import solve

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif("convtranspose" not in REGISTRY,
                                reason="the U-Nets here upsample with convtranspose")

PROPERTY = settings(max_examples=20, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# --- specs ---------------------------------------------------------------------------------

DOWN = {  # ways to halve a map, each with its declared rounding
    "maxpool": "maxpool: {{kernel: 2, round: {r}}}",
    "avgpool": "avgpool: {{kernel: 2, round: {r}}}",
    "conv": "conv: {{filters: 4, kernel: 3, stride: 2, pad: 1, round: {r}}}",
    "maxpool3": "maxpool: {{kernel: 3, stride: 2, pad: 1, round: {r}}}",
}
UP = {  # ways to double one
    "convtranspose": "convtranspose: {{filters: {f}, kernel: 2, stride: 2}}",
    "convtranspose3": "convtranspose: {{filters: {f}, kernel: 3, stride: 2, pad: 1, "
                      "output_padding: 1}}",
    "resize": "resize: {{scale: 2}}",
}


def unet(levels: int, height: int, width: int | None = None, downs=None, roundings=None,
         up: str = "convtranspose") -> str:
    """A U-Net of `levels` levels: per level a padded 3x3 conv `enc{k}` and a halving
    `down{k}`; a bottom conv; per level up an upsampling `up{k}`, a concat `cat{k}` of
    [enc{k}, up{k}] and a conv `dec{k}`; a 1x1 head."""
    width = height if width is None else width
    downs = downs or ["maxpool"] * levels
    roundings = roundings or ["floor"] * levels
    lines = ["netc: 1", "name: unet", "inputs:", f"  image: [N, 3, {height}, {width}]",
             "layers:"]
    for k in range(1, levels + 1):
        lines += [f"  - conv: {{filters: {4 * k}, kernel: 3, pad: 1}}", f"    name: enc{k}",
                  f"  - {DOWN[downs[k - 1]].format(r=roundings[k - 1])}", f"    name: down{k}"]
    lines += [f"  - conv: {{filters: {4 * levels + 4}, kernel: 3, pad: 1}}", "    name: bottom"]
    for k in range(levels, 0, -1):
        lines += [f"  - {UP[up].format(f=4 * k)}", f"    name: up{k}",
                  f"  - concat: {{from: [enc{k}, up{k}]}}", f"    name: cat{k}",
                  f"  - conv: {{filters: {4 * k}, kernel: 3, pad: 1}}", f"    name: dec{k}"]
    lines += ["  - conv: {filters: 2, kernel: 1}", "    name: head"]
    return "\n".join(lines) + "\n"


def at_size(text: str, height: int, width: int | None = None) -> str:
    """The spec with its image input made height × width."""
    width = height if width is None else width
    return re.sub(r"image: \[N, 3, \d+, \d+\]", f"image: [N, 3, {height}, {width}]", text)


def errors(path) -> list:
    """The errors of checking `path` (none: it checks)."""
    try:
        netc.check_spec(path)
    except NetcError as e:
        return [d for d in e.diagnostics.sorted() if d.severity == "error"]
    return []


def misaligned(path):
    """The one E305 about a misaligned join that checking `path` reports."""
    found = errors(path)
    assert [d.code for d in found] == ["E305"], [d.render() for d in found]
    return found[0]


# --- reading the claim back (a second implementation of the words: text -> sizes) ----------

CHECKS = [
    re.compile(r"they line up, and every layer checks, at input (?:sizes|heights|widths) "
               r"(?P<which>.+?) \(input \w+ (?P<low>\d+) to (?P<high>\d+) tried(?:, [^)]*)?\): "
               r"(?P<near>[\d and]+) (?:is|are) the nearest$"),
    re.compile(r"they line up at input (?:sizes|heights|widths) (?P<joined>.+?) \(input \w+ "
               r"(?P<low>\d+) to (?P<high>\d+) tried(?:, [^)]*)?\), but every layer checks only at "
               r"(?P<which>.+?): (?P<near>[\d and]+) (?:is|are) the nearest$"),
    re.compile(r"they line up at input (?:sizes|heights|widths) (?P<joined>.+?) \(input \w+ "
               r"(?P<low>\d+) to (?P<high>\d+) tried(?:, [^)]*)?\), but at none of them"),
    re.compile(r"no input (?:size|height|width) from (?P<low>\d+) to (?P<high>\d+) lines "
               r"them up"),
]


def read_sizes(text: str, low: int, high: int) -> set[int]:
    """`that are multiples of 16`, `those that are 0 to 3 more than a multiple of 8, from 24
    on`, `36, 40-41`: the sizes from low to high that the words name."""
    text = text.removeprefix("those ").strip()
    start = low
    if m := re.search(r", from (\d+) on$", text):
        start, text = int(m[1]), text[:m.start()]
    if m := re.fullmatch(r"that are multiples of (\d+)", text):
        period, residues = int(m[1]), {0}
    elif text == "that are every size":
        period, residues = 1, {0}
    elif m := re.fullmatch(r"that are (.+) (more|less) than a multiple of (\d+)", text):
        period, residues = int(m[3]), set()
        for part in re.split(r", | or ", m[1]):
            a, _, b = part.partition(" to ")
            residues |= set(range(int(a), int(b or a) + 1))
        if m[2] == "less":
            residues = {-r % period for r in residues}
    else:
        found = set()
        for part in text.split(", "):
            a, _, b = part.partition("-")
            found |= set(range(int(a), int(b or a) + 1))
        return found
    return {s for s in range(max(low, start), high + 1) if s % period in residues}


def claim(diag) -> tuple[set[int], int, int, list[int]]:
    """What the E305 says: (the sizes at which every layer checks, the range tried, the
    nearest ones named)."""
    for line in diag.details:
        for pattern in CHECKS:
            if m := pattern.match(line):
                low, high = int(m["low"]), int(m["high"])
                which = m.groupdict().get("which")
                sizes = read_sizes(which, low, high) if which else set()
                near = [int(n) for n in re.findall(r"\d+", m.groupdict().get("near") or "")]
                return sizes, low, high, near
    pytest.fail("no claim about input sizes in:\n" + diag.render())


def hinted_input(diag) -> str | None:
    for hint in diag.hints:
        if m := re.search(r"`(image: \[N, 3, \d+, \d+\])`", hint):
            return m[1]
    return None


def test_reading_the_claim_back():
    assert read_sizes("that are multiples of 8", 50, 70) == {56, 64}
    assert read_sizes("those that are 0 to 3 more than a multiple of 8, from 60 on", 50, 70) \
        == {64, 65, 66, 67}
    assert read_sizes("that are 0 or 1 more than a multiple of 4", 10, 14) == {12, 13}
    assert read_sizes("36, 40-41", 30, 50) == {36, 40, 41}
    assert read_sizes("that are 0 to 3 less than a multiple of 32", 200, 260) \
        == {221, 222, 223, 224, 253, 254, 255, 256}


# --- one U-Net, looked at closely ------------------------------------------------------------


def test_misaligned_unet_names_sizes_chain_and_the_sizes_that_line_up(tmp_path):
    """A 3-level U-Net (floor pools, 2x2 transposed convs) at 100x100: 100 / 8 is not whole."""
    path = tmp_path / "unet.yaml"
    path.write_text(unet(3, 100))
    diag = misaligned(path)
    text = diag.render()
    assert diag.message.startswith("concat 'cat3': joining along axis 1")
    # the size of each operand, named
    assert "'enc3' is 12×25×25 and 'up3' is 12×24×24: their heights and widths differ" in text
    # the chain: the pool that dropped a row, then the upsampling, each at its position
    notes = [n.message for n in diag.notes]
    assert notes[0] == "'enc3' is N×12×25×25, made here"
    assert notes[1] == "'up3' is N×12×24×24, made here from 'enc3' (N×12×25×25)"
    assert notes[2].startswith("maxpool 'down3' turned N×12×25×25 into N×12×12×12: "
                               "height and width: (25 + 0 + 0 - 2) / 2 + 1 = 12.5, "
                               "rounded down")
    assert notes[3] == "convtranspose 'up3' turned N×16×12×12 into N×12×24×24"
    assert len(notes) == 4  # the layers both share (enc1 ... enc3, down1, down2) left out
    # each at its layer's position (the line of its type)
    source = path.read_text().splitlines()
    assert [source[n.span.line - 1].strip() for n in diag.notes] == [
        "- conv: {filters: 12, kernel: 3, pad: 1}",
        "- convtranspose: {filters: 12, kernel: 2, stride: 2}",
        "- maxpool: {kernel: 2, round: floor}",
        "- convtranspose: {filters: 12, kernel: 2, stride: 2}"]
    assert source[diag.notes[2].span.line].strip() == "name: down3"
    # the sizes, against the oracle: the spec checked at every size of the range
    sizes, low, high, near = claim(diag)
    assert (low, high) == (50, 164)
    assert sizes == set(solve(str(path), low, high).valid)
    assert sizes == {s for s in range(low, high + 1) if s % 8 == 0}
    assert near == [96, 104]
    # the hinted size checks
    hinted = hinted_input(diag)
    assert hinted == "image: [N, 3, 104, 104]"
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(path.read_text().replace("image: [N, 3, 100, 100]", hinted))
    netc.check_spec(fixed)


def test_the_sizes_that_line_up_by_rewriting_the_input(tmp_path):
    """The same claim against the plainest oracle: the file rewritten at each size and
    checked; the join lines up there when nothing up to it fails."""
    text = unet(2, 35)
    path = tmp_path / "unet.yaml"
    path.write_text(text)
    diag = misaligned(path)
    assert diag.message.startswith("concat 'cat2'")
    sizes, low, high, _ = claim(diag)
    checks, joined = set(), set()
    join_line = diag.span.line
    for s in range(low, high + 1):
        one = tmp_path / f"at{s}.yaml"
        one.write_text(at_size(text, s))
        found = errors(one)
        checks |= {s} if not found else set()
        joined |= {s} if all(d.span.line > join_line for d in found) else set()
    assert sizes == checks == {s for s in range(low, high + 1) if s % 4 == 0}
    m = re.search(r"they line up at input sizes (.+?) \(", "\n".join(diag.details))
    assert read_sizes(m[1], low, high) == joined  # where cat2 alone lines up: s // 2 even
    assert joined == {s for s in range(low, high + 1) if (s // 2) % 2 == 0}


def test_only_the_height_is_off(tmp_path):
    """A 96x100 input to a 3-level U-Net: the width lines up, the height doesn't; the replay
    varies the height only, and the hint keeps the width."""
    path = tmp_path / "unet.yaml"
    path.write_text(unet(3, 100, 96))
    diag = misaligned(path)
    assert "their heights differ" in "\n".join(diag.details)
    sizes, low, high, near = claim(diag)
    assert "input heights" in "\n".join(diag.details)
    assert sizes == {s for s in range(low, high + 1) if s % 8 == 0} and near == [96, 104]
    assert hinted_input(diag) == "image: [N, 3, 104, 96]"
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(at_size(path.read_text(), 104, 96))
    netc.check_spec(fixed)


def test_a_non_square_input_with_both_sides_off(tmp_path):
    """100x92 with three levels: both are off; each axis is replayed with the other at a
    size where it lines up, and the hinted size checks."""
    path = tmp_path / "unet.yaml"
    path.write_text(unet(3, 100, 92))
    diag = misaligned(path)
    details = "\n".join(diag.details)
    assert "input heights" in details and "input widths" in details
    hinted = hinted_input(diag)
    h, w = map(int, re.findall(r"\d+", hinted)[1:])
    assert h % 8 == 0 and w % 8 == 0 and abs(h - 100) <= 4 and abs(w - 92) <= 4
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(path.read_text().replace("image: [N, 3, 100, 92]", hinted))
    netc.check_spec(fixed)


@pytest.mark.skipif(not all(k in REGISTRY for k in ("resize", "crop", "pad")),
                    reason="the `to:` layer types")
def test_the_hinted_layers_line_the_join_up_at_any_size(tmp_path):
    """Each `- kind: {from: a, to: b}` the hint names, put before the join and joined
    instead of `a`, makes that join check at the misaligned size."""
    path = tmp_path / "unet.yaml"
    text = unet(1, 35)  # one level: the only join is the one fixed
    path.write_text(text)
    diag = misaligned(path)
    fixes = re.findall(r"`- (\w+): \{from: (\w+), to: (\w+)\}`", "\n".join(diag.hints))
    assert {kind for kind, _, _ in fixes} == {"resize", "crop", "pad"}
    for kind, source, target in fixes:
        inputs = ", ".join("fixed" if x == source else x for x in ("enc1", "up1"))
        one = tmp_path / f"{kind}.yaml"
        one.write_text(text.replace(
            "  - concat: {from: [enc1, up1]}",
            f"  - {kind}: {{from: {source}, to: {target}}}\n    name: fixed\n"
            f"  - concat: {{from: [{inputs}]}}"))
        graph = netc.check_spec(one)
        assert graph.outputs[0].shape[2:] == ((35, 35) if source == "up1" else (34, 34))


# --- the other shapes of the mistake -------------------------------------------------------


def test_a_fixed_offset_lines_up_at_no_size(make_spec):
    """A 3x3 conv without padding on one path only: 2 pixels short at every size."""
    path = make_spec("""
        - conv: {filters: 4, kernel: 3}
          name: valid
        - conv: {filters: 4, kernel: 3, pad: 1, from: x}
          name: same
        - add: {from: [valid, same]}
    """, ("N", 3, 32, 32))
    diag = misaligned(path)
    details = "\n".join(diag.details)
    assert "no input size from 16 to 96 lines them up: 'valid' is 2 smaller than 'same' at " \
           "every one of them (a fixed amount: conv 'valid' takes off 2)" in details
    assert claim(diag)[0] == set(solve(str(path), 16, 96).valid) == set()
    assert hinted_input(diag) is None
    notes = [n.message for n in diag.notes]
    assert notes[:2] == ["'valid' is N×4×30×30, made here from input 'x' (N×3×32×32)",
                         "conv 'valid' turned N×3×32×32 into N×4×30×30"]


def test_different_rates_line_up_at_no_size(make_spec):
    """A stride on one path only: the two grow at different rates."""
    path = make_spec("""
        - conv: {filters: 4, kernel: 3, stride: 2, pad: 1, round: floor}
          name: half
        - conv: {filters: 4, kernel: 3, pad: 1, from: x}
          name: full
        - mul: {from: [half, full]}
    """, ("N", 3, 32, 32))
    details = "\n".join(misaligned(path).details)
    assert "'half' grows by 1/2 and 'full' by 1 per pixel of input" in details


def test_other_mismatches_keep_the_join_s_own_message(make_spec):
    """Channels that differ too (a missing projection), or a batch that differs: no replay."""
    path = make_spec("""
        - conv: {filters: 8, kernel: 3, stride: 2, pad: 1}
          name: a
        - add: {from: [a, x]}
    """, ("N", 4, 17, 17))
    diag = misaligned(path)
    assert diag.message == "add 'add1': needs inputs of one shape, got N×8×9×9 and N×4×17×17"
    assert not any("line up" in d for d in diag.details)
    assert diag.hints == ("a residual shortcut that changes size needs a projection (a 1x1 "
                          "conv with the same stride and filters)",)
    assert diag.notes[0].message == "'a' is N×8×9×9, made here"  # the notes as before


def test_a_large_network_replays_a_smaller_range(make_spec):
    """The replay runs at most a bounded number of shape rules: a network with very many
    layers before the join gets fewer sizes (and says which), and the check stays quick."""
    layers = ["- conv: {filters: 4, kernel: 3, pad: 1}", "  name: enc",
              "- maxpool: {kernel: 2, round: floor}", "- relu: {}", "  repeat: 5000",
              "- convtranspose: {filters: 4, kernel: 2, stride: 2}", "  name: up",
              "- concat: {from: [enc, up]}"]
    path = make_spec("\n".join(layers), ("N", 3, 129, 129))
    start = time.perf_counter()
    diag = misaligned(path)
    assert time.perf_counter() - start < 10
    sizes, low, high, near = claim(diag)
    assert 65 < low and high < 193
    sample = {low, low + 1, 127, 128, 129, 130, high - 1, high}
    assert sizes & sample == checks_at(path, sample) and near == [128, 130]


def test_only_the_layers_before_the_join_are_replayed_at_every_size(make_spec):
    """The layers after the join are replayed only where it lines up: 2,000 of them after
    a U-Net's join leave the whole range (the declared size ± 64) to the layers before."""
    layers = ["- conv: {filters: 4, kernel: 3, pad: 1}", "  name: enc",
              "- maxpool: {kernel: 2, round: floor}",
              "- convtranspose: {filters: 4, kernel: 2, stride: 2}", "  name: up",
              "- concat: {from: [enc, up]}", "- relu: {}", "  repeat: 2000"]
    path = make_spec("\n".join(layers), ("N", 3, 129, 129))
    sizes, low, high, near = claim(misaligned(path))
    assert (low, high) == (65, 193)
    assert sizes == {s for s in range(65, 194) if s % 2 == 0} and near == [128, 130]


def test_netc_sizes_does_no_replay(tmp_path):
    """`netc sizes` checks each size itself: its checks don't replay the network at others
    (the E305 at a size it tries has the named sizes and notes, without the replay)."""
    path = tmp_path / "unet.yaml"
    path.write_text(unet(3, 100))
    found = solve(str(path), 95, 97)
    assert [r.size for r in found.results if r.ok] == [96]
    assert found.declared.error.startswith("E305: concat 'cat3'")


# --- names the join can use, and why nothing lines up ---------------------------------------


def with_fix(text: str, join: str, kind: str, source: str, target: str) -> str:
    """`text` with `- kind: {from: source, to: target}` (named `fixed`) put before the line
    that holds `join` (a flow-style layer with `from: [...]`), which then reads `fixed`
    instead of `source`: the fix an E305 hint describes, applied as written."""
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if join in line)
    line = lines[k]
    m = re.search(r"from: \[([^\]]*)\]", line)
    names = [x.strip() for x in m[1].split(",")]
    assert source in names, (source, line)
    joined = ", ".join("fixed" if x == source else x for x in names)
    indent = line[:len(line) - len(line.lstrip())]
    lines[k:k + 1] = [f"{indent}- {{{kind}: {{from: {source}, to: {target}}}, name: fixed}}",
                      line[:m.start()] + f"from: [{joined}]" + line[m.end():]]
    return "\n".join(lines) + "\n"


def hinted_fixes(diag) -> list[tuple[str, str, str]]:
    """(kind, from, to) of each `- kind: {from: x, to: y}` that the hints name."""
    return re.findall(r"`- (\w+): \{from: ([\w.]+), to: ([\w.]+)\}`", "\n".join(diag.hints))


BLOCK_OUTPUT = """netc: 1
name: blocks
inputs:
  image: [N, 3, 90, 90]
blocks:
  enc: {layers: [{conv: {filters: 8, kernel: 3, pad: 1}, name: conv}, {relu: {}, name: act}]}
layers:
  - {enc: {}, name: e1}
  - {maxpool: {kernel: 2, round: floor}, name: p1}
  - {enc: {}, name: e2}
  - {maxpool: {kernel: 2, round: floor}, name: p2}
  - {convtranspose: {filters: 8, kernel: 2, stride: 2}, name: up}
  - {concat: {from: [e2, up]}, name: cat}
"""

JOIN_IN_A_BLOCK = """netc: 1
name: inner
inputs:
  image: [N, 3, 35, 35]
blocks:
  level:
    layers:
      - {conv: {filters: 4, kernel: 3, pad: 1}, name: enc}
      - {maxpool: {kernel: 2, round: floor}, name: down}
      - {convtranspose: {filters: 4, kernel: 2, stride: 2}, name: up}
      - {concat: {from: [enc, up]}, name: cat}
layers:
  - {conv: {filters: 4, kernel: 3, pad: 1}, name: stem}
  - {level: {}, name: l1}
"""

JOIN_OF_A_BLOCK_INPUT = """netc: 1
name: inner
inputs:
  image: [N, 3, 35, 35]
blocks:
  level:
    layers:
      - {maxpool: {kernel: 2, round: floor}, name: down}
      - {convtranspose: {filters: 3, kernel: 2, stride: 2}, name: up}
      - {concat: {from: [input, up]}, name: cat}
layers:
  - {conv: {filters: 3, kernel: 3, pad: 1}, name: stem}
  - {level: {}, name: l1}
"""


@pytest.mark.skipif(not all(k in REGISTRY for k in ("resize", "crop", "pad")),
                    reason="the `to:` layer types")
@pytest.mark.parametrize("text, names, join", [
    (BLOCK_OUTPUT, ("e2", "up"), "name: cat}"),  # a block instance's output: the instance
    (JOIN_IN_A_BLOCK, ("enc", "up"), "name: cat}"),  # inside a block: its own names
    (JOIN_OF_A_BLOCK_INPUT, ("input", "up"), "name: cat}"),  # ... and its input
])
def test_the_names_e305_gives_are_those_the_join_can_use(tmp_path, text, names, join):
    """The operands are named as the join's `from:` names them, and every hint, applied
    where the join is, checks."""
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    diag = misaligned(path)
    a, b = names
    assert re.search(rf"^'{a}' is \S+ and '{b}' is \S+: their heights and widths differ$",
                     "\n".join(diag.details), re.M), diag.render()
    fixes = hinted_fixes(diag)
    assert {kind for kind, _, _ in fixes} == {"resize", "crop", "pad"}
    assert all({x, y} == {a, b} for _, x, y in fixes)
    for kind, source, target in fixes:
        one = tmp_path / f"{kind}.yaml"
        one.write_text(with_fix(text, join, kind, source, target))
        netc.check_spec(one)
    hinted = re.search(r"`(image: \[N, 3, \d+, \d+\])`", "\n".join(diag.hints))
    fixed = tmp_path / "size.yaml"
    fixed.write_text(re.sub(r"image: \[N, 3, \d+, \d+\]", hinted[1], text))
    netc.check_spec(fixed)


def formula(text: str):
    """`2·ceil(n/4) + 1` as a function of n (or m), exactly (fractions, not floats)."""
    expr = re.sub(r"(\d)([nm])", r"\1*\2", text.replace("·", "*"))
    return lambda n: eval(expr, {"floor": math.floor, "ceil": math.ceil,  # noqa: S307
                                 "n": Fraction(n), "m": Fraction(n)})


RATE = """netc: 1
name: rate
inputs:
  image: [N, 3, 32, 32]
layers:
  - {conv: {filters: 4, kernel: 3, stride: 2, pad: 1, round: floor}, name: a}
  - {conv: {filters: 4, kernel: 3, stride: 2, pad: 1, round: floor}, name: b}
  - {convtranspose: {filters: 4, kernel: 3, stride: 2}, name: up}
  - {concat: {from: [a, up]}}
"""


def test_equal_rates_and_an_offset_are_said_as_they_are(tmp_path):
    """Both paths grow by 1/2 per pixel, and the transposed conv's 2m + 1 keeps 'up' 1 or
    2 larger: E305 gives each path's size as a function of the input size (checked against
    the network without the join, at every size of the range), says the rates are equal
    and what differs, and its first hint is a hint, not an `or`."""
    path = tmp_path / "rate.yaml"
    path.write_text(RATE)
    diag = misaligned(path)
    line = next(d for d in diag.details if d.startswith("no input size"))
    assert "differently" not in line
    m = re.fullmatch(r"no input size from (\d+) to (\d+) lines them up: for an input size n, "
                     r"'a' is (.+) and 'up' is (.+): both grow by 1/2 per pixel of input, but "
                     r"'up' is 1 or 2 larger at every one of them, and the difference repeats "
                     r"every 4 sizes \((.+)\)", line)
    assert m, line
    low, high = int(m[1]), int(m[2])
    assert "convtranspose 'up' turns m into 2m + 1" in m[5]
    assert "conv 'b' turns m into ceil(m/2)" in m[5]
    # the formulas, against the network without the join checked at each size
    plain = tmp_path / "plain.yaml"
    plain.write_text(RATE.replace("  - {concat: {from: [a, up]}}\n", "") + "outputs: [a, up]\n")
    size_a, size_up = formula(m[3]), formula(m[4])
    for n in range(low, high + 1):
        one = tmp_path / "one.yaml"
        one.write_text(at_size(plain.read_text(), n))
        a, up = (v.shape[2] for v in netc.check_spec(one).outputs)
        assert (a, up) == (size_a(n), size_up(n)), n
    assert not diag.hints[0].startswith("or ")
    assert diag.hints[0].startswith("line them up at any input size")


def test_a_misaligned_add_has_no_projection_hint(make_spec):
    """A projection (1x1 conv) changes channels or halves a size; it doesn't give back the
    row a `round: floor` pool dropped: a misaligned add's hints are the skip's. A shortcut
    off by a stride keeps it."""
    path = make_spec("""
        - conv: {filters: 4, kernel: 3, pad: 1}
          name: enc
        - maxpool: {kernel: 2, round: floor}
        - convtranspose: {filters: 4, kernel: 2, stride: 2}
          name: up
        - add: {from: [enc, up]}
    """, ("N", 3, 45, 45))
    diag = misaligned(path)
    assert not any("projection" in h for h in diag.hints), diag.hints
    assert diag.hints[0].startswith("make the input 46×46")
    path = make_spec("""
        - conv: {filters: 4, kernel: 2, stride: 2}
          name: a
        - add: {from: [a, x]}
    """, ("N", 4, 32, 32))
    diag = misaligned(path)
    assert any("needs a projection" in h for h in diag.hints), diag.hints


def resnet152_segmenter(size: int, repeat: int) -> str:
    """specs/resnet152.yaml at size×size with layer3 repeated `repeat` times, ending in a
    8x8 stride-8 transposed conv of layer4 joined to layer1 (the tester's reproducer,
    without the classifier's preprocessing and labels)."""
    text = (ROOT / "specs" / "resnet152.yaml").read_text()
    text = text[:text.index("  - globalavgpool:")]
    text = re.sub(r"(?m)^(preprocess|labels):.*\n(  .*\n)*", "", text)
    text = text.replace("image: [N, 3, 224, 224]", f"image: [N, 3, {size}, {size}]")
    text = text.replace("repeat: 36", f"repeat: {repeat}")
    return text + ("  - {convtranspose: {filters: 256, kernel: 8, stride: 8}, from: layer4, "
                   "name: up}\n  - {concat: {from: [layer1, up]}}\n")


def checks_at(path, sizes) -> set[int]:
    """The sizes among `sizes` at which the spec checks (the spec checked at each, as `netc
    sizes` does)."""
    parsed = parse(str(path))
    decl, cache, found = parsed.spec.inputs[0], {}, set()
    for s in sizes:
        spec = dataclasses.replace(parsed.spec, inputs=[dataclasses.replace(
            decl, shape=(*decl.shape[:2], s, s))], expect=None)
        diags = Diagnostics()
        pipeline_check(spec, diags, DEFAULT, cache)
        found |= set() if diags.has_errors() else {s}
    return found


def test_a_very_deep_network_still_finds_the_sizes_that_line_up(tmp_path):
    """ResNet-152 with 360 blocks in layer3 (3,700 layers before the join): the layers
    before the join are replayed over a range wide enough for the pattern (a period of 32),
    which it finds, instead of claiming that nothing lines up from a few sizes."""
    path = tmp_path / "deep.yaml"
    path.write_text(resnet152_segmenter(240, 360))
    start = time.perf_counter()
    diag = misaligned(path)
    assert time.perf_counter() - start < 20
    text = "\n".join(diag.details)
    assert "grows by 0" not in text and "differently" not in text
    assert "'layer1' is 256×60×60 and 'up' is 256×64×64" in text
    sizes, low, high, near = claim(diag)
    assert low <= 221 and high >= 256
    sample = {low, 220, 221, 224, 225, 240, 252, 253, 256, 257, high}
    assert sizes & sample == checks_at(path, sample)
    assert near == [224, 253]


def test_a_range_cut_short_says_so(make_spec):
    """20,000 layers before the join leave a few sizes to try, in which the upsampled path
    doesn't change: E305 says what it saw there and that it tried only those, and claims no
    rate for it."""
    path = make_spec("""
        - conv: {filters: 2, kernel: 3, stride: 4, pad: 1, round: floor}
          name: a
        - maxpool: {kernel: 2, round: floor}
        - maxpool: {kernel: 2, round: floor}
        - maxpool: {kernel: 2, round: floor}
        - relu: {}
          repeat: 20000
        - convtranspose: {filters: 2, kernel: 8, stride: 8}
          name: up
        - concat: {from: [a, up]}
    """, ("N", 1, 240, 240))
    diag = misaligned(path)
    line = next(d for d in diag.details if d.startswith("no input size"))
    m = re.fullmatch(r"no input size from (\d+) to (\d+) lines them up: 'a' grows by 1/4 per "
                     r"pixel of input, and 'up' is 56 at every one of them \(only these sizes "
                     r"were tried, the network being large: .*\)", line)
    assert m and int(m[2]) - int(m[1]) < 40, line
    assert "differently" not in line


@st.composite
def size_rules(draw):
    """A path's size as layers compose it: strided windows (floor((m + c) / s)), then an
    upsampling (u·m + d), as the layers of an encoder and one decoder step give it."""
    downs = draw(st.lists(st.tuples(st.integers(1, 4), st.integers(-3, 3)), max_size=4))
    up, offset = draw(st.integers(1, 4)), draw(st.integers(-2, 2))

    def rule(n):
        for s, c in downs:
            n = (n + c) // s
        return up * n + offset

    period = math.prod(s for s, _ in downs)
    return rule, period, Fraction(up, period)


@settings(max_examples=100, derandomize=True, deadline=None, database=None)
@given(size_rules(), st.integers(8, 300), st.integers(0, 40))
def test_a_size_rule_is_read_back_exactly(case, low, extra):
    """`fit_growth` gives back the rule that made the sizes, at every size, and its words
    (`2·ceil(n/4) + 1`) read back (by this file's reader) to the same sizes."""
    rule, period, rate = case
    values = {n: rule(n) for n in range(low, low + 2 * period + extra)}
    found = fit_growth(values)
    assert found is not None and found.rate == rate and period % found.every == 0
    assert found.shift is not None
    assert all(found.at(n) == v for n, v in values.items())
    words = formula(found.text())
    assert all(words(n) == v for n, v in values.items())


def test_growth_words():
    assert fit_growth({n: -(-n // 2) for n in range(10, 30)}).text() == "ceil(n/2)"
    assert fit_growth({n: 2 * -(-n // 4) + 1 for n in range(10, 30)}).text() \
        == "2·ceil(n/4) + 1"
    assert fit_growth({n: n - 2 for n in range(10, 30)}).text() == "n - 2"
    assert fit_growth({n: 2 * n + 1 for n in range(10, 30)}).text("m") == "2m + 1"
    assert fit_growth({n: (n + 1) // 4 for n in range(10, 30)}).text() == "floor((n + 1)/4)"
    assert fit_growth({n: 7 for n in range(10, 30)}).text() == "7"
    assert fit_growth({n: 3 * n // 4 for n in range(10, 30)}).text() == "3 more every 4"
    assert fit_growth({n: n // 16 for n in range(10, 30)}) is None  # not two periods


# --- the property: what the E305 says is what checking says --------------------------------


@st.composite
def encoder_decoders(draw):
    levels = draw(st.integers(1, 4))
    downs = draw(st.lists(st.sampled_from(sorted(DOWN)), min_size=levels, max_size=levels))
    roundings = draw(st.lists(st.sampled_from(["floor", "ceil"]), min_size=levels,
                              max_size=levels))
    ups = [u for u in UP if u != "resize" or "resize" in REGISTRY]
    up = draw(st.sampled_from(ups))
    size = draw(st.integers(2 ** levels + 1, 80))
    return unet(levels, size, None, downs, roundings, up), size


@PROPERTY
@given(encoder_decoders())
def test_the_sizes_e305_names_are_those_that_check(spec_writer, case):
    text, size = case
    path = spec_writer.folder / "property.yaml"
    path.write_text(text)
    found = errors(path)
    if not found:  # it lines up at its size: the solver agrees
        assert solve(str(path), size, size).declared.ok
        return
    joins = [d for d in found if d.code == "E305"]
    if not joins:  # a map too small for a window (E302), ...: not this test's business
        return
    diag = joins[0]
    sizes, low, high, near = claim(diag)
    oracle = set(solve(str(path), low, high).valid)
    assert sizes == oracle, diag.render()
    if oracle:
        below = [s for s in oracle if s < size]
        above = [s for s in oracle if s > size]
        assert near == ([max(below)] if below else []) + ([min(above)] if above else [])
        hinted = hinted_input(diag)
        best = int(re.findall(r"\d+", hinted)[1])
        assert best in oracle and best in near


# --- describing sets of sizes --------------------------------------------------------------


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(st.integers(1, 40), st.data())
def test_a_pattern_gives_back_exactly_its_sizes(period, data):
    residues = data.draw(st.sets(st.integers(0, period - 1), min_size=1))
    low = data.draw(st.integers(1, 200))
    high = low + data.draw(st.integers(0, 300))
    start = data.draw(st.integers(low, high))
    sizes = [s for s in range(start, high + 1) if s % period in residues]
    found = find_pattern(sizes, low, high)
    if found is not None:
        assert found.members(low, high) == sizes
        assert found.period <= period  # the shortest period that describes them
    elif len(sizes) >= 2 and high - sizes[0] + 1 >= 2 * period and len(residues) == 1:
        pytest.fail(f"multiples of {period} (+{residues}) from {start} not found")
    # the words read back (by this file's reader) to the same sizes
    described = describe(sizes, low, high)
    if sizes:
        assert read_sizes(described if found is None else f"that are {described}",
                          low, high) == set(sizes)


def test_pattern_words():
    assert Pattern(16, (0,), 112).text(100) == "multiples of 16"
    assert Pattern(16, (0,), 128).text(100) == "multiples of 16, from 128 on"
    assert Pattern(8, (0, 1, 2, 3), 56).text(52) == "0 to 3 more than a multiple of 8"
    assert Pattern(4, (0, 1), 4).text(4) == "0 or 1 more than a multiple of 4"
    assert Pattern(16, (12,), 12).text(10) == "12 more than a multiple of 16"
    assert describe([227, 259], 200, 260) == "227, 259"  # too short a range to say more
    assert describe([], 1, 5) == "no size"
    assert nearest([560, 576, 592], 572) == [560, 576] and nearest([576], 572) == [576]
    assert nearest([572], 572) == [572]
    assert ranges([1, 2, 3, 5]) == "1-3, 5"
