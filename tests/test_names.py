"""Names that match torchvision, and warnings a spec silences (issue 12, part 5).

- `repeat: {count: N, name: "denselayer{i}", start: 1}` names a repeat's instances by a pattern
  (DenseNet's `denselayer1`..., RegNet's `block1-0`...), `first:` still setting the first;
- digit names (`name: "0"`) below a block instance or `branches:` entry, as nn.Sequential
  numbers its children, and E109's hint stating the rule;
- named branches, `{name: branch5x5, layers: [...]}`, and an InceptionA block with exactly
  torchvision's state_dict keys;
- `allow: [W202]` for one layer (or all a block use expands to) and for a whole spec.

Weights are checked by loading a torch module's state_dict by name (`netc compile --weights`,
which refuses a missing or an unexpected tensor) and comparing ONNX Runtime's output with the
module's; the modules are written here after torchvision's (and compared with torchvision's
own where it is installed).
"""

from __future__ import annotations

import json
import textwrap
from collections import OrderedDict

import numpy as np
import pytest

import netc
from netc.cli import main
from netc.errors import NetcError

from conftest import session

HEADER = "netc: 1\nname: t\ninputs:\n  image: [N, 8, 9, 9]\n"


def spec(body: str) -> str:
    return HEADER + textwrap.dedent(body).lstrip("\n")


@pytest.fixture
def write(tmp_path):
    count = iter(range(1000))

    def run(body: str):
        path = tmp_path / f"spec{next(count)}.yaml"
        path.write_text(spec(body), encoding="utf-8")
        return path

    return run


@pytest.fixture
def check(write):
    return lambda body: netc.check_spec(write(body))


@pytest.fixture
def problems(check):
    def run(body: str):
        with pytest.raises(NetcError) as info:
            check(body)
        return [d for d in info.value.diagnostics.sorted() if d.severity == "error"]

    return run


def names(graph) -> list[str]:
    return [n.name for n in graph.nodes]


def reads(graph, name: str) -> list[str]:
    return [x.name for x in next(n for n in graph.nodes if n.name == name).inputs]


def where(body: str, text: str) -> tuple[int, int]:
    """1-based line and column of `text` in spec(body)."""
    for number, line in enumerate(spec(body).splitlines(), 1):
        if text in line:
            return number, line.index(text) + 1
    raise AssertionError(text)


def pos(diag) -> tuple[int, int]:
    return diag.span.line, diag.span.col


# --- repeat with a name pattern ----------------------------------------------------------------

DENSE = """
    blocks:
      dense_layer:                       # torchvision's _DenseLayer
        args: {growth: 4, bn_size: 2}
        layers:
          - batchnorm:
            name: norm1
          - relu:
            name: relu1
          - conv: {filters: $growth * $bn_size, kernel: 1, bias: false}
            name: conv1
          - batchnorm:
            name: norm2
          - relu:
            name: relu2
          - conv: {filters: $growth, kernel: 3, pad: 1, bias: false}
            name: conv2
          - concat: {from: [input, conv2]}   # _DenseBlock's running concatenation
      dense_block:                       # torchvision's _DenseBlock
        args: {layers: int}
        layers:
          - dense_layer:
            repeat: {count: $layers, name: "denselayer{i}", start: 1}
    layers:
      - dense_block: {layers: 3}
        name: features.denseblock1
    """
DENSE_LAYER = ["norm1", "relu1", "conv1", "norm2", "relu2", "conv2", "concat1"]


def test_a_name_pattern_names_each_instance_in_the_body(check):
    graph = check(DENSE)
    assert names(graph) == [f"features.denseblock1.denselayer{i}.{n}"
                            for i in (1, 2, 3) for n in DENSE_LAYER]
    assert reads(graph, "features.denseblock1.denselayer2.norm1") == [
        "features.denseblock1.denselayer1.concat1"]
    assert graph.outputs[0].name == "features.denseblock1.denselayer3.concat1"
    assert graph.outputs[0].shape == ("N", 8 + 3 * 4, 9, 9)
    weights = [w.name for w in graph.weights]
    assert "features.denseblock1.denselayer1.norm1.weight" in weights
    assert "features.denseblock1.denselayer3.conv2.weight" in weights


def test_a_pattern_with_first_start_and_a_block_argument(check):
    graph = check("""
        blocks:
          unit:
            args: {stride: 1}
            layers:
              - conv: {filters: 8, kernel: 3, stride: $stride, pad: 1}
                name: conv
          stage:                         # RegNet's AnyStage: block<stage>-<i>
            args: {stage: int, depth: int}
            layers:
              - unit:
                repeat: {count: $depth, name: "block{$stage}-{i}"}
                first: {stride: 2}
        layers:
          - stage: {stage: 1, depth: 2}
            name: trunk_output.block1
          - unit:
            repeat: {count: 2, name: "trunk_output.block2.block2-{i}", start: 0}
            first: {stride: 2}
        """)
    assert names(graph) == [f"trunk_output.block{s}.block{s}-{i}.conv"
                            for s in (1, 2) for i in (0, 1)]
    strides = [n.layer.stride for n in graph.nodes]
    assert strides == [(2, 2), (1, 1), (2, 2), (1, 1)]  # first: only the first instance


def test_a_named_patterned_repeat_stands_for_its_last_instance(check):
    graph = check("""
        layers:
          - conv: {filters: 8, kernel: 1}
            repeat: {count: 3, name: "unit{i}", start: 1}
            name: units
          - relu:
            from: units
          - add: {from: [unit1, unit3]}
        """)
    assert names(graph)[:3] == ["unit1", "unit2", "unit3"]
    assert reads(graph, "relu1") == ["unit3"]
    assert reads(graph, "add1") == ["unit1", "unit3"]


def test_start_without_a_name_and_plain_repeat_are_unchanged(check):
    graph = check("""
        layers:
          - relu:
            repeat: 2
            name: a
          - relu:
            repeat: {count: 2}
            name: b
          - relu:
            repeat: {count: 2, start: 1}
            name: c
          - relu:
            repeat: {count: 1, name: "d{i}"}
        """)
    assert names(graph) == ["a.0", "a.1", "b.0", "b.1", "c.1", "c.2", "d0"]


@pytest.mark.parametrize("value, code, message", [
    ('{count: 2, name: "unit"}', "E105", "the repeat's name 'unit' has no `{i}`"),
    ('{count: 2, name: "unit{j}"}', "E105", "`{j}` is not a placeholder"),
    ('{count: 2, name: "unit{i"}', "E105", "has an unmatched '{'"),
    ('{count: 2, name: "unit {i}"}', "E109", "the name of instance 0 of the repeat 'unit 0' is "
                                              "not a valid name"),
    ('{count: 2, name: "{i}"}', "E109", "'0' is not a valid name here: it starts with a digit"),
    ('{count: 2, name: 3}', "E103", "a repeat's name must be a string"),
    ('{count: 2, name: "u{$width}{i}"}', "E114", "no argument named $width"),
    ('{count: 0, name: "u{i}"}', "E105", "repeat count must be between 1 and"),
    ('{count: 2, name: "u{i}", start: -1}', "E105", "repeat start must be between 0 and"),
    ('{name: "u{i}"}', "E101", "repeat needs `count`"),
    ('{count: 2, names: "u{i}"}', "E102", "unknown key 'names' in repeat"),
])
def test_bad_patterns(problems, value, code, message):
    body = f"""
        layers:
          - relu:
            repeat: {value}
        """
    [diag] = problems(body)
    assert diag.code == code and message in diag.message, diag.message


def test_a_pattern_error_points_at_the_pattern(problems):
    body = """
        layers:
          - relu:
            repeat: {count: 2, name: "unit"}
        """
    [diag] = problems(body)
    line, col = where(body, '"unit"')
    assert pos(diag) == (line, col)
    assert any("{i}" in h for h in diag.hints)


def test_a_pattern_that_repeats_a_used_name_is_a_duplicate(problems):
    [diag] = problems("""
        layers:
          - relu:
            name: u1
          - relu:
            repeat: {count: 2, name: "u{i}", start: 1}
        """)
    assert diag.code == "E110" and "the name 'u1' is already used" in diag.message


# --- digit names -----------------------------------------------------------------------------


def test_digit_names_inside_a_block_are_sequential_children(check):
    graph = check("""
        blocks:
          seq:
            layers:
              - conv: {filters: 4, kernel: 1}
                name: "0"
              - relu:
                name: "1"
              - conv: {filters: 4, kernel: 1}
                name: "2"
                from: "0"
              - relu:
                repeat: {count: 2, name: "{i}", start: 3}
        layers:
          - seq
            name: classifier
        """.replace("- seq\n", "- seq:\n"))
    assert names(graph) == ["classifier.0", "classifier.1", "classifier.2", "classifier.3",
                            "classifier.4"]
    assert reads(graph, "classifier.2") == ["classifier.0"]
    assert [w.name for w in graph.weights] == ["classifier.0.weight", "classifier.0.bias",
                                               "classifier.2.weight", "classifier.2.bias"]


def test_digit_names_in_branches_at_the_top_level(check):
    graph = check("""
        layers:
          - branches:
              - relu:
                name: "0"
              - [relu, tanh]
            name: mixed
        """)
    assert names(graph) == ["mixed.0", "mixed.branch2.0", "mixed.branch2.1", "mixed"]


def test_a_top_level_digit_name_is_e109_and_its_hint_states_the_rule(problems):
    body = """
        layers:
          - relu:
            name: "0"
        """
    [diag] = problems(body)
    assert diag.code == "E109"
    assert "a layer name '0' is not a valid name here: it starts with a digit" in diag.message
    line, col = where(body, '"0"')
    assert pos(diag) == (line, col)
    [hint] = diag.hints
    assert "at the top level it starts with a letter or `_`" in hint
    assert "inside a block or `branches:` a part may start with a digit" in hint
    assert '`name: "0"` there gives `<instance>.0`' in hint


def test_other_bad_names_state_the_rule_too(problems):
    [diag] = problems("""
        blocks:
          b:
            layers:
              - relu:
                name: "a/b"
        layers:
          - b:
        """)
    assert diag.code == "E109" and "'a/b' is not a valid name" in diag.message
    assert "joined by `.` or `-`" in diag.hints[0]


def test_an_unquoted_number_as_a_name_says_to_quote_it(problems):
    [diag] = problems("""
        blocks:
          b:
            layers:
              - relu:
                name: 0
        layers:
          - b:
        """)
    assert diag.code == "E103" and "a layer name must be a string, not the integer 0" \
        in diag.message
    assert list(diag.hints) == ['a name is a string: write "0" in quotes']


def test_the_spec_name_and_input_names_still_start_with_a_letter(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text('netc: 1\nname: "0"\ninputs:\n  "1": [N, 3, 8, 8]\nlayers:\n  - relu\n')
    with pytest.raises(NetcError) as info:
        netc.check_spec(path)
    assert [d.code for d in info.value.diagnostics.items] == ["E109", "E109"]


# --- named branches ----------------------------------------------------------------------------


def test_named_branches_name_their_layers(check):
    graph = check("""
        blocks:
          mixed:
            branches:
              - relu                                   # branch1
              - name: b3x3
                layers: [conv: {filters: 2, kernel: 1}, conv: {filters: 2, kernel: 3, pad: 1}]
              - name: single
                layers: [tanh]
              - name: kept
                layers:
                  - conv: {filters: 2, kernel: 1}
                    name: kept_1
                  - relu
            output: b3x3
        layers:
          - mixed:
            name: m
          - relu
        """)
    assert names(graph) == ["m.branch1", "m.b3x3.0", "m.b3x3.1", "m.single", "m.kept_1",
                            "m.kept.1", "m.concat", "relu1"]
    assert reads(graph, "m.concat") == ["m.branch1", "m.b3x3.1", "m.single", "m.kept.1"]
    assert reads(graph, "relu1") == ["m.b3x3.1"]  # `output: b3x3`: the branch's output


def test_a_named_branch_in_a_branches_entry(check):
    graph = check("""
        layers:
          - branches:
              - {name: left, layers: [relu]}
              - {name: right, layers: [relu, tanh]}
            name: mix
        """)
    assert names(graph) == ["mix.left", "mix.right.0", "mix.right.1", "mix"]


@pytest.mark.parametrize("branch, code, message", [
    ("{name: a, layers: [relu], when: true}", "E102", "unknown key 'when' in a named branch"),
    ("{name: a, layers: relu}", "E103", "the layers of a named branch must be a non-empty list"),
    ("{name: a, layers: []}", "E103", "the layers of a named branch must be a non-empty list"),
    ("{layers: [relu]}", "E101", "a branch written as a mapping needs `name:`"),
    ('{name: "a b", layers: [relu]}', "E109", "a branch name 'a b' is not a valid name"),
    ("{name: branch1, layers: [relu]}", "E110", "the name 'branch1' is already used"),
])
def test_bad_named_branches(problems, branch, code, message):
    [diag] = problems(f"""
        layers:
          - branches:
              - relu
              - {branch}
        """)
    assert diag.code == code and message in diag.message, diag.message


# --- torchvision's names, and weights loaded by them -------------------------------------------

INCEPTION = """
    blocks:
      basic_conv:                        # torchvision's BasicConv2d
        args: {filters: int, kernel: 1, pad: 0}
        layers:
          - conv: {filters: $filters, kernel: $kernel, pad: $pad, bias: false}
            name: conv
          - batchnorm: {eps: 0.001}
            name: bn
          - relu
      inception_a:                       # torchvision's InceptionA
        args: {pool: int}
        branches:
          - basic_conv: {filters: 64}
            name: branch1x1
          - name: branch5x5
            layers:
              - basic_conv: {filters: 48}
                name: branch5x5_1
              - basic_conv: {filters: 64, kernel: 5, pad: 2}
                name: branch5x5_2
          - name: branch3x3dbl
            layers:
              - basic_conv: {filters: 64}
                name: branch3x3dbl_1
              - basic_conv: {filters: 96, kernel: 3, pad: 1}
                name: branch3x3dbl_2
              - basic_conv: {filters: 96, kernel: 3, pad: 1}
                name: branch3x3dbl_3
          - name: pool
            layers:
              - avgpool: {kernel: 3, stride: 1, pad: 1, include_pad: true}
              - basic_conv: {filters: $pool}
                name: branch_pool
    layers:
      - inception_a: {pool: 4}
        name: Mixed_5b
    """


def _torch():
    return pytest.importorskip("torch")


def _dense_block_reference(torch, layers=3, channels=8, growth=4, bn_size=2):
    """After torchvision.models.densenet's _DenseLayer and _DenseBlock."""
    nn = torch.nn

    class DenseLayer(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.norm1 = nn.BatchNorm2d(c)
            self.relu1 = nn.ReLU()
            self.conv1 = nn.Conv2d(c, bn_size * growth, 1, bias=False)
            self.norm2 = nn.BatchNorm2d(bn_size * growth)
            self.relu2 = nn.ReLU()
            self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

        def forward(self, features):
            x = torch.cat(features, 1)
            return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))

    class DenseBlock(nn.ModuleDict):
        def __init__(self):
            super().__init__()
            for i in range(layers):
                self.add_module(f"denselayer{i + 1}", DenseLayer(channels + i * growth))

        def forward(self, x):
            features = [x]
            for layer in self.values():
                features.append(layer(features))
            return torch.cat(features, 1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(OrderedDict(denseblock1=DenseBlock()))

        def forward(self, x):
            return self.features(x)

    return Net()


def _inception_a_reference(torch, channels=8, pool=4):
    """After torchvision.models.inception's BasicConv2d and InceptionA."""
    nn, F = torch.nn, torch.nn.functional

    class BasicConv2d(nn.Module):
        def __init__(self, cin, cout, **kw):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    class InceptionA(nn.Module):
        def __init__(self):
            super().__init__()
            self.branch1x1 = BasicConv2d(channels, 64, kernel_size=1)
            self.branch5x5_1 = BasicConv2d(channels, 48, kernel_size=1)
            self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
            self.branch3x3dbl_1 = BasicConv2d(channels, 64, kernel_size=1)
            self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
            self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
            self.branch_pool = BasicConv2d(channels, pool, kernel_size=1)

        def forward(self, x):
            b1 = self.branch1x1(x)
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
            return torch.cat([b1, b5, b3, bp], 1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.Mixed_5b = InceptionA()

        def forward(self, x):
            return self.Mixed_5b(x)

    return Net()


def _randomise(torch, model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=g)
                module.running_var.uniform_(0.5, 1.5, generator=g)
                module.weight.normal_(1, 0.1, generator=g)
                module.bias.normal_(0, 0.1, generator=g)
    return model.eval()


def _load_and_compare(torch, model, spec_path, tmp_path):
    """Compile `spec_path` with `model`'s state_dict as its weights (by name: a missing or an
    unexpected key fails) and compare ONNX Runtime's output with the model's; returns the
    largest difference."""
    torch.manual_seed(0)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    weights = tmp_path / "weights.npz"
    np.savez(weights, **state)
    out = tmp_path / "model.onnx"
    assert main(["compile", str(spec_path), "--weights", str(weights), "-o", str(out)]) == 0
    x = torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    [got] = session(out.read_bytes()).run(None, {"image": x.numpy()})
    assert got.shape == expected.shape
    error = float(np.abs(got - expected).max())
    assert error < 1e-4, error
    return error


def _keys(graph) -> set[str]:
    return {w.name for w in graph.weights}


def _state_keys(model) -> set[str]:
    return {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}


def test_a_dense_block_has_torchvisions_keys_and_loads_its_weights(write, tmp_path):
    torch = _torch()
    path = write(DENSE)
    graph = netc.check_spec(path)
    reference = _randomise(torch, _dense_block_reference(torch))
    assert _keys(graph) == _state_keys(reference)
    assert "features.denseblock1.denselayer1.norm1.running_var" in _keys(graph)
    _load_and_compare(torch, reference, path, tmp_path)


def test_an_inception_a_block_has_torchvisions_keys_and_loads_its_weights(write, tmp_path):
    torch = _torch()
    path = write(INCEPTION)
    graph = netc.check_spec(path)
    reference = _randomise(torch, _inception_a_reference(torch))
    assert _keys(graph) == _state_keys(reference)
    assert {"Mixed_5b.branch5x5_2.conv.weight", "Mixed_5b.branch3x3dbl_3.bn.running_mean",
            "Mixed_5b.branch_pool.bn.bias", "Mixed_5b.branch1x1.conv.weight"} <= _keys(graph)
    _load_and_compare(torch, reference, path, tmp_path)


def test_torchvisions_own_blocks_load(write, tmp_path):
    """Against torchvision's InceptionA and _DenseBlock themselves, where it is installed."""
    torch = _torch()
    pytest.importorskip("torchvision")
    from torchvision.models import densenet, inception

    class Wrap(torch.nn.Module):
        def __init__(self, **children):
            super().__init__()
            for name, child in children.items():
                self.add_module(name, child)
            self.order = list(children)

        def forward(self, x):
            for name in self.order:
                x = getattr(self, name)(x)
            return x

    incept = _randomise(torch, Wrap(Mixed_5b=inception.InceptionA(8, pool_features=4)))
    path = write(INCEPTION)
    assert _keys(netc.check_spec(path)) == _state_keys(incept)
    _load_and_compare(torch, incept, path, tmp_path)

    block = densenet._DenseBlock(3, 8, bn_size=2, growth_rate=4, drop_rate=0)
    dense = _randomise(torch, Wrap(features=torch.nn.Sequential(OrderedDict(denseblock1=block))))
    path = write(DENSE)
    assert _keys(netc.check_spec(path)) == _state_keys(dense)
    _load_and_compare(torch, dense, path, tmp_path)


# --- allow -------------------------------------------------------------------------------------

BIASED = """
    layers:
      - conv: {filters: 4, kernel: 3, pad: 1}
        name: features.0
        {allow0}
      - batchnorm:
        name: features.1
      - conv: {filters: 4, kernel: 3, pad: 1}
        name: features.3
      - batchnorm:
        name: features.4
      - maxpool: {kernel: 2, stride: 3, round: floor}
    """


def json_check(path) -> list[dict]:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(["check", "--format", "json", str(path)])
    return json.loads(buffer.getvalue())["diagnostics"]


def codes(diagnostics) -> list[tuple[str, str]]:
    return [(d["code"], d["message"].split("'")[1]) for d in diagnostics]


def test_without_allow_every_warning_is_given(write):
    found = codes(json_check(write(BIASED.replace("{allow0}", ""))))
    assert ("W202", "features.0") in found and ("W202", "features.3") in found
    assert any(code == "W203" for code, _ in found)


def test_allow_on_a_layer_silences_that_layer_only(write):
    found = codes(json_check(write(BIASED.replace("{allow0}", "allow: [W202]"))))
    assert ("W202", "features.0") not in found
    assert ("W202", "features.3") in found
    assert any(code == "W203" for code, _ in found)


def test_allow_at_the_top_silences_the_whole_spec(write):
    body = "allow: [W202, W203]\n" + textwrap.dedent(BIASED.replace("{allow0}", "")).lstrip("\n")
    assert json_check(write(body)) == []


def test_a_single_code_and_a_block_use(write):
    path = write("""
        blocks:
          conv_bn:
            layers:
              - conv: {filters: 4, kernel: 1}
              - batchnorm
        layers:
          - conv_bn:
            repeat: 2
            name: stage
            allow: W202
          - conv_bn:
            name: last
        """)
    found = codes(json_check(path))
    assert found == [("W202", "last.conv1")]


def test_allow_on_branches_and_w201(write):
    path = write("""
        layers:
          - relu:
            name: unused
            allow: [W201]
          - conv: {filters: 4, kernel: 1}
            from: image
          - branches:
              - batchnorm
              - [conv: {filters: 2, kernel: 1}, batchnorm]
            allow: [W202]
        """)
    assert json_check(path) == []


def test_a_faithful_vgg16_bn_allows_w202(tmp_path):
    """torchvision's vgg16_bn has a bias before every batchnorm: a faithful spec allows W202."""
    from pathlib import Path

    source = Path(__file__).resolve().parent.parent / "specs" / "vgg16_bn.yaml"
    text = source.read_text(encoding="utf-8")
    assert any(d["code"] == "W202" for d in json_check(source)) or "allow:" in text
    allowed = tmp_path / "vgg16_bn.yaml"
    if "\nallow:" not in text:  # the shipped spec allows it already; else allow it here
        text = text.replace("\nlayers:", "\nallow: [W202]\nlayers:", 1)
    allowed.write_text(text, encoding="utf-8")
    assert [d["code"] for d in json_check(allowed)] == []


@pytest.mark.parametrize("value, code, message, hint", [
    ("[W22]", "E105", "unknown warning code 'W22' in allow", "did you mean 'W202'?"),
    ("w202", "E105", "unknown warning code 'w202' in allow", "did you mean 'W202'?"),
    ("[E301]", "E105", "E301 (window doesn't fit the input) can't be allowed", None),
    ("[W501]", "E105", "W501 (missing tensors initialised) can't be allowed", None),
    ("[202]", "E103", "allow takes warning codes such as W202, not the integer 202", None),
])
def test_bad_allow(problems, value, code, message, hint):
    body = f"""
        layers:
          - relu:
            allow: {value}
        """
    [diag] = problems(body)
    assert diag.code == code and message in diag.message, diag.message
    if hint:
        assert hint in diag.hints
    line, col = where(body, f"allow: {value}")
    assert pos(diag) == (line, col + len("allow: ") + (value[0] == "["))


def test_a_bad_code_at_the_top_is_reported_where_it_is(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(HEADER + "allow: [W202, W2O3]\nlayers:\n  - relu\n")
    with pytest.raises(NetcError) as info:
        netc.check_spec(path)
    [diag] = info.value.diagnostics.items
    assert diag.code == "E105" and "'W2O3'" in diag.message
    assert pos(diag) == (5, 15) and "did you mean 'W203'?" in diag.hints


# --- the schema knows the new keys -------------------------------------------------------------


def test_the_schema_accepts_the_new_forms_and_rejects_their_mistakes():
    jsonschema = pytest.importorskip("jsonschema")
    from netc.load import parse
    from netc.source import SourceFile
    from netc.tools.schema import spec_schema

    def plain(node):
        from netc.load import YList, YScalar
        if isinstance(node, YScalar):
            return node.value
        if isinstance(node, YList):
            return [plain(i) for i in node.items]
        return {k: plain(v) for k, v in node.items()}

    validator = jsonschema.Draft7Validator(spec_schema())

    def errors(body):
        return list(validator.iter_errors(plain(parse(SourceFile("<t>", spec(body))))))

    for body in (DENSE, INCEPTION, "allow: [W202]\n" + textwrap.dedent(
            BIASED.replace("{allow0}", "allow: W202")).lstrip("\n")):
        assert not errors(body), [e.message for e in errors(body)]
    for mistake in ('{count: 2, name: "unit"}', "{count: 2, first: 1}", "{name: \"u{i}\"}"):
        assert errors(f"layers:\n  - relu:\n    repeat: {mistake}\n"), mistake
    assert errors("allow: [W999]\nlayers: [relu]\n")
    assert errors("layers:\n  - branches: [relu, {name: a, layers: [relu], x: 1}]\n")


def test_expand_keeps_what_the_spec_allows(tmp_path):
    """`netc expand` writes each layer's `allow:`, so the flat spec warns no more than the
    spec it came from (and compiles to the same model)."""
    from pathlib import Path

    source = Path(__file__).resolve().parent.parent / "specs" / "vgg16_bn.yaml"
    flat = tmp_path / "flat.yaml"
    assert main(["expand", str(source), "-o", str(flat)]) == 0
    layers = len(netc.check_spec(source).nodes)  # the spec allows W202 at its top: all of them
    assert flat.read_text(encoding="utf-8").count("    allow: [W202]\n") == layers
    assert json_check(flat) == [] == json_check(source)
