"""`netc sizes`: the input sizes at which a spec checks (each layer keeping its declared
rounding), which of them divide exactly everywhere, and the smallest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import netc
import netc.layers
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


UNET = """netc: 1
name: unet4
inputs:
  image: [N, 3, {size}, {size}]
defaults:
  maxpool: {{kernel: 2, round: floor}}
  convtranspose: {{kernel: 2, stride: 2}}
layers:
  - {{conv: {{filters: 4, kernel: 3, pad: 1}}, name: enc1}}
  - {{maxpool: {{}}, name: down1}}
  - {{conv: {{filters: 8, kernel: 3, pad: 1}}, name: enc2}}
  - {{maxpool: {{}}, name: down2}}
  - {{conv: {{filters: 16, kernel: 3, pad: 1}}, name: enc3}}
  - {{maxpool: {{}}, name: down3}}
  - {{conv: {{filters: 32, kernel: 3, pad: 1}}, name: enc4}}
  - {{maxpool: {{}}, name: down4}}
  - {{conv: {{filters: 64, kernel: 3, pad: 1}}, name: bottom}}
  - {{convtranspose: {{filters: 32}}, name: up4}}
  - {{concat: {{from: [enc4, up4]}}, name: cat4}}
  - {{convtranspose: {{filters: 16}}, name: up3}}
  - {{concat: {{from: [enc3, up3]}}, name: cat3}}
  - {{convtranspose: {{filters: 8}}, name: up2}}
  - {{concat: {{from: [enc2, up2]}}, name: cat2}}
  - {{convtranspose: {{filters: 4}}, name: up1}}
  - {{concat: {{from: [enc1, up1]}}, name: cat1}}
  - {{conv: {{filters: 2, kernel: 1}}, name: head}}
"""


@pytest.mark.skipif("convtranspose" not in netc.layers.REGISTRY, reason="a U-Net upsamples")
def test_a_unet_checks_at_the_multiples_of_16(tmp_path, capsys):
    """Four `round: floor` pools and four 2x upsamplings: the skips line up, and the spec
    checks, exactly at the multiples of 2^4 (every verdict that of the spec written at that
    size and checked), and `netc sizes` says so, in text and in JSON."""
    spec = tmp_path / "unet.yaml"
    spec.write_text(UNET.format(size=250))
    found = solve(str(spec), 100, 300)
    assert found.valid == [s for s in range(100, 301) if s % 16 == 0]
    for result in found.results[:40]:  # 100-139, each written out and checked
        one = tmp_path / f"unet_{result.size}.yaml"
        one.write_text(UNET.format(size=result.size))
        try:
            netc.check_spec(one)
            ok = True
        except NetcError:
            ok = False
        assert ok == result.ok, result.size
    assert not found.declared.ok and found.declared.error.startswith("E305: concat 'cat4'")
    assert main(["sizes", str(spec), "--range", "100:300"]) == 0
    out = capsys.readouterr().out
    assert "  the sizes that check are the multiples of 16\n" in out
    assert main(["sizes", str(spec), "--range", "100:300", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pattern"] == {"period": 16, "residues": [0], "start": 112,
                                 "text": "multiples of 16"}
    assert report["valid"] == [s for s in range(100, 301) if s % 16 == 0]


@pytest.mark.skipif(not (ROOT / "specs" / "unet.yaml").exists(), reason="the zoo's U-Net")
def test_the_zoo_unet_checks_at_the_multiples_of_16(capsys):
    assert main(["sizes", str(ROOT / "specs" / "unet.yaml"), "--range", "100:300"]) == 0
    out = capsys.readouterr().out
    assert "exact:   " + ", ".join(str(s) for s in range(112, 300, 16)) + "\n" in out
    assert "the sizes that check are the multiples of 16" in out


def test_no_pattern_is_claimed_from_too_few_sizes():
    """AlexNet's 227 and 259 in 200-260: too short a range to call them a pattern."""
    found = solve(str(PAPER), 200, 260)
    assert found.valid == [227, 259] and found.pattern is None
