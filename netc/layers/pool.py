"""Pooling: max, average, global average, and adaptive (PyTorch's AdaptiveAvgPool2d and
AdaptiveMaxPool2d)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache


from ..errors import RuleError
from .base import (Layer, Lowering, Padding, Pair, Round, Shape, Tensor, attr, layer, layer_fields,
                   need_rank)
from .window import AXES, Windowed, pads_of, rounding_of, spatial


@layer_fields
class _Pool(Windowed):
    kernel: Pair = attr(doc="window size: an int or [height, width]", min=1, max=4096)
    stride: Pair | None = attr(None, doc="step between windows (default: the kernel)",
                               min=1, max=4096)
    pad: Padding = attr(0, doc="padding: int, [h, w], [top, left, bottom, right], same, "
                        "same_lower or valid", min=0, max=4096)
    dilation: Pair = attr(1, doc="spacing between window taps: an int or [height, width]",
                          min=1, max=4096)
    round: Round = attr("exact", doc="what to do when the window doesn't tile the input")

    foreign_attributes = {"kernel_size": "kernel", "pool_size": "kernel", "padding": "pad",
                          "strides": "stride",
                          "ceil_mode": ("round", "`ceil_mode: true` is `round: ceil`")}

    main = "kernel"
    op = ""

    @property
    def steps(self) -> tuple[int, int]:
        """The stride, which defaults to the kernel (non-overlapping windows)."""
        return self.stride if self.stride is not None else self.kernel

    @property
    def window_stride(self) -> tuple[int, int]:
        return self.steps

    @property
    def window_dilation(self) -> tuple[int, int]:
        return self.dilation

    @property
    def span(self) -> tuple[int, int]:
        """The pixels a window spans: dilation × (kernel - 1) + 1 per axis."""
        return tuple(self.dilation[i] * (self.kernel[i] - 1) + 1 for i in (0, 1))

    def implied(self, name: str) -> tuple[object, str, str] | None:
        if name == "stride" and self.stride is None:
            return self.steps, "the kernel", "the window's size"
        return None

    def _geometry(self, x: Shape):
        pads = pads_of(self.pad, x[2:], self.kernel, self.steps, self.dilation)
        span = self.span
        for i, p in enumerate(pads):
            if p >= span[i % 2]:
                # a window would see only padding (and ONNX Runtime refuses pads as large as
                # the kernel: a dilated window's larger pads are lowered as a Pad node)
                dilated = "" if span == self.kernel else f" (dilated to {span[0]}x{span[1]})"
                raise RuleError(
                    f"padding {p} is not smaller than the {self.kernel[0]}x{self.kernel[1]}"
                    f"{dilated} pooling window", code="E105", attr="pad",
                    hints=[f"pad by at most {span[i % 2] - 1}"],
                )
        out_hw, _ = spatial(x[2:], self.kernel, self.steps, pads, self.dilation,
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
        span = self.span
        extra = tuple(max(0, (out_hw[i] - 1) * self.steps[i] + span[i]
                          - (x[2 + i] + pads[i] + pads[i + 2])) for i in (0, 1))
        return pads, extra

    def _dilations(self) -> dict:
        """ONNX's `dilations`, written only where they are not 1 (the models stay as before)."""
        return {"dilations": list(self.dilation)} if self.dilation != (1, 1) else {}

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
                    ceil_mode=0, **self._dilations())


@layer("maxpool")
@layer_fields
class MaxPool(_Pool):
    """Max pooling; lowers to ONNX MaxPool (`round: ceil` pads the end of the input).

    `- maxpool: {kernel: 2, stride: 2}` halves the height and width; `dilation: 2` spaces the
    taps as PyTorch's MaxPool2d does. ONNX Runtime refuses pads as large as the kernel, which a
    dilated window may need: those are then a Pad node of -inf before the MaxPool."""

    foreign_names = ("MaxPooling2D",)

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0]
        attrs = self._attrs(x.shape)
        if all(p < self.kernel[i % 2] for i, p in enumerate(attrs["pads"])):
            b.node("MaxPool", [x.name], out.name, **attrs)
            return
        top, left, bottom, right = attrs["pads"]
        b.constant(f"{out.name}/pads", [0, 0, top, left, 0, 0, bottom, right])
        b.float_constant(f"{out.name}/-inf", [float("-inf")], shape=())
        b.node("Pad", [x.name, f"{out.name}/pads", f"{out.name}/-inf"], f"{out.name}/padded")
        b.node("MaxPool", [f"{out.name}/padded"], out.name, **{**attrs, "pads": [0, 0, 0, 0]})

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"MaxPool2d": _torch_classes(torch)["MaxPool2d"]}

    def torch_module(self, x, nn, classes):
        return classes.MaxPool2d(self.kernel, self.steps, *self._torch_geometry(x),
                                 dilation=self.dilation)


@layer("avgpool")
@layer_fields
class AvgPool(_Pool):
    """Average pooling; lowers to ONNX AveragePool.

    `- avgpool: {kernel: 2}`; padded pixels are left out of the average unless `include_pad`.
    A `dilation` (which PyTorch's AvgPool2d lacks, and ONNX's AveragePool has only from opset
    19) is lowered as a depthwise Conv summing each window (a constant C×1×kh×kw weight of
    ones), then a Div by the number of pixels each window counts (a constant, known at
    compile time): the same MACs as a convolution with C filters of one channel."""

    include_pad: bool = attr(False, doc="count padded zeros in the average, as PyTorch's "
                             "`count_include_pad` (true by default there, false here): set it "
                             "to port a padded AvgPool2d")

    foreign_names = ("AveragePooling2D", "AvgPooling2D")
    foreign_attributes = {**_Pool.foreign_attributes, "count_include_pad": "include_pad"}

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0]
        pads, extra = self._torch_geometry(x.shape)
        if self.dilation != (1, 1):
            self._lower_dilated(b, x, out, pads, extra)
            return
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

    def _lower_dilated(self, b: Lowering, x: Tensor, out: Tensor, pads, extra) -> None:
        import numpy as np  # here, not at the top: `netc check` never needs it

        top, left, bottom, right = pads
        kh, kw = self.kernel
        b.float_constant(f"{out.name}/ones", np.ones(x.shape[1] * kh * kw),
                         shape=(x.shape[1], 1, kh, kw))
        b.node("Conv", [x.name, f"{out.name}/ones"], f"{out.name}/sums",
               kernel_shape=[kh, kw], strides=list(self.steps),
               pads=[top, left, bottom + extra[0], right + extra[1]],
               dilations=list(self.dilation), group=x.shape[1])
        counts = _window_counts(x.shape[2:], self.kernel, self.steps, self.dilation, pads,
                                extra, self.include_pad)
        b.float_constant(f"{out.name}/counts", counts.ravel(), shape=(1, 1, *counts.shape))
        b.node("Div", [f"{out.name}/sums", f"{out.name}/counts"], out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"AvgPool2d": _torch_classes(torch)["AvgPool2d"]}

    def torch_module(self, x, nn, classes):
        return classes.AvgPool2d(self.kernel, self.steps, *self._torch_geometry(x),
                                 self.include_pad, dilation=self.dilation)


def _window_counts(hw, kernel, stride, dilation, pads, extra, include_pad):
    """How many pixels each window of an average counts (Ho×Wo): the input's, and with
    `include_pad` the declared padding's too, never the extra end padding of `round: ceil`."""
    import numpy as np

    top, left, bottom, right = pads
    counted = np.zeros((hw[0] + top + bottom + extra[0], hw[1] + left + right + extra[1]))
    if include_pad:
        counted[:hw[0] + top + bottom, :hw[1] + left + right] = 1
    else:
        counted[top:top + hw[0], left:left + hw[1]] = 1
    span = [dilation[i] * (kernel[i] - 1) + 1 for i in (0, 1)]
    out = [(counted.shape[i] - span[i]) // stride[i] + 1 for i in (0, 1)]
    counts = np.zeros(out)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r, c = i * dilation[0], j * dilation[1]
            counts += counted[r:r + (out[0] - 1) * stride[0] + 1:stride[0],
                              c:c + (out[1] - 1) * stride[1] + 1:stride[1]]
    return counts


@layer("globalavgpool")
@layer_fields
class GlobalAvgPool(Layer):
    """Average over the whole height and width: N×C×H×W -> N×C×1×1 (ONNX GlobalAveragePool).

    `- globalavgpool`"""

    foreign_names = ("GlobalAveragePooling2D",)

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


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows along one axis: output i reads [start, end) with
    start = floor(i·size/out) and end = ceil((i+1)·size/out)."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


@layer_fields
class _AdaptivePool(Layer):
    """An adaptive pool: the output size is given, the windows follow from the input's."""

    output: Pair = attr(doc="output size: an int or [height, width]", min=1, max=4096)

    foreign_attributes = {"output_size": "output"}

    main = "output"
    verb = ""  # averages / takes the max of
    ops = ("", "")  # (the global pool, the plain pool)

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), self.kind)
        larger = [i for i in (0, 1) if self.output[i] > x[2 + i]]
        if larger:
            oh, ow = self.output
            edge = {0: "rows", 1: "columns"}
            raise RuleError(
                f"an output of {oh}x{ow} is larger than the {x[2]}x{x[3]} input", code="E302",
                attr="output",
                details=[f"{AXES[i]}: {self.output[i]} outputs from {x[2 + i]} {edge[i]}: "
                         f"PyTorch would repeat input {edge[i]} to make them; netc refuses"
                         for i in larger],
                hints=[f"use an output of at most {min(oh, x[2])}x{min(ow, x[3])}"],
            )
        return (x[0], x[1], *self.output)

    def equation(self, out: Shape, x: Shape) -> list[str]:
        lines = [f"shape: output {self.output[0]}x{self.output[1]}; output pixel i {self.verb} "
                 "input pixels floor(i·N/n) to ceil((i+1)·N/n) - 1, per axis"]
        for i in (0, 1):
            n, k = x[2 + i], self.output[i]
            unit = ("row", "column")[i]
            if n % k == 0:
                lines.append(f"  {AXES[i] + ':':7} {n} / {k} = {n // k}: windows of {n // k} "
                             f"{unit}{'s' * (n // k > 1)}, one every {n // k}")
                continue
            windows = adaptive_windows(n, k)
            sizes = [e - s for s, e in windows]
            shown = ", ".join(f"[{s}, {e})" for s, e in windows[:6])
            if len(windows) > 6:
                shown += f", ... ({len(windows)} windows)"
            lines.append(f"  {AXES[i] + ':':7} {n} / {k} = {n / k:.2f}, not a whole number: "
                         f"windows of {min(sizes)}-{max(sizes)} {unit}s: {shown}")
        return lines

    def label(self) -> str:
        return f"{self.kind} →{self.output[0]}×{self.output[1]}"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0]
        (h, wd), (oh, ow) = x.shape[2:], self.output
        if (oh, ow) == (1, 1):
            b.node(self.ops[0], [x.name], out.name)
        elif (oh, ow) == (h, wd):
            b.node("Identity", [x.name], out.name)
        elif h % oh == 0 and wd % ow == 0:
            k = [h // oh, wd // ow]
            b.node(self.ops[1], [x.name], out.name, kernel_shape=k, strides=k,
                   pads=[0, 0, 0, 0], ceil_mode=0)
        else:
            current = x.name
            axes = [a for a in (3, 2) if x.shape[a] != self.output[a - 2]]
            for a in axes:
                name = out.name if a == axes[-1] else f"{out.name}/axis{a}"
                self._reduce_axis(b, current, a, x.shape[a], self.output[a - 2], name)
                current = name

    def _reduce_axis(self, b: Lowering, x: str, axis: int, size: int, n: int,
                     out: str) -> None:
        raise NotImplementedError


@layer("adaptiveavgpool")
@layer_fields
class AdaptiveAvgPool(_AdaptivePool):
    """Average pooling to a given output size, with PyTorch's windows (nn.AdaptiveAvgPool2d).

    `- adaptiveavgpool: 7` makes any input of at least 7x7 N×C×7×7. Output 1×1 lowers to
    GlobalAveragePool, a size that divides the input's to an AveragePool (kernel = stride),
    the input's own size to an Identity; otherwise the windows overlap or differ in size, and
    each axis that changes is a MatMul by a constant N×n matrix of 1/window-size weights
    (2 nodes and N·n constants per axis; H·W·w + H·h·w multiply-adds per channel)."""

    foreign_names = ("AdaptiveAveragePooling2D",)

    verb = "averages"
    ops = ("GlobalAveragePool", "AveragePool")

    def _reduce_axis(self, b: Lowering, x: str, axis: int, size: int, n: int,
                     out: str) -> None:
        import numpy as np

        weights = np.zeros((size, n))
        for i, (start, end) in enumerate(adaptive_windows(size, n)):
            weights[start:end, i] = 1 / (end - start)
        if axis == 3:  # (..., H, W) @ (W, w)
            b.float_constant(f"{out}/weights", weights.ravel(), shape=(size, n))
            b.node("MatMul", [x, f"{out}/weights"], out)
        else:  # (h, H) @ (..., H, w)
            b.float_constant(f"{out}/weights", weights.T.ravel(), shape=(n, size))
            b.node("MatMul", [f"{out}/weights", x], out)

    def torch_module(self, x, nn, classes):
        return nn.AdaptiveAvgPool2d(self.output)


@layer("adaptivemaxpool")
@layer_fields
class AdaptiveMaxPool(_AdaptivePool):
    """Max pooling to a given output size, with PyTorch's windows (nn.AdaptiveMaxPool2d).

    `- adaptivemaxpool: {output: [6, 6]}` makes any input of at least 6x6 N×C×6×6. Output
    1×1 lowers to GlobalMaxPool, a size that divides the input's to a MaxPool (kernel =
    stride), the input's own size to an Identity; otherwise each axis that changes is a Gather
    of every window's indices (a window shorter than the longest repeats its last index), a
    Reshape and a ReduceMax: 3 nodes and 2 constants per axis, the gathered tensor under 3
    times the input."""

    verb = "takes the max of"
    ops = ("GlobalMaxPool", "MaxPool")

    def _reduce_axis(self, b: Lowering, x: str, axis: int, size: int, n: int,
                     out: str) -> None:
        windows = adaptive_windows(size, n)
        longest = max(e - s for s, e in windows)
        indices = [min(s + j, e - 1) for s, e in windows for j in range(longest)]
        b.constant(f"{out}/indices", indices)
        b.node("Gather", [x, f"{out}/indices"], f"{out}/gathered", axis=axis)
        # (N, C, H, w·k) -> (N, C, H, w, k); (N, C, h·k, w) -> (N, C, h, k, w)
        shape = [0, 0, 0, n, longest] if axis == 3 else [0, 0, n, longest, self.output[1]]
        b.constant(f"{out}/shape", shape)
        b.node("Reshape", [f"{out}/gathered", f"{out}/shape"], f"{out}/windows")
        b.node("ReduceMax", [f"{out}/windows"], out, axes=[axis + 1], keepdims=0)

    def torch_module(self, x, nn, classes):
        return nn.AdaptiveMaxPool2d(self.output)


@lru_cache(maxsize=None)
def _torch_classes(torch) -> dict[str, type]:
    nn, F = torch.nn, torch.nn.functional

    class _Pool(nn.Module):
        def __init__(self, kernel, stride, pads, extra, dilation=(1, 1)):
            super().__init__()
            self.kernel_size, self.stride = tuple(kernel), tuple(stride)
            self.pads = tuple(pads)  # (top, left, bottom, right) as in the ONNX model
            self.extra = tuple(extra)  # (bottom, right) added by ceil_mode
            self.dilation = tuple(dilation)

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
                f", ceil_extra={self.extra}" if self.extra != (0, 0) else "") + (
                f", dilation={self.dilation}" if self.dilation != (1, 1) else "")

    class MaxPool2d(_Pool):
        """ONNX MaxPool: padding never wins the max, and a `round: ceil` window hanging over
        the end sees only the pixels it covers. Both are -inf padding, then a plain pool."""

        def forward(self, x):
            if self._native():
                return F.max_pool2d(x, self.kernel_size, self.stride, self.pads[:2],
                                    self.dilation, ceil_mode=self.ceil_mode)
            x = F.pad(x, self._all_pads(), value=float("-inf"))
            return F.max_pool2d(x, self.kernel_size, self.stride, 0, self.dilation)

    class AvgPool2d(_Pool):
        """ONNX AveragePool: the sum of a window over the pixels it counts. Without
        `include_pad` only input pixels count; with it, the declared padding counts too, but
        never the extra end padding of `round: ceil` (ONNX Runtime's, and PyTorch's, rule).
        A dilated window (which F.avg_pool2d lacks) sums with a depthwise convolution of ones."""

        def __init__(self, kernel, stride, pads, extra, include_pad, dilation=(1, 1)):
            super().__init__(kernel, stride, pads, extra, dilation)
            self.include_pad = bool(include_pad)

        def _sums(self, x):
            if self.dilation == (1, 1):
                return F.avg_pool2d(x, self.kernel_size, self.stride, divisor_override=1)
            ones = x.new_ones((x.shape[1], 1, *self.kernel_size))
            return F.conv2d(x, ones, None, self.stride, 0, self.dilation, x.shape[1])

        def forward(self, x):
            if self._native() and self.dilation == (1, 1):
                return F.avg_pool2d(x, self.kernel_size, self.stride, self.pads[:2],
                                    ceil_mode=self.ceil_mode, count_include_pad=self.include_pad)
            sums = self._sums(F.pad(x, self._all_pads()))
            top, left, bottom, right = self.pads
            height, width = x.shape[-2:]
            if self.include_pad:
                counted = x.new_ones((1, 1, height + top + bottom, width + left + right))
                counted = F.pad(counted, (0, self.extra[1], 0, self.extra[0]))
            else:
                counted = F.pad(x.new_ones((1, 1, height, width)), self._all_pads())
            counts = self._sums(counted)
            return sums / counts

        def extra_repr(self) -> str:
            return f"{super().extra_repr()}, include_pad={self.include_pad}"

    class GlobalAvgPool2d(nn.Module):
        """ONNX GlobalAveragePool: N×C×H×W -> N×C×1×1."""

        def forward(self, x):
            return F.adaptive_avg_pool2d(x, 1)  # exported as GlobalAveragePool, as torchvision's

    return {"MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d, "GlobalAvgPool2d": GlobalAvgPool2d}
