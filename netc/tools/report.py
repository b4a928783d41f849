"""Costs and summaries: parameters, multiply-accumulates, memory, per layer and in total.

Conventions (reference/numbers.md): MACs are the multiply-accumulates that each layer type
counts (its `macs`: conv and dense), as torchvision's "GFLOPS" column does; FLOPs = 2 × MACs; parameters are learned tensors only
(batchnorm running statistics are buffers); activation memory is the sum of every layer's
output at batch 1 in float32 (the inputs included).
"""

from __future__ import annotations

import json

from ..ir import Graph
from ..layers.base import fmt_shape, volume

BYTES_PER_VALUE = 4  # float32


def totals(graph: Graph) -> dict:
    weight_values = sum(w.size for w in graph.weights)
    activations = sum(volume(v.shape[1:]) for v in graph.inputs)
    activations += sum(volume(n.output.shape[1:]) for n in graph.nodes)
    return {
        "params": graph.params,
        "macs": graph.macs,
        "flops": 2 * graph.macs,
        "weight_bytes": weight_values * BYTES_PER_VALUE,
        "activation_bytes": activations * BYTES_PER_VALUE,
    }


def summary_dict(graph: Graph) -> dict:
    """The JSON summary: totals, inputs, outputs (name -> shape) and one entry per layer."""
    shape = lambda s: list(s)  # noqa: E731  (json has no tuples)
    return {
        "name": graph.name,
        **totals(graph),
        "inputs": {v.name: shape(v.shape) for v in graph.inputs},
        "outputs": {v.name: shape(v.shape) for v in graph.outputs},
        "layers": [
            {"name": n.name, "type": n.kind, "shape": shape(n.output.shape),
             "params": n.params, "macs": n.macs, "inputs": [x.name for x in n.inputs]}
            for n in graph.nodes
        ],
    }


def summary_json(graph: Graph) -> str:
    return json.dumps(summary_dict(graph), indent=2)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_count(n: float, unit: str) -> str:
    """415.5 K, 1.50 G ...: large counts with an SI prefix and the unit named."""
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


def summary_text(graph: Graph) -> str:
    """A table per layer (name, type, output shape, params, MACs) and the totals."""
    rows = [("layer", "type", "output", "params", "MACs")]
    for v in graph.inputs:
        rows.append((v.name, "input", fmt_shape(v.shape), "", ""))
    for n in graph.nodes:
        rows.append((n.name, n.kind, fmt_shape(n.output.shape), f"{n.params:,}", f"{n.macs:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    if graph.description:
        lines.append(f"{graph.name}: {graph.description}")
    for i, r in enumerate(rows):
        lines.append("  ".join(
            r[j].rjust(widths[j]) if j >= 3 else r[j].ljust(widths[j]) for j in range(5)
        ).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    t = totals(graph)
    lines += [
        "",
        f"params:      {t['params']:,} ({human_bytes(t['weight_bytes'])} of float32 weights"
        + (", running statistics included)" if t["weight_bytes"] != 4 * t["params"] else ")"),
        f"MACs:        {t['macs']:,} per image ({human_count(t['macs'], 'MAC')})",
        f"FLOPs:       {t['flops']:,} per image ({human_count(t['flops'], 'FLOP')}, 2 × MACs)",
        f"activations: {human_bytes(t['activation_bytes'])} at batch 1 (float32, every layer's output)",
        "outputs:     " + ", ".join(f"{v.name} {fmt_shape(v.shape)}" for v in graph.outputs),
    ]
    return "\n".join(lines)
