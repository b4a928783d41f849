"""The intermediate representation: a checked graph of layers with every shape known.

Plain frozen dataclasses, no protobuf: `emit.py` turns a Graph into ONNX, `report.py` into a
summary. Value names are layer names (and input names), so an ONNX node, its output and the
layer in the spec all share one name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .images import Preprocess
from .layers.base import Layer, Shape, WeightSpec, fmt_shape, volume
from .source import Span


@dataclass(frozen=True, init=False)
class Value:
    """A tensor flowing between layers."""

    name: str
    shape: Shape

    # init=False: written out, as dataclasses' frozen __init__ (a call to object.__setattr__
    # per field) takes 2-4 times longer, and netc makes tens of thousands of these per spec.
    # tests/test_architecture.py checks that it takes the fields, in order, with their defaults.
    def __init__(self, name: str, shape: Shape) -> None:
        d = self.__dict__
        d["name"], d["shape"] = name, shape

    def __str__(self) -> str:
        return f"{self.name}: {fmt_shape(self.shape)}"


@dataclass(frozen=True, init=False)
class Weight:
    """A named tensor of a node: `name` is `<layer>.<param>`, PyTorch's state_dict key."""

    name: str
    spec: WeightSpec

    def __init__(self, name: str, spec: WeightSpec) -> None:  # (init=False: see Value)
        d = self.__dict__
        d["name"], d["spec"] = name, spec

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.shape

    @property
    def size(self) -> int:
        return volume(self.spec.shape)


@dataclass(frozen=True, init=False)
class Node:
    """One layer: its typed attributes, inputs, output and weights, where it was written, and
    the warning codes its spec allows there (`allow:`)."""

    name: str
    layer: Layer
    inputs: tuple[Value, ...]
    output: Value
    weights: tuple[Weight, ...]
    macs: int
    span: Span
    allow: frozenset = frozenset()

    def __init__(self, name: str, layer: Layer, inputs: tuple[Value, ...], output: Value,
                 weights: tuple[Weight, ...], macs: int, span: Span,
                 allow: frozenset = frozenset()) -> None:  # (init=False: see Value)
        d = self.__dict__
        d["name"], d["layer"], d["inputs"], d["output"] = name, layer, inputs, output
        d["weights"], d["macs"], d["span"], d["allow"] = weights, macs, span, allow

    @property
    def kind(self) -> str:
        return self.layer.kind

    @property
    def params(self) -> int:
        """Learned parameters (batchnorm running statistics are buffers, not parameters)."""
        return sum(w.size for w in self.weights if w.spec.trainable)

    def __str__(self) -> str:
        args = ", ".join(x.name for x in self.inputs)
        return f"{self.output} = {self.kind}({args})"


@dataclass(frozen=True)
class Graph:
    """A whole checked network; `preprocess` and `labels` are what the spec declares about
    images in and class names out (images.py), or None."""

    name: str
    description: str
    inputs: tuple[Value, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[Value, ...]
    preprocess: Preprocess | None = None
    labels: tuple[str, ...] | None = None

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def weights(self) -> list[Weight]:
        return [w for n in self.nodes for w in n.weights]

    def __str__(self) -> str:
        lines = [f"graph {self.name}({', '.join(str(v) for v in self.inputs)})"]
        lines += [f"  {n}" for n in self.nodes]
        lines.append(f"  return {', '.join(v.name for v in self.outputs)}")
        return "\n".join(lines)
