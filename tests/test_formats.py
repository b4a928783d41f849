"""`netc check --format json|github|sarif` and `--strict`, on the whole bad-spec corpus.

Each machine format is produced for every tests/bad/*.yaml file at once and checked against
its contract: the JSON document against docs/diagnostics.schema.json (with the small validator
below: the schema uses only the keywords it knows, and it refuses any other), the SARIF log
against the fields SARIF 2.1.0 requires and GitHub's code scanning reads, the GitHub workflow
commands line by line with a regular expression. All three must carry exactly the diagnostics
that the `# expect:` lines of the corpus list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_bad_specs import FILES, expectations

from netc.cli import main
from netc.errors import CODES, Diagnostic
from netc.tools.formats import _escape_data, _escape_property, github_command
from netc.source import SourceFile, Span

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "diagnostics.schema.json").read_text(encoding="utf-8"))
RELATIVE = [str(p.relative_to(ROOT).as_posix()) for p in FILES]


def netc_check(capsys, *args) -> tuple[int, str, str]:
    status = main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def in_root(monkeypatch):
    """Run from the checkout's root, as a CI job does: paths are reported relative to it."""
    monkeypatch.chdir(ROOT)


def expected_diagnostics() -> list[tuple[str, str, str, int, int, str]]:
    """(file, severity, code, line, col, message substring) of every `# expect` line."""
    found = []
    for path, rel in zip(FILES, RELATIVE):
        want = expectations(path.read_text(encoding="utf-8"))
        found += [(rel, "error", e.code, e.line, e.col, e.text) for e in want.errors]
        found += [(rel, "warning", e.code, e.line, e.col, e.text) for e in want.warnings]
    return found


def assert_same_diagnostics(got: list[tuple[str, str, str, int, int, str]]) -> None:
    """`got` (file, severity, code, line, col, full message) is exactly the corpus' list."""
    unmatched = list(got)
    for exp in expected_diagnostics():
        hits = [g for g in unmatched if g[:5] == exp[:5] and exp[5] in g[5]]
        assert hits, f"expected {exp}, not among what was reported"
        unmatched.remove(hits[0])
    assert not unmatched, f"reported but not expected: {unmatched}"


# --- a JSON Schema validator for the keywords docs/diagnostics.schema.json uses ----------------

ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs"}
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def schema_errors(value, schema: dict, root: dict | None = None, at: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (draft 2020-12, the subset below)."""
    root = root if root is not None else schema
    errors = []
    for key, rule in schema.items():
        if key in ANNOTATIONS:
            continue
        if key == "$ref":
            assert rule.startswith("#/$defs/"), f"unsupported $ref {rule}"
            errors += schema_errors(value, root["$defs"][rule[len("#/$defs/"):]], root, at)
        elif key == "type":
            kinds = [rule] if isinstance(rule, str) else rule
            if not any(_is(value, k) for k in kinds):
                errors.append(f"{at}: {value!r} is not of type {rule}")
                return errors  # the other keywords would only repeat it
        elif key == "required":
            errors += [f"{at}: missing {k!r}" for k in rule
                       if isinstance(value, dict) and k not in value]
        elif key == "properties":
            if isinstance(value, dict):
                for k, sub in rule.items():
                    if k in value:
                        errors += schema_errors(value[k], sub, root, f"{at}.{k}")
        elif key == "additionalProperties":
            assert rule is False, "only additionalProperties: false is supported"
            if isinstance(value, dict):
                errors += [f"{at}: unexpected key {k!r}" for k in value
                           if k not in schema.get("properties", {})]
        elif key == "items":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    errors += schema_errors(item, rule, root, f"{at}[{i}]")
        elif key == "enum":
            if value not in rule:
                errors.append(f"{at}: {value!r} is not one of {rule}")
        elif key == "const":
            if value != rule or type(value) is not type(rule):
                errors.append(f"{at}: {value!r} is not {rule!r}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                errors.append(f"{at}: {value!r} does not match {rule}")
        elif key == "minimum":
            if _is(value, "integer") and value < rule:
                errors.append(f"{at}: {value} is less than {rule}")
        elif key == "minLength":
            if isinstance(value, str) and len(value) < rule:
                errors.append(f"{at}: {value!r} is shorter than {rule}")
        else:
            raise AssertionError(f"the test's validator doesn't know the keyword {key!r}")
    return errors


def _is(value, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def test_the_validator_rejects_what_the_schema_forbids():
    diag = {"file": "a.yaml", "line": 1, "col": 2, "end_line": 1, "end_col": 3,
            "severity": "error", "code": "E301", "title": "t", "message": "m", "details": [],
            "hints": [], "notes": []}
    doc = {"netc": "0", "version": 1, "diagnostics": [diag],
           "summary": {"files": 1, "failed_files": 1, "errors": 1, "warnings": 0,
                       "strict": False, "ok": False}}
    assert schema_errors(doc, SCHEMA) == []
    bad = [
        {**diag, "line": 0}, {**diag, "code": "X1"}, {**diag, "severity": "info"},
        {k: v for k, v in diag.items() if k != "message"}, {**diag, "extra": 1},
        {**diag, "col": True}, {**diag, "notes": [{"file": "a", "message": "m"}]},
    ]
    for d in bad:
        assert schema_errors({**doc, "diagnostics": [d]}, SCHEMA), d
    assert schema_errors({**doc, "version": 2}, SCHEMA)


# --- JSON ----------------------------------------------------------------------------------------


def test_json_on_the_corpus_matches_the_schema(capsys, in_root):
    status, out, err = netc_check(capsys, "--format", "json", *RELATIVE)
    assert status == 1
    doc = json.loads(out)  # standard output is the document and nothing else
    assert schema_errors(doc, SCHEMA) == []
    diags = doc["diagnostics"]
    assert_same_diagnostics([(d["file"], d["severity"], d["code"], d["line"], d["col"],
                              d["message"]) for d in diags])
    assert all(d["title"] == CODES[d["code"]] for d in diags)
    summary = doc["summary"]
    assert summary["files"] == len(FILES)
    assert summary["errors"] == sum(d["severity"] == "error" for d in diags)
    assert summary["warnings"] == sum(d["severity"] == "warning" for d in diags) > 0
    assert summary["ok"] is False and summary["strict"] is False
    assert err.strip().splitlines() == [f"netc: {summary['failed_files']} of {len(FILES)} specs "
                                        "have errors"]
    # the block a diagnostic lies in is a note, as in the text form
    assert any(n["message"] == "in the block used here" for d in diags for n in d["notes"])


def test_json_of_a_clean_spec_and_of_files_that_cant_be_read(capsys, tmp_path, in_root):
    status, out, err = netc_check(capsys, "--format", "json", "specs/lenet5.yaml")
    doc = json.loads(out)
    assert status == 0 and doc["diagnostics"] == [] and doc["summary"]["ok"] is True
    assert "checked 1 spec: no errors" in err
    missing, empty = tmp_path / "nowhere.yaml", tmp_path / "empty"
    empty.mkdir()
    status, out, _ = netc_check(capsys, "--format", "json", missing, empty, "specs/lenet5.yaml")
    doc = json.loads(out)
    assert status == 1 and schema_errors(doc, SCHEMA) == []
    assert [(d["file"], d["code"], d["line"]) for d in doc["diagnostics"]] == \
        [(str(missing), "E001", None), (str(empty), "E001", None)]
    assert doc["summary"]["files"] == 3 and doc["summary"]["failed_files"] == 2


# --- SARIF ---------------------------------------------------------------------------------------


def assert_region(region: dict, where: str) -> None:
    for key in ("startLine", "startColumn", "endLine", "endColumn"):
        if key in region or key in ("startLine", "startColumn"):
            v = region.get(key)
            assert isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{where}.{key}: {v}"
    end = (region.get("endLine", region["startLine"]), region.get("endColumn", 0))
    assert end[0] >= region["startLine"], where
    if end[0] == region["startLine"] and "endColumn" in region:
        assert end[1] >= region["startColumn"], where


def test_sarif_on_the_corpus_has_what_sarif_requires(capsys, in_root):
    status, out, err = netc_check(capsys, "--format", "sarif", *RELATIVE)
    assert status == 1
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    assert log["$schema"].startswith("https://") and "sarif" in log["$schema"]
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "netc" and isinstance(driver["version"], str)
    rules = driver["rules"]
    ids = [r["id"] for r in rules]
    assert len(set(ids)) == len(ids)
    for rule in rules:
        assert rule["shortDescription"]["text"] == CODES[rule["id"]]
        assert f"netc explain {rule['id']}" in rule["help"]["text"]
        assert f"docs/errors.md#{rule['id'].lower()}" in rule["help"]["text"]
    bases = run["originalUriBaseIds"]
    got = []
    for i, result in enumerate(run["results"]):
        where = f"results[{i}]"
        assert result["ruleId"] in ids, where
        assert ids[result["ruleIndex"]] == result["ruleId"], where
        assert result["level"] in ("error", "warning"), where
        text = result["message"]["text"]
        assert isinstance(text, str) and text, where
        assert result["locations"], where
        physical = result["locations"][0]["physicalLocation"]
        artifact = physical["artifactLocation"]
        assert artifact["uri"] and "://" not in artifact["uri"], where  # relative to the root
        assert artifact["uri"] == artifact["uri"].replace("\\", "/"), where
        assert artifact["uriBaseId"] in bases, where
        region = physical["region"]
        assert_region(region, where)
        for j, related in enumerate(result.get("relatedLocations", [])):
            assert_region(related["physicalLocation"]["region"], f"{where}.related[{j}]")
            assert related["message"]["text"]
        got.append((artifact["uri"], result["level"], result["ruleId"], region["startLine"],
                    region["startColumn"], text.splitlines()[0]))
    assert set(ids) == {g[2] for g in got}  # a rule for each code that occurs, and no other
    assert_same_diagnostics(got)
    assert bases["SRCROOT"]["uri"].startswith("file://") and bases["SRCROOT"]["uri"].endswith("/")


# --- GitHub Actions ------------------------------------------------------------------------------

COMMAND = re.compile(
    r"::(?P<severity>error|warning) file=(?P<file>[^,:\s]+)"
    r"(?:,line=(?P<line>[1-9]\d*),col=(?P<col>[1-9]\d*),endLine=(?P<end_line>[1-9]\d*),"
    r"endColumn=(?P<end_col>[1-9]\d*))?"
    r",title=(?P<code>[EW]\d{3})::(?P<message>[^\r\n]+)\Z")


def unescape(text: str) -> str:
    return (text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":")
            .replace("%2C", ",").replace("%25", "%"))


def test_github_commands_on_the_corpus(capsys, in_root):
    status, out, err = netc_check(capsys, "--format", "github", *RELATIVE)
    assert status == 1
    lines = out.splitlines()
    got = []
    for line in lines:
        m = COMMAND.match(line)
        assert m, f"not a workflow command: {line!r}"
        assert "%" not in re.sub(r"%(25|0D|0A)", "", m["message"]), line  # % escaped
        assert not m["line"] or int(m["end_line"]) >= int(m["line"])
        if m["line"] and m["end_line"] == m["line"]:
            assert int(m["end_col"]) >= int(m["col"]), line
        got.append((unescape(m["file"]), m["severity"], m["code"], int(m["line"] or 0),
                    int(m["col"] or 0), unescape(m["message"]).split("\n")[0]))
    assert_same_diagnostics(got)
    assert any("%0Ahint: " in line for line in lines)  # details and hints ride along


def test_github_escaping():
    assert _escape_data("100% sure\r\nnext: a, b") == "100%25 sure%0D%0Anext: a, b"
    assert _escape_property("a:b,c%d\n") == "a%3Ab%2Cc%25d%0A"
    source = SourceFile("dir, with: commas/spec.yaml", "netc: 1\n")
    diag = Diagnostic("E301", "50% off\nline two", Span(source, 1, 3, 1, 8), "error",
                      hints=("a, b",))
    assert github_command(diag, "ignored") == (
        "::error file=dir%2C with%3A commas/spec.yaml,line=1,col=3,endLine=1,endColumn=7,"
        "title=E301::50%25 off%0Aline two%0Ahint: a, b")
    nowhere = Diagnostic("E001", "cannot read 'x.yaml'", None, "error")
    assert github_command(nowhere, "x.yaml") == "::error file=x.yaml,title=E001::cannot read 'x.yaml'"


# --- --strict and usage --------------------------------------------------------------------------


def test_strict_makes_warnings_fail(capsys, in_root):
    warned = "tests/bad/w201_unused_layer.yaml"
    status, out, err = netc_check(capsys, warned)
    assert status == 0 and "warning[W201]" in err and "no errors (2 warnings)" in out
    status, out, err = netc_check(capsys, "--strict", warned)
    assert status == 1 and "warning[W201]" in err and out == ""
    assert "1 of 1 spec has warnings, which --strict makes errors" in err
    status, out, _ = netc_check(capsys, "--strict", "--format", "json", warned)
    summary = json.loads(out)["summary"]
    assert status == 1 and summary == {"files": 1, "failed_files": 1, "errors": 0,
                                       "warnings": 2, "strict": True, "ok": False}


def test_the_zoo_passes_strict(capsys, in_root):
    """The shipped specs have no warnings (ResNet's 1x1 stride-2 shortcuts are not W203)."""
    status, out, err = netc_check(capsys, "--strict", "--format", "json", "specs")
    doc = json.loads(out)
    assert status == 0, doc["diagnostics"]
    assert doc["diagnostics"] == [] and doc["summary"]["files"] >= 9


def test_unknown_format_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["check", "--format", "xml", "specs"])
    assert e.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


# --- checking many files in two processes -----------------------------------------------------


def _render(found) -> list[str]:
    return ["\n".join(d.render() for d in diagnostics) for diagnostics in found]


@pytest.fixture
def two_cpus(monkeypatch):
    """The forked half runs wherever the machine has one CPU too."""
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)


def test_many_files_checked_in_two_processes_as_in_one(two_cpus, in_root, monkeypatch):
    """The corpus of bad specs and the zoo, checked by check_spec_files (half of them in a
    forked process), give every file's diagnostics in order, as checking each alone does."""
    import os

    from netc.tools import formats

    forks, fork = [], os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or fork())
    paths = [str(p) for p in FILES] + [str(p) for p in sorted(Path("specs").glob("*.yaml"))]
    assert sum(Path(p).stat().st_size for p in paths) >= 32_768  # (else it checks them alone)
    together = formats.check_spec_files(paths)
    assert forks == [1]
    alone = [formats.check_spec_file(p) for p in paths]
    assert _render(together) == _render(alone)
    assert [len(d) for d in together] == [len(d) for d in alone]
    assert any(len(d) for d in together) and not all(len(d) for d in together)


def test_a_failing_second_process_is_made_up_for(two_cpus, monkeypatch, tmp_path):
    """If the forked process fails (a bug there, a kill), this process checks its files."""
    import os

    from netc.tools import formats

    parent, real = os.getpid(), formats.check_spec_file
    marker = tmp_path / "the child ran"

    def crash_in_the_child(path, limits=formats.DEFAULT):
        if os.getpid() != parent:
            marker.touch()
            raise RuntimeError("the forked process fails")
        return real(path, limits)

    monkeypatch.setattr(formats, "check_spec_file", crash_in_the_child)
    paths = [str(p) for p in FILES]
    assert _render(formats.check_spec_files(paths)) == _render(real(p) for p in paths)
    assert marker.exists()
