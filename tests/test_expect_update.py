"""`netc check --update-expect`: the `expect:` block rewritten in place, the rest untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from netc.cli import main
from netc.errors import NetcError
from netc.tools.expect import update_expect

ROOT = Path(__file__).resolve().parent.parent
LENET = (ROOT / "specs" / "lenet5.yaml").read_text(encoding="utf-8")
BODY = LENET.split("expect:")[0]  # everything above the block
BLOCK = "expect:\n  params: 61706\n  macs: 416520\n  outputs: {logits: [N, 10]}\n"


def write(tmp_path, text: str, name: str = "spec.yaml", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def test_wrong_values_are_replaced_where_they_stand(tmp_path, capsys):
    text = BODY + ("expect:            # the numbers torchvision publishes\n"
                   "  params: 1        # was wrong\n"
                   "  macs: 416520\n"
                   "  outputs: {logits: [N, 11]}\n"
                   "# a comment after the block\n")
    path = write(tmp_path, text)
    assert main(["check", str(path)]) == 1
    capsys.readouterr()
    assert main(["check", "--update-expect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"updated {path} (params, outputs)" in out
    assert path.read_text() == text.replace("params: 1 ", "params: 61706 ").replace(
        "[N, 11]", "[N, 10]")
    assert main(["check", str(path)]) == 0


def test_up_to_date_files_are_not_rewritten(tmp_path, capsys):
    path = write(tmp_path, LENET)
    before = path.stat().st_mtime_ns
    assert main(["check", "--update-expect", str(path)]) == 0
    assert "updated 0 of 1 spec" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == before and path.read_text() == LENET


def test_a_missing_block_is_added_at_the_end(tmp_path):
    for text in (BODY, BODY.rstrip("\n")):  # with and without a final newline
        path = write(tmp_path, text)
        assert update_expect(str(path)).changed
        assert path.read_text() == BODY + BLOCK


def test_missing_keys_are_added_under_the_block_in_its_indentation(tmp_path):
    path = write(tmp_path, BODY + "expect:\n    macs: 3   # m\n\n# trailing comment\n")
    update_expect(str(path))
    assert path.read_text() == BODY + (
        "expect:\n    macs: 416520   # m\n    params: 61706\n"
        "    outputs: {logits: [N, 10]}\n\n# trailing comment\n")


@pytest.mark.parametrize("written, expected", [
    # a flow mapping stays one
    ("expect: {params: 3}\n", "expect: {params: 61706, macs: 416520, outputs: {logits: [N, 10]}}\n"),
    # not a mapping at all: written anew
    ("expect:\n", BLOCK),
    ("expect: [1, 2]\n", BLOCK),
    # outputs naming a layer that isn't an output: the mapping is written anew, in its style
    ("expect:\n  outputs:\n    fc: [N, 10]\n  params: 61706\n  macs: 416520\n",
     "expect:\n  outputs:\n    logits: [N, 10]\n  params: 61706\n  macs: 416520\n"),
    # a block sequence as a shape: replaced by a flow one
    ("expect:\n  outputs:\n    logits:\n      - N\n      - 11\n  params: 61706\n  macs: 416520\n",
     "expect:\n  outputs:\n    logits: [N, 10]\n  params: 61706\n  macs: 416520\n"),
    # a quoted number (an error) becomes a number
    ('expect:\n  params: "61706"\n  macs: 416520\n  outputs: {logits: [N, 10]}\n', BLOCK),
])
def test_other_layouts(tmp_path, written, expected):
    path = write(tmp_path, BODY + written)
    update_expect(str(path))
    assert path.read_text() == BODY + expected


def test_crlf_line_endings_and_byte_order_mark_are_kept(tmp_path):
    path = write(tmp_path, BODY + BLOCK.replace("416520", "1"), newline="\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    update_expect(str(path))
    assert path.read_bytes() == b"\xef\xbb\xbf" + (BODY + BLOCK).replace("\n", "\r\n").encode()


def test_specs_with_other_errors_are_left_alone(tmp_path, capsys):
    broken = write(tmp_path, LENET.replace("kernel: 5}", "kernel: 50}", 1).replace("61706", "1"),
                   "broken.yaml")
    typo = write(tmp_path, LENET.replace("macs:", "mcs:"), "typo.yaml")  # not for netc to guess
    stale = write(tmp_path, LENET.replace("61706", "1"), "stale.yaml")
    before = {p: p.read_text() for p in (broken, typo)}
    assert main(["check", "--update-expect", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "error[E302]" in captured.err and "error[E102]" in captured.err
    assert f"updated {stale}" in captured.out and "updated 1 of 3 specs" in captured.out
    assert all(p.read_text() == text for p, text in before.items())
    assert "params: 61706" in stale.read_text()


def test_update_keeps_every_zoo_spec_byte_identical(tmp_path):
    """The zoo's blocks are up to date: a rewrite with the actual numbers changes nothing."""
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        copy = tmp_path / spec.name
        shutil.copy(spec, copy)
        assert not update_expect(str(copy)).changed, spec.name
        assert copy.read_bytes() == spec.read_bytes()


def test_zoo_numbers_are_restored_after_being_spoiled(tmp_path):
    spec = ROOT / "specs" / "resnet50.yaml"
    text = spec.read_text()
    spoiled = text.replace("params: 25557032", "params: 0").replace("[N, 1000]", "[N, 10]")
    path = write(tmp_path, spoiled)
    outcome = update_expect(str(path))
    assert outcome.keys_changed == ["params", "outputs"]
    assert path.read_text() == text


def test_unreadable_file_is_an_error(tmp_path, capsys):
    assert main(["check", "--update-expect", str(tmp_path / "missing.yaml")]) == 1
    assert "E001" in capsys.readouterr().err
    with pytest.raises(NetcError):
        update_expect(str(tmp_path / "missing.yaml"))
