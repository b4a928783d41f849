"""Fully connected layers, and flattening into them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import Lint, RuleError
from .base import (Init, Layer, Lowering, Shape, Site, Tensor, WeightSpec, attr, bias_lint,
                   fmt_shape, layer, volume)


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

    def equation(self, out: Shape, x: Shape) -> list[str]:
        return [f"shape: (N, {x[1]:,} features) -> (N, {self.units:,} units)"]

    def macs_formula(self, out: Shape, x: Shape) -> str:
        return f"{x[1]:,} features × {self.units:,} units"

    def label(self) -> str:
        return f"{self.kind} {self.units}"

    def lints(self, site: Site) -> list[Lint]:
        """W202: a bias that the batchnorm after it cancels."""
        found = bias_lint(self, site, "feature")
        return [found] if found else []

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
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

    def equation(self, out: Shape, x: Shape) -> list[str]:
        dims = " × ".join(str(d) for d in x[1:])
        return [f"shape: every axis but the batch flattened: {dims} = {out[1]:,} features"]

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("Flatten", [xs[0].name], out.name, axis=1)

    def torch_module(self, x, nn, classes):
        return nn.Flatten()
