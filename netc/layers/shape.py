"""Tensor plumbing: layers that move values without computing new ones (channel shuffle, a
part of a channel split, permute, reshape). Each keeps the batch axis 0 where it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from ..errors import RuleError
from .base import (Ints, Layer, Lowering, Shape, Tensor, attr, fmt_shape, layer, layer_fields,
                   need_rank, volume)


@layer("shuffle")
@layer_fields
class Shuffle(Layer):
    """Channel shuffle (ShuffleNet): channels viewed as groups × C/groups, transposed, and
    flattened back, so that the next grouped conv mixes the groups.

    `- shuffle: 2` (shorthand for `shuffle: {groups: 2}`). Lowered as Reshape (N, g, C/g, H, W)
    -> Transpose (axes 1 and 2 swapped) -> Reshape back, as torchvision's channel_shuffle.
    """

    groups: int = attr(doc="number of channel groups, which must divide the channels",
                       min=1, max=1 << 16)

    foreign_names = ("ChannelShuffle",)

    main = "groups"

    def infer(self, x: Shape) -> Shape:
        need_rank(x, (4,), self.kind)
        if x[1] % self.groups:
            fits = [g for g in range(2, min(x[1], 64) + 1) if x[1] % g == 0][:6]
            raise RuleError(
                f"{x[1]} channels can't be shuffled in {self.groups} groups", code="E303",
                attr="groups",
                details=[f"{x[1]} / {self.groups} = {x[1] / self.groups:.4g}, not a whole "
                         "number of channels per group"],
                hints=[f"use groups that divide {x[1]}: {', '.join(map(str, fits))}"]
                if fits else [],
            )
        return x

    def equation(self, out: Shape, x: Shape) -> list[str]:
        per = x[1] // self.groups
        return ["shape: the same as the input",
                f"  ({x[1]} channels = {self.groups} groups × {per}, read as {per} × "
                f"{self.groups}: channel g·{per} + i moves to i·{self.groups} + g)"]

    def label(self) -> str:
        return f"shuffle {self.groups}"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        x = xs[0]
        _, c, h, wd = x.shape
        b.constant(f"{out.name}/groups_shape", [0, self.groups, c // self.groups, h, wd])
        b.node("Reshape", [x.name, f"{out.name}/groups_shape"], f"{out.name}/grouped")
        b.node("Transpose", [f"{out.name}/grouped"], f"{out.name}/swapped",
               perm=[0, 2, 1, 3, 4])
        b.constant(f"{out.name}/shape", [0, c, h, wd])
        b.node("Reshape", [f"{out.name}/swapped", f"{out.name}/shape"], out.name)

    def torch_module(self, x, nn, classes):
        return nn.ChannelShuffle(self.groups)


@layer("split")
@layer_fields
class Split(Layer):
    """One part of the channels split into equal `parts` (torch.chunk) or given `sizes`
    (torch.split); each part is its own layer, named as any other, on the same input.

    `- split: {parts: 2, index: 0}` (ShuffleNetV2's x.chunk(2, dim=1)[0]), or `- split:
    {sizes: [24, 40], index: 1}` for the last 40 of 64 channels. Lowered to ONNX Slice on
    axis 1.
    """

    index: int = attr(doc="which part, counting from 0", min=0, max=1 << 16)
    parts: int | None = attr(None, doc="split into this many equal parts (give this or sizes)",
                             min=1, max=1 << 16)
    sizes: Ints | None = attr(None, doc="split into parts of these channel counts, which add "
                              "up to the input's channels (give this or parts)",
                              min=1, max=1 << 24)

    def _bounds(self, x: Shape) -> tuple[int, int]:
        """(first channel, channels) of the part, or RuleError."""
        if len(x) < 2:
            raise RuleError(f"needs an input with channels, got {fmt_shape(x)}", code="E307",
                            input=0)
        c = x[1]
        if (self.parts is None) == (self.sizes is None):
            both = self.parts is not None
            raise RuleError(
                "takes `parts` or `sizes`, not both" if both else "needs `parts` or `sizes`",
                code="E105", attr="sizes" if both else None,
                hints=["write `parts: 2` for equal halves, or `sizes: [...]` for given sizes"],
            )
        if self.parts is not None:
            if c % self.parts:
                raise RuleError(
                    f"{c} channels can't be split into {self.parts} equal parts", code="E303",
                    attr="parts",
                    details=[f"{c} / {self.parts} = {c / self.parts:.4g}, not a whole number"],
                    hints=[f"give the sizes instead, for example `sizes: "
                           f"[{', '.join(map(str, _near_equal(c, self.parts)))}]`"],
                )
            sizes = [c // self.parts] * self.parts
        else:
            sizes = list(self.sizes)
            if sum(sizes) != c:
                total = " + ".join(map(str, sizes))
                fixed = sizes[:-1] + [c - sum(sizes[:-1])]
                hints = [f"make them add up to {c}, for example `sizes: "
                         f"[{', '.join(map(str, fixed))}]`"] if fixed[-1] > 0 else [
                    f"make them add up to {c}"]
                raise RuleError(
                    f"sizes {list(sizes)} don't split the {c} input channels", code="E303",
                    attr="sizes", details=[f"{total} = {sum(sizes)}, not {c}"], hints=hints,
                )
        if self.index >= len(sizes):
            raise RuleError(
                f"index {self.index} is out of range for {len(sizes)} parts", code="E105",
                attr="index", hints=[f"use an index from 0 to {len(sizes) - 1}"],
            )
        return sum(sizes[:self.index]), sizes[self.index]

    def infer(self, x: Shape) -> Shape:
        _, n = self._bounds(x)
        return (x[0], n, *x[2:])

    def equation(self, out: Shape, x: Shape) -> list[str]:
        start, n = self._bounds(x)
        return [f"shape: channels {start} to {start + n - 1} of {x[1]} ({n} channels), "
                f"part {self.index} of {len(self.sizes or ()) or self.parts}"]

    def label(self) -> str:
        return f"split [{self.index}]"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        start, n = self._bounds(xs[0].shape)
        b.constant(f"{out.name}/starts", [start])
        b.constant(f"{out.name}/ends", [start + n])
        b.constant(f"{out.name}/axes", [1])
        b.node("Slice", [xs[0].name, f"{out.name}/starts", f"{out.name}/ends",
                         f"{out.name}/axes"], out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"ChannelSlice": _torch_classes(torch)["ChannelSlice"]}

    def torch_module(self, x, nn, classes):
        start, n = self._bounds(x)
        return classes.ChannelSlice(start, n)


def _near_equal(total: int, parts: int) -> list[int]:
    """`total` in `parts` sizes as equal as they come, the larger first (torch.chunk's way)."""
    big = -(-total // parts)
    sizes = []
    while total > 0 and len(sizes) < parts:
        sizes.append(min(big, total))
        total -= sizes[-1]
    return sizes


@layer("permute")
@layer_fields
class Permute(Layer):
    """Axes reordered, as torch.permute: output axis i is input axis dims[i]; the batch stays
    axis 0.

    `- permute: {dims: [0, 2, 3, 1]}` (N×C×H×W -> N×H×W×C, channels last). Lowered to ONNX
    Transpose.
    """

    dims: Ints = attr(doc="the input axis for each output axis: a permutation of 0 to rank-1 "
                      "starting with 0", min=-8, max=8)

    def infer(self, x: Shape) -> Shape:
        rank = len(x)
        dims = [d % rank if -rank <= d < rank else d for d in self.dims]
        if len(dims) != rank or sorted(dims) != list(range(rank)):
            example = [0, *range(2, rank), 1] if rank > 2 else [0, 1]
            raise RuleError(
                f"dims {list(self.dims)} is not a permutation of the {rank} axes of "
                f"{fmt_shape(x)}", code="E306", attr="dims",
                details=[f"a {rank}-D input needs each of {list(range(rank))} once"],
                hints=[f"for example `dims: {example}`"],
            )
        if dims[0] != 0:
            raise RuleError(
                f"dims {list(self.dims)} moves the batch axis", code="E306", attr="dims",
                details=["axis 0 is the batch (N): it must stay first"],
                hints=[f"keep 0 first and reorder axes 1 to {rank - 1} only" + (
                    ", for example `dims: [0, 2, 3, 1]` (channels last)" if rank == 4 else "")],
            )
        return tuple(x[d] for d in dims)

    def equation(self, out: Shape, x: Shape) -> list[str]:
        return [f"shape: axes {', '.join(map(str, (d % len(x) for d in self.dims)))} of "
                f"{fmt_shape(x)} -> {fmt_shape(out)}"]

    def label(self) -> str:
        return f"permute {list(self.dims)}"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        rank = len(xs[0].shape)
        b.node("Transpose", [xs[0].name], out.name, perm=[d % rank for d in self.dims])

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Permute": _torch_classes(torch)["Permute"]}

    def torch_module(self, x, nn, classes):
        return classes.Permute([d % len(x) for d in self.dims])


@layer("reshape")
@layer_fields
class Reshape(Layer):
    """A new shape for each image's values, in their row-major order (torch.reshape); `shape`
    excludes the batch, which is kept, and one entry may be -1: what the others leave.

    `- reshape: {shape: [2, 32, 7, 7]}` (N×64×7×7 -> N×2×32×7×7); `shape: [-1]` flattens.
    Lowered to ONNX Reshape with the sizes worked out, the batch written 0 (copied).
    """

    shape: Ints = attr(doc="the output's sizes after the batch; one may be -1 (inferred)",
                       min=-1, max=1 << 30)

    foreign_names = ("view",)

    def _sizes(self, x: Shape) -> tuple[int, ...]:
        have = volume(x[1:])
        dims = " × ".join(map(str, x[1:])) or "1"
        if 0 in self.shape:
            raise RuleError(
                f"shape {list(self.shape)} has a size 0", code="E105", attr="shape",
                details=["`shape` excludes the batch, which is kept: 0 is not a size here "
                         "(ONNX's 0, copy the input's size, is not used)"],
                hints=["write each size, or -1 for one inferred size"],
            )
        if list(self.shape).count(-1) > 1:
            raise RuleError(
                f"shape {list(self.shape)} has more than one -1", code="E105", attr="shape",
                hints=["one size may be -1 (what the others leave); write the others"],
            )
        known = volume(d for d in self.shape if d != -1)
        if -1 in self.shape:
            if have % known:
                raise RuleError(
                    f"can't reshape {fmt_shape(x)} into {self._text(x[0])}", code="E305",
                    attr="shape",
                    details=[f"each image has {dims} = {have:,} values, which the other "
                             f"sizes' product {known:,} doesn't divide "
                             f"({have:,} / {known:,} = {have / known:.4g})"],
                    hints=[f"choose sizes whose product divides {have:,}"],
                )
            return tuple(have // known if d == -1 else d for d in self.shape)
        if known != have:
            want = " × ".join(map(str, self.shape))
            raise RuleError(
                f"can't reshape {fmt_shape(x)} into {self._text(x[0])}", code="E305",
                attr="shape",
                details=[f"each image has {dims} = {have:,} values; the new shape holds "
                         f"{want} = {known:,}"],
                hints=[f"choose sizes whose product is {have:,}, or write -1 for one of them"],
            )
        return tuple(self.shape)

    def _text(self, batch) -> str:
        return fmt_shape((batch, *self.shape))

    def infer(self, x: Shape) -> Shape:
        return (x[0], *self._sizes(x))

    def equation(self, out: Shape, x: Shape) -> list[str]:
        dims = " × ".join(map(str, x[1:]))
        sizes = " × ".join(map(str, out[1:]))
        return [f"shape: {dims} = {volume(x[1:]):,} values per image, read as {sizes}"]

    def label(self) -> str:
        return f"reshape {list(self.shape)}"

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        b.constant(f"{out.name}/shape", [0, *self._sizes(xs[0].shape)])
        b.node("Reshape", [xs[0].name, f"{out.name}/shape"], out.name)

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        return {"Reshape": _torch_classes(torch)["Reshape"]}

    def torch_module(self, x, nn, classes):
        return classes.Reshape(self._sizes(x))


@lru_cache(maxsize=None)
def _torch_classes(torch) -> dict[str, type]:
    nn = torch.nn

    class ChannelSlice(nn.Module):
        """Channels start to start + length - 1 (a part of torch.chunk or torch.split)."""

        def __init__(self, start: int, length: int) -> None:
            super().__init__()
            self.start, self.length = start, length

        def forward(self, x):
            return x.narrow(1, self.start, self.length)

        def extra_repr(self) -> str:
            return f"start={self.start}, length={self.length}"

    class Permute(nn.Module):
        """Axes reordered (torch.permute)."""

        def __init__(self, dims) -> None:
            super().__init__()
            self.dims = list(dims)

        def forward(self, x):
            return x.permute(*self.dims)

        def extra_repr(self) -> str:
            return f"dims={self.dims}"

    class Reshape(nn.Module):
        """Each image's values in a new shape, the batch kept (torch.reshape)."""

        def __init__(self, shape) -> None:
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, x):
            return x.reshape(x.shape[0], *self.shape)

        def extra_repr(self) -> str:
            return f"shape={self.shape}"

    return {"ChannelSlice": ChannelSlice, "Permute": Permute, "Reshape": Reshape}
