"""Normalisation: batch norm (inference form), layer, group and instance norm, local response
norm; and `param`, a learned tensor named in the spec (ConvNeXt's layer scale)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Literal

from ..errors import RuleError
from .base import (Init, Layer, Lowering, Shape, ShapePreserving, Tensor, WeightSpec, attr,
                   fmt_number, fmt_shape, layer, layer_fields, need_rank)


@layer("batchnorm")
@layer_fields
class BatchNorm(ShapePreserving):
    """Batch normalisation with running statistics (inference form); ONNX BatchNormalization.

    `- batchnorm`. Weights, as PyTorch names them: `weight` (gamma) and `bias` (beta), which
    are learned, and the buffers `running_mean` and `running_var`.
    """

    eps: float = attr(1e-5, doc="added to the variance for numerical stability", min=0)

    foreign_names = ("BatchNormalization",)
    foreign_attributes = {"epsilon": "eps"}

    subtracts_mean = True
    is_affine = True

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (2, 4), "batchnorm")
        return x

    def weights(self, x: Shape) -> list[WeightSpec]:
        c = (x[1],)
        return [
            WeightSpec("weight", c, "ones"),
            WeightSpec("bias", c, "zeros"),
            WeightSpec("running_mean", c, "zeros", trainable=False),
            WeightSpec("running_var", c, "ones", trainable=False, nonnegative=True),
        ]

    def affine(self, tensors: Mapping) -> tuple:
        """This layer as y = (x - mean) · scale + shift per channel, from its tensors (float64
        arrays by param name): (mean, scale, shift), scale = weight / sqrt(running_var + eps)
        (`--fold-bn` folds it into the conv before it)."""
        import numpy as np

        scale = tensors["weight"] / np.sqrt(tensors["running_var"] + self.eps)
        return tensors["running_mean"], scale, tensors["bias"]

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("BatchNormalization",
               [xs[0].name, w["weight"], w["bias"], w["running_mean"], w["running_var"]],
               out.name, epsilon=self.eps)

    def torch_module(self, x, nn, classes):
        return (nn.BatchNorm2d if len(x) == 4 else nn.BatchNorm1d)(x[1], eps=self.eps)


@layer("lrn")
@layer_fields
class LRN(ShapePreserving):
    """Local response normalisation across channels (AlexNet); ONNX LRN.

    y = x / (bias + alpha / size · Σ x²)^beta over `size` neighbouring channels.
    `- lrn: {size: 5, alpha: 0.0001, beta: 0.75, bias: 2}`"""

    size: int = attr(5, doc="number of neighbouring channels (odd)", min=1, max=1 << 16)
    alpha: float = attr(1e-4, doc="scale", min=0)
    beta: float = attr(0.75, doc="exponent", min=0)
    bias: float = attr(1.0, doc="additive constant k", min=0)

    foreign_names = ("LocalResponseNorm", "LocalResponseNormalization")
    foreign_attributes = {"k": "bias"}

    main = "size"

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), "lrn")
        if self.size % 2 == 0:
            # ONNX Runtime only implements odd sizes (a window centred on the channel)
            raise RuleError(f"size must be odd, got {self.size}", code="E105", attr="size",
                            hints=[f"use {self.size - 1} or {self.size + 1}"])
        # ONNX Runtime's LRN refuses a model whose alpha or beta is not above 0 (its kernel
        # enforces alpha > 0 and beta > 0 when the session loads), though PyTorch computes
        # them: x / bias^beta, a fixed scale, for alpha 0; x itself for beta 0
        for name, fix in (("alpha", "a scale by 1/bias^beta is `- mul` by a `param`; "
                           "the usual alpha is 0.0001 (AlexNet's)"),
                          ("beta", "an LRN with beta 0 computes x itself: remove the layer")):
            if getattr(self, name) <= 0:
                raise RuleError(f"`{name}` must be above 0 (ONNX Runtime's LRN requires it), "
                                f"not {fmt_number(getattr(self, name))}", code="E105", attr=name,
                                hints=[fix])
        return x

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("LRN", [xs[0].name], out.name, size=self.size, alpha=self.alpha, beta=self.beta,
               bias=self.bias)

    def torch_module(self, x, nn, classes):
        # PyTorch's window is size // 2 channels before and (size - 1) // 2 after, ONNX's the
        # same for the odd sizes netc allows; both divide alpha by size
        return nn.LocalResponseNorm(self.size, alpha=self.alpha, beta=self.beta, k=self.bias)


# --- layer, group and instance norm: statistics of each image, no running statistics ----------


def _affine_weights(c: int, affine: bool) -> list[WeightSpec]:
    """PyTorch's `weight` (gamma, ones) and `bias` (beta, zeros) of C values, when affine."""
    if not affine:
        return []
    return [WeightSpec("weight", (c,), "ones"), WeightSpec("bias", (c,), "zeros")]


def _scale_and_shift(b: Lowering, w: Mapping[str, str], out: Tensor, c: int,
                     affine: bool) -> tuple[str, str]:
    """The (C,) scale and shift a normalisation op takes: the layer's weight and bias when
    affine, else constant ones and zeros in the model's precision."""
    if affine:
        return w["weight"], w["bias"]
    b.float_constant(f"{out.name}/ones", [1.0] * c)
    b.float_constant(f"{out.name}/zeros", [0.0] * c)
    return f"{out.name}/ones", f"{out.name}/zeros"


@layer("layernorm")
@layer_fields
class LayerNorm(ShapePreserving):
    """Layer normalisation of each position's channels (or of the last axis), with a learned
    scale and shift per channel; ONNX LayerNormalization.

    `- layernorm: {axis: channels, eps: 1e-6}`. `axis: channels` normalises the C values of
    each pixel of an N×C×H×W input (torchvision ConvNeXt's LayerNorm2d: permute to NHWC,
    layer-norm over C, permute back; lowered as Transpose, LayerNormalization, Transpose);
    `axis: last` normalises the last axis, as `nn.LayerNorm(C)` does on a channels-last or
    (N, features) input. Weights, as PyTorch names them: `weight` and `bias`, (C,) each,
    where C is the size of the normalised axis (none with `affine: false`).
    """

    axis: Literal["channels", "last"] = attr(
        "channels", doc="what is normalised: each pixel's channels (axis 1 of N×C×H×W), or "
        "the last axis")
    eps: float = attr(1e-5, doc="added to the variance for numerical stability (PyTorch: "
                      "1e-5; ConvNeXt: 1e-6)", min=0)
    affine: bool = attr(True, doc="learn a scale (weight) and shift (bias) per channel")

    foreign_names = ("LayerNormalization",)
    foreign_attributes = {"epsilon": "eps", "elementwise_affine": "affine"}

    main = "axis"

    def infer(self, x: Shape) -> Shape:
        if self.axis == "channels":
            need_rank(x, (2, 4), "layernorm",
                      "normalise the last axis of another layout with `axis: last`")
        elif len(x) < 2:
            need_rank(x, (2, 4), "layernorm")
        return x

    def _size(self, x: Shape) -> int:
        return x[1] if self.axis == "channels" else x[-1]

    def weights(self, x: Shape) -> list[WeightSpec]:
        return _affine_weights(self._size(x), self.affine)

    def equation(self, out: Shape, x: Shape) -> list[str]:
        c = self._size(x)
        what = ("the channels of each position" if self.axis == "channels" and len(x) == 4
                else "the last axis")
        return ["shape: the same as the input",
                f"  mean and variance over {what}: {c} values each"]

    def label(self) -> str:
        return "layernorm" if self.axis == "last" else "layernorm (channels)"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0]
        c = self._size(x.shape)
        scale, shift = _scale_and_shift(b, w, out, c, self.affine)
        if self.axis == "channels" and len(x.shape) == 4:
            b.node("Transpose", [x.name], f"{out.name}/nhwc", perm=[0, 2, 3, 1])
            b.node("LayerNormalization", [f"{out.name}/nhwc", scale, shift],
                   f"{out.name}/normed", axis=-1, epsilon=self.eps)
            b.node("Transpose", [f"{out.name}/normed"], out.name, perm=[0, 3, 1, 2])
        else:
            b.node("LayerNormalization", [x.name, scale, shift], out.name, axis=-1,
                   epsilon=self.eps)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"LayerNorm2d": _layernorm2d(torch)}

    def torch_module(self, x, nn, classes):
        kind = classes.LayerNorm2d if self.axis == "channels" and len(x) == 4 else nn.LayerNorm
        return kind(self._size(x), eps=self.eps, elementwise_affine=self.affine)


@lru_cache(maxsize=None)
def _layernorm2d(torch):
    class LayerNorm2d(torch.nn.LayerNorm):
        """nn.LayerNorm over the channels of an N×C×H×W tensor (torchvision's LayerNorm2d)."""

        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = torch.nn.functional.layer_norm(x, self.normalized_shape, self.weight,
                                               self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    return LayerNorm2d


@layer("groupnorm")
@layer_fields
class GroupNorm(ShapePreserving):
    """Group normalisation: the channels split into groups, each normalised over its channels
    and positions, then a learned scale and shift per channel (nn.GroupNorm).

    `- groupnorm: {groups: 32}`. Lowered as Reshape to (N, groups, -1), InstanceNormalization,
    Reshape back, Mul by `weight` and Add `bias` ((C,) each, as PyTorch names them; none with
    `affine: false`): ONNX's GroupNormalization needs opset 18.
    """

    groups: int = attr(doc="number of groups the channels are split into (dividing C)", min=1,
                       max=1 << 20)
    eps: float = attr(1e-5, doc="added to the variance for numerical stability", min=0)
    affine: bool = attr(True, doc="learn a scale (weight) and shift (bias) per channel")

    foreign_names = ("GroupNormalization",)
    foreign_attributes = {"num_groups": "groups", "epsilon": "eps"}

    main = "groups"

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (2, 4), "groupnorm")
        c = x[1]
        if c % self.groups:
            fits = [g for g in range(1, c + 1) if c % g == 0]
            near = min(fits, key=lambda g: (abs(g - self.groups), g))
            raise RuleError(
                f"{c} channels can't be split into {self.groups} groups", code="E303",
                attr="groups",
                details=[f"{c} / {self.groups} = {c / self.groups:.2f}, not a whole number"],
                hints=[f"use a number of groups that divides {c}, such as {near}"],
            )
        return x

    def weights(self, x: Shape) -> list[WeightSpec]:
        return _affine_weights(x[1], self.affine)

    def equation(self, out: Shape, x: Shape) -> list[str]:
        per = x[1] // self.groups
        where = f"{per}×{x[2]}×{x[3]}" if len(x) == 4 else f"{per}"
        return ["shape: the same as the input",
                f"  {x[1]} channels in {self.groups} groups of {x[1]} / {self.groups} = {per}: "
                f"mean and variance over {where} values each"]

    def label(self) -> str:
        return f"groupnorm {self.groups}"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x, g = xs[0], self.groups
        n = out.name
        b.constant(f"{n}/grouped_shape", [0, g, -1])
        b.constant(f"{n}/shape", [0, *x.shape[1:]])
        b.float_constant(f"{n}/ones", [1.0] * g)
        b.float_constant(f"{n}/zeros", [0.0] * g)
        b.node("Reshape", [x.name, f"{n}/grouped_shape"], f"{n}/grouped")
        last = f"{n}/normed" if self.affine else n
        b.node("InstanceNormalization", [f"{n}/grouped", f"{n}/ones", f"{n}/zeros"],
               f"{n}/grouped_normed", epsilon=self.eps)
        b.node("Reshape", [f"{n}/grouped_normed", f"{n}/shape"], last)
        if self.affine:
            scale, shift = w["weight"], w["bias"]
            if len(x.shape) == 4:  # (C,) -> (C, 1, 1), broadcasting over H and W
                b.constant(f"{n}/axes", [1, 2])
                b.node("Unsqueeze", [scale, f"{n}/axes"], f"{n}/scale")
                b.node("Unsqueeze", [shift, f"{n}/axes"], f"{n}/shift")
                scale, shift = f"{n}/scale", f"{n}/shift"
            b.node("Mul", [last, scale], f"{n}/scaled")
            b.node("Add", [f"{n}/scaled", shift], n)

    def torch_module(self, x, nn, classes):
        return nn.GroupNorm(self.groups, x[1], eps=self.eps, affine=self.affine)


@layer("instancenorm")
@layer_fields
class InstanceNorm(ShapePreserving):
    """Instance normalisation: each channel of each image normalised over its positions
    (nn.InstanceNorm2d, without running statistics); ONNX InstanceNormalization.

    `- instancenorm: {affine: true}`. Weights with `affine: true`, as PyTorch names them:
    `weight` and `bias`, (C,) each; without (PyTorch's default), none.
    """

    eps: float = attr(1e-5, doc="added to the variance for numerical stability", min=0)
    affine: bool = attr(False, doc="learn a scale (weight) and shift (bias) per channel")

    foreign_names = ("InstanceNormalization",)
    foreign_attributes = {"epsilon": "eps"}

    subtracts_mean = True

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), "instancenorm")
        return x

    def weights(self, x: Shape) -> list[WeightSpec]:
        return _affine_weights(x[1], self.affine)

    def equation(self, out: Shape, x: Shape) -> list[str]:
        return ["shape: the same as the input",
                f"  mean and variance of each channel over {x[2]}×{x[3]} values"]

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        scale, shift = _scale_and_shift(b, w, out, xs[0].shape[1], self.affine)
        b.node("InstanceNormalization", [xs[0].name, scale, shift], out.name, epsilon=self.eps)

    def torch_module(self, x, nn, classes):
        return nn.InstanceNorm2d(x[1], eps=self.eps, affine=self.affine)


# --- a learned tensor named in the spec -------------------------------------------------------


@layer("param")
@layer_fields
class Param(Layer):
    """A learned tensor, one value per channel of its input, as a layer whose output is the
    tensor itself and whose full name is its state_dict key (ConvNeXt's layer scale).

    `- param: {axis: channels, init: constant(1e-6)}`. A PyTorch module may hold a parameter
    of its own beside its children: torchvision's ConvNeXt block keeps `layer_scale`, of shape
    (C, 1, 1), as a Parameter of the block, so its key is `features.1.0.layer_scale` while the
    block's layers are `features.1.0.block.0`.... In netc the tensor is a layer named after it
    (`name: layer_scale` inside the block instance `features.1.0`), and a join uses it:
    `- mul: {from: [layer_scale, block.5]}` computes torchvision's `layer_scale * block(x)`.

    The layer reads its input only for its size: `axis: channels` gives (C, 1, 1) for an
    N×C×H×W input (broadcasting over H and W), `axis: last` gives (C,) for the size C of the
    last axis (a channels-last or (N, features) input). Its output has no batch axis: it is
    the same for every image. Its one weight has the flag `own_name` (`WeightSpec`): its name
    is the layer's full name, not `<layer>.weight`, so `--weights` and `netc weights` use the
    key `features.1.0.layer_scale`, and in netc.torch it is a Parameter of the module holding
    the layer (the block instance), under the layer's own name. In ONNX the tensor is an
    initializer of that name, which the layers after it read: no node computes it.
    """

    axis: Literal["channels", "last"] = attr(
        "channels", doc="channels: (C, 1, 1) for an N×C×H×W input; last: (C,), the size of "
        "the last axis")
    init: Init = attr("ones", doc="initial values (torchvision's ConvNeXt: constant(1e-6))")

    main = "axis"

    def _shape(self, x: Shape) -> tuple[int, ...]:
        return (x[1], 1, 1) if self.axis == "channels" else (x[-1],)

    def infer(self, x: Shape) -> Shape:
        if self.axis == "channels":
            need_rank(x, (4,), "param", "for one value per feature of (N, features), write "
                      "`axis: last`")
        elif len(x) < 2:
            need_rank(x, (2, 4), "param")
        return self._shape(x)

    def weights(self, x: Shape) -> list[WeightSpec]:
        c = self._shape(x)[0]
        return [WeightSpec("weight", self._shape(x), self.init, c, c, own_name=True)]

    def equation(self, out: Shape, x: Shape) -> list[str]:
        where = "channel" if self.axis == "channels" else "value of the last axis"
        return [f"shape: {fmt_shape(out)}: one learned value per {where} of the input "
                f"({fmt_shape(x)}), the same for every image"]

    def label(self) -> str:
        return f"param {self.init}"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        # the initializer is the layer's value; a copy only where the output is renamed
        # (a network output in float16, converted at the graph's edge)
        if w["weight"] != out.name:
            b.node("Identity", [w["weight"]], out.name)

    def torch_module(self, x, nn, classes):
        # netc.torch makes the weight a Parameter of the parent module (`own_name`): the layer
        # has no module of its own, and its output is that Parameter
        return None
