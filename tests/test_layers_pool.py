"""Pooling (issue 12, part 4): adaptive average and max pooling, dilated pools, `pad:
same_lower`, and stochastic depth.

The oracles: torch.nn.functional (adaptive pools, dilated max pooling), a numpy loop over each
window's taps (dilated average pooling, which PyTorch lacks), ONNX's own conformance cases
(onnx.backend.test: the node, its input and expected output) restated as netc specs, ONNX
Runtime's outputs, and torchvision's stochastic_depth where torchvision is installed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netc
from conftest import check, compile_bytes, random_feeds, run, session

torch = pytest.importorskip("torch", reason="the oracle is torch.nn.functional")
F = torch.nn.functional


def _run(path, x: np.ndarray) -> np.ndarray:
    [y] = session(compile_bytes(path)).run(None, {"x": x})
    return y


def _torch_net(path, x: np.ndarray, training: bool = False) -> np.ndarray:
    import netc.torch

    model = netc.torch.build(path)
    model.train(training)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _ops(path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load_from_string(compile_bytes(path)).graph.node]


def _x(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --- adaptive pools ---------------------------------------------------------------------------


@st.composite
def _adaptive_case(draw):
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    return (h, w), (draw(st.integers(1, h)), draw(st.integers(1, w)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_adaptive_case(), kind=st.sampled_from(["avg", "max"]))
def test_adaptive_pools_match_pytorch(spec_writer, case, kind):
    """Every input size 1..40 and output size 1..N, dividing or not: ONNX Runtime's output
    against F.adaptive_{avg,max}_pool2d, and netc.torch's too."""
    (h, w), out = case
    path = spec_writer(f"- adaptive{kind}pool: {{output: [{out[0]}, {out[1]}]}}", ("N", 2, h, w))
    assert check(path).outputs[0].shape == ("N", 2, *out)
    x = _x((2, 2, h, w), seed=h * 41 + w)
    oracle = getattr(F, f"adaptive_{kind}_pool2d")(torch.from_numpy(x), out).numpy()
    got = _run(path, x)
    assert got.shape == oracle.shape
    np.testing.assert_allclose(got, oracle, rtol=0, atol=1e-6 * max(1.0, np.abs(oracle).max()))
    np.testing.assert_allclose(_torch_net(path, x), oracle, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("hw, out, want", [
    ((7, 7), (1, 1), ["Global{Kind}Pool"]),
    ((8, 12), (4, 3), ["{Kind}Pool"]),
    ((6, 6), (6, 6), ["Identity"]),
])
def test_adaptive_pools_lower_to_a_plain_pool_where_they_can(make_spec, kind, hw, out, want):
    Kind = {"avg": "Average", "max": "Max"}[kind]
    path = make_spec(f"- adaptive{kind}pool: {{output: [{out[0]}, {out[1]}]}}", ("N", 3, *hw))
    assert _ops(path) == [op.format(Kind=Kind) for op in want]
    if want == ["{Kind}Pool"]:
        import onnx

        node = onnx.load_from_string(compile_bytes(path)).graph.node[0]
        attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
        assert attrs["kernel_shape"] == attrs["strides"] == [2, 4]


def test_adaptive_pools_decompose_with_few_nodes(make_spec):
    """A size that doesn't divide: a few nodes per axis, however large the output."""
    avg = make_spec("- adaptiveavgpool: {output: [17, 29]}", ("N", 3, 40, 39))
    assert _ops(avg) == ["Constant", "MatMul", "Constant", "MatMul"]
    mx = make_spec("- adaptivemaxpool: {output: [17, 29]}", ("N", 3, 40, 39))
    assert _ops(mx) == ["Constant", "Gather", "Constant", "Reshape", "ReduceMax"] * 2
    # an axis that keeps its size is left alone
    one = make_spec("- adaptivemaxpool: {output: [5, 8]}", ("N", 3, 7, 8))
    assert _ops(one) == ["Constant", "Gather", "Constant", "Reshape", "ReduceMax"]


def test_adaptive_equation_shows_the_windows(make_spec, capsys):
    from netc.cli import main

    path = make_spec("- adaptiveavgpool: {output: [3, 5]}\n  name: a", ("N", 3, 7, 10))
    assert main(["explain", str(path), "a"]) == 0
    out = capsys.readouterr().out
    assert "height: 7 / 3 = 2.33, not a whole number: windows of 3-3 rows: [0, 3), [2, 5), " \
           "[4, 7)" in out
    assert "width:  10 / 5 = 2: windows of 2 columns, one every 2" in out
    assert "output: N×3×3×5" in out


def test_adaptive_output_larger_than_the_input_is_refused(make_spec):
    path = make_spec("- adaptiveavgpool: {output: [8, 4]}", ("N", 3, 7, 7))
    with pytest.raises(netc.NetcError) as e:
        check(path)
    text = str(e.value)
    assert "E302" in text and "an output of 8x4 is larger than the 7x7 input" in text
    assert "use an output of at most 7x4" in text


def test_adaptive_pools_in_float16(make_spec):
    from netc.pipeline import Emission, check_file, runnable

    x = _x((2, 3, 11, 9))
    for kind in ("avg", "max"):
        path = make_spec(f"- adaptive{kind}pool: {{output: [4, 5]}}", ("N", 3, 11, 9))
        [y] = session(runnable(check_file(path), Emission(dtype="float16"))).run(None, {"x": x})
        oracle = getattr(F, f"adaptive_{kind}_pool2d")(torch.from_numpy(x), (4, 5)).numpy()
        np.testing.assert_allclose(y, oracle, rtol=0, atol=2e-2 * np.abs(oracle).max())


# --- dilation -------------------------------------------------------------------------------


MAXPOOLS = [  # kernel, stride, dilation, pad, round, input size
    (2, 1, 2, 0, "exact", 9),
    (3, 2, 2, 1, "floor", 16),
    (3, 1, 3, 3, "exact", 10),  # pads as large as the kernel: a Pad node of -inf first
    (2, 3, 3, 0, "ceil", 5),  # the ceil window's end padding is as large as the kernel
    ([3, 2], [2, 1], [1, 3], [1, 0], "floor", 13),
    (3, 2, 2, 1, "ceil", 14),
]


@pytest.mark.parametrize("kernel, stride, dilation, pad, rounding, n", MAXPOOLS)
def test_dilated_maxpool_matches_pytorch(make_spec, kernel, stride, dilation, pad, rounding, n):
    path = make_spec(f"- maxpool: {{kernel: {kernel}, stride: {stride}, dilation: {dilation}, "
                     f"pad: {pad}, round: {rounding}}}", ("N", 3, n, n))
    x = _x((2, 3, n, n))
    t = torch.from_numpy(x)
    if max(np.atleast_1d(pad)) > min(np.atleast_1d(kernel)) // 2:  # more than PyTorch pads
        assert rounding != "ceil"
        ph, pw = (pad, pad) if isinstance(pad, int) else pad
        t, pad = F.pad(t, (pw, pw, ph, ph), value=-math.inf), 0
    oracle = F.max_pool2d(t, kernel, stride, pad, dilation, ceil_mode=rounding == "ceil").numpy()
    got = _run(path, x)
    assert got.shape == oracle.shape
    np.testing.assert_array_equal(got, oracle)
    np.testing.assert_array_equal(_torch_net(path, x), oracle)


def _pool_oracle(x, kernel, stride, dilation, pads, out_hw, mode, include_pad=False):
    """Each output pixel from its window's taps, position by position: a tap at row
    o·stride - top + i·dilation (and likewise for columns) reads the input where it lies
    inside it; padding counts in an average only with `include_pad`, and then only the
    declared padding, not the end padding `round: ceil` adds."""
    n, c, h, w = x.shape
    top, left, bottom, right = pads
    y = np.zeros((n, c, *out_hw), np.float64)
    for oh in range(out_hw[0]):
        for ow in range(out_hw[1]):
            values, count = [], 0
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    r = oh * stride[0] - top + i * dilation[0]
                    q = ow * stride[1] - left + j * dilation[1]
                    inside = 0 <= r < h and 0 <= q < w
                    if inside:
                        values.append(x[:, :, r, q])
                    if inside or (include_pad and -top <= r < h + bottom
                                  and -left <= q < w + right):
                        count += 1
            if mode == "max":
                y[:, :, oh, ow] = np.max(values, axis=0)
            else:
                y[:, :, oh, ow] = np.sum(values, axis=0) / count
    return y


AVGPOOLS = [  # kernel, stride, dilation, pad, round, include_pad, input size
    (2, 1, 2, 0, "exact", False, 9),
    (3, 2, 2, 1, "floor", False, 16),
    (3, 2, 2, 1, "floor", True, 16),
    (3, 1, 3, 3, "exact", False, 10),
    (2, 3, 3, 0, "ceil", False, 5),
    (3, 2, 2, 2, "ceil", True, 14),
    ([3, 2], [2, 1], [1, 3], [1, 0, 0, 2], "ceil", True, 13),
]


@pytest.mark.parametrize("kernel, stride, dilation, pad, rounding, include_pad, n", AVGPOOLS)
def test_dilated_avgpool_matches_a_numpy_oracle(make_spec, kernel, stride, dilation, pad,
                                                rounding, include_pad, n):
    text = (f"- avgpool: {{kernel: {kernel}, stride: {stride}, dilation: {dilation}, "
            f"pad: {pad}, round: {rounding}, include_pad: {str(include_pad).lower()}}}")
    path = make_spec(text, ("N", 3, n, n))
    pair = lambda v: tuple(v) if isinstance(v, list) else (v, v)  # noqa: E731
    pads = tuple(pad) if isinstance(pad, list) and len(pad) == 4 else pair(pad) * 2
    x = _x((2, 3, n, n))
    got = _run(path, x)
    # the output size: the same windows as a max pool's, which PyTorch has
    if pads[:2] == pads[2:] and all(pads[i] <= pair(kernel)[i] // 2 for i in (0, 1)):
        shape = F.max_pool2d(torch.from_numpy(x), kernel, stride, pads[:2], dilation,
                             ceil_mode=rounding == "ceil").shape
        assert got.shape == tuple(shape)
    oracle = _pool_oracle(x.astype(np.float64), pair(kernel), pair(stride), pair(dilation),
                          pads, got.shape[2:], "avg", include_pad)
    np.testing.assert_allclose(got, oracle, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_torch_net(path, x), oracle, rtol=0, atol=1e-6)


def test_undilated_pools_are_unchanged(make_spec):
    """No `dilations` attribute where the dilation is 1: the models stay byte for byte."""
    import onnx

    for kind in ("maxpool", "avgpool"):
        path = make_spec(f"- {kind}: {{kernel: 3, stride: 2, pad: 1}}", ("N", 3, 9, 9))
        [node] = onnx.load_from_string(compile_bytes(path)).graph.node
        assert "dilations" not in [a.name for a in node.attribute]


def test_dilated_window_equation_and_padding_limit(make_spec, capsys):
    from netc.cli import main

    path = make_spec("- maxpool: {kernel: 2, stride: 1, dilation: 3}\n  name: m", ("N", 3, 9, 9))
    assert main(["explain", str(path), "m"]) == 0
    out = capsys.readouterr().out
    assert "the dilated filter spans F = dilation × (F - 1) + 1 = 4x4 pixels" in out
    assert "(9 + 0 + 0 - 4) / 1 + 1 = 6" in out
    # padding as large as the dilated window would leave a window with only padding
    bad = make_spec("- maxpool: {kernel: 2, stride: 1, dilation: 3, pad: 4}", ("N", 3, 9, 9))
    with pytest.raises(netc.NetcError) as e:
        check(bad)
    assert "padding 4 is not smaller than the 2x2 (dilated to 4x4) pooling window" in str(e.value)


# --- pad: same_lower ------------------------------------------------------------------------


def _same_lower(n, k, s, d):
    """ONNX's SAME_LOWER: output ceil(n / s), the odd pixel of the padding at the start."""
    total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
    return total - total // 2, total // 2


SAME_LOWER_CASES = [(8, 2, 1, 1), (7, 4, 2, 1), (9, 3, 2, 2), (10, 2, 3, 1), (5, 2, 1, 3)]


@pytest.mark.parametrize("kind, n, k, s, d", [
    (kind, *case) for kind in ("maxpool", "avgpool", "conv") for case in SAME_LOWER_CASES
    # a pool refuses more padding than its window spans (E105): those cases are convs only
    if kind == "conv" or max(_same_lower(*case)) < case[3] * (case[1] - 1) + 1])
def test_same_lower_pads_the_start(make_spec, kind, n, k, s, d):
    (before, after) = _same_lower(n, k, s, d)
    extra = "filters: 2, bias: false, " if kind == "conv" else ""
    path = make_spec(f"- {kind}: {{{extra}kernel: {k}, stride: {s}, dilation: {d}, "
                     "pad: same_lower}\n  name: p", ("N", 2, n, n))
    x = _x((2, 2, n, n))
    got = _run(path, x)
    assert got.shape[2:] == (math.ceil(n / s),) * 2
    pads = (before, before, after, after)
    if kind == "conv":
        from netc.pipeline import Emission, check_file, runnable

        weight = _x((2, 2, k, k), seed=5)
        model = runnable(check_file(path), Emission(weights={"p.weight": weight}))
        [got] = session(model).run(None, {"x": x})
        padded = F.pad(torch.from_numpy(x), (before, after, before, after))
        oracle = F.conv2d(padded, torch.from_numpy(weight), None, s, 0, d).numpy()
        np.testing.assert_allclose(got, oracle, rtol=0, atol=1e-5)
        return
    mode = "max" if kind == "maxpool" else "avg"
    oracle = _pool_oracle(x.astype(np.float64), (k, k), (s, s), (d, d), pads, got.shape[2:],
                          mode)
    np.testing.assert_allclose(got, oracle, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_torch_net(path, x), oracle, rtol=0, atol=1e-6)


def test_same_lower_equation(make_spec, capsys):
    from netc.cli import main

    path = make_spec("- maxpool: {kernel: 2, stride: 1, pad: same_lower}\n  name: m",
                     ("N", 3, 8, 8))
    assert main(["explain", str(path), "m"]) == 0
    out = capsys.readouterr().out
    assert ("pad: same_lower pads (top, left, bottom, right) = [1, 1, 0, 0], for an output of "
            "ceil(N / stride), an odd total's extra pixel at the start") in out


ONNX_CASES = {  # ONNX's own 2-D conformance cases for SAME_LOWER and dilations
    "test_maxpool_2d_same_lower": ("maxpool", "MaxPool"),
    "test_averagepool_2d_same_lower": ("averagepool", "AveragePool"),
    "test_maxpool_2d_dilations": ("maxpool", "MaxPool"),
    "test_averagepool_2d_dilations": ("averagepool", "AveragePool"),
    "test_conv_with_autopad_same": ("conv", "Conv"),
}


@lru_cache(maxsize=None)
def _onnx_case(name: str):
    """One case of onnx.backend.test (the node, its inputs, the expected output), made by its
    generator exactly as ONNX makes its published data (numpy seeded with 0 first). Importing
    a generator's module runs every case in it (half a minute for the 3-D ones), so its source
    is run here with a plain `Base`, and only the wanted case's generator is called."""
    import importlib
    import importlib.util
    import warnings

    cases = pytest.importorskip("onnx.backend.test.case.node",
                                reason="onnx.backend.test's cases are not installed")
    found = [c for c in cases._NodeTestCases if c.name == name]
    if not found:
        base = importlib.import_module("onnx.backend.test.case.base")
        module, cls = ONNX_CASES[name]
        spec = importlib.util.find_spec(f"{cases.__name__}.{module}")
        namespace = {"__name__": f"netc_test_{module}"}
        saved, state = base.Base, np.random.get_state()
        base.Base = type("Base", (), {})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(compile(spec.loader.get_source(spec.name), spec.origin, "exec"), namespace)
                np.random.seed(0)
                getattr(namespace[cls], name.replace("test_", "export_", 1))()
        finally:
            base.Base = saved
            np.random.set_state(state)
        found = [c for c in cases._NodeTestCases if c.name == name]
    return found[0]


def _netc_layer(node) -> str:
    """The ONNX node as a netc layer (its attributes restated)."""
    import onnx.helper

    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    fields = [f"kernel: {a['kernel_shape']}", f"stride: {a.get('strides', [1, 1])}",
              f"dilation: {a.get('dilations', [1, 1])}"]
    pad = a.get("auto_pad", b"NOTSET").decode()
    fields.append({"SAME_LOWER": "pad: same_lower", "SAME_UPPER": "pad: same",
                   "VALID": "pad: valid"}.get(pad, f"pad: {a.get('pads', [0, 0, 0, 0])}"))
    fields.append("round: ceil" if a.get("ceil_mode") else "round: floor")
    kind = {"MaxPool": "maxpool", "AveragePool": "avgpool", "Conv": "conv"}[node.op_type]
    if kind == "avgpool":
        fields.append(f"include_pad: {'true' if a.get('count_include_pad') else 'false'}")
    if kind == "conv":
        fields = ["filters: 1", "bias: false"] + fields
    return f"- {kind}: {{{', '.join(fields)}}}\n  name: p"


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_onnx_conformance_cases(make_spec, name):
    from netc.pipeline import Emission, check_file, runnable

    case = _onnx_case(name)
    node = case.model.graph.node[0]
    inputs, [expected] = case.data_sets[0]
    x = inputs[0]
    path = make_spec(_netc_layer(node), ("N", *x.shape[1:]))
    weights = {"p.weight": inputs[1]} if node.op_type == "Conv" else None
    model = runnable(check_file(path), Emission(weights=weights))
    [got] = session(model).run(None, {"x": x})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


# --- stochastic depth -----------------------------------------------------------------------


def test_stochastic_depth_is_an_identity_in_onnx(make_spec):
    path = make_spec("- stochasticdepth: {p: 0.3, mode: batch}", ("N", 3, 8, 8))
    assert _ops(path) == ["Identity"]
    graph = check(path)
    feeds = random_feeds(graph)
    [y] = run(compile_bytes(path), feeds)
    np.testing.assert_array_equal(y, feeds["x"])


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_is_active_in_torch_training(make_spec, mode):
    path = make_spec(f"- stochasticdepth: {{p: 0.5, mode: {mode}}}", ("N", 3, 4, 4))
    x = np.abs(_x((64, 3, 4, 4))) + 1
    np.testing.assert_array_equal(_torch_net(path, x), x)  # evaluation mode: the identity
    torch.manual_seed(0)
    y = _torch_net(path, x, training=True)
    kept = [bool(np.all(y[i] == x[i] * 2)) for i in range(len(x))]
    dropped = [bool(np.all(y[i] == 0)) for i in range(len(x))]
    assert all(k or d for k, d in zip(kept, dropped))  # each image whole: kept (× 2) or zero
    if mode == "row":
        assert 10 < sum(kept) < 54  # 64 draws of p = 0.5
    else:
        assert len(set(kept)) == 1  # one draw for the batch


def test_stochastic_depth_matches_torchvision(make_spec):
    """The same random numbers as torchvision.ops.stochastic_depth (where installed)."""
    ops = pytest.importorskip("torchvision.ops", reason="torchvision is not installed")
    for mode in ("row", "batch"):
        path = make_spec(f"- stochasticdepth: {{p: 0.3, mode: {mode}}}", ("N", 3, 4, 4))
        x = _x((16, 3, 4, 4))
        torch.manual_seed(7)
        y = _torch_net(path, x, training=True)
        torch.manual_seed(7)
        want = ops.stochastic_depth(torch.from_numpy(x), 0.3, mode, training=True).numpy()
        np.testing.assert_array_equal(y, want)
