"""The sliding-window arithmetic shared by every convolution and pooling layer, and what netc
says about a window (its equation, its lints, its label): the `Windowed` base of both.

    output = (N + pad_before + pad_after - F_eff) / stride + 1,   F_eff = dilation * (F - 1) + 1

`exact` (netc's default) requires a whole number, as the lecture does; `floor` drops the last
partial window (PyTorch's and ONNX's default); `ceil` keeps it, except that, as in PyTorch and
ONNX Runtime, a last window that would start inside the end padding is dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import ceil
from typing import TYPE_CHECKING

from ..errors import Lint, RuleError, a as article
from .base import Layer, Shape, Site

if TYPE_CHECKING:
    from fractions import Fraction

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
    """(N - F + 2P) / S + 1 as an exact fraction (for messages: `window` needs integers only,
    so fractions are imported when a message needs them)."""
    from fractions import Fraction

    return Fraction(n + pb + pa - (d * (k - 1) + 1), s) + 1


def leftover(n: int, k: int, s: int, pb: int, pa: int, d: int = 1) -> tuple[int, int]:
    """What `floor` leaves after the last window along one axis: (padded pixels after it,
    of them pixels of the input itself; 0 or less when only end padding is left)."""
    left = (n + pb + pa - (d * (k - 1) + 1)) % s
    return left, left - pa


def window(n: int, k: int, s: int, pb: int, pa: int, d: int, rounding: str) -> Window | None:
    """Output size along one axis, or None if `exact` is asked and it is not a whole number.

    Assumes the (effective) filter fits the padded input; `spatial` checks that first."""
    padded = n + pb + pa
    keff = d * (k - 1) + 1
    q, r = divmod(padded - keff, s)  # (padded - keff) / s, whole and remainder (numerator >= 0)
    if r == 0:
        return Window(q + 1, 0)
    if rounding == "exact":
        return None
    if rounding == "floor":
        return Window(q + 1, 0)
    out = q + 2  # ceil
    if (out - 1) * s >= n + pb:  # the last window would start in the end padding
        out -= 1
    return Window(out, max(0, (out - 1) * s + keff - padded))


def same_padding(n: int, k: int, s: int, d: int, lower: bool = False) -> tuple[int, int]:
    """`pad: same`: output ceil(n / s); odd filters pad (F-1)/2 on each side, and any odd
    total puts the extra pixel at the end (ONNX's SAME_UPPER, TensorFlow's SAME), or with
    `lower` (`pad: same_lower`, ONNX's SAME_LOWER) at the start."""
    keff = d * (k - 1) + 1
    out = -(-n // s)
    total = max((out - 1) * s + keff - n, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


SAME = ("same", "same_lower")  # the `pad` values that promise an output of ceil(N / stride)


def pads_of(pad, x_hw, kernel, stride, dilation) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) for a normalised `pad` attribute (a 4-tuple or same/valid)."""
    if pad == "valid":
        return (0, 0, 0, 0)
    if pad in SAME:
        (t, b), (l, r) = (same_padding(x_hw[i], kernel[i], stride[i], dilation[i],
                                       pad == "same_lower") for i in (0, 1))
        return (t, l, b, r)
    return pad


def rounding_of(pad, rounding: str) -> str:
    """`same` (and `same_lower`) promises ceil(N / stride), so it never needs rounding; but
    where the stride is longer than the filter, the pixels after the last window are skipped
    (as in ONNX's SAME_UPPER and SAME_LOWER), which `exact` would reject: read `exact` as
    `floor` there."""
    return "floor" if pad in SAME and rounding == "exact" else rounding


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
        f"{article(shown)} {what} is larger than the {_size(x_hw)} {where}",
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
    message = (f"{article(k_text)} {what} with stride {s_text} doesn't fit "
               f"{article(_size(x_hw))} input")
    return RuleError(message, code="E301", attr="stride" if max(stride) > 1 else "kernel",
                     details=details, hints=_fixes(x_hw, kernel, stride, pads, dilation, bad, what))


def _whole(x_hw, kernel, stride, pb, pa, dilation):
    sizes = [exact_size(x_hw[i], kernel[i], stride[i], pb[i], pa[i], dilation[i]) for i in (0, 1)]
    # a size below 1 is a whole number too, but means the filter no longer fits (E302)
    if all(s.denominator == 1 and s >= 1 for s in sizes):
        return (int(sizes[0]), int(sizes[1]))
    return None


def _fixes(x_hw, kernel, stride, pads, dilation, bad, what="filter") -> list[str]:
    """Concrete edits that make the window fit, each with the size it would give (each one
    applied through `window` before it is offered). The edits that keep the stride come
    first: a stride above 1 downsamples on purpose, and "stride 1 gives 30x30" would undo it.
    Where no padding the same on every side tiles the input (an odd filter at stride 2 on an
    even size: 3x3/2 on 32x32, ResNet's 7x7/2 stem on 224x224), `pad: same` does (ceil(N /
    stride), the extra pixel at the end), and so does PyTorch's (F - 1) / 2 padding with
    `round: floor` (PyTorch's rounding) where it gives the same size."""
    top, left, bottom, right = pads
    pb, pa = (top, left), (bottom, right)
    keeps, others = [], []
    keff = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in (0, 1))
    if pads[0] == pads[1] == pads[2] == pads[3]:
        # a pooling window refuses pads as large as itself (E105): suggest none of those
        for p in range(0, min(kernel) if what == "window" else max(kernel) + 1):
            if p != pads[0]:
                got = _whole(x_hw, kernel, stride, (p, p), (p, p), dilation)
                if got:
                    keeps.append(f"pad: {p} gives {_size(got)}")
                    break
    if not keeps:
        same = pads_of("same", x_hw, kernel, stride, dilation)
        # (a pooling window refuses a pad as large as its span: E105)
        if what != "window" or all(same[j] < keff[j % 2] for j in range(4)):
            got = tuple(window(x_hw[i], kernel[i], stride[i], same[i], same[i + 2], dilation[i],
                               "floor").out for i in (0, 1))
            keeps.append(f"`pad: same` gives {_size(got)}")
            half = tuple((keff[i] - 1) // 2 for i in (0, 1))
            if half[0] == half[1] and half[0] != pads[0] and keff[0] % 2 == keff[1] % 2 == 1 \
                    and (what != "window" or half[0] < min(keff)):
                floor = tuple(window(x_hw[i], kernel[i], stride[i], half[i], half[i],
                                     dilation[i], "floor").out for i in (0, 1))
                if floor == got:
                    keeps.append(f"`pad: {half[0]}` with `round: floor` gives {_size(got)} "
                                 f"(PyTorch's padding={half[0]})")
    if stride[0] == stride[1]:
        for s in sorted(range(1, stride[0] + 4), key=lambda s: (abs(s - stride[0]), s)):
            if s != stride[0]:
                got = _whole(x_hw, kernel, (s, s), pb, pa, dilation)
                if got:
                    others.append(f"stride {s} gives {_size(got)}")
                    break
    fixes = keeps + others
    lost = "last row and column" if len(bad) == 2 else f"last {EDGE[AXES[bad[0]]]}"
    floor_hw = tuple(window(x_hw[i], kernel[i], stride[i], pb[i], pa[i], dilation[i], "floor").out
                     for i in (0, 1))
    ceil_hw = tuple(window(x_hw[i], kernel[i], stride[i], pb[i], pa[i], dilation[i], "ceil").out
                    for i in (0, 1))
    rounding = (f"declare `round: floor` to drop the {lost} ({_size(floor_hw)}), or "
                f"`round: ceil` to keep a partial window ({_size(ceil_hw)})")
    return ["; ".join(fixes), f"or {rounding}"] if fixes else [rounding]


# --- what netc says about a window -------------------------------------------------------------


class Windowed(Layer):
    """The base of the layers that slide a window over the height and width (conv and the
    pools). A subclass has the attributes `kernel`, `pad` and `round`, and says its stride and
    dilation through `window_stride` and `window_dilation`; `what` names its window in
    messages ("filter" or "window")."""

    what = "window"

    @property
    def window_stride(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def window_dilation(self) -> tuple[int, int]:
        return (1, 1)

    def label(self) -> str:
        """`maxpool 3×3/2`: the type, the kernel and a stride other than 1."""
        kernel, stride = self.kernel, self.window_stride
        text = f"{self.kind} {kernel[0]}×{kernel[1]}"
        if stride != (1, 1):
            text += f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}×{stride[1]}"
        return text

    def rounds(self, x: Shape) -> bool:
        """Whether `round: floor`/`ceil` rounds at input `x` (an exact window would not fit)."""
        if self.round == "exact":
            return False
        try:
            dataclasses.replace(self, round="exact").infer(x)
        except RuleError as e:
            return e.code == "E301"
        return False

    def equation(self, out: Shape, x: Shape) -> list[str]:
        """The window arithmetic per axis, with the padding `same` chose and what rounding
        did (the formula: the module doc)."""
        stride, dilation = self.window_stride, self.window_dilation
        pads = pads_of(self.pad, x[2:], self.kernel, stride, dilation)
        rounding = rounding_of(self.pad, self.round)
        keff = [dilation[i] * (self.kernel[i] - 1) + 1 for i in (0, 1)]
        lines = ["shape: output = (N + pad_before + pad_after - F) / stride + 1, per axis"]
        if any(d > 1 for d in dilation):
            lines.append(f"  the dilated filter spans F = dilation × (F - 1) + 1 = "
                         f"{keff[0]}x{keff[1]} pixels")
        if self.pad in SAME:
            lines.append(f"  pad: {self.pad} pads (top, left, bottom, right) = {list(pads)}, "
                         f"for an output of ceil(N / stride)"
                         + (", an odd total's extra pixel at the start"
                            if self.pad == "same_lower" and pads[:2] != pads[2:] else ""))
        before, after = (pads[0], pads[1]), (pads[2], pads[3])
        extras = []
        for i in (0, 1):
            n, k, s = x[2 + i], self.kernel[i], stride[i]
            q = exact_size(n, k, s, before[i], after[i], dilation[i])
            got = window(n, k, s, before[i], after[i], dilation[i], rounding)
            eq = f"({n} + {before[i]} + {after[i]} - {keff[i]}) / {s} + 1 = {fmt_num(q)}"
            if q.denominator == 1:
                note = "a whole number"
            elif rounding == "floor":
                left, dropped = leftover(n, k, s, before[i], after[i], dilation[i])
                why = (f"`pad: {self.pad}` (read as floor)" if self.pad in SAME
                       else "`round: floor`")
                note = f"rounded down by {why} to {got.out}"
                if dropped > 0:
                    edge = EDGE[AXES[i]] + "s" * (dropped > 1)
                    note += (f": the last {dropped} {edge} of the input "
                             f"{'are' if dropped > 1 else 'is'} in no window")
                else:
                    edge = EDGE[AXES[i]] + "s" * (left > 1)
                    note += (f": the {left} leftover {edge} {'are' if left > 1 else 'is'} end "
                             "padding")
            else:
                note = f"rounded up by `round: ceil` to {got.out}"
                if got.out < ceil(q):  # ceil(q - 1) + 1 = ceil(q)
                    note = (f"`round: ceil` would give {ceil(q)}, but the last window would "
                            f"start in the end padding, so it is dropped (as PyTorch does): "
                            f"{got.out}")
                if got.extra_end:
                    extras.append((AXES[i], got.extra_end))
            lines.append(f"  {AXES[i] + ':':7} {eq}, {note}")
        for axis, extra in extras:
            lines += self.partial_window_note(axis, extra)
        return lines

    def partial_window_note(self, axis: str, extra: int) -> list[str]:
        """Lines saying how the lowering pads a `round: ceil` window that hangs over the end
        of `axis` by `extra` pixels (none by default)."""
        return []

    def lints(self, site: Site) -> list[Lint]:
        """W203 (a stride that skips pixels) and W204 (`round: floor` dropping more than one
        row or column)."""
        found = []
        gap = self._stride_gap(site.name)
        if gap is not None:
            found.append(gap)
        dropped = self._floor_drops(site.name, site.inputs[0][2:], site.output)
        if dropped is not None:
            found.append(dropped)
        return found

    def _stride_gap(self, name: str) -> Lint | None:
        kernel, stride, dilation = self.kernel, self.window_stride, self.window_dilation
        keff = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in (0, 1))
        # a 1x1 kernel with a stride subsamples on purpose (ResNet's projection shortcuts)
        gaps = [i for i in (0, 1) if kernel[i] > 1 and stride[i] > keff[i]]
        if not gaps:
            return None
        both = len(gaps) == 2 and keff[0] == keff[1] and stride[0] == stride[1]
        details = []
        for i in gaps[:1] if both else gaps:
            skipped, edge = stride[i] - keff[i], EDGE[AXES[i]]
            plural = "s" * (skipped > 1)
            lost = f"{skipped} {edge}{plural} and {skipped} column{plural}" if both \
                else f"{skipped} {edge}{plural}"
            details.append(f"{'' if both else AXES[i] + ': '}windows span "
                           f"{keff[i]} {'pixels' if both else edge + 's'} and start every "
                           f"{stride[i]}: {lost} of every {stride[i]} "
                           f"{'are' if both or skipped > 1 else 'is'} never read")
        k = "x".join(map(str, kernel))
        s = str(stride[0]) if stride[0] == stride[1] else "x".join(map(str, stride))
        dilated = "" if keff == tuple(kernel) else f" (dilated to {keff[0]}x{keff[1]})"
        return Lint("W203", f"{self.kind} '{name}': stride {s} is larger than the {k}{dilated} "
                    f"{self.what}, so some input pixels are never read", "stride",
                    tuple(details),
                    (f"use a stride of at most {min(keff[i] for i in gaps)}, or a larger "
                     f"{self.what}; to subsample on purpose, use a 1x1 kernel",))

    def _floor_drops(self, name: str, hw, out: Shape) -> Lint | None:
        if self.round != "floor":
            return None
        kernel, stride, dilation = self.kernel, self.window_stride, self.window_dilation
        keff = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in (0, 1))
        pads = pads_of(self.pad, hw, kernel, stride, dilation)
        lost, details = [], []
        for i in (0, 1):
            before, after = pads[i], pads[i + 2]
            _, dropped = leftover(hw[i], kernel[i], stride[i], before, after, dilation[i])
            if dropped > max(1, stride[i] - keff[i]):  # more than the stride skips anyway
                edge = EDGE[AXES[i]]
                last = hw[i] - dropped
                lost.append(f"{dropped} {edge}s")
                size = exact_size(hw[i], kernel[i], stride[i], before, after, dilation[i])
                details.append(
                    f"{AXES[i]}: ({hw[i]} - {keff[i]} + {before + after}) / {stride[i]} + 1 = "
                    f"{fmt_num(size)}, rounded down to {out[2 + i]}: the last "
                    f"window ends at {edge} {last}, so {edge}s {last + 1}-{hw[i]} are never read")
        if not lost:
            return None
        ceil_hw = [window(hw[i], kernel[i], stride[i], pads[i], pads[i + 2], dilation[i],
                          "ceil").out for i in (0, 1)]
        return Lint("W204", f"{self.kind} '{name}': `round: floor` drops the last "
                    f"{' and '.join(lost)} of the {hw[0]}x{hw[1]} input", "round",
                    tuple(details),
                    (f"`round: ceil` reads them in a partial window ({ceil_hw[0]}x{ceil_hw[1]} "
                     f"instead of {out[2]}x{out[3]}), or change the padding, kernel or stride "
                     "so that the windows tile the input",))
