"""`netc graph`: a checked network as a diagram, in Mermaid (GitHub renders it) or DOT.

Every edge carries the shape of the tensor it holds. Blocks become nested subgraphs, from
the hierarchical names: the block instance `layer1` is a subgraph, its repeat `layer1.0` one
inside it, and `layer1.0.conv1` a node in that. `depth` collapses everything deeper than that
many levels into one node per subgraph (`depth=1`: one node per stage of a ResNet); edges
between collapsed nodes keep their shapes.

Neither format needs a binary to produce: Mermaid renders in GitHub, GitLab and most
Markdown viewers (inside a ```mermaid fence); DOT goes to graphviz (`dot -Tsvg`).

A skip connection (an edge whose target its source also reaches through other layers: a
U-Net's encoder map joining the decoder, a residual shortcut) is drawn apart from the main
path, so that a long one does not pull the layout out of shape: a dotted link in Mermaid
(`-.->`); in DOT a dashed blue edge that leaves no mark on the ranking (`constraint=false`)
and runs along the right side of the nodes (ports `e`), its shape written at its head, by
the join. The main path then stays one straight column and the skips nest beside it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from ..ir import Graph, Node
from ..layers.base import fmt_shape

FORMATS = ("mermaid", "dot")


@dataclass
class Box:
    """A drawn node: an input, a layer, an output, or a collapsed subgraph."""

    id: str
    lines: list[str]
    kind: str  # input, layer, output, collapsed


@dataclass
class Cluster:
    """A subgraph: a block instance or repeat, with what it contains, in order."""

    id: str
    title: str
    items: list = field(default_factory=list)  # of Box and Cluster


@dataclass(frozen=True)
class Edge:
    source: str  # Box ids
    target: str
    label: str
    skip: bool = False  # the source also reaches the target through other boxes
    reference: bool = False  # a `to:` reference: the target reads its size, not its values


@dataclass
class Diagram:
    """The layout-free picture: nested clusters of boxes, and labelled edges."""

    name: str
    items: list  # top level: Box and Cluster
    edges: list[Edge]

    def boxes(self) -> list[Box]:
        found, stack = [], list(self.items)
        while stack:
            item = stack.pop(0)
            if isinstance(item, Box):
                found.append(item)
            else:
                stack[:0] = item.items
        return found


MERMAID_MAX_EDGES = 500  # Mermaid's default `maxEdges`: it refuses to draw a larger diagram


def render(graph: Graph, fmt: str = "mermaid", depth: int | None = None) -> str:
    """The diagram of a checked graph as Mermaid or DOT text."""
    return text_of(build(graph, depth), fmt)


def text_of(diagram: Diagram, fmt: str) -> str:
    if fmt == "mermaid":
        return mermaid(diagram)
    if fmt == "dot":
        return dot(diagram)
    raise ValueError(f"unknown diagram format {fmt!r}")


def advice(diagram: Diagram, fmt: str, depth: int | None) -> str | None:
    """A note for the user when the diagram is too large for Mermaid to draw."""
    if fmt != "mermaid" or len(diagram.edges) <= MERMAID_MAX_EDGES:
        return None
    deeper = f"a --depth below {depth}" if depth else "--depth 2"
    return (f"netc graph: note: {len(diagram.edges)} edges; Mermaid draws at most "
            f"{MERMAID_MAX_EDGES} by default: use {deeper}, or --format dot")


# --- from the graph to a diagram ---------------------------------------------------------


def _parts(name: str) -> list[str]:
    return name.split(".")


def build(graph: Graph, depth: int | None = None) -> Diagram:
    """Group the nodes by their dotted names, collapse below `depth`, and label the edges."""
    if depth is not None and depth < 1:
        raise ValueError("depth must be at least 1")
    ids = _Ids()
    groups = set()  # every proper prefix of a layer name is a subgraph
    for node in graph.nodes:
        parts = _parts(node.name)
        groups.update(".".join(parts[:i]) for i in range(1, len(parts)))

    def container(name: str) -> str:
        """The subgraph a layer is drawn in ('' for the top level)."""
        if name in groups:  # `- branches:` named `mixed`: the concat sits with its branches
            return name
        return name.rpartition(".")[0]

    def level(group: str) -> int:
        return len(_parts(group)) if group else 0

    def collapsed_into(name: str) -> str | None:
        """The collapsed subgraph a layer is drawn as at this depth (None: drawn itself)."""
        group = container(name)
        if depth is None or level(group) < depth:
            return None
        return ".".join(_parts(group)[:depth])

    root = Cluster("", "")
    clusters = {"": root}
    boxes: dict[str, Box] = {}  # inputs and layers drawn as themselves, by name
    collapsed: dict[str, Box] = {}  # collapsed subgraphs, by name
    sizes: dict[str, int] = {}  # how many layers each collapsed subgraph holds

    def cluster(group: str) -> Cluster:
        if group not in clusters:
            parent = cluster(group.rpartition(".")[0])
            clusters[group] = Cluster(ids.make("g", group), group)
            parent.items.append(clusters[group])
        return clusters[group]

    def box(name: str) -> Box:
        """What stands for an input or a layer in the picture."""
        if name in boxes:
            return boxes[name]
        return collapsed[collapsed_into(name)]

    for value in graph.inputs:
        boxes[value.name] = Box(ids.make("i", value.name), [value.name, "input"], "input")
        root.items.append(boxes[value.name])
    for node in graph.nodes:
        group = collapsed_into(node.name)
        if group is not None:
            sizes[group] = sizes.get(group, 0) + 1
            if group not in collapsed:
                collapsed[group] = Box(ids.make("c", group), [], "collapsed")
                cluster(group.rpartition(".")[0]).items.append(collapsed[group])
            continue
        group = container(node.name)
        boxes[node.name] = Box(ids.make("n", node.name), _layer_lines(node, group), "layer")
        cluster(group).items.append(boxes[node.name])
    for group, count in sizes.items():
        collapsed[group].lines = [group, f"{count} layer{'s' * (count != 1)}"]

    edges, seen = [], set()

    def connect(source: str, target: str, value, reference: bool = False) -> None:
        """An edge for `value`, once per pair of boxes (a collapsed subgraph may read one
        value in several of its layers)."""
        origin = box(source).id
        if origin != target and (origin, target, value.name) not in seen:
            seen.add((origin, target, value.name))
            label = fmt_shape(value.shape)
            edges.append(Edge(origin, target, f"size of {label}" if reference else label,
                              reference=reference))

    for node in graph.nodes:
        target = box(node.name).id
        # the values its `to:` names (its class's `references`) are its last inputs
        named = sum(getattr(node.layer, r) is not None for r in type(node.layer).references)
        for k, value in enumerate(node.inputs):
            connect(value.name, target, value, k >= len(node.inputs) - named)
    for value in graph.outputs:
        out = Box(ids.make("o", value.name), [value.name, "output"], "output")
        root.items.append(out)
        connect(value.name, out.id, value)
    return Diagram(graph.name, root.items, _mark_skips(edges))


def _mark_skips(edges: list[Edge]) -> list[Edge]:
    """The edges, each marked `skip` when its source also reaches its target through another
    of its successors (reachability as bit sets, in reverse topological order; an edge out
    of a cycle of collapsed subgraphs is never a skip)."""
    successors: dict[str, list[str]] = {}
    waiting: dict[str, int] = {}  # incoming edges not yet seen, for the topological order
    for e in edges:
        successors.setdefault(e.source, []).append(e.target)
        waiting[e.target] = waiting.get(e.target, 0) + 1
        waiting.setdefault(e.source, 0)
    order = [box for box, n in waiting.items() if n == 0]
    for box in order:  # Kahn's algorithm: the list grows as it is read
        for target in successors.get(box, ()):
            waiting[target] -= 1
            if waiting[target] == 0:
                order.append(target)
    bit = {box: 1 << i for i, box in enumerate(waiting)}
    reach: dict[str, int] = {}
    for box in reversed(order):
        found = 0
        for target in successors.get(box, ()):
            found |= bit[target] | reach.get(target, 0)
        reach[box] = found
    marked = []
    for e in edges:
        others = [t for t in successors[e.source] if t != e.target]
        skip = e.source in reach and any(reach.get(t, 0) & bit[e.target] for t in others)
        marked.append(dataclasses.replace(e, skip=True) if skip else e)
    return marked


def _layer_lines(node: Node, group: str) -> list[str]:
    """A layer's label: its name within its subgraph, and its type with the main numbers."""
    if node.name == group:  # the concat of `- branches:`, drawn with its branches
        local = _parts(node.name)[-1]
    else:
        local = node.name[len(group) + 1:] if group else node.name
    return [local, node.layer.label()]


class _Ids:
    """Identifiers both Mermaid and DOT accept (letters, digits, `_`), unique, and never a
    keyword (`end` would close a Mermaid subgraph): each starts with a prefix and `_`."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, prefix: str, name: str) -> str:
        base = f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"
        candidate, k = base, 1
        while candidate in self.used:
            k += 1
            candidate = f"{base}_{k}"
        self.used.add(candidate)
        return candidate


# --- Mermaid -------------------------------------------------------------------------------

_MERMAID_SHAPES = {"input": ('(["', '"])'), "output": ('(["', '"])'), "layer": ('["', '"]'),
                   "collapsed": ('[["', '"]]')}


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and the characters Mermaid reads as markup
    are written as entities."""
    for ch, entity in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(ch, entity)
    return text


def mermaid(diagram: Diagram) -> str:
    """A Mermaid flowchart, top to bottom (paste it into a ```mermaid fence on GitHub)."""
    out = ["flowchart TD"]

    def emit(items, indent: str) -> None:
        for item in items:
            if isinstance(item, Box):
                left, right = _MERMAID_SHAPES[item.kind]
                label = "<br/>".join(_mermaid_text(line) for line in item.lines)
                out.append(f"{indent}{item.id}{left}{label}{right}")
            else:
                out.append(f'{indent}subgraph {item.id}["{_mermaid_text(item.title)}"]')
                emit(item.items, indent + "  ")
                out.append(f"{indent}end")

    emit(diagram.items, "  ")
    for e in diagram.edges:
        arrow = "-.->" if e.skip or e.reference else "-->"
        out.append(f'  {e.source} {arrow}|"{_mermaid_text(e.label)}"| {e.target}')
    return "\n".join(out) + "\n"


# --- DOT -----------------------------------------------------------------------------------

_DOT_SHAPES = {"input": "shape=oval", "output": "shape=oval", "layer": "",
               "collapsed": 'style="rounded,filled,bold", fillcolor="#eeeeee"'}


# a skip connection: apart from the main path (see the module doc); its label at its head
_DOT_SKIP = ('style=dashed, color="#3a6ea5", fontcolor="#3a6ea5", constraint=false, '
             'tailport=e, headport=e, labelangle=-40, labeldistance=4')


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(diagram: Diagram) -> str:
    """A graphviz digraph: blocks are clusters (`dot -Tsvg model.dot -o model.svg`)."""
    out = [f"digraph {_dot_string(diagram.name)} {{",
           '  node [shape=box, style=rounded, fontname="Helvetica"];',
           '  edge [fontname="Helvetica", fontsize=10];']

    def emit(items, indent: str) -> None:
        for item in items:
            if isinstance(item, Box):
                label = _dot_string("\n".join(item.lines)).replace("\n", "\\n")
                extra = _DOT_SHAPES[item.kind]
                out.append(f"{indent}{item.id} [label={label}{', ' + extra if extra else ''}];")
            else:
                out.append(f"{indent}subgraph cluster_{item.id} {{")
                out.append(f"{indent}  label={_dot_string(item.title)};")
                emit(item.items, indent + "  ")
                out.append(f"{indent}}}")

    emit(diagram.items, "  ")
    for e in diagram.edges:
        dotted = ", style=dotted" if e.reference else ""  # a size read by `to:` (last wins)
        if e.skip:
            out.append(f"  {e.source} -> {e.target} [headlabel={_dot_string(e.label)}, "
                       f"{_DOT_SKIP}{dotted}];")
        else:
            out.append(f"  {e.source} -> {e.target} [label={_dot_string(e.label)}{dotted}];")
    out.append("}")
    return "\n".join(out) + "\n"
