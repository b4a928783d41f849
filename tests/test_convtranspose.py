"""`convtranspose`: PyTorch's ConvTranspose2d, lowered to ONNX ConvTranspose, against oracles
that don't share netc's code:

- the definition, in numpy: each input pixel adds its filter, scaled, into the output at
  stride steps (taps `dilation` apart); then `output_padding` rows and columns at the end,
  and the crops (ONNX's `pads`, PyTorch's `padding`) cut from both sides;
- torch.nn.functional.conv_transpose2d on the same arrays (its `padding` where the crops are
  symmetric; else padding 0 and the crops sliced off, as the ONNX spec defines them);
- ONNX Runtime's actual output shapes and values, ONNX's own shape inference (strict), and,
  for `pad: same`, a ConvTranspose node with ONNX's auto_pad SAME_UPPER/SAME_LOWER;
- for the cost: torch.utils.flop_counter (its FLOPs are 2 × netc's MACs); for the weights:
  nn.ConvTranspose2d's parameter shapes and torch.nn.init's fans.

Sizes are the formula of PyTorch's ConvTranspose2d docs, written again here (`ref_size`).
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import BATCH, check, concrete, random_feeds, session
from netc.emit import emit, serialize
from netc.errors import NetcError

torch = pytest.importorskip("torch", reason="the oracles are torch's functions")
F = torch.nn.functional

TOLERANCE = 1e-5  # max |got - want| / max |want|
PROPERTY = settings(max_examples=70, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def relative_error(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def ref_size(n, k, s, pb, pa, d, op) -> int:
    """PyTorch's ConvTranspose2d docs: H_out = (H_in - 1)·stride - 2·padding +
    dilation·(kernel_size - 1) + output_padding + 1, the padding split into its two sides."""
    return (n - 1) * s - pb - pa + d * (k - 1) + op + 1


def reference(x, w, b, stride, crops, output_padding, dilation, groups):
    """The transposed convolution by its definition, in float64: x (N, C, H, W), w (C,
    F/groups, kh, kw), crops (top, left, bottom, right)."""
    n, c, h, wd = x.shape
    _, per_group, kh, kw = w.shape
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, output_padding
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + oh
    full_w = (wd - 1) * sw + dw * (kw - 1) + 1 + ow
    y = np.zeros((n, per_group * groups, full_h, full_w))
    per_in = c // groups
    for g in range(groups):
        xs = x[:, g * per_in:(g + 1) * per_in].astype(np.float64)
        ws = w[g * per_in:(g + 1) * per_in].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                # every input pixel (p, q) lands on (p·sh + i·dh, q·sw + j·dw)
                y[:, g * per_group:(g + 1) * per_group,
                  i * dh:i * dh + (h - 1) * sh + 1:sh,
                  j * dw:j * dw + (wd - 1) * sw + 1:sw] += np.einsum("ncpq,co->nopq", xs,
                                                                      ws[:, :, i, j])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    top, left, bottom, right = crops
    return y[:, :, top:full_h - bottom, left:full_w - right]


def torch_reference(x, w, b, stride, crops, output_padding, dilation, groups):
    """F.conv_transpose2d: its own padding where the crops are symmetric, else padding 0 and
    the crops sliced off (ONNX's pads crop the output)."""
    top, left, bottom, right = crops
    args = dict(stride=tuple(stride), output_padding=tuple(output_padding), groups=groups,
                dilation=tuple(dilation))
    x, w = torch.from_numpy(x), torch.from_numpy(w)
    b = None if b is None else torch.from_numpy(b)
    with torch.no_grad():
        if top == bottom and left == right:
            return F.conv_transpose2d(x, w, b, padding=(top, left), **args).numpy()
        y = F.conv_transpose2d(x, w, b, padding=0, **args)
        return y[:, :, top:y.shape[2] - bottom, left:y.shape[3] - right].numpy()


def random_weights(graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {w.name: rng.standard_normal(w.shape).astype(np.float32) for w in graph.weights}


def onnx_shapes(model) -> dict[str, tuple]:
    """ONNX's own shape inference (strict), by value name."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(bare, check_type=True, strict_mode=True)
    return {vi.name: tuple(d.dim_param if d.HasField("dim_param") else d.dim_value
                           for d in vi.type.tensor_type.shape.dim)
            for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}


def compare_all(graph, weights, layer_name="up"):
    """ORT's output == the numpy definition == F.conv_transpose2d == netc.torch, and netc's
    shape == ORT's == ONNX's inference; returns ORT's output."""
    import netc.torch

    [node] = [n for n in graph.nodes if n.name == layer_name]
    layer = node.layer
    crops = layer.crops(node.inputs[0].shape)
    feeds = random_feeds(graph, seed=1)
    model = emit(graph, weights=weights)
    onnx.checker.check_model(model, full_check=True)
    [got] = session(serialize(model)).run(None, feeds)
    assert got.shape == concrete(node.output.shape), (got.shape, node.output.shape)
    assert onnx_shapes(model)[node.output.name] == node.output.shape
    x = feeds[graph.inputs[0].name]
    w = weights[f"{layer_name}.weight"]
    b = weights.get(f"{layer_name}.bias")
    args = (layer.stride, crops, layer.output_padding, layer.dilation, layer.groups)
    assert relative_error(got, reference(x, w, b, *args)) < TOLERANCE
    assert relative_error(got, torch_reference(x, w, b, *args)) < TOLERANCE
    module = netc.torch.build(graph).eval()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    with torch.no_grad():
        mine = module(torch.from_numpy(x)).numpy()
    assert relative_error(mine, got) < TOLERANCE
    return got


# --- 1. shapes and values over random geometries ---------------------------------------------

axis = st.fixed_dictionaries({
    "n": st.integers(1, 6), "k": st.integers(1, 5), "s": st.integers(1, 4),
    "pb": st.integers(0, 3), "pa": st.integers(0, 3), "d": st.integers(1, 3),
}).flatmap(lambda a: st.fixed_dictionaries({
    **{key: st.just(v) for key, v in a.items()},
    # every legal output_padding: below the stride or below the dilation (PyTorch's rule)
    "op": st.integers(0, max(a["s"], a["d"]) - 1)}))


def attrs_text(h, w, pad_style) -> str:
    pads = {"4": f"[{h['pb']}, {w['pb']}, {h['pa']}, {w['pa']}]",
            "hw": f"[{h['pb']}, {w['pb']}]", "same": "same", "same_lower": "same_lower",
            "valid": "valid"}[pad_style]
    return (f"kernel: [{h['k']}, {w['k']}], stride: [{h['s']}, {w['s']}], pad: {pads}, "
            f"dilation: [{h['d']}, {w['d']}], output_padding: [{h['op']}, {w['op']}]")


def expected_crops(h, w, pad_style):
    """(top, left, bottom, right) as the attribute says, `same` by ONNX's formula for
    ConvTranspose's auto_pad: total = stride·(N - 1) + output_padding + span - N·stride."""
    if pad_style == "4":
        return (h["pb"], w["pb"], h["pa"], w["pa"])
    if pad_style == "hw":
        return (h["pb"], w["pb"], h["pb"], w["pb"])
    if pad_style == "valid":
        return (0, 0, 0, 0)
    halves = []
    for a in (h, w):
        total = a["s"] * (a["n"] - 1) + a["op"] + a["d"] * (a["k"] - 1) + 1 - a["n"] * a["s"]
        if total < 0:
            return None  # cropping can't make the output larger
        halves.append((total // 2, total - total // 2) if pad_style == "same"
                      else (total - total // 2, total // 2))
    return (halves[0][0], halves[1][0], halves[0][1], halves[1][1])


@PROPERTY
@given(h=axis, w=axis, pad_style=st.sampled_from(["4", "hw", "same", "same_lower", "valid"]),
       groups=st.sampled_from([1, 2]), bias=st.booleans())
def test_geometry_matches_onnxruntime_torch_and_the_definition(spec_writer, h, w, pad_style,
                                                                groups, bias):
    layer = (f"- convtranspose: {{filters: {2 * groups}, groups: {groups}, bias: "
             f"{str(bias).lower()}, {attrs_text(h, w, pad_style)}}}\n  name: up")
    path = spec_writer(layer, ("N", 2 * groups, h["n"], w["n"]))
    crops = expected_crops(h, w, pad_style)
    if crops is None:  # `same` with a filter narrower than the stride
        event("refused: same with a narrow filter")
        with pytest.raises(NetcError, match=r"E105.*can't make the output N × stride"):
            check(path)
        return
    sizes = [ref_size(a["n"], a["k"], a["s"], crops[i], crops[i + 2], a["d"], a["op"])
             for i, a in enumerate((h, w))]
    if min(sizes) < 1:
        event("refused: cropped away")
        with pytest.raises(NetcError, match=r"E302.*crops the whole output"):
            check(path)
        return
    graph = check(path)
    assert graph.outputs[0].shape == ("N", 2 * groups, *sizes), layer
    if pad_style.startswith("same"):
        assert sizes == [h["n"] * h["s"], w["n"] * w["s"]]
    event("compared" + (", output_padding >= stride" if h["op"] >= h["s"] or w["op"] >= w["s"]
                        else ""))
    compare_all(graph, random_weights(graph))


@PROPERTY
@given(h=axis, w=axis, lower=st.booleans())
def test_same_is_onnx_auto_pad(spec_writer, h, w, lower):
    """netc's explicit crops for `same`/`same_lower` compute what a ConvTranspose node with
    auto_pad SAME_UPPER/SAME_LOWER computes in ONNX Runtime (where ORT accepts it: an
    output_padding below the stride)."""
    from onnx import TensorProto, helper

    style = "same_lower" if lower else "same"
    if expected_crops(h, w, style) is None or h["op"] >= h["s"] or w["op"] >= w["s"]:
        event("not a case for auto_pad")
        return
    event("compared")
    path = spec_writer(f"- convtranspose: {{filters: 2, bias: false, "
                       f"{attrs_text(h, w, style)}}}\n  name: up", ("N", 2, h["n"], w["n"]))
    graph = check(path)
    weights = random_weights(graph)
    feeds = random_feeds(graph)
    [mine] = session(serialize(emit(graph, weights=weights))).run(None, feeds)
    kernel = [h["k"], w["k"]]
    node = helper.make_node(
        "ConvTranspose", ["x", "w"], ["y"], kernel_shape=kernel, strides=[h["s"], w["s"]],
        dilations=[h["d"], w["d"]], output_padding=[h["op"], w["op"]],
        auto_pad="SAME_LOWER" if lower else "SAME_UPPER")
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("w", TensorProto.FLOAT, [2, 2, *kernel],
                            weights["up.weight"].tobytes(), raw=True)]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    [theirs] = session(model.SerializeToString()).run(None, feeds)
    assert mine.shape == theirs.shape == (BATCH, 2, h["n"] * h["s"], w["n"] * w["s"])
    assert relative_error(mine, theirs) < TOLERANCE


narrow_stride = st.fixed_dictionaries({
    "n": st.integers(1, 5), "k": st.integers(1, 4), "s": st.integers(1, 2),
    "pb": st.integers(0, 2), "pa": st.integers(0, 2), "d": st.integers(3, 4),
}).flatmap(lambda a: st.fixed_dictionaries({
    **{key: st.just(v) for key, v in a.items()}, "op": st.integers(a["s"], a["d"] - 1)}))


@settings(PROPERTY, max_examples=25)
@given(h=narrow_stride, w=axis, pad_style=st.sampled_from(["4", "hw", "same"]),
       bias=st.booleans())
def test_output_padding_past_the_stride(spec_writer, h, w, pad_style, bias):
    """output_padding from the stride up to the dilation - 1 (the lowering with Pad and
    Slice that ONNX Runtime needs there), against the same oracles."""
    crops = expected_crops(h, w, pad_style)
    sizes = crops and [ref_size(a["n"], a["k"], a["s"], crops[i], crops[i + 2], a["d"], a["op"])
                       for i, a in enumerate((h, w))]
    if not crops or min(sizes) < 1:
        event("refused")
        return
    event("compared")
    path = spec_writer(f"- convtranspose: {{filters: 2, bias: {str(bias).lower()}, "
                       f"{attrs_text(h, w, pad_style)}}}\n  name: up", ("N", 2, h["n"], w["n"]))
    graph = check(path)
    assert graph.outputs[0].shape == ("N", 2, *sizes)
    compare_all(graph, random_weights(graph))


# --- 2. hand-worked cases ---------------------------------------------------------------------

# (layer attributes, input (C, H, W), output (F, H, W) worked out by hand)
CASES = [
    # U-Net's up-convolution: (28 - 1) × 2 + 1 × (2 - 1) + 1 = 56
    ("{filters: 64, kernel: 2, stride: 2}", (128, 28, 28), (64, 56, 56)),
    # DCGAN-style 4x4/2 with pad 1: (7 - 1) × 2 - 2 + 3 + 1 = 14
    ("{filters: 4, kernel: 4, stride: 2, pad: 1}", (3, 7, 7), (4, 14, 14)),
    # 3x3/2 pad 1 with output_padding 1, the inverse of a 3x3/2 `same` conv:
    # (7 - 1) × 2 - 2 + 2 + 1 + 1 = 14
    ("{filters: 4, kernel: 3, stride: 2, pad: 1, output_padding: 1}", (3, 7, 7), (4, 14, 14)),
    # output_padding 2 below dilation 3 with stride 1 (PyTorch allows it; lowered with a Pad):
    # height (5 - 1) + 3 × 2 + 2 + 1 = 13, width (5 - 1) - 1 - 2 + 6 + 2 + 1 = 10
    ("{filters: 2, kernel: 3, dilation: 3, output_padding: 2, pad: [0, 1, 0, 2]}", (2, 5, 5),
     (2, 13, 10)),
    # same and same_lower at stride 3: 4 × 3 = 12, crops 5 + 0 - 3 = 2 in all
    ("{filters: 2, kernel: 5, stride: 3, pad: same}", (2, 4, 4), (2, 12, 12)),
    ("{filters: 2, kernel: 4, stride: 3, pad: same_lower, groups: 2}", (2, 4, 5), (2, 12, 15)),
]


@pytest.mark.parametrize("attrs, c_hw, want", CASES, ids=[c[0] for c in CASES])
def test_hand_worked_cases(make_spec, attrs, c_hw, want):
    graph = check(make_spec(f"- convtranspose: {attrs}\n  name: up", ("N", *c_hw)))
    assert graph.outputs[0].shape == ("N", *want)
    compare_all(graph, random_weights(graph, seed=2))


def test_an_output_padding_past_the_stride_is_lowered_so_that_ort_runs_it(make_spec):
    """ONNX Runtime refuses a ConvTranspose whose output_padding reaches the stride, which
    PyTorch allows below the dilation: netc lowers those with a Pad, and one node otherwise."""
    def ops(attrs):
        graph = check(make_spec(f"- convtranspose: {attrs}\n  name: up", ("N", 2, 5, 5)))
        return [n.op_type for n in emit(graph).graph.node]

    assert ops("{filters: 2, kernel: 3, stride: 2, output_padding: 1}") == ["ConvTranspose"]
    assert ops("{filters: 2, kernel: 3, dilation: 2, output_padding: 1}") == [
        "ConvTranspose", "Constant", "Pad", "Constant", "Constant", "Constant", "Slice",
        "Constant", "Reshape", "Add"]
    assert "Add" not in ops("{filters: 2, kernel: 3, dilation: 2, output_padding: 1, "
                            "bias: false}")


# --- 3. netc.torch ----------------------------------------------------------------------------


@pytest.mark.parametrize("pad, plain", [("1", True), ("[1, 2]", True), ("[0, 1, 2, 0]", False)])
def test_state_dict_loads_into_a_plain_conv_transpose(make_spec, pad, plain):
    """netc.torch's module has nn.ConvTranspose2d's parameters, so its state_dict loads into
    a plain nn.ConvTranspose2d (strictly) which computes the same, the asymmetric crops sliced
    off by hand; symmetric pads build nn.ConvTranspose2d itself."""
    import pickle

    import netc.torch

    path = make_spec(f"- convtranspose: {{filters: 6, kernel: 3, stride: 2, pad: {pad}, "
                     "output_padding: 1, groups: 3}\n  name: up", ("N", 3, 5, 4))
    model = netc.torch.build(path, seed=4).eval()
    up = model.layer("up")
    assert (type(up) is torch.nn.ConvTranspose2d) == plain
    state = up.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {"weight": (3, 2, 3, 3),
                                                              "bias": (6,)}
    assert list(model.state_dict()) == ["up.weight", "up.bias"]
    crops = check(path).nodes[0].layer.crops(("N", 3, 5, 4))
    symmetric = (crops[0], crops[1]) if crops[:2] == crops[2:] else (0, 0)
    reference_module = torch.nn.ConvTranspose2d(3, 6, 3, stride=2, padding=symmetric,
                                                output_padding=1, groups=3)
    reference_module.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 5, 4)
    with torch.no_grad():
        want = reference_module(x)
        if symmetric == (0, 0):
            top, left, bottom, right = crops
            want = want[:, :, top:want.shape[2] - bottom, left:want.shape[3] - right]
        got = model(x)
    assert relative_error(got.numpy(), want.numpy()) < TOLERANCE
    again = pickle.loads(pickle.dumps(model))
    with torch.no_grad():
        assert torch.equal(again(x), got)


def test_weights_params_and_macs_are_pytorchs(make_spec):
    """Parameter shapes as nn.ConvTranspose2d's, He fans as torch.nn.init computes them on
    that layout, MACs as torch.utils.flop_counter counts (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    path = make_spec("- convtranspose: {filters: 8, kernel: [3, 2], stride: 2, pad: 1, "
                     "groups: 2, dilation: [1, 2]}\n  name: up", ("N", 4, 6, 5))
    graph = check(path)
    [node] = graph.nodes
    module = torch.nn.ConvTranspose2d(4, 8, (3, 2), stride=2, padding=1, groups=2,
                                      dilation=(1, 2))
    assert [(w.spec.param, w.shape) for w in graph.weights] == [
        (name, tuple(p.shape)) for name, p in module.named_parameters()]
    assert graph.params == sum(p.numel() for p in module.parameters())
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(module.weight)
    weight = graph.weights[0].spec
    assert (weight.fan_in, weight.fan_out) == (fan_in, fan_out)
    with FlopCounterMode(display=False) as counter:
        module(torch.randn(1, 4, 6, 5))
    assert node.macs * 2 == counter.get_total_flops()


def test_he_normal_has_pytorchs_spread(make_spec):
    """he_normal draws N(0, 2 / fan_in) with PyTorch's fan_in (filters/groups × kh × kw)."""
    from netc.weights import initial_value

    graph = check(make_spec("- convtranspose: {filters: 4, kernel: 4, stride: 2}\n  name: up",
                            ("N", 256, 8, 8)))
    weight = graph.weights[0]
    values = initial_value(weight)
    assert abs(values.std() / np.sqrt(2 / (4 * 16)) - 1) < 0.02


# --- 4. errors, each with a fix that works -------------------------------------------------


def error_of(path):
    with pytest.raises(NetcError) as caught:
        check(path)
    errors = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert len(errors) == 1, errors
    return errors[0], str(caught.value)


def fixes_work(make_spec, layer, c_hw, text):
    """Each hint `attr: value gives HxW` of an error, applied to the layer, checks and gives
    that size."""
    found = re.findall(r"(\w+): (\[[\d, ]+\]|\d+) gives (\d+)x(\d+)", text)
    assert found, text
    for attr, value, h, w in found:
        if re.search(rf"\b{attr}: ", layer):
            fixed = re.sub(rf"\b{attr}: (\[[\d, ]+\]|\w+)", f"{attr}: {value}", layer)
        else:
            fixed = layer.replace("}", f", {attr}: {value}}}", 1)
        graph = check(make_spec(f"- convtranspose: {fixed}", ("N", *c_hw)))
        assert graph.outputs[0].shape[2:] == (int(h), int(w)), (fixed, text)


@pytest.mark.parametrize("attrs, message", [
    ("{filters: 4, kernel: 2, stride: 2, output_padding: 2}",
     "output_padding 2 must be smaller than the stride (2) or the dilation (1)"),
    ("{filters: 4, kernel: 3, stride: 1, output_padding: 1}",
     "output_padding 1 must be smaller than the stride (1) or the dilation (1)"),
    ("{filters: 4, kernel: 3, stride: [2, 1], output_padding: [1, 1]}",
     "output_padding 1 along the width must be smaller than the stride (1) or the dilation (1)"),
    ("{filters: 4, kernel: 3, stride: 2, dilation: 3, output_padding: 3}",
     "output_padding 3 must be smaller than the stride (2) or the dilation (3)"),
])
def test_output_padding_too_large(make_spec, attrs, message):
    path = make_spec(f"- convtranspose: {attrs}", ("N", 3, 6, 6))
    diag, text = error_of(path)
    assert diag.code == "E309" and message in diag.message
    # placed at the value of output_padding
    line = path.read_text().splitlines()[diag.span.line - 1]
    assert line[diag.span.col - 1:].startswith(attrs.split("output_padding: ")[1].rstrip("}"))
    assert "output_padding: " in text and "(the largest allowed)" in text
    fixes_work(make_spec, attrs, (3, 6, 6), text)


def test_output_padding_below_the_dilation_is_allowed(make_spec):
    """PyTorch's rule is `smaller than either stride or dilation`: 2 with stride 2 and
    dilation 3 is legal (and runs: test_hand_worked_cases)."""
    graph = check(make_spec("- convtranspose: {filters: 2, kernel: 2, stride: 2, dilation: 3, "
                            "output_padding: 2}", ("N", 2, 4, 4)))
    # (4 - 1) × 2 + 3 × 1 + 2 + 1 = 12
    assert graph.outputs[0].shape == ("N", 2, 12, 12)
    torch.nn.ConvTranspose2d(2, 2, 2, stride=2, dilation=3, output_padding=2)(
        torch.randn(1, 2, 4, 4))  # and PyTorch agrees that it is legal


def test_padding_that_crops_the_whole_output(make_spec):
    attrs = "{filters: 4, kernel: 3, stride: 2, pad: 3}"
    diag, text = error_of(make_spec(f"- convtranspose: {attrs}", ("N", 3, 1, 2)))
    assert diag.code == "E302"
    assert "the transposed conv makes 3x5 from the 1x2 input" in diag.message
    assert "height: (1 - 1) × 2 - 3 - 3 + 1 × (3 - 1) + 0 + 1 = -3, less than 1" in text
    fixes_work(make_spec, attrs, (3, 1, 2), text)


def test_same_with_a_filter_narrower_than_the_stride(make_spec):
    attrs = "{filters: 4, kernel: 1, stride: 2, pad: same}"
    diag, text = error_of(make_spec(f"- convtranspose: {attrs}", ("N", 3, 4, 4)))
    assert diag.code == "E105" and "`pad: same` can't make the output N × stride" in text
    assert "(N - 1) × 2 + 1 = N × 2 - 1" in text
    fixes_work(make_spec, attrs, (3, 4, 4), text)


@pytest.mark.parametrize("attrs, message", [
    ("{filters: 4, kernel: 2, groups: 2}", "3 input channels can't be split into 2 groups"),
    ("{filters: 5, kernel: 2, groups: 3}", "5 filters can't be split into 3 groups"),
])
def test_groups(make_spec, attrs, message):
    diag, _ = error_of(make_spec(f"- convtranspose: {attrs}", ("N", 3, 4, 4)))
    assert diag.code == "E303" and message in diag.message


def test_needs_a_map(make_spec):
    diag, _ = error_of(make_spec("- flatten\n- convtranspose: {filters: 2, kernel: 2}",
                                 ("N", 3, 4, 4)))
    assert diag.code == "E307"


# --- 5. what the commands say -----------------------------------------------------------------


def test_explain_shows_the_arithmetic(make_spec, capsys):
    from netc.cli import main

    path = make_spec("- convtranspose: {filters: 64, kernel: 2, stride: 2}\n  name: up\n"
                     "- convtranspose: {filters: 8, kernel: 4, stride: 2, pad: same_lower, "
                     "groups: 4, output_padding: 1}\n  name: up2", ("N", 128, 28, 27))
    assert main(["explain", str(path), "up"]) == 0
    out = capsys.readouterr().out
    assert ("  height: (28 - 1) × 2 - 0 - 0 + 1 × (2 - 1) + 0 + 1 = 56\n"
            "  width:  (27 - 1) × 2 - 0 - 0 + 1 × (2 - 1) + 0 + 1 = 54\n") in out
    # 128 × 64 × 2 × 2 × 28 × 27
    assert ("MACs: 24,772,608 per image = 128 input channels × 28x27 input pixels × 64 filters"
            " × 2x2 taps") in out
    assert main(["explain", str(path), "up2"]) == 0
    out = capsys.readouterr().out
    # total 4 + 1 - 2 = 3 per axis, the larger half at the start
    assert "pad: same_lower crops (top, left, bottom, right) = [2, 2, 1, 1], for an output of " \
           "N × stride, an odd total's extra pixel at the start" in out
    assert "  height: (56 - 1) × 2 - 2 - 1 + 1 × (4 - 1) + 1 + 1 = 112\n" in out
    assert "(of 8, in 4 groups)" in out


def test_graph_label(make_spec):
    from netc.tools.graph import render

    graph = check(make_spec("- convtranspose: {filters: 64, kernel: 2, stride: 2}\n"
                            "- convtranspose: {filters: 8, kernel: 3, stride: [2, 1], pad: 1}",
                            ("N", 128, 28, 28)))
    text = render(graph, "mermaid")
    assert "convtranspose 2×2/2, 64" in text and "convtranspose 3×3/2×1, 8" in text


def test_bias_before_batchnorm_and_gaps_are_warned(make_spec, capsys):
    from netc.cli import main

    path = make_spec("- convtranspose: {filters: 8, kernel: 2, stride: 2}\n- batchnorm\n"
                     "- convtranspose: {filters: 8, kernel: 1, stride: [3, 1], bias: false}\n"
                     "- convtranspose: {filters: 8, kernel: 2, stride: 2, dilation: 2, "
                     "bias: false}", ("N", 4, 5, 5))
    assert main(["check", str(path)]) == 0
    text = capsys.readouterr().err
    assert "warning[W202]: convtranspose 'convtranspose1' has a bias that batchnorm " \
           "'batchnorm1' cancels: 8 redundant parameters" in text
    # a 1x1 filter at stride 3 along the height: 2 rows of every 3 get no input
    second = text.split("warning[W203]: convtranspose 'convtranspose2'")[1].split("warning")[0]
    assert "height: 2 rows of every 3 get no input" in second and "width" not in second
    # taps 2 apart at stride 2 reach only even rows and columns
    third = text.split("warning[W203]: convtranspose 'convtranspose3'")[1]
    assert "height: 1 row of every 2 gets no input" in third
    assert "width: 1 column of every 2 gets no input" in third
    assert text.count("warning[") == 3


def test_float16_compiles_and_runs(make_spec, tmp_path):
    from netc.cli import main

    path = make_spec("- convtranspose: {filters: 4, kernel: 3, stride: 2, pad: [0, 1, 1, 0], "
                     "output_padding: 1}\n- convtranspose: {filters: 2, kernel: 3, dilation: 2, "
                     "output_padding: 1}", ("N", 3, 5, 5))
    graph = check(path)
    out16, out32 = tmp_path / "m16.onnx", tmp_path / "m32.onnx"
    assert main(["compile", str(path), "-o", str(out16), "--dtype", "float16"]) == 0
    assert main(["compile", str(path), "-o", str(out32)]) == 0
    onnx.checker.check_model(onnx.load(str(out16)), full_check=True)
    feeds = random_feeds(graph)
    [y16] = session(out16.read_bytes()).run(None, feeds)
    [y32] = session(out32.read_bytes()).run(None, feeds)
    assert y16.shape == y32.shape == concrete(graph.outputs[0].shape)
    assert relative_error(y16, y32) < 1e-2


# --- 6. issue 14's findings: fast errors, PyTorch's names, no blur kernels ---------------------


@pytest.fixture
def guarded_infer(monkeypatch):
    """ConvTranspose.infer, counted (the list of inputs it was called on), failing the test if
    it is entered while it runs: an error's search for fixes that calls the rule again makes
    each failing try start the same search, exponential in the padding (F1)."""
    from netc.layers.conv import ConvTranspose

    real, calls, depth = ConvTranspose.infer, [], [0]

    def infer(self, x):
        calls.append(x)
        depth[0] += 1
        try:
            assert depth[0] == 1, "ConvTranspose.infer entered again from its own error"
            return real(self, x)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(ConvTranspose, "infer", infer)
    return calls


@pytest.mark.parametrize("attrs, c_hw", [
    ("{filters: 2, kernel: 3, pad: 40}", (3, 16, 16)),
    ("{filters: 2, kernel: 1, pad: [0, 0, 30, 0]}", (3, 4, 4)),
    ("{filters: 2, kernel: 3, stride: 2, pad: [50, 3]}", (3, 16, 16)),
])
def test_padding_that_crops_everything_is_reported_at_once(make_spec, guarded_infer, attrs,
                                                           c_hw):
    """E302 at any padding: the rule runs once, and its fixes are tried without it (each
    hint applied gives the size it says)."""
    diag, text = error_of(make_spec(f"- convtranspose: {attrs}", ("N", *c_hw)))
    assert diag.code == "E302" and len(guarded_infer) == 1, guarded_infer
    fixes_work(make_spec, attrs, c_hw, text)


def test_sizes_of_a_padding_that_crops_small_inputs_away(make_spec, guarded_infer, capsys):
    """`netc sizes` replays sizes where `pad: 20` crops everything (E302 each): one rule call
    per size, and the sizes that check are those where PyTorch's formula leaves a pixel."""
    import json

    from netc.cli import main

    path = make_spec("- convtranspose: {filters: 2, kernel: 3, pad: 20}", ("N", 3, 64, 64))
    assert main(["sizes", str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    tried = [s["size"] for s in report["sizes"]]
    assert len(guarded_infer) == len(set(guarded_infer)), guarded_infer  # once per size
    assert report["valid"] == [n for n in tried if ref_size(n, 3, 1, 20, 20, 1, 0) >= 1]
    assert report["smallest"]["size"] == 39  # (39 - 1) - 40 + 2 + 1 = 1


@pytest.mark.parametrize("kind", ["convtranspose", "conv"])
def test_pytorchs_padding_is_offered_as_pad(make_spec, kind):
    """PyTorch's `padding` is netc's `pad` (not a convtranspose's `output_padding`), and the
    hint applied gives PyTorch's size (padding=1, kernel 3, stride 2 on 17x17: 33x33
    transposed, 9x9 plain)."""
    attrs = "{filters: 4, kernel: 3, stride: 2, padding: 1}"
    diag, text = error_of(make_spec(f"- {kind}: {attrs}", ("N", 3, 17, 17)))
    assert diag.code == "E102" and "unknown attribute 'padding'" in diag.message
    assert diag.hints[0].startswith("did you mean 'pad'?"), diag.hints
    graph = check(make_spec(f"- {kind}: {attrs.replace('padding', 'pad')}", ("N", 3, 17, 17)))
    module = (torch.nn.ConvTranspose2d if kind == "convtranspose" else torch.nn.Conv2d)(
        3, 4, 3, stride=2, padding=1)
    want = module(torch.zeros(1, 3, 17, 17)).shape
    assert graph.outputs[0].shape[1:] == tuple(want[1:])


@pytest.mark.parametrize("stride", [1, 2])
def test_gaussian_is_refused_with_fixes_that_work(make_spec, stride):
    """gaussian(SIGMA) makes a conv's kernels blurs; a transposed conv adds each input pixel's
    kernel into the output at stride steps, which is a blur at stride 1 only, and at stride 2
    quarters the mean (shown below with PyTorch), so it is refused (E105, at `init`); the
    hints' layers check."""
    attrs = f"{{filters: 3, kernel: 3, stride: {stride}, init: gaussian(1)}}"
    path = make_spec(f"- convtranspose: {attrs}", ("N", 3, 8, 8))
    diag, text = error_of(path)
    assert diag.code == "E105" and "gaussian(SIGMA) makes a conv's kernels a blur" in diag.message
    line = path.read_text().splitlines()[diag.span.line - 1]
    assert line[diag.span.col - 1:].startswith("gaussian(1)")
    layers = re.findall(r"`(- (?:conv|resize): \{[^`]*\})`", text)
    assert len(layers) == (1 if stride == 1 else 2), text
    check(make_spec("\n".join(layers), ("N", 3, 8, 8)))
    # why: one input pixel's taps sum to 1, and at stride 2 they cover 4 output pixels each
    from netc.layers.base import gaussian_kernel

    w = torch.zeros(3, 3, 3, 3, dtype=torch.float64)
    for c in range(3):
        w[c, c] = torch.from_numpy(gaussian_kernel(1.0, 3, 3))
    y = F.conv_transpose2d(torch.ones(1, 3, 32, 32, dtype=torch.float64), w, stride=2)
    assert abs(float(y[:, :, 4:-4, 4:-4].mean()) - 0.25) < 0.01
