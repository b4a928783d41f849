"""Issue 16, items 2 and 3: the hints of a window that doesn't fit (E301) keep the stride, and a
shape error at a layer reading a channels-last input says netc is NCHW. Every fix a hint offers
is applied (the spec rewritten as the hint says, checked again) and the size it promises is
compared with torch.nn.functional's (the PyTorch semantics are the reference)."""

from __future__ import annotations

import re

import pytest

import netc
from netc import NetcError


def spec(layer: str, shape) -> str:
    return (f"netc: 1\nname: t\ninputs:\n  image: [{', '.join(map(str, shape))}]\n"
            f"layers:\n  - {layer}\n")


def diagnose(text: str):
    with pytest.raises(NetcError) as info:
        netc.check_spec(text=text)
    return info.value.diagnostics.items


def out_hw(text: str):
    return tuple(netc.check_spec(text=text).outputs[0].shape[2:])


def torch_hw(op, n, k, s, pads):
    """The output size PyTorch gives with explicit (top, left, bottom, right) zero padding."""
    torch = pytest.importorskip("torch", reason="torch is the reference for window sizes")
    F = torch.nn.functional
    x = F.pad(torch.zeros(1, 1, n, n), (pads[1], pads[3], pads[0], pads[2]))
    if op == "conv":
        y = F.conv2d(x, torch.zeros(1, 1, k, k), stride=s)
    else:
        y = F.max_pool2d(x, k, s)
    return tuple(y.shape[2:])


def same_pads(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return (total // 2, total // 2, total - total // 2, total - total // 2)


CASES = [("conv", 32, 3, 2), ("conv", 224, 7, 2), ("conv", 28, 5, 2), ("conv", 30, 3, 4),
         ("maxpool", 32, 3, 2), ("conv", 64, 5, 3), ("conv", 7, 3, 3)]


@pytest.mark.parametrize("op,n,k,s", CASES)
def test_window_fixes_keep_the_stride_first_and_are_true(op, n, k, s):
    attrs = f"{{filters: 4, kernel: {k}, stride: {s}}}" if op == "conv" \
        else f"{{kernel: {k}, stride: {s}}}"
    [d] = diagnose(spec(f"{op}: {attrs}", ("N", 3, n, n)))
    assert d.code == "E301"
    fixes = d.hints[0].split("; ")
    # the first fix keeps the stride: it is a padding, never a stride
    assert not fixes[0].startswith("stride"), fixes
    seen = 0
    for fix in fixes:
        m = re.fullmatch(r"pad: (\d+) gives (\d+)x(\d+)", fix)
        if m:
            p, h, w = map(int, m.groups())
            fixed = attrs.replace("}", f", pad: {p}}}")
            assert out_hw(spec(f"{op}: {fixed}", ("N", 3, n, n))) == (h, w) \
                == torch_hw(op, n, k, s, (p,) * 4)
            seen += 1
        m = re.fullmatch(r"`pad: same` gives (\d+)x(\d+)", fix)
        if m:
            h, w = map(int, m.groups())
            fixed = attrs.replace("}", ", pad: same}")
            assert out_hw(spec(f"{op}: {fixed}", ("N", 3, n, n))) == (h, w) == (-(-n // s),) * 2 \
                == torch_hw(op, n, k, s, same_pads(n, k, s))
            seen += 1
        m = re.fullmatch(r"`pad: (\d+)` with `round: floor` gives (\d+)x(\d+) "
                         r"\(PyTorch's padding=(\d+)\)", fix)
        if m:
            p, h, w, p2 = map(int, m.groups())
            fixed = attrs.replace("}", f", pad: {p}, round: floor}}")
            assert p == p2 and out_hw(spec(f"{op}: {fixed}", ("N", 3, n, n))) == (h, w) \
                == torch_hw(op, n, k, s, (p,) * 4)
            seen += 1
        m = re.fullmatch(r"stride (\d+) gives (\d+)x(\d+)", fix)
        if m:
            s2, h, w = map(int, m.groups())
            fixed = attrs.replace(f"stride: {s}", f"stride: {s2}")
            assert out_hw(spec(f"{op}: {fixed}", ("N", 3, n, n))) == (h, w) \
                == torch_hw(op, n, k, s2, (0,) * 4)
            seen += 1
    assert seen == len(fixes), fixes  # every fix offered was recognised and applied


def test_stride2_on_even_input_offers_same_not_only_stride1():
    [d] = diagnose(spec("conv: {filters: 6, kernel: 3, stride: 2}", ("N", 3, 32, 32)))
    assert d.hints[0] == ("`pad: same` gives 16x16; `pad: 1` with `round: floor` gives 16x16 "
                          "(PyTorch's padding=1); stride 1 gives 30x30")


LAST = [("conv: {filters: 6, kernel: 5}", ("N", 32, 32, 3)),
        ("conv: {filters: 6, kernel: 3, stride: 2}", ("N", 33, 33, 4)),
        ("maxpool: {kernel: 2, stride: 2}", ("N", 32, 32, 3)),
        ("maxpool: {kernel: 2}", (8, 28, 28, 1)),
        ("avgpool: {kernel: 3, stride: 2}", ("N", 65, 65, 4))]


@pytest.mark.parametrize("layer,shape", LAST)
def test_channels_last_hint_gives_a_line_that_checks(layer, shape):
    [d] = diagnose(spec(layer, shape))
    assert d.code in ("E301", "E302")
    [hint] = [h for h in d.hints if h.startswith("netc is NCHW")]
    line = re.search(r"write `image: \[(.*)\]`$", hint).group(1)
    fixed = [shape[0], shape[3], shape[1], shape[2]]
    assert line == ", ".join(map(str, fixed))
    netc.check_spec(text=spec(layer, fixed))  # the corrected line checks


@pytest.mark.parametrize("layer,shape", [
    ("conv: {filters: 6, kernel: 5}", ("N", 3, 32, 3)),    # second size 3: may be NCHW already
    ("conv: {filters: 6, kernel: 40}", ("N", 32, 32, 3)),  # transposing doesn't help either
    ("conv: {filters: 6, kernel: 3, stride: 2}", ("N", 8, 32, 32))])  # not channels last
def test_no_channels_last_hint_where_it_would_not_help(layer, shape):
    [d] = diagnose(spec(layer, shape))
    assert not any("NCHW" in h for h in d.hints)
