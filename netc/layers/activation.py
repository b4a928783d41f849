"""Element-wise activations, softmax and dropout: the output shape is the input shape."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Literal, Optional

from ..errors import RuleError
from .base import (Lowering, Shape, ShapePreserving, Tensor, WeightSpec, attr, layer, layer_fields,
                   need_rank)
from .base import fmt_number as _num


@layer_fields
class _Elementwise(ShapePreserving):
    op = ""
    module = ""  # torch.nn's module of the same function

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node(self.op, [xs[0].name], out.name)

    def torch_module(self, x, nn, classes):
        return getattr(nn, self.module)()


@layer("relu")
@layer_fields
class ReLU(_Elementwise):
    """max(x, 0). `- relu`"""

    op, module = "Relu", "ReLU"


@layer("tanh")
@layer_fields
class Tanh(_Elementwise):
    """Hyperbolic tangent. `- tanh`"""

    op, module = "Tanh", "Tanh"


@layer("sigmoid")
@layer_fields
class Sigmoid(_Elementwise):
    """Logistic sigmoid 1 / (1 + e^-x). `- sigmoid`"""

    op, module = "Sigmoid", "Sigmoid"


@layer("leakyrelu")
@layer_fields
class LeakyReLU(ShapePreserving):
    """x if x > 0 else alpha·x. `- leakyrelu: {alpha: 0.1}`"""

    alpha: float = attr(0.01, doc="slope for negative inputs")

    foreign_attributes = {"negative_slope": "alpha"}

    main = "alpha"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("LeakyRelu", [xs[0].name], out.name, alpha=self.alpha)

    def torch_module(self, x, nn, classes):
        return nn.LeakyReLU(self.alpha)


@layer("softmax")
@layer_fields
class Softmax(ShapePreserving):
    """Softmax along an axis (default 1: the classes of (N, K), the channels of NCHW).

    `- softmax`"""

    axis: int = attr(1, doc="axis to normalise over; negative counts from the end",
                     min=-8, max=8)

    foreign_attributes = {"dim": "axis"}

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
@layer_fields
class Dropout(ShapePreserving):
    """Dropout: active in training only, so the inference graph holds an Identity.

    `- dropout: 0.5`"""

    rate: float = attr(0.5, doc="fraction of activations dropped in training", min=0, max=1,
                       exclusive_max=True)

    foreign_attributes = {"p": "rate"}

    main = "rate"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("Identity", [xs[0].name], out.name)

    def torch_module(self, x, nn, classes):
        return nn.Dropout(self.rate)


# --- the activations of the networks since 2016 -------------------------------------------------
# Each computes PyTorch's function of the same name (torch.nn.functional), lowered to ONNX
# opset-17 operators that ONNX Runtime runs natively; a function opset 17 has no operator for
# (SiLU, GELU, Mish) is written out from the operators it is made of.


@layer_fields
class _Function(ShapePreserving):
    """An element-wise function: the shape stays; `explain` also says what it computes."""

    def formula(self) -> str:
        raise NotImplementedError

    def equation(self, out: Shape, x: Shape) -> list[str]:
        return ["shape: the same as the input", f"  y = {self.formula()}, element-wise"]


def _clip(b: Lowering, x: str, lo: float | None, hi: float | None, out: str) -> None:
    """ONNX Clip, whose bounds are inputs at opset 17: constants in the model's precision, an
    empty name for a bound left out."""
    bounds = []
    for which, value in (("min", lo), ("max", hi)):
        if value is None:
            bounds.append("")
        else:
            b.float_constant(f"{out}/{which}", [value], shape=())
            bounds.append(f"{out}/{which}")
    while bounds and bounds[-1] == "":  # trailing optional inputs are simply left out
        bounds.pop()
    b.node("Clip", [x, *bounds], out)


@layer("relu6")
@layer_fields
class ReLU6(_Function):
    """min(max(x, 0), 6), as in MobileNet. `- relu6`"""

    def formula(self) -> str:
        return "min(max(x, 0), 6)"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        _clip(b, xs[0].name, 0.0, 6.0, out.name)

    def torch_module(self, x, nn, classes):
        return nn.ReLU6()


@lru_cache(maxsize=None)
def _torch_classes(torch) -> dict[str, type]:
    class Clip(torch.nn.Module):
        """torch.clamp(x, min, max), either bound possibly None (unbounded)."""

        def __init__(self, min: float | None = None, max: float | None = None) -> None:
            super().__init__()
            self.min, self.max = min, max

        def forward(self, x):
            return torch.clamp(x, self.min, self.max)

        def extra_repr(self) -> str:
            return f"min={self.min}, max={self.max}"

    return {"Clip": Clip}


@layer("clip")
@layer_fields
class Clip(_Function):
    """Clamps every value into [min, max]; a bound left out is no bound (torch.clamp).

    `- clip: {min: -1, max: 1}`"""

    min: Optional[float] = attr(None, doc="the lower bound (none: unbounded below)")
    max: Optional[float] = attr(None, doc="the upper bound (none: unbounded above)")

    foreign_attributes = {"min_val": "min", "max_val": "max"}

    def infer(self, x: Shape) -> Shape:
        if self.min is None and self.max is None:
            raise RuleError("clip needs `min`, `max` or both: without them it does nothing",
                            code="E105", hints=["write `- clip: {min: 0, max: 6}`, or remove "
                                                "the layer"])
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise RuleError(
                f"`min` ({_num(self.min)}) must be less than `max` ({_num(self.max)})",
                code="E105", attr="max",
                details=[f"every output would be {_num(self.max)}" if self.min > self.max
                         else f"every output would be {_num(self.min)}"],
                hints=[f"swap them: `{{min: {_num(self.max)}, max: {_num(self.min)}}}`"
                       if self.min > self.max else "give `max` a larger value than `min`"])
        return x

    def formula(self) -> str:
        lo = "x" if self.min is None else f"max(x, {_num(self.min)})"
        return lo if self.max is None else f"min({lo}, {_num(self.max)})"

    def label(self) -> str:
        lo = "-∞" if self.min is None else _num(self.min)
        hi = "∞" if self.max is None else _num(self.max)
        return f"clip [{lo}, {hi}]"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        _clip(b, xs[0].name, self.min, self.max, out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return _torch_classes(torch)

    def torch_module(self, x, nn, classes):
        if self.min is not None and self.max is not None:
            return nn.Hardtanh(self.min, self.max)
        return classes.Clip(self.min, self.max)


@layer("hardsigmoid")
@layer_fields
class HardSigmoid(_Function):
    """PyTorch's hard sigmoid min(max(x/6 + 1/2, 0), 1) (ONNX's default slope is 0.2; netc's
    is PyTorch's 1/6). `- hardsigmoid`"""

    def formula(self) -> str:
        return "min(max(x/6 + 1/2, 0), 1)"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("HardSigmoid", [xs[0].name], out.name, alpha=1 / 6, beta=0.5)

    def torch_module(self, x, nn, classes):
        return nn.Hardsigmoid()


@layer("hardswish")
@layer_fields
class HardSwish(_Function):
    """x · hardsigmoid(x) = x · min(max(x + 3, 0), 6) / 6, as in MobileNetV3. `- hardswish`"""

    def formula(self) -> str:
        return "x · min(max(x + 3, 0), 6) / 6"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("HardSwish", [xs[0].name], out.name)

    def torch_module(self, x, nn, classes):
        return nn.Hardswish()


@layer("silu")
@layer_fields
class SiLU(_Function):
    """x · sigmoid(x), also called swish (EfficientNet). `- silu`"""

    def formula(self) -> str:
        return "x · sigmoid(x)"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0].name
        b.node("Sigmoid", [x], f"{out.name}/sigmoid")
        b.node("Mul", [x, f"{out.name}/sigmoid"], out.name)

    def torch_module(self, x, nn, classes):
        return nn.SiLU()


@layer("gelu")
@layer_fields
class GELU(_Function):
    """x · Φ(x), Φ the standard normal CDF, exactly (with erf) or by PyTorch's tanh formula.

    `- gelu: {approximate: tanh}`"""

    approximate: Literal["none", "tanh"] = attr(
        "none", doc="none: 0.5·x·(1 + erf(x/√2)); tanh: 0.5·x·(1 + tanh(√(2/π)·(x + "
        "0.044715·x³)))")

    main = "approximate"

    def formula(self) -> str:
        if self.approximate == "tanh":
            return "0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))"
        return "0.5·x·(1 + erf(x/√2))"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x, o = xs[0].name, out.name
        b.float_constant(f"{o}/one", [1.0], shape=())
        b.float_constant(f"{o}/half", [0.5], shape=())
        if self.approximate == "tanh":
            b.float_constant(f"{o}/cubic", [0.044715], shape=())
            b.float_constant(f"{o}/scale", [math.sqrt(2 / math.pi)], shape=())
            b.node("Mul", [x, x], f"{o}/x2")
            b.node("Mul", [f"{o}/x2", x], f"{o}/x3")
            b.node("Mul", [f"{o}/x3", f"{o}/cubic"], f"{o}/cx3")
            b.node("Add", [x, f"{o}/cx3"], f"{o}/inner")
            b.node("Mul", [f"{o}/inner", f"{o}/scale"], f"{o}/scaled")
            b.node("Tanh", [f"{o}/scaled"], f"{o}/phi")
        else:  # the pattern ONNX Runtime fuses into its Gelu kernel
            b.float_constant(f"{o}/sqrt2", [math.sqrt(2)], shape=())
            b.node("Div", [x, f"{o}/sqrt2"], f"{o}/scaled")
            b.node("Erf", [f"{o}/scaled"], f"{o}/phi")
        b.node("Add", [f"{o}/phi", f"{o}/one"], f"{o}/cdf2")
        b.node("Mul", [x, f"{o}/cdf2"], f"{o}/xcdf2")
        b.node("Mul", [f"{o}/xcdf2", f"{o}/half"], o)

    def torch_module(self, x, nn, classes):
        return nn.GELU(approximate=self.approximate)


@layer("mish")
@layer_fields
class Mish(_Function):
    """x · tanh(softplus(x)), softplus(x) = ln(1 + e^x). `- mish`"""

    def formula(self) -> str:
        return "x · tanh(ln(1 + e^x))"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x, o = xs[0].name, out.name
        b.node("Softplus", [x], f"{o}/softplus")
        b.node("Tanh", [f"{o}/softplus"], f"{o}/tanh")
        b.node("Mul", [x, f"{o}/tanh"], o)

    def torch_module(self, x, nn, classes):
        return nn.Mish()


@layer("elu")
@layer_fields
class ELU(_Function):
    """x if x > 0 else alpha·(e^x - 1). `- elu: {alpha: 1.0}`"""

    alpha: float = attr(1.0, doc="the value negative inputs saturate to is -alpha")

    main = "alpha"

    def formula(self) -> str:
        return f"x if x > 0 else {_num(self.alpha)}·(e^x - 1)"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("Elu", [xs[0].name], out.name, alpha=self.alpha)

    def torch_module(self, x, nn, classes):
        return nn.ELU(self.alpha)


@layer("prelu")
@layer_fields
class PReLU(_Function):
    """x if x > 0 else weight[c]·x, with a learned slope per channel (or feature), starting
    at 0.25 as in PyTorch. `- prelu`

    Weight: `weight` (channels), as nn.PReLU(num_parameters=channels)."""

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (2, 4), "prelu")
        return x

    def weights(self, x: Shape) -> list[WeightSpec]:
        return [WeightSpec("weight", (x[1],), "constant(0.25)", fan_in=1, fan_out=1)]

    def formula(self) -> str:
        return "x if x > 0 else weight[c]·x"

    def equation(self, out: Shape, x: Shape) -> list[str]:
        return super().equation(out, x) + [f"  weight: one slope per channel, {x[1]}"]

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x, o = xs[0], out.name
        slope = w["weight"]
        if len(x.shape) == 4:  # (C,) -> (C, 1, 1), to broadcast against N×C×H×W
            b.constant(f"{o}/axes", [1, 2])
            b.node("Unsqueeze", [slope, f"{o}/axes"], f"{o}/slope")
            slope = f"{o}/slope"
        b.node("PRelu", [x.name, slope], o)

    def torch_module(self, x, nn, classes):
        return nn.PReLU(num_parameters=x[1])
