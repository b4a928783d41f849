"""Changing a feature map's height and width without weights: `resize` (interpolation, as
PyTorch's F.interpolate), `crop` (torchvision's centre crop, or given amounts) and `pad`
(F.pad's constant, reflect and replicate padding).

Each takes its target from numbers, or from another layer: `to: skip` names a layer (or
input) whose height and width the output takes, so that an encoder's and a decoder's maps
line up at every input size. That layer's output is one more input of the layer (after its
data input; `Layer.references`), so every command sees the dependency; the lowering itself
uses the sizes netc worked out, which are static.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from ..errors import RuleError
from .base import (Layer, Lowering, Pair, Ref, Scales, Shape, Sides, Tensor, attr, fmt_number,
                   fmt_shape, layer, layer_fields, need_rank)

if TYPE_CHECKING:  # fractions (and decimal) load on first use, not at start-up
    from fractions import Fraction

AXES = ("height", "width")
EDGES = ("rows", "columns")
MAX_SIDE = 1 << 20  # a size or amount: expand.MAX_RANK_DIM, the largest input dimension


def _hw(pair) -> str:
    return f"{pair[0]}x{pair[1]}"


@layer_fields
class _Resampling(Layer):
    """What resize, crop and pad share: one N×C×H×W input, and `to:`, a layer whose output
    gives the target height and width (then the layer's second input)."""

    arity = (1, 2)
    references = ("to",)

    def _inputs(self, xs: Sequence[Shape]) -> tuple[Shape, Shape | None]:
        """The data input and the output of the layer that `to:` names (None without `to:`)."""
        if self.to is None and len(xs) > 1:
            raise RuleError(
                f"reads one input, got {len(xs)}", code="E113", input=1,
                hints=["name the input in `from:`; to take another layer's height and width, "
                       "write `to: <that layer>`"])
        if self.to is not None and len(xs) != 2:  # expand always adds it: a netc bug
            raise AssertionError(f"{self.kind} with `to: {self.to}` got {len(xs)} inputs")
        x = xs[0]
        need_rank(x, (4,), self.kind)
        ref = xs[1] if self.to is not None else None
        if ref is not None and len(ref) != 4:
            raise RuleError(
                f"`to: {self.to}` names a {len(ref)}-D value ({fmt_shape(ref)}), which has no "
                "height and width", code="E307", attr="to",
                hints=["name an N×C×H×W layer or input, whose height and width to take"])
        return x, ref

    def _one_of(self, names: tuple[str, ...]) -> str:
        """The one of the attributes `names` that is given (E105 if none, or several)."""
        given = [a for a in names if getattr(self, a) is not None]
        if len(given) == 1:
            return given[0]
        listed = ", ".join(f"`{a}`" for a in names[:-1]) + f" or `{names[-1]}`"
        if given:
            raise RuleError(f"takes one of {listed}, got {' and '.join(given)}", code="E105",
                            attr=given[1], hints=[f"keep one of {' and '.join(given)}"])
        raise RuleError(f"needs {listed}", code="E105", hints=self._examples())

    def _examples(self) -> list[str]:
        return []


# --- resize ----------------------------------------------------------------------------------


@layer("resize")
@layer_fields
class Resize(_Resampling):
    """Resizes the height and width by interpolation, as PyTorch's F.interpolate; lowers to
    ONNX Resize (or Gather).

    `- resize: 2` (or `{scale: 2}`) doubles them, `{size: [64, 64]}` sets them, and
    `{to: skip, mode: bilinear}` takes those of layer `skip`. Equal to PyTorch's
    torch.nn.functional.interpolate (antialias off):

    - `scale: s` is `F.interpolate(x, scale_factor=s, mode=..., align_corners=...,
      recompute_scale_factor=None)`: the output is floor(N × s) (PyTorch's double-precision
      product), sampled s apart. A product that is not whole is an error (E310) unless
      `round: floor` is declared (there is no `ceil`: F.interpolate only rounds down). N × s
      is whole when it is a whole number as written and PyTorch's floor gives that number
      (100 × 0.07 = 7: PyTorch's 7.000000000000001 rounds down to 7), or when PyTorch's
      double product is itself whole; 100 × 0.29 = 29 is refused, as PyTorch computes
      28.999999999999996 and gives 28.
    - `size: [h, w]` and `to: layer` are `F.interpolate(x, size=(h, w), mode=...,
      align_corners=...)`.

    Modes are PyTorch's: `nearest` (its default; output pixel i reads input pixel
    floor(i / s), s the scale, or out / N), `nearest-exact` (floor((i + 0.5) / s)), `bilinear`
    and `bicubic` (A = -0.75), the last two with `align_corners`. Nearest modes copy
    PyTorch's very pixels. Bilinear and bicubic sample where PyTorch does up to float32
    rounding: both compute each output pixel's source position in float32, in a different
    order, so the positions differ by up to about 1e-7 × N pixels (none for scales that are
    powers of two), and the values by that times the difference between neighbouring input
    pixels. For unit-variance noise the largest difference from PyTorch is about 5e-6 at 16
    pixels, 5e-5 at 100, 5e-4 at 500 and 1e-3 at 2,000; smooth images differ less.
    A bicubic `scale` that leaves the size unchanged (floor(5 × 1.1) = 5 on both axes) is
    refused (E310): PyTorch resamples there, ONNX Runtime copies.
    """

    scale: Scales | None = attr(None, doc="multiply the height and width by this: a number or "
                                "[height, width] (give one of scale, size and to)", min=0,
                                max=4096)
    size: Pair | None = attr(None, doc="the output's height and width: an int or [height, "
                             "width]", min=1, max=MAX_SIDE)
    to: Ref | None = attr(None, doc="a layer or input whose height and width the output takes")
    mode: Literal["nearest", "nearest-exact", "bilinear", "bicubic"] = attr(
        "nearest", doc="interpolation, as PyTorch's F.interpolate: nearest (its default), "
        "nearest-exact, bilinear or bicubic")
    align_corners: bool = attr(False, doc="bilinear and bicubic: align the corner pixels' "
                               "centres (PyTorch's align_corners)")
    round: Literal["exact", "floor"] = attr("exact", doc="`floor`: a scale whose result is not "
                                            "whole is rounded down, as PyTorch does")

    foreign_names = ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "interpolate",
                     "UpSampling2D", "Resizing")
    foreign_attributes = {"scale_factor": "scale", "output_size": "size",
                          "interpolation": "mode"}

    main = "scale"

    def _examples(self) -> list[str]:
        return ["`scale: 2` doubles the height and width, `size: [64, 64]` sets them, "
                "`to: LAYER` takes those of another layer"]

    def _plan(self, xs: Sequence[Shape]) -> tuple[int, int]:
        """The output's (height, width); RuleError when the attributes don't fit the input."""
        x, ref = self._inputs(xs)
        given = self._one_of(("scale", "size", "to"))
        if self.align_corners and self.mode.startswith("nearest"):
            raise RuleError(
                f"align_corners applies to bilinear and bicubic, not to {self.mode}",
                code="E105", attr="align_corners",
                details=["nearest modes copy whole pixels: there are no corners to align "
                         "(PyTorch's F.interpolate refuses align_corners with them too)"],
                hints=["remove `align_corners`, or write `mode: bilinear`"])
        if given == "to":
            return ref[2], ref[3]
        if given == "size":
            return self.size
        return self._scaled(x[2:])

    def _scaled(self, hw) -> tuple[int, int]:
        products = [hw[i] * self.scale[i] for i in (0, 1)]  # as PyTorch: in double precision
        out, fault = self._scale_rule(hw)
        if fault == "not whole":
            raise self._not_whole(hw, products, out)
        if fault == "unchanged":
            lines = {i: f"floor({hw[i]} × {fmt_number(self.scale[i])}) = {out[i]}"
                     for i in (0, 1) if self.scale[i] != 1}
            raise RuleError(
                f"scale {self._scale_text()} leaves the {_hw(hw)} input at {_hw(out)}, which "
                "PyTorch's bicubic still resamples and ONNX Runtime copies", code="E310",
                attr="scale", details=_per_axis(lines),
                hints=["write `scale: 1` for a copy, or a scale that changes the size"])
        if fault == "empty":
            raise self._nothing_left(hw, products, out)
        return out

    def _scale_rule(self, hw) -> tuple[tuple[int, int], str | None]:
        """PyTorch's output (height, width) by this scale, floor(N × scale), and what is wrong
        with it, if anything: "not whole" (a product that is not whole, without `round:
        floor`), "unchanged" (bicubic at the input's size) or "empty" (no row or column).
        Builds no message, so that the hints can check their fixes with it."""
        out = tuple(math.floor(hw[i] * self.scale[i]) for i in (0, 1))
        if min(out) >= 1 and self.round == "exact" and \
                any(_whole_size(hw[i], self.scale[i]) is None for i in (0, 1)):
            return out, "not whole"
        if self.mode == "bicubic" and not self.align_corners and out == tuple(hw) \
                and self.scale != (1.0, 1.0):
            return out, "unchanged"
        return out, "empty" if min(out) < 1 else None

    def _nothing_left(self, hw, products, out) -> RuleError:
        """E310 for a scale that leaves no row or column, with fixes that check: the scale
        raised to 1/N on each axis left empty (the other kept), and the size."""
        empty = [i for i in (0, 1) if out[i] < 1]
        lines = {i: f"{hw[i]} × {fmt_number(self.scale[i])} = {_product(products[i])}, "
                    "rounded down to 0" for i in empty}
        if len(empty) == 2 and lines[0] == lines[1]:
            details = [f"{lines[0]}: no rows or columns left"]
        else:
            details = [f"{AXES[i]}: {lines[i]}: no {EDGES[i]} left" for i in empty]
        fixes = []
        # 1/N on each empty axis, raised by an ulp at a time where N × that double is not
        # whole (49 × float(1/49) is just below 1; 253 × s is 1 for no double s, so an exact
        # resize of 253 columns to 1 has no scale, only a size)
        raised = tuple(1 / hw[i] if i in empty else self.scale[i] for i in (0, 1))
        for _ in range(8):
            got = self._checks(hw, scale=raised)
            if got is not None:
                fixes.append(f"`scale: {_scales_text(raised)}` gives {_hw(got)}")
                break
            raised = tuple(math.nextafter(raised[i], math.inf) if i in empty else raised[i]
                           for i in (0, 1))
        size = tuple(max(o, 1) for o in out)
        fixes.append(f"`size: [{size[0]}, {size[1]}]` gives {_hw(size)}")
        return RuleError(f"scale {self._scale_text()} makes the {_hw(hw)} input {_hw(out)}",
                         code="E310", attr="scale", details=details, hints=["; ".join(fixes)])

    def _checks(self, hw, **changes) -> tuple[int, int] | None:
        """The output (height, width) of this resize with `changes` made to its attributes
        on a `hw` input, or None when that is refused too: a hint is shown only if it
        checks."""
        out, fault = dataclasses.replace(self, **changes)._scale_rule(hw)
        return out if fault is None else None

    def _scale_text(self) -> str:
        return _scales_text(self.scale)

    def _not_whole(self, hw, products, out) -> RuleError:
        bad = [i for i in (0, 1) if _whole_size(hw[i], self.scale[i]) is None]
        lines = {}
        up = list(out)  # PyTorch's size, plus one on each axis that is not whole
        for i in bad:
            n, s = hw[i], self.scale[i]
            line = f"{n} × {fmt_number(s)} = {_product(products[i])}"
            decimal = n * _decimal(s)
            up[i] = out[i] + 1
            if decimal.denominator == 1:  # whole as written, but PyTorch's floor is below it
                line += (f" as PyTorch computes it (in double precision: {fmt_number(s)} has "
                         f"no exact binary form), not {decimal}; it rounds that down to "
                         f"{out[i]}")
            else:
                line += " is not a whole number"
            lines[i] = line
        if len(bad) == 2 and lines[0] == lines[1]:
            details = [lines[0]]
        else:
            details = [f"{AXES[i]}: {lines[i]}" for i in bad]
        # each fix is shown only if it checks, with the size it gives
        fixes = []
        nice = _nice_scale(hw, self.scale)
        got = self._checks(hw, scale=(nice, nice)) if nice is not None else None
        if got is not None:
            fixes.append(f"`scale: {fmt_number(nice)}` gives {_hw(got)}")
        sizes = [f"`size: [{out[0]}, {out[1]}]`"]
        if tuple(up) != out:
            sizes.append(f"`size: [{up[0]}, {up[1]}]`")
        fixes.append(f"write {' or '.join(sizes)} instead of the scale")
        hints = ["; ".join(fixes)]
        if self._checks(hw, round="floor") == out:
            hints.append(f"or declare `round: floor` for {_hw(out)}, as F.interpolate rounds "
                         "down")
        return RuleError(
            f"scale {self._scale_text()} doesn't give a whole number of "
            f"{' and '.join(EDGES[i] for i in bad)} for a {_hw(hw)} input", code="E310",
            attr="scale", details=details, hints=hints)

    def infer(self, *xs: Shape) -> Shape:
        out = self._plan(xs)
        return (xs[0][0], xs[0][1], *out)

    def rounds(self, *xs: Shape) -> bool:
        if self.round != "floor" or self.scale is None:
            return False
        x = xs[0]
        return any(_whole_size(x[2 + i], self.scale[i]) is None for i in (0, 1))

    def equation(self, out: Shape, *xs: Shape) -> list[str]:
        x = xs[0]
        if self.to is not None:
            lines = [f"shape: the input's channels, and the height and width of `to: "
                     f"{self.to}` ({_hw(xs[1][2:])})"]
        elif self.size is not None:
            lines = [f"shape: the input's channels, and the given size {_hw(self.size)}"]
        else:
            lines = ["shape: output = floor(N × scale) per axis (F.interpolate with "
                     "scale_factor)"]
            for i in (0, 1):
                n, s = x[2 + i], self.scale[i]
                whole = _whole_size(n, s)
                # 100 × 0.07 is 7 (7.000000000000001 in double precision, floored to 7)
                p = whole if whole is not None else n * s
                note = ("a whole number" if whole is not None
                        else f"rounded down by `round: floor` to {out[2 + i]}")
                lines.append(f"  {AXES[i] + ':':7} {n} × {fmt_number(s)} = {_product(p)}, "
                             f"{note}")
        lines.append(f"  values: {self._sampling()}")
        return lines

    def _sampling(self) -> str:
        """How output pixel i is read, in words, for `netc explain`."""
        if self.mode == "nearest":
            return "output pixel i copies input pixel floor(i × scale⁻¹) (PyTorch's nearest)"
        if self.mode == "nearest-exact":
            return "output pixel i copies input pixel floor((i + 0.5) × scale⁻¹)"
        kind = "bilinear" if self.mode == "bilinear" else "bicubic (A = -0.75)"
        if self.align_corners:
            return (f"{kind} at x_in = i × (N - 1) / (out - 1): the corner pixels' centres "
                    "line up (align_corners)")
        return f"{kind} at x_in = (i + 0.5) × scale⁻¹ - 0.5 (pixel centres; half_pixel)"

    def label(self) -> str:
        if self.to is not None:
            what = f"to {self.to}"
        elif self.size is not None:
            what = f"to {self.size[0]}×{self.size[1]}"
        else:
            what = f"×{self._scale_text()}"
        return f"resize {what}" + ("" if self.mode == "nearest" else f", {self.mode}")

    # --- lowering ------------------------------------------------------------------------

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        """How each mode is lowered, and why:

        - nearest and nearest-exact: where every ratio out / N is a power of two (2x, 4x,
          0.5x...), one ONNX Resize (coordinate_transformation_mode asymmetric with
          nearest_mode floor for nearest; half_pixel with round_prefer_ceil for
          nearest-exact), whose arithmetic is then exact, as PyTorch's is. Otherwise netc
          works out, for each output row and column, the input row and column PyTorch's
          kernel reads (`_source_indices`), and gathers them (ONNX Gather of constant indices
          along the height, then the width): ONNX Runtime's Resize computes its source pixel
          in another order than PyTorch's float32 i × (N / out), and for some sizes reads
          another one (14 -> 4 columns: column 6 where PyTorch reads 7; nearest-exact
          likewise, 14 -> 23).
        - bilinear and bicubic: ONNX Resize (mode linear or cubic, cubic_coeff_a -0.75) with
          coordinate_transformation_mode half_pixel (PyTorch's source (i + 0.5) / scale -
          0.5; not pytorch_half_pixel, whose output of one pixel reads the input's first
          pixel where PyTorch reads its centre) or align_corners, and a float32 `scales`
          input chosen so that ONNX Runtime and ONNX's shape inference both give netc's size
          (`_float32_scale`: 10 × 1.3f is 12.9999995 in double precision, so the scale is
          nudged by an ulp or two, which moves the sampling by about 1e-7 of a pixel). As
          PyTorch's linear kernels do, bilinear copies an axis whose size is unchanged
          (scale 1 there), while bicubic samples it at the scale.

        ONNX's shape inference leaves the batch unknown after a Resize (it computes only the
        dimensions that have a value); netc's value_info states it.
        """
        x = xs[0]
        hw, out_hw = x.shape[2:], out.shape[2:]
        # the scale PyTorch samples with: the given one, else (None) N / out
        scales = self.scale if self.scale is not None else (None, None)
        if self.mode.startswith("nearest"):
            picks = [_source_indices(hw[i], out_hw[i], scales[i], self.mode) for i in (0, 1)]
            from fractions import Fraction

            ratios = [Fraction(out_hw[i], hw[i]) for i in (0, 1)]
            if all(_power_of_two(r) and picks[i] == _exact_indices(hw[i], out_hw[i], self.mode)
                   for i, r in enumerate(ratios)):
                # ONNX Runtime's arithmetic is exact for these ratios, and reads these pixels
                self._resize(b, x, out, [float(r) for r in ratios])
            else:
                self._gather(b, x, out, picks, hw)
            return
        # PyTorch's linear kernels copy an axis whose size is unchanged, whatever the scale
        # (UpSample.h, compute_source_index_and_lambda); its cubic ones sample it at the scale
        copies = self.mode == "bilinear"
        wanted = [1.0 if copies and out_hw[i] == hw[i] else
                  scales[i] if scales[i] is not None else out_hw[i] / hw[i] for i in (0, 1)]
        self._resize(b, x, out, [_float32_scale(hw[i], out_hw[i], wanted[i]) for i in (0, 1)])

    def _resize(self, b: Lowering, x: Tensor, out: Tensor, scales: list[float]) -> None:
        if self.mode == "nearest":
            attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                         nearest_mode="floor")
        elif self.mode == "nearest-exact":
            attrs = dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                         nearest_mode="round_prefer_ceil")
        else:
            attrs = dict(mode="linear" if self.mode == "bilinear" else "cubic",
                         coordinate_transformation_mode="align_corners" if self.align_corners
                         else "half_pixel")
            if self.mode == "bicubic":
                attrs["cubic_coeff_a"] = -0.75  # PyTorch's A (and ONNX's default)
        # `scales` is float32 whatever the model's precision (a float16 model too)
        b.node("Constant", [], f"{out.name}/scales", value_floats=[1.0, 1.0, *scales])
        b.node("Resize", [x.name, "", f"{out.name}/scales"], out.name, **attrs)

    def _gather(self, b: Lowering, x: Tensor, out: Tensor, picks, hw) -> None:
        current = x.name
        steps = [i for i in (0, 1) if picks[i] != list(range(hw[i]))]
        if not steps:
            b.node("Identity", [current], out.name)
            return
        for k, i in enumerate(steps):
            b.constant(f"{out.name}/{EDGES[i]}", picks[i])
            target = out.name if k == len(steps) - 1 else f"{out.name}/{EDGES[i]}_picked"
            b.node("Gather", [current, f"{out.name}/{EDGES[i]}"], target, axis=2 + i)
            current = target

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Resize": _torch_classes(torch)["Resize"]}

    def torch_module(self, x, nn, classes):
        interpolating = self.mode in ("bilinear", "bicubic")
        return classes.Resize(self.size, self.scale, self.mode,
                              self.align_corners if interpolating else None)


def _product(p: float) -> str:
    """A product N × scale as PyTorch has it: 22.5, 30, 28.999999999999996."""
    return fmt_number(p) if float(p).is_integer() else repr(float(p))


def _decimal(s: float) -> Fraction:
    """The scale as a spec writes it: the shortest decimal that reads back as `s` (0.07, not
    the binary 0.070000000000000006661...)."""
    from fractions import Fraction

    return Fraction(repr(float(s)))


def _whole_size(n: int, s: float) -> int | None:
    """The output size floor(n × s) when the product n × s is whole, else None.

    PyTorch's size is floor(n × s), the product in double precision. It counts as whole when
    that double is a whole number, or when the scale as written in decimal gives a whole
    number that PyTorch's floor also gives: 100 × 0.07 is 7, and 7.000000000000001 in
    double precision, which PyTorch rounds down to 7. 100 × 0.29 is 29 in decimal but
    28.999999999999996 in double precision, which PyTorch rounds down to 28: not whole (E310
    without `round: floor`), and 15 × 1.5 = 22.5 neither."""
    p = n * s
    out = math.floor(p)
    return out if p == out or n * _decimal(s) == out else None


def _scales_text(scale) -> str:
    """A scale pair as a spec writes it: `2`, or `[0.0625, 0.01]`."""
    sh, sw = scale
    return fmt_number(sh) if sh == sw else f"[{fmt_number(sh)}, {fmt_number(sw)}]"


def _per_axis(lines: dict[int, str]) -> list[str]:
    """Detail lines by axis (0, 1), each named once: `height and width: ...` when both say
    the same."""
    if len(lines) == 2 and lines[0] == lines[1]:
        return [f"height and width: {lines[0]}"]
    return [f"{AXES[i]}: {line}" for i, line in sorted(lines.items())]


def _nice_scale(hw, scale) -> float | None:
    """A simple scale near `scale` (both axes alike) that gives whole sizes, or None."""
    if scale[0] != scale[1]:
        return None
    candidates = [k / 4 for k in range(1, 33) if k != 4] + [1 / 8, 3 / 8, 1 / 16]
    upward = scale[0] > 1  # of two as near, the one that scales the same way
    for c in sorted(candidates, key=lambda c: (abs(c - scale[0]), -c if upward else c)):
        if c != scale[0] and all(hw[i] * c == math.floor(hw[i] * c) >= 1 for i in (0, 1)):
            return c
    return None


def _power_of_two(r: Fraction) -> bool:
    """Whether r is 2^k for an integer k (1, 2, 4, 1/2...)."""
    p, q = r.numerator, r.denominator
    return (p == 1 or q == 1) and p & (p - 1) == 0 and q & (q - 1) == 0


def _exact_indices(n: int, out: int, mode: str) -> list[int]:
    """The source rows of an ideal nearest (floor(i × n / out)) or nearest-exact
    (floor((i + 0.5) × n / out)) resize in exact arithmetic: what ONNX Resize computes when
    out / n is a power of two, since each step is then exact."""
    if mode == "nearest":
        return [min(i * n // out, n - 1) for i in range(out)]
    return [min((2 * i + 1) * n // (2 * out), n - 1) for i in range(out)]


def _source_indices(n: int, out: int, scale: float | None, mode: str) -> list[int]:
    """The input row (or column) PyTorch's nearest and nearest-exact read for each of `out`
    output ones, from `n`, as its kernels compute them (aten/src/ATen/native/UpSample.h:
    nearest_idx, nearest_neighbor_compute_source_index and its exact twin), in float32 as
    there: the step is float32(1 / scale) when a scale is given, else float32(n) / out; and
    nearest (not nearest-exact) copies when out is n and halves when out is 2n."""
    import numpy as np  # here: `netc check` never needs it

    if mode == "nearest" and out == n:
        return list(range(n))
    if mode == "nearest" and out == 2 * n:
        return [i >> 1 for i in range(out)]
    step = np.float32(1.0 / scale) if scale is not None else np.float32(n) / np.float32(out)
    where = np.arange(out, dtype=np.float32)
    if mode == "nearest-exact":
        where = where + np.float32(0.5)
    picks = np.floor(where * step).astype(np.int64)
    return np.minimum(picks, n - 1).tolist()


def _float32_scale(n: int, out: int, wanted: float) -> float:
    """A float32 scale, as near `wanted` as there is, with which both ONNX Runtime (the output
    size floor(float32(n) × scale), a float32 product) and ONNX's shape inference (the same
    product in double precision) give `out`."""
    import numpy as np

    s = np.float32(wanted)
    for _ in range(256):
        f32 = int(np.floor(np.float32(n) * s))
        f64 = math.floor(n * float(s))
        if f32 == out and f64 == out:
            return float(s)
        s = np.nextafter(s, np.float32(np.inf) if min(f32, f64) < out else np.float32(0))
    raise AssertionError(f"no float32 scale gives {n} -> {out} (near {wanted})")


# --- crop ------------------------------------------------------------------------------------


def centre_offset(have: int, want: int) -> int:
    """Where torchvision's CenterCrop starts: int(round((have - want) / 2.0)), Python's
    round (half to even: a difference of 1 starts at 0, of 3 at 2, of 5 at 2)."""
    return int(round((have - want) / 2.0))


@layer("crop")
@layer_fields
class Crop(_Resampling):
    """Keeps a window of the height and width: a centre crop, as torchvision's CenterCrop, to
    `size` or to the size of the layer `to` names (the original U-Net crops the encoder's map
    to the decoder's), or `amount` pixels removed from each side; ONNX Slice.

    `- crop: {to: up4}`; `- crop: 56` (56x56 from the centre); `- crop: {amount: [0, 0, 1,
    1]}` drops the last row and column. A centre crop starts at top = int(round((H - h) / 2)),
    left = int(round((W - w) / 2)) (torchvision.transforms.functional.center_crop; Python's
    round, half to even), and keeps h rows and w columns from there.
    """

    size: Pair | None = attr(None, doc="a centre crop to this height and width: an int or "
                             "[height, width] (give one of size, to and amount)", min=1,
                             max=MAX_SIDE)
    to: Ref | None = attr(None, doc="a centre crop to the height and width of this layer or "
                          "input")
    amount: Sides | None = attr(None, doc="pixels removed from each side: an int, [h, w] or "
                                "[top, left, bottom, right]", min=0, max=MAX_SIDE)

    foreign_names = ("CenterCrop", "center_crop", "Cropping2D")
    foreign_attributes = {"output_size": "size"}

    main = "size"

    def _examples(self) -> list[str]:
        return ["`size: 56` keeps the centre 56x56, `to: LAYER` the centre at that layer's "
                "size, `amount: [0, 0, 1, 1]` removes the last row and column"]

    def _plan(self, xs: Sequence[Shape]) -> tuple[int, int, int, int]:
        """The rows and columns removed: (top, left, bottom, right)."""
        x, ref = self._inputs(xs)
        given = self._one_of(("size", "to", "amount"))
        hw = x[2:]
        if given == "amount":
            top, left, bottom, right = self.amount
            for i, (a, b) in enumerate(((top, bottom), (left, right))):
                if a + b >= hw[i]:
                    raise RuleError(
                        f"removing {a + b} {EDGES[i]} of a {_hw(hw)} input leaves none",
                        code="E310", attr="amount",
                        details=[f"{AXES[i]}: {hw[i]} - {a} - {b} = {hw[i] - a - b}"],
                        hints=[f"remove at most {hw[i] - 1} {EDGES[i]} in all"])
            return top, left, bottom, right
        want = ref[2:] if given == "to" else self.size
        if want[0] > hw[0] or want[1] > hw[1]:
            what = f"`to: {self.to}`'s {_hw(want)}" if given == "to" else _hw(want)
            raise RuleError(
                f"can't crop a {_hw(hw)} input to {what}: the crop is larger", code="E310",
                attr=given, details=[f"{AXES[i]}: {want[i]} > {hw[i]}" for i in (0, 1)
                                     if want[i] > hw[i]],
                hints=self._larger_hints(x, ref) if given == "to" else
                [f"crop to at most {_hw(hw)}: `size: [{min(want[0], hw[0])}, "
                 f"{min(want[1], hw[1])}]` keeps the centre "
                 f"{min(want[0], hw[0])}x{min(want[1], hw[1])}"])
        top, left = centre_offset(hw[0], want[0]), centre_offset(hw[1], want[1])
        return top, left, hw[0] - want[0] - top, hw[1] - want[1] - left

    def _larger_hints(self, x: Shape, ref: Shape) -> list[str]:
        """The fixes of a `crop: {to: ...}` whose target is larger on some axis, each shown
        only if it checks: a pad up to it (larger on both axes), else a crop of the axis that
        is larger here and then a pad; and a resize to it."""
        hw, want = x[2:], ref[2:]
        hints = []
        if want[0] >= hw[0] and want[1] >= hw[1]:
            if _fits(Pad(to=self.to), x, ref):
                hints.append(f"`pad: {{to: {self.to}}}` pads up to it instead")
        else:
            hints += _crop_then_pad(x, ref, self.to, Pad(to=self.to), "this crop")
        if _fits(Resize(to=self.to), x, ref):
            hints.append(f"{'or ' if hints else ''}`resize: {{to: {self.to}}}` interpolates "
                         f"the {_hw(hw)} input to {_hw(want)}")
        return hints

    def infer(self, *xs: Shape) -> Shape:
        top, left, bottom, right = self._plan(xs)
        x = xs[0]
        return (x[0], x[1], x[2] - top - bottom, x[3] - left - right)

    def equation(self, out: Shape, *xs: Shape) -> list[str]:
        top, left, bottom, right = self._plan(xs)
        x = xs[0]
        if self.amount is not None:
            lines = [f"shape: {x[2]} - {top} - {bottom} = {out[2]} rows, {x[3]} - {left} - "
                     f"{right} = {out[3]} columns"]
        else:
            source = f"`to: {self.to}`" if self.to is not None else "`size`"
            lines = [f"shape: a centre crop to {_hw(out[2:])} ({source}), as torchvision's "
                     "CenterCrop:",
                     f"  top  = round(({x[2]} - {out[2]}) / 2) = {top}",
                     f"  left = round(({x[3]} - {out[3]}) / 2) = {left}"]
        lines.append(f"  keeps rows {top} to {x[2] - bottom - 1} and columns {left} to "
                     f"{x[3] - right - 1} (counting from 0)")
        return lines

    def label(self) -> str:
        if self.to is not None:
            return f"crop to {self.to}"
        if self.size is not None:
            return f"crop {self.size[0]}×{self.size[1]}"
        return f"crop {list(self.amount)}"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0]
        top, left, bottom, right = self._plan([v.shape for v in xs])
        b.constant(f"{out.name}/starts", [top, left])
        b.constant(f"{out.name}/ends", [x.shape[2] - bottom, x.shape[3] - right])
        b.constant(f"{out.name}/axes", [2, 3])
        b.node("Slice", [x.name, f"{out.name}/starts", f"{out.name}/ends", f"{out.name}/axes"],
               out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Crop": _torch_classes(torch)["Crop"]}

    def torch_module(self, x, nn, classes):
        return classes.Crop(self.size, self.amount)


# --- pad -------------------------------------------------------------------------------------


def pad_to(have: int, want: int) -> tuple[int, int]:
    """Padding (before, after) that takes `have` pixels to `want`, the extra pixel of an odd
    difference after, as the common PyTorch U-Net does (F.pad(x1, [diffX // 2,
    diffX - diffX // 2, ...]))."""
    diff = want - have
    return diff // 2, diff - diff // 2


ONNX_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@layer("pad")
@layer_fields
class Pad(_Resampling):
    """Pads the height and width, as PyTorch's F.pad: by `amount` pixels on each side, or up
    to the size of the layer `to` names (an odd difference's extra pixel at the bottom and
    right, as the common PyTorch U-Net pads its upsampled map to its skip's); ONNX Pad.

    `- pad: 1` (one pixel of zeros all round); `- pad: {amount: [0, 0, 1, 1], mode:
    replicate}`; `- pad: {to: down3}`. Modes are PyTorch's: constant (`value`, default 0),
    reflect (the pixels mirrored about the edge one, which is not repeated: each pad must be
    smaller than the input) and replicate (the edge pixel repeated; ONNX's `edge`).
    """

    amount: Sides | None = attr(None, doc="pixels added on each side: an int, [h, w] or "
                                "[top, left, bottom, right] (give amount or to)", min=0,
                                max=MAX_SIDE)
    to: Ref | None = attr(None, doc="pad up to the height and width of this layer or input, an "
                          "odd difference's extra pixel at the bottom and right")
    mode: Literal["constant", "reflect", "replicate"] = attr(
        "constant", doc="constant (value), reflect (mirrored about the edge pixel) or "
        "replicate (the edge pixel repeated), as PyTorch's F.pad")
    value: float = attr(0.0, doc="the value of constant padding")

    foreign_names = ("ZeroPad2d", "ZeroPadding2D", "ConstantPad2d", "ReflectionPad2d",
                     "ReplicationPad2d")
    foreign_attributes = {
        "padding": ("amount", "netc's order is [top, left, bottom, right]; PyTorch's padding "
                    "tuples are (left, right, top, bottom)"),
        "padding_mode": "mode"}

    main = "amount"

    def _examples(self) -> list[str]:
        return ["`amount: 1` pads one pixel all round, `amount: [0, 0, 1, 1]` the bottom and "
                "right, `to: LAYER` up to that layer's size"]

    def _plan(self, xs: Sequence[Shape]) -> tuple[int, int, int, int]:
        """The pixels added: (top, left, bottom, right)."""
        x, ref = self._inputs(xs)
        given = self._one_of(("amount", "to"))
        if self.value != 0 and self.mode != "constant":
            raise RuleError(f"`value` is the value of constant padding; {self.mode} padding "
                            "copies the input's pixels", code="E105", attr="value",
                            hints=["remove `value`, or write `mode: constant`"])
        hw = x[2:]
        if given == "amount":
            pads = self.amount
        else:
            want = ref[2:]
            if want[0] < hw[0] or want[1] < hw[1]:
                raise RuleError(
                    f"can't pad a {_hw(hw)} input to `to: {self.to}`'s {_hw(want)}: it is "
                    "smaller", code="E310", attr="to",
                    details=[f"{AXES[i]}: {want[i]} < {hw[i]}" for i in (0, 1)
                             if want[i] < hw[i]], hints=self._smaller_hints(x, ref))
            (top, bottom), (left, right) = pad_to(hw[0], want[0]), pad_to(hw[1], want[1])
            pads = (top, left, bottom, right)
        if self.mode == "reflect":
            for k, p in enumerate(pads):
                i = k % 2
                if p >= hw[i]:
                    side = ("top", "left", "bottom", "right")[k]
                    raise RuleError(
                        f"reflect padding of {p} at the {side} needs more than {p} "
                        f"{EDGES[i]}, and the input has {hw[i]}", code="E310",
                        attr=given,
                        details=[f"reflect mirrors the {EDGES[i]} about the edge one without "
                                 f"repeating it, so it pads by at most {hw[i] - 1} (PyTorch "
                                 "refuses more too)"],
                        hints=["`mode: replicate` pads by any amount, or pad less"])
        return tuple(pads)

    def _smaller_hints(self, x: Shape, ref: Shape) -> list[str]:
        """The fixes of a `pad: {to: ...}` whose target is smaller on some axis, each shown
        only if it checks: a crop down to it (smaller on both axes), else a crop of the axis
        that is smaller and then this pad; and a resize to it."""
        hw, want = x[2:], ref[2:]
        hints = []
        if want[0] <= hw[0] and want[1] <= hw[1]:
            if _fits(Crop(to=self.to), x, ref):
                hints.append(f"`crop: {{to: {self.to}}}` crops down to it instead")
        else:
            hints += _crop_then_pad(x, ref, self.to, self, "this pad")
        if _fits(Resize(to=self.to), x, ref):
            hints.append(f"{'or ' if hints else ''}`resize: {{to: {self.to}}}` interpolates "
                         f"the {_hw(hw)} input to {_hw(want)}")
        return hints

    def infer(self, *xs: Shape) -> Shape:
        top, left, bottom, right = self._plan(xs)
        x = xs[0]
        return (x[0], x[1], x[2] + top + bottom, x[3] + left + right)

    def equation(self, out: Shape, *xs: Shape) -> list[str]:
        top, left, bottom, right = self._plan(xs)
        x = xs[0]
        lines = [f"shape: {x[2]} + {top} + {bottom} = {out[2]} rows, {x[3]} + {left} + "
                 f"{right} = {out[3]} columns"]
        if self.to is not None:
            lines.append(f"  up to `to: {self.to}` ({_hw(xs[1][2:])}): each difference halved, "
                         "the extra pixel of an odd one at the bottom or right")
        fill = {"constant": f"the value {fmt_number(self.value)}",
                "reflect": "the input mirrored about its edge pixel",
                "replicate": "the edge pixel repeated"}[self.mode]
        lines.append(f"  filled with {fill}")
        return lines

    def label(self) -> str:
        what = f"to {self.to}" if self.to is not None else str(list(self.amount))
        return f"pad {what}" + ("" if self.mode == "constant" else f", {self.mode}")

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        top, left, bottom, right = self._plan([v.shape for v in xs])
        b.constant(f"{out.name}/pads", [0, 0, top, left, 0, 0, bottom, right])
        inputs = [xs[0].name, f"{out.name}/pads"]
        if self.mode == "constant" and self.value != 0:
            b.float_constant(f"{out.name}/value", [self.value], shape=())
            inputs.append(f"{out.name}/value")
        b.node("Pad", inputs, out.name, mode=ONNX_PAD_MODES[self.mode])

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Pad": _torch_classes(torch)["Pad"]}

    def torch_module(self, x, nn, classes):
        return classes.Pad(self.amount, self.mode, self.value)


def _fits(layer: _Resampling, *xs: Shape) -> Shape | None:
    """`layer`'s output shape for inputs `xs`, or None when it doesn't fit them (a hint is
    shown only if it checks)."""
    try:
        return layer.infer(*xs)
    except RuleError:
        return None


def _crop_then_pad(x: Shape, ref: Shape, to: str, pad: Pad, where: str) -> list[str]:
    """A fix for a `to:` target larger than `x` on one axis and smaller on the other: a centre
    crop of the axis that is too large, then `pad` (a pad with `to:`) up to the target; [] if
    that doesn't check."""
    cut = (min(x[2], ref[2]), min(x[3], ref[3]))
    cropped = _fits(Crop(size=cut), x)
    if cropped is None or _fits(pad, cropped, ref) is None:
        return []
    crop = f"`crop: {{size: [{cut[0]}, {cut[1]}]}}`"
    if where == "this crop":
        return [f"make this a {crop} (the centre {_hw(cut)}) and follow it with `pad: {{to: "
                f"{to}}}`, which pads that to {_hw(ref[2:])}"]
    return [f"put a {crop} before this pad (the centre {_hw(cut)}), which it then pads to "
            f"{_hw(ref[2:])}"]


# --- the PyTorch modules ---------------------------------------------------------------------


@lru_cache(maxsize=None)
def _torch_classes(torch) -> dict[str, type]:
    nn, F = torch.nn, torch.nn.functional

    class Resize(nn.Module):
        """F.interpolate to a size, by a scale, or (given a second input) to that input's
        height and width."""

        def __init__(self, size, scale, mode: str, align_corners) -> None:
            super().__init__()
            self.size = tuple(size) if size is not None else None
            self.scale = tuple(scale) if scale is not None else None
            self.mode, self.align_corners = mode, align_corners

        def forward(self, x, ref=None):
            size = tuple(ref.shape[-2:]) if ref is not None else self.size
            return F.interpolate(x, size=size, scale_factor=None if size else self.scale,
                                 mode=self.mode, align_corners=self.align_corners,
                                 recompute_scale_factor=None)

        def extra_repr(self) -> str:
            what = f"size={self.size}" if self.size else (
                f"scale_factor={self.scale}" if self.scale else "size=of the second input")
            return f"{what}, mode={self.mode!r}, align_corners={self.align_corners}"

    class Crop(nn.Module):
        """A centre crop (torchvision's CenterCrop) to a size or to a second input's height
        and width, or given amounts (top, left, bottom, right) removed."""

        def __init__(self, size, amount) -> None:
            super().__init__()
            self.size = tuple(size) if size is not None else None
            self.amount = tuple(amount) if amount is not None else None

        def forward(self, x, ref=None):
            height, width = x.shape[-2:]
            if self.amount is not None:
                top, left, bottom, right = self.amount
                return x[..., top:height - bottom, left:width - right]
            h, w = tuple(ref.shape[-2:]) if ref is not None else self.size
            top, left = centre_offset(height, h), centre_offset(width, w)
            return x[..., top:top + h, left:left + w]

        def extra_repr(self) -> str:
            return f"amount={self.amount}" if self.amount else f"size={self.size}"

    class Pad(nn.Module):
        """F.pad by (top, left, bottom, right), or (given a second input) up to its height and
        width."""

        def __init__(self, amount, mode: str, value: float) -> None:
            super().__init__()
            self.amount = tuple(amount) if amount is not None else None
            self.mode, self.value = mode, value

        def forward(self, x, ref=None):
            if ref is not None:
                (top, bottom), (left, right) = (pad_to(x.shape[-2], ref.shape[-2]),
                                                pad_to(x.shape[-1], ref.shape[-1]))
            else:
                top, left, bottom, right = self.amount
            pads = [left, right, top, bottom]
            if self.mode == "constant":
                return F.pad(x, pads, mode="constant", value=self.value)
            return F.pad(x, pads, mode=self.mode)

        def extra_repr(self) -> str:
            return f"amount={self.amount}, mode={self.mode!r}, value={self.value}"

    return {"Resize": Resize, "Crop": Crop, "Pad": Pad}
