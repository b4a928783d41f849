"""Safe YAML -> a plain tree (maps, lists, scalars) with a Span on every key and value.

netc builds the tree itself from PyYAML's *event* stream instead of calling a constructor, so
that it decides every rule that matters for files written by strangers (reliability.md):

- no tags (`!!python/object/apply` and friends), no anchors or aliases (billion laughs,
  recursive aliases), one document per file;
- duplicate keys are errors that point at both occurrences (PyYAML keeps the last silently);
- limits on file size, nesting depth and node count, checked while reading, before any deep
  recursion (PyYAML's own composer recurses and fails near 490 levels);
- scalars are read with YAML 1.2 core rules (`1e-3` is a float), and a plain scalar that a
  YAML 1.1 reader would take differently (`no` is false, `010` is 8, `1:30` is 90) is an error
  asking the author to say what they mean.
"""

from __future__ import annotations

import math
import re
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import Diagnostics, NetcError, Note, fail
from .limits import DEFAULT, Limits
from .source import SourceFile, Span, file_span

# The default limits (a run's own are in the `Limits` it passes; docs/robustness.md)
MAX_BYTES = DEFAULT.bytes
MAX_DEPTH = DEFAULT.depth
MAX_NODES = DEFAULT.nodes


@dataclass
class YScalar:
    """A scalar: `value` is None, bool, int, float or str; `quoted` if written in quotes."""

    value: object
    span: Span
    quoted: bool = False


@dataclass
class YList:
    items: list = field(default_factory=list)
    span: Span | None = None


@dataclass
class YMap:
    """A mapping with string keys, in file order. `keys` holds each key's scalar (for spans)."""

    entries: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)
    span: Span | None = None

    def get(self, key: str):
        return self.entries.get(key)

    def key_span(self, key: str) -> Span:
        return self.keys[key].span

    def items(self):
        return self.entries.items()

    def __contains__(self, key: str) -> bool:
        return key in self.entries


YNode = YScalar | YList | YMap


def kind_name(node) -> str:
    """How a node is described in type errors: 'a list', 'the string "x"', 'true'..."""
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YList):
        return "a list"
    v = node.value
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return "the boolean " + ("true" if v else "false")
    if isinstance(v, int):
        return f"the integer {v}"
    if isinstance(v, float):
        return f"the number {v!r}"  # 224.0, not 224: the type is the point
    return f"the string {v!r}"


def load_file(path: str | Path, limits: Limits = DEFAULT) -> tuple[SourceFile, YNode | None]:
    """Read and parse a spec file: its text and its tree (None for an empty document), every
    node with its Span. Raises NetcError: E001 (unreadable), E002 (over `limits.bytes`), E009
    (not UTF-8), E003-E011 (YAML that a spec may not hold, over `limits.depth` or
    `limits.nodes`)."""
    import os

    from .files import note_input

    path = str(path)
    try:
        with open_regular(path, "E001") as f:  # (a FIFO or /dev/zero: refused, never read)
            note_input(path, "the spec", os.fstat(f.fileno()))  # no output may replace it
            data = read_at_most(f, limits.bytes + 1)
    except OSError as e:
        raise fail("E001", f"cannot read '{path}': {e.strerror or e}", None) from None
    return load_bytes(data, path, limits)


# --- files given on the command line: regular files only ---------------------------------------

_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"))


def not_regular(mode: int) -> str | None:
    """What a file of `mode` (st_mode) is when it is not a regular file: "a folder", "a FIFO
    (named pipe)", "a socket", "a character device" (/dev/zero, /dev/stdin on a terminal), "a
    block device"; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _NOT_REGULAR if test(mode)), "not a regular file")


def unreadable(path: str, error: OSError | None = None) -> str:
    """Why `path` cannot be read, for a message: that it is not a regular file (what it is),
    a dangling or looping symbolic link, or the system's reason (`error`, or found by stat)."""
    import errno
    import os

    try:
        st = os.stat(path)
    except OSError as e:
        error = e
    except ValueError:  # a NUL in the path
        return "the path holds a NUL"
    else:
        kind = not_regular(st.st_mode)
        if kind is not None:
            return f"it is {kind}, not a regular file"
    if error is None:
        return "it cannot be read"
    if error.errno == errno.ENOENT and os.path.islink(path):
        try:
            return f"it is a symbolic link to '{os.readlink(path)}', which does not exist"
        except OSError:
            pass
    if error.errno == errno.ELOOP:
        return "its symbolic links form a loop"
    return error.strerror or str(error)


def _refused(path: str, code: str, what: str, reason: str) -> NetcError:
    return fail(code, f"cannot read {what}'{path}': {reason}", None)


def _stat_regular(path: str, code: str, what: str):
    """os.stat(path), when it is a regular file; NetcError `code` saying what it is else."""
    import os

    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise _refused(path, code, what, unreadable(path, e) if isinstance(e, OSError) else
                       "the path holds a NUL") from None
    if not_regular(st.st_mode) is not None:
        raise _refused(path, code, what, unreadable(path))
    return st


def regular_file(path: str, code: str, what: str = ""):
    """The stat of `path` (links followed) if it is a regular file that can be read; else
    NetcError `code`: "cannot read {what}'path': it is a FIFO (named pipe), not a regular
    file" (a folder, a socket, a device), "no such file", a dangling link, a loop of links,
    no permission, or a "regular" file whose read would wait (/proc/kmsg). Never blocks: for
    the readers that open a path themselves (numpy, Pillow, onnx, safetensors), before they
    do. It opens the file without blocking and reads a byte to know."""
    st = _stat_regular(path, code, what)
    try:
        with open_regular(path, code, what) as f:
            read_at_most(f, 1)
    except OSError as e:
        raise _refused(path, code, what, e.strerror or str(e)) from None
    return st


def open_regular(path: str, code: str = "E001", what: str = ""):
    """`path` opened for reading in binary, when it is a regular file (a symbolic link to one
    is followed). Anything else is NetcError `code` (see `regular_file`) and is never read: a
    FIFO would block netc forever, /dev/zero would never end. The file is opened without
    blocking (O_NONBLOCK: opening a FIFO with no writer would block) and checked on the
    descriptor, so a path swapped for a FIFO after a check is refused too; it stays so, as
    the few "regular" files that stream (/proc/kmsg) would block a read: `read_at_most` says
    so instead. Other failures (permissions) are OSError, for the caller's own message."""
    import os

    _stat_regular(path, code, what)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = not_regular(os.fstat(fd).st_mode)
        if kind is not None:
            raise _refused(path, code, what, f"it is {kind}, not a regular file")
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def read_at_most(f, n: int) -> bytes:
    """At most `n` bytes of file `f` (opened by `open_regular`), read a mebibyte at a time: a
    large `n` (a raised limit) allocates what the file holds, not `n` (`f.read(n)` would
    allocate n bytes at once). OSError (EAGAIN) for a file whose read would wait for data
    (a /proc file that streams): no ordinary file does."""
    import errno

    chunks, left = [], n
    while left > 0:
        try:
            chunk = f.read(min(left, 1 << 20))
        except BlockingIOError:
            chunk = None
        if chunk is None:  # (a non-blocking read with nothing to give)
            raise OSError(errno.EAGAIN, "reading it would wait for data that may never come: "
                          "it is not an ordinary file")
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def load_bytes(data: bytes, path: str = "<spec>",
               limits: Limits = DEFAULT) -> tuple[SourceFile, YNode | None]:
    """Decode and parse spec bytes (the file's contents); errors as for `load_file`."""
    if len(data) > limits.bytes:
        src = SourceFile(path, "")
        raise fail(
            "E002", f"the file is larger than {_size(limits.bytes)}", file_span(src),
            hints=["a spec is a short text file; is this the right file? (if it is meant to "
                   "be this large, raise the limit: --limit bytes=N)"],
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        good = data[: e.start].decode("utf-8")
        line, col = position(good, len(good))
        src = SourceFile(path, data.decode("utf-8", "replace"))
        raise fail(
            "E009", f"byte 0x{data[e.start]:02x} is not valid UTF-8",
            Span(src, line, col, line, col + 1), hints=["save the file as UTF-8"],
        ) from None
    if text.startswith("\ufeff"):  # a byte-order mark is harmless: drop it
        text = text[1:]
    source = SourceFile(path, text)
    return source, parse(source, limits)


def _size(n: int) -> str:
    """1024 KiB, or 1,500 bytes: a limit on the file's size as the user would write it."""
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n:,} bytes"


def position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of `text[offset]`, lines counted as SourceFile.line (and
    YAML) count them: `\\r` and `\\r\\n` end a line too, not only `\\n`."""
    lines = (text[:offset] + "x").splitlines()
    return len(lines), len(lines[-1])


def parse(source: SourceFile, limits: Limits = DEFAULT) -> YNode | None:
    """Parse `source.text` into a tree. Returns None for an empty document."""
    return _Builder(source, limits).build()


def _syntax_hints(source: SourceFile, span: Span, message: str) -> list[str]:
    """A fix for the YAML mistakes people make in specs."""
    above = source.line(span.line - 1).strip()
    if "mapping values are not allowed" in message and re.fullmatch(r"- [A-Za-z_]\w*", above):
        return [f"to give a bare layer more keys, end its type with a colon: `{above}:`"]
    if "found character '\\t'" in message or "\t" in source.line(span.line):
        return ["YAML indents with spaces, not tabs"]
    return []


def _syntax_notes(builder, e, mark) -> list[Note]:
    """Where the construct a syntax error is in began (an unclosed `{` is reported at the end
    of the file, far from the brace)."""
    start, context = getattr(e, "context_mark", None), getattr(e, "context", None) or ""
    what = re.sub(r"^while (parsing|scanning) ", "", context)
    if start is None or mark is None or start.line == mark.line or not what.startswith("a"):
        return []
    return [Note(builder.span(start, start), f"in {what}, which starts here")]


# --- scalar resolution -------------------------------------------------------------------

_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?=[eE]))([eE][-+]?[0-9]+)?\Z")
_SPECIAL = {
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
}
_YAML11 = yaml.resolver.Resolver()
_TAG_KIND = {
    "tag:yaml.org,2002:null": "null", "tag:yaml.org,2002:bool": "bool",
    "tag:yaml.org,2002:int": "int", "tag:yaml.org,2002:float": "float",
    "tag:yaml.org,2002:str": "str", "tag:yaml.org,2002:timestamp": "timestamp",
}


def resolve_plain(text: str) -> tuple[object, str]:
    """YAML 1.2 core-schema value of a plain scalar, and its kind name."""
    if text in _NULLS:
        return None, "null"
    if text in _BOOLS:
        return _BOOLS[text], "bool"
    if _INT.match(text):
        return int(text), "int"
    if text in _SPECIAL:
        return _SPECIAL[text], "float"
    if _FLOAT.match(text) and not re.match(r"[-+]?0[0-9]", text.split(".")[0]):
        return float(text), "float"
    return text, "str"


@lru_cache(maxsize=4096)
def _plain(text: str) -> tuple[object, str | None]:
    """A plain scalar's value and its YAML 1.1 trap (specs repeat the same few words and
    numbers: each is resolved once)."""
    value, kind = resolve_plain(text)
    return value, yaml11_trap(text, kind)


def yaml11_trap(text: str, kind: str) -> str | None:
    """If a YAML 1.1 reader (PyYAML, many tools) reads this plain scalar differently, say how."""
    tag = _YAML11.resolve(yaml.ScalarNode, text, (True, False))
    other = _TAG_KIND.get(tag, "str")
    if other == kind or (kind == "float" and other == "str"):  # `1e-3` is a float here
        return None
    if other == "bool":
        return f"YAML 1.1 reads `{text}` as a boolean; write true or false, or quote it as a string"
    if other == "int" and re.match(r"[-+]?0[0-7]+\Z", text):
        return f"YAML 1.1 reads `{text}` as the octal number {int(text, 8)}; drop the leading zero"
    if other == "int" or other == "float":
        return f"YAML 1.1 reads `{text}` as a number; write a plain decimal number, or quote it"
    if other == "timestamp":
        return f"YAML 1.1 reads `{text}` as a date; quote it if you mean a string"
    return f"YAML 1.1 reads `{text}` as {other}; quote it or write it plainly"


# --- the builder ---------------------------------------------------------------------------


def _parser(text: str):
    """PyYAML's event parser; the C one (libyaml) when present, as it is several times faster."""
    loader = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    return yaml.parse(text, Loader=loader)


# YAML 1.1's printable characters (what PyYAML's reader accepts): tab, newlines, printable
# ASCII, NEL and everything else but the C1 controls, surrogates and U+FFFE/U+FFFF (compiled
# when a file has such a character: the class takes longer to compile than a spec to load)
_FORBIDDEN = "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


class _Frame:
    __slots__ = ("node", "key", "start")

    def __init__(self, node, start):
        self.node = node
        self.key = None
        self.start = start


class _Builder:
    def __init__(self, source: SourceFile, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self.diags = Diagnostics()

    def span(self, start, end) -> Span:
        return Span(self.source, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def build(self) -> YNode | None:
        try:
            root = self._events()
        except yaml.reader.ReaderError as e:  # a character YAML forbids (NUL, other controls)
            char = e.character if isinstance(e.character, int) else ord(e.character or "\0")
            self.diags.error("E003", f"YAML syntax error: the character U+{char:04X} is not "
                             "allowed in a YAML file", self._forbidden_character(),
                             hints=["remove it: YAML files hold printable text, tabs and "
                                    "newlines only"])
            raise NetcError(self.diags) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            span = self.span(mark, mark) if mark is not None else file_span(self.source)
            problem = getattr(e, "problem", None) or str(e)
            context = getattr(e, "context", None)
            message = f"{problem}" + (f" ({context})" if context else "")
            if "nesting depth" in message:  # libyaml's own limit (deeper than ours)
                self.diags.error("E005", f"the file is nested more than {self.limits.depth} levels deep", span)
            else:
                self.diags.error("E003", f"YAML syntax error: {message}", span,
                                 hints=_syntax_hints(self.source, span, message),
                                 notes=_syntax_notes(self, e, mark))
            raise NetcError(self.diags) from None
        self.diags.raise_if_errors()
        return root

    def _forbidden_character(self) -> Span:
        """Where the first character outside YAML's printable set is (the reader reports a
        byte offset only)."""
        m = re.search(_FORBIDDEN, self.source.text)
        if m is None:
            return file_span(self.source)
        line, col = position(self.source.text, m.start())
        return Span(self.source, line, col, line, col + 1)

    def _stop(self, code, message, start, end, **kw):
        self.diags.error(code, message, self.span(start, end), **kw)
        raise NetcError(self.diags)

    def _events(self):
        stack: list[_Frame] = []
        root = None
        nodes = 0
        documents = 0
        scalar_event, end_events = yaml.ScalarEvent, (yaml.MappingEndEvent, yaml.SequenceEndEvent)
        for ev in _parser(self.source.text):
            kind = type(ev)  # (the events by frequency: scalars, ends, starts, the rest)
            if kind is not scalar_event:
                if kind in end_events:
                    frame = stack.pop()
                    frame.node.span = self.span(frame.start, ev.end_mark)
                    # (a key without a value: cannot happen in valid YAML)
                    if isinstance(frame.node, YMap) and frame.key is not None:
                        self._stop("E003", "YAML syntax error: a key without a value",
                                   ev.start_mark, ev.end_mark)
                    continue
                if kind is yaml.DocumentStartEvent:
                    documents += 1
                    if documents > 1:
                        self._stop("E008", "a spec file holds one YAML document; found a second",
                                   ev.start_mark, ev.end_mark,
                                   hints=["remove the `---` line, or split the file in two"])
                    continue
                if kind in (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent):
                    continue
                if kind is yaml.AliasEvent:
                    self._stop("E006", f"aliases (*{ev.anchor}) are not supported in specs",
                               ev.start_mark, ev.end_mark, hints=[
                                   "use `defaults:` or a block to share settings between layers"])
            # a node: scalar, mapping start or sequence start
            nodes += 1
            if nodes > self.limits.nodes:
                self._stop("E010", f"the file has more than {self.limits.nodes:,} YAML nodes",
                           ev.start_mark, ev.end_mark,
                           hints=["if the spec is meant to be this large, raise the limit: "
                                  "--limit nodes=N"])
            if ev.anchor:
                self._stop("E006", f"anchors (&{ev.anchor}) are not supported in specs",
                           ev.start_mark, ev.end_mark,
                           hints=["use `defaults:` or a block to share settings between layers"])
            if ev.tag is not None:
                self._stop("E007", f"YAML tags ({ev.tag}) are not supported in specs",
                           ev.start_mark, ev.end_mark,
                           hints=["netc reads plain maps, lists, numbers and strings only"])
            if kind is scalar_event:
                node = self._scalar(ev)
            elif kind is yaml.MappingStartEvent:
                node = YMap()
            else:
                node = YList()
            if not stack:
                root = node
            else:
                self._attach(stack[-1], node, ev)
            if kind is not scalar_event:
                if len(stack) >= self.limits.depth:
                    self._stop("E005", f"the file is nested more than {self.limits.depth} levels deep",
                               ev.start_mark, ev.end_mark)
                stack.append(_Frame(node, ev.start_mark))
        return root

    def _scalar(self, ev) -> YScalar:
        span = self.span(ev.start_mark, ev.end_mark)
        if ev.style not in (None, ""):  # quoted or block scalar: always a string
            return YScalar(ev.value, span, quoted=True)
        if len(ev.value) > 100 and _INT.match(ev.value):  # int() refuses past 4,300 digits
            self.diags.error("E112", f"a number with {len(ev.value.lstrip('+-')):,} digits is "
                             "out of bounds", span)
            return YScalar(ev.value, span)  # the loader stops after reading: no one sees it
        value, trap = _plain(ev.value)
        if trap:
            self.diags.error("E104", f"`{ev.value}` means different things in YAML 1.1 and 1.2",
                             span, hints=[trap])
        return YScalar(value, span)

    def _attach(self, frame: _Frame, node, ev) -> None:
        parent = frame.node
        if isinstance(parent, YList):
            parent.items.append(node)
            return
        if frame.key is None:  # this node is a key
            if not isinstance(node, YScalar):
                self._stop("E011", "a key must be a plain string, not a list or mapping",
                           ev.start_mark, ev.end_mark)
            if node.value == "<<" and not node.quoted:
                self._stop("E006", "merge keys (<<) are not supported in specs",
                           ev.start_mark, ev.end_mark,
                           hints=["use `defaults:` or a block to share settings between layers"])
            if not isinstance(node.value, str):
                self.diags.error("E011", f"a key must be a string, not {kind_name(node)}",
                                 node.span, hints=["quote the key"])
                node = YScalar(str(node.value), node.span, quoted=True)
            frame.key = node
            return
        key, frame.key = frame.key, None
        if key.value in parent.entries:
            self.diags.error(
                "E004", f"duplicate key '{key.value}'", key.span,
                notes=[Note(parent.keys[key.value].span, "first defined here")],
                hints=["YAML keeps only one of them; remove or rename the other"],
            )
            return
        parent.entries[key.value] = node
        parent.keys[key.value] = key
