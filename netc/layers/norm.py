"""Normalisation: batch norm (inference form) and local response norm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import RuleError
from .base import Lowering, Shape, ShapePreserving, Tensor, WeightSpec, attr, layer, need_rank


@layer("batchnorm")
@dataclass(frozen=True)
class BatchNorm(ShapePreserving):
    """Batch normalisation with running statistics (inference form); ONNX BatchNormalization.

    `- batchnorm`. Weights, as PyTorch names them: `weight` (gamma) and `bias` (beta), which
    are learned, and the buffers `running_mean` and `running_var`.
    """

    eps: float = attr(1e-5, doc="added to the variance for numerical stability", min=0)

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
            WeightSpec("running_var", c, "ones", trainable=False),
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
@dataclass(frozen=True)
class LRN(ShapePreserving):
    """Local response normalisation across channels (AlexNet); ONNX LRN.

    y = x / (bias + alpha / size · Σ x²)^beta over `size` neighbouring channels.
    `- lrn: {size: 5, alpha: 0.0001, beta: 0.75, bias: 2}`"""

    size: int = attr(5, doc="number of neighbouring channels (odd)", min=1, max=1 << 16)
    alpha: float = attr(1e-4, doc="scale", min=0)
    beta: float = attr(0.75, doc="exponent", min=0)
    bias: float = attr(1.0, doc="additive constant k", min=0)

    main = "size"

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), "lrn")
        if self.size % 2 == 0:
            # ONNX Runtime only implements odd sizes (a window centred on the channel)
            raise RuleError(f"size must be odd, got {self.size}", code="E105", attr="size",
                            hints=[f"use {self.size - 1} or {self.size + 1}"])
        return x

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("LRN", [xs[0].name], out.name, size=self.size, alpha=self.alpha, beta=self.beta,
               bias=self.bias)

    def torch_module(self, x, nn, classes):
        # PyTorch's window is size // 2 channels before and (size - 1) // 2 after, ONNX's the
        # same for the odd sizes netc allows; both divide alpha by size
        return nn.LocalResponseNorm(self.size, alpha=self.alpha, beta=self.beta, k=self.bias)
