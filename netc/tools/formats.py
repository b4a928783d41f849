"""`netc check --format`: the diagnostics of many files as text, JSON, GitHub Actions workflow
commands or SARIF 2.1.0. The CLI collects a `Report` (one `Checked` per file) and prints
`render(report, format)`; docs/cli.md describes each format, and docs/diagnostics.schema.json
is the JSON Schema of the JSON one.

Positions are 1-based. A span's end column is exclusive (the column after its last character),
as in SARIF; GitHub's `endColumn` is inclusive, so it gets one less. A diagnostic without a
position (a file that can't be read) is reported on the file it is about.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..version import __version__
from ..errors import CODES, Diagnostic, Diagnostics, NetcError, capped, omitted, omitted_lines
from ..limits import DEFAULT, Limits
from ..source import Span

FORMATS = ("text", "json", "github", "sarif")
JSON_VERSION = 1  # of the JSON document's layout; bumped only on an incompatible change

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


@dataclass
class Checked:
    """One file (or folder) given to `netc check`, and what checking it found, sorted."""

    path: str
    diagnostics: list[Diagnostic]

    @property
    def errors(self) -> int:
        return sum(d.severity == "error" for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(d.severity == "warning" for d in self.diagnostics)


@dataclass
class Report:
    """Everything `netc check` found; `strict` makes warnings fail the check."""

    strict: bool = False
    files: list[Checked] = field(default_factory=list)

    def add(self, path: str, diagnostics: Diagnostics) -> None:
        self.files.append(Checked(path, diagnostics.sorted()))

    @property
    def errors(self) -> int:
        return sum(f.errors for f in self.files)

    @property
    def warnings(self) -> int:
        return sum(f.warnings for f in self.files)

    def failing(self, f: Checked) -> bool:
        return f.errors > 0 or (self.strict and f.warnings > 0)

    @property
    def failed(self) -> bool:
        return any(self.failing(f) for f in self.files)

    def summary(self) -> str:
        """The last line: `checked 9 specs: no errors`, or how many failed and why."""
        n = len(self.files)
        noun = "spec" if n == 1 else "specs"
        failing = sum(self.failing(f) for f in self.files)
        if not failing:
            extra = f" ({_count(self.warnings, 'warning')})" if self.warnings else ""
            return f"checked {n} {noun}: no errors{extra}"
        verb = "has" if failing == 1 else "have"
        if self.errors:
            return f"netc: {failing} of {n} {noun} {verb} errors"
        return f"netc: {failing} of {n} {noun} {verb} warnings, which --strict makes errors"


def check_spec_file(path: str, limits: Limits = DEFAULT) -> Diagnostics:
    """Check one spec file; every diagnostic found (errors and warnings)."""
    from ..pipeline import check_file, collection_paused

    found = Diagnostics()
    with collection_paused():  # (the graph is dropped before collection resumes)
        try:
            check_file(path, found, limits)
        except NetcError as e:
            return e.diagnostics
    return found


def check_spec_files(paths: list[str], limits: Limits = DEFAULT) -> list[Diagnostics]:
    """`check_spec_file` for each path, in order. Where the machine has two or more CPUs and
    there are several files, a forked copy of this process checks about half of them (by
    size) while this one checks the rest: the specs are independent, and the copy starts
    with everything already imported. If the copy fails, this process checks its files too."""
    import os

    sizes = []
    for path in paths:
        try:
            sizes.append(os.path.getsize(path))
        except OSError:
            sizes.append(0)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if len(paths) < 4 or not hasattr(os, "fork") or (cpus or 1) < 2 or sum(sizes) < 32_768:
        return [check_spec_file(path, limits) for path in paths]
    mine, theirs, load = [], [], [0, 0]  # largest first, each to the lighter half
    for i in sorted(range(len(paths)), key=lambda i: -sizes[i]):
        half = 0 if load[0] <= load[1] else 1
        (mine, theirs)[half].append(i)
        load[half] += sizes[i]
    found: dict[int, Diagnostics] = {}
    child = _fork_check([paths[i] for i in theirs], limits)
    for i in mine:
        found[i] = check_spec_file(paths[i], limits)
    results = child()
    for k, i in enumerate(theirs):
        found[i] = results[k] if results is not None else check_spec_file(paths[i], limits)
    return [found[i] for i in range(len(paths))]


def _fork_check(paths: list[str], limits: Limits):
    """Check `paths` in a forked child; returns a function that waits for it and gives its
    diagnostics (None if it failed). The child writes them, pickled, to a pipe: they are
    netc's own objects, read back by the process that forked it."""
    import os
    import pickle

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: check, send, and leave without running the parent's exit code
        status = 1
        try:
            os.close(read)
            data = pickle.dumps([check_spec_file(p, limits) for p in paths])
            with os.fdopen(write, "wb") as out:
                out.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(write)

    def wait():
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not data:
            return None
        return pickle.loads(data)

    return wait


def render(report: Report, fmt: str) -> str:
    """The report in `fmt` (one of FORMATS), without a final newline. Every format shows the
    same diagnostics of each file, at most errors.SHOW_PER_CODE of a code and SHOW_PER_FILE
    in all (`errors.capped`), and says how many more there were; counts in summaries stay true."""
    if fmt == "text":
        lines = []
        for f in report.files:
            shown, left = capped(f.diagnostics)
            lines += [d.render() for d in shown] + omitted_lines(shown, left)
        return printable("\n".join(lines))
    import json  # (here: a text report, the usual one, does not need it)

    if fmt == "json":
        return json.dumps(printable_document(json_document(report)), indent=2,
                          ensure_ascii=False)
    if fmt == "github":
        lines = []
        for f in report.files:
            shown, left = capped(f.diagnostics)
            lines += [github_command(d, f.path) for d in shown]
            lines += [_github_omitted(f.path, shown, key, n) for key, n in left.items()]
        return printable("\n".join(lines))
    if fmt == "sarif":
        return json.dumps(printable_document(sarif_log(report)), indent=2,
                          ensure_ascii=False)
    raise ValueError(f"unknown format {fmt!r}")


_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with its lone surrogates, which no UTF-8 output can hold, escaped. A file name's
    bytes that are not UTF-8 reach netc as `\\udc80`..`\\udcff` (Python's surrogateescape:
    sys.argv, os.listdir) and are written as the byte, `\\xff`; any other (a YAML escape
    `"\\ud800"` in a spec) as `\\ud800`. Every format writes them so, and so does the
    terminal (cli.py's error handler on the standard streams): netc's output is always UTF-8,
    and its JSON and SARIF documents valid."""
    if not _SURROGATE.search(text):
        return text

    def escape(m):
        c = ord(m.group())
        return f"\\x{c - 0xdc00:02x}" if 0xdc80 <= c <= 0xdcff else f"\\u{c:04x}"

    return _SURROGATE.sub(escape, text)


def printable_document(doc):
    """A JSON document with `printable` applied to every string in it (keys too)."""
    if isinstance(doc, str):
        return printable(doc)
    if isinstance(doc, dict):
        return {printable(k) if isinstance(k, str) else k: printable_document(v)
                for k, v in doc.items()}
    if isinstance(doc, list):
        return [printable_document(v) for v in doc]
    return doc


# --- JSON --------------------------------------------------------------------------------------


def json_document(report: Report) -> dict:
    """{"netc", "version", "diagnostics": [...], "summary": {...}}: see
    docs/diagnostics.schema.json."""
    return {
        "netc": __version__,
        "version": JSON_VERSION,
        # capped as the text is (`render`); the summary's counts are of them all
        "diagnostics": [diagnostic_dict(d, f.path) for f in report.files
                        for d in capped(f.diagnostics)[0]],
        "summary": {
            "files": len(report.files),
            "failed_files": sum(report.failing(f) for f in report.files),
            "errors": report.errors,
            "warnings": report.warnings,
            "strict": report.strict,
            "ok": not report.failed,
        },
    }


def diagnostic_dict(d: Diagnostic, path: str) -> dict:
    """One diagnostic: position (null when it has none), severity, code and its title, message,
    details, hints, and notes (secondary positions, then the block uses it was expanded from)."""
    out = {"file": d.span.path if d.span else path}
    out.update(_position(d.span))
    out.update(severity=d.severity, code=d.code, title=CODES[d.code], message=d.message,
               details=list(d.details), hints=list(d.hints),
               notes=[{"file": s.path, **_position(s), "message": m} for s, m in _notes(d)])
    return out


def _position(span: Span | None) -> dict:
    keys = ("line", "col", "end_line", "end_col")
    if span is None:
        return dict.fromkeys(keys)
    end_line, end_col = _end(span)
    return dict(zip(keys, (span.line, span.col, end_line, end_col)))


def _end(span: Span) -> tuple[int, int]:
    """The end of a span, never before its start."""
    if (span.end_line, span.end_col) < (span.line, span.col):
        return span.line, span.col
    return span.end_line, span.end_col


def _notes(d: Diagnostic) -> list[tuple[Span, str]]:
    """The notes of `d`, then the chain of block uses it lies in (as the text form shows)."""
    notes = [(n.span, n.message) for n in d.notes]
    origin = d.span.origin if d.span else None
    while origin is not None:
        notes.append((origin, "in the block used here"))
        origin = origin.origin
    return notes


def _full_text(d: Diagnostic) -> str:
    """The message with its details and hints, one per line."""
    return "\n".join([d.message, *d.details, *(f"hint: {h}" for h in d.hints)])


# --- GitHub Actions ----------------------------------------------------------------------------


def github_command(d: Diagnostic, path: str) -> str:
    """`::error file=F,line=L,col=C,endLine=L2,endColumn=C2,title=E301::message`: a workflow
    command that annotates the line in the pull request (warnings as `::warning`)."""
    props = {"file": _relative(d.span.path if d.span else path)}
    if d.span is not None:
        end_line, end_col = _end(d.span)
        props.update(line=d.span.line, col=d.span.col, endLine=end_line,
                     endColumn=max(d.span.col, end_col - 1) if end_line == d.span.line
                     else end_col)
    props["title"] = d.code
    shown = ",".join(f"{k}={_escape_property(str(v))}" for k, v in props.items())
    return f"::{d.severity} {shown}::{_escape_data(_full_text(d))}"


def _github_omitted(path: str, shown: list[Diagnostic], key: tuple, count: int) -> str:
    """The workflow command that says how many diagnostics of a code `capped` left out (of
    their severity, on the file), so that the job's annotations count them too."""
    file, code, severity = key
    like = any(d.code == code and (d.span.path if d.span else None) == file for d in shown)
    text = omitted(None, code, severity, count, like)
    props = f"file={_escape_property(_relative(file or path))},title={_escape_property(code)}"
    return f"::{severity} {props}::{_escape_data(text)}"


def _escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF escaped (as @actions/core does)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """A workflow command's property value: also `:` and `,`, which delimit properties."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _relative(path: str) -> str:
    """`path` relative to the current directory (a CI job's checkout) with `/` separators;
    as given when it lies outside."""
    return _inside(path) or path


def _inside(path: str) -> str | None:
    """`path` relative to the current directory with `/` separators, or None if outside."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return None
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return Path(rel).as_posix()


# --- SARIF -------------------------------------------------------------------------------------


def sarif_log(report: Report) -> dict:
    """A SARIF 2.1.0 log with one run: netc as the tool, one rule per code that occurs, one
    result per diagnostic. Paths inside the current directory are relative to SRCROOT (the
    current directory, which GitHub's upload takes as the repository root)."""
    pairs, notices = [], []
    for f in report.files:
        shown, left = capped(f.diagnostics)  # as the text shows them (`render`)
        pairs += [(f, d) for d in shown]
        seen = {(d.span.path if d.span else None, d.code) for d in shown}
        notices += [{"level": "warning" if severity == "error" else "note",
                     "message": {"text": omitted(file or f.path, code, severity, n,
                                                 (file, code) in seen)}}
                    for (file, code, severity), n in left.items()]
    codes = sorted({d.code for _, d in pairs})
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for f, d in pairs:
        result = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": d.severity,
            "message": {"text": _full_text(d)},
            "locations": [_location(d.span, f.path)],
        }
        related = [{"id": i, **_location(span, f.path), "message": {"text": message}}
                   for i, (span, message) in enumerate(_notes(d), 1)]
        if related:
            result["relatedLocations"] = related
        results.append(result)
    run = {
        "tool": {"driver": {
            "name": "netc",
            "version": __version__,
            "semanticVersion": __version__,
            "rules": [_rule(code) for code in codes],
        }},
        "originalUriBaseIds": {"SRCROOT": {"uri": Path(os.getcwd()).as_uri().rstrip("/") + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    if notices:  # the results left out, counted where SARIF viewers show tool messages
        run["invocations"] = [{"executionSuccessful": True,
                               "toolExecutionNotifications": notices}]
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _rule(code: str) -> dict:
    return {
        "id": code,
        "name": "".join(re.sub(r"[^A-Za-z0-9]", "", w).capitalize()
                        for w in CODES[code].split()),
        "shortDescription": {"text": CODES[code]},
        # netc has no web address of its own: the help points at the docs that ship with it
        "help": {"text": f"Run `netc explain {code}`, or see docs/errors.md#{code.lower()}."},
        "defaultConfiguration": {"level": "warning" if code.startswith("W") else "error"},
    }


def _location(span: Span | None, path: str) -> dict:
    """A SARIF location; a diagnostic without a position is placed at the file's start."""
    artifact = _artifact(span.path if span else path)
    if span is None:
        region = {"startLine": 1, "startColumn": 1}
    else:
        end_line, end_col = _end(span)
        region = {"startLine": span.line, "startColumn": span.col, "endLine": end_line,
                  "endColumn": end_col}
    return {"physicalLocation": {"artifactLocation": artifact, "region": region}}


def _artifact(path: str) -> dict:
    rel = _inside(path)
    if rel is not None:  # (the name's bytes, percent-encoded: a name that is not UTF-8 too)
        return {"uri": quote(os.fsencode(rel)), "uriBaseId": "SRCROOT"}
    return {"uri": Path(os.path.abspath(path)).as_uri()}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"
