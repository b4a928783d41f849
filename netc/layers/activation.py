"""Element-wise activations, softmax and dropout: the output shape is the input shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import RuleError
from .base import Lowering, Shape, ShapePreserving, Tensor, attr, layer


@dataclass(frozen=True)
class _Elementwise(ShapePreserving):
    op = ""
    module = ""  # torch.nn's module of the same function

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node(self.op, [xs[0].name], out.name)

    def torch_module(self, x, nn, classes):
        return getattr(nn, self.module)()


@layer("relu")
@dataclass(frozen=True)
class ReLU(_Elementwise):
    """max(x, 0). `- relu`"""

    op, module = "Relu", "ReLU"


@layer("tanh")
@dataclass(frozen=True)
class Tanh(_Elementwise):
    """Hyperbolic tangent. `- tanh`"""

    op, module = "Tanh", "Tanh"


@layer("sigmoid")
@dataclass(frozen=True)
class Sigmoid(_Elementwise):
    """Logistic sigmoid 1 / (1 + e^-x). `- sigmoid`"""

    op, module = "Sigmoid", "Sigmoid"


@layer("leakyrelu")
@dataclass(frozen=True)
class LeakyReLU(ShapePreserving):
    """x if x > 0 else alpha·x. `- leakyrelu: {alpha: 0.1}`"""

    alpha: float = attr(0.01, doc="slope for negative inputs")

    main = "alpha"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("LeakyRelu", [xs[0].name], out.name, alpha=self.alpha)

    def torch_module(self, x, nn, classes):
        return nn.LeakyReLU(self.alpha)


@layer("softmax")
@dataclass(frozen=True)
class Softmax(ShapePreserving):
    """Softmax along an axis (default 1: the classes of (N, K), the channels of NCHW).

    `- softmax`"""

    axis: int = attr(1, doc="axis to normalise over; negative counts from the end",
                     min=-8, max=8)

    main = "axis"

    def infer(self, x: Shape) -> Shape:
        if not -len(x) <= self.axis < len(x):
            raise RuleError(f"axis {self.axis} is out of range for a {len(x)}-D input",
                            code="E306", attr="axis",
                            hints=[f"use an axis from {-len(x)} to {len(x) - 1}"])
        return x

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("Softmax", [xs[0].name], out.name, axis=self.axis)

    def torch_module(self, x, nn, classes):
        return nn.Softmax(dim=self.axis)


@layer("dropout")
@dataclass(frozen=True)
class Dropout(ShapePreserving):
    """Dropout: active in training only, so the inference graph holds an Identity.

    `- dropout: 0.5`"""

    rate: float = attr(0.5, doc="fraction of activations dropped in training", min=0, max=1,
                       exclusive_max=True)

    main = "rate"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("Identity", [xs[0].name], out.name)

    def torch_module(self, x, nn, classes):
        return nn.Dropout(self.rate)
