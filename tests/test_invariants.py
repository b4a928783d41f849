"""Invariant (a) of issue 15: every spec `netc check` accepts compiles to a valid model.

A spec that checks must build: `compile` may not fail (exit 70), print a Python warning or
write a model that ONNX's checker or ONNX Runtime refuses. The faults this stops were of three
kinds: a layer or input named like a tensor netc names (`x.weight` beside conv `x`, a
batchnorm's `bn.running_mean`, the bias --fold-bn gives a conv: a duplicate name in the ONNX
file, E110 now); a real attribute float32 can't hold (`leakyrelu: 1e308`: an OverflowError in
the protobuf writer; `eps: 1e-50`, written as 0; E105 now); and an initialiser whose values
float32, or float16 with `--dtype float16`, can't hold (`constant(1e39)`: inf weights and a
numpy RuntimeWarning; E105 at check time against float32, and emit.py's E508 when compiling
for float16).

The test draws small networks around one layer of every registered type (the registry is
enumerated, and each attribute's values come from its field type: no layer is listed here),
with fuzzed names drawn to collide with the names netc derives (`<layer>.weight`, `.bias`,
`.running_mean`, `.running_var`, the input's, the outputs') and fuzzed extreme numbers in
every numeric attribute and initialiser (0, -0.0, subnormals, float16's and float32's limits,
1e308, huge integers), compiled in float32 and float16, with and without --fold-bn. The only
allowed outcomes are a positioned error with a documented code (at check time, or for the
chosen dtype when compiling), or a model that passes `onnx.checker.check_model(full_check=
True)`, loads in ONNX Runtime and runs on zeros, with no Python warning (warnings are errors
here).

Budget: `NETC_FUZZ_SCALE` (default 1) multiplies the example counts, and `NETC_FUZZ_SEED=N`
draws other examples than CI's (derandomised by default), as in tests/test_fuzz.py. At 1 the
fuzz runs 600 networks (about 15 s on two cores) and the sweep every (layer type, numeric
attribute, extreme value) in float32, float16 and with --fold-bn (about 13 s); the whole file
takes about 45 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, note, seed, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from netc import pipeline
from netc.errors import CODES, NetcError
from netc.layers import REGISTRY, attributes
from netc.layers.base import FLOATS, INITIALISERS, INITIALISERS_WITH_VALUE

ort = pytest.importorskip("onnxruntime", reason="the invariant loads each model in ONNX Runtime")

SCALE = float(os.environ.get("NETC_FUZZ_SCALE", "1"))
SEED = os.environ.get("NETC_FUZZ_SEED")
FUZZ = dict(derandomize=SEED is None, deadline=None, database=None, print_blob=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.filter_too_much])


def fuzz(n: int):
    """A fuzz test of `n` examples (times NETC_FUZZ_SCALE): derandomised, or seeded."""
    def wrap(test):
        test = settings(max_examples=max(1, round(n * SCALE)), **FUZZ)(test)
        return seed(int(SEED))(test) if SEED is not None else test
    return wrap


PATH = "invariant.yaml"
F32_MAX, F32_TINY, _ = FLOATS["float32"]
# the numbers at the edges: zeros, subnormals, the smallest normals, float16's largest and
# the first that rounds to its infinity, float32's largest and past it, float64's
REALS = [0.0, -0.0, 5e-324, 1e-45, 1e-40, 1e-38, F32_TINY, 6e-8, 6.1e-05, 65504.0, 65520.0,
         70000.0, 3.4e38, F32_MAX, 3.4028235e38, 3.5e38, 1e308, -1e308, -3.5e38, -70000.0]
TYPICAL_REALS = [0.5, 1.0, 0.01, 2.0, -1.5, 1e-5]
INTS = [0, -1, 4096, 4097, 65536, 1048577, 2 ** 31, 2 ** 63, 10 ** 30, -(2 ** 63)]
TYPICAL_INTS = [1, 2, 3, 4]
PARAMS = ("weight", "bias", "running_mean", "running_var")


def yaml_number(x) -> str:
    """A number as the spec writes it (repr: the shortest text that reads back as `x`)."""
    return repr(float(x)) if isinstance(x, float) else str(x)


def _init_text(name: str, x: float) -> str:
    """`normal(0.01)`: a scale (normal, uniform, gaussian) is not negative, a constant may be."""
    return f"{name}({yaml_number(x if name == 'constant' else abs(x))})"


def values_of(kind: str, choices: tuple, refs: list[str]):
    """A strategy for the YAML text of an attribute of `kind` (AttrSpec.kind): typical values
    most of the time, the extremes the rest."""
    real = st.one_of(st.sampled_from(TYPICAL_REALS), st.sampled_from(TYPICAL_REALS),
                     st.sampled_from(TYPICAL_REALS), st.sampled_from(REALS)).map(yaml_number)
    small = st.sampled_from(TYPICAL_INTS)
    integer = st.one_of(small, small, small, st.sampled_from(INTS)).map(str)
    if kind == "float" or kind == "scales":
        return st.one_of(real, st.lists(real, min_size=2, max_size=2).map(
            lambda v: f"[{', '.join(v)}]")) if kind == "scales" else real
    if kind == "int":
        return integer
    if kind == "bool":
        return st.sampled_from(["true", "false"])
    if kind == "choice":
        return st.sampled_from(choices)
    if kind == "ref":
        return st.sampled_from(refs)
    if kind == "init":
        named = st.sampled_from(INITIALISERS)
        valued = st.tuples(st.sampled_from(INITIALISERS_WITH_VALUE),
                           st.one_of(st.sampled_from(TYPICAL_REALS), st.sampled_from(REALS)))
        return st.one_of(named, valued.map(lambda p: _init_text(*p)))
    if kind in ("pair", "padding", "sides", "ints"):
        sizes = {"pair": [1, 2], "padding": [1, 2, 4], "sides": [1, 2, 4],
                 "ints": [1, 2, 3, 4]}[kind]
        items = st.one_of(small, st.sampled_from([0, -1]), st.sampled_from(INTS)).map(str)
        listed = st.sampled_from(sizes).flatmap(
            lambda n: st.lists(items, min_size=n, max_size=n)).map(lambda v: f"[{', '.join(v)}]")
        scalar = st.one_of(small.map(str), st.sampled_from(INTS).map(str))
        if kind == "padding":
            scalar = st.one_of(scalar, st.sampled_from(choices))
        return listed if kind == "ints" else st.one_of(scalar, listed)
    raise AssertionError(f"a field type the invariant doesn't draw: {kind}")


@st.composite
def networks(draw, kind: str | None = None):
    """(spec text, emission): input `IN` -> conv `A` -> batchnorm `B` -> [flatten]
    -> the layer under test `T` (any registered type; a join reads A and B) -> relu `D`, with
    names drawn to collide, and attributes of T drawn from its field types."""
    kind = kind or draw(st.sampled_from(sorted(REGISTRY)))
    cls = REGISTRY[kind]
    slots = ["IN", "A", "B", "T", "D"]
    plain = dict(zip(slots, draw(st.permutations(["x", "a", "b", "t", "d"]))))
    names = dict(plain)
    for slot in slots:  # a name netc derives from another slot's, some of the time
        derived = draw(st.one_of(st.none(), st.none(), st.none(), st.none(), st.tuples(
            st.sampled_from([s for s in slots if s != slot]), st.sampled_from(PARAMS + ("",)))))
        if derived is not None:
            other, param = derived
            names[slot] = plain[other] + (f".{param}" if param else "")
    flat = draw(st.sampled_from([False, False, False, True]))
    bias = draw(st.sampled_from(["true", "false"]))
    lines = ["netc: 1", "name: fuzz", "inputs:", f"  {names['IN']}: [N, 4, 6, 6]", "layers:",
             f"  - conv: {{filters: 4, kernel: 1, bias: {bias}}}", f"    name: {names['A']}",
             "  - batchnorm:", f"    name: {names['B']}"]
    if flat:
        lines += ["  - flatten"]
    refs = [names["IN"], names["A"]]
    attrs = []
    for spec in attributes(cls):
        include = spec.required or draw(st.sampled_from([False, False, True]))
        if include:
            attrs.append(f"{spec.name}: {draw(values_of(spec.kind, spec.choices, refs))}")
    lo, _ = cls.arity
    if lo >= 2:
        attrs.append(f"from: [{names['A']}, {names['B']}]")
    lines += [f"  - {kind}: {{{', '.join(attrs)}}}", f"    name: {names['T']}",
              "  - relu:", f"    name: {names['D']}"]
    outputs = draw(st.sampled_from([["D"], ["D", "T"], ["T", "D", "A"], ["IN", "D"]]))
    lines.append(f"outputs: [{', '.join(names[s] for s in outputs)}]")
    emission = pipeline.Emission(dtype=draw(st.sampled_from(["float32", "float16"])),
                                 fold_bn=draw(st.booleans()))
    return "\n".join(lines) + "\n", emission


def assert_positioned(diags, text: str) -> None:
    """Every error: a documented code, and a position inside the spec."""
    count = len(text.splitlines())
    for d in diags:
        assert d.code in CODES, f"undocumented code {d.code}: {d.message}"
        assert d.span is not None, f"{d.code} without a position: {d.message}"
        assert d.span.path == PATH and 1 <= d.span.line <= count + 1, d.render()
        d.render()


def holds(text: str, emission: pipeline.Emission) -> str:
    """Invariant (a) for one spec and one way of compiling it; returns the outcome (for
    hypothesis's statistics). Warnings are errors meanwhile."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            graph = pipeline.checked(pipeline.parse_bytes(text.encode(), PATH))
        except NetcError as e:
            assert_positioned(e.diagnostics.errors, text)
            return "refused: " + min(d.code for d in e.diagnostics.errors)
        if graph.params > MAX_BUILD:
            return "checked (too large to build here)"
        try:
            data = pipeline.runnable(graph, emission)
        except NetcError as e:
            # only a float16 model's limits are known only when compiling: in float32, what
            # checks builds (`netc check` refuses what `compile` can't build, --fold-bn
            # included: its scale 1/sqrt(var + eps) of initial values is at most 1); a
            # positioned error (E603: a float16 model whose output is a learned tensor, said
            # without one)
            assert emission.dtype != "float32", e.diagnostics.render()
            for d in e.diagnostics.errors:
                assert d.code in CODES, f"undocumented code {d.code}: {d.message}"
                assert d.span is not None or d.code == "E603", d.render()
            return "refused when compiling: " + min(d.code for d in e.diagnostics.errors)
        assert isinstance(data, bytes)
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model, full_check=True)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        if _elements(graph) > MAX_RUN:
            return "built (too large to run here)"
        feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
                 for i in session.get_inputs()}
        session.run(None, feeds)
    return "built"


# A network is built only with at most this many weights, and run only with at most this many
# activation values (per image): the extremes make networks of billions of values, which
# netc's limits allow and CI can't afford (the fuzz of large models is tests/test_large.py's)
MAX_BUILD = 1 << 20
MAX_RUN = 1 << 22


def _elements(graph) -> int:
    """The activation values of one image: every layer's output."""
    total = 0
    for node in graph.nodes:
        n = 1
        for d in node.output.shape[1:]:
            n *= d
        total += n
    return total


@fuzz(600)
@given(networks())
def test_every_spec_that_checks_builds(case):
    text, emission = case
    note(text)
    note(repr(emission))
    outcome = holds(text, emission)
    event(outcome if not outcome.startswith("built") else
          f"{outcome} in {emission.dtype}{' with --fold-bn' if emission.fold_bn else ''}")


# --- every numeric attribute of every layer type, at every extreme ------------------------------


def _sweep():
    """(layer type, attribute, YAML value) for every numeric attribute (the field types that
    hold numbers) and initialiser, and every extreme value of REALS and INTS that fits it."""
    cases = []
    for kind in sorted(REGISTRY):
        for spec in attributes(REGISTRY[kind]):
            if spec.kind in ("float", "scales"):
                values = [yaml_number(x) for x in REALS]
            elif spec.kind in ("int", "pair", "padding", "sides"):
                values = [str(x) for x in INTS]
            elif spec.kind == "ints":
                values = [f"[{x}]" for x in INTS]
            elif spec.kind == "init":
                values = [_init_text(name, x) for name in ("constant", "normal", "uniform")
                          for x in REALS]
            else:
                continue
            cases += [(kind, spec.name, v) for v in values]
    return cases


# values a field type typically takes, tried in order for a base that checks
TYPICAL = {"int": ["2", "1"], "pair": ["1", "2"], "padding": ["0"], "sides": ["1"],
           "float": ["0.5", "6"], "scales": ["2"], "ints": ["[0, 1, 2, 3]", "[-1]", "[2, 2]"],
           "init": ["he_normal"], "bool": ["true", "false"], "ref": ["x"]}


def _sweep_spec(kind: str, attrs: dict[str, str]) -> str:
    """x (1×4×6×6) -> conv c (no bias) -> batchnorm bn -> the layer (a join reads c and bn)."""
    given = [f"{k}: {v}" for k, v in attrs.items()]
    if REGISTRY[kind].arity[0] >= 2:
        given.append("from: [c, bn]")
    return ("netc: 1\nname: sweep\ninputs:\n  x: [N, 4, 6, 6]\nlayers:\n"
            "  - conv: {filters: 4, kernel: 1, bias: false}\n    name: c\n"
            "  - batchnorm:\n    name: bn\n"
            f"  - {kind}: {{{', '.join(given)}}}\n")


def _base(kind: str) -> dict[str, str]:
    """Attribute values with which a layer of type `kind` checks after `_sweep_spec`'s
    layers, found from its field types alone: the required attributes at their typical
    values, then with one more attribute (an optional one at a typical value, or a choice)
    where that is not enough (clip needs a bound, dense on a 4-D input `axis: last`)."""
    specs = attributes(REGISTRY[kind])

    def options(spec):
        return list(spec.choices) if spec.kind == "choice" else TYPICAL[spec.kind]

    tries = [{}]
    for spec in specs:
        if spec.required:
            tries = [dict(t, **{spec.name: v}) for t in tries for v in options(spec)]
    tries += [dict(t, **{spec.name: v}) for spec in specs if not spec.required
              for t in tries for v in options(spec)]
    for attrs in tries:
        if not _errors(_sweep_spec(kind, attrs), "sweep.yaml"):
            return attrs
    raise AssertionError(f"no attribute values found with which {kind} checks")


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_extreme_number_in_every_attribute(kind):
    """Each numeric attribute of `kind` at each extreme, the others as `_base` gives them
    (which builds), in float32, float16 and with --fold-bn."""
    base = _base(kind)
    assert holds(_sweep_spec(kind, base), pipeline.Emission()) == "built"
    outcomes = {}
    for _, name, value in [c for c in _sweep() if c[0] == kind]:
        text = _sweep_spec(kind, dict(base, **{name: value}))
        for emission in (pipeline.Emission(), pipeline.Emission(dtype="float16"),
                         pipeline.Emission(fold_bn=True)):
            outcome = holds(text, emission)
            outcomes.setdefault(outcome.split(":")[0], []).append((name, value, emission))
    if outcomes:  # (a type with numeric attributes: its extremes are not all taken)
        assert "refused" in outcomes, outcomes


# --- the kinds, one case each, and through the command line -----------------------------------


def _spec(layers: str, inputs: str = "image: [N, 3, 8, 8]") -> str:
    return f"netc: 1\nname: t\ninputs:\n  {inputs}\nlayers:\n{layers}"


def _errors(text: str, path: str = PATH) -> list:
    try:
        pipeline.checked(pipeline.parse_bytes(text.encode(), path))
    except NetcError as e:
        return e.diagnostics.errors
    return []


@pytest.mark.parametrize("layers, inputs, name, owner", [
    # a layer after the layer whose tensor it is named like
    ("  - conv: {filters: 4, kernel: 3}\n    name: x\n  - relu:\n    name: x.weight\n",
     "image: [N, 3, 8, 8]", "x.weight", "conv 'x'"),
    # before it
    ("  - relu:\n    name: c.bias\n  - conv: {filters: 4, kernel: 3}\n    name: c\n",
     "image: [N, 3, 8, 8]", "c.bias", "conv 'c'"),
    # an input
    ("  - conv: {filters: 4, kernel: 3}\n    name: x\n", "x.weight: [N, 3, 8, 8]", "x.weight",
     "conv 'x'"),
    # a batchnorm's buffer
    ("  - batchnorm:\n    name: bn\n  - relu:\n    name: bn.running_var\n", "image: [N, 3, 8, 8]",
     "bn.running_var", "batchnorm 'bn'"),
    # a param layer, whose tensor is the layer itself
    ("  - conv: {filters: 4, kernel: 3}\n    name: x\n  - param:\n    name: x.weight\n",
     "image: [N, 3, 8, 8]", "x.weight", "conv 'x'"),
    # the bias --fold-bn gives a conv without one
    ("  - conv: {filters: 4, kernel: 3, bias: false}\n    name: c\n  - batchnorm\n"
     "  - relu:\n    name: c.bias\n", "image: [N, 3, 8, 8]", "c.bias", "conv 'c'"),
])
def test_a_name_netc_gives_a_tensor_is_e110(layers, inputs, name, owner):
    [e] = _errors(_spec(layers, inputs))
    assert e.code == "E110" and f"the name '{name}' is the name of" in e.message, e.render()
    assert owner in e.message
    free = e.hints[0].split("`")[1]
    assert free == name.replace(".", "_")
    # the name the hint offers checks
    fixed = _spec(layers.replace(f"name: {name}\n", f"name: {free}\n"),
                  inputs.replace(f"{name}:", f"{free}:"))
    assert _errors(fixed) == []


def test_the_free_name_offered_is_free():
    """`x_weight` is taken too: the hint offers `x_weight2`, which checks."""
    layers = ("  - conv: {filters: 4, kernel: 3}\n    name: x\n  - relu:\n    name: x_weight\n"
              "  - relu:\n    name: x.weight\n")
    [e] = _errors(_spec(layers))
    assert "`x_weight2` is free" in e.hints[0], e.render()
    assert _errors(_spec(layers.replace("name: x.weight", "name: x_weight2"))) == []


def test_fold_bn_folds_the_layers_tensors_not_those_named_like_them():
    """A `param` layer named `a.running_mean` beside conv `a` is no tensor of `a` (a conv has
    no running_mean): with --fold-bn folding batchnorm `b` into `a`, its values are its own.
    (Found by this fuzz, NETC_FUZZ_SEED=7 at scale 10: fold.py took a tensor's layer from its
    name, wrote the folded 4×4×1×1 kernel where the 4×1×1 param was declared, and the model's
    bytes were corrupt.)"""
    text = _spec("  - conv: {filters: 4, kernel: 1}\n    name: a\n  - batchnorm:\n    name: b\n"
                 "  - param: {init: constant(0.5)}\n    name: a.running_mean\n"
                 "  - mul: {from: [b, a.running_mean]}\n", "x: [N, 4, 6, 6]")
    assert holds(text, pipeline.Emission(fold_bn=True)) == "built"
    model = onnx.load_model_from_string(pipeline.runnable(
        pipeline.checked(pipeline.parse_bytes(text.encode(), PATH)),
        pipeline.Emission(fold_bn=True)))
    [param] = [t for t in model.graph.initializer if t.name == "a.running_mean"]
    assert (numpy_helper.to_array(param) == 0.5).all()


@pytest.mark.parametrize("kind, attribute, value", [
    ("leakyrelu", "alpha", "1e308"), ("batchnorm", "eps", "1e308"), ("lrn", "alpha", "1e39"),
    ("batchnorm", "eps", "1e-50"), ("elu", "alpha", "-3.5e38"), ("pad", "value", "1e-40"),
    ("clip", "min", "5e-324"), ("leakyrelu", "alpha", "1" + "0" * 60),
])
def test_a_real_attribute_float32_cannot_hold_is_e105(kind, attribute, value):
    extra = ", amount: 1" if kind == "pad" else ""
    text = _spec(f"  - {kind}: {{{attribute}: {value}{extra}}}\n")
    [e] = _errors(text)
    assert e.code == "E105" and "float32" in e.message, e.render()
    assert e.span.line == 6 and text.splitlines()[5][e.span.col - 1:].startswith(value)


@pytest.mark.parametrize("init", ["constant(1e39)", "normal(1e308)", "uniform(3.5e38)",
                                  "constant(-1e-45)", "normal(1e-40)", "normal(3.5e37)"])
def test_an_initialiser_float32_cannot_hold_is_e105_at_the_init(init):
    text = _spec(f"  - conv: {{filters: 2, kernel: 1, init: {init}}}\n")
    [e] = _errors(text)
    assert e.code == "E105" and "float32" in e.message, e.render()
    assert text.splitlines()[5][e.span.col - 1:].startswith(init)
    assert "from 1.2e-38 to" in e.hints[0]


@pytest.mark.parametrize("init", ["constant(3.4028235e38)", "uniform(3.4e38)",
                                  "normal(3.4e37)", "constant(-1.2e-38)"])
def test_an_initialiser_at_float32s_limits_builds_finite_weights(init):
    """The largest values float32 holds are drawn without inf or a warning (uniform(a) past
    1.7e38, whose 2a is past float32, included)."""
    text = _spec(f"  - conv: {{filters: 2, kernel: 1, init: {init}}}\n")
    assert holds(text, pipeline.Emission()) == "built"
    graph = pipeline.checked(pipeline.parse_bytes(text.encode(), PATH))
    from netc.weights import initial_value

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = initial_value(graph.weights[0])
    assert np.isfinite(values).all() and np.abs(values).max() <= F32_MAX


@pytest.mark.parametrize("layer", ["- clip: {min: 1e5}", "- clip: {min: -1, max: 70000}",
                                   "- pad: {amount: 1, value: -65520}",
                                   "- conv: {filters: 2, kernel: 1, init: constant(70000)}"])
def test_what_float16_cannot_hold_is_refused_when_compiling(layer):
    """A constant a layer writes in the model's precision, or a weight, past float16's range:
    a positioned error at the layer when compiling with --dtype float16 (emit.py's E508), no
    warning; float32 builds the same spec."""
    text = _spec(f"  {layer}\n")
    assert holds(text, pipeline.Emission(dtype="float16")) == "refused when compiling: E508"
    assert holds(text, pipeline.Emission()) == "built"


def test_what_float16_holds_builds():
    """The edges that fit: float16's largest number, its smallest normal one, -0.0."""
    text = _spec("  - pad: {amount: 1, value: 65504}\n  - clip: {min: 6.2e-05, max: 65504}\n"
                 "  - pad: {amount: 1, value: -0.0}\n"
                 "  - conv: {filters: 2, kernel: 1, init: constant(-65504)}\n")
    assert holds(text, pipeline.Emission(dtype="float16")) == "built"


def _netc(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netc", *args], cwd=cwd, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONWARNINGS="error"))


@pytest.mark.parametrize("layers, inputs, options, code", [
    ("  - conv: {filters: 4, kernel: 3}\n    name: x\n  - relu:\n    name: x.weight\n",
     "image: [N, 3, 8, 8]", [], "E110"),
    ("  - leakyrelu: 1e308\n", "image: [N, 3, 8, 8]", [], "E105"),
    ("  - conv: {filters: 2, kernel: 1, init: constant(1e39)}\n", "image: [N, 3, 8, 8]", [],
     "E105"),
    ("  - clip: {min: 1e5}\n", "image: [N, 3, 8, 8]", ["--dtype", "float16"], "E508"),
])
def test_the_command_line_refuses_before_writing(tmp_path, layers, inputs, options, code):
    """`netc check` refuses what `netc compile` can't build (both exit 1, nothing written),
    except a dtype's limits, which only `compile` knows."""
    (tmp_path / "s.yaml").write_text(_spec(layers, inputs), encoding="utf-8")
    checked = _netc("check", "s.yaml", cwd=tmp_path)
    compiled = _netc("compile", "s.yaml", "-o", "s.onnx", *options, cwd=tmp_path)
    assert compiled.returncode == 1 and f"error[{code}]" in compiled.stderr, compiled.stderr
    assert "Traceback" not in compiled.stderr and "Warning" not in compiled.stderr
    assert not (tmp_path / "s.onnx").exists()
    if not options:
        assert checked.returncode == 1 and f"error[{code}]" in checked.stdout + checked.stderr
