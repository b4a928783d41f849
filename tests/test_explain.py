"""`netc explain`: every code documented (docs/errors.md, shipped as netc/errors.md) and
tested, the entries printed by code, and one layer explained with where each value came from.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from netc.cli import main
from netc.tools import docs, explain
from netc.errors import CODES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "errors.md"
SHIPPED = ROOT / "netc" / "errors.md"
BAD = ROOT / "tests" / "bad"
RESNET18 = ROOT / "specs" / "resnet18.yaml"
GOOGLENET = ROOT / "specs" / "googlenet.yaml"

# Codes that no file of tests/bad produces, and the test that produces each (a test of that
# name must exist and mention the code).
TESTED_ELSEWHERE = {
    "E508": "tests/test_weight_values.py::test_a_weights_file_with_values_float32_cant_hold_is_refused_at_the_layer",
    "E001": "tests/test_bad_specs.py::test_missing_file_is_a_user_error",
    "E002": "tests/test_bad_specs.py::test_file_over_one_mebibyte",
    "E009": "tests/test_bad_specs.py::test_bytes_that_are_not_utf8",
    "E010": "tests/test_bad_specs.py::test_too_many_yaml_nodes",
    "E501": "tests/test_weights.py::test_missing_tensor_is_positioned_at_its_layer",
    "E502": "tests/test_weights.py::test_missing_tensor_is_positioned_at_its_layer",
    "E503": "tests/test_weights.py::test_wrong_shape",
    "E504": "tests/test_weights.py::test_integer_dtype",
    "E505": "tests/test_weights.py::test_unexpected_tensor_alone",
    "E506": "tests/test_weights.py::test_hostile_and_broken_files_are_refused",
    "E507": "tests/test_weights.py::test_wrong_extension",
    "W501": "tests/test_weights.py::test_allow_missing_initialises_and_lists_them",
    "E601": "tests/test_cli.py::test_run_cuda_fails_clearly_without_a_gpu",
    "E602": "tests/test_cli.py::test_run_rejects_wrong_input_shape",
    "E603": "tests/test_cli.py::test_compile_into_missing_folder_is_a_positioned_user_error",
    "E604": "tests/test_weights.py::test_weights_of_a_broken_onnx_model",
    "E605": "tests/test_run_images.py::test_a_file_named_explicitly_that_cannot_be_read_is_an_error",
    "E606": "tests/test_run_images.py::test_a_spec_without_preprocess_says_what_to_declare_and_that_works",
    "W601": "tests/test_run_images.py::test_a_folder_is_sorted_skips_what_it_cannot_read_and_goes_on",
}
EXPECT = re.compile(r"#\s*expect(?:-warning)?:\s*([EW]\d{3})\b")


def docs_text() -> str:
    return DOCS.read_text(encoding="utf-8")


# --- every code: documented, tested, and nothing else -----------------------------------------


def test_every_code_has_an_entry_with_its_title_an_example_and_a_fix():
    found = explain.entries(docs_text())
    assert set(found) == set(CODES), (
        f"codes without an entry in docs/errors.md: {sorted(set(CODES) - set(found))}; "
        f"entries for codes netc doesn't have: {sorted(set(found) - set(CODES))}")
    for code, title in CODES.items():
        entry = found[code]
        assert entry.startswith(f"## {code}: {title}\n"), f"{code}: the heading must be the title"
        assert f'<a id="{code.lower()}"></a>' in docs_text(), f"{code}: no #{code.lower()} anchor"
        assert "```console" in entry, f"{code}: no example with netc's output"
        assert f"[{code}]" in entry, f"{code}: the example's output doesn't show the code"
        assert "**Fix:**" in entry, f"{code}: no fix"
        prose = entry.split("\n", 1)[1].split("```")[0]
        assert len(prose.split()) >= 15, f"{code}: say what it means before the example"


def test_the_index_table_lists_every_code_in_order():
    rows = re.findall(r"^\| \[([EW]\d{3})\]\(#([ew]\d{3})\) \| (.+) \|$", docs_text(), re.M)
    assert [(c, a, t) for c, a, t in rows] == [(c, c.lower(), t) for c, t in CODES.items()]


def test_the_package_ships_an_identical_copy():
    assert SHIPPED.read_text(encoding="utf-8") == docs_text(), \
        "run `python -m netc.tools.docs --write`"
    assert explain.errors_markdown() == docs_text()


def test_the_package_data_names_the_copy():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "errors.md" in config["tool"]["setuptools"]["package-data"]["netc"]


def test_the_examples_print_what_netc_prints_now():
    """Each example is run again (in a fresh folder, the YAML as spec.yaml) and must print
    what the docs show."""
    text = docs_text()
    assert docs.run_examples(text, ROOT / "specs") == text, \
        "an example's output changed: run `python -m netc.tools.docs --write` and read the diff"


def test_every_code_is_produced_by_a_test():
    in_bad_specs = {m[1] for p in BAD.glob("*.yaml")
                    for m in EXPECT.finditer(p.read_text(encoding="utf-8"))}
    missing = set(CODES) - in_bad_specs - set(TESTED_ELSEWHERE)
    assert not missing, f"no bad spec or listed test produces {sorted(missing)}"
    for code, test_id in TESTED_ELSEWHERE.items():
        path, name = test_id.split("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        funcs = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
        assert name in funcs, f"{code}: {test_id} doesn't exist"
        assert code in ast.get_source_segment((ROOT / path).read_text(encoding="utf-8"),
                                              funcs[name]), f"{test_id} doesn't check {code}"


def test_every_code_in_the_source_is_in_codes():
    """A code written anywhere in netc is one of CODES (Diagnostics.add only finds out when
    the line runs)."""
    used = set()
    for path in (ROOT / "netc").rglob("*.py"):
        used |= set(re.findall(r"""["']([EW]\d{3})["']""", path.read_text(encoding="utf-8")))
    assert used <= set(CODES), f"not in CODES: {sorted(used - set(CODES))}"


# --- netc explain CODE ---------------------------------------------------------------------------


def test_explain_a_code(capsys):
    assert main(["explain", "E301"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## E301: window doesn't fit the input\n")
    assert "    - conv: {filters: 8, kernel: 3, stride: 3}" in out  # the example, indented
    assert "error[E301]: conv 'conv1': a 3x3 filter with stride 3" in out  # its output
    assert "**Fix:**" in out and "```" not in out and "<a id" not in out
    assert "## E302" not in out


def test_explain_a_warning_in_lower_case(capsys):
    assert main(["explain", "w201"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## W201: unused layer") and "warning[W201]" in out


@pytest.mark.parametrize("word, meant", [("E320", "E302"), ("E390", "E309"), ("E9", "E009"), ("W205", "W204"),
                                         ("E3001", "E301")])
def test_unknown_code_suggests_one(word, meant, capsys):
    assert main(["explain", word]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"netc has no diagnostic '{word}'" in captured.err
    assert f"did you mean {meant} ({CODES[meant]})?" in captured.err


def test_explain_alone_lists_every_code(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    for code, title in CODES.items():
        assert f"  {code}  {title}\n" in out


def test_a_spec_without_a_layer_is_a_usage_error(capsys):
    assert main(["explain", str(RESNET18)]) == 2
    assert "netc explain SPEC LAYER" in capsys.readouterr().err


# --- netc explain SPEC LAYER ---------------------------------------------------------------------


def explain_layer(capsys, spec, layer) -> str:
    assert main(["explain", str(spec), layer]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def attribute(out: str, name: str) -> str:
    """The lines of one attribute: its row and the more indented lines under it."""
    lines = out.split("attributes:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"  {name} ", line))
    rows = [lines[start]]
    for line in lines[start + 1:]:
        if re.match(r"  \S", line):
            break
        rows.append(line)
    return "\n".join(rows)


def pos(path: Path, fragment: str, token: str) -> str:
    """`line:col` of `token` at or after `fragment`, on the first line holding `fragment` (so
    that the tests follow the shipped specs when lines are added above)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if fragment in line:
            return f"{number}:{line.index(token, line.index(fragment)) + 1}"
    raise AssertionError(f"{fragment!r} is not in {path}")


BASIC_CONV1 = "- conv: {filters: $filters, kernel: 3, stride: $stride, pad: 1}"


def test_resnet18_layer2_0_conv1(capsys):
    out = explain_layer(capsys, RESNET18, "layer2.0.conv1")
    assert out.startswith("layer2.0.conv1: a conv layer\n")
    assert f"defined at {RESNET18}:{pos(RESNET18, BASIC_CONV1, 'conv')}" in out
    layer2 = pos(RESNET18, "- basic: {filters: 128}", "basic")
    assert f"in block 'basic', used at {RESNET18}:{layer2} as layer2.0" in out
    # stride 2: `$stride` in the block, the argument given by layer2's `first:`
    stride = attribute(out, "stride")
    assert re.match(rf"  stride +2 +`\$stride` in block 'basic' at "
                    rf"{pos(RESNET18, BASIC_CONV1, '$stride')}$", stride.splitlines()[0]), stride
    first = pos(RESNET18, "first: {stride: 2", "2")
    assert f"$stride = 2, given to layer2.0 by `first:` at {first}" in stride
    # bias: false from `defaults:` (with its line); kernel 3 written in the block
    assert re.match(rf"  bias +false +from `defaults:` at "
                    rf"{pos(RESNET18, 'conv: {bias: false', 'false')}$", attribute(out, "bias"))
    assert pos(RESNET18, "conv: {bias: false", "false").startswith(
        str(1 + RESNET18.read_text().splitlines().index("defaults:") + 1) + ":")
    assert re.match(rf"  round +floor +from `defaults:` at "
                    rf"{pos(RESNET18, 'conv: {bias: false', 'floor')}$", attribute(out, "round"))
    assert re.match(rf"  kernel +3 +written in block 'basic' at "
                    rf"{pos(RESNET18, BASIC_CONV1, '3')}$", attribute(out, "kernel"))
    assert re.match(r"  dilation +1 +the default of conv$", attribute(out, "dilation"))
    filters = pos(RESNET18, "- basic: {filters: 128}", "128")
    assert f"$filters = 128, given to layer2.0 at {filters}" in attribute(out, "filters")
    assert "  layer1.1.relu2  N×64×56×56" in out
    assert ("height: (56 + 1 + 1 - 3) / 2 + 1 = 28.5, rounded down by `round: floor` to 28"
            in out)
    assert "width:  (56 + 1 + 1 - 3) / 2 + 1 = 28.5" in out
    assert "output: N×128×28×28" in out
    assert "params: 73,728\n  layer2.0.conv1.weight  128×64×3×3  73,728" in out
    assert ("MACs: 57,802,752 per image = 128 filters × 28x28 positions × 64 input channels "
            "× 3x3 taps") in out
    assert 128 * 28 * 28 * 64 * 3 * 3 == 57_802_752


def test_the_second_instance_of_a_repeat_takes_the_blocks_default(capsys):
    out = explain_layer(capsys, RESNET18, "layer2.1.conv1")
    stride = attribute(out, "stride")
    declared = pos(RESNET18, "args: {filters: int, stride: 1", "stride")
    assert f"$stride = 1, the default of block 'basic', declared at {declared}" in stride, stride
    assert "first" not in stride
    assert "(28 + 1 + 1 - 3) / 1 + 1 = 28, a whole number" in out


def test_googlenet_maxpool1_rounds_up(capsys):
    out = explain_layer(capsys, GOOGLENET, "maxpool1")
    defaults = "maxpool: {kernel: 3, stride: 2, round: ceil}"
    assert re.match(rf"  kernel +3 +from `defaults:` at {pos(GOOGLENET, defaults, '3')}$",
                    attribute(out, "kernel"))
    assert re.match(rf"  round +ceil +from `defaults:` at {pos(GOOGLENET, defaults, 'ceil')}$",
                    attribute(out, "round"))
    assert re.match(r"  pad +0 +the default of maxpool$", attribute(out, "pad"))
    assert "height: (112 + 0 + 0 - 3) / 2 + 1 = 55.5, rounded up by `round: ceil` to 56" in out
    assert "output: N×64×56×56" in out
    assert "params: 0" in out and "MACs: 0" in out


def test_arguments_passed_through_two_blocks(capsys):
    out = explain_layer(capsys, GOOGLENET, "inception3a.branch2.1.conv")
    filters = attribute(out, "filters")
    assert "$filters = 128, given to inception3a.branch2.1 as `$c3` in block 'inception'" \
        in filters
    c3 = pos(GOOGLENET, "- inception: {c1: 64, c3r: 96, c3: 128", "128")
    assert f"$c3 = 128, given to inception3a at {c3}" in filters
    assert "in block 'conv_bn', used at" in out and "in block 'inception', used at" in out


def test_dense_and_batchnorm_tensors(capsys):
    out = explain_layer(capsys, RESNET18, "fc")
    assert re.match(rf"  units +1000 +written in the spec at {pos(RESNET18, 'dense: 1000', '1')}$",
                    attribute(out, "units"))
    assert "fc.weight  1000×512  512,000" in out and "fc.bias    1000        1,000" in out
    assert "MACs: 512,000 per image = 512 features × 1,000 units" in out
    out = explain_layer(capsys, RESNET18, "bn1")
    assert "params: 128" in out
    assert "bn1.running_var   64  64  (a buffer, not counted as a parameter)" in out


def test_repeat_with_first_and_other_attribute_forms(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("""\
netc: 1
name: s
inputs:
  image: [N, 3, 15, 15]
layers:
  - conv: {filters: 4, kernel: 3, pad: same, dilation: 2}
    repeat: 2
    first: {stride: 2}
    name: c
  - avgpool: 2
    name: pool
""", encoding="utf-8")
    out = explain_layer(capsys, spec, "c.0")
    assert re.match(r"  stride +2 +from `first:` at 8:21 \(it sets the first instance",
                    attribute(out, "stride"))
    assert re.match(r"  pad +same +written in the spec at 6:40$", attribute(out, "pad"))
    assert "pad: same pads (top, left, bottom, right) = [2, 2, 2, 2]" in out
    assert "dilation × (F - 1) + 1 = 5x5" in out
    assert "(15 + 2 + 2 - 5) / 2 + 1 = 8, a whole number" in out
    out = explain_layer(capsys, spec, "c.1")
    assert re.match(r"  stride +1 +the default of conv$", attribute(out, "stride"))
    out = explain_layer(capsys, spec, "pool")
    assert re.match(r"  kernel +2 +written in the spec at 10:14$", attribute(out, "kernel"))
    assert re.match(r"  stride +2 \(the kernel\) +the default of avgpool: the window's size$",
                    attribute(out, "stride"))
    assert "(8 + 0 + 0 - 2) / 2 + 1 = 4, a whole number" in out


def test_a_block_instance_and_an_input(capsys):
    out = explain_layer(capsys, RESNET18, "layer2.0")
    assert out.startswith("layer2.0: a use of block 'basic'")
    assert "$project = true, given to layer2.0 by `first:`" in out
    assert "layer2.0.downsample.0  conv" in out
    out = explain_layer(capsys, RESNET18, "image")
    assert out.startswith("image: an input of the spec") and "N×3×224×224" in out


def test_ceil_that_drops_a_window_starting_in_the_end_padding(tmp_path, capsys):
    """`round: ceil` keeps a partial last window, unless it would start in the end padding
    (PyTorch's rule): explain says both numbers, and the output is what ONNX Runtime gives."""
    spec = tmp_path / "c.yaml"
    spec.write_text("netc: 1\nname: c\ninputs: {x: [1, 1, 6, 6]}\nlayers:\n"
                    "  - maxpool: {kernel: 2, stride: 2, pad: [0, 0, 1, 1], round: ceil}\n",
                    encoding="utf-8")
    out = explain_layer(capsys, spec, "maxpool1")
    assert ("height: (6 + 0 + 1 - 2) / 2 + 1 = 3.5, `round: ceil` would give 4, but the last "
            "window would start in the end padding, so it is dropped (as PyTorch does): 3") in out
    assert "output: 1×1×3×3" in out
    model = tmp_path / "c.onnx"
    assert main(["compile", str(spec), "-o", str(model)]) == 0
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
    (y,) = session.run(None, {"x": x})
    assert y.shape == (1, 1, 3, 3)
    # the three windows per axis cover the input exactly: the end padding row is in none
    np.testing.assert_array_equal(y[0, 0], x[0, 0].reshape(3, 2, 3, 2).max(axis=(1, 3)))


def test_unknown_layer_suggests_one(capsys):
    assert main(["explain", str(RESNET18), "layer2.0.conv"]) == 1
    err = capsys.readouterr().err
    assert "error[E111]: the spec has no layer named 'layer2.0.conv'" in err
    assert "did you mean 'layer2.0.conv2'?" in err
    assert main(["explain", str(RESNET18), "layer3"]) == 1
    assert "layers inside it: layer3.0.conv1" in capsys.readouterr().err


def test_a_spec_with_errors_reports_them(capsys):
    spec = BAD / "e301_lecture_stride3.yaml"
    assert main(["explain", str(spec), "conv1"]) == 1
    assert "error[E301]" in capsys.readouterr().err


def test_every_layer_of_the_shipped_specs_can_be_explained():
    from netc.errors import a

    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        if spec.stem in ("resnet101", "resnet152"):
            continue  # the same blocks as resnet50, many more times
        explainer = explain.Explainer(str(spec))
        for node in explainer.graph.nodes:
            text = explainer.layer(node.name)
            assert text.startswith(f"{node.name}: {a(node.kind)} layer\n"), text  # "an add"
            assert f"output: {'×'.join(map(str, node.output.shape))}" in text
            assert f"params: {node.params:,}" in text and f"MACs: {node.macs:,}" in text


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
