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


def test_whole_specs_in_the_spec_doc_check(tmp_path):
    """Every complete spec docs/spec.md shows (a ```yaml block starting `netc: 1`) checks
    without errors or warnings, and has the shapes its comments say where they say one."""
    import re

    import netc

    text = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("netc: 1")]
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        path = tmp_path / f"doc{i}.yaml"
        path.write_text(block, encoding="utf-8")
        graph = netc.check_spec(path)
        shapes = {n.name: n.output.shape for n in graph.nodes}
        for line in block.splitlines():
            # `- {conv: ..., name: enc1}    # 16x96x96`: the comment's CxHxW is the layer's
            said = re.search(r"name: ([\w.]+)\}.*#\s*(?:the skip: )?(\d+)x(\d+)x(\d+)", line)
            if said:
                name, c, h, w = said.groups()
                assert shapes[name][1:] == (int(c), int(h), int(w)), line
