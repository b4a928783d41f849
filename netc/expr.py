"""The small, safe expression language of block arguments: `$filters * 4`, `$stride > 1`.

Integers, booleans (`true`, `false`), block arguments (`$name`), `+ - * //`, parentheses,
comparisons (`== != < <= > >=`) and `and`, `or`, `not`. A hand-written parser and evaluator:
nothing is ever handed to Python's eval, and results are bounded so an expression cannot
build a huge number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MAX_MAGNITUDE = 1 << 48  # far beyond any size a network needs
# bounds on an expression's size, so that neither the parser nor the evaluator (both recursive)
# can run out of stack on a hostile one: `((((...))))`, `not not ...`, `1+1+...+1`
MAX_TOKENS = 256
MAX_NESTING = 32  # parentheses, `not` and unary minus inside one another

_TOKEN = re.compile(r"\s*(?:(\d+)|\$([A-Za-z_][A-Za-z0-9_]*)|(//|==|!=|<=|>=|[-+*()<>])"
                    r"|([A-Za-z_]+))")


@dataclass
class ExprError(Exception):
    """A problem in an expression; `offset` is the character where it was found."""

    message: str
    offset: int = 0
    hints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__init__(self.message)


def is_expression(text) -> bool:
    """A string value is an expression when it refers to an argument."""
    return isinstance(text, str) and "$" in text


def evaluate(text: str, env: dict[str, int | bool]):
    """The value (int or bool) of expression `text` with arguments `env`."""
    return _eval(_tree(text), env, text)


@lru_cache(maxsize=4096)
def _tree(text: str):
    """The parsed expression (a block's expressions are evaluated once per instance: parsed
    once). Errors are raised, never cached."""
    return _Parser(text).parse()


def references(text: str) -> list[str]:
    """The argument names an expression uses."""
    return re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, offset)
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                start = len(text) - len(text[pos:].lstrip())
                raise ExprError(f"unexpected character {text[start]!r} in an expression", start,
                                ("expressions use integers, $arguments, + - * //, parentheses, "
                                 "comparisons, and, or, not",))
            number, name, op, word = m.groups()
            start = m.start(m.lastindex) - (1 if name is not None else 0)  # arguments: at the $
            if number is not None:
                self.tokens.append(("int", number, start))
            elif name is not None:
                self.tokens.append(("arg", name, start))
            elif op is not None:
                self.tokens.append(("op", op, start))
            elif word in ("and", "or", "not", "true", "false"):
                self.tokens.append(("op" if word in ("and", "or", "not") else "bool", word, start))
            else:
                raise ExprError(f"unknown word {word!r} in an expression", start,
                                (f"an argument is written with a dollar sign: ${word}",))
            pos = m.end()
            if len(self.tokens) > MAX_TOKENS:
                raise ExprError(f"the expression is longer than {MAX_TOKENS} tokens", start,
                                ("split the computation: give the block another argument",))
        self.i = 0
        self.depth = 0

    def nested(self, offset: int) -> None:
        """Enter one more level of parentheses, `not` or unary minus."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExprError(f"the expression is nested more than {MAX_NESTING} levels deep",
                            offset)

    def peek(self, *values: str) -> bool:
        return self.i < len(self.tokens) and self.tokens[self.i][0] == "op" \
            and self.tokens[self.i][1] in values

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self) -> int:
        return self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)

    def parse(self):
        if not self.tokens:
            raise ExprError("empty expression", 0)
        tree = self.or_()
        if self.i < len(self.tokens):
            kind, value, _ = self.tokens[self.i]
            raise ExprError(f"unexpected {('$' + value if kind == 'arg' else value)!r}", self.at())
        return tree

    def binary(self, sub, ops):
        left = sub()
        while self.peek(*ops):
            op, offset = self.tokens[self.i][1], self.at()
            self.i += 1
            left = ("bin", op, left, sub(), offset)
        return left

    def or_(self):
        return self.binary(self.and_, ("or",))

    def and_(self):
        return self.binary(self.not_, ("and",))

    def not_(self):
        if self.peek("not"):
            offset = self.at()
            self.i += 1
            self.nested(offset)
            tree = ("not", self.not_(), offset)
            self.depth -= 1
            return tree
        return self.compare()

    def compare(self):
        left = self.sum()
        if self.peek("==", "!=", "<", "<=", ">", ">="):
            op, offset = self.tokens[self.i][1], self.at()
            self.i += 1
            return ("bin", op, left, self.sum(), offset)
        return left

    def sum(self):
        return self.binary(self.term, ("+", "-"))

    def term(self):
        return self.binary(self.unary, ("*", "//"))

    def unary(self):
        if self.peek("-"):
            offset = self.at()
            self.i += 1
            self.nested(offset)
            tree = ("neg", self.unary(), offset)
            self.depth -= 1
            return tree
        return self.atom()

    def atom(self):
        if self.i >= len(self.tokens):
            raise ExprError("the expression ends too early", len(self.text))
        kind, value, offset = self.take()
        if kind == "int":
            if len(value.lstrip("0")) > len(str(MAX_MAGNITUDE)):  # before int(): it is slow
                raise ExprError(f"the number {value[:20]}{'...' if len(value) > 20 else ''} is "
                                f"larger than {MAX_MAGNITUDE:,}", offset)
            return ("int", int(value), offset)
        if kind == "bool":
            return ("bool", value == "true", offset)
        if kind == "arg":
            return ("arg", value, offset)
        if value == "(":
            self.nested(offset)
            inner = self.or_()
            if not self.peek(")"):
                raise ExprError("missing ')'", self.at())
            self.i += 1
            self.depth -= 1
            return inner
        raise ExprError(f"unexpected {value!r}", offset)


def _eval(tree, env, text):
    kind = tree[0]
    if kind in ("int", "bool"):
        return tree[1]
    if kind == "arg":
        if tree[1] not in env:
            import difflib

            close = difflib.get_close_matches(tree[1], sorted(env), n=1)
            hint = (f"did you mean ${close[0]}?",) if close else (
                (f"arguments here: {', '.join('$' + k for k in sorted(env))}",) if env
                else ("only blocks have arguments",))
            raise ExprError(f"no argument named ${tree[1]}", tree[2], hint)
        return env[tree[1]]
    if kind == "neg":
        return -_int(_eval(tree[1], env, text), tree[2], "-")
    if kind == "not":
        return not _bool(_eval(tree[1], env, text), tree[2], "not")
    _, op, left, right, offset = tree
    a, b = _eval(left, env, text), _eval(right, env, text)
    if op in ("and", "or"):
        a, b = _bool(a, offset, op), _bool(b, offset, op)
        return (a and b) if op == "and" else (a or b)
    if op in ("==", "!="):
        if isinstance(a, bool) != isinstance(b, bool):
            raise ExprError(f"can't compare a boolean with a number using {op}", offset)
        return (a == b) if op == "==" else (a != b)
    a, b = _int(a, offset, op), _int(b, offset, op)
    if op == "+":
        result = a + b
    elif op == "-":
        result = a - b
    elif op == "*":
        result = a * b
    elif op == "//":
        if b == 0:
            raise ExprError("division by zero", offset)
        result = a // b
    else:
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if abs(result) > MAX_MAGNITUDE:
        raise ExprError(f"the result is larger than {MAX_MAGNITUDE:,}", offset)
    return result


def _int(v, offset, op):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ExprError(f"{op} needs numbers, not a boolean", offset)
    return v


def _bool(v, offset, op):
    if not isinstance(v, bool):
        raise ExprError(f"{op} needs true or false, not the number {v}", offset,
                        (f"compare it, e.g. `$x > 0`",))
    return v
