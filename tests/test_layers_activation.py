"""The activations since 2016 (relu6, clip, hardswish, hardsigmoid, silu, gelu, mish, elu,
prelu): ONNX Runtime's outputs against torch.nn.functional on the same input, in float32 and
float16; netc.torch's modules against ONNX Runtime; hypothesis on random inputs; and the
did-you-mean rule that never offers another function for an unknown type (`relu8` is not a
misspelt `relu`).

The oracles: torch.nn.functional (an independent implementation of each function), ONNX
Runtime's actual outputs, onnx.checker.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import netc
from conftest import check, random_feeds, session, spec_text
from netc.cli import main
from netc.errors import NetcError, closest_type, different_function, did_you_mean_type
from netc.layers import REGISTRY
from netc.pipeline import Emission, check_file, runnable

torch = pytest.importorskip("torch", reason="the oracle is torch.nn.functional")
F = torch.nn.functional

SHAPE = ("N", 3, 16, 16)

# (spec line, the function in torch.nn.functional terms)
CASES = [
    ("relu6", F.relu6),
    ("clip: {min: -0.5, max: 2}", lambda x: torch.clamp(x, -0.5, 2)),
    ("clip: {min: 0.25}", lambda x: torch.clamp(x, min=0.25)),
    ("clip: {max: -1.5}", lambda x: torch.clamp(x, max=-1.5)),
    ("clip: {min: -3, max: 3}", lambda x: F.hardtanh(x, -3, 3)),
    ("hardswish", F.hardswish),
    ("hardsigmoid", F.hardsigmoid),
    ("silu", F.silu),
    ("gelu", F.gelu),
    ("gelu: {approximate: none}", lambda x: F.gelu(x, approximate="none")),
    ("gelu: tanh", lambda x: F.gelu(x, approximate="tanh")),
    ("mish", F.mish),
    ("elu", F.elu),
    ("elu: 0.3", lambda x: F.elu(x, 0.3)),
    ("elu: {alpha: 2.5}", lambda x: F.elu(x, 2.5)),
    ("prelu", lambda x: F.prelu(x, torch.full((x.shape[1],), 0.25, dtype=x.dtype))),
]
IDS = [text for text, _ in CASES]


def _input(shape=(2, 3, 16, 16), seed=0) -> np.ndarray:
    """Values over the functions' interesting range (the kinks at -3, 0, 3 and 6, the
    saturation of mish and elu), with the kinks themselves included exactly."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 4
    flat = x.reshape(-1)
    flat[:9] = [-6, -3, -0.5, 0, 0.25, 2, 3, 6, 8]
    return x


def _spec(tmp_path, line: str, shape=SHAPE):
    path = tmp_path / "act.yaml"
    head, _, last = line.rpartition("\n- ")
    last = last if ":" in last else last + ":"  # `- relu6:` takes a name beside it
    layers = (f"- {head}\n" if head else "") + f"- {last}\n  name: act"
    path.write_text(spec_text(layers, shape), encoding="utf-8")
    return path


def _ort(path, x, dtype="float32", weights=None) -> np.ndarray:
    model = runnable(check_file(path), Emission(dtype=dtype, weights=weights))
    [y] = session(model).run(None, {"x": x})
    return y


def _relative_error(got, want) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30))


@pytest.mark.parametrize("line, function", CASES, ids=IDS)
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-5), ("float16", 2e-3)])
def test_onnx_runtime_computes_torch_function(tmp_path, line, function, dtype, tolerance):
    path = _spec(tmp_path, line)
    x = _input()
    want = function(torch.from_numpy(x).double()).numpy()
    got = _ort(path, x, dtype)
    assert got.shape == x.shape and got.dtype == np.float32
    assert _relative_error(got, want) <= tolerance


@pytest.mark.parametrize("line, function", CASES, ids=IDS)
def test_torch_module_matches_onnx_runtime(tmp_path, line, function):
    import netc.torch

    path = _spec(tmp_path, "conv: {filters: 4, kernel: 3, pad: 1}\n- " + line)
    graph = check(path)
    feeds = random_feeds(graph)
    [want] = session(runnable(graph, Emission(seed=3))).run(None, feeds)
    model = netc.torch.build(path, seed=3)
    model.train(False)
    with torch.no_grad():
        got = model(torch.from_numpy(feeds["x"])).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_torch_modules_are_pytorchs_own(tmp_path):
    """netc.torch builds torch.nn's module of each function, with PyTorch's arguments."""
    import netc.torch

    want = {
        "relu6": torch.nn.ReLU6, "hardswish": torch.nn.Hardswish,
        "hardsigmoid": torch.nn.Hardsigmoid, "silu": torch.nn.SiLU, "mish": torch.nn.Mish,
        "gelu: tanh": torch.nn.GELU, "elu: 0.5": torch.nn.ELU, "prelu": torch.nn.PReLU,
        "clip: {min: -1, max: 1}": torch.nn.Hardtanh,
    }
    for line, cls in want.items():
        module = netc.torch.build(_spec(tmp_path, line)).layer("act")
        assert type(module) is cls, line
    assert netc.torch.build(_spec(tmp_path, "gelu: tanh")).layer("act").approximate == "tanh"
    assert netc.torch.build(_spec(tmp_path, "elu: 0.5")).layer("act").alpha == 0.5
    prelu = netc.torch.build(_spec(tmp_path, "prelu")).layer("act")
    assert prelu.num_parameters == 3 and torch.all(prelu.weight == 0.25)
    hardtanh = netc.torch.build(_spec(tmp_path, "clip: {min: -1, max: 2}")).layer("act")
    assert (hardtanh.min_val, hardtanh.max_val) == (-1, 2)


def test_one_sided_clip_module_pickles(tmp_path):
    """A clip with one bound is netc's own module class (torch.nn has none), and a model
    holding it pickles under its stable name."""
    import netc.torch

    model = netc.torch.build(_spec(tmp_path, "clip: {max: 0.5}"))
    assert type(model.layer("act")).__qualname__ == "Clip"
    torch.save(model, tmp_path / "m.pt")
    again = torch.load(tmp_path / "m.pt", weights_only=False)
    x = torch.from_numpy(_input())
    np.testing.assert_array_equal(again(x).numpy(), torch.clamp(x, max=0.5).numpy())


# --- prelu: a learned slope per channel -------------------------------------------------------


@pytest.mark.parametrize("shape, slopes", [(("N", 3, 16, 16), [0.1, -0.5, 2.0]),
                                           (("N", 5), [0.0, 0.25, 1.0, -1.0, 3.0])])
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-6), ("float16", 2e-3)])
def test_prelu_with_its_weights_by_name(tmp_path, shape, slopes, dtype, tolerance):
    """Slopes loaded by name (`act.weight`, shape (C,) as nn.PReLU's), on NCHW (unsqueezed to
    C×1×1 in the graph) and on (N, features)."""
    path = _spec(tmp_path, "prelu", shape)
    graph = check(path)
    [node] = graph.nodes
    assert [(w.name, w.spec.shape) for w in node.weights] == [("act.weight", (len(slopes),))]
    assert node.params == len(slopes)
    x = _input((2, *shape[1:]))
    weight = np.array(slopes, np.float32)
    got = _ort(path, x, dtype, weights={"act.weight": weight})
    want = F.prelu(torch.from_numpy(x).double(), torch.from_numpy(weight).double()).numpy()
    assert _relative_error(got, want) <= tolerance


def test_prelu_weight_file_and_model_check(tmp_path):
    """`netc weights` writes the slopes at PyTorch's initial 0.25; the compiled model passes
    onnx.checker's full check, in both precisions."""
    import onnx
    from safetensors.numpy import load_file

    path = _spec(tmp_path, "prelu")
    assert main(["weights", str(path), "-o", str(tmp_path / "w.safetensors")]) == 0
    tensors = load_file(str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(tensors["act.weight"], np.full(3, 0.25, np.float32))
    for dtype in ("float32", "float16"):
        model = tmp_path / f"m_{dtype}.onnx"
        assert main(["compile", str(path), "-o", str(model), "--dtype", dtype]) == 0
        onnx.checker.check_model(onnx.load(str(model)), full_check=True)


def test_prelu_needs_channels():
    """A slope per channel needs the channels on axis 1: (N, C, H, W) or (N, features)."""
    from netc.errors import RuleError

    with pytest.raises(RuleError) as info:
        REGISTRY["prelu"]().infer(("N", 3, 8))
    assert info.value.code == "E307" and "needs a 2-D or 4-D input" in info.value.message


# --- hypothesis: random inputs, every float32 value range -------------------------------------

PROPERTY = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
values = hnp.arrays(np.float32, st.integers(1, 64),
                    elements=st.floats(-1e4, 1e4, width=32, allow_nan=False))
# near the kinks of hardsigmoid and hardswish (±3) and gelu's curve, where slips show
near = hnp.arrays(np.float32, st.integers(1, 64), elements=st.floats(-8, 8, width=32))

FUNCTIONS = {
    "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish,
    "gelu": F.gelu,
    "gelu: tanh": lambda x: F.gelu(x, approximate="tanh"),
}


@pytest.fixture(scope="module")
def sessions(spec_writer):
    """One compiled (N, 64) model per function, reused by every example."""
    out = {}
    for line in FUNCTIONS:
        path = spec_writer(f"- {line}", ("N", 64))
        out[line] = session(runnable(check_file(path)))
    return out


@pytest.mark.parametrize("line", list(FUNCTIONS))
@PROPERTY
@given(wide=values, close=near)
def test_property_matches_torch(sessions, line, wide, close):
    for row in (wide, close):
        x = np.zeros((1, 64), np.float32)
        x[0, :row.size] = row
        [got] = sessions[line].run(None, {"x": x})
        want32 = FUNCTIONS[line](torch.from_numpy(x)).numpy()
        want = FUNCTIONS[line](torch.from_numpy(x).double()).numpy()
        # within float32 rounding of the exact value, and as close as PyTorch's float32 is
        bound = np.maximum(4 * np.abs(want32.astype(np.float64) - want), 1e-6)
        scale = np.maximum(np.abs(want), 1.0)
        assert np.all(np.abs(got - want) <= np.maximum(bound, 1e-6 * scale)), (line, x)


def test_hardsigmoid_is_pytorchs_not_onnxs_default(tmp_path):
    """ONNX's HardSigmoid defaults to slope 0.2: netc writes PyTorch's 1/6 and offset 1/2.
    At x = 2, PyTorch gives 5/6 (ONNX's default would give 0.9)."""
    got = _ort(_spec(tmp_path, "hardsigmoid", ("N", 4)), np.array([[2, -3, 3, 0]], np.float32))
    np.testing.assert_allclose(got, [[5 / 6, 0, 1, 0.5]], rtol=0, atol=1e-7)


def test_exact_gelu_is_fused_by_onnx_runtime(tmp_path):
    """The exact GELU is written Div, Erf, Add, Mul, Mul: the pattern ONNX Runtime fuses."""
    import onnx
    import onnxruntime as ort

    model = runnable(check_file(_spec(tmp_path, "gelu")))
    ops = [n.op_type for n in onnx.load_from_string(model).graph.node]
    assert [op for op in ops if op != "Constant"] == ["Div", "Erf", "Add", "Mul", "Mul"]
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    fused = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "Gelu" in fused and "Erf" not in fused


# --- attributes, explain, graph ---------------------------------------------------------------


@pytest.mark.parametrize("line, formula", [
    ("relu6", "y = min(max(x, 0), 6), element-wise"),
    ("clip: {min: -1, max: 2.5}", "y = min(max(x, -1), 2.5), element-wise"),
    ("clip: {max: 1}", "y = min(x, 1), element-wise"),
    ("gelu: tanh", "y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), element-wise"),
    ("elu: 0.5", "y = x if x > 0 else 0.5·(e^x - 1), element-wise"),
    ("hardsigmoid", "y = min(max(x/6 + 1/2, 0), 1), element-wise"),
])
def test_explain_says_the_function(tmp_path, capsys, line, formula):
    path = _spec(tmp_path, line)
    assert main(["explain", str(path), "act"]) == 0
    out = capsys.readouterr().out
    assert "shape: the same as the input\n  " + formula + "\n" in out


def test_explain_counts_prelu_weight(tmp_path, capsys):
    assert main(["explain", str(_spec(tmp_path, "prelu")), "act"]) == 0
    out = capsys.readouterr().out
    assert "\n  act.weight  3  3\n" in out
    assert "params: 3" in out


def test_graph_labels_clip(tmp_path, capsys):
    assert main(["graph", str(_spec(tmp_path, "clip: {min: 0}"))]) == 0
    assert "act<br/>clip [0, ∞]" in capsys.readouterr().out


@pytest.mark.parametrize("line, message", [
    ("clip: {min: 2, max: 1}", "clip 'act': `min` (2) must be less than `max` (1)"),
    ("clip: {min: 1, max: 1}", "clip 'act': `min` (1) must be less than `max` (1)"),
    ("clip", "clip 'act': clip needs `min`, `max` or both"),
    ("gelu: {approximate: fast}", "`approximate` of gelu 'act' can't be 'fast'"),
    ("gelu: true", "`approximate` of gelu 'act' must be one of none, tanh, not the boolean"),
    ("elu: {alpha: .inf}", "`alpha` of elu 'act' must be a finite number"),
])
def test_bad_attributes_are_e105_or_e103(tmp_path, line, message):
    with pytest.raises(NetcError) as info:
        check(_spec(tmp_path, line))
    [diag] = info.value.diagnostics.items
    assert diag.code in ("E105", "E103") and message in diag.message, diag.render()


# --- did you mean: typos, never another function ----------------------------------------------


@pytest.mark.parametrize("word, meant", [
    ("reul", "relu"), ("rleu", "relu"), ("maxpol", "maxpool"), ("conv2d", "conv"),
    ("Conv2d", "conv"), ("BatchNorm2d", "batchnorm"), ("ReLU6", "relu6"), ("rleu6", "relu6"),
    ("reul6", "relu6"), ("hard_sigmoid", "hardsigmoid"), ("hardswich", "hardswish"),
    ("leaky_relu", "leakyrelu"), ("gleu", "gelu"), ("geluu", "gelu"), ("sillu", "silu"),
    ("mihs", "mish"), ("eul", "elu"), ("sigmod", "sigmoid"), ("flaten", "flatten"),
    ("rwlu", "relu"), ("comv", "conv"), ("clipp", "clip"), ("relu_6", "relu6"),
])
def test_typos_get_their_type(word, meant):
    assert did_you_mean_type(word, REGISTRY) == [f"did you mean '{meant}'?"]


@pytest.mark.parametrize("word", [
    "relu8", "relu7", "relu66", "selu", "celu", "glu", "rrelu", "swish", "hardtanh",
    "logsigmoid", "logsoftmax", "softmin", "minpool", "globalmaxpool", "batchnorm1d", "conv1d",
    "conv3d", "elu6", "prelu6", "tanhshrink", "softplus", "leaky",
])
def test_other_functions_get_no_hint(word):
    """Unknown types that name other functions are not offered a near name."""
    assert did_you_mean_type(word, REGISTRY) == [], closest_type(word, REGISTRY)


@pytest.mark.parametrize("word, other", [
    ("relu", "relu6"), ("relu6", "relu"), ("relu8", "relu6"), ("elu", "relu"),
    ("relu", "gelu"), ("gelu", "selu"), ("selu", "silu"), ("relu", "prelu"),
    ("sigmoid", "hardsigmoid"), ("swish", "hardswish"), ("relu", "leakyrelu"),
    ("glu", "gelu"), ("maxpool", "avgpool"), ("tanh", "hardtanh"),
])
def test_different_functions_both_ways(word, other):
    assert different_function(word, other) and different_function(other, word)


def test_without_its_neighbours_no_function_is_offered_another():
    """Take any of netc's types away: what remains never offers itself for it, except as a
    typo (the rule is symmetric), so a type added later can't be mistaken for an old one."""
    for kind in REGISTRY:
        rest = {k for k in REGISTRY if k != kind}
        offered = closest_type(kind, rest)
        assert offered is None, (kind, offered)


def test_e107_hints_in_a_spec_and_in_defaults(make_spec, capsys):
    path = make_spec("""
        - relu8
        - reul
        - seluu
    """, ("N", 3, 8, 8))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("error[E107]") == 3
    relu8, reul, selu = err.split("error[E107]")[1:]
    assert "did you mean" not in relu8 and "known types:" in relu8
    assert "hint: did you mean 'relu'?" in reul
    assert "did you mean" not in selu
    text = spec_text("- relu", ("N", 3, 8, 8)) + "defaults:\n  relu8: {}\n  rleu6: {}\n"
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    first, second = err.split("error[E107]")[1:]
    assert "unknown layer type 'relu8' in defaults" in first and "did you mean" not in first
    assert "hint: did you mean 'relu6'?" in second


def test_netc_check_spec_takes_every_new_type(make_spec):
    path = make_spec("""
        - conv: {filters: 4, kernel: 3, pad: 1}
        - relu6
        - clip: {min: -1}
        - hardswish
        - hardsigmoid
        - silu
        - gelu: tanh
        - mish
        - elu: 0.5
        - prelu
        - flatten
        - dense: 8
        - prelu
    """, ("N", 3, 8, 8))
    graph = netc.check_spec(path)
    assert graph.outputs[0].shape == ("N", 8)
    assert sum(n.params for n in graph.nodes if n.layer.kind == "prelu") == 4 + 8
