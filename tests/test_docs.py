"""The docs stay true to the code."""

from pathlib import Path

from netc.tools.docs import MARKERS, embed, layer_reference
from netc.layers import REGISTRY, attributes

ROOT = Path(__file__).resolve().parent.parent


def test_spec_doc_holds_the_generated_layer_reference():
    text = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    assert MARKERS[0] in text
    assert embed(text, layer_reference()) == text, "run `python -m netc.tools.docs --write`"


def test_every_layer_and_attribute_has_a_doc():
    for kind, cls in REGISTRY.items():
        assert cls.__doc__ and "`- " in cls.__doc__, f"{kind} needs a doc with a YAML example"
        for spec in attributes(cls):
            assert spec.doc, f"{kind}.{spec.name} needs a doc"
