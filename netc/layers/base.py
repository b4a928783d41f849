"""What every layer type is made of, and the registry that finds them by their YAML name.

A layer type is one frozen dataclass, registered with `@layer("name")`. Everything netc knows
or says about the type is in that class, so adding a type touches one place:

- its fields are its YAML attributes (type, default, and a doc string via `attr`): attribute
  checking, `netc schema` and the docs table are derived from them;
- `infer` is its pure shape rule, `weights` names its tensors (PyTorch's names), `macs` counts
  its multiply-accumulates, `lower` emits its ONNX nodes, `torch_module` builds its PyTorch
  module (netc.torch);
- what the commands say about it: `equation` (the shape arithmetic `netc explain` shows, with
  the numbers), `macs_formula`, `label` (`netc graph`), `implied` (a default another attribute
  gives), `lints` (the W2xx warnings about a valid layer), `rounds` (`netc sizes`);
- `references` names its attributes that name another layer or input (`to: skip`, of type
  `Ref`): the value named becomes one more input of the layer, after its data inputs.

Rules are pure: they raise `RuleError` (or return `Lint`s) naming the attribute or input at
fault, and check.py alone attaches positions.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal, Protocol, Union

from ..errors import Lint, RuleError

Dim = Union[int, str]  # a size, or a symbolic name (the batch)
Shape = tuple  # of Dim

# Attribute types. An annotation of a layer field picks how YAML values are read.
Pair = tuple[int, int]  # `3` or `[3, 5]` (height, width)
Padding = Union[tuple[int, int, int, int], str]  # 1, [h, w], [top, left, bottom, right],
#   same, same_lower (an odd total's extra pixel at the start: ONNX SAME_LOWER) or valid
Round = Literal["exact", "floor", "ceil"]
Ints = tuple[int, ...]  # a list of integers, `[0, 2, 3, 1]` (min/max bound each item)
Scales = tuple[float, float]  # `2` or `[1.5, 2]` (height, width): numbers, not only integers
Sides = tuple[int, int, int, int]  # 1, [h, w] or [top, left, bottom, right], as `pad` without
#   same/valid: pixels added or removed on each side
# The name of a layer or input (`to: skip1`), resolved by expand.py as a `from:` name is: the
# value it names becomes an extra input of the layer (see Layer.references)
Ref = typing.NewType("Ref", str)
MAX_ITEMS = 64  # the longest list an `Ints` attribute takes
Init = typing.NewType("Init", str)  # he_normal, ..., normal(0.01), uniform(0.05), constant(0)

INITIALISERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "zeros", "ones")
# written `normal(0.01)`; gaussian(SIGMA) is a fixed blur kernel, for a conv only
INITIALISERS_WITH_VALUE = ("normal", "uniform", "constant", "gaussian")
# a value each one takes, for hints (`write normal(VALUE), for example normal(0.01)`)
INIT_EXAMPLES = {"normal": "0.01", "uniform": "0.05", "constant": "0", "gaussian": "1.5"}
# gaussian(SIGMA)'s largest sigma, in pixels: a kernel holding the blur's ±3 sigma has about
# 6·sigma + 1 taps, and netc's largest kernel is 4,096 (so sigma 682); a larger sigma is a
# slip (a variance written for a deviation, a size in other units)
MAX_SIGMA = 512.0

# The real-number types netc writes: (its largest number, its smallest normal number, the
# magnitude from which a number rounds to infinity: the largest plus half a unit in the last
# place). A real attribute is written as a float32 (an ONNX float attribute, or a constant:
# check.py holds every one to float32 at check time); with --dtype float16 the constants a
# layer writes in the model's precision and the weights are float16, which emit.py checks as
# it writes them (E508).
FLOATS = {"float32": (3.4028234663852886e38, 2.0 ** -126, 2.0 ** 128 - 2.0 ** 103),
          "float16": (65504.0, 2.0 ** -14, 65520.0)}
# A bound on the values of numpy's float32 standard normal generator (netc's normal draws,
# weights.py): its ziggurat returns r + x past its last layer r = 3.654, where x = -ln(1 - u)/r
# for a uniform u, so with u of 24 bits (numpy's next_float) x <= 24 ln 2 / 3.654 = 4.55, and
# with 32 bits x <= 6.07: |z| < 9.8 either way. normal(σ)'s values are z·σ, so 10·σ must fit
# the type they are written as.
NORMAL_REACH = 10.0


def float_problem(value: float, dtype: str = "float32") -> str | None:
    """Why the real number `value` can't be written as a `dtype` number ("float32" or
    "float16"), as words that follow "it is" (`1e+39, more than float32 holds: its largest
    number is 3.4028235e+38`); None where it fits: 0, or a magnitude from the type's smallest
    normal number to its largest (a value rounding to the largest included). A nonzero value
    below the smallest normal is refused: it would be written as a subnormal number, or as
    0, and runtimes that flush subnormals to zero (ONNX Runtime's set_denormal_as_zero, GPUs)
    read it as 0, which changes what an epsilon or a slope means."""
    largest, tiny, overflow = FLOATS[dtype]
    if value != value or abs(value) >= overflow:
        return f"{float(value)!r}, more than {dtype} holds: its largest number is {largest:.8g}"
    if value != 0 and abs(value) < tiny:
        return (f"{float(value)!r}, below {dtype}'s smallest normal number ({tiny:.2g}): it "
                "would be written as a subnormal number or as 0")
    return None


def float_hint(dtype: str = "float32") -> str:
    """The hint of an error made of `float_problem`."""
    largest, tiny, _ = FLOATS[dtype]
    return f"write 0, or a number from {tiny:.2g} to {largest:.5g} in size"


class OutOfRange(str):
    """An `init_problem` message (parse_init's other messages are plain strings)."""


def init_problem(name: str, value: float, dtype: str = "float32") -> OutOfRange | None:
    """Why initialiser `name(value)` (constant, normal or uniform) makes values that can't be
    written as `dtype` numbers, a message; None where they fit. constant(c) writes c,
    uniform(a) values up to a in size, normal(σ) up to NORMAL_REACH·σ; a nonzero c, a or σ
    below the type's smallest normal number would make subnormal numbers or zeros."""
    if name not in ("constant", "normal", "uniform") or value == 0:
        return None
    largest, tiny, overflow = FLOATS[dtype]
    shown = f"{name}({float(value)!r})"
    if abs(value) * (NORMAL_REACH if name == "normal" else 1) >= overflow:
        if name == "normal":
            what = (f"draws values up to about {NORMAL_REACH:g}·σ in size (numpy's float32 "
                    "normal generator stays under 9.8)")
        else:
            what = ("writes " if name == "constant" else "draws values up to ") \
                + repr(abs(float(value)))
        return OutOfRange(f"{shown} {what}, more than {dtype} holds: its largest number is "
                          f"{largest:.8g}")
    if abs(value) < tiny:
        return OutOfRange(f"{shown} makes values below {dtype}'s smallest normal number "
                          f"({tiny:.2g}), written as subnormal numbers or as 0")
    return None


def init_bound_hint(name: str, dtype: str = "float32") -> str:
    """The hint of an `init_problem` about initialiser `name`: the values it may take."""
    largest, tiny, _ = FLOATS[dtype]
    top = largest / NORMAL_REACH if name == "normal" else largest
    what = {"normal": "σ", "uniform": "a"}.get(name, "c")
    return (f"write {name}({what}) with {what} from {tiny:.2g} to {top:.5g} in size, or "
            f"{name}(0)" + (" (zeros)" if name != "constant" else ""))


def parse_init(text: str) -> tuple[str, float | None] | str:
    """`he_normal` -> ('he_normal', None); `normal(0.01)` -> ('normal', 0.01); else a message
    saying what is wrong (check.py reports it as E105, with `init_hints`). The values an
    initialiser makes must be float32 numbers (`init_problem`)."""
    if text in INITIALISERS:
        return text, None
    name, paren, rest = text.partition("(")
    if name in INITIALISERS_WITH_VALUE and paren and rest.endswith(")"):
        number = rest[:-1]
        if "_" in number:
            # Python's float() reads 1_0 as 10; a spec's numbers have no digit separators
            # (YAML's `1_0` is E104 elsewhere), so neither has an initialiser's value
            return (f"{number!r} is not a plain number: write it without underscores "
                    f"({name}({number.replace('_', '')}))")
        try:
            value = float(number)
        except ValueError:
            return f"{number!r} is not a number"
        if value != value or abs(value) == float("inf"):
            return "the value must be finite"
        if name == "gaussian" and not 0 < value <= MAX_SIGMA:
            return (f"gaussian's sigma (the blur's standard deviation, in pixels) must be "
                    f"above 0 and at most {MAX_SIGMA:g}, got {rest[:-1]}")
        if name != "constant" and value < 0:
            return f"{name}'s scale must not be negative"
        problem = init_problem(name, value)
        if problem is not None:
            return problem
        return name, value
    if name in INITIALISERS_WITH_VALUE:
        return f"write {name}(VALUE), for example {name}({INIT_EXAMPLES[name]})"
    return f"unknown initialiser {text!r}"


def init_hints(name: str, problem: str = "") -> list[str]:
    """The hints of an E105 about initialiser `name(...)` written wrong (one of
    INITIALISERS_WITH_VALUE), whose message is `problem`."""
    if isinstance(problem, OutOfRange):
        return [init_bound_hint(name)]
    hints = [f"{name}(...) takes one number, for example {name}({INIT_EXAMPLES[name]})"]
    if name == "gaussian":
        hints.append("a kernel of about 6·sigma + 1 taps holds the blur's ±3 sigma: "
                     "`kernel: 7` for gaussian(1), `kernel: 13` for gaussian(2)")
    return hints


def gaussian_kernel(sigma: float, kh: int, kw: int):
    """The kh × kw float64 kernel of gaussian(sigma), σ in pixels: g(y, x) = exp(-(x² + y²)
    / 2σ²) / (2πσ²) at the offsets (y, x) of each tap from the kernel's centre, divided by its
    sum, so that the taps add up to 1 and a blur keeps an image's brightness (2πσ² cancels in
    that division). An odd size has a centre tap and integer offsets; an even size has the
    half-integer offsets ±0.5, ±1.5, ...

    Finite for any sigma parse_init accepts, without a warning (log-sum-exp style): every
    exponent is taken less the largest one (that of the taps nearest the centre), a factor
    common to all taps that the division removes, so the largest term is exp(0) = 1 and the
    sum is at least 1. The squared offsets are whole pixels (or quarters), so d² - min d² is
    exact, and it is a whole number: 0 for the nearest taps, at least 1 for the others. Below
    sigma 0.02 every other tap's exponent is under -1/(2·0.02²) = -1250, whose exp is 0 in
    float64 (the smallest double is 5e-324 = e^-744): the kernel is exactly the nearest taps'
    share, so sigma is taken as 0.02 there, and σ² (which underflows to 0 below 1e-162) is
    never formed of a smaller sigma."""
    import numpy as np

    sigma = max(float(sigma), 0.02)
    y = np.arange(kh, dtype=np.float64) - (kh - 1) / 2
    x = np.arange(kw, dtype=np.float64) - (kw - 1) / 2
    d2 = y[:, None] ** 2 + x[None, :] ** 2
    with np.errstate(under="ignore"):  # exp(-1250) and below are 0, as they should be
        g = np.exp(-(d2 - d2.min()) / (2 * sigma * sigma))
    return g / g.sum()


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
    kind: str  # int, float, bool, choice, pair, padding, init, ints (a list of ints), scales
    #   (a number or two), sides (1, 2 or 4 ints), ref (a layer or input name)
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
    if annotation == Ints:
        return "ints", (), optional
    if annotation == Scales:
        return "scales", (), optional
    if annotation == Sides:
        return "sides", (), optional
    if annotation is Ref:
        return "ref", (), optional
    if annotation == Padding:
        return "padding", ("same", "same_lower", "valid"), optional
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
    statistics, which torchvision (and netc's parameter count) leave out. `own_name` makes the
    tensor's name the layer's full name instead of `<layer>.<param>`: a parameter that a
    PyTorch module holds beside its children (ConvNeXt's `features.1.0.layer_scale`), which
    netc.torch puts on the layer's parent module; only for a layer whose output is that
    tensor (`param`), since an ONNX initializer can't share its name with a node's output.
    """

    param: str
    shape: tuple[int, ...]
    init: str
    fan_in: int = 1
    fan_out: int = 1
    trainable: bool = True
    own_name: bool = False
    # A tensor whose values can't be negative (a variance): a negative one in a weights file
    # computes NaN where the model takes its square root, so netc refuses it as it reads it
    nonnegative: bool = False

    def __post_init__(self) -> None:
        # gaussian(SIGMA) is a blur kernel: only a conv's weight (filters, channels/groups, kh,
        # kw) is one; said here, where an initialiser first meets its tensor's shape, so that
        # every layer type gets the same E105 at its `init:` (check.py attaches the position)
        if self.init[:9] == "gaussian(" and (len(self.shape) != 4 or self.own_name):
            raise RuleError(
                f"gaussian(SIGMA) makes a conv's kernels a blur, and this layer's {self.param} "
                f"is {fmt_shape(self.shape) if self.shape else 'a scalar'}, not a conv kernel "
                "(filters, channels, height, width)", code="E105", attr="init",
                hints=["write gaussian(SIGMA) on a conv layer; here choose he_normal, "
                       "glorot_uniform, normal(STD), uniform(A) or constant(C)"])


class Tensor(Protocol):
    """A value of the graph as a layer sees it when lowering: `ir.Value` is one."""

    name: str
    shape: Shape


class Lowering(Protocol):
    """What a layer's `lower` emits ONNX nodes into (`emit.Builder`)."""

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> None:
        """One ONNX node of operator `op` (opset 17) with its attributes."""

    def constant(self, output: str, values: list[int]) -> None:
        """A Constant node holding a 1-D int64 tensor (shapes, pads)."""

    def float_constant(self, output: str, values, shape: tuple[int, ...] | None = None) -> None:
        """A Constant node holding floats in the model's precision (float32 or float16)."""


@dataclass(frozen=True)
class Site:
    """Where a checked layer stands in its network, for its `lints`: its full name, its
    inputs' and output's shapes, the layers that read its output (name, layer) and whether
    the output is one of the network's."""

    name: str
    inputs: tuple[Shape, ...]
    output: Shape
    readers: tuple[tuple[str, Layer], ...]
    is_output: bool


# How netc's own layer types are declared: frozen dataclasses whose equality, hash and repr
# are Layer's (by value, as a dataclass's own would be), because generating those three for
# each of some forty classes took a fifth of `netc check`'s start-up. A layer type defined
# elsewhere may use a plain `@dataclass(frozen=True)` (tests/test_toy_layer.py).
layer_fields = dataclass(frozen=True, eq=False, repr=False)


class Layer:
    """Base class of the layer types (see the module doc)."""

    kind: ClassVar[str] = ""
    main: ClassVar[str | None] = None  # the attribute a scalar shorthand sets (`dense: 10`)
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # (min, max) number of inputs; None: any
    # True for a layer that subtracts its input's mean per channel (or feature), so that a
    # bias just before it has no effect (W202)
    subtracts_mean: ClassVar[bool] = False
    # True for a layer that is, at inference, a per-channel affine map (its `affine` says
    # which), and so folds into the layer before it when that one `absorbs_affine` (--fold-bn)
    is_affine: ClassVar[bool] = False
    # True for a layer whose output channels a per-channel affine map after it folds into:
    # its `weight` has the output channels on axis 0 and it has a `bias` switch
    absorbs_affine: ClassVar[bool] = False
    # True for a layer whose output `netc run --maps` draws when no --layers are given (the
    # convs: the course's "activation maps", one per filter)
    drawn_by_default: ClassVar[bool] = False
    # The attributes (of type Ref) that name a layer or input: expand.py resolves each one
    # given as it resolves `from:`, and the value it names becomes one more input of the
    # layer, after the data inputs, in this order (`- resize: {to: skip}` reads its input
    # and `skip`). So check, netc.torch, W201, `netc graph` and `netc sizes` see the
    # dependency; `infer` and `lower` get that value as their last input(s).
    references: ClassVar[tuple[str, ...]] = ()
    # Other libraries' names for this type (`Upsample` for resize), which E107 offers it
    # for (compared without case, `_` and a final `2d`), and for its attributes
    # (`{"padding": "pad"}`, or (name, note) where the values are written differently), which
    # E102 offers before any spelling match: netc/errors.py's did_you_mean_type and
    # did_you_mean_attribute
    foreign_names: ClassVar[tuple[str, ...]] = ()
    foreign_attributes: ClassVar[dict] = {}

    def _values(self) -> tuple:
        return tuple([getattr(self, f.name) for f in dataclasses.fields(self)])

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                          if f.repr)
        return f"{self.__class__.__qualname__}({shown})"

    def __post_init__(self) -> None:
        # accept the YAML shorthands when a layer is built directly (`Conv(kernel=3)`)
        for spec in attributes(type(self)):
            value = getattr(self, spec.name)
            if isinstance(value, int) and not isinstance(value, bool):
                if spec.kind == "pair":
                    object.__setattr__(self, spec.name, (value, value))
                elif spec.kind in ("padding", "sides"):
                    object.__setattr__(self, spec.name, (value,) * 4)
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and spec.kind == "scales":
                object.__setattr__(self, spec.name, (float(value), float(value)))
            elif isinstance(value, list) or (spec.kind == "sides" and isinstance(value, tuple)):
                value = tuple(value)
                if spec.kind == "sides" and len(value) == 2:
                    value = value * 2  # [h, w]: the same at the top and bottom, left and right
                object.__setattr__(self, spec.name, value)

    # --- the rules ------------------------------------------------------------------------

    def infer(self, *xs: Shape) -> Shape:
        """The output shape for inputs of shapes `xs` (NCHW or (N, features); N may be a name).
        Pure; raises RuleError (E3xx, naming the attribute or input at fault) when the layer
        can't apply to them."""
        raise NotImplementedError

    def weights(self, *xs: Shape) -> list[WeightSpec]:
        """The tensors the layer owns for inputs `xs`, by PyTorch's names and layouts."""
        return []

    def macs(self, out: Shape, *xs: Shape) -> int:
        """Multiply-accumulates per image (netc counts those of conv and dense layers, as
        torchvision's GFLOPS column does: reference/numbers.md)."""
        return 0

    def lower(self, b: Lowering, xs: Sequence[Tensor], w: Mapping[str, str],
              out: Tensor) -> None:
        """Emit the ONNX nodes computing `out` from `xs`, in the order they run (each node after
        the nodes making its inputs), one of them writing `out.name`; `w` maps each weight's
        param name (`weight`, `bias`...) to its initializer's name. Constants come from
        `b.constant` (int64) and `b.float_constant` (in the model's precision). The nodes are
        named after the layer."""
        raise NotImplementedError

    def torch_module(self, x: Shape, nn, classes):
        """The PyTorch module computing this layer (netc.torch): `x` is the first input's shape,
        `nn` is torch.nn, `classes` the module classes that the layer types define (their
        `torch_classes`, by name). Its parameters and buffers must be the layer's weights, by
        PyTorch's names."""
        raise NotImplementedError

    @classmethod
    def torch_classes(cls, torch) -> dict[str, type]:
        """The torch.nn.Module subclasses that `torch_module` builds where torch.nn has no
        module computing the layer as netc does, by name. Made once `torch` is imported (cache
        them: each must be made once); netc.torch gives them the stable names
        `netc.torch.<name>`, so that a whole model pickles."""
        return {}

    def affine(self, tensors: Mapping) -> tuple:
        """For a layer with `is_affine`: (mean, scale, shift), such that the layer computes
        y = (x - mean) · scale + shift per channel, from its tensors (float64 arrays by param
        name)."""
        raise NotImplementedError

    # --- what the commands say about the layer -------------------------------------------

    def equation(self, out: Shape, *xs: Shape) -> list[str]:
        """How the output shape comes about, with the numbers, as `netc explain` shows it: a
        first line `shape: ...`, any further lines indented by two spaces."""
        raise NotImplementedError

    def macs_formula(self, out: Shape, *xs: Shape) -> str | None:
        """`macs` written out as its factors (`6 filters × 28x28 positions × ...`) for `netc
        explain`, or None for a layer whose multiply-accumulates netc doesn't count."""
        return None

    def label(self) -> str:
        """The layer in a few characters for `netc graph`: its type and main numbers
        (`conv 3×3/2, 64`)."""
        return self.kind

    def implied(self, name: str) -> tuple[object, str, str] | None:
        """For attribute `name` left at None because another attribute implies its value (a
        pool's stride is its kernel): (the value, a short note, a longer one); else None."""
        return None

    def lints(self, site: Site) -> list[Lint]:
        """Warnings about this valid layer where it stands (W202-W204: docs/errors.md)."""
        return []

    def rounds(self, *xs: Shape) -> bool:
        """Whether a declared `round: floor` or `ceil` actually rounds at inputs `xs`
        (`netc sizes`)."""
        return False


class ShapePreserving(Layer):
    """A layer whose output has its input's shape: activations, normalisation, dropout."""

    def infer(self, x: Shape) -> Shape:
        return x

    def equation(self, out: Shape, x: Shape) -> list[str]:
        return ["shape: the same as the input"]


# --- small helpers shared by the layer families ---------------------------------------------


def fmt_shape(shape: Shape) -> str:
    """`N×6×28×28`: how shapes are shown in messages and tables."""
    return "×".join(str(d) for d in shape)


def fmt_number(x: float) -> str:
    """6, not 6.0; 0.5 as 0.5: a number as a spec would write it, in messages."""
    return str(int(x)) if float(x).is_integer() else str(x)


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


def bias_lint(layer: Layer, site: Site, unit: str) -> Lint | None:
    """W202 for a layer with a `bias` switch: a bias that every layer reading it cancels (each
    subtracts the mean per `unit`, "channel" or "feature"), unless it is an output."""
    readers = site.readers
    if not layer.bias or site.is_output or not readers \
            or any(not r.subtracts_mean for _, r in readers):
        return None
    size = sum(volume(w.shape) for w in layer.weights(*site.inputs) if w.param == "bias")
    first_name, first = readers[0]
    return Lint(
        "W202", f"{layer.kind} '{site.name}' has a bias that {first.kind} '{first_name}' "
        f"cancels: {size:,} redundant parameters", "bias",
        (f"{first.kind} subtracts each {unit}'s mean, bias included, then adds its own shift "
         "(beta)",),
        (f"write `bias: false` (or `defaults: {{{layer.kind}: {{bias: false}}}}` for every "
         f"{layer.kind})",
         "or, where the bias is meant (to load a reference model's weights, which have it), "
         "write `allow: [W202]` on the layer or at the top of the spec"))


def volume(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
