"""Regularisers active only in training: at inference each is an Identity in the ONNX model,
and netc.torch computes them in training mode (`model.train()`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Literal

from .base import Lowering, Shape, ShapePreserving, Tensor, attr, layer, layer_fields


@layer("stochasticdepth")
@layer_fields
class StochasticDepth(ShapePreserving):
    """Stochastic depth (torchvision.ops.StochasticDepth): in training, zeroes its whole input
    with probability `p` per image (`row`) or per batch (`batch`) and scales what survives by
    1 / (1 - p); at inference an Identity.

    `- stochasticdepth: {p: 0.2, mode: row}` on a residual branch, just before the add."""

    p: float = attr(doc="probability of dropping the input in training", min=0, max=1,
                    exclusive_max=True)
    mode: Literal["row", "batch"] = attr("row", doc="row: drop each image's input on its "
                                         "own; batch: the whole batch's at once")

    foreign_names = ("DropPath",)

    main = "p"

    def equation(self, out: Shape, x: Shape) -> list[str]:
        per = "each image" if self.mode == "row" else "the whole batch"
        return ["shape: the same as the input",
                f"  y = x at inference; in training, for {per}: 0 with probability {self.p:g}, "
                f"else x / {1 - self.p:g}"]

    def label(self) -> str:
        return f"stochasticdepth {self.p:g}"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.node("Identity", [xs[0].name], out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return _torch_classes(torch)

    def torch_module(self, x, nn, classes):
        return classes.StochasticDepth(self.p, self.mode)


@lru_cache(maxsize=None)
def _torch_classes(torch) -> dict[str, type]:
    nn = torch.nn

    class StochasticDepth(nn.Module):
        """torchvision.ops.StochasticDepth, without needing torchvision: the same computation,
        drawing the same random numbers (one Bernoulli per image, or per batch)."""

        def __init__(self, p: float, mode: str) -> None:
            super().__init__()
            self.p, self.mode = float(p), mode

        def forward(self, x):
            if not self.training or self.p == 0.0:
                return x
            survival = 1.0 - self.p
            size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
            noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
            if survival > 0.0:
                noise.div_(survival)
            return x * noise

        def extra_repr(self) -> str:
            return f"p={self.p}, mode={self.mode}"

    return {"StochasticDepth": StochasticDepth}
