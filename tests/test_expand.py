"""Expansion: blocks with typed arguments, the `$expr` language, defaults, repeat (with `first`),
`when`, `branches`, block outputs and hierarchical names; errors inside blocks point at the
line in the block and at the use site. Small specs are written to tmp_path and checked with
netc's public API (or, where only the names matter, flattened without shape checking).
"""

from __future__ import annotations

import builtins
import textwrap

import pytest

import netc
from netc.errors import NetcError
from netc.expand import flatten
from netc.expr import MAX_MAGNITUDE, ExprError, evaluate, is_expression, references
from netc.load import load_bytes

HEADER = "netc: 1\nname: t\ninputs:\n  image: [N, 3, 16, 16]\n"


def spec(body: str) -> str:
    return HEADER + textwrap.dedent(body).lstrip("\n")


@pytest.fixture
def check(tmp_path):
    """`check(body)`: the checked graph of HEADER + body (a NetcError propagates)."""
    count = iter(range(1000))

    def run(body: str):
        path = tmp_path / f"spec{next(count)}.yaml"
        path.write_text(spec(body), encoding="utf-8")
        return netc.check_spec(path)

    return run


@pytest.fixture
def problems(check):
    """`problems(body)`: the diagnostics netc reports for a bad spec, in file order."""

    def run(body: str):
        with pytest.raises(NetcError) as info:
            check(body)
        return info.value.diagnostics.sorted()

    return run


def flat(body: str):
    """The flat spec and diagnostics of the expansion stage alone (no shapes)."""
    source, root = load_bytes(spec(body).encode("utf-8"), "spec.yaml")
    return flatten(source, root)


def names(graph) -> list[str]:
    return [n.name for n in graph.nodes]


def node(graph, name: str):
    [found] = [n for n in graph.nodes if n.name == name]
    return found


def reads(graph, name: str) -> list[str]:
    return [v.name for v in node(graph, name).inputs]


def channels(graph, name: str) -> int:
    return node(graph, name).output.shape[1]


def where(body: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the `nth` occurrence of `needle` in the spec's text."""
    text = spec(body)
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def pos(diag) -> tuple[int, int]:
    return diag.span.line, diag.span.col


# --- hierarchical and default names ------------------------------------------------------------

BASIC = """
    defaults:
      conv: {bias: false, round: floor}
    blocks:
      basic:
        args: {filters: int, stride: 1, project: false}
        layers:
          - conv: {filters: $filters, kernel: 3, stride: $stride, pad: 1}
            name: conv1
          - batchnorm:
            name: bn1
          - relu
          - conv: {filters: $filters, kernel: 3, pad: 1}
            name: conv2
          - batchnorm:
            name: bn2
          - conv: {filters: $filters, kernel: 1, stride: $stride}
            name: downsample.0
            from: input
            when: $project
          - batchnorm:
            name: downsample.1
            when: $project
          - add: {from: [bn2, downsample.1]}
          - relu
    layers:
      - conv: {filters: 8, kernel: 3, pad: 1}
        name: conv1
      - basic: {filters: 8}
        repeat: 2
        name: layer1
      - basic: {filters: 16}
        repeat: 2
        first: {stride: 2, project: true}
        name: layer2
    """


def test_block_instance_repeat_index_and_inner_layer_make_the_name(check):
    graph = check(BASIC)
    assert names(graph)[:10] == [
        "conv1",
        "layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu1", "layer1.0.conv2", "layer1.0.bn2",
        "layer1.0.add1", "layer1.0.relu2",
        "layer1.1.conv1", "layer1.1.bn1",
    ]
    # the weight names are PyTorch's state_dict keys
    assert [w.name for w in node(graph, "layer2.0.downsample.1").weights][:2] == [
        "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias"]
    assert [w.name for w in node(graph, "layer1.1.conv2").weights] == ["layer1.1.conv2.weight"]


def test_blocks_nested_three_deep(check):
    graph = check("""
        blocks:
          inner:
            args: {f: int}
            layers:
              - conv: {filters: $f, kernel: 1}
              - relu
          middle:
            args: {f: int}
            layers:
              - inner: {f: $f}
                name: a
              - inner: {f: $f * 2}
          outer:
            args: {f: 2}
            layers:
              - middle: {f: $f}
                repeat: 2
                name: stage
        layers:
          - outer: {f: 4}
            name: net
          - outer
        """)
    assert names(graph) == [
        "net.stage.0.a.conv1", "net.stage.0.a.relu1",
        "net.stage.0.inner1.conv1", "net.stage.0.inner1.relu1",
        "net.stage.1.a.conv1", "net.stage.1.a.relu1",
        "net.stage.1.inner1.conv1", "net.stage.1.inner1.relu1",
        "outer1.stage.0.a.conv1", "outer1.stage.0.a.relu1",
        "outer1.stage.0.inner1.conv1", "outer1.stage.0.inner1.relu1",
        "outer1.stage.1.a.conv1", "outer1.stage.1.a.relu1",
        "outer1.stage.1.inner1.conv1", "outer1.stage.1.inner1.relu1",
    ]
    assert channels(graph, "net.stage.1.inner1.conv1") == 8
    assert channels(graph, "outer1.stage.0.a.conv1") == 2


def test_block_uses_without_a_name_are_numbered_per_block(check):
    graph = check("""
        blocks:
          unit:
            layers:
              - conv: {filters: 4, kernel: 1}
          other:
            layers:
              - relu
        layers:
          - unit
          - other
          - unit
          - conv: {filters: 4, kernel: 1}
        """)
    assert names(graph) == ["unit1.conv1", "other1.relu1", "unit2.conv1", "conv1"]


def test_default_names_count_per_type_and_skip_explicit_ones(check):
    graph = check("""
        layers:
          - conv: {filters: 4, kernel: 1}
          - relu
          - conv: {filters: 4, kernel: 1}
            name: conv2
          - relu
          - conv: {filters: 4, kernel: 1}
          - relu
          - relu:
            name: relu3
        """)
    # the third relu can't be relu3, which a later layer names explicitly
    assert names(graph) == ["conv1", "relu1", "conv2", "relu2", "conv3", "relu4", "relu3"]


def test_names_inside_a_block_start_again_from_one(check):
    graph = check("""
        blocks:
          unit:
            layers:
              - relu
              - relu
        layers:
          - relu
          - unit
        """)
    assert names(graph) == ["relu1", "unit1.relu1", "unit1.relu2"]


# --- arguments and expressions -----------------------------------------------------------------


def test_arguments_typed_with_defaults_and_expressions(check):
    graph = check("""
        blocks:
          unit:
            args: {filters: int, expand: 4, eps: 0.001, bias: false}
            layers:
              - conv: {filters: $filters * $expand, kernel: 1, bias: $bias}
              - conv: {filters: ($filters + 1) // 2, kernel: 1}
              - batchnorm: {eps: $eps}
        layers:
          - unit: {filters: 5}
            name: a
          - unit: {filters: 3, expand: 2, eps: 1, bias: true}
            name: b
        """)
    assert channels(graph, "a.conv1") == 20
    assert channels(graph, "a.conv2") == 3
    assert node(graph, "a.conv1").layer.bias is False
    assert node(graph, "a.batchnorm1").layer.eps == pytest.approx(0.001)
    assert channels(graph, "b.conv1") == 6
    assert channels(graph, "b.conv2") == 2
    assert node(graph, "b.conv1").layer.bias is True
    assert node(graph, "b.batchnorm1").layer.eps == 1.0  # an int passed for a float argument


def test_conditions_use_comparisons_and_or_not(check):
    graph = check("""
        blocks:
          unit:
            args: {stride: 1, project: false}
            layers:
              - relu:
                name: strided
                when: $stride > 1 and not $project
              - relu:
                name: either
                when: $stride != 1 or $project
              - relu:
                name: plain
                when: not ($stride >= 2 or $project) and true
        layers:
          - unit: {stride: 2}
            name: a
          - unit: {project: true}
            name: b
          - unit:
            name: c
        """)
    assert names(graph) == ["a.strided", "a.either", "b.either", "c.plain"]


@pytest.mark.parametrize("given, code, message", [
    ("{filters: 4, strid: 2}", "E102", "block 'unit' has no argument 'strid'"),
    ("{stride: 2}", "E101", "block 'unit' needs the argument `filters` (int)"),
    ("{filters: 4, stride: true}", "E103",
     "argument 'stride' must be an integer, not the boolean true"),
    ("{filters: 4, wide: 1}", "E103", "argument 'wide' must be true or false, not the integer 1"),
    ('{filters: "4"}', "E103", "argument 'filters' must be an integer, not the string '4'"),
    ("{filters: 2.5}", "E103", "argument 'filters' must be an integer"),
    ("[4, 2]", "E108", "block 'unit' takes its arguments as a mapping"),
])
def test_argument_errors(problems, given, code, message):
    body = f"""
        blocks:
          unit:
            args: {{filters: int, stride: 1, wide: false}}
            layers:
              - conv: {{filters: $filters, kernel: 1, stride: $stride}}
        layers:
          - unit: {given}
        """
    [diag] = problems(body)
    assert (diag.code, diag.severity) == (code, "error")
    assert message in diag.message
    assert diag.span.line == where(body, "- unit")[0]


def test_a_required_argument_note_points_at_its_declaration(problems):
    body = """
        blocks:
          unit:
            args: {filters: int}
            layers:
              - conv: {filters: $filters, kernel: 1}
        layers:
          - unit
        """
    [diag] = problems(body)
    assert pos(diag) == where(body, "unit", 1)
    [note] = diag.notes
    assert (note.message, (note.span.line, note.span.col)) == ("declared here",
                                                               where(body, "filters: int"))


def test_an_expression_that_gives_the_wrong_type_is_a_type_error_at_the_expression(problems):
    body = """
        blocks:
          unit:
            args: {n: 2}
            layers:
              - conv: {filters: $n > 1, kernel: 1}
        layers:
          - unit
        """
    [diag] = problems(body)
    assert diag.code == "E103" and "not the boolean true" in diag.message
    assert pos(diag) == where(body, "$n > 1")


def test_a_string_is_never_evaluated(problems):
    body = """
        layers:
          - conv: {filters: "__import__('os')", kernel: 1}
        """
    [diag] = problems(body)
    assert diag.code == "E103" and "must be an integer, not the string" in diag.message
    body = """
        blocks:
          unit:
            args: {n: 2}
            layers:
              - conv: {filters: "$n + __import__('os')", kernel: 1}
        layers:
          - unit
        """
    [diag] = problems(body)
    assert diag.code == "E114" and "unknown word '__import__'" in diag.message
    assert pos(diag) == where(body, "__import__")


def test_an_expression_outside_a_block_has_no_arguments(problems):
    body = """
        layers:
          - conv: {filters: $filters, kernel: 1}
        """
    [diag] = problems(body)
    assert diag.code == "E114" and "no argument named $filters" in diag.message
    assert diag.hints == ("only blocks have arguments",)


# --- defaults --------------------------------------------------------------------------------


def test_defaults_apply_inside_blocks_and_an_explicit_attribute_wins(check):
    graph = check("""
        defaults:
          conv: {bias: false, kernel: 3, pad: 1}
          batchnorm: {eps: 0.01}
        blocks:
          unit:
            layers:
              - conv: {filters: 4}
              - conv: {filters: 4, bias: true, kernel: 1, pad: 0}
              - batchnorm
        layers:
          - unit
          - conv: {filters: 4, bias: true}
        """)
    assert [w.name for w in node(graph, "unit1.conv1").weights] == ["unit1.conv1.weight"]
    assert [w.name for w in node(graph, "unit1.conv2").weights] == ["unit1.conv2.weight",
                                                                    "unit1.conv2.bias"]
    assert node(graph, "unit1.conv1").layer.kernel == (3, 3)
    assert node(graph, "unit1.conv2").layer.kernel == (1, 1)
    assert node(graph, "unit1.batchnorm1").layer.eps == pytest.approx(0.01)
    assert node(graph, "conv1").layer.bias is True and node(graph, "conv1").layer.kernel == (3, 3)


def test_an_expression_in_defaults_is_one_error(problems):
    body = """
        defaults:
          conv: {filters: $filters, kernel: [$k, 1]}
        blocks:
          unit:
            args: {filters: 4, k: 1}
            layers:
              - conv
        layers:
          - unit
          - conv
        """
    diags = problems(body)
    assert [(d.code, pos(d)) for d in diags] == [("E114", where(body, "$filters")),
                                                 ("E114", where(body, "$k"))]
    assert all("defaults can't use block arguments" in d.message for d in diags)


# --- repeat and first --------------------------------------------------------------------------


def test_repeat_chains_instances_and_the_group_name_is_the_last(check):
    graph = check("""
        blocks:
          unit:
            args: {n: int}
            layers:
              - relu:
                repeat: $n + 1
                name: r
        layers:
          - conv: {filters: 4, kernel: 1}
            repeat: 3
            name: c
          - unit: {n: 1}
            name: u
          - relu:
            from: c
            name: after
        """)
    assert names(graph) == ["c.0", "c.1", "c.2", "u.r.0", "u.r.1", "after"]
    assert reads(graph, "c.0") == ["image"]
    assert reads(graph, "c.1") == ["c.0"]
    assert reads(graph, "c.2") == ["c.1"]
    assert reads(graph, "u.r.0") == ["c.2"]
    assert reads(graph, "after") == ["c.2"]  # `c` is the last instance


def test_first_overrides_only_instance_zero(check):
    graph = check("""
        layers:
          - conv: {filters: 4, kernel: 1, round: floor}
            repeat: 3
            first: {stride: 2, filters: 8}
            name: c
        """)
    assert [node(graph, f"c.{i}").output.shape for i in range(3)] == [
        ("N", 8, 8, 8), ("N", 4, 8, 8), ("N", 4, 8, 8)]
    assert node(graph, "c.0").layer.stride == (2, 2)
    assert node(graph, "c.1").layer.stride == (1, 1)


def test_first_overrides_block_arguments_of_instance_zero(check):
    graph = check(BASIC)
    assert [n for n in names(graph) if "downsample" in n] == ["layer2.0.downsample.0",
                                                              "layer2.0.downsample.1"]
    assert node(graph, "layer2.0.conv1").layer.stride == (2, 2)
    assert node(graph, "layer2.1.conv1").layer.stride == (1, 1)
    assert node(graph, "layer2.1.relu2").output.shape == ("N", 16, 8, 8)


def test_the_group_name_of_a_repeated_block_is_its_last_instance(check):
    graph = check(BASIC + """
      - globalavgpool:
        from: layer1
        name: pool
      - add: {from: [layer1, layer1.0]}
        name: sum
    """)
    assert reads(graph, "pool") == ["layer1.1.relu2"]
    assert reads(graph, "sum") == ["layer1.1.relu2", "layer1.0.relu2"]


@pytest.mark.parametrize("extra, code, message", [
    ("repeat: 0", "E105", "repeat must be between 1 and 100,000, not 0"),
    ("repeat: true", "E103", "repeat must be an integer, not the boolean true"),
    ("first: {filters: 8}", "E102", "`first` only goes with `repeat`"),
    ("when: 3", "E103", "when must be true or false, not the integer 3"),
    ('when: "yes"', "E103", "when must be true or false"),
])
def test_repeat_first_and_when_errors(problems, extra, code, message):
    body = f"""
        layers:
          - conv: {{filters: 4, kernel: 1}}
            {extra}
          - relu
        """
    [diag] = problems(body)
    assert diag.code == code and message in diag.message
    key = extra.split(": ", 1)[0]
    line, col = where(body, extra)
    assert pos(diag) == (line, col + len(key) + 2)  # at the value


# --- when ------------------------------------------------------------------------------------


def test_when_false_leaves_the_layer_out_and_its_name_stands_for_its_input(check):
    graph = check(BASIC)
    # no projection in layer1: `downsample.1` is the block's input
    assert reads(graph, "layer1.0.add1") == ["layer1.0.bn2", "conv1"]
    assert reads(graph, "layer1.1.add1") == ["layer1.1.bn2", "layer1.0.relu2"]
    # a projection in the first block of layer2
    assert reads(graph, "layer2.0.downsample.0") == ["layer1.1.relu2"]
    assert reads(graph, "layer2.0.add1") == ["layer2.0.bn2", "layer2.0.downsample.1"]
    assert reads(graph, "layer2.1.add1") == ["layer2.1.bn2", "layer2.0.relu2"]


def test_when_at_the_top_level(check):
    graph = check("""
        layers:
          - conv: {filters: 4, kernel: 1}
            when: false
            name: skipped
          - relu:
            from: skipped
          - conv: {filters: 4, kernel: 1}
            when: true
        """)
    assert names(graph) == ["relu1", "conv1"]
    assert reads(graph, "relu1") == ["image"]


# --- branches, output, input -----------------------------------------------------------------


def test_branches_in_a_block_torchvision_names_and_summed_channels(check):
    graph = check("""
        blocks:
          mixed:
            args: {a: int, b: int}
            branches:
              - conv: {filters: $a, kernel: 1}
              - [conv: {filters: $b, kernel: 1}, conv: {filters: $b * 2, kernel: 3, pad: 1}]
              - [maxpool: {kernel: 3, stride: 1, pad: 1}, conv: {filters: 1, kernel: 1}]
        layers:
          - mixed: {a: 2, b: 3}
            name: inception3a
        """)
    assert names(graph) == [
        "inception3a.branch1",
        "inception3a.branch2.0", "inception3a.branch2.1",
        "inception3a.branch3.0", "inception3a.branch3.1",
        "inception3a.concat",
    ]
    assert reads(graph, "inception3a.concat") == [
        "inception3a.branch1", "inception3a.branch2.1", "inception3a.branch3.1"]
    assert {reads(graph, n)[0] for n in ("inception3a.branch1", "inception3a.branch2.0",
                                          "inception3a.branch3.0")} == {"image"}
    assert channels(graph, "inception3a.concat") == 2 + 6 + 1
    assert graph.outputs[0].name == "inception3a.concat"


def test_branches_as_an_entry_name_their_layers_under_the_entry(check):
    graph = check("""
        layers:
          - branches:
              - relu
              - [relu, conv: {filters: 2, kernel: 1}]
            name: mixed
          - branches:
              - relu
              - tanh
        """)
    assert names(graph) == ["mixed.branch1", "mixed.branch2.0", "mixed.branch2.1", "mixed",
                            "concat1.branch1", "concat1.branch2", "concat1"]
    assert channels(graph, "mixed") == 3 + 2
    assert channels(graph, "concat1") == 10
    assert reads(graph, "concat1.branch1") == ["mixed"]


@pytest.mark.parametrize("value", ["{left: relu, right: tanh}", "[relu]", "3"])
def test_malformed_branches(problems, value):
    body = f"""
        layers:
          - branches: {value}
        """
    [diag] = problems(body)
    assert diag.code == "E103" and "branches must be a list of at least two" in diag.message
    line, col = where(body, f"branches: {value}")
    assert pos(diag) == (line, col + len("branches: "))


def test_block_output_and_from_input(check):
    graph = check("""
        blocks:
          unit:
            layers:
              - conv: {filters: 4, kernel: 1}
                name: main
              - relu:
                name: side
              - concat: {from: [main, input]}
                name: joined
            output: main
        layers:
          - unit
          - relu
        """)
    assert reads(graph, "unit1.joined") == ["unit1.main", "image"]
    assert reads(graph, "relu1") == ["unit1.main"]  # the block's `output:`, not its last layer
    assert channels(graph, "unit1.joined") == 4 + 3


def test_a_block_takes_one_input(problems):
    body = """
        blocks:
          unit:
            layers: [relu]
        layers:
          - conv: {filters: 3, kernel: 1}
          - unit: {from: [conv1, image]}
        """
    [diag] = problems(body)
    assert diag.code == "E113" and "block 'unit' takes 1 input, got 2" in diag.message
    assert pos(diag) == where(body, "conv1, image")


def test_input_is_not_a_name_at_the_top_level(problems):
    [diag] = problems("""
        layers:
          - relu:
            from: input
        """)
    assert diag.code == "E111" and "`input` names a block's input" in diag.hints[0]


# --- errors inside blocks ----------------------------------------------------------------------

NESTED_MISTAKE = """
    blocks:
      inner:
        args: {filters: int}
        layers:
          - conv: {filters: $filtrs, kernel: 1}
      outer:
        layers:
          - inner: {filters: 4}
    layers:
      - outer
      - outer
    """


def test_an_error_in_a_block_carries_the_use_sites_as_its_origin():
    body = NESTED_MISTAKE
    _, diags = flat(body)
    [diag] = diags.items  # two uses of outer, one mistake: reported once
    assert (diag.code, pos(diag)) == ("E114", where(body, "$filtrs"))
    assert diag.hints == ("did you mean $filters?",)
    origin = diag.span.origin
    assert (origin.line, origin.col) == where(body, "inner: {filters")  # the use in outer
    line, col = where(body, "- outer")  # outer's first use
    assert (origin.origin.line, origin.origin.col) == (line, col + 2)
    assert origin.origin.origin is None


def test_the_rendered_error_shows_the_block_line_and_each_use_site(problems):
    body = NESTED_MISTAKE
    [diag] = problems(body)
    text = diag.render()
    line, col = where(body, "$filtrs")
    assert text.splitlines()[0].endswith(
        f"spec0.yaml:{line}:{col}: error[E114]: in `$filtrs`: no argument named $filtrs")
    assert "      - conv: {filters: $filtrs, kernel: 1}" in text
    use_line, use_col = where(body, "inner: {filters")
    top_line, top_col = where(body, "- outer")
    top_col += 2
    assert f":{use_line}:{use_col}: note: in the block used here" in text
    assert f":{top_line}:{top_col}: note: in the block used here" in text
    assert "      - inner: {filters: 4}" in text
    assert "  - outer\n" in text
    # the use-site note comes after the hint, and the innermost use first
    assert text.index("hint: did you mean $filters?") < text.index(f":{use_line}:{use_col}: note")
    assert text.index(f":{use_line}:{use_col}: note") < text.index(f":{top_line}:{top_col}: note")


def test_a_mistake_in_a_block_used_many_times_is_reported_once(problems):
    body = """
        blocks:
          unit:
            layers:
              - conv: {filters: 4, kernel: 3, stride: 2}
        layers:
          - unit:
            repeat: 3
          - unit
        """
    [diag] = problems(body)
    assert diag.code == "E301" and "conv 'unit1.0.conv1'" in diag.message
    line, col = where(body, "stride: 2")
    assert pos(diag) == (line, col + len("stride: "))
    assert (diag.span.origin.line, diag.span.origin.col) == where(body, "unit", 1)


def test_mistakes_at_different_use_sites_are_each_reported(problems):
    body = """
        blocks:
          unit:
            args: {filters: int}
            layers:
              - conv: {filters: $filters, kernel: 1}
        layers:
          - unit
          - unit: {filters: 4}
          - unit: {filters: 4, stride: 2}
          - unit: {filter: 4}
        """
    diags = problems(body)
    # a misspelt required argument is one error (E102), not also a missing one (E101)
    assert [(d.code, pos(d)) for d in diags] == [("E101", where(body, "unit", 1)),
                                                 ("E102", where(body, "stride: 2")),
                                                 ("E102", where(body, "filter: 4"))]
    assert diags[2].hints == ("did you mean 'filters'?",)


def test_a_block_that_uses_itself(problems):
    body = """
        blocks:
          a:
            layers: [relu, b]
          b:
            layers: [a]
        layers:
          - a
        """
    [diag] = problems(body)
    assert diag.code == "E115" and "block 'a' uses itself (a -> b -> a)" in diag.message
    line, col = where(body, "[a]")
    assert pos(diag) == (line, col + 1)
    assert diag.notes[0].message == "defined here"


def test_a_broken_block_definition_is_reported_once_not_at_its_uses(problems):
    body = """
        blocks:
          conv:
            args: {f: int}
            layers:
              - conv: {filters: $f, kernel: 1}
          typed:
            args: {filters: integer}
            layers:
              - conv: {filters: $filters, kernel: 1}
          misspelt:
            layres: [relu]
        layers:
          - conv: {f: 4}
          - typed: {filters: 4}
          - misspelt
        """
    diags = problems(body)
    assert [(d.code, pos(d)) for d in diags] == [
        ("E116", where(body, "conv:")),
        ("E103", where(body, "integer")),
        ("E102", where(body, "layres")),
    ]


# --- the expression language -------------------------------------------------------------------

ENV = {"a": 4, "b": 3, "yes": True, "no": False}


@pytest.mark.parametrize("text, value", [
    ("$a * 4", 16),
    ("($a + 1) // 2", 2),
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 // 2 * 2", 6),            # left to right
    ("$a - 1 - 1", 2),            # left-associative
    ("$a // 2 // 2", 1),
    ("-$b * 2", -6),              # unary minus binds tightest
    ("-7 // 2", -4),              # floor division, as in Python
    ("- -3", 3),
    ("$a+$b", 7),                 # spaces are optional
    ("1 + 2 == 3", True),         # arithmetic before comparison
    ("$a > $b", True),
    ("$a <= 3", False),
    ("$a != 4", False),
    ("$yes == true", True),
    ("not $no", True),
    ("not 1 > 2", True),          # comparison before not
    ("true or false and false", True),   # and before or
    ("not false and false", False),      # not before and
    ("not ($no or $yes)", False),
    ("$a > 1 and not $no or $no", True),
    ("007", 7),
    ("((($a)))", 4),
])
def test_expression_values_and_precedence(text, value):
    result = evaluate(text, ENV)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize("text, offset, message", [
    ("", 0, "empty expression"),
    ("$a +", 4, "the expression ends too early"),
    ("($a + 1", 7, "missing ')'"),
    ("$a $b", 3, "unexpected '$b'"),
    ("$a)", 2, "unexpected ')'"),
    ("1 < 2 < 3", 6, "unexpected '<'"),
    ("2 ** 3", 3, "unexpected '*'"),
    ("$a / 2", 3, "unexpected character '/'"),
    ("$a % 2", 3, "unexpected character '%'"),
    ("$", 0, "unexpected character '$'"),
    ("$c + 1", 0, "no argument named $c"),
    ("1 + $filtrs", 4, "no argument named $filtrs"),
    ("$a // 0", 3, "division by zero"),
    ("$a // ($b - 3)", 3, "division by zero"),
    ("$yes + 1", 5, "+ needs numbers, not a boolean"),
    ("-$yes", 0, "- needs numbers, not a boolean"),
    ("not $a", 0, "not needs true or false, not the number 4"),
    ("$a and $yes", 3, "and needs true or false, not the number 4"),
    ("$a == true", 3, "can't compare a boolean with a number using =="),
    ("$a * 281474976710656", 3, "the result is larger than 281,474,976,710,656"),
    ("$a + " + "9" * 5000, 5, "the number 99999999999999999999... is larger than"),
    ("filters", 0, "unknown word 'filters'"),
])
def test_expression_errors_say_where(text, offset, message):
    with pytest.raises(ExprError) as info:
        evaluate(text, ENV)
    assert info.value.message.startswith(message), info.value.message
    assert info.value.offset == offset


def test_expression_hints():
    with pytest.raises(ExprError) as info:
        evaluate("$filtrs * 4", {"filters": 16, "stride": 1})
    assert info.value.hints == ("did you mean $filters?",)
    with pytest.raises(ExprError) as info:
        evaluate("$x", {"filters": 16, "stride": 1})
    assert info.value.hints == ("arguments here: $filters, $stride",)
    with pytest.raises(ExprError) as info:
        evaluate("filters * 4", {"filters": 16})
    assert "$filters" in info.value.hints[0]


@pytest.mark.parametrize("text", [
    "__import__('os')",
    "__import__('os').system('true')",
    "$a.__class__",
    "().__class__.__bases__",
    "open('/etc/passwd')",
    "lambda: 1",
    "$a if true else 2",
    "[1, 2]",
    "'x' * 3",
    "$a ** 99",
    "1e9",
    "0x10",
])
def test_expressions_are_never_python(text, monkeypatch):
    def no_eval(*args, **kwargs):
        raise AssertionError("the expression language must not call eval/exec/compile")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, no_eval)
    with pytest.raises(ExprError):
        evaluate(text, ENV)
    assert evaluate("$a * 4", ENV) == 16  # the evaluator itself needs none of them


def test_expression_helpers():
    assert is_expression("$a * 2") and not is_expression("a * 2") and not is_expression(3)
    assert references("($filters + $f2) // $filters") == ["filters", "f2", "filters"]
    assert MAX_MAGNITUDE == 1 << 48


def test_huge_numbers_are_errors_not_crashes(problems):
    body = f"""
        layers:
          - conv: {{filters: {'9' * 5000}, kernel: 1}}
        """
    [diag] = problems(body)
    assert diag.code == "E112" and "a number with 5,000 digits" in diag.message
    body = f"""
        blocks:
          unit:
            args: {{n: 1}}
            layers:
              - conv: {{filters: $n + {'9' * 5000}, kernel: 1}}
        layers:
          - unit
        """
    [diag] = problems(body)
    assert diag.code == "E114" and "is larger than 281,474,976,710,656" in diag.message
    assert len(diag.message) < 200
