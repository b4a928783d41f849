"""Pooling: max, average, and global average."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..errors import RuleError
from .base import Layer, Lowering, Padding, Pair, Round, Shape, Tensor, attr, layer, need_rank
from .window import Windowed, pads_of, rounding_of, spatial


@dataclass(frozen=True)
class _Pool(Windowed):
    kernel: Pair = attr(doc="window size: an int or [height, width]", min=1, max=4096)
    stride: Pair | None = attr(None, doc="step between windows (default: the kernel)",
                               min=1, max=4096)
    pad: Padding = attr(0, doc="padding: int, [h, w], [top, left, bottom, right], same or valid",
                        min=0, max=4096)
    round: Round = attr("exact", doc="what to do when the window doesn't tile the input")

    main = "kernel"
    op = ""

    @property
    def steps(self) -> tuple[int, int]:
        """The stride, which defaults to the kernel (non-overlapping windows)."""
        return self.stride if self.stride is not None else self.kernel

    @property
    def window_stride(self) -> tuple[int, int]:
        return self.steps

    def implied(self, name: str) -> tuple[object, str, str] | None:
        if name == "stride" and self.stride is None:
            return self.steps, "the kernel", "the window's size"
        return None

    def _geometry(self, x: Shape):
        pads = pads_of(self.pad, x[2:], self.kernel, self.steps, (1, 1))
        for i, p in enumerate(pads):
            if p >= self.kernel[i % 2]:
                # ONNX Runtime refuses pads as large as the window (it would see only padding)
                raise RuleError(
                    f"padding {p} is not smaller than the {self.kernel[0]}x{self.kernel[1]} "
                    "pooling window", code="E105", attr="pad",
                    hints=[f"pad by at most {self.kernel[i % 2] - 1}"],
                )
        out_hw, _ = spatial(x[2:], self.kernel, self.steps, pads, (1, 1),
                            rounding_of(self.pad, self.round), "window")
        return out_hw, pads

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), self.kind)
        out_hw, _ = self._geometry(x)
        return (x[0], x[1], *out_hw)

    def _torch_geometry(self, x: Shape):
        """The pads, and the end padding (bottom, right) that a `round: ceil` window over the
        end needs beyond them (0 for exact and floor)."""
        out_hw, pads = self._geometry(x)
        extra = tuple(max(0, (out_hw[i] - 1) * self.steps[i] + self.kernel[i]
                          - (x[2 + i] + pads[i] + pads[i + 2])) for i in (0, 1))
        return pads, extra

    def _attrs(self, x: Shape) -> dict:
        """ONNX attributes. A `round: ceil` window hanging over the end gets explicit end
        padding, which neither a max nor an average without `include_pad` counts (as for
        convolutions), never ceil_mode: ONNX's shape inference for ceil_mode keeps a last
        window that starts past the input, where ONNX Runtime and netc drop it, and a model
        whose declared shapes differ from the inferred ones fails its checks (and may fail to
        load). With `include_pad` the extra padding is not counted either: see AvgPool.lower."""
        pads, extra = self._torch_geometry(x)
        pads = [*pads[:2], pads[2] + extra[0], pads[3] + extra[1]]
        return dict(kernel_shape=list(self.kernel), strides=list(self.steps), pads=pads,
                    ceil_mode=0)


@layer("maxpool")
@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling; lowers to ONNX MaxPool (`round: ceil` pads the end of the input).

    `- maxpool: {kernel: 2, stride: 2}` halves the height and width."""

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("MaxPool", [xs[0].name], out.name, **self._attrs(xs[0].shape))

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"MaxPool2d": _torch_classes(torch)["MaxPool2d"]}

    def torch_module(self, x, nn, classes):
        return classes.MaxPool2d(self.kernel, self.steps, *self._torch_geometry(x))


@layer("avgpool")
@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling; lowers to ONNX AveragePool.

    `- avgpool: {kernel: 2}`; padded pixels are left out of the average unless `include_pad`."""

    include_pad: bool = attr(False, doc="count padded zeros in the average (PyTorch's default)")

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0]
        pads, extra = self._torch_geometry(x.shape)
        if not (self.include_pad and any(extra)):
            b.node("AveragePool", [x.name], out.name, count_include_pad=int(self.include_pad),
                   **self._attrs(x.shape))
            return
        # `include_pad` with a `round: ceil` window over the end: the declared padding counts,
        # the extra doesn't. So pad with zeros first, then average what lies in the result
        top, left, bottom, right = pads
        b.constant(f"{out.name}/pads", [0, 0, top, left, 0, 0, bottom, right])
        b.node("Pad", [x.name, f"{out.name}/pads"], f"{out.name}/padded")
        b.node("AveragePool", [f"{out.name}/padded"], out.name, count_include_pad=0,
               kernel_shape=list(self.kernel), strides=list(self.steps),
               pads=[0, 0, extra[0], extra[1]], ceil_mode=0)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"AvgPool2d": _torch_classes(torch)["AvgPool2d"]}

    def torch_module(self, x, nn, classes):
        return classes.AvgPool2d(self.kernel, self.steps, *self._torch_geometry(x),
                                 self.include_pad)


@layer("globalavgpool")
@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """Average over the whole height and width: N×C×H×W -> N×C×1×1 (ONNX GlobalAveragePool).

    `- globalavgpool`"""

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), "globalavgpool")
        return (x[0], x[1], 1, 1)

    def equation(self, out: Shape, x: Shape) -> list[str]:
        return [f"shape: each {x[2]}x{x[3]} channel averaged to 1x1"]

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("GlobalAveragePool", [xs[0].name], out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"GlobalAvgPool2d": _torch_classes(torch)["GlobalAvgPool2d"]}

    def torch_module(self, x, nn, classes):
        return classes.GlobalAvgPool2d()


@lru_cache(maxsize=None)
def _torch_classes(torch) -> dict[str, type]:
    nn, F = torch.nn, torch.nn.functional

    class _Pool(nn.Module):
        def __init__(self, kernel, stride, pads, extra):
            super().__init__()
            self.kernel_size, self.stride = tuple(kernel), tuple(stride)
            self.pads = tuple(pads)  # (top, left, bottom, right) as in the ONNX model
            self.extra = tuple(extra)  # (bottom, right) added by ceil_mode

        def _native(self) -> bool:
            """PyTorch's own padding does it: symmetric and at most half the window. Its
            ceil_mode then keeps the same windows as netc's `round: ceil` (a window that would
            start in the end padding is dropped by both), so the exported graph is a plain
            pool, as torchvision's is."""
            top, left, bottom, right = self.pads
            kh, kw = self.kernel_size
            return top == bottom and left == right and top <= kh // 2 and left <= kw // 2

        @property
        def ceil_mode(self) -> bool:
            return self.extra != (0, 0)

        def _all_pads(self):
            """F.pad's (left, right, top, bottom), the ceil padding included."""
            top, left, bottom, right = self.pads
            return (left, right + self.extra[1], top, bottom + self.extra[0])

        def extra_repr(self) -> str:
            return f"kernel_size={self.kernel_size}, stride={self.stride}, pads={self.pads}" + (
                f", ceil_extra={self.extra}" if self.extra != (0, 0) else "")

    class MaxPool2d(_Pool):
        """ONNX MaxPool: padding never wins the max, and a `round: ceil` window hanging over
        the end sees only the pixels it covers. Both are -inf padding, then a plain pool."""

        def forward(self, x):
            if self._native():
                return F.max_pool2d(x, self.kernel_size, self.stride, self.pads[:2],
                                    ceil_mode=self.ceil_mode)
            x = F.pad(x, self._all_pads(), value=float("-inf"))
            return F.max_pool2d(x, self.kernel_size, self.stride)

    class AvgPool2d(_Pool):
        """ONNX AveragePool: the sum of a window over the pixels it counts. Without
        `include_pad` only input pixels count; with it, the declared padding counts too, but
        never the extra end padding of `round: ceil` (ONNX Runtime's, and PyTorch's, rule)."""

        def __init__(self, kernel, stride, pads, extra, include_pad):
            super().__init__(kernel, stride, pads, extra)
            self.include_pad = bool(include_pad)

        def forward(self, x):
            if self._native():
                return F.avg_pool2d(x, self.kernel_size, self.stride, self.pads[:2],
                                    ceil_mode=self.ceil_mode, count_include_pad=self.include_pad)
            sums = F.avg_pool2d(F.pad(x, self._all_pads()), self.kernel_size, self.stride,
                                divisor_override=1)
            top, left, bottom, right = self.pads
            height, width = x.shape[-2:]
            if self.include_pad:
                counted = x.new_ones((1, 1, height + top + bottom, width + left + right))
                counted = F.pad(counted, (0, self.extra[1], 0, self.extra[0]))
            else:
                counted = F.pad(x.new_ones((1, 1, height, width)), self._all_pads())
            counts = F.avg_pool2d(counted, self.kernel_size, self.stride, divisor_override=1)
            return sums / counts

        def extra_repr(self) -> str:
            return f"{super().extra_repr()}, include_pad={self.include_pad}"

    class GlobalAvgPool2d(nn.Module):
        """ONNX GlobalAveragePool: N×C×H×W -> N×C×1×1."""

        def forward(self, x):
            return F.adaptive_avg_pool2d(x, 1)  # exported as GlobalAveragePool, as torchvision's

    return {"MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d, "GlobalAvgPool2d": GlobalAvgPool2d}
