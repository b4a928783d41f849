"""`netc schema`: the JSON Schema of the spec format, generated from the layer registry, is
shipped as docs/netc.schema.json, and every shipped spec (and every flat spec `netc expand`
prints) validates against it, while typical mistakes don't."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netc.cli import main
from netc.layers import REGISTRY, attributes
from netc.load import YList, YScalar, load_file, parse
from netc.tools.schema import render, spec_schema
from netc.source import SourceFile

jsonschema = pytest.importorskip("jsonschema")  # the `test` extra installs it

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SHIPPED = ROOT / "docs" / "netc.schema.json"
SCHEMA_LINE = "# yaml-language-server: $schema=../docs/netc.schema.json"


def plain(node):
    """A spec tree as netc reads it (YAML 1.2 core values), as plain JSON-like data."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YList):
        return [plain(item) for item in node.items]
    return {key: plain(value) for key, value in node.items()}


def tree(text: str):
    return plain(parse(SourceFile("<test>", text)))


@pytest.fixture(scope="module")
def validator():
    schema = spec_schema()
    jsonschema.Draft7Validator.check_schema(schema)  # a well-formed draft-07 schema
    return jsonschema.Draft7Validator(schema)


def test_shipped_schema_is_the_generated_one(capsys):
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == render()
    assert SHIPPED.read_text(encoding="utf-8") == printed, \
        "regenerate it: netc schema > docs/netc.schema.json"
    assert json.loads(printed)["$schema"] == "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_validates_and_names_the_schema(spec, validator):
    assert spec.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE
    assert (spec.parent / "../docs/netc.schema.json").resolve() == SHIPPED
    _, root = load_file(spec)
    errors = [e.message for e in validator.iter_errors(plain(root))]
    assert not errors, errors


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_expanded_specs_validate(spec, validator, capsys):
    assert main(["expand", str(spec)]) == 0
    errors = [e.message for e in validator.iter_errors(tree(capsys.readouterr().out))]
    assert not errors, errors


def test_generated_from_the_registry():
    """Every layer type, every attribute and its doc, and the enums, come from the classes."""
    defs = spec_schema()["definitions"]
    for kind, cls in REGISTRY.items():
        options = defs[f"attributes.{kind}"]["oneOf"]
        mapping = next(o for o in options if o.get("type") == "object")
        for spec in attributes(cls):
            described = mapping["properties"][spec.name]
            assert spec.doc[1:] in described["description"], (kind, spec.name)
        assert set(mapping["properties"]) == {s.name for s in attributes(cls)} | {"from"}
    conv = defs["attributes.conv"]["oneOf"][1]["properties"]
    assert conv["round"]["enum"] == ["exact", "floor", "ceil"]
    assert conv["round"]["default"] == "exact"
    assert conv["bias"]["default"] is True
    entry_doc = json.dumps(defs["entry"])
    assert "2-D convolution over an NCHW input" in entry_doc  # the class docstring


GOOD = """\
netc: 1
name: t
inputs: {x: [N, 3, 8, 8]}
defaults:
  conv: {bias: false, round: floor}
blocks:
  unit:
    args: {filters: int, stride: 1, project: false}
    layers:
      - conv: {filters: $filters, kernel: 3, stride: $stride, pad: 1}
      - relu
      - conv: {filters: $filters * 2, kernel: [1, 1]}
        when: $project
  mix:
    branches:
      - relu
      - [maxpool: {kernel: 3, stride: 1, pad: 1}, tanh]
layers:
  - unit: {filters: 4}
    repeat: 2
    first: {stride: 2}
    name: stage1
  - unit: {filters: 8, project: true}
  - mix
  - branches: [relu, sigmoid]
    name: both
  - maxpool: 2
  - avgpool: {kernel: 1, stride: null}
  - flatten
  - dense: 10
outputs: [dense1]
expect:
  params: 3238
  outputs: {dense1: [N, 10]}
"""


def test_a_spec_using_every_construct_validates(validator, tmp_path, capsys):
    errors = [e.message for e in validator.iter_errors(tree(GOOD))]
    assert not errors, errors
    (tmp_path / "good.yaml").write_text(GOOD)
    assert main(["check", str(tmp_path / "good.yaml")]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("mistake, replacement", [
    ("netc: 1", "netc: 2"),                                         # format version
    ("name: t", "name: my net"),                                    # not a name
    ("inputs: {x: [N, 3, 8, 8]}", "inputs: {x: [N, 3, 8]}"),        # 3 dimensions
    ("inputs: {x: [N, 3, 8, 8]}", "inputs: {x: [N, 3, H, 8]}"),     # a symbolic spatial size
    ("  - flatten\n", "  - flatten\n  - nope: 1\n    relu: null\n"),  # two types in one entry
    ("  - flatten\n", "  - flatten\n  - name: lost\n"),             # no type
    ("  - dense: 10", "  - dense: ten"),                            # shorthand of the wrong type
    ("  - maxpool: 2", "  - maxpool: {kernel: 2, round: flor}"),    # not one of the choices
    ("  - maxpool: 2", "  - maxpool: {kernel: 2, strides: 2}"),     # unknown attribute
    ("  - maxpool: 2", "  - maxpool: {kernel: [2, 2, 2]}"),         # three sizes
    ("  - maxpool: 2", "  - maxpool: {kernel: 0}"),                 # below the minimum
    ("  - dense: 10", "  - dense: {units: 10, bias: 1}"),           # a number for a boolean
    ("    repeat: 2", "    repeat: 0"),                             # repeat at least 1
    ("  conv: {bias: false, round: floor}", "  conv: {filters: $w}"),   # no expressions here
    ("  conv: {bias: false, round: floor}", "  convv: {bias: false}"),  # unknown type
    ("  mix:\n", "  conv:\n"),                                      # a block named like a type
    ("    args: {filters: int,", "    args: {filters: integer,"),   # not a type
    ("  params: 3238", "  parms: 3238"),                                # unknown expect key
    ("name: t\n", "name: t\ndescripton: x\n"),                      # unknown top-level key
])
def test_mistakes_fail_validation(validator, mistake, replacement, tmp_path, capsys):
    assert mistake in GOOD
    bad = GOOD.replace(mistake, replacement, 1)
    errors = list(validator.iter_errors(tree(bad)))
    assert errors, replacement
    (tmp_path / "bad.yaml").write_text(bad)  # what the schema rejects, netc rejects too
    assert main(["check", str(tmp_path / "bad.yaml")]) == 1
    capsys.readouterr()


def test_missing_required_top_level_keys(validator):
    errors = list(validator.iter_errors(tree("netc: 1\nname: t\n")))
    assert {e.message for e in errors} == {"'inputs' is a required property",
                                           "'layers' is a required property"}
