"""`netc sizes`: the input sizes at which a spec checks, and the smallest one.

The spec's image input (its one 4-D input) is made S×S (height = width = S) for each S in a
range, and the spec is checked again at that size with every layer's declared `round:` mode:
an `exact` layer must tile its input exactly, and joins must line up; a `floor` or `ceil`
layer may round. Each size that checks is reported as *exact* when no layer rounds there
(every window tiles its input), or *rounded* with the layers that do. `expect:` is not
checked (its numbers hold for the declared size only). When the sizes that check form a simple
pattern (an encoder-decoder's `multiples of 16`), the report says it (netc.alignment).

The YAML is read and expanded once; each size re-runs only the checker (a few milliseconds
even for ResNet-152), with each layer's attributes read once and reused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..alignment import Pattern, find_pattern
from ..alignment import ranges as ranges  # (`netc.tools.sizes.ranges`, as before)
from ..errors import Diagnostics, NetcError, fail
from ..expand import FlatSpec
from ..layers.base import fmt_shape
from ..limits import DEFAULT, Limits
from ..pipeline import check_spec, parse


@dataclass(frozen=True)
class SizeResult:
    """The outcome of one input size."""

    size: int
    ok: bool
    rounding: tuple[str, ...] = ()  # layers whose floor/ceil actually rounds at this size
    error: str = ""  # the first error, when it does not check

    @property
    def exact(self) -> bool:
        return self.ok and not self.rounding


@dataclass(frozen=True)
class Sizes:
    """`netc sizes` for one spec."""

    spec: str  # the spec's name
    input: str  # the input varied
    shape: tuple  # its declared shape
    results: tuple[SizeResult, ...]  # one per size of the range, in order
    declared: SizeResult  # at the declared size
    smallest: SizeResult | None  # the smallest size that checks (None: none found)

    @property
    def valid(self) -> list[int]:
        return [r.size for r in self.results if r.ok]

    @property
    def exact(self) -> list[int]:
        return [r.size for r in self.results if r.exact]

    @property
    def pattern(self) -> Pattern | None:
        """The simple pattern the sizes that check form in the range (`multiples of 16`),
        if they form one."""
        return find_pattern(self.valid, self.results[0].size, self.results[-1].size)


class _Solver:
    """Checks one flat spec at other input sizes."""

    def __init__(self, spec: FlatSpec, limits: Limits) -> None:
        images = [d for d in spec.inputs if len(d.shape) == 4]
        if len(images) != 1 or len(spec.inputs) != 1:
            names = ", ".join(f"'{d.name}' ({fmt_shape(d.shape)})" for d in spec.inputs)
            if not images:
                raise fail("E307", "netc sizes varies the height and width of an image input "
                           f"[N, C, H, W]; this spec's input is {names}", spec.inputs[0].span
                           if spec.inputs else None)
            raise fail("E113", f"netc sizes varies one image input; this spec has "
                       f"{len(spec.inputs)}: {names}", spec.inputs[0].span)
        self.spec = spec
        self.limits = limits
        self.decl = images[0]
        self.cache: dict = {}  # attributes read once per layer use, for every size

    def check(self, size: int) -> SizeResult:
        return self.run(size)[0]

    def run(self, size: int) -> tuple[SizeResult, Diagnostics]:
        """The spec checked with its image input made size×size."""
        shape = (*self.decl.shape[:2], size, size)
        decl = dataclasses.replace(self.decl, shape=shape)
        spec = dataclasses.replace(self.spec, inputs=[decl], expect=None)
        diags = Diagnostics()
        graph = check_spec(spec, diags, self.limits, self.cache)
        errors = sorted(diags.errors, key=lambda d: d.sort_key())
        if errors:
            first = errors[0]
            return SizeResult(size, False, error=f"{first.code}: {first.message}"), diags
        rounding = tuple(n.name for n in graph.nodes
                         if n.layer.rounds(*(x.shape for x in n.inputs)))
        return SizeResult(size, True, rounding), diags


def solve(path: str, low: int | None = None, high: int | None = None,
          limits: Limits = DEFAULT) -> Sizes:
    """Check the spec at every input size from `low` to `high` (inclusive; by default the
    declared size ± 32) and find the smallest size at which it checks.

    Raises NetcError if the spec has errors that no input size can fix (a misspelt attribute,
    an unknown layer), or if it has no single image input."""
    parsed = parse(path, limits)
    spec, diags = parsed.spec, parsed.diags
    if spec is None or diags.has_errors():
        raise NetcError(diags)
    solver = _Solver(spec, limits)
    declared_size = solver.decl.shape[2]
    declared, diags = solver.run(declared_size)
    fatal = Diagnostics()
    for d in diags.errors:
        if not d.code.startswith("E3"):  # not a shape error: no input size can fix it
            fatal.add(d)
    fatal.raise_if_errors()
    if low is None:
        low = max(1, declared_size - 32)
    if high is None:
        high = declared_size + 32
    known = {declared_size: declared}
    for s in range(low, high + 1):
        if s not in known:
            known[s] = solver.check(s)
    smallest = None
    for s in range(1, search_limit(high) + 1):
        if s not in known:
            known[s] = solver.check(s)
        if known[s].ok:
            smallest = known[s]
            break
    results = tuple(known[s] for s in range(low, high + 1))
    return Sizes(spec.name, solver.decl.name, solver.decl.shape, results, declared, smallest)


def search_limit(high: int) -> int:
    """How far the smallest valid size is looked for."""
    return max(2 * high, 1024)


# --- reports -------------------------------------------------------------------------------


def render_text(sizes: Sizes) -> str:
    results = sizes.results
    low, high = results[0].size, results[-1].size
    n, c = sizes.shape[:2]
    rounded = [r for r in results if r.ok and r.rounding]
    lines = [f"{sizes.spec}: input '{sizes.input}' {n}×{c}×S×S, S from {low} to {high}",
             f"  exact:   {ranges(sizes.exact)}",
             f"  rounded: {ranges([r.size for r in rounded])}"]
    if rounded:
        example = rounded[0]
        layers = ", ".join(example.rounding[:4]) + (", ..." if len(example.rounding) > 4 else "")
        lines.append(f"           (a floor/ceil layer rounds; at {example.size}: {layers})")
    pattern = sizes.pattern
    if pattern is not None:
        lines.append(f"  {pattern_sentence(pattern, low)}")
    declared = sizes.declared
    state = "exact" if declared.exact else "rounded" if declared.ok else declared.error
    lines.append(f"  declared size {declared.size}: {state}")
    if sizes.smallest is None:
        limit = search_limit(results[-1].size)
        lines.append(f"  smallest size that checks: none up to {limit}")
    else:
        s = sizes.smallest
        lines.append(f"  smallest size that checks: {s.size} ({'exact' if s.exact else 'rounded'})")
    return "\n".join(lines)


def to_dict(sizes: Sizes) -> dict:
    def one(r: SizeResult) -> dict:
        out = {"size": r.size, "ok": r.ok, "exact": r.exact}
        if r.rounding:
            out["rounding"] = list(r.rounding)
        if r.error:
            out["error"] = r.error
        return out

    return {
        "spec": sizes.spec,
        "input": sizes.input,
        "shape": list(sizes.shape),
        "valid": sizes.valid,
        "exact": sizes.exact,
        "declared": one(sizes.declared),
        "smallest": one(sizes.smallest) if sizes.smallest else None,
        "sizes": [one(r) for r in sizes.results],
        "pattern": pattern_dict(sizes.pattern, sizes.results[0].size),
    }


def pattern_sentence(pattern: Pattern, low: int) -> str:
    """`the sizes that check are the multiples of 16`."""
    text = pattern.text(low)
    if text.startswith("every size"):
        return text.replace("every size", "every size checks", 1)
    return f"the sizes that check are {'the ' if text.startswith('multiples') else 'those '}{text}"


def pattern_dict(pattern: Pattern | None, low: int) -> dict | None:
    """The JSON form: the sizes s >= start with s % period in residues, and the words."""
    if pattern is None:
        return None
    return {"period": pattern.period, "residues": list(pattern.residues), "start": pattern.start,
            "text": pattern.text(low)}
