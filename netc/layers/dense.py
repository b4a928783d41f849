"""Fully connected layers, and flattening into them."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RuleError
from .base import Init, Layer, Shape, WeightSpec, attr, fmt_shape, layer, volume


@layer("dense")
@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected layer y = x·Wᵀ + b on an (N, features) input; lowers to ONNX Gemm.

    `- dense: 10` (shorthand for `dense: {units: 10}`). Weights: `weight` (units, features)
    and `bias` (units), PyTorch's nn.Linear layout.
    """

    units: int = attr(doc="number of outputs", min=1, max=1 << 24)
    bias: bool = attr(True, doc="add a learned bias per output")
    init: Init = attr("he_normal", doc="initial weights: he_normal, he_uniform, glorot_normal, "
                      "glorot_uniform, zeros, ones, normal(STD), uniform(A) or constant(C)")

    main = "units"

    def infer(self, x: Shape) -> Shape:
        if len(x) != 2:
            flat = volume(x[1:])
            raise RuleError(
                f"needs a flat input (N, features), got {fmt_shape(x)}", code="E304",
                input=0, hints=[f"add `- flatten` before it (that gives {flat:,} features)"],
            )
        return (x[0], self.units)

    def weights(self, x: Shape) -> list[WeightSpec]:
        ws = [WeightSpec("weight", (self.units, x[1]), self.init, x[1], self.units)]
        if self.bias:
            ws.append(WeightSpec("bias", (self.units,), "zeros", x[1], self.units))
        return ws

    def macs(self, out: Shape, x: Shape) -> int:
        return x[1] * self.units

    def lower(self, b, xs, w, out) -> None:
        inputs = [xs[0].name, w["weight"]] + ([w["bias"]] if self.bias else [])
        b.node("Gemm", inputs, out.name, transB=1)

    def torch_module(self, x, nn, classes):
        return nn.Linear(x[1], self.units, bias=self.bias)


@layer("flatten")
@dataclass(frozen=True)
class Flatten(Layer):
    """Flatten everything but the batch: N×C×H×W -> N×(C·H·W), in PyTorch's order.

    `- flatten`"""

    def infer(self, x: Shape) -> Shape:
        return (x[0], volume(x[1:]))

    def lower(self, b, xs, w, out) -> None:
        b.node("Flatten", [xs[0].name], out.name, axis=1)

    def torch_module(self, x, nn, classes):
        return nn.Flatten()
