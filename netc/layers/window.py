"""The sliding-window arithmetic shared by every convolution and pooling layer.

    output = (N + pad_before + pad_after - F_eff) / stride + 1,   F_eff = dilation * (F - 1) + 1

`exact` (netc's default) requires a whole number, as the lecture does; `floor` drops the last
partial window (PyTorch's and ONNX's default); `ceil` keeps it, except that, as in PyTorch and
ONNX Runtime, a last window that would start inside the end padding is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor

from ..errors import RuleError

AXES = ("height", "width")
EDGE = {"height": "row", "width": "column"}


@dataclass(frozen=True)
class Window:
    """The outcome along one axis: output size, and end padding a conv needs for `ceil`."""

    out: int
    extra_end: int


def fmt_num(x: Fraction) -> str:
    """2.33, 55.25, 112.5, 28: the way the lecture writes a window's arithmetic."""
    if x.denominator == 1:
        return str(x.numerator)
    return f"{float(x):.2f}".rstrip("0").rstrip(".")


def exact_size(n: int, k: int, s: int, pb: int, pa: int, d: int = 1) -> Fraction:
    return Fraction(n + pb + pa - (d * (k - 1) + 1), s) + 1


def window(n: int, k: int, s: int, pb: int, pa: int, d: int, rounding: str) -> Window | None:
    """Output size along one axis, or None if `exact` is asked and it is not a whole number.

    Assumes the (effective) filter fits the padded input; `spatial` checks that first."""
    padded = n + pb + pa
    keff = d * (k - 1) + 1
    q = Fraction(padded - keff, s)
    if q.denominator == 1:
        return Window(int(q) + 1, 0)
    if rounding == "exact":
        return None
    if rounding == "floor":
        return Window(floor(q) + 1, 0)
    out = ceil(q) + 1
    if (out - 1) * s >= n + pb:  # the last window would start in the end padding
        out -= 1
    return Window(out, max(0, (out - 1) * s + keff - padded))


def same_padding(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """`pad: same`: output ceil(n / s); odd filters pad (F-1)/2 on each side, and any odd
    total puts the extra pixel at the end (ONNX's SAME_UPPER, TensorFlow's SAME)."""
    keff = d * (k - 1) + 1
    out = -(-n // s)
    total = max((out - 1) * s + keff - n, 0)
    return total // 2, total - total // 2


def spatial(x_hw: tuple[int, int], kernel, stride, pads, dilation, rounding: str,
            what: str = "filter") -> tuple[tuple[int, int], tuple[int, int]]:
    """Output (H, W) and the extra end padding (bottom, right) of a 2-D window.

    `pads` is (top, left, bottom, right). Raises RuleError: E302 when the filter is larger
    than the padded input (ONNX would infer a truncated size), E301 when `exact` is asked and
    the window does not tile the input, with the arithmetic and fixes that would work.
    """
    top, left, bottom, right = pads
    before, after = (top, left), (bottom, right)
    for i in (0, 1):
        padded = x_hw[i] + before[i] + after[i]
        keff = dilation[i] * (kernel[i] - 1) + 1
        if keff > padded:
            raise _too_large(x_hw, kernel, dilation, pads, what, i)
    results = [window(x_hw[i], kernel[i], stride[i], before[i], after[i], dilation[i], rounding)
               for i in (0, 1)]
    if None in results:
        raise _does_not_fit(x_hw, kernel, stride, pads, dilation, what)
    return (results[0].out, results[1].out), (results[0].extra_end, results[1].extra_end)


def _size(pair) -> str:
    return f"{pair[0]}x{pair[1]}"


def _too_large(x_hw, kernel, dilation, pads, what, i) -> RuleError:
    top, left, bottom, right = pads
    padded = (x_hw[0] + top + bottom, x_hw[1] + left + right)
    keff = tuple(dilation[j] * (kernel[j] - 1) + 1 for j in (0, 1))
    shown = _size(kernel) if keff == tuple(kernel) else f"{_size(kernel)} (dilated to {_size(keff)})"
    where = "input" if padded == tuple(x_hw) else f"padded input ({_size(padded)})"
    # enough for both axes, and for a dilated filter the kernel that spans at most the input
    need = max(-(-(keff[j] - x_hw[j]) // 2) for j in (0, 1))
    largest = tuple((padded[j] - 1) // dilation[j] + 1 for j in (0, 1))
    return RuleError(
        f"a {shown} {what} is larger than the {_size(x_hw)} {where}",
        code="E302", attr="kernel",
        details=[f"{AXES[i]}: {x_hw[i]} + {pads[i] + pads[i + 2]} padding < {keff[i]}: "
                 "there is no position where the whole filter fits"],
        hints=[f"use a kernel of at most {_size(largest)}",
               f"or pad by at least {need} on each side"],
    )


def _does_not_fit(x_hw, kernel, stride, pads, dilation, what) -> RuleError:
    top, left, bottom, right = pads
    pb, pa = (top, left), (bottom, right)
    bad = [i for i in (0, 1)
           if exact_size(x_hw[i], kernel[i], stride[i], pb[i], pa[i], dilation[i]).denominator != 1]
    details = []
    lines = {}
    for i in bad:
        keff = dilation[i] * (kernel[i] - 1) + 1
        value = exact_size(x_hw[i], kernel[i], stride[i], pb[i], pa[i], dilation[i])
        lines[i] = (f"({x_hw[i]} - {keff} + {pb[i] + pa[i]}) / {stride[i]} + 1 = "
                    f"{fmt_num(value)} is not a whole number")
    if len(bad) == 2 and lines[0] == lines[1]:
        details.append(lines[0])
    else:
        details += [f"{AXES[i]}: {lines[i]}" for i in bad]
    if any(d > 1 for d in dilation):
        keff = [dilation[i] * (kernel[i] - 1) + 1 for i in (0, 1)]
        details.append(f"the dilated filter spans {_size(keff)} pixels: dilation × (F - 1) + 1")
    k_text = _size(kernel)
    s_text = str(stride[0]) if stride[0] == stride[1] else _size(stride)
    message = f"a {k_text} {what} with stride {s_text} doesn't fit a {_size(x_hw)} input"
    return RuleError(message, code="E301", attr="stride" if max(stride) > 1 else "kernel",
                     details=details, hints=_fixes(x_hw, kernel, stride, pads, dilation, bad, what))


def _whole(x_hw, kernel, stride, pb, pa, dilation):
    sizes = [exact_size(x_hw[i], kernel[i], stride[i], pb[i], pa[i], dilation[i]) for i in (0, 1)]
    # a size below 1 is a whole number too, but means the filter no longer fits (E302)
    if all(s.denominator == 1 and s >= 1 for s in sizes):
        return (int(sizes[0]), int(sizes[1]))
    return None


def _fixes(x_hw, kernel, stride, pads, dilation, bad, what="filter") -> list[str]:
    """Concrete edits that make the window fit, each with the size it would give."""
    top, left, bottom, right = pads
    pb, pa = (top, left), (bottom, right)
    fixes = []
    if stride[0] == stride[1]:
        for s in sorted(range(1, stride[0] + 4), key=lambda s: (abs(s - stride[0]), s)):
            if s != stride[0]:
                got = _whole(x_hw, kernel, (s, s), pb, pa, dilation)
                if got:
                    fixes.append(f"stride {s} gives {_size(got)}")
                    break
    if pads[0] == pads[1] == pads[2] == pads[3]:
        # a pooling window refuses pads as large as itself (E105): suggest none of those
        for p in range(0, min(kernel) if what == "window" else max(kernel) + 1):
            if p != pads[0]:
                got = _whole(x_hw, kernel, stride, (p, p), (p, p), dilation)
                if got:
                    fixes.append(f"pad: {p} gives {_size(got)}")
                    break
    lost = "last row and column" if len(bad) == 2 else f"last {EDGE[AXES[bad[0]]]}"
    floor_hw = tuple(window(x_hw[i], kernel[i], stride[i], pb[i], pa[i], dilation[i], "floor").out
                     for i in (0, 1))
    ceil_hw = tuple(window(x_hw[i], kernel[i], stride[i], pb[i], pa[i], dilation[i], "ceil").out
                    for i in (0, 1))
    rounding = (f"declare `round: floor` to drop the {lost} ({_size(floor_hw)}), or "
                f"`round: ceil` to keep a partial window ({_size(ceil_hw)})")
    return ["; ".join(fixes), f"or {rounding}"] if fixes else [rounding]
