"""Joins: element-wise sum (residual connections) and product (squeeze-and-excitation), both
broadcasting as numpy and ONNX do, and concatenation (inception modules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from ..errors import RuleError
from .base import Layer, Lowering, Shape, Tensor, attr, fmt_shape, layer, layer_fields


def broadcast(xs: Sequence[Shape], hint: str) -> Shape:
    """The shape that inputs `xs` broadcast to, by numpy's (and ONNX's) rule for inputs of one
    rank: in each axis the sizes are equal, or all but one of them 1 (the others are repeated).
    A symbolic size (the batch N) matches itself and 1 only. Raises E305 naming both shapes
    and the axis that can't broadcast, `hint` its fix where it can be one: not for a height
    or width a pixel or so off the other's (not a whole factor of it, and no input of size 1
    there), which no 1x1 conv or per-channel scale lines up (a misaligned skip: check.py
    says what does), but for channels, a stride, or a broadcast. Inputs of different ranks are
    refused: numpy would align them at their last axes, which moves the batch axis of the
    shorter; except an input without a batch axis (a learned tensor, `- param`: C×1×1), which
    aligns at the last axes as in numpy (ConvNeXt's layer_scale × N×C×H×W)."""
    rank = max(len(x) for x in xs)
    batchless = [x for x in xs if len(x) < rank and not any(isinstance(d, str) for d in x)]
    if batchless and any(isinstance(d, str) for x in xs for d in x):
        xs = [(1,) * (rank - len(x)) + tuple(x) if len(x) < rank and
              not any(isinstance(d, str) for d in x) else x for x in xs]
    rank = len(xs[0])
    for j, x in enumerate(xs[1:], 1):
        if len(x) != rank:
            small, longer = sorted((xs[0], x), key=len)
            ones = [1] * (len(longer) - 2)
            example = fmt_shape((*small, *ones)) if len(small) == 2 else None
            raise RuleError(
                f"needs inputs of one shape, got {fmt_shape(xs[0])} and {fmt_shape(x)}",
                code="E305", input=j,
                details=[f"input {k + 1}: {fmt_shape(s)}" for k, s in enumerate(xs)]
                + [f"a {len(xs[0])}-D and a {len(x)}-D input: broadcasting needs inputs of one "
                   "rank (aligned at their last axes, the batch axes would not line up)"],
                hints=[f"reshape the {len(small)}-D input to {example} (`- reshape: {{shape: "
                       f"{[small[1], *ones]}}}`)"] if example else [hint],
            )
    out = []
    for axis in range(rank):
        sizes = [x[axis] for x in xs]
        big = [d for d in sizes if d != 1]
        clash = next((j for j, d in enumerate(sizes) if d != 1 and d != big[0]), None) \
            if big else None
        if clash is not None:
            first = sizes.index(big[0])
            x, y = sizes[first], sizes[clash]
            # (a map a pixel or so off another, neither broadcasting anywhere: no hint fits)
            off = axis >= 2 and isinstance(x, int) and isinstance(y, int) \
                and max(x, y) % min(x, y) != 0 and all(1 not in s[2:] for s in xs)
            raise RuleError(
                f"needs inputs of one shape, got {fmt_shape(xs[first])} and "
                f"{fmt_shape(xs[clash])}", code="E305", input=clash,
                details=[f"input {k + 1}: {fmt_shape(s)}" for k, s in enumerate(xs)]
                + [f"axis {axis}: {sizes[first]} and {sizes[clash]} differ and neither is 1, "
                   "so they can't broadcast"],
                hints=[] if off else [hint],
            )
        out.append(big[0] if big else 1)
    return tuple(out)


def _broadcast_equation(out: Shape, xs: Sequence[Shape]) -> list[str]:
    if all(x == out for x in xs):
        return [f"shape: the {len(xs)} inputs' common shape"]
    shapes = " and ".join(fmt_shape(x) for x in xs)
    return [f"shape: the inputs broadcast: {shapes} -> {fmt_shape(out)}",
            "  (numpy's rule: in each axis, a size of 1 is repeated to match the other)"]


@layer("add")
@layer_fields
class Add(Layer):
    """Element-wise sum of two or more inputs of one shape, or shapes that broadcast as in numpy
    and ONNX (N×C×1×1 + N×C×H×W); ONNX Add (Sum for three or more).

    `- add: {from: [bn2, input]}`"""

    arity = (2, None)

    def infer(self, *xs: Shape) -> Shape:
        return broadcast(xs, "a residual shortcut that changes size needs a projection "
                             "(a 1x1 conv with the same stride and filters)")

    def equation(self, out: Shape, *xs: Shape) -> list[str]:
        return _broadcast_equation(out, xs)

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        op = "Add" if len(xs) == 2 else "Sum"
        b.node(op, [x.name for x in xs], out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Add": _torch_classes(torch)["Add"]}

    def torch_module(self, x, nn, classes):
        return classes.Add()


@layer("mul")
@layer_fields
class Mul(Layer):
    """Element-wise product of two or more inputs whose shapes broadcast as in numpy and ONNX:
    squeeze-and-excitation's N×C×1×1 scale times its N×C×H×W input; ONNX Mul.

    `- mul: {from: [scale, conv3]}`"""

    foreign_names = ("multiply",)

    arity = (2, None)

    def infer(self, *xs: Shape) -> Shape:
        return broadcast(xs, "a scale per channel is N×C×1×1 for an N×C×H×W input: the same "
                             "channels, and 1 in the axes it is repeated over")

    def equation(self, out: Shape, *xs: Shape) -> list[str]:
        return _broadcast_equation(out, xs)

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        # ONNX Mul takes two inputs: three or more are multiplied in turn
        names = [x.name for x in xs]
        for i in range(1, len(names) - 1):
            b.node("Mul", [names[0] if i == 1 else f"{out.name}/product{i - 1}", names[i]],
                   f"{out.name}/product{i}")
        last = names[0] if len(names) == 2 else f"{out.name}/product{len(names) - 2}"
        b.node("Mul", [last, names[-1]], out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Mul": _torch_classes(torch)["Mul"]}

    def torch_module(self, x, nn, classes):
        return classes.Mul()


@layer("concat")
@layer_fields
class Concat(Layer):
    """Concatenation along an axis (default 1: channels) of inputs equal in every other axis.

    `- concat: {from: [branch1, branch2]}`"""

    axis: int = attr(1, doc="axis to join along (not the batch axis 0)", min=-8, max=8)

    foreign_names = ("cat", "Concatenate")
    foreign_attributes = {"dim": "axis"}

    arity = (2, None)
    main = "axis"

    def infer(self, *xs: Shape) -> Shape:
        rank = len(xs[0])
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise RuleError(f"axis {self.axis} is not a feature axis of a {rank}-D input",
                            code="E306", attr="axis",
                            hints=[f"use an axis from 1 to {rank - 1} (1: channels)"])
        axis = self.axis % rank
        for i, x in enumerate(xs[1:], 1):
            same = len(x) == rank and all(a == b for j, (a, b) in enumerate(zip(x, xs[0]))
                                          if j != axis)
            if not same:
                raise RuleError(
                    f"joining along axis {axis} needs inputs equal in every other axis, got "
                    f"{fmt_shape(xs[0])} and {fmt_shape(x)}", code="E305", input=i,
                    details=[f"input {j + 1}: {fmt_shape(s)}" for j, s in enumerate(xs)],
                )
        total = sum(x[axis] for x in xs)
        return tuple(total if j == axis else d for j, d in enumerate(xs[0]))

    def equation(self, out: Shape, *xs: Shape) -> list[str]:
        axis = self.axis % len(xs[0])
        parts = " + ".join(str(x[axis]) for x in xs)
        return [f"shape: joined along axis {axis}: {parts} = {out[axis]}"]

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("Concat", [x.name for x in xs], out.name, axis=self.axis)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Concat": _torch_classes(torch)["Concat"]}

    def torch_module(self, x, nn, classes):
        return classes.Concat(self.axis)


@lru_cache(maxsize=None)
def _torch_classes(torch) -> dict[str, type]:
    nn = torch.nn

    class Add(nn.Module):
        """Element-wise sum of two or more tensors, broadcasting (ONNX Add, or Sum for more)."""

        def forward(self, *xs):
            out = xs[0] + xs[1]
            for x in xs[2:]:
                out = out + x
            return out

    class Mul(nn.Module):
        """Element-wise product of two or more tensors, broadcasting (ONNX Mul)."""

        def forward(self, *xs):
            out = xs[0] * xs[1]
            for x in xs[2:]:
                out = out * x
            return out

    class Concat(nn.Module):
        """Concatenation along `dim` (ONNX Concat)."""

        def __init__(self, dim: int) -> None:
            super().__init__()
            self.dim = dim

        def forward(self, *xs):
            return torch.cat(xs, dim=self.dim)

        def extra_repr(self) -> str:
            return f"dim={self.dim}"

    return {"Add": Add, "Mul": Mul, "Concat": Concat}
