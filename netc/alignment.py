"""Sets of input sizes, said the way a person would: `multiples of 16`, `12 more than a
multiple of 16`, or a list of ranges.

An encoder–decoder lines up only at some input sizes: with k `round: floor` poolings by 2 and
k upsamplings by 2, the skip connections join maps of equal size only when the input size is a
multiple of 2^k. check.py (the E305 of a misaligned join) and `netc sizes` find those sizes by
checking the network at each size of a range; this module describes what they found, and
(`fit_growth`) each operand's size as a function of the input size (`2·ceil(n/4) + 1`), for
E305 to say why none lines up. Pure: it only looks at lists of integers.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from math import gcd
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fractions import Fraction

MAX_RUNS = 2  # a pattern whose residues make more runs (0-7, 12) than this is listed


@dataclass(frozen=True)
class Pattern:
    """The sizes s >= `start` with s mod `period` in `residues`: within the range it was found
    in, exactly the sizes of the set (`members` gives them back)."""

    period: int
    residues: tuple[int, ...]
    start: int

    def members(self, low: int, high: int) -> list[int]:
        """The sizes of the pattern from `low` to `high`, both included."""
        return [s for s in range(max(low, self.start), high + 1)
                if s % self.period in self.residues]

    def text(self, low: int) -> str:
        """`multiples of 16`, `12 more than a multiple of 16`, `0 or 1 more than a multiple
        of 4`, `0 to 3 less than a multiple of 32` (residues 0 and 29 to 31: counted down
        when that makes fewer runs), `every size`; `, from 32 on` when smaller sizes of the
        form, down to `low` (the range's start), are not in the set."""
        m, rs = self.period, self.residues
        below = tuple(sorted({-r % m for r in rs}))  # the same sizes, counted down
        if m == 1:
            phrase = "every size"
        elif rs == (0,):
            phrase = f"multiples of {m}"
        elif ranges(list(below)).count(",") < ranges(list(rs)).count(","):
            # (`0 to 3 less`, not `0 or 29 to 31 more`)
            phrase = f"{_or(_runs(below))} less than a multiple of {m}"
        else:
            phrase = f"{_or(_runs(rs))} more than a multiple of {m}"
        if any(s % m in rs for s in range(low, self.start)):
            phrase += f", from {self.start} on"
        return phrase


def find_pattern(sizes: list[int], low: int, high: int) -> Pattern | None:
    """The shortest period (and its residues, in at most MAX_RUNS runs of consecutive ones)
    that gives exactly `sizes` among low..high from the smallest of them on, repeating at
    least twice there; None if there is none (fewer than two sizes, or no simple pattern)."""
    found = sorted(set(s for s in sizes if low <= s <= high))
    if len(found) < 2:
        return None
    first = found[0]
    wanted = set(found)
    for m in range(1, (high - first + 1) // 2 + 1):
        # the residues of the first period; every later size must repeat them (the check
        # stops at the first that doesn't, so a wrong period costs little)
        residues = tuple(sorted({s % m for s in found[:bisect_left(found, first + m)]}))
        if ranges(list(residues)).count(",") >= MAX_RUNS:
            continue
        if all((s % m in residues) == (s in wanted) for s in range(first, high + 1)):
            return Pattern(m, residues, first)
    return None


@dataclass(frozen=True)
class Growth:
    """A size as a function of the input size n, read off its values at many n: `per` more
    every `every` sizes of n (the shortest such period), and, when the steps within a period
    are those of a single floor, exactly `per`·floor((n + shift) / every) + `offset` for every
    n (`shift` None when they are not: `floor(3n/4)`, say). The shape rules of convs, pools,
    transposed convs and resizes compose into such functions: a stride s with `round: floor`
    is floor((n + c) / s) + d, a transposed conv s·m + d."""

    per: int
    every: int
    shift: int | None
    offset: int

    @property
    def rate(self) -> Fraction:
        """How much the size grows per pixel of input, on average (exactly)."""
        from fractions import Fraction  # (only messages need it: not at start-up)

        return Fraction(self.per, self.every)

    def at(self, n: int) -> int | None:
        """The size at input size n (None when the form is not known exactly)."""
        if self.shift is None:
            return None
        return self.per * ((n + self.shift) // self.every) + self.offset

    def text(self, var: str = "n") -> str:
        """`ceil(n/2)`, `2·floor(n/4) + 1`, `n - 2`, `2m + 1`, `7`; for a form not known
        exactly, `3 more every 4`."""
        p, q, r, s = self.per, self.every, self.shift, self.offset
        if r is None:
            return f"{p} more every {q}"
        if q == 1:
            term = "" if p == 0 else var if p == 1 else f"{p}{var}"
        else:
            inner = (f"floor({var}/{q})" if r == 0 else f"ceil({var}/{q})" if r == q - 1
                     else f"floor(({var} + {r})/{q})")
            term = "" if p == 0 else inner if p == 1 else f"{p}·{inner}"
        if not term:
            return str(s)
        return term + (f" + {s}" if s > 0 else f" - {-s}" if s < 0 else "")


def fit_growth(values: dict[int, int]) -> Growth | None:
    """The `Growth` that gives `values` (size at input size n, for many n): the shortest
    period q such that the size grows by the same amount from every n to n + q, seen for
    every residue of n mod q (so over two periods at least); None if there is none."""
    ns = sorted(values)
    if len(ns) < 2:
        return None
    for q in range(1, (ns[-1] - ns[0] + 1) // 2 + 1):
        steps, seen = set(), set()
        for n in ns:
            if n + q in values:
                steps.add(values[n + q] - values[n])
                seen.add(n % q)
                if len(steps) > 1:
                    break
        if len(steps) != 1 or len(seen) < q:
            continue
        p = steps.pop()
        if p == 0 and q > 1:  # (a period of a function that does not grow: not a floor)
            return Growth(0, q, None, 0)
        for r in range(q):
            offsets = {values[n] - p * ((n + r) // q) for n in ns}
            if len(offsets) == 1:
                return Growth(p, q, r, offsets.pop())
        return Growth(p, q, None, 0)
    return None


def lcm(a: int, b: int) -> int:
    return a * b // gcd(a, b)


def describe(sizes: list[int], low: int, high: int) -> str:
    """The sizes among low..high as a pattern (`multiples of 16`) or as ranges (`35, 70-72`);
    `no size` for none."""
    pattern = find_pattern(sizes, low, high)
    if pattern is not None:
        return pattern.text(low)
    return ranges(sorted(set(sizes))) if sizes else "no size"


def nearest(sizes: list[int], target: int) -> list[int]:
    """The largest size below `target` and the smallest above it (those that exist), or
    [target] if it is one of `sizes`."""
    if target in sizes:
        return [target]
    below = [s for s in sizes if s < target]
    above = [s for s in sizes if s > target]
    return ([max(below)] if below else []) + ([min(above)] if above else [])


def ranges(sizes: list[int]) -> str:
    """`200-223, 225, 227-260`: consecutive sizes as ranges (`none` for none)."""
    parts, start, prev = [], None, None
    for s in sizes + [None]:
        if start is not None and (s is None or s != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if s is not None and start is None:
            start = s
        prev = s
    return ", ".join(parts) if parts else "none"


def _runs(residues) -> list[str]:
    """`['0 to 7', '12']`: consecutive residues as runs (a run of two as its two)."""
    found = []
    for part in ranges(list(residues)).split(", "):
        first, _, last = part.partition("-")
        if last and int(last) == int(first) + 1:
            found += [first, last]
        else:
            found.append(part.replace("-", " to "))
    return found


def _or(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
