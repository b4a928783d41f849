"""What every layer type is made of, and the registry that finds them by their YAML name.

A layer type is one frozen dataclass, registered with `@layer("name")`. Its fields are its
YAML attributes (type, default, and a doc string via `attr`); `infer` is its pure shape rule,
`weights` names its tensors, `macs` counts its multiply-accumulates and `lower` emits its ONNX
nodes. Attribute checking, `netc` docs and schemas are derived from the class: there is no
second table to keep in sync.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import ClassVar, Literal, Union

from ..errors import RuleError

Dim = Union[int, str]  # a size, or a symbolic name (the batch)
Shape = tuple  # of Dim

# Attribute types. An annotation of a layer field picks how YAML values are read.
Pair = tuple[int, int]  # `3` or `[3, 5]` (height, width)
Padding = Union[tuple[int, int, int, int], str]  # 1, [h, w], [top, left, bottom, right], same, valid
Round = Literal["exact", "floor", "ceil"]
Init = typing.NewType("Init", str)  # he_normal, ..., normal(0.01), uniform(0.05), constant(0)

INITIALISERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "zeros", "ones")
INITIALISERS_WITH_VALUE = ("normal", "uniform", "constant")  # written `normal(0.01)`


def parse_init(text: str) -> tuple[str, float | None] | str:
    """`he_normal` -> ('he_normal', None); `normal(0.01)` -> ('normal', 0.01); else a message."""
    if text in INITIALISERS:
        return text, None
    name, paren, rest = text.partition("(")
    if name in INITIALISERS_WITH_VALUE and paren and rest.endswith(")"):
        try:
            value = float(rest[:-1])
        except ValueError:
            return f"{rest[:-1]!r} is not a number"
        if value != value or abs(value) == float("inf"):
            return "the value must be finite"
        if name != "constant" and value < 0:
            return f"{name}'s scale must not be negative"
        return name, value
    if name in INITIALISERS_WITH_VALUE:
        return f"write {name}(VALUE), for example {name}(0.01)"
    return f"unknown initialiser {text!r}"

REGISTRY: dict[str, type[Layer]] = {}


def layer(kind: str):
    """Register a layer class under its YAML type name."""

    def register(cls):
        cls.kind = kind
        REGISTRY[kind] = cls
        return cls

    return register


def attr(default=dataclasses.MISSING, *, doc: str, min: float | None = None,
         max: float | None = None, exclusive_max: bool = False):
    """A layer attribute: its default (none: required), a one-line doc, and its bounds."""
    meta = {"doc": doc, "min": min, "max": max, "exclusive_max": exclusive_max}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class AttrSpec:
    """One attribute as derived from a layer class: what check.py needs to read it."""

    name: str
    kind: str  # int, float, bool, choice, pair, padding
    required: bool
    default: object
    doc: str
    min: float | None = None
    max: float | None = None
    exclusive_max: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False  # `None` is allowed (e.g. a pool's stride defaults to its kernel)


def _kind(annotation) -> tuple[str, tuple[str, ...], bool]:
    optional = False
    args = typing.get_args(annotation)
    union = typing.get_origin(annotation) in (Union, types.UnionType)
    if union and type(None) in args and annotation != Padding:
        optional = True
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else Union[tuple(rest)]
    if annotation is bool:
        return "bool", (), optional
    if annotation is int:
        return "int", (), optional
    if annotation is float:
        return "float", (), optional
    if annotation == Pair:
        return "pair", (), optional
    if annotation == Padding:
        return "padding", ("same", "valid"), optional
    if annotation is Init:
        return "init", INITIALISERS + tuple(f"{n}(x)" for n in INITIALISERS_WITH_VALUE), optional
    if typing.get_origin(annotation) is Literal:
        return "choice", tuple(typing.get_args(annotation)), optional
    raise TypeError(f"unsupported attribute type {annotation!r}")


def attributes(cls) -> list[AttrSpec]:
    """The YAML attributes of a layer class, in declaration order."""
    cached = cls.__dict__.get("_attr_specs")
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        kind, choices, optional = _kind(hints[f.name])
        meta = f.metadata
        required = f.default is dataclasses.MISSING
        specs.append(AttrSpec(
            f.name, kind, required, None if required else f.default, meta.get("doc", ""),
            meta.get("min"), meta.get("max"), meta.get("exclusive_max", False), choices, optional,
        ))
    cls._attr_specs = specs
    return specs


@dataclass(frozen=True)
class WeightSpec:
    """A tensor a layer owns: `param` is PyTorch's name for it (weight, bias, running_mean...).

    `init` names the initialiser (see `netc.weights`); `fan_in` and `fan_out` feed He and
    Glorot initialisation; `trainable` is False for buffers such as batchnorm's running
    statistics, which torchvision (and netc's parameter count) leave out.
    """

    param: str
    shape: tuple[int, ...]
    init: str
    fan_in: int = 1
    fan_out: int = 1
    trainable: bool = True


class Layer:
    """Base class of the layer types (see the module doc)."""

    kind: ClassVar[str] = ""
    main: ClassVar[str | None] = None  # the attribute a scalar shorthand sets (`dense: 10`)
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # (min, max) number of inputs; None: any

    def __post_init__(self) -> None:
        # accept the YAML shorthands when a layer is built directly (`Conv(kernel=3)`)
        for spec in attributes(type(self)):
            value = getattr(self, spec.name)
            if isinstance(value, int) and not isinstance(value, bool):
                if spec.kind == "pair":
                    object.__setattr__(self, spec.name, (value, value))
                elif spec.kind == "padding":
                    object.__setattr__(self, spec.name, (value,) * 4)
            elif isinstance(value, list):
                object.__setattr__(self, spec.name, tuple(value))

    def infer(self, *xs: Shape) -> Shape:
        raise NotImplementedError

    def weights(self, *xs: Shape) -> list[WeightSpec]:
        return []

    def macs(self, out: Shape, *xs: Shape) -> int:
        return 0

    def lower(self, b, xs, w: dict[str, str], out) -> None:
        raise NotImplementedError

    def torch_module(self, x: Shape, nn, classes):
        """The PyTorch module computing this layer (netc.torch): `x` is the first input's shape,
        `nn` is torch.nn, `classes` netc.torch's own module classes. Its parameters and
        buffers must be the layer's weights, by PyTorch's names."""
        raise NotImplementedError


# --- small helpers shared by the layer families ---------------------------------------------


def fmt_shape(shape: Shape) -> str:
    """`N×6×28×28`: how shapes are shown in messages and tables."""
    return "×".join(str(d) for d in shape)


def hw(shape: Shape) -> str:
    """The spatial size of an NCHW shape as `HxW`."""
    return f"{shape[2]}x{shape[3]}"


def need_rank(x: Shape, ranks: tuple[int, ...], what: str, hint: str | None = None) -> None:
    """Raise E307 unless `x` has one of `ranks` dimensions."""
    if len(x) not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        layout = {4: "(N, C, H, W)", 2: "(N, features)"}
        names = " or ".join(layout.get(r, "") for r in ranks)
        raise RuleError(
            f"needs a {want} input {names}, got {fmt_shape(x)}", code="E307", input=0,
            hints=[hint] if hint else [],
        )


def volume(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
