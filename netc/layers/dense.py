"""Fully connected layers, and flattening into them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from ..errors import Lint, RuleError
from .base import (Init, Layer, Lowering, Shape, Site, Tensor, WeightSpec, attr, bias_lint,
                   fmt_shape, layer, layer_fields, volume)


@layer("dense")
@layer_fields
class Dense(Layer):
    """Fully connected layer y = x·Wᵀ + b on an (N, features) input (ONNX Gemm), or with `axis:
    last` on the last axis of an input of any rank, as nn.Linear does (ONNX MatMul).

    `- dense: 10` (shorthand for `dense: {units: 10}`); `- dense: {units: 3072, axis: last}`
    on a channels-last N×H×W×C map (ConvNeXt's MLP after a permute). Weights: `weight`
    (units, features) and `bias` (units), PyTorch's nn.Linear layout, for either axis.
    """

    units: int = attr(doc="number of outputs", min=1, max=1 << 24)
    bias: bool = attr(True, doc="add a learned bias per output")
    init: Init = attr("he_normal", doc="initial weights: he_normal, he_uniform, glorot_normal, "
                      "glorot_uniform, zeros, ones, normal(STD), uniform(A) or constant(C)")
    axis: Literal["flat", "last"] = attr(
        "flat", doc="the features: `flat`, an (N, features) input (a map needs a flatten "
        "first); `last`, the last axis of an input of any rank, every other axis kept")

    foreign_names = ("Linear", "FullyConnected")
    foreign_attributes = {"out_features": "units", "use_bias": "bias",
                          "kernel_initializer": "init"}

    main = "units"

    def infer(self, x: Shape) -> Shape:
        if self.axis == "last":
            return (*x[:-1], self.units)
        if len(x) != 2:
            flat = volume(x[1:])
            hints = [f"add `- flatten` before it (that gives {flat:,} features)"]
            if len(x) != 4:  # an N×C×H×W map into dense almost always lacks its flatten
                hints.append(f"or, for {x[-1]:,} features on the last axis with the other "
                             "axes kept, write `axis: last`")
            raise RuleError(
                f"needs a flat input (N, features), got {fmt_shape(x)}", code="E304",
                input=0, hints=hints,
            )
        return (x[0], self.units)

    def weights(self, x: Shape) -> list[WeightSpec]:
        features = x[-1]
        ws = [WeightSpec("weight", (self.units, features), self.init, features, self.units)]
        if self.bias:
            ws.append(WeightSpec("bias", (self.units,), "zeros", features, self.units))
        return ws

    def macs(self, out: Shape, x: Shape) -> int:
        return x[-1] * self.units * volume(x[1:-1])

    def equation(self, out: Shape, x: Shape) -> list[str]:
        if len(x) == 2:
            return [f"shape: (N, {x[1]:,} features) -> (N, {self.units:,} units)"]
        kept = ", ".join(str(d) for d in x[1:-1])
        return [f"shape: (N, {kept}, {x[-1]:,} features) -> (N, {kept}, {self.units:,} units)",
                "  (on the last axis: the same weights at every position of the other axes)"]

    def macs_formula(self, out: Shape, x: Shape) -> str:
        text = f"{x[-1]:,} features × {self.units:,} units"
        if len(x) > 2:
            text += f" × {volume(x[1:-1]):,} positions ({' × '.join(map(str, x[1:-1]))})"
        return text

    def label(self) -> str:
        return f"{self.kind} {self.units}" + (" (last axis)" if self.axis == "last" else "")

    def lints(self, site: Site) -> list[Lint]:
        """W202: a bias that the batchnorm after it cancels."""
        found = bias_lint(self, site, "feature")
        return [found] if found else []

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0]
        if len(x.shape) == 2:
            inputs = [x.name, w["weight"]] + ([w["bias"]] if self.bias else [])
            b.node("Gemm", inputs, out.name, transB=1)
            return
        # Gemm is 2-D only: MatMul broadcasts over the leading axes. The weight keeps
        # PyTorch's (units, features) layout, so a Transpose (folded by ONNX Runtime when the
        # session starts) makes it (features, units)
        b.node("Transpose", [w["weight"]], f"{out.name}/weight_t", perm=[1, 0])
        product = f"{out.name}/matmul" if self.bias else out.name
        b.node("MatMul", [x.name, f"{out.name}/weight_t"], product)
        if self.bias:
            b.node("Add", [product, w["bias"]], out.name)

    def torch_module(self, x, nn, classes):
        return nn.Linear(x[-1], self.units, bias=self.bias)


@layer("flatten")
@layer_fields
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
