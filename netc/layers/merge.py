"""Joins: element-wise sum (residual connections) and concatenation (inception modules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..errors import RuleError
from .base import Layer, Lowering, Shape, Tensor, attr, fmt_shape, layer


@layer("add")
@dataclass(frozen=True)
class Add(Layer):
    """Element-wise sum of two or more inputs of the same shape (ONNX Add / Sum).

    `- add: {from: [bn2, input]}`"""

    arity = (2, None)

    def infer(self, *xs: Shape) -> Shape:
        for i, x in enumerate(xs[1:], 1):
            if x != xs[0]:
                raise RuleError(
                    f"needs inputs of one shape, got {fmt_shape(xs[0])} and {fmt_shape(x)}",
                    code="E305", input=i,
                    details=[f"input {j + 1}: {fmt_shape(s)}" for j, s in enumerate(xs)],
                    hints=["a residual shortcut that changes size needs a projection "
                           "(a 1x1 conv with the same stride and filters)"],
                )
        return xs[0]

    def equation(self, out: Shape, *xs: Shape) -> list[str]:
        return [f"shape: the {len(xs)} inputs' common shape"]

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        op = "Add" if len(xs) == 2 else "Sum"
        b.node(op, [x.name for x in xs], out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Add": _torch_classes(torch)["Add"]}

    def torch_module(self, x, nn, classes):
        return classes.Add()


@layer("concat")
@dataclass(frozen=True)
class Concat(Layer):
    """Concatenation along an axis (default 1: channels) of inputs equal in every other axis.

    `- concat: {from: [branch1, branch2]}`"""

    axis: int = attr(1, doc="axis to join along (not the batch axis 0)", min=-8, max=8)

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
        """Element-wise sum of two or more tensors (ONNX Add, or Sum for more)."""

        def forward(self, *xs):
            out = xs[0] + xs[1]
            for x in xs[2:]:
                out = out + x
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

    return {"Add": Add, "Concat": Concat}
