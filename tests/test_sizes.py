"""`netc sizes`: the input sizes at which a spec checks (each layer keeping its declared
rounding), which of them divide exactly everywhere, and the smallest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import netc
from netc.cli import main
from netc.errors import NetcError
from netc.tools.sizes import ranges, solve

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "tests" / "data" / "alexnet_paper.yaml"


def paper_alexnet(tmp_path, size: int) -> Path:
    path = tmp_path / f"alexnet_{size}.yaml"
    path.write_text(PAPER.read_text().replace("[N, 3, 227, 227]", f"[N, 3, {size}, {size}]"))
    return path


def test_paper_alexnet_fixture_checks_at_227():
    graph = netc.check_spec(PAPER)
    assert graph.nodes[0].output.shape == ("N", 96, 55, 55)  # (227 - 11) / 4 + 1 = 55


def test_paper_alexnet_needs_227_not_224(tmp_path, capsys):
    """Declared at 224 (as the paper says), the spec fails; netc sizes finds 227."""
    spec = paper_alexnet(tmp_path, 224)
    assert main(["check", str(spec)]) == 1
    assert "(224 - 11 + 0) / 4 + 1 = 54.25" in capsys.readouterr().err
    found = solve(str(spec), 200, 260)
    assert 227 in found.valid and 224 not in found.valid
    # conv1 needs S = 4k + 3; the three 3x3 stride-2 pools then need 55 -> 27 -> 13 -> 6
    assert found.valid == found.exact == [227, 259]
    assert not found.declared.ok and "E301" in found.declared.error
    assert found.smallest.size == 67  # 67 -> 15 -> 7 -> 3 -> 1
    assert main(["sizes", str(spec), "--range", "200:260"]) == 0
    out = capsys.readouterr().out
    assert "exact:   227, 259" in out and "rounded: none" in out
    assert "declared size 224: E301" in out and "smallest size that checks: 67 (exact)" in out


def test_the_solver_agrees_with_checking_each_size(tmp_path):
    """Every verdict equals that of the spec written at that size and checked."""
    found = solve(str(PAPER), 219, 231)
    for result in found.results:
        spec = paper_alexnet(tmp_path, result.size)
        try:
            netc.check_spec(spec)
            ok = True
        except NetcError:
            ok = False
        assert ok == result.ok, result.size


def test_rounding_layers_are_marked():
    """torchvision's ResNet-18 rounds down in its stem at 224; at 225 everything divides."""
    found = solve(str(ROOT / "specs" / "resnet18.yaml"), 220, 230)
    assert found.valid == list(range(220, 231))
    assert found.exact == [225]
    at_224 = next(r for r in found.results if r.size == 224)
    assert at_224.ok and not at_224.exact and at_224.rounding[0] == "conv1"  # 112.5 -> 112
    assert found.declared is at_224 or found.declared == at_224


def test_json_report(capsys):
    assert main(["sizes", str(ROOT / "specs" / "lenet5.yaml"), "--range", "28:33",
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] == report["exact"] == [28, 32]
    assert report["declared"] == {"size": 32, "ok": True, "exact": True}
    assert report["smallest"]["size"] == 16
    bad = report["sizes"][1]
    assert bad["size"] == 29 and not bad["ok"] and bad["error"].startswith("E301")


def test_default_range_is_the_declared_size_plus_minus_32():
    found = solve(str(ROOT / "specs" / "vgg16.yaml"))
    assert (found.results[0].size, found.results[-1].size) == (192, 256)
    assert found.exact == [192, 224, 256]  # five 2x2 pools: multiples of 32


def test_specs_it_cannot_help(tmp_path, capsys):
    vector = tmp_path / "vector.yaml"
    vector.write_text("netc: 1\nname: v\ninputs: {x: [N, 8]}\nlayers:\n  - dense: 2\n")
    assert main(["sizes", str(vector)]) == 1
    assert "E307" in capsys.readouterr().err
    typo = tmp_path / "typo.yaml"
    typo.write_text(PAPER.read_text().replace("stride: 4}", "strid: 4}"))
    assert main(["sizes", str(typo)]) == 1  # no input size fixes a misspelt attribute
    assert "E102" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["sizes", str(PAPER), "--range", "260:200"])
    assert e.value.code == 2
    capsys.readouterr()


def test_ranges():
    assert ranges([200, 201, 202, 205, 207, 208]) == "200-202, 205, 207-208"
    assert ranges([]) == "none"
