"""Convolution, and transposed convolution."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import lru_cache

from ..errors import Lint, RuleError, counted
from .base import (Init, Layer, Lowering, Padding, Pair, Round, Shape, Site, Tensor, WeightSpec,
                   attr, bias_lint, layer, layer_fields, need_rank)
from .window import AXES, EDGE, SAME, Windowed, pads_of, rounding_of, spatial


# nn.Conv2d's and nn.ConvTranspose2d's (and Keras's Conv2D's) names for the attributes of a
# conv and a transposed conv, which E102 offers first: PyTorch's `padding` is `pad` in both
# (the same numbers: on a transposed conv it crops the output as PyTorch's does), where the
# nearest spelling on a convtranspose, `output_padding`, would grow the output instead
CONV_NAMES = {"padding": "pad", "kernel_size": "kernel", "out_channels": "filters",
              "strides": "stride", "dilation_rate": "dilation", "use_bias": "bias",
              "kernel_initializer": "init"}


@layer("conv")
@layer_fields
class Conv(Windowed):
    """2-D convolution over an NCHW input; lowers to ONNX Conv.

    `- conv: {filters: 6, kernel: 5}` turns N×1×32×32 into N×6×28×28.
    Weights: `weight` (filters, channels/groups, kh, kw) and `bias` (filters), as in PyTorch.
    """

    filters: int = attr(doc="number of filters (output channels)", min=1, max=1 << 20)
    kernel: Pair = attr(doc="filter size F: an int or [height, width]", min=1, max=4096)
    stride: Pair = attr(1, doc="step between windows: an int or [height, width]", min=1, max=4096)
    pad: Padding = attr(0, doc="zero padding: int, [h, w], [top, left, bottom, right], same, "
                        "same_lower or valid", min=0, max=4096)
    dilation: Pair = attr(1, doc="spacing between filter taps: an int or [height, width]",
                          min=1, max=4096)
    groups: int = attr(1, doc="channel groups (groups = channels: depthwise)", min=1, max=1 << 20)
    bias: bool = attr(True, doc="add a learned bias per filter")
    round: Round = attr("exact", doc="what to do when the window doesn't tile the input")
    init: Init = attr("he_normal", doc="initial weights: he_normal, he_uniform, glorot_normal, "
                      "glorot_uniform, zeros, ones, normal(STD), uniform(A), constant(C) or "
                      "gaussian(SIGMA) (fixed blur kernels)")

    main = "filters"
    what = "filter"
    foreign_names = ("Convolution", "Convolution2D")
    foreign_attributes = CONV_NAMES
    absorbs_affine = True
    drawn_by_default = True  # (netc run --maps: the activation maps of the course)

    @property
    def window_stride(self) -> tuple[int, int]:
        return self.stride

    @property
    def window_dilation(self) -> tuple[int, int]:
        return self.dilation

    def _geometry(self, x: Shape):
        pads = pads_of(self.pad, x[2:], self.kernel, self.stride, self.dilation)
        out_hw, extra = spatial(x[2:], self.kernel, self.stride, pads, self.dilation,
                                rounding_of(self.pad, self.round))
        return out_hw, (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1])

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), "conv")
        check_groups(x[1], self.filters, self.groups)
        out_hw, _ = self._geometry(x)
        return (x[0], self.filters, *out_hw)

    def weights(self, x: Shape) -> list[WeightSpec]:
        per_group = x[1] // self.groups
        kh, kw = self.kernel
        fan_in, fan_out = per_group * kh * kw, self.filters * kh * kw  # as PyTorch counts them
        ws = [WeightSpec("weight", (self.filters, per_group, kh, kw), self.init, fan_in, fan_out)]
        if self.bias:
            ws.append(WeightSpec("bias", (self.filters,), "zeros", fan_in, fan_out))
        return ws

    def macs(self, out: Shape, x: Shape) -> int:
        kh, kw = self.kernel
        return self.filters * out[2] * out[3] * (x[1] // self.groups) * kh * kw

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        _, pads = self._geometry(xs[0].shape)
        inputs = [xs[0].name, w["weight"]] + ([w["bias"]] if self.bias else [])
        b.node("Conv", inputs, out.name, kernel_shape=list(self.kernel),
               strides=list(self.stride), pads=list(pads), dilations=list(self.dilation),
               group=self.groups)

    def torch_module(self, x, nn, classes):
        _, pads = self._geometry(x)  # the extra end padding of `round: ceil` included
        return classes.Conv2d(x[1], self.filters, self.kernel, self.stride, pads,
                              self.dilation, self.groups, self.bias)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return _torch_classes(torch)

    def label(self) -> str:
        return f"{super().label()}, {self.filters}"

    def macs_formula(self, out: Shape, x: Shape) -> str:
        kh, kw = self.kernel
        per_group = x[1] // self.groups
        return (f"{self.filters} filters × {out[2]}x{out[3]} positions × {per_group} input "
                "channels"
                + (f" (of {x[1]}, in {self.groups} groups)" if self.groups > 1 else "")
                + f" × {kh}x{kw} taps")

    def partial_window_note(self, axis: str, extra: int) -> list[str]:
        edge = EDGE[axis] + "s" * (extra > 1)
        return [f"  ({axis}: ONNX pads the partial last window with {extra} more {edge} of "
                "zeros at the end)"]

    def lints(self, site: Site) -> list[Lint]:
        """W202 (a bias that the batchnorm after it cancels), then the window's lints."""
        found = bias_lint(self, site, "channel")
        return ([found] if found else []) + super().lints(site)


@layer("convtranspose")
@layer_fields
class ConvTranspose(Layer):
    """2-D transposed convolution over an NCHW input (PyTorch's ConvTranspose2d); lowers to
    ONNX ConvTranspose.

    `- convtranspose: {filters: 64, kernel: 2, stride: 2}` turns N×128×28×28 into N×64×56×56.
    Each input pixel adds its filter, scaled, into the output at `stride` steps; the padding
    then crops the result, and `output_padding` adds rows and columns at its end:
    out = (N - 1)·S - pad_before - pad_after + D·(F - 1) + output_padding + 1 per axis
    (PyTorch's ConvTranspose2d docs, the ONNX ConvTranspose spec). Always a whole number, so
    there is no `round`. Weights: `weight` (channels, filters/groups, kh, kw) and `bias`
    (filters), as in PyTorch. Errors: E303 (groups), E309 (output_padding not smaller than
    the stride or the dilation), E105 (`pad: same` with a filter narrower than the stride;
    `init: gaussian(SIGMA)`, a conv's blur kernels), E302 (padding that crops the whole
    output).
    """

    filters: int = attr(doc="number of filters (output channels)", min=1, max=1 << 20)
    kernel: Pair = attr(doc="filter size F: an int or [height, width]", min=1, max=4096)
    stride: Pair = attr(1, doc="upsampling step S: an int or [height, width]", min=1, max=4096)
    pad: Padding = attr(0, doc="rows and columns cropped from the output: int, [h, w], [top, "
                        "left, bottom, right], same (an output of N × stride), same_lower or "
                        "valid", min=0, max=4096)
    output_padding: Pair = attr(0, doc="rows and columns added at the end of the output, "
                                "smaller than the stride or the dilation: an int or [height, "
                                "width]", min=0, max=4095)
    dilation: Pair = attr(1, doc="spacing between filter taps: an int or [height, width]",
                          min=1, max=4096)
    groups: int = attr(1, doc="channel groups (groups = channels: depthwise)", min=1, max=1 << 20)
    bias: bool = attr(True, doc="add a learned bias per filter")
    init: Init = attr("he_normal", doc="initial weights: he_normal, he_uniform, glorot_normal, "
                      "glorot_uniform, zeros, ones, normal(STD), uniform(A) or constant(C)")

    main = "filters"
    # (`ConvTranspose2d` and `conv_transpose2d` are netc's name once `_plain` drops the `_`
    # and the `2d`)
    foreign_names = ("deconv", "deconvolution", "Conv2DTranspose", "conv2d_transpose",
                     "TransposedConv2d", "TransposeConv2d")
    foreign_attributes = CONV_NAMES
    drawn_by_default = True  # (netc run --maps: its output channels are maps, as a conv's)
    # absorbs_affine stays False: its weight has the output channels on axis 1, not 0, which
    # fold.py's --fold-bn doesn't handle

    @property
    def spans(self) -> tuple[int, int]:
        """The pixels the filter spans: dilation × (kernel - 1) + 1 per axis."""
        return tuple(self.dilation[i] * (self.kernel[i] - 1) + 1 for i in (0, 1))

    def crops(self, x: Shape) -> tuple[int, int, int, int]:
        """(top, left, bottom, right): the pixels cropped from the output (ONNX's `pads`).

        `same` makes the output N × stride as ONNX's auto_pad SAME_UPPER does for
        ConvTranspose: total = S·(N - 1) + output_padding + span - N·S = span +
        output_padding - S per axis, total // 2 at the start and the rest at the end
        (`same_lower`, SAME_LOWER: the larger half at the start). E105 when that total is
        negative: cropping can't make the output larger."""
        if self.pad == "valid":
            return (0, 0, 0, 0)
        if self.pad not in SAME:
            return self.pad
        short = self._same_short_axis()
        if short is not None:
            raise self._same_too_short(x, short)
        halves = []
        for i in (0, 1):
            total = self.spans[i] + self.output_padding[i] - self.stride[i]
            small, large = total // 2, total - total // 2
            halves.append((large, small) if self.pad == "same_lower" else (small, large))
        (top, bottom), (left, right) = halves
        return (top, left, bottom, right)

    def _same_short_axis(self) -> int | None:
        """The first axis along which `pad: same` can't reach N × stride (the filter spans
        less than stride - output_padding: E105), or None."""
        if self.pad not in SAME:
            return None
        return next((i for i in (0, 1)
                     if self.spans[i] + self.output_padding[i] < self.stride[i]), None)

    def _sizes(self, x_hw, crops) -> tuple[int, int]:
        return tuple(transposed_size(x_hw[i], self.kernel[i], self.stride[i], crops[i],
                                     crops[i + 2], self.dilation[i], self.output_padding[i])
                     for i in (0, 1))

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), self.kind)
        check_groups(x[1], self.filters, self.groups)
        self._check_output_padding(x)
        crops = self.crops(x)
        out_hw = self._sizes(x[2:], crops)
        if min(out_hw) < 1:
            raise self._cropped_away(x, crops, out_hw)
        return (x[0], self.filters, *out_hw)

    # --- the errors, each with fixes that were checked to work ---------------------------

    def _out_hw(self, x: Shape) -> tuple[int, int] | None:
        """The output's height and width on an N×C×H×W input, or None where `infer` refuses
        it: the shape rule without its errors. The errors' fixes are tried with this, never
        with `infer`: a failing `infer` builds an error, whose search for fixes would call
        `infer` again (a search per fix tried, per pixel of padding: exponential time)."""
        if x[1] % self.groups or self.filters % self.groups or self._late_output_padding() \
                or self._same_short_axis() is not None:
            return None
        out_hw = self._sizes(x[2:], self.crops(x))
        return out_hw if min(out_hw) >= 1 else None

    def _gives(self, x: Shape, **changes) -> str | None:
        """The output size (`HxW`) of this layer with `changes`, or None if it fails too
        (computed without building an error: `_out_hw`)."""
        out_hw = dataclasses.replace(self, **changes)._out_hw(x)
        return None if out_hw is None else f"{out_hw[0]}x{out_hw[1]}"

    def _late_output_padding(self) -> list[int]:
        """The axes whose output_padding is neither below the stride nor the dilation."""
        op, s, d = self.output_padding, self.stride, self.dilation
        return [i for i in (0, 1) if op[i] >= s[i] and op[i] >= d[i]]

    def _check_output_padding(self, x: Shape) -> None:
        """E309 unless output_padding < stride or output_padding < dilation on each axis
        (PyTorch's rule; ONNX's spec says the same): a conv with stride S gives one output
        size for S input sizes, and output_padding says which one to restore."""
        op, s, d = self.output_padding, self.stride, self.dilation
        bad = self._late_output_padding()
        if not bad:
            return
        alike = len(bad) == 2 and (op[0], s[0], d[0]) == (op[1], s[1], d[1])
        i = bad[0]
        where = "" if alike else f" along the {AXES[i]}"
        message = (f"output_padding {op[i]}{where} must be smaller than the stride ({s[i]}) or "
                   f"the dilation ({d[i]})")
        details = [f"{AXES[j]}: output_padding {op[j]}, stride {s[j]}, dilation {d[j]}"
                   for j in bad] if len(bad) == 2 and not alike else []
        if s[i] > 1:
            details.append(f"a conv with stride {s[i]} gives one output size for {s[i]} input "
                           f"sizes; output_padding, 0 to {s[i] - 1}, says which of them the "
                           "transposed conv restores")
        elif d[i] == 1:
            details.append("with stride 1 and dilation 1 each output size comes from one input "
                           "size: output_padding must be 0")
        allowed = tuple(min(op[j], max(s[j], d[j]) - 1) for j in (0, 1))
        stride = tuple(max(s[j], op[j] + 1) for j in (0, 1))
        fixes = []
        gives = self._gives(x, output_padding=allowed)
        if gives:
            fixes.append(f"output_padding: {_pair(allowed)} gives {gives} (the largest allowed)")
        gives = self._gives(x, stride=stride)
        if gives:
            fixes.append(f"{'or ' if fixes else ''}stride: {_pair(stride)} gives {gives}")
        raise RuleError(message, code="E309", attr="output_padding", details=details,
                        hints=fixes)

    def _same_too_short(self, x: Shape, i: int) -> RuleError:
        s, op, span = self.stride[i], self.output_padding[i], self.spans[i]
        reach = f"{span} + output_padding {op}" if op else f"{span}"
        pixels = "pixel" if span + op == 1 else "pixels"
        fixes = []
        need = s - op  # the span that reaches N × S
        # per axis, the smallest kernel whose span reaches stride - output_padding
        kernel = tuple(max(self.kernel[j], 1 + -(-(self.stride[j] - self.output_padding[j] - 1)
                                                 // self.dilation[j])) for j in (0, 1))
        gives = self._gives(x, kernel=kernel)
        if gives:
            fixes.append(f"kernel: {_pair(kernel)} gives {gives}")
        gives = self._gives(x, pad=(0, 0, 0, 0))
        if gives:
            fixes.append(f"{'or ' if fixes else ''}pad: 0 gives {gives}")
        return RuleError(
            f"`pad: {self.pad}` can't make the output N × stride: along the {AXES[i]} the "
            f"filter spans {reach} {pixels}, less than the stride ({s})",
            code="E105", attr="pad",
            details=[f"{AXES[i]}: (N - 1) × {s} + {span + op} = N × {s} - {need - span}: "
                     "padding only crops the output, so it can't reach N × stride"],
            hints=fixes)

    def _cropped_away(self, x: Shape, crops, out_hw) -> RuleError:
        full = self._sizes(x[2:], (0, 0, 0, 0))
        bad = [i for i in (0, 1) if out_hw[i] < 1]
        details = []
        for i in bad:
            n, k, s, d, op = (x[2 + i], self.kernel[i], self.stride[i], self.dilation[i],
                              self.output_padding[i])
            details.append(f"{AXES[i]}: ({n} - 1) × {s} - {crops[i]} - {crops[i + 2]} + {d} × "
                           f"({k} - 1) + {op} + 1 = {out_hw[i]}, less than 1")
        fixes = []
        # the largest padding, the same on every side, that leaves a pixel on both axes:
        # 2·p <= full - 1 (below the largest crop asked for)
        p = min(max(crops) - 1, (full[0] - 1) // 2, (full[1] - 1) // 2)
        gives = self._gives(x, pad=(p,) * 4) if p >= 0 else None
        if gives:
            fixes.append(f"pad: {p} gives {gives}")
        need = list(self.kernel)
        for i in bad:  # the smallest kernel that leaves a pixel: d·(k - 1) >= 1 + crops - rest
            rest = (x[2 + i] - 1) * self.stride[i] + self.output_padding[i] + 1
            need[i] = 1 + -(-(1 + crops[i] + crops[i + 2] - rest) // self.dilation[i])
        gives = self._gives(x, kernel=tuple(need))
        if gives:
            fixes.append(f"{'or ' if fixes else ''}kernel: {_pair(need)} gives {gives}")
        return RuleError(
            f"the padding crops the whole output: the transposed conv makes {full[0]}x{full[1]} "
            f"from the {x[2]}x{x[3]} input and the padding removes {crops[0] + crops[2]} rows and "
            f"{crops[1] + crops[3]} columns", code="E302", attr="pad", details=details,
            hints=fixes)

    # --- weights, cost, lowering ----------------------------------------------------------

    def weights(self, x: Shape) -> list[WeightSpec]:
        """`weight` (channels, filters/groups, kh, kw) and `bias` (filters). E105 for
        `init: gaussian(SIGMA)`, a conv's blur kernels: a transposed conv adds each input
        pixel's kernel into the output at stride steps, so a kernel of taps summing to 1 is a
        blur at stride 1 only; at stride S it scales the mean by 1/S² and, unless the blur is
        wide against the stride, leaves a grid of bright spots."""
        if self.init.startswith("gaussian("):
            blur = (f"`- conv: {{filters: {self.filters}, kernel: {_pair(self.kernel)}, "
                    f"pad: same, init: {self.init}}}`")
            hints = [f"for a blur write {blur}" if self.stride == (1, 1) else
                     f"for a smooth upsampling write `- resize: {{scale: {_pair(self.stride)}, "
                     f"mode: bilinear}}`, and {blur} after it to blur more",
                     "or keep the transposed conv with he_normal, glorot_uniform, normal(STD), "
                     "uniform(A) or constant(C)"]
            raise RuleError(
                "gaussian(SIGMA) makes a conv's kernels a blur, and a transposed conv "
                "spreads each input pixel over the output at stride steps: its kernels are "
                "not a blur", code="E105", attr="init", hints=hints)
        per_group = self.filters // self.groups
        kh, kw = self.kernel
        # as PyTorch's _calculate_fan_in_and_fan_out counts them on this layout: size(1)·kh·kw
        # in, size(0)·kh·kw out (so He initialisation scales by the filters per group)
        fan_in, fan_out = per_group * kh * kw, x[1] * kh * kw
        ws = [WeightSpec("weight", (x[1], per_group, kh, kw), self.init, fan_in, fan_out)]
        if self.bias:
            ws.append(WeightSpec("bias", (self.filters,), "zeros", fan_in, fan_out))
        return ws

    def macs(self, out: Shape, x: Shape) -> int:
        """Each input pixel times each tap of the filters it feeds: channels × filters/groups
        × kh × kw × H_in × W_in, as fvcore and torch.utils.flop_counter count a transposed
        conv (their FLOPs are 2 × this), whatever the padding later crops."""
        kh, kw = self.kernel
        return x[1] * (self.filters // self.groups) * kh * kw * x[2] * x[3]

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        """One ConvTranspose node with explicit pads (never auto_pad or output_shape: the
        shape is netc's, written out); for an output_padding of the stride or more, which
        PyTorch allows below the dilation, ConvTranspose, Pad, Slice and Add (below)."""
        x = xs[0]
        crops = self.crops(x.shape)
        attrs = dict(kernel_shape=list(self.kernel), strides=list(self.stride),
                     dilations=list(self.dilation), group=self.groups)
        if all(self.output_padding[i] < self.stride[i] for i in (0, 1)):
            inputs = [x.name, w["weight"]] + ([w["bias"]] if self.bias else [])
            b.node("ConvTranspose", inputs, out.name, pads=list(crops),
                   output_padding=list(self.output_padding), **attrs)
            return
        # ONNX Runtime refuses an output_padding of the stride or more (it works the input
        # size back from the output's and gets one more). The rows and columns it adds lie
        # past the reach of every tap and hold only the bias, so: the node without its bias
        # and with at most stride - 1 of them, zeros padded for the rest, the crops sliced
        # off, then the bias added
        o = out.name
        kept = [min(self.output_padding[i], self.stride[i] - 1) for i in (0, 1)]
        extra = [self.output_padding[i] - kept[i] for i in (0, 1)]
        full = self._sizes(x.shape[2:], (0, 0, 0, 0))  # uncropped, all of output_padding in
        b.node("ConvTranspose", [x.name, w["weight"]], f"{o}/full", pads=[0, 0, 0, 0],
               output_padding=kept, **attrs)
        b.constant(f"{o}/pads", [0, 0, 0, 0, 0, 0, *extra])
        b.node("Pad", [f"{o}/full", f"{o}/pads"], f"{o}/padded")
        b.constant(f"{o}/starts", [crops[0], crops[1]])
        b.constant(f"{o}/ends", [full[0] - crops[2], full[1] - crops[3]])
        b.constant(f"{o}/axes", [2, 3])
        cropped = f"{o}/cropped" if self.bias else o
        b.node("Slice", [f"{o}/padded", f"{o}/starts", f"{o}/ends", f"{o}/axes"], cropped)
        if self.bias:
            b.constant(f"{o}/bias_shape", [self.filters, 1, 1])
            b.node("Reshape", [w["bias"], f"{o}/bias_shape"], f"{o}/bias")
            b.node("Add", [cropped, f"{o}/bias"], o)

    def torch_module(self, x, nn, classes):
        top, left, bottom, right = crops = self.crops(x)
        if top == bottom and left == right:
            return nn.ConvTranspose2d(x[1], self.filters, self.kernel, self.stride,
                                      padding=(top, left), output_padding=self.output_padding,
                                      groups=self.groups, bias=self.bias,
                                      dilation=self.dilation)
        return classes.ConvTranspose2d(x[1], self.filters, self.kernel, self.stride, crops,
                                       self.output_padding, self.dilation, self.groups,
                                       self.bias)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return _transposed_torch_classes(torch)

    # --- what the commands say ------------------------------------------------------------

    def equation(self, out: Shape, x: Shape) -> list[str]:
        """The size arithmetic per axis, with the crops `same` chose."""
        crops = self.crops(x)
        lines = ["shape: output = (N - 1) × stride - pad_before - pad_after + dilation × (F - 1) "
                 "+ output_padding + 1, per axis"]
        if self.pad in SAME:
            lines.append(f"  pad: {self.pad} crops (top, left, bottom, right) = {list(crops)}, "
                         "for an output of N × stride"
                         + (", an odd total's extra pixel at the start"
                            if self.pad == "same_lower" and crops[:2] != crops[2:] else ""))
        for i in (0, 1):
            lines.append(f"  {AXES[i] + ':':7} ({x[2 + i]} - 1) × {self.stride[i]} - {crops[i]} "
                         f"- {crops[i + 2]} + {self.dilation[i]} × ({self.kernel[i]} - 1) + "
                         f"{self.output_padding[i]} + 1 = {out[2 + i]}")
        return lines

    def macs_formula(self, out: Shape, x: Shape) -> str:
        kh, kw = self.kernel
        per_group = self.filters // self.groups
        return (f"{x[1]} input channels × {x[2]}x{x[3]} input pixels × {per_group} filters"
                + (f" (of {self.filters}, in {self.groups} groups)" if self.groups > 1 else "")
                + f" × {kh}x{kw} taps")

    def label(self) -> str:
        """`convtranspose 2×2/2, 64`."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        text = f"{self.kind} {kh}×{kw}"
        if (sh, sw) != (1, 1):
            text += f"/{sh}" if sh == sw else f"/{sh}×{sw}"
        return f"{text}, {self.filters}"

    def lints(self, site: Site) -> list[Lint]:
        """W202 (a bias that the batchnorm after it cancels) and W203 (output pixels that no
        filter tap reaches: they hold only the bias)."""
        found = [bias_lint(self, site, "channel"), self._gaps(site.name)]
        return [f for f in found if f is not None]

    def _gaps(self, name: str) -> Lint | None:
        """W203: with stride S, output pixel p gets input from tap j where p ≡ j·dilation
        (mod S); residues that no tap has get no input anywhere (a 1x1 filter with stride 2:
        every other row and column)."""
        missing = []
        for i in (0, 1):
            s = self.stride[i]
            reached = {j * self.dilation[i] % s for j in range(min(self.kernel[i], s))}
            if len(reached) < s:
                missing.append((i, s - len(reached)))
        if not missing:
            return None
        k = "x".join(map(str, self.kernel))
        spans = self.spans
        dilated = "" if spans == self.kernel else f" (dilated to {spans[0]}x{spans[1]})"
        stride = self.stride[missing[0][0]]
        details = []
        for i, count in missing:
            edge = EDGE[AXES[i]] + "s" * (count > 1)
            details.append(f"{AXES[i]}: {count} {edge} of every {self.stride[i]} "
                           f"{'get' if count > 1 else 'gets'} no input")
        return Lint(
            "W203", f"{self.kind} '{name}': the stride leaves output pixels that no tap of the "
            f"{k}{dilated} filter reaches, so they hold only the bias", "stride",
            tuple(details),
            (f"use a kernel of at least the stride with dilation 1 (kernel {stride} or "
             f"{2 * stride} with stride {stride}), so that every output pixel gets input",))


def transposed_size(n: int, k: int, s: int, pb: int, pa: int, d: int, op: int) -> int:
    """A transposed convolution's output size along one axis: (n - 1)·s - pb - pa +
    d·(k - 1) + op + 1 (PyTorch's ConvTranspose2d, ONNX ConvTranspose); below 1 when the
    crops `pb` + `pa` take the whole output."""
    return (n - 1) * s - pb - pa + d * (k - 1) + op + 1


def _pair(values) -> str:
    """`2` or `[2, 3]`: a pair attribute as a spec writes it."""
    return str(values[0]) if values[0] == values[1] else f"[{values[0]}, {values[1]}]"


def check_groups(channels: int, filters: int, groups: int) -> None:
    """E303 unless `groups` divides both the input channels and the filters (a grouped conv,
    plain or transposed, splits both into `groups` equal parts)."""
    if channels % groups:
        raise RuleError(
            f"{counted(channels, 'input channel')} can't be split into {groups} groups",
            code="E303", attr="groups",
            details=[f"{channels} / {groups} = {channels / groups:.2f}"],
            hints=[f"use a number of groups that divides {channels}"],
        )
    if filters % groups:
        raise RuleError(
            f"{filters} filters can't be split into {groups} groups",
            code="E303", attr="filters",
            details=[f"{filters} / {groups} = {filters / groups:.2f}"],
            hints=[f"use a multiple of {groups} filters"],
        )


@lru_cache(maxsize=None)
def _torch_classes(torch) -> dict[str, type]:
    nn, F = torch.nn, torch.nn.functional

    class Conv2d(nn.Conv2d):
        """nn.Conv2d with netc's pads (top, left, bottom, right), the extra end padding of
        `round: ceil` included: symmetric pads go to the convolution, others to F.pad."""

        def __init__(self, channels, filters, kernel, stride, pads, dilation, groups, bias):
            top, left, bottom, right = pads
            symmetric = top == bottom and left == right
            super().__init__(channels, filters, tuple(kernel), tuple(stride),
                             padding=(top, left) if symmetric else 0,
                             dilation=tuple(dilation), groups=groups, bias=bias)
            self.pads = tuple(pads)
            self.pad_first = None if symmetric else (left, right, top, bottom)

        def forward(self, x):
            if self.pad_first is not None:
                x = F.pad(x, self.pad_first)
            return super().forward(x)

        def extra_repr(self) -> str:
            text = super().extra_repr()
            return text if self.pad_first is None else f"{text}, pads={self.pads}"

    return {"Conv2d": Conv2d}


@lru_cache(maxsize=None)
def _transposed_torch_classes(torch) -> dict[str, type]:
    nn = torch.nn

    class ConvTranspose2d(nn.ConvTranspose2d):
        """nn.ConvTranspose2d with netc's asymmetric crops (top, left, bottom, right), which
        PyTorch's `padding` (the same on both sides) can't say: the transposed convolution
        without padding, then the crops cut from its output. Its parameters are
        nn.ConvTranspose2d's (`weight`, `bias`)."""

        def __init__(self, channels, filters, kernel, stride, crops, output_padding, dilation,
                     groups, bias):
            super().__init__(channels, filters, tuple(kernel), tuple(stride), padding=0,
                             output_padding=tuple(output_padding), groups=groups, bias=bias,
                             dilation=tuple(dilation))
            self.crops = tuple(crops)

        def forward(self, x):
            y = super().forward(x)
            top, left, bottom, right = self.crops
            return y[:, :, top:y.shape[2] - bottom, left:y.shape[3] - right]

        def extra_repr(self) -> str:
            return f"{super().extra_repr()}, crops={self.crops}"

    return {"ConvTranspose2d": ConvTranspose2d}
