"""`netc graph`: Mermaid and DOT diagrams with a shape on every edge and blocks as nested
subgraphs, collapsible with --depth."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import netc
import netc.layers
from netc.cli import main
from netc.tools.graph import build, dot, mermaid, render

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SHAPE = r"[A-Za-z0-9_]+(?:×\d+)+"  # N×64×56×56, N×1000

ID = r"[A-Za-z][A-Za-z0-9_]*"
MERMAID_NODE = re.compile(rf'^\s*({ID})(\(\["|\["|\[\[")(.*?)("\]\)|"\]|"\]\])$')
# a skip connection is a dotted link (-.->), every other edge a plain one
MERMAID_EDGE = re.compile(rf'^\s*({ID}) (-->|-\.->)\|"({SHAPE})"\| ({ID})$')
MERMAID_SUBGRAPH = re.compile(rf'^\s*subgraph ({ID})\["([^"]*)"\]$')
DOT_NODE = re.compile(rf'^\s*({ID}) \[label="((?:[^"\\]|\\.)*)"(, [^\]]*)?\];$')
# a skip connection's shape is its headlabel, among its style attributes
DOT_EDGE = re.compile(rf'^\s*({ID}) -> ({ID}) \[(label|headlabel)="({SHAPE})"(, [^\]]*)?\];$')


@pytest.fixture(scope="module")
def graphs():
    return {p.stem: netc.check_spec(p) for p in SPECS}


def parse_mermaid(text: str):
    """Check the Mermaid text line by line; return (nodes, edges, subgraph titles, max depth)."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes, edges, titles, depth, deepest = {}, [], [], 0, 0
    for line in lines[1:]:
        if m := MERMAID_SUBGRAPH.match(line):
            titles.append(m.group(2))
            depth += 1
            deepest = max(deepest, depth)
        elif line.strip() == "end":
            depth -= 1
            assert depth >= 0, "an `end` without its subgraph"
        elif m := MERMAID_EDGE.match(line):
            edges.append((m.group(1), m.group(4), m.group(3)))
        elif m := MERMAID_NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            label = m.group(3)
            assert '"' not in label and not re.search(r"[<>](?!br/>)", label.replace("<br/>", "")), line
            nodes[m.group(1)] = label
        else:
            pytest.fail(f"unexpected Mermaid line: {line!r}")
    assert depth == 0, "a subgraph without its `end`"
    for a, b, _ in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges, titles, deepest


def parse_dot(text: str):
    lines = text.splitlines()
    assert lines[0].startswith("digraph ") and lines[0].endswith("{") and lines[-1] == "}"
    assert text.count("{") == text.count("}")
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := DOT_EDGE.match(line):
            edges.append((m.group(1), m.group(2), m.group(4)))
        elif m := DOT_NODE.match(line):
            nodes[m.group(1)] = m.group(2)
    for a, b, _ in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "googlenet"])
def test_full_diagram_has_every_layer_and_a_shape_on_every_edge(graphs, name):
    graph = graphs[name]
    nodes, edges, titles, _ = parse_mermaid(render(graph, "mermaid"))
    # one node per layer, input and output
    assert len(nodes) == len(graph.nodes) + len(graph.inputs) + len(graph.outputs)
    # one edge per tensor a layer reads, plus one to each output, each with its shape
    assert len(edges) == sum(len(n.inputs) for n in graph.nodes) + len(graph.outputs)
    shapes = {v.name: "×".join(map(str, v.shape)) for n in graph.nodes for v in n.inputs}
    assert {label for _, _, label in edges} <= set(shapes.values()) | {
        "×".join(map(str, v.shape)) for v in graph.outputs}
    dot_nodes, dot_edges = parse_dot(render(graph, "dot"))
    assert len(dot_nodes) == len(nodes) and len(dot_edges) == len(edges)


def test_blocks_are_nested_subgraphs(graphs):
    text = render(graphs["resnet50"], "mermaid")
    _, _, titles, deepest = parse_mermaid(text)
    assert {"layer1", "layer1.0", "layer2.0.downsample"} <= set(titles)
    assert deepest == 3  # layer2 > layer2.0 > layer2.0.downsample
    # layer1.0 lies inside layer1: its subgraph opens before layer1's closes
    body = text[text.index('subgraph g_layer1["layer1"]'):]
    assert body.index('subgraph g_layer1_0["layer1.0"]') < body.index("\n  end")
    assert 'n_layer1_0_conv1["conv1<br/>conv 1×1, 64"]' in text
    _, _, titles, _ = parse_mermaid(render(graphs["googlenet"], "mermaid"))
    assert {"inception3a", "inception3a.branch2", "inception3a.branch2.1"} <= set(titles)


def test_depth_1_collapses_each_block_into_one_node(graphs):
    graph = graphs["resnet18"]
    nodes, edges, titles, _ = parse_mermaid(render(graph, "mermaid", depth=1))
    assert titles == []
    top = {n.name.split(".")[0] for n in graph.nodes}
    assert len(nodes) == len(top) + 2  # the input and the output
    assert nodes["c_layer2"] == "layer2<br/>16 layers"
    assert ("c_layer1", "c_layer2", "N×64×56×56") in edges  # the shape between stages
    assert ("c_layer2", "c_layer3", "N×128×28×28") in edges
    assert len(edges) == len(nodes) - 1  # a chain: the residual edges are inside the blocks
    dot_nodes, dot_edges = parse_dot(render(graph, "dot", depth=1))
    assert len(dot_nodes) == len(nodes) and "cluster" not in render(graph, "dot", depth=1)


def test_depth_2_keeps_one_level_of_subgraphs(graphs):
    nodes, edges, titles, deepest = parse_mermaid(render(graphs["googlenet"], "mermaid", depth=2))
    assert deepest == 1 and "inception3a" in titles
    # the four branches of an inception module: four collapsed nodes fed by the same tensor
    fed = [b for a, b, _ in edges if a == "n_maxpool2"]
    assert sorted(fed) == [f"c_inception3a_branch{k}" for k in (1, 2, 3, 4)]
    assert nodes["c_inception3a_branch2"] == "inception3a.branch2<br/>6 layers"


def test_ids_are_sanitised_and_unique(tmp_path):
    spec = tmp_path / "odd.yaml"
    spec.write_text("netc: 1\nname: odd\ninputs: {x: [N, 4]}\nlayers:\n"
                    "  - relu:\n    name: end\n"          # a Mermaid keyword
                    "  - relu:\n    name: a-b\n"
                    "  - relu:\n    name: a_b\n"          # sanitises to the same id
                    "  - relu:\n    name: graph.0\n")
    graph = netc.check_spec(spec)
    nodes, edges, _, _ = parse_mermaid(render(graph, "mermaid"))
    assert len(nodes) == 6 and len(edges) == 5
    assert all(re.fullmatch(r"[a-z]_[A-Za-z0-9_]+", i) for i in nodes)
    assert {"n_a_b", "n_a_b_2"} <= set(nodes)
    parse_dot(render(graph, "dot"))


def test_cli(tmp_path, capsys):
    assert main(["graph", str(ROOT / "specs" / "lenet5.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart TD\n") and '-->|"N×6×28×28"|' in out
    target = tmp_path / "g.dot"
    assert main(["graph", str(ROOT / "specs" / "resnet18.yaml"), "--format", "dot",
                 "--depth", "2", "-o", str(target)]) == 0
    assert target.read_text().startswith('digraph "resnet18" {')
    assert main(["graph", str(ROOT / "specs" / "resnet152.yaml")]) == 0
    assert "Mermaid draws at most 500" in capsys.readouterr().err
    assert main(["graph", str(ROOT / "specs" / "resnet152.yaml"), "--depth", "2"]) == 0
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as e:
        main(["graph", str(ROOT / "specs" / "lenet5.yaml"), "--depth", "0"])
    assert e.value.code == 2
    capsys.readouterr()


def test_diagram_structure_is_shared_by_both_formats(graphs):
    diagram = build(graphs["resnet18"], depth=2)
    arrows = mermaid(diagram).count("-->") + mermaid(diagram).count("-.->")
    assert arrows == dot(diagram).count(" -> ") == len(diagram.edges)


def test_inline_branches_are_drawn_with_their_concat(tmp_path):
    """`- branches:` named `mixed` is a layer (the concat) and a subgraph (its branches)."""
    spec = tmp_path / "mixed.yaml"
    spec.write_text("netc: 1\nname: m\ninputs: {x: [N, 3, 8, 8]}\nlayers:\n"
                    "  - conv: {filters: 4, kernel: 1}\n"
                    "  - branches:\n"
                    "      - relu\n"
                    "      - [maxpool: {kernel: 3, stride: 1, pad: 1}, tanh]\n"
                    "    name: mixed\n"
                    "  - flatten\n")
    graph = netc.check_spec(spec)
    nodes, edges, titles, _ = parse_mermaid(render(graph, "mermaid"))
    assert titles == ["mixed", "mixed.branch2"] and nodes["n_mixed"] == "mixed<br/>concat"
    assert len(nodes) == len(graph.nodes) + 2
    nodes, edges, titles, _ = parse_mermaid(render(graph, "mermaid", depth=1))
    assert titles == [] and nodes["c_mixed"] == "mixed<br/>4 layers"
    assert [(a, b) for a, b, _ in edges] == [("i_x", "n_conv1"), ("n_conv1", "c_mixed"),
                                             ("c_mixed", "n_flatten1"), ("n_flatten1", "o_flatten1")]


def dotted_edges(text: str) -> set[tuple[str, str]]:
    """The (source, target) of the Mermaid links drawn dotted (`-.->`)."""
    return {(m.group(1), m.group(4)) for line in text.splitlines()
            if (m := MERMAID_EDGE.match(line)) and m.group(2) == "-.->"}


def reachable_another_way(edges) -> set[tuple[str, str]]:
    """The oracle for skip connections: the edges (a, b) such that b is reached from a
    without taking that edge (a depth-first search per edge)."""
    pairs = {(a, b) for a, b, _ in edges}
    after: dict[str, set[str]] = {}
    for a, b in pairs:
        after.setdefault(a, set()).add(b)
    found = set()
    for a, b in pairs:
        todo = [t for t in after[a] if t != b]
        seen = set(todo)
        while todo and b not in seen:
            for t in after.get(todo.pop(), ()):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        if b in seen:
            found.add((a, b))
    return found


UNET = """netc: 1
name: unet3
inputs: {image: [N, 3, 32, 32]}
layers:
  - {conv: {filters: 4, kernel: 3, pad: 1}, name: enc1}
  - {maxpool: 2, name: down1}
  - {conv: {filters: 8, kernel: 3, pad: 1}, name: enc2}
  - {maxpool: 2, name: down2}
  - {conv: {filters: 16, kernel: 3, pad: 1}, name: enc3}
  - {maxpool: 2, name: down3}
  - {conv: {filters: 32, kernel: 3, pad: 1}, name: bottom}
  - {convtranspose: {filters: 16, kernel: 2, stride: 2}, name: up3}
  - {concat: {from: [enc3, up3]}, name: cat3}
  - {convtranspose: {filters: 8, kernel: 2, stride: 2}, name: up2}
  - {concat: {from: [enc2, up2]}, name: cat2}
  - {convtranspose: {filters: 4, kernel: 2, stride: 2}, name: up1}
  - {concat: {from: [enc1, up1]}, name: cat1}
  - {conv: {filters: 2, kernel: 1}, name: head}
"""


@pytest.mark.skipif("convtranspose" not in netc.layers.REGISTRY, reason="a U-Net upsamples")
def test_skip_connections_are_drawn_apart_from_the_main_path(tmp_path):
    """A U-Net's skips: dotted in Mermaid; in DOT dashed, outside the ranking
    (constraint=false), along the right side (ports e), their shape at the join."""
    spec = tmp_path / "unet.yaml"
    spec.write_text(UNET)
    graph = netc.check_spec(spec)
    text = render(graph, "mermaid")
    nodes, edges, _, _ = parse_mermaid(text)
    skips = {("n_enc3", "n_cat3"), ("n_enc2", "n_cat2"), ("n_enc1", "n_cat1")}
    assert dotted_edges(text) == skips
    assert len(edges) == sum(len(n.inputs) for n in graph.nodes) + 1  # each drawn once
    assert '  n_enc1 -.->|"N×4×32×32"| n_cat1' in text.splitlines()
    assert '  n_up1 -->|"N×4×32×32"| n_cat1' in text.splitlines()
    lines = render(graph, "dot").splitlines()
    skip_lines = [line for line in lines if "constraint=false" in line]
    assert len(skip_lines) == 3
    assert '  n_enc1 -> n_cat1 [headlabel="N×4×32×32", style=dashed, color="#3a6ea5", ' \
           'fontcolor="#3a6ea5", constraint=false, tailport=e, headport=e, labelangle=-40, ' \
           'labeldistance=4];' in lines
    for line in skip_lines:
        assert "style=dashed" in line and "tailport=e" in line and "headport=e" in line
    assert '  n_up1 -> n_cat1 [label="N×4×32×32"];' in lines  # the main path as before
    dot_nodes, dot_edges = parse_dot(render(graph, "dot"))
    assert len(dot_edges) == len(edges)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "googlenet", "unet"])
@pytest.mark.parametrize("depth", [None, 1, 2])
def test_the_dotted_edges_are_the_skips(graphs, name, depth):
    """Exactly the edges whose target their source also reaches another way are dotted
    (the oracle: a search per edge); ResNet's identity shortcuts are, GoogLeNet's parallel
    branches are not."""
    text = render(graphs[name], "mermaid", depth=depth)
    _, edges, _, _ = parse_mermaid(text)
    assert dotted_edges(text) == reachable_another_way(edges)
    if name == "googlenet":
        assert dotted_edges(text) == set()
    if name == "resnet18" and depth is None:  # the 5 blocks without a downsample
        assert sorted(b for _, b in dotted_edges(text)) == sorted(
            f"n_layer{k}_{j}_add1" for k, j in [(1, 0), (1, 1), (2, 1), (3, 1), (4, 1)])
    if name == "unet" and depth == 1:  # each level's encoder block to its decoder block
        assert dotted_edges(text) == {("c_inc", "c_up4"), ("c_down1", "c_up3"),
                                      ("c_down2", "c_up2"), ("c_down3", "c_up1")}
