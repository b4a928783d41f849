"""A checked graph -> the flat spec that `netc expand` prints.

Every layer is written out with its full name, its inputs (`from`) and every attribute,
defaults included, so the output is a spec netc reads again and compiles to the identical
model (same names, hence the same weights for the same seed).
"""

from __future__ import annotations

import json

from ..expand import FORMAT_VERSION, NAME_RE
from ..images import SHIPPED_LABELS, shipped_labels
from ..ir import Graph
from ..layers import attributes
from ..load import resolve_plain, yaml11_trap


def scalar(value) -> str:
    """One YAML scalar, quoted only where a plain one would read back differently."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    text = str(value)
    if NAME_RE.match(text) and resolve_plain(text) == (text, "str") \
            and not yaml11_trap(text, "str"):
        return text
    return json.dumps(text, ensure_ascii=False)


def flat_spec(graph: Graph) -> str:
    lines = [f"netc: {FORMAT_VERSION}", f"name: {scalar(graph.name)}"]
    if graph.description:
        lines.append(f"description: {json.dumps(graph.description, ensure_ascii=False)}")
    lines.append("inputs:")
    lines += [f"  {scalar(v.name)}: {scalar(list(v.shape))}" for v in graph.inputs]
    pre = graph.preprocess
    if pre is not None:  # every step stated, the defaults too
        lines.append("preprocess:")
        lines += [f"  {key}: {scalar(value[0] if key == 'resize' and len(value) == 1 else value)}"
                  for key, value in pre.to_dict().items() if value is not None]
    if graph.labels is not None:
        shipped = [name for name in SHIPPED_LABELS if graph.labels == shipped_labels(name)]
        lines.append(f"labels: {shipped[0]}" if shipped
                     else f"labels: {scalar(list(graph.labels))}")
    lines.append("layers:")
    for node in graph.nodes:
        # the layers its `to:` (its class's `references`) names are its last inputs, by their
        # full names; its data inputs come first (`from`)
        named = [r for r in type(node.layer).references if getattr(node.layer, r) is not None]
        data = len(node.inputs) - len(named)
        refs = dict(zip(named, (x.name for x in node.inputs[data:])))
        attrs = []
        for spec in attributes(type(node.layer)):
            value = refs.get(spec.name, getattr(node.layer, spec.name))
            if value is not None:  # None: the default that depends on another attribute
                attrs.append(f"{spec.name}: {scalar(value)}")
        head = f"  - {node.kind}: {{{', '.join(attrs)}}}" if attrs else f"  - {node.kind}:"
        lines.append(head)
        lines.append(f"    name: {scalar(node.name)}")
        sources = [x.name for x in node.inputs[:data]]
        lines.append(f"    from: {scalar(sources[0]) if len(sources) == 1 else scalar(sources)}")
        if node.allow:  # the warnings the spec silenced there stay silenced
            lines.append(f"    allow: {scalar(sorted(node.allow))}")
    lines.append(f"outputs: {scalar([v.name for v in graph.outputs])}")
    lines.append("expect:")
    lines.append(f"  params: {graph.params}")
    lines.append(f"  macs: {graph.macs}")
    outputs = ", ".join(f"{scalar(v.name)}: {scalar(list(v.shape))}" for v in graph.outputs)
    lines.append(f"  outputs: {{{outputs}}}")
    return "\n".join(lines) + "\n"
