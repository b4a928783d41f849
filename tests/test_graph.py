"""`netc graph`: Mermaid and DOT diagrams with a shape on every edge and blocks as nested
subgraphs, collapsible with --depth."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import netc
from netc.cli import main
from netc.tools.graph import build, dot, mermaid, render

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SHAPE = r"[A-Za-z0-9_]+(?:×\d+)+"  # N×64×56×56, N×1000

ID = r"[A-Za-z][A-Za-z0-9_]*"
MERMAID_NODE = re.compile(rf'^\s*({ID})(\(\["|\["|\[\[")(.*?)("\]\)|"\]|"\]\])$')
MERMAID_EDGE = re.compile(rf'^\s*({ID}) -->\|"({SHAPE})"\| ({ID})$')
MERMAID_SUBGRAPH = re.compile(rf'^\s*subgraph ({ID})\["([^"]*)"\]$')
DOT_NODE = re.compile(rf'^\s*({ID}) \[label="((?:[^"\\]|\\.)*)"(, [^\]]*)?\];$')
DOT_EDGE = re.compile(rf'^\s*({ID}) -> ({ID}) \[label="({SHAPE})"\];$')


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
            edges.append((m.group(1), m.group(3), m.group(2)))
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
            edges.append((m.group(1), m.group(2), m.group(3)))
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
    assert mermaid(diagram).count("-->") == dot(diagram).count(" -> ") == len(diagram.edges)


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
