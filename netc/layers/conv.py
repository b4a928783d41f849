"""Convolution."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from ..errors import Lint, RuleError
from .base import (Init, Lowering, Padding, Pair, Round, Shape, Site, Tensor, WeightSpec, attr,
                   bias_lint, layer, layer_fields, need_rank)
from .window import EDGE, Windowed, pads_of, rounding_of, spatial


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
        channels = x[1]
        if channels % self.groups:
            raise RuleError(
                f"{channels} input channels can't be split into {self.groups} groups",
                code="E303", attr="groups",
                details=[f"{channels} / {self.groups} = {channels / self.groups:.2f}"],
                hints=[f"use a number of groups that divides {channels}"],
            )
        if self.filters % self.groups:
            raise RuleError(
                f"{self.filters} filters can't be split into {self.groups} groups",
                code="E303", attr="filters",
                details=[f"{self.filters} / {self.groups} = {self.filters / self.groups:.2f}"],
                hints=[f"use a multiple of {self.groups} filters"],
            )
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
