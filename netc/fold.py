"""`--fold-bn`: fold inference batchnorm into the convolution before it.

A batchnorm after a conv computes gamma · (conv(x) − mean) / sqrt(var + eps) + beta, which is
itself a conv with weights W · s and bias (b − mean) · s + beta, s = gamma / sqrt(var + eps).
Folding removes the batchnorm node and its four tensors. The arithmetic is done in float64 and
rounded once, so the folded model equals the unfolded one within float32 rounding. Statistics
that fold into no float32 number (a negative running_var, running_var + eps = 0, a scale that
takes the conv's weights past float32's range) are E508 at the batchnorm, naming the channel.

The folded conv keeps its own name and takes the batchnorm's output name, so every layer that
read the batchnorm, and the model's outputs, are unchanged. Which layers fold is theirs to say:
a layer that `is_affine` (batchnorm) folds into the layer before it when that one
`absorbs_affine` (conv).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import Note, fail
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
    # the folded convs' tensors by name -> (conv, "weight" or "bias"): a tensor is known by
    # the layer that owns it, never by its name's prefix (a `param` layer may be named
    # `a.running_mean` beside a conv `a`; its values are its own)
    targets: dict[str, tuple[str, str]] = {}
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
        targets[weights[0].name] = (node.name, "weight")
        targets[weights[1].name] = (node.name, "bias")
        nodes.append(dataclasses.replace(
            node, layer=dataclasses.replace(conv, bias=True), weights=weights,
            output=Value(bn.output.name, node.output.shape)))
    cache: dict[str, tuple] = {}  # conv -> (scale, folded bias, the batchnorm's tensors)

    def scale_shift(conv: Node, bn: Node):
        if conv.name not in cache:
            tensors = {w.spec.param: value(w).astype(np.float64) for w in bn.weights}
            with np.errstate(all="ignore"):  # (checked: _check)
                mean, scale, shift = bn.layer.affine(tensors)
                bias = np.zeros(conv.output.shape[1])
                if conv.layer.bias:
                    bias = value(conv.weights[1]).astype(np.float64)
                shift = (bias - mean) * scale + shift
            _check(conv, bn, tensors, scale, "bias", shift)
            cache[conv.name] = (scale, shift, tensors)
        return cache[conv.name]

    originals = {n.name: n for n in graph.nodes}

    def folded_value(w: Weight) -> np.ndarray:
        if w.name not in targets:
            return value(w)
        layer, param = targets[w.name]
        conv, bn = originals[layer], folded[layer]
        scale, shift, tensors = scale_shift(conv, bn)
        if param == "bias":
            return shift.astype(np.float32)
        kernel = value(conv.weights[0]).astype(np.float64)  # output channels on axis 0
        with np.errstate(all="ignore"):  # (checked: _check)
            kernel = kernel * scale.reshape(-1, *[1] * (kernel.ndim - 1))
        _check(conv, bn, tensors, scale, "weight", kernel)
        return kernel.astype(np.float32)

    return dataclasses.replace(graph, nodes=tuple(nodes)), folded_value


def _check(conv: Node, bn: Node, tensors: dict, scale: np.ndarray, what: str,
           folded: np.ndarray) -> None:
    """E508 at the batchnorm when a folded tensor (`what`: the conv's "weight" or "bias",
    float64, output channels on axis 0) holds a value float32 can't: NaN, an infinity, or one
    that rounds past ±3.4028235e+38. It names the first such channel, and why, from the
    batchnorm's statistics (`tensors`, float64 by param) and its `scale`. (A large scale alone
    is no fault: only what is stored is checked.)"""
    limit = float(np.finfo(np.float32).max)
    with np.errstate(all="ignore"):  # a value that rounds to ±3.4028235e+38 still fits
        bad = ~np.isfinite(folded.astype(np.float32))
    if not bad.any():
        return
    channels = bad.reshape(bad.shape[0], -1).any(axis=1)
    c = int(np.argmax(channels))
    count = int(channels.sum())
    where = (f"--fold-bn: folding {bn.layer.kind} '{bn.name}' into {conv.layer.kind} "
             f"'{conv.name}' gives it {what} values float32 can't hold in {count:,} "
             f"channel{'s' * (count != 1)}; the first, channel {c}")
    # (the layer's `affine` says how it scales; its statistics, by their PyTorch names, say
    # why it can't: a variance is never negative, and eps >= 0 is checked with the spec)
    var = tensors.get("running_var")
    stats = ", ".join(f"{param}[{c}] = {t[c]:.8g}" for param, t in tensors.items())
    if var is not None and var[c] < 0:
        message = f"{where}, has running_var[{c}] = {var[c]:.8g}: a variance is never negative"
        hints = ["the checkpoint's running_var is not a trained batchnorm's statistics (a "
                 "broken export, or running_mean and running_var swapped?): export the "
                 "weights again; unfolded, this channel would compute NaN"]
    elif var is not None and not np.isfinite(scale[c]):
        message = (f"{where}, has running_var[{c}] = 0 and eps 0: its scale, weight / "
                   "sqrt(running_var + eps), divides by zero")
        hints = ["give the batchnorm an eps that keeps the variance positive (PyTorch's "
                 "default is 1e-5), or export the weights again"]
    else:
        message = (f"{where}, is scaled by {scale[c]:.8g} ({stats}), which takes its {what} "
                   f"past float32's range (±{limit:.8g})")
        hints = ["no trained batchnorm scales a channel this much: check the checkpoint's "
                 "statistics for this channel"]
    raise fail("E508", message, bn.span, hints=hints,
               notes=[Note(conv.span, f"{conv.layer.kind} '{conv.name}', folded with it")])
