"""Diagnostics: user errors with positions, and the line between user errors and netc bugs.

A user mistake is a `Diagnostic` (code, message, position, the numbers, hints). Stages collect
them in a `Diagnostics` list and raise `NetcError` between stages when any is an error, so a
user sees every independent problem of a file in one run. Anything else that escapes is a netc
bug: the CLI reports it differently (exit 70, with a traceback).

Shape rules are pure and know nothing of YAML: they raise `RuleError` naming the attribute or
input at fault, and `check.py` turns it into a positioned `Diagnostic`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .source import Span

# Every code netc emits, with a one-line title. docs/errors.md documents each one, and a test
# fails if a code is emitted that is not listed here.
CODES: dict[str, str] = {
    # reading the file
    "E001": "cannot read the spec file",
    "E002": "file too large",
    "E003": "YAML syntax error",
    "E004": "duplicate key",
    "E005": "nesting too deep",
    "E006": "anchors and aliases are not supported",
    "E007": "YAML tags are not supported",
    "E008": "more than one YAML document",
    "E009": "file is not UTF-8 text",
    "E010": "too many YAML nodes",
    "E011": "keys must be plain strings",
    # the spec's structure
    "E101": "missing required key",
    "E102": "unknown key",
    "E103": "wrong type",
    "E104": "ambiguous YAML 1.1 value",
    "E105": "invalid value",
    "E106": "unsupported format version",
    "E107": "unknown layer type",
    "E108": "malformed layer entry",
    "E109": "invalid name",
    "E110": "duplicate name",
    "E111": "unknown layer or input name",
    "E112": "value out of bounds",
    "E113": "wrong number of inputs",
    "E114": "invalid expression",
    "E115": "a block uses itself",
    "E116": "a block named like a layer type",
    "E117": "preprocessing doesn't fit the input",
    "E118": "labels don't fit the output",
    "E119": "cannot read the labels file",
    # graphs (warnings)
    "W201": "unused layer",
    "W202": "bias before batchnorm",
    "W203": "stride larger than the kernel",
    "W204": "`round: floor` drops rows or columns",
    # shapes
    "E301": "window doesn't fit the input",
    "E302": "filter larger than the padded input",
    "E303": "channels don't divide into groups",
    "E304": "dense layer on a non-flat input",
    "E305": "join of mismatched shapes",
    "E306": "axis out of range",
    "E307": "input has the wrong rank",
    "E308": "tensor too large",
    "E309": "output_padding too large",
    "E310": "resize, crop or pad doesn't fit the input",
    # expectations
    "E401": "parameter count differs from expect",
    "E402": "MAC count differs from expect",
    "E403": "output shapes differ from expect",
    # weights files
    "E501": "weights don't match the spec",
    "E502": "missing tensor",
    "E503": "tensor of the wrong shape",
    "E504": "tensor of an unsupported dtype",
    "E505": "unexpected tensor",
    "E506": "cannot read the weights file",
    "E507": "unsupported weights file format",
    "E508": "values not finite or out of the dtype's range",
    "W501": "missing tensors initialised",
    # running and writing
    "E601": "execution provider unavailable",
    "E602": "bad input data",
    "E603": "cannot write output",
    "E604": "not a valid ONNX model",
    "E605": "cannot read an image",
    "E606": "no preprocessing declared",
    "W601": "an unreadable image skipped",
}


@dataclass(frozen=True)
class Note:
    """A secondary position shown under a diagnostic ("first defined here")."""

    span: Span
    message: str


class Diagnostic:
    """One user-facing problem: where, what, the numbers, and how to fix it.

    `hints` may be given as a function returning them (`hints=lambda: did_you_mean(...)`):
    it is called when they are first read, so that a did-you-mean, whose cost grows with the
    network, is computed only for the diagnostics a run shows (`capped`): 22,000 unknown
    names would otherwise cost 22,000 searches of up to 22,000 names each. Such a function
    must see the state of the moment the diagnostic was made (a count of names, not the
    growing dict itself). (A plain class, not a dataclass: `hints` is not a stored field.)
    Immutable, compared and hashed by all seven attributes."""

    code: str
    message: str
    span: Span | None
    severity: str
    details: tuple[str, ...]
    notes: tuple[Note, ...]

    def __init__(self, code: str, message: str, span: Span | None, severity: str = "error",
                 details=(), hints=(), notes=()) -> None:
        d = self.__dict__
        d["code"], d["message"], d["span"], d["severity"] = code, message, span, severity
        d["details"], d["notes"] = tuple(details), tuple(notes)
        if callable(hints):
            d["_make_hints"] = hints
        else:
            d["hints"] = tuple(hints)

    @functools.cached_property
    def hints(self) -> tuple[str, ...]:
        """The hints, computed now when they were given as a function (then kept)."""
        return tuple(self.__dict__.pop("_make_hints")())

    def __setattr__(self, name, value):
        raise AttributeError(f"a Diagnostic is immutable: can't set {name!r}")

    __delattr__ = __setattr__

    def _key(self) -> tuple:
        return (self.code, self.message, self.span, self.severity, self.details, self.hints,
                self.notes)

    def __eq__(self, other) -> bool:
        return self._key() == other._key() if isinstance(other, Diagnostic) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Diagnostic(" + ", ".join(f"{k}={v!r}" for k, v in zip(
            ("code", "message", "span", "severity", "details", "hints", "notes"), self._key())) + ")"

    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.path, self.span.line, self.span.col, self.code)

    def render(self) -> str:
        """The text form: `path:line:col: error[E301]: message`, source line, caret, hints.
        Control characters from the file (in a key, a name, a path) are shown escaped, so
        that each diagnostic keeps its one first line and a spec can't steer the terminal."""
        head = f"{self.severity}[{self.code}]: {self.message}"
        out = [_visible(f"{self.span}: {head}" if self.span else f"netc: {head}")]
        if self.span is not None:
            out += _excerpt(self.span)
        out += [_visible(f"  {d}", keep="\n") for d in self.details]
        out += [_visible(f"  hint: {h}", keep="\n") for h in self.hints]
        for note in self.notes:
            out.append(_visible(f"  {note.span}: note: {note.message}"))
            out += _excerpt(note.span)
        origin = self.span.origin if self.span else None
        while origin is not None:
            out.append(_visible(f"  {origin}: note: in the block used here"))
            out += _excerpt(origin)
            origin = origin.origin
        return "\n".join(out)

    def to_dict(self) -> dict:
        """The JSON form (one object per diagnostic)."""
        span = self.span
        return {
            "file": span.path if span else None,
            "line": span.line if span else None,
            "col": span.col if span else None,
            "end_line": span.end_line if span else None,
            "end_col": span.end_col if span else None,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "details": list(self.details),
            "hints": list(self.hints),
            "notes": [
                {"file": n.span.path, "line": n.span.line, "col": n.span.col, "message": n.message}
                for n in self.notes
            ],
        }


# what would break a diagnostic's lines, or let a file's text steer the terminal (escape
# sequences) or reorder what is shown (bidirectional controls)
_HIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                     "\u202a-\u202e\u2066-\u2069]")


def _visible(text: str, keep: str = "") -> str:
    """`text` with those characters escaped (`\\n`, `\\x1b`, `\\u202e`), but those in `keep`."""
    def escape(m):
        c = m.group()
        if c in keep:
            return c
        return repr(c)[1:-1] if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _HIDDEN.sub(escape, text)


def _excerpt(span: Span) -> list[str]:
    """The source line of `span` and a caret line under it (hidden characters shown as
    U+FFFD, one column each, so that the caret stays under the right one)."""
    text = span.source.line(span.line)
    if not text.strip():
        return []
    shown = _HIDDEN.sub("\ufffd", text.expandtabs(1))
    col = span.col
    width = 1
    if span.end_line == span.line and span.end_col > span.col:
        width = span.end_col - span.col
    if len(shown) > _MAX_SHOWN:  # a window around the column, so a huge line stays readable
        start = max(0, col - 1 - _MAX_SHOWN // 2)
        shown = ("..." if start else "") + shown[start : start + _MAX_SHOWN] + "..."
        col = col - start + (3 if start else 0)
    width = max(1, min(width, len(shown) - col + 1, _MAX_SHOWN))
    return [f"    {shown}", "    " + " " * (col - 1) + "^" * width]


_MAX_SHOWN = 100


class Diagnostics:
    """An ordered collection of diagnostics from one or more stages."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._seen: set = set()

    def add(self, diag: Diagnostic) -> None:
        if diag.code not in CODES:  # a netc bug, caught by the tests
            raise AssertionError(f"undocumented diagnostic code {diag.code}")
        # a mistake inside a block is met once per use of the block: report it once
        key = (diag.code, diag.severity, diag.span.path, diag.span.line, diag.span.col) \
            if diag.span is not None else (diag.code, diag.message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.items.append(diag)

    def error(self, code: str, message: str, span: Span | None, **kw) -> None:
        self.add(Diagnostic(code, message, span, "error", **_tuples(kw)))

    def warning(self, code: str, message: str, span: Span | None, **kw) -> None:
        self.add(Diagnostic(code, message, span, "warning", **_tuples(kw)))

    def extend(self, other: Diagnostics) -> None:
        for d in other.items:
            self.add(d)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=Diagnostic.sort_key)

    def raise_if_errors(self) -> None:
        """Stop between stages: later stages would only report follow-on errors."""
        if self.has_errors():
            raise NetcError(self)

    def render(self) -> str:
        """The text form, sorted; past the caps (`capped`), a line per code left out."""
        shown, left = capped(self.sorted())
        return "\n".join([d.render() for d in shown] + omitted_lines(shown, left))

    def to_json(self) -> str:
        """The JSON form: the diagnostics `render` shows (`capped`)."""
        import json  # (here: most runs never write JSON, and every run imports this module)

        return json.dumps([d.to_dict() for d in capped(self.sorted())[0]], indent=2)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


# A run shows at most this many diagnostics of one code about one file, and this many about
# one file in all, then one line for each code left out ("... and 199,950 more E505 errors
# like these"): a weights file of 200,000 misnamed tensors would otherwise print 34 MB. Every
# format shows the same ones (`netc check --format`); the counts in its summaries stay true.
SHOW_PER_CODE = 50
SHOW_PER_FILE = 200


def capped(items: list[Diagnostic]) -> tuple[list[Diagnostic], dict[tuple, int]]:
    """Of `items` (in the order they are shown), those shown: at most SHOW_PER_CODE of one
    code and SHOW_PER_FILE in all about one file (a position's path; diagnostics without a
    position count as one more file); and how many were left out, by (file or None, code,
    severity), in the order first met. One pass: linear in the number of diagnostics."""
    shown: list[Diagnostic] = []
    per_code: dict[tuple, int] = {}
    per_file: dict[str | None, int] = {}
    left: dict[tuple, int] = {}
    for d in items:
        path = d.span.path if d.span is not None else None
        key = (path, d.code)
        if per_code.get(key, 0) < SHOW_PER_CODE and per_file.get(path, 0) < SHOW_PER_FILE:
            shown.append(d)
            per_code[key] = per_code.get(key, 0) + 1
            per_file[path] = per_file.get(path, 0) + 1
        else:
            what = (path, d.code, d.severity)
            left[what] = left.get(what, 0) + 1
    return shown, left


def omitted(path: str | None, code: str, severity: str, count: int, like: bool) -> str:
    """What a line says for `count` diagnostics of `code` left out about file `path`: `... and
    199,950 more E505 errors like these` (`like`: some of that code were shown)."""
    noun = severity + "s" * (count != 1)
    where = f" in '{path}'" if path is not None else ""
    tail = " like these" if like else f" ({CODES.get(code, code)})"
    return f"... and {count:,} more {code} {noun}{tail}{where}"


def omitted_lines(shown: list[Diagnostic], left: dict[tuple, int]) -> list[str]:
    """The text lines for the diagnostics `capped` left out, one per file and code."""
    seen = {(d.span.path if d.span is not None else None, d.code) for d in shown}
    return [_visible("netc: " + omitted(path, code, severity, n, (path, code) in seen))
            for (path, code, severity), n in left.items()]


def _tuples(kw: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}


class NetcError(Exception):
    """User errors: carries the diagnostics; the CLI prints them and exits 1."""

    def __init__(self, diagnostics: Diagnostics | Diagnostic) -> None:
        if isinstance(diagnostics, Diagnostic):
            one = Diagnostics()
            one.add(diagnostics)
            diagnostics = one
        self.diagnostics = diagnostics
        super().__init__(diagnostics.render())


def fail(code: str, message: str, span: Span | None, **kw) -> NetcError:
    """A NetcError holding one error diagnostic (for `raise fail(...)`)."""
    diags = Diagnostics()
    diags.error(code, message, span, **kw)
    return NetcError(diags)


@dataclass
class RuleError(Exception):
    """Raised by a pure shape/attribute rule. `attr` or `input` says what is at fault;
    check.py attaches the position."""

    message: str
    code: str = "E105"
    attr: str | None = None
    input: int | None = None
    details: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)


@dataclass(frozen=True)
class Lint:
    """A warning from a pure rule about a valid layer (W2xx), as a layer class's `lints`
    returns it: the whole message, and `attr`, the attribute whose position check.py
    attaches (the layer's own position when the attribute was not written)."""

    code: str
    message: str
    attr: str | None = None
    details: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()


def a(phrase: str) -> str:
    """`phrase` with its indefinite article, by sound: "an add", "an 8x8", "an 11x11", "a
    uint8", "a 3x3" (numbers: "an" before eight..., eleven..., eighteen...)."""
    import re

    digits = re.match(r"[\d,]+", phrase)
    if digits:
        number = digits.group().replace(",", "")
        lead = number[: len(number) % 3 or 3] if number else ""
        vowel = lead.startswith("8") or lead in ("11", "18")
    else:
        word = phrase.lower()
        vowel = word[:1] in tuple("aeio") or (word[:1] == "u" and not word.startswith(
            ("uint", "uni", "use", "usu", "utf")))
    return f"{'an' if vowel else 'a'} {phrase}"


def counted(n, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, singular for one: "1 input channel", "3 input channels"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def closest(word: str, choices, cutoff: float = 0.6) -> str | None:
    """The one choice a misspelled `word` most likely stands for, if any is close."""
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, choices, cutoff: float = 0.6) -> list[str]:
    """Hints for a misspelled name: at most one close match, as `did you mean 'x'?`."""
    close = closest(word, choices, cutoff)
    return [f"did you mean '{close}'?"] if close else []


# PyTorch arguments that netc reads from the input instead (a layer type's own names for
# its attributes in other libraries are its `foreign_attributes`: see did_you_mean_attribute)
_INFERRED = {"in_channels": "the input channels", "in_features": "the input features",
             "num_features": "the channels", "num_channels": "the channels",
             "normalized_shape": "the normalised shape"}


def _foreign(word: str, names, foreign) -> tuple[str, str] | None:
    """(netc's attribute, a note) for another library's attribute name `word`, from a layer
    type's `foreign_attributes` (`{"padding": "pad"}`, or a (name, note) pair where the
    values are written differently), when the type has that attribute; else None."""
    meant = (foreign or {}).get(word)
    if meant is None:
        return None
    name, note = (meant, "") if isinstance(meant, str) else meant
    return (name, note) if name in names else None


def closest_attribute(word: str, names, foreign=None) -> str | None:
    """The attribute of `names` that an unknown attribute `word` stands for: netc's name for
    another library's (`foreign`, the layer type's `foreign_attributes`), else the closest
    spelling."""
    found = _foreign(word, names, foreign)
    return found[0] if found else closest(word, names)


def did_you_mean_attribute(word: str, names, foreign=None) -> list[str]:
    """Hints for an unknown attribute (E102): `did you mean 'pad'? (netc's name for
    `padding`)` for another library's name (`foreign`: the layer type's
    `foreign_attributes`), offered before any spelling match (PyTorch's `padding` is a
    convtranspose's `pad`, where difflib would offer `output_padding`, a silently different
    model); what netc takes from the input instead (`in_channels`); else `did you mean 'x'?`
    for a misspelt name."""
    found = _foreign(word, names, foreign)
    if found:
        name, note = found
        return [f"did you mean '{name}'? (netc's name for `{word}`"
                + (f"; {note})" if note else ")")]
    if word in _INFERRED:
        return [f"netc takes {_INFERRED[word]} from the input's shape: remove `{word}`"]
    if word == "inplace":
        return ["netc has no in-place layers: remove `inplace`"]
    return did_you_mean(word, names)



# What tells a misspelt layer type from another function. Activations are named densely: a
# letter apart, `elu`, `relu`, `gelu`, `selu`, `silu` and `prelu` are six functions, and a digit
# apart, `relu` and `relu6` two; a hint offering one for the other would change what the
# network computes. So a type is offered for an unknown word only when they differ by slips of
# the hand (`typo_cost`): letters swapped, doubled, struck for a neighbouring key, or, in longer
# names, left out or added; never in the first letter, a digit, or a whole part (`hard`, `6`).

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    keys = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    return {c: "".join(d for d, (r2, i2) in keys.items()
                       if d != c and abs(r2 - r) <= 1 and abs(i2 - i) <= 1)
            for c, (r, i) in keys.items()}


_NEIGHBOURS = _neighbours()
_SHORT = 5  # names of up to 5 letters allow one slip; longer names two
_FAR = 2  # the cost of an edit that is not a slip of the hand in a longer name


def _plain(name: str) -> str:
    """A type name as compared: lower case, without `_`, `-` and spaces, and without PyTorch's
    `2d` suffix (`Conv2d` is netc's `conv`, `hard_sigmoid` its `hardsigmoid`)."""
    word = "".join(c for c in name.lower() if c not in "_- ")
    return word[:-2] if word.endswith("2d") and len(word) > 2 else word


def typo_cost(a: str, b: str) -> float:
    """How many slips of the hand turn `a` into `b` (letters only; inf: none do). A slip costs
    1: two neighbouring letters swapped, a doubled letter added or dropped, a letter struck
    for its neighbour on the keyboard. Other edits cost 2 (inf in a name of up to 5 letters,
    where they make another word: `glu`, `gelu`, `selu`, `silu`). The first letter never
    changes, nor is it doubled (`elu`, `relu`, `prelu`, `rrelu`). Past two slips the count
    stops: names whose lengths differ by more are inf apart (and a huge word costs no time)."""
    inf = float("inf")
    if abs(len(a) - len(b)) > 2:
        return inf
    short = min(len(a), len(b)) <= _SHORT
    far = inf if short else _FAR
    n, m = len(a), len(b)
    d = [[inf] * (m + 1) for _ in range(n + 1)]
    d[0][0] = 0
    for i in range(n + 1):
        for j in range(m + 1):
            here = d[i][j]
            if i < n and j < m:
                if a[i] == b[j]:
                    cost = 0
                elif i == 0 or j == 0:
                    cost = inf
                else:
                    cost = 1 if b[j] in _NEIGHBOURS.get(a[i], "") else far
                d[i + 1][j + 1] = min(d[i + 1][j + 1], here + cost)
                if i + 1 < n and j + 1 < m and a[i] == b[j + 1] and a[i + 1] == b[j] \
                        and a[i] != a[i + 1] and i > 0:
                    d[i + 2][j + 2] = min(d[i + 2][j + 2], here + 1)
            if i < n and i > 0:  # a[i] left out of b
                doubled = (i > 1 and a[i] == a[i - 1]) or (i + 1 < n and a[i] == a[i + 1])
                d[i + 1][j] = min(d[i + 1][j], here + (1 if doubled else far if j > 0 else inf))
            if j < m and j > 0:  # b[j] added
                doubled = (j > 1 and b[j] == b[j - 1]) or (j + 1 < m and b[j] == b[j + 1])
                d[i][j + 1] = min(d[i][j + 1], here + (1 if doubled else far if i > 0 else inf))
    return d[n][m]


def different_function(word: str, candidate: str) -> bool:
    """Whether layer type `candidate` computes another function than the one an unknown type
    `word` misspells, so that offering it would change the network rather than fix a typo:
    they differ in their digits (`relu6`, `relu`, `relu8`), or one is the other with a part
    added at its start or end (`hardsigmoid` and `sigmoid`, `swish` and `hardswish`), or
    more than one slip of the hand apart (two in names longer than 5 letters: `typo_cost`)."""
    a, b = _plain(word), _plain(candidate)
    if a == b:
        return False
    if [c for c in a if c.isdigit()] != [c for c in b if c.isdigit()]:
        return True
    a, b = "".join(c for c in a if not c.isdigit()), "".join(c for c in b if not c.isdigit())
    short, long = sorted((a, b), key=len)
    if len(long) - len(short) >= 2 and (long.startswith(short) or long.endswith(short)):
        return True
    return typo_cost(a, b) > (1 if min(len(a), len(b)) <= _SHORT else 2)


def closest_type(word: str, kinds) -> str | None:
    """The layer type that an unknown type `word` misspells, if any: of `kinds` not computing
    another function (`different_function`), the fewest slips away (then the most alike)."""
    import difflib

    kinds = sorted(kinds)
    if not kinds or len(word) > 2 * max(len(k) for k in kinds) + 8:
        return None  # too long to be a slip of the hand (and not worth comparing)
    fits = [k for k in kinds if not different_function(word, k)]
    if not fits:
        return None
    plain = _plain(word)

    def rank(kind):
        letters = [c for c in plain if not c.isdigit()], [c for c in _plain(kind)
                                                          if not c.isdigit()]
        return (typo_cost("".join(letters[0]), "".join(letters[1])),
                -difflib.SequenceMatcher(None, plain, _plain(kind)).ratio())

    return min(fits, key=rank)


def layer_name_hints(name: str, names: list[str]) -> list[str]:
    """Hints for a layer name that is none of `names` (full names): the layers inside it when
    it names a block instance (`layer1`), else the nearest name, else the layers whose last
    part it is (`conv1` for `layer1.0.conv1`)."""
    inside = [n for n in names if n.startswith(name + ".")]
    if inside:
        shown = ", ".join(inside[:5]) + (", ..." if len(inside) > 5 else "")
        return [f"'{name}' is not one layer; layers inside it: {shown}"]
    near = closest(name, names)
    if near:
        return [f"did you mean '{near}'?"]
    tail = [n for n in names if n.endswith("." + name)]
    if tail:
        shown = ", ".join(tail[:5]) + (", ..." if len(tail) > 5 else "")
        return [f"layers named like it: {shown}"]
    return []


def foreign_type(word: str, registry) -> str | None:
    """The layer type that another library calls `word` (`deconv`, `Conv2DTranspose`): the
    one of `registry` (kind -> class) whose class lists it in its `foreign_names`, compared
    as `_plain` writes them; or None."""
    plain = _plain(word)
    for kind, cls in registry.items():
        if plain in [_plain(name) for name in getattr(cls, "foreign_names", ())]:
            return kind
    return None


def did_you_mean_type(word: str, kinds) -> list[str]:
    """Hints for an unknown layer type (E107): netc's name for another library's, when
    `kinds` is the registry (kind -> class: `foreign_type`), else `did you mean 'x'?` for a
    misspelt type, never offering a type that computes another function. A module path
    before the name is dropped (`nn.Conv2d`, `layers.Conv2DTranspose`)."""
    name = word.rsplit(".", 1)[-1]
    foreign = foreign_type(name, kinds) if isinstance(kinds, Mapping) else None
    if foreign is not None:
        return [f"did you mean '{foreign}'? (netc's name for {word})"]
    close = closest_type(name, kinds) if name else None
    return [f"did you mean '{close}'?"] if close else []
