"""Source files and positions.

Every key and value that netc reads from a spec carries a `Span`, so that any later stage can
point back at the text that caused a problem (the way chibicc keeps a token on every node).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceFile:
    """A spec file as text. `lines` is used to print the offending line under an error."""

    path: str
    text: str = field(repr=False)

    def line(self, number: int) -> str:
        """The 1-based line `number`, without its newline ('' past the end)."""
        lines = self.text.splitlines()
        if 1 <= number <= len(lines):
            return lines[number - 1]
        return ""


@dataclass(frozen=True, init=False)
class Span:
    """A range of text: 1-based line and column of the first character, and of the end.

    `origin` is the span of the use site when this span lies inside an expanded block (a
    chain, like chibicc's Token.origin), so errors can point at both places.
    """

    source: SourceFile = field(repr=False, compare=False)
    line: int
    col: int
    end_line: int
    end_col: int
    origin: Span | None = field(default=None, compare=False)

    # init=False: written out, as dataclasses' frozen __init__ (a call to object.__setattr__
    # per field) takes 2-4 times longer, and netc makes tens of thousands of these per spec.
    # tests/test_architecture.py checks that it takes the fields, in order, with their defaults.
    def __init__(self, source: SourceFile, line: int, col: int, end_line: int, end_col: int,
                 origin: Span | None = None) -> None:
        d = self.__dict__
        d["source"], d["line"], d["col"], d["end_line"], d["end_col"], d["origin"] = \
            source, line, col, end_line, end_col, origin

    @property
    def path(self) -> str:
        return self.source.path

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"

    def with_origin(self, origin: Span | None) -> Span:
        """This span, remembering that it was instantiated from `origin`."""
        if origin is None:
            return self
        return Span(self.source, self.line, self.col, self.end_line, self.end_col, origin)


def file_span(source: SourceFile) -> Span:
    """A span for the whole file (used for errors that have no better place)."""
    return Span(source, 1, 1, 1, 1)
