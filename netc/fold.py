"""`--fold-bn`: fold inference batchnorm into the convolution before it.

A batchnorm after a conv computes gamma · (conv(x) − mean) / sqrt(var + eps) + beta, which is
itself a conv with weights W · s and bias (b − mean) · s + beta, s = gamma / sqrt(var + eps).
Folding removes the batchnorm node and its four tensors. The arithmetic is done in float64 and
rounded once, so the folded model equals the unfolded one within float32 rounding.

The folded conv keeps its own name and takes the batchnorm's output name, so every layer that
read the batchnorm, and the model's outputs, are unchanged. Which layers fold is theirs to say:
a layer that `is_affine` (batchnorm) folds into the layer before it when that one
`absorbs_affine` (conv).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .ir import Graph, Node, Value, Weight
from .layers.base import WeightSpec


def fold_batchnorm(graph: Graph, value):
    """(the folded graph, its weight-value function) from a graph and `value(weight) -> array`."""
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for x in node.inputs:
            readers[x.name] = readers.get(x.name, 0) + 1
    outputs = {v.name for v in graph.outputs}
    producers = {n.output.name: n for n in graph.nodes}
    folded: dict[str, Node] = {}  # conv name -> its batchnorm
    for node in graph.nodes:
        if not node.layer.is_affine or len(node.output.shape) != 4:
            continue
        source = producers.get(node.inputs[0].name)
        if source is not None and source.layer.absorbs_affine \
                and readers[source.output.name] == 1 and source.output.name not in outputs:
            folded[source.name] = node
    if not folded:
        return graph, value
    skip = {bn.name for bn in folded.values()}
    nodes = []
    for node in graph.nodes:
        if node.name in skip:
            continue
        bn = folded.get(node.name)
        if bn is None:
            nodes.append(node)
            continue
        conv = node.layer
        filters = node.output.shape[1]
        weights = (node.weights[0],
                   Weight(f"{node.name}.bias", WeightSpec("bias", (filters,), "zeros")))
        nodes.append(dataclasses.replace(
            node, layer=dataclasses.replace(conv, bias=True), weights=weights,
            output=Value(bn.output.name, node.output.shape)))
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def scale_shift(conv: Node, bn: Node):
        if conv.name not in cache:
            tensors = {w.spec.param: value(w).astype(np.float64) for w in bn.weights}
            mean, scale, shift = bn.layer.affine(tensors)
            bias = np.zeros(conv.output.shape[1])
            if conv.layer.bias:
                bias = value(conv.weights[1]).astype(np.float64)
            cache[conv.name] = (scale, (bias - mean) * scale + shift)
        return cache[conv.name]

    originals = {n.name: n for n in graph.nodes}

    def folded_value(w: Weight) -> np.ndarray:
        layer, _, param = w.name.rpartition(".")
        if layer not in folded:
            return value(w)
        conv, bn = originals[layer], folded[layer]
        scale, shift = scale_shift(conv, bn)
        if param == "bias":
            return shift.astype(np.float32)
        kernel = value(conv.weights[0]).astype(np.float64)  # output channels on axis 0
        return (kernel * scale.reshape(-1, *[1] * (kernel.ndim - 1))).astype(np.float32)

    return dataclasses.replace(graph, nodes=tuple(nodes)), folded_value
