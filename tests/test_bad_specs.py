"""The catalogue of bad specs: every tests/bad/*.yaml file states the errors netc must report
(`# expect: E301 11:43 "doesn't fit"`, see tests/bad/README.md), and netc must report exactly
those, at those positions, with the source line and a caret, and exit 1, never a traceback.

A few inputs that can't be committed (a missing file, 1 MiB of YAML, bytes that aren't UTF-8)
are written to a temporary folder by the tests at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netc import load
from netc.cli import main
from netc.errors import CODES

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).resolve().parent / "bad"
# tests/hostile: specs written to attack the reader (alias bombs, duplicate keys at every
# level, NaN sizes, ...), in the same format
HOSTILE = Path(__file__).resolve().parent / "hostile"
FILES = sorted(BAD.glob("*.yaml")) + sorted(HOSTILE.glob("*.yaml"))

EXPECT = re.compile(r'#\s*expect:\s*(E\d{3})\s+(\d+):(\d+)\s+"(.*)"\s*\Z')
EXPECT_WARNING = re.compile(r'#\s*expect-warning:\s*(W\d{3})\s+(\d+):(\d+)\s+"(.*)"\s*\Z')
EXPECT_TEXT = re.compile(r'#\s*expect-text:\s*"(.*)"\s*\Z')
EXPECT_NOT = re.compile(r'#\s*expect-not:\s*"(.*)"\s*\Z')
# the rest of a diagnostic's first line, after `path:`
HEAD = re.compile(r"(\d+):(\d+): (error|warning)\[([EW]\d{3})\]: (.*)\Z")


@dataclass(frozen=True)
class Expected:
    code: str
    line: int
    col: int
    text: str  # a substring of the message

    def __str__(self) -> str:
        return f'{self.code} {self.line}:{self.col} "{self.text}"'


@dataclass(frozen=True)
class Reported:
    severity: str
    code: str
    line: int
    col: int
    message: str
    index: int  # of its first line in the output

    def __str__(self) -> str:
        return f"{self.severity}[{self.code}] {self.line}:{self.col}: {self.message}"


@dataclass
class Expectations:
    errors: list[Expected]
    texts: list[str]
    absent: list[str]
    warnings: list[Expected] = field(default_factory=list)


def expectations(text: str) -> Expectations:
    """The `# expect...:` lines of a spec. A malformed one is a mistake in the test data."""
    found = Expectations([], [], [])
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not re.match(r"#\s*expect[-\w]*:", line):
            continue
        if m := EXPECT.match(line):
            found.errors.append(Expected(m[1], int(m[2]), int(m[3]), m[4]))
        elif m := EXPECT_WARNING.match(line):
            found.warnings.append(Expected(m[1], int(m[2]), int(m[3]), m[4]))
        elif m := EXPECT_TEXT.match(line):
            found.texts.append(m[1])
        elif m := EXPECT_NOT.match(line):
            found.absent.append(m[1])
        else:
            pytest.fail(f"line {number}: malformed expectation {line!r} (see tests/bad/README.md)")
    return found


def reported(output: str, path: str) -> list[Reported]:
    """The diagnostics about `path` in netc's text output (notes are indented, so left out)."""
    diags = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(path + ":") and (m := HEAD.match(line[len(path) + 1:])):
            diags.append(Reported(m[3], m[4], int(m[1]), int(m[2]), m[5], i))
    return diags


def run_check(capsys, path) -> tuple[int, str]:
    """`netc check PATH` in this process: (exit status, everything printed)."""
    status = main(["check", str(path)])
    out, err = capsys.readouterr()
    return status, out + err


def assert_user_error(status: int, output: str, expected: int = 1) -> None:
    assert status == expected, f"exit status {status}, expected {expected}\n{output}"
    assert "Traceback" not in output, output
    assert "internal error" not in output, output


def assert_excerpt(output: str, diag: Reported, source_lines: list[str]) -> None:
    """Under the diagnostic: its source line, then a caret under its column."""
    lines = output.splitlines()
    text = source_lines[diag.line - 1] if 1 <= diag.line <= len(source_lines) else ""
    if not text.strip():  # e.g. the end of the file: there is no line to show
        return
    assert diag.index + 2 < len(lines), f"no excerpt under {diag}\n{output}"
    shown, caret = lines[diag.index + 1], lines[diag.index + 2]
    assert re.fullmatch(r" {4,}\^+", caret), f"no caret line under {diag}\n{output}"
    shown_text = text.expandtabs(1)
    if len(shown_text) <= 100:  # longer lines are shown as a window around the column
        assert shown == "    " + shown_text, f"wrong source line under {diag}\n{output}"
        assert caret.index("^") == 4 + diag.col - 1, f"caret not at column {diag.col}\n{output}"
    else:
        assert shown.startswith("    ") and "..." in shown, output


def assert_matches(path: Path, status: int, output: str, want: Expectations,
                   source_lines: list[str]) -> None:
    """netc's output for `path` says exactly what `want` says, and says it well. A file with
    only warnings (`expect-warning:`) must exit 0."""
    assert_user_error(status, output, 1 if want.errors else 0)
    diags = reported(output, str(path))
    listing = "\n".join(f"  {d}" for d in diags) or "  (none)"
    for severity, expected in (("error", want.errors), ("warning", want.warnings)):
        unmatched = [d for d in diags if d.severity == severity]
        for exp in expected:
            hits = [d for d in unmatched if (d.code, d.line, d.col) == (exp.code, exp.line, exp.col)
                    and exp.text in d.message]
            assert hits, f"expected {severity} {exp}\nnetc reported:\n{listing}\n\n{output}"
            unmatched.remove(hits[0])
        assert not unmatched, (f"netc reported {severity}s the file doesn't expect (a follow-on "
                               f"error?):\n" + "\n".join(f"  {d}" for d in unmatched)
                               + f"\n\n{output}")
    for text in want.texts:
        assert text in output, f"expected {text!r} in the output\n{output}"
    for text in want.absent:
        assert text not in output, f"{text!r} should not be in the output\n{output}"
    for d in diags:
        assert d.code in CODES, f"{d.code} is not in netc.errors.CODES"
        assert_excerpt(output, d, source_lines)
    assert re.search(r"^ {4,}\^+$", output, re.M), f"no source excerpt at all\n{output}"


# --- the catalogue -----------------------------------------------------------------------------


def test_the_catalogue_is_there():
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_bad_spec(path, capsys):
    text = path.read_text(encoding="utf-8")
    want = expectations(text)
    assert want.errors or want.warnings, f"{path.name} has no `# expect:` line"
    status, output = run_check(capsys, path)
    assert_matches(path, status, output, want, text.splitlines())


# --- inputs written by the tests ---------------------------------------------------------------


def test_missing_file_is_a_user_error(tmp_path, capsys):
    status, output = run_check(capsys, tmp_path / "nowhere.yaml")
    assert_user_error(status, output)
    assert "error[E001]: cannot read" in output and "nowhere.yaml" in output


def test_folder_without_specs_is_a_user_error(tmp_path, capsys):
    status, output = run_check(capsys, tmp_path)
    assert_user_error(status, output)
    assert "error[E001]: no .yaml or .yml files" in output


def test_file_over_one_mebibyte(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    line = b"# " + b"x" * 97 + b"\n"
    path.write_bytes(b"netc: 1\n" + line * (load.MAX_BYTES // len(line) + 1))
    status, output = run_check(capsys, path)
    assert_user_error(status, output)
    [diag] = reported(output, str(path))
    assert (diag.code, diag.line, diag.col) == ("E002", 1, 1)
    assert "larger than 1024 KiB" in diag.message


def test_bytes_that_are_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    text = ("# expect: E009 3:10 \"byte 0xe9 is not valid UTF-8\"\n"
            "netc: 1\nname: caf\xe9\ninputs:\n  image: [N, 3, 32, 32]\nlayers:\n  - relu\n")
    path.write_bytes(text.encode("latin-1"))
    status, output = run_check(capsys, path)
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    assert_matches(path, status, output, expectations(text), lines)
    assert "save the file as UTF-8" in output


def test_too_many_yaml_nodes(tmp_path, capsys):
    # the root mapping, its key and the list are nodes 1-3; item k is node 3 + k, on line 1 + k
    path = tmp_path / "nodes.yaml"
    path.write_text("x:\n" + "- 0\n" * load.MAX_NODES, encoding="utf-8")
    status, output = run_check(capsys, path)
    first_too_many = load.MAX_NODES + 1 - 3
    want = Expected("E010", 1 + first_too_many, 3, f"more than {load.MAX_NODES:,} YAML nodes")
    assert_matches(path, status, output, Expectations([want], [], []),
                   path.read_text().splitlines())


def test_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    status, output = run_check(capsys, path)
    assert_user_error(status, output)
    [diag] = reported(output, str(path))
    assert (diag.code, diag.line, diag.col) == ("E101", 1, 1)
    assert "the spec is empty" in diag.message


# --- the same through a real process -----------------------------------------------------------

END_TO_END = ["e301_lecture_stride3", "e007_python_tag", "e308_dense_1e12_weights",
              "multi_independent_errors", "e003_unclosed_brace"]


def test_end_to_end_check_and_compile(tmp_path):
    """`python -m netc check FILE` and `... compile FILE -o OUT` in real processes: exit 1, the
    expected errors, no traceback, and no model file written."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}

    def netc(*args):
        return subprocess.run([sys.executable, "-m", "netc", *map(str, args)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)

    jobs = []
    for stem in END_TO_END:
        path = BAD / f"{stem}.yaml"
        jobs.append((path, ("check", path)))
        jobs.append((path, ("compile", path, "-o", tmp_path / f"{stem}.onnx")))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: netc(*job[1]), jobs))
    for (path, args), proc in zip(jobs, results):
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1, f"{args[0]} {path.name}: exit {proc.returncode}\n{output}"
        assert "Traceback" not in output and "internal error" not in output, output
        text = path.read_text(encoding="utf-8")
        codes = sorted(d.code for d in reported(output, str(path)) if d.severity == "error")
        assert codes == sorted(e.code for e in expectations(text).errors), output
    assert not list(tmp_path.glob("*.onnx")), "a model was written for a bad spec"


# --- coverage of the codes ---------------------------------------------------------------------

# codes exercised by the tests above that write their own input
GENERATED = {"E001", "E002", "E009", "E010", "E101"}
# codes of the run and write paths (`netc run`, `compile -o`): not about a spec's text
# Codes that no spec can trigger: running and writing (tests/test_cli.py), and weights files
# (tests/test_weights.py, one test per code).
NOT_SPEC_ERRORS = {"E508", "E601", "E602", "E603", "E604", "E605", "E606", "W601",
                   "E501", "E502", "E503", "E504", "E505", "E506", "E507", "W501"}


def test_catalogue_covers_every_spec_error_code():
    found = [expectations(p.read_text(encoding="utf-8")) for p in FILES]
    in_files = {e.code for want in found for e in want.errors + want.warnings}
    assert in_files <= set(CODES), f"codes not in CODES: {sorted(in_files - set(CODES))}"
    missing = set(CODES) - NOT_SPEC_ERRORS - in_files - GENERATED
    assert not missing, f"no bad spec exercises {sorted(missing)}"
