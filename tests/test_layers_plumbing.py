"""Joins that broadcast (`mul`, `add`), tensor plumbing (`shuffle`, `split`, `permute`,
`reshape`) and `dense` on the last axis, each against an independent oracle:

- the ONNX model netc emits, run in ONNX Runtime, against torch's own functions on the same
  arrays (torch.mul/add broadcasting, channel_shuffle as torchvision's ShuffleNetV2 defines
  it, torch.chunk/split, torch.permute, torch.reshape, nn.Linear on a 4-D tensor with the
  weights loaded by name), max |ORT - torch| / max |torch| <= 1e-5;
- netc.torch's module against ONNX Runtime (and pickled);
- the shapes netc infers against the shapes ONNX Runtime produces;
- the errors (their codes, the arithmetic in their details, a fix that works).

The zoo's models stay byte-identical (dense on 2-D inputs still lowers to a lone Gemm): see
test_dense_on_2d_is_still_one_gemm.
"""

from __future__ import annotations

import numpy as np
import pytest

import netc
from conftest import BATCH, check, compile_bytes, random_feeds, run, session
from netc.errors import NetcError
from netc.pipeline import Emission, check_file, runnable

torch = pytest.importorskip("torch", reason="the oracles are torch's functions")

TOLERANCE = 1e-5  # max |ort - torch| / max |torch|


def relative_error(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def channel_shuffle(x, groups: int):
    """torchvision.models.shufflenetv2.channel_shuffle, as torchvision defines it."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    x = x.view(batchsize, num_channels, height, width)
    return x


def ort_and_feeds(path, seed: int = 1, weights=None):
    """(ONNX Runtime's outputs, the feeds as torch tensors by input name)."""
    graph = check(path)
    feeds = random_feeds(graph, seed=seed)
    if weights is None:
        outs = run(compile_bytes(path, seed=seed), feeds)
    else:
        outs = session(runnable(check_file(path), Emission(weights=weights))).run(None, feeds)
    return outs, {k: torch.from_numpy(v) for k, v in feeds.items()}


def error_of(path):
    """The one error diagnostic netc reports for `path`."""
    with pytest.raises(NetcError) as caught:
        check(path)
    errors = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert len(errors) == 1, errors
    return errors[0]


# --- mul and add: numpy's broadcasting --------------------------------------------------------

PAIRS = [  # (a, b, the broadcast shape)
    (("N", 6, 1, 1), ("N", 6, 5, 5), ("N", 6, 5, 5)),  # squeeze-and-excitation
    (("N", 6, 5, 5), ("N", 6, 1, 1), ("N", 6, 5, 5)),
    (("N", 1, 5, 5), ("N", 6, 5, 5), ("N", 6, 5, 5)),  # a spatial mask
    (("N", 6, 1, 5), ("N", 6, 5, 1), ("N", 6, 5, 5)),  # both repeated
    (("N", 6, 5, 5), ("N", 6, 5, 5), ("N", 6, 5, 5)),
    ((1, 6, 5, 5), ("N", 6, 5, 5), ("N", 6, 5, 5)),  # a batch of one against N
    (("N", 7), ("N", 1), ("N", 7)),
]


@pytest.mark.parametrize("kind, fn", [("mul", torch.mul), ("add", torch.add)])
@pytest.mark.parametrize("a, b, want", PAIRS)
def test_broadcasting_against_torch(make_spec, kind, fn, a, b, want):
    path = make_spec(f"- {kind}: {{from: [a, b]}}\n  name: y", {"a": a, "b": b})
    assert check(path).outputs[0].shape == want
    [y], feeds = ort_and_feeds(path)
    expected = fn(feeds["a"], feeds["b"]).numpy()
    assert y.shape == tuple(BATCH if d == "N" else d for d in want)
    assert relative_error(y, expected) <= TOLERANCE


def test_three_inputs_multiply_in_turn(make_spec):
    path = make_spec("- mul: {from: [a, b, c]}",
                     {"a": ("N", 4, 1, 1), "b": ("N", 4, 3, 3), "c": ("N", 1, 3, 3)})
    [y], feeds = ort_and_feeds(path)
    want = feeds["a"] * feeds["b"] * feeds["c"]
    assert relative_error(y, want.numpy()) <= TOLERANCE
    assert netc.check_spec(path).nodes[-1].macs == 0


def test_equal_rank_mismatch_keeps_its_message_and_names_the_axis(make_spec):
    path = make_spec("- add: {from: [a, b]}", {"a": ("N", 64, 8, 8), "b": ("N", 128, 8, 8)})
    e = error_of(path)
    assert e.code == "E305"
    assert e.message == "add 'add1': needs inputs of one shape, got N×64×8×8 and N×128×8×8"
    assert "axis 1: 64 and 128 differ and neither is 1, so they can't broadcast" in e.details
    assert list(e.hints) == ["a residual shortcut that changes size needs a projection (a 1x1 conv "
                       "with the same stride and filters)"]


def test_mul_names_the_spatial_axis_that_doesnt_broadcast(make_spec):
    path = make_spec("- mul: {from: [a, b]}", {"a": ("N", 8, 4, 4), "b": ("N", 8, 5, 1)})
    e = error_of(path)
    assert e.code == "E305" and "got N×8×4×4 and N×8×5×1" in e.message
    assert "axis 2: 4 and 5 differ and neither is 1, so they can't broadcast" in e.details
    assert "N×C×1×1" in e.hints[0]


def test_different_ranks_are_refused_with_a_reshape(make_spec):
    path = make_spec("- mul: {from: [a, b]}", {"a": ("N", 8, 4, 4), "b": ("N", 8)})
    e = error_of(path)
    assert e.code == "E305" and "got N×8×4×4 and N×8" in e.message
    assert list(e.hints) == [
        "reshape the 2-D input to N×8×1×1 (`- reshape: {shape: [8, 1, 1]}`)"]
    fixed = make_spec("- reshape: {shape: [8, 1, 1]}\n  from: b\n- mul: {from: [a, reshape1]}",
                      {"a": ("N", 8, 4, 4), "b": ("N", 8)})
    [y], feeds = ort_and_feeds(fixed)
    want = feeds["a"] * feeds["b"][:, :, None, None]
    assert relative_error(y, want.numpy()) <= TOLERANCE


def test_a_symbolic_batch_doesnt_broadcast_against_a_size(make_spec):
    path = make_spec("- add: {from: [a, b]}", {"a": ("N", 3), "b": (4, 3)})
    e = error_of(path)
    assert "axis 0: N and 4 differ" in " ".join(e.details)


def test_explain_shows_the_broadcast(make_spec, capsys):
    from netc.cli import main

    path = make_spec("- mul: {from: [a, b]}\n  name: m", {"a": ("N", 6, 1, 1), "b": ("N", 6, 5, 5)})
    assert main(["explain", str(path), "m"]) == 0
    out = capsys.readouterr().out
    assert "shape: the inputs broadcast: N×6×1×1 and N×6×5×5 -> N×6×5×5\n" in out
    same = make_spec("- add: {from: [a, b]}\n  name: s", {"a": ("N", 6), "b": ("N", 6)})
    assert main(["explain", str(same), "s"]) == 0
    assert "shape: the 2 inputs' common shape\n" in capsys.readouterr().out


# --- shuffle ----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels, groups", [(12, 2), (12, 3), (12, 4), (8, 8), (6, 1)])
def test_shuffle_is_torchvisions_channel_shuffle(make_spec, channels, groups):
    path = make_spec(f"- shuffle: {groups}", ("N", channels, 3, 4))
    assert check(path).outputs[0].shape == ("N", channels, 3, 4)
    [y], feeds = ort_and_feeds(path)
    np.testing.assert_array_equal(y, channel_shuffle(feeds["x"], groups).numpy())


def test_shuffle_that_doesnt_divide(make_spec):
    e = error_of(make_spec("- shuffle: {groups: 5}", ("N", 12, 4, 4)))
    assert e.code == "E303" and e.message == "shuffle 'shuffle1': 12 channels can't be " \
        "shuffled in 5 groups"
    assert list(e.details) == ["12 / 5 = 2.4, not a whole number of channels per group"]
    assert list(e.hints) == ["use groups that divide 12: 2, 3, 4, 6, 12"]


def test_shuffle_needs_a_map(make_spec):
    assert error_of(make_spec("- shuffle: 2", ("N", 8))).code == "E307"


# --- split ------------------------------------------------------------------------------------


def test_split_parts_are_torch_chunk(make_spec):
    path = make_spec("""
        - split: {parts: 2, index: 0}
          name: left
        - split: {parts: 2, index: 1}
          name: right
          from: x
        - relu:
          name: branch
        - concat: {from: [left, branch]}
        - shuffle: 2
    """, ("N", 8, 3, 3), outputs=["left", "right", "shuffle1"])
    graph = check(path)
    assert [v.shape for v in graph.outputs] == [("N", 4, 3, 3)] * 2 + [("N", 8, 3, 3)]
    (left, right, out), feeds = ort_and_feeds(path)
    # ShuffleNetV2's InvertedResidual with stride 1, the branch a relu
    x1, x2 = feeds["x"].chunk(2, dim=1)
    np.testing.assert_array_equal(left, x1.numpy())
    np.testing.assert_array_equal(right, x2.numpy())
    want = channel_shuffle(torch.cat((x1, torch.relu(x2)), dim=1), 2)
    np.testing.assert_array_equal(out, want.numpy())


@pytest.mark.parametrize("index", [0, 1, 2])
def test_split_sizes_are_torch_split(make_spec, index):
    path = make_spec(f"- split: {{sizes: [2, 5, 3], index: {index}}}", ("N", 10, 2, 3))
    [y], feeds = ort_and_feeds(path)
    want = torch.split(feeds["x"], [2, 5, 3], dim=1)[index]
    assert check(path).outputs[0].shape == ("N", *want.shape[1:])
    np.testing.assert_array_equal(y, want.numpy())


def test_split_of_features(make_spec):
    path = make_spec("- split: {parts: 3, index: 2}", ("N", 9))
    [y], feeds = ort_and_feeds(path)
    np.testing.assert_array_equal(y, feeds["x"].chunk(3, dim=1)[2].numpy())


def test_split_parts_that_dont_divide(make_spec):
    e = error_of(make_spec("- split: {parts: 3, index: 0}", ("N", 8, 4, 4)))
    assert e.code == "E303" and "8 channels can't be split into 3 equal parts" in e.message
    assert list(e.details) == ["8 / 3 = 2.667, not a whole number"]
    assert list(e.hints) == ["give the sizes instead, for example `sizes: [3, 3, 2]`"]


def test_split_sizes_that_dont_add_up(make_spec):
    e = error_of(make_spec("- split: {sizes: [24, 40], index: 1}", ("N", 72, 4, 4)))
    assert e.code == "E303" and list(e.details) == ["24 + 40 = 64, not 72"]
    assert list(e.hints) == ["make them add up to 72, for example `sizes: [24, 48]`"]


def test_split_index_out_of_range(make_spec):
    e = error_of(make_spec("- split: {parts: 2, index: 2}", ("N", 8, 4, 4)))
    assert e.code == "E105" and "index 2 is out of range for 2 parts" in e.message
    assert list(e.hints) == ["use an index from 0 to 1"]


@pytest.mark.parametrize("attrs, message", [
    ("{index: 0}", "needs `parts` or `sizes`"),
    ("{parts: 2, sizes: [4, 4], index: 0}", "takes `parts` or `sizes`, not both"),
])
def test_split_needs_parts_or_sizes(make_spec, attrs, message):
    e = error_of(make_spec(f"- split: {attrs}", ("N", 8, 4, 4)))
    assert e.code == "E105" and message in e.message


# --- permute and reshape ----------------------------------------------------------------------


@pytest.mark.parametrize("dims", [[0, 2, 3, 1], [0, 3, 1, 2], [0, 1, 3, 2], [0, -1, 1, 2]])
def test_permute_is_torch_permute(make_spec, dims):
    path = make_spec(f"- permute: {{dims: {dims}}}", ("N", 2, 3, 5))
    [y], feeds = ort_and_feeds(path)
    want = feeds["x"].permute(*dims)
    assert check(path).outputs[0].shape == ("N", *want.shape[1:])
    np.testing.assert_array_equal(y, want.numpy())


@pytest.mark.parametrize("dims, detail", [
    ([0, 2, 1], "a 4-D input needs each of [0, 1, 2, 3] once"),
    ([0, 2, 2, 1], "a 4-D input needs each of [0, 1, 2, 3] once"),
    ([0, 1, 2, 4], "a 4-D input needs each of [0, 1, 2, 3] once"),
    ([1, 0, 2, 3], "axis 0 is the batch (N): it must stay first"),
])
def test_bad_permutations(make_spec, dims, detail):
    e = error_of(make_spec(f"- permute: {{dims: {dims}}}", ("N", 2, 3, 5)))
    assert e.code == "E306" and list(e.details) == [detail]


@pytest.mark.parametrize("shape, inp", [
    ([4, 3, 5], ("N", 12, 5)), ([60], ("N", 3, 4, 5)), ([-1], ("N", 3, 4, 5)),
    ([2, -1, 5], ("N", 3, 4, 5)), ([5, 4, 3], ("N", 3, 4, 5)), ([3, 2, 2, 5], ("N", 3, 4, 5)),
])
def test_reshape_is_torch_reshape(make_spec, shape, inp):
    if len(inp) == 3:  # a 3-D input is itself made by a reshape
        path = make_spec(f"- reshape: {{shape: {list(inp[1:])}}}\n- reshape: {{shape: {shape}}}",
                         ("N", 60))
    else:
        path = make_spec(f"- reshape: {{shape: {shape}}}", inp)
    [y], feeds = ort_and_feeds(path)
    want = feeds["x"].reshape(BATCH, *shape)
    assert check(path).outputs[0].shape == ("N", *want.shape[1:])
    np.testing.assert_array_equal(y, want.numpy())


def test_reshape_volumes_differ(make_spec):
    e = error_of(make_spec("- reshape: {shape: [10, 7]}", ("N", 4, 4, 4)))
    assert e.code == "E305" and "can't reshape N×4×4×4 into N×10×7" in e.message
    assert list(e.details) == [
        "each image has 4 × 4 × 4 = 64 values; the new shape holds 10 × 7 = 70"]


def test_reshape_minus_one_that_doesnt_divide(make_spec):
    e = error_of(make_spec("- reshape: {shape: [5, -1]}", ("N", 4, 4, 4)))
    assert e.code == "E305"
    assert list(e.details) == ["each image has 4 × 4 × 4 = 64 values, which the other sizes' "
                               "product 5 doesn't divide (64 / 5 = 12.8)"]


@pytest.mark.parametrize("shape, code", [("[-1, -1]", "E105"), ("[0, 64]", "E105"),
                                         ("[-2, 32]", "E105"), ("8", "E103"), ("[]", "E103"),
                                         ("[4, 2.5]", "E103")])
def test_reshape_bad_shapes(make_spec, shape, code):
    assert error_of(make_spec(f"- reshape: {{shape: {shape}}}", ("N", 4, 4, 4))).code == code


# --- dense on the last axis -------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_dense_on_the_last_axis_is_nn_linear(make_spec, bias):
    """ConvNeXt's MLP: permute to channels last, nn.Linear on N×H×W×C, permute back."""
    path = make_spec(f"""
        - permute: {{dims: [0, 2, 3, 1]}}
        - dense: {{units: 12, axis: last, bias: {str(bias).lower()}}}
          name: fc
        - permute: {{dims: [0, 3, 1, 2]}}
    """, ("N", 8, 5, 6))
    graph = check(path)
    fc = next(n for n in graph.nodes if n.name == "fc")
    assert fc.output.shape == ("N", 5, 6, 12)
    assert [(w.name, w.spec.shape) for w in fc.weights] == \
        [("fc.weight", (12, 8))] + ([("fc.bias", (12,))] if bias else [])
    assert fc.macs == 8 * 12 * 5 * 6
    rng = np.random.default_rng(7)
    weights = {"fc.weight": rng.standard_normal((12, 8)).astype(np.float32)}
    if bias:
        weights["fc.bias"] = rng.standard_normal(12).astype(np.float32)
    [y], feeds = ort_and_feeds(path, weights=weights)
    linear = torch.nn.Linear(8, 12, bias=bias)
    linear.load_state_dict({k[3:]: torch.from_numpy(v) for k, v in weights.items()})
    with torch.no_grad():
        want = linear(feeds["x"].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert relative_error(y, want.numpy()) <= TOLERANCE


def test_dense_on_2d_is_still_one_gemm(make_spec):
    """On (N, features) both axes give today's model, byte for byte: one Gemm."""
    flat = make_spec("- flatten\n- dense: 10", ("N", 3, 4, 4))
    last = make_spec("- flatten\n- dense: {units: 10, axis: last}", ("N", 3, 4, 4))
    model = compile_bytes(flat, seed=3)
    assert compile_bytes(last, seed=3) == model
    import onnx

    ops = [n.op_type for n in onnx.load_from_string(model).graph.node]
    assert ops == ["Flatten", "Gemm"]


def test_dense_on_4d_still_asks_for_a_flatten(make_spec):
    e = error_of(make_spec("- conv: {filters: 8, kernel: 3}\n- dense: 10", ("N", 3, 32, 32)))
    assert e.code == "E304" and e.message.endswith("needs a flat input (N, features), got "
                                                   "N×8×30×30")
    assert list(e.hints) == ["add `- flatten` before it (that gives 7,200 features)"]


def test_dense_on_3d_offers_the_last_axis(make_spec):
    e = error_of(make_spec("- reshape: {shape: [4, 6]}\n- dense: 10", ("N", 24)))
    assert e.code == "E304"
    assert e.hints[1] == ("or, for 6 features on the last axis with the other axes kept, "
                          "write `axis: last`")


def test_dense_last_explained(make_spec, capsys):
    from netc.cli import main

    path = make_spec("- permute: {dims: [0, 2, 3, 1]}\n- dense: {units: 3, axis: last}\n"
                     "  name: fc", ("N", 8, 5, 6))
    assert main(["explain", str(path), "fc"]) == 0
    out = capsys.readouterr().out
    assert "shape: (N, 5, 6, 8 features) -> (N, 5, 6, 3 units)\n" in out
    assert "MACs: 720 per image = 8 features × 3 units × 30 positions (5 × 6)" in out


# --- netc.torch against ONNX Runtime, float16, the schema -------------------------------------

SE_SHUFFLE = """
    - conv: {filters: 16, kernel: 3, pad: 1}
      name: c
    - globalavgpool
    - conv: {filters: 16, kernel: 1}
    - sigmoid:
      name: s
    - mul: {from: [s, c]}
      name: m
    - shuffle: 4
    - split: {parts: 2, index: 1}
      name: right
    - split: {sizes: [3, 13], index: 0, from: m}
      name: left
    - permute: {dims: [0, 2, 3, 1]}
      from: right
    - dense: {units: 5, axis: last}
      name: fc
    - permute: {dims: [0, 3, 1, 2]}
    - reshape: {shape: [5, -1]}
    - add: {from: [reshape1, reshape1]}
"""


def test_netc_torch_matches_onnx_runtime_and_pickles(make_spec, tmp_path):
    import netc.torch

    path = make_spec(SE_SHUFFLE, ("N", 8, 6, 6), outputs=["add1", "left"])
    outs, feeds = ort_and_feeds(path, seed=2)
    model = netc.torch.build(path, seed=2)
    model.train(False)
    assert list(model.state_dict()) == ["c.weight", "c.bias", "conv1.weight", "conv1.bias",
                                        "fc.weight", "fc.bias"]
    with torch.no_grad():
        got = model(feeds["x"])
    assert [tuple(g.shape) for g in got] == [(BATCH, 5, 36), (BATCH, 3, 6, 6)]
    for g, want in zip(got, outs):
        assert relative_error(g.numpy(), want) <= TOLERANCE
    torch.save(model, tmp_path / "m.pt")
    again = torch.load(tmp_path / "m.pt", weights_only=False)
    with torch.no_grad():
        np.testing.assert_array_equal(again(feeds["x"])[0].numpy(), got[0].numpy())


def test_float16_passes_the_full_check(make_spec, tmp_path):
    import onnx

    from netc.cli import main

    path = make_spec(SE_SHUFFLE, ("N", 8, 6, 6), outputs=["add1", "left"])
    out = tmp_path / "m.onnx"
    assert main(["compile", str(path), "-o", str(out), "--dtype", "float16"]) == 0
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    x = np.random.default_rng(0).standard_normal((BATCH, 8, 6, 6)).astype(np.float32)
    shapes = [y.shape for y in session(out.read_bytes()).run(None, {"x": x})]
    assert shapes == [(BATCH, 5, 36), (BATCH, 3, 6, 6)]


def test_list_attributes_in_the_schema():
    """A list-of-integers attribute (`dims`, `sizes`, `shape`): an array of bounded integers
    in the schema (and, in blocks, of integers or `$` expressions)."""
    import jsonschema

    from netc.layers import REGISTRY, attributes
    from netc.tools.schema import _attributes

    [dims] = [a for a in attributes(REGISTRY["permute"]) if a.name == "dims"]
    assert dims.kind == "ints" and dims.required
    for expressions in (False, True):
        schema = _attributes("permute", expressions)
        jsonschema.validate({"dims": [0, 2, 3, 1]}, schema)
        for bad in ({"dims": 3}, {"dims": []}, {"dims": [0, 9]}, {"dims": [0.5]}):
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(bad, schema)
    jsonschema.validate({"dims": [0, "$axis"]}, _attributes("permute", True))


# --- shorthands and other libraries' names (issue 14: F2, F11, m2) ----------------------------

# (the list shorthand, the mapping it stands for, the torch function on the same input)
LIST_SHORTHANDS = [
    ("resize: [0.5, 3]", "resize: {scale: [0.5, 3]}",
     lambda x: F().interpolate(x, scale_factor=(0.5, 3.0), mode="nearest")),
    ("crop: [10, 12]", "crop: {size: [10, 12]}",
     lambda x: x[:, :, 3:13, 4:16]),  # a centre crop of 16x20: (16 - 10) / 2, (20 - 12) / 2
    ("pad: [0, 0, 1, 2]", "pad: {amount: [0, 0, 1, 2]}",
     lambda x: F().pad(x, (0, 2, 0, 1))),  # [top, left, bottom, right]; F.pad: (l, r, t, b)
    ("maxpool: [2, 4]", "maxpool: {kernel: [2, 4]}",
     lambda x: F().max_pool2d(x, (2, 4))),
    ("adaptiveavgpool: [3, 5]", "adaptiveavgpool: {output: [3, 5]}",
     lambda x: F().adaptive_avg_pool2d(x, (3, 5))),
]


def F():
    return torch.nn.functional


@pytest.mark.parametrize("short, mapping, fn", LIST_SHORTHANDS)
def test_a_list_is_the_main_attribute(make_spec, short, mapping, fn):
    """`- maxpool: [2, 4]` is `- maxpool: {kernel: [2, 4]}`, as `- maxpool: 2` is
    `{kernel: 2}`: the same model, byte for byte, computing what torch does."""
    path = make_spec(f"- {short}", ("N", 3, 16, 20))
    assert compile_bytes(path) == compile_bytes(make_spec(f"- {mapping}", ("N", 3, 16, 20)))
    [got], feeds = ort_and_feeds(path)
    want = fn(feeds["x"]).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("line, hint, fixed", [
    ("conv: [3, 3]", "write its attributes as a mapping, for example `- conv: {filters: 16, "
     "kernel: 3}`", "conv: {filters: 16, kernel: 3}"),
    ("relu: [1]", "relu takes no attributes: write `- relu`", "relu"),
    ("split: [1, 2]", "for example `- split: {index: ...}`", None),
])
def test_other_lists_of_attributes_show_the_mapping(make_spec, line, hint, fixed):
    """A list where the main attribute takes none (or there is none): E103 at the list,
    with the mapping form (which checks, where it is complete)."""
    path = make_spec(f"- {line}", ("N", 3, 8, 8))
    diag = error_of(path)
    assert diag.code == "E103" and "must be a mapping, not a list" in diag.message
    assert hint in diag.hints[0], diag.hints
    text = path.read_text().splitlines()[diag.span.line - 1]
    assert text[diag.span.col - 1:].startswith(line.split(": ", 1)[1])
    if fixed:
        check(make_spec(f"- {fixed}", ("N", 3, 8, 8)))


def test_a_list_shorthand_never_drops_the_defaults(tmp_path):
    """`defaults: {maxpool: {stride: 1}}` applies to `- maxpool: [2, 2]` as to `- maxpool: 2`
    (8x8 -> 7x7), or, where the list reaches the checker unmerged, is refused (E103): never
    the pool without its default (4x4)."""
    text = ("netc: 1\nname: t\ninputs: {x: [N, 3, 8, 8]}\ndefaults:\n  maxpool: {stride: 1}\n"
            "layers:\n  - maxpool: ")
    scalar, listed = tmp_path / "scalar.yaml", tmp_path / "list.yaml"
    scalar.write_text(text + "2\n")
    assert check(scalar).outputs[0].shape == ("N", 3, 7, 7)
    listed.write_text(text + "[2, 2]\n")
    try:
        graph = check(listed)
    except NetcError as e:
        [diag] = e.diagnostics.items
        assert diag.code == "E103" and "`- maxpool: {kernel: [2, 2]}`" in diag.hints[0]
    else:
        assert graph.outputs[0].shape == ("N", 3, 7, 7)


@pytest.mark.parametrize("word, meant", [
    ("deconv", "convtranspose"), ("Deconvolution", "convtranspose"),
    ("conv2d_transpose", "convtranspose"), ("Conv2DTranspose", "convtranspose"),
    ("TransposedConv2d", "convtranspose"), ("nn.ConvTranspose2d", "convtranspose"),
    ("conv_transpose2d", "convtranspose"), ("Convolution2D", "conv"), ("conv2d", "conv"),
    ("Conv2D", "conv"), ("nn.Conv2d", "conv"),
])
def test_other_libraries_type_names(word, meant):
    """E107 offers netc's name for PyTorch's, Keras's and TensorFlow's layer types: those
    its class lists in `foreign_names`, or that are netc's once `_plain` drops the case,
    the `_` and a `2d` at the end."""
    from netc.errors import did_you_mean_type
    from netc.layers import REGISTRY

    [hint] = did_you_mean_type(word, REGISTRY)
    assert hint.startswith(f"did you mean '{meant}'?"), hint


def test_every_foreign_name_is_offered_its_own_type():
    """Each name a layer class lists in `foreign_names` is offered that type, and no name is
    listed by two types or is a netc type itself."""
    from netc.errors import did_you_mean_type
    from netc.layers import REGISTRY

    seen = {}
    for kind, cls in REGISTRY.items():
        for name in getattr(cls, "foreign_names", ()):
            assert name.lower() not in REGISTRY, name
            assert seen.setdefault(name.lower(), kind) == kind, (name, seen[name.lower()], kind)
            [hint] = did_you_mean_type(name, REGISTRY)
            assert hint == f"did you mean '{kind}'? (netc's name for {name})", hint
    assert seen  # (the conv family's, at least)


def test_every_foreign_attribute_is_offered_its_own_attribute():
    """Each entry of a layer class's `foreign_attributes` names an attribute of that class,
    which E102 offers for it (with the entry's note, where it has one)."""
    from netc.errors import did_you_mean_attribute
    from netc.layers import REGISTRY, attributes

    tables = 0
    for kind, cls in REGISTRY.items():
        names = [a.name for a in attributes(cls)]
        foreign = getattr(cls, "foreign_attributes", None) or {}
        tables += bool(foreign)
        for word, meant in foreign.items():
            name = meant if isinstance(meant, str) else meant[0]
            assert name in names and word not in names, (kind, word, name)
            [hint] = did_you_mean_attribute(word, names, foreign)
            assert hint.startswith(f"did you mean '{name}'? (netc's name for `{word}`"), hint
    assert tables >= 2


def test_pixel_shuffle_is_not_channel_shuffle():
    """PixelShuffle moves channels into space; netc's `shuffle` reorders channels."""
    from netc.errors import did_you_mean_type
    from netc.layers import REGISTRY

    assert not any("'shuffle'" in h for h in did_you_mean_type("PixelShuffle", REGISTRY))


@pytest.mark.parametrize("kind, word, meant", [
    ("convtranspose", "padding", "pad"), ("conv", "padding", "pad"),
    ("convtranspose", "out_channels", "filters"), ("conv", "out_channels", "filters"),
    ("conv", "kernel_size", "kernel"), ("conv", "strides", "stride"),
    ("conv", "dilation_rate", "dilation"), ("convtranspose", "use_bias", "bias"),
    ("conv", "kernel_initializer", "init"),
])
def test_other_libraries_attribute_names(kind, word, meant):
    """E102 offers netc's name for PyTorch's (and Keras's) before any spelling match."""
    from netc.errors import closest_attribute, did_you_mean_attribute
    from netc.layers import REGISTRY, attributes

    names = [a.name for a in attributes(REGISTRY[kind])]
    foreign = REGISTRY[kind].foreign_attributes
    assert closest_attribute(word, names, foreign) == meant
    [hint] = did_you_mean_attribute(word, names, foreign)
    assert hint.startswith(f"did you mean '{meant}'? (netc's name for `{word}`"), hint


def test_pytorch_arguments_in_a_spec(make_spec, capsys):
    """A conv written with nn.Conv2d's arguments: one E102 each, with netc's name (so no
    E101 for the `filters` and `kernel` they stand for), and `in_channels` and `inplace` to
    be removed; applied, the hints give nn.Conv2d's shape."""
    from netc.cli import main

    path = make_spec("- conv: {in_channels: 3, out_channels: 8, kernel_size: 3, padding: 1}\n"
                     "- relu: {inplace: true}", ("N", 3, 8, 8))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("error[E102]") == 5 and "E101" not in err, err
    assert "hint: netc takes the input channels from the input's shape: remove `in_channels`" \
        in err
    assert "hint: did you mean 'filters'? (netc's name for `out_channels`)" in err
    assert "hint: did you mean 'kernel'? (netc's name for `kernel_size`)" in err
    assert "hint: did you mean 'pad'? (netc's name for `padding`)" in err
    assert "hint: netc has no in-place layers: remove `inplace`" in err
    graph = check(make_spec("- conv: {filters: 8, kernel: 3, pad: 1}", ("N", 3, 8, 8)))
    want = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)(torch.zeros(1, 3, 8, 8)).shape
    assert graph.outputs[0].shape[1:] == tuple(want[1:])
