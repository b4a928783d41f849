"""Sets of input sizes, said the way a person would: `multiples of 16`, `12 more than a
multiple of 16`, or a list of ranges.

An encoder–decoder lines up only at some input sizes: with k `round: floor` poolings by 2 and
k upsamplings by 2, the skip connections join maps of equal size only when the input size is a
multiple of 2^k. check.py (the E305 of a misaligned join) and `netc sizes` find those sizes by
checking the network at each size of a range; this module describes what they found. Pure:
it only looks at lists of integers.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

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
        of 4`, `every size`; `, from 32 on` when smaller sizes of the form, down to `low`
        (the range's start), are not in the set."""
        m, rs = self.period, self.residues
        if m == 1:
            phrase = "every size"
        elif rs == (0,):
            phrase = f"multiples of {m}"
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
