"""`resize`, `crop` and `pad` (netc/layers/resize.py) against PyTorch and ONNX Runtime, and the
`to:` references they take (resolved by expand.py as `from:` names are).

The oracles are PyTorch's own functions, called here directly: F.interpolate (with
`scale_factor` for `scale:`, with `size` for `size:` and `to:`), F.pad, slicing at
torchvision's centre-crop offsets (and torchvision's center_crop itself where it is
installed). For each random geometry, netc's shape, ONNX Runtime's actual output shape and
PyTorch's must be equal, and so must the values: exactly for nearest modes, crops and pads
(netc copies the very pixels PyTorch copies), to float32 rounding for bilinear and bicubic.
"""

from __future__ import annotations

import math
import re
import textwrap
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import yaml

import netc
from conftest import BATCH, check, compile_bytes, session
from netc.errors import NetcError

torch = pytest.importorskip("torch", reason="the oracle is PyTorch's F.interpolate and F.pad")
F = torch.nn.functional

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
MODES = ("nearest", "nearest-exact", "bilinear", "bicubic")
INTERPOLATING = ("bilinear", "bicubic")
# bilinear and bicubic sample where PyTorch does up to float32 rounding of the positions
# (computed in another order by ONNX Runtime): within 1e-5 at the sizes of these tests (up to
# 40 pixels); test_bilinear_and_bicubic_differ_from_pytorch_by_the_sample_positions for more
RTOL = ATOL = 1e-5


def errors(path) -> list:
    """The error diagnostics netc reports for the spec at `path` (none: it checks)."""
    try:
        check(path)
    except NetcError as e:
        return list(e.diagnostics.errors)
    return []


def codes(path) -> list[str]:
    return [d.code for d in errors(path)]


def run_both(path, inputs: dict[str, np.ndarray]):
    """netc's graph, and ONNX Runtime's output for `inputs`."""
    graph = check(path)
    [y] = session(compile_bytes(path)).run(None, inputs)
    return graph, y


def feeds(*shapes, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((BATCH, *s)).astype(np.float32) for s in shapes]


def same_values(got: np.ndarray, want: np.ndarray, mode: str) -> None:
    assert got.shape == want.shape, f"ONNX Runtime {got.shape}, PyTorch {want.shape}"
    if mode in INTERPOLATING:
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_array_equal(got, want)


def onnx_spatial_shape(path) -> tuple[int, int]:
    """The output's height and width by ONNX's own shape inference (netc's value_info
    removed). ONNX leaves the batch unknown after a Resize, so only these two are compared."""
    import onnx

    model = netc.compile_spec(path, seed=0)
    onnx.checker.check_model(model, full_check=True)
    del model.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    return dims[2].dim_value, dims[3].dim_value


# --- 1. resize: random geometries against F.interpolate ----------------------------------------

# scales of every kind: whole, halves and eighths, decimals without an exact binary form
# (0.29 × 100 is 28.999999999999996 in PyTorch's double precision), and those next to the
# sizes where PyTorch's nearest copies (out = N) or halves (out = 2N) whatever the scale
SCALES = st.one_of(st.integers(1, 24).map(lambda k: k / 8),
                   st.sampled_from([0.29, 0.3, 0.7, 1.3, 1.45, 1 / 3, 2 / 3, 1.05, 2.01, 2.1,
                                    3.2, 0.99, 1.9]))


@st.composite
def geometries(draw):
    mode = draw(st.sampled_from(MODES))
    corners = draw(st.booleans()) if mode in INTERPOLATING else False
    return draw(st.integers(1, 17)), draw(st.integers(1, 17)), mode, corners


def resize_spec(spec_writer, h, w, attrs: str):
    return spec_writer(f"- resize: {{{attrs}}}", ("N", 2, h, w))


@SETTINGS
@given(geometries(), SCALES, SCALES)
def test_resize_by_a_scale_is_f_interpolate_with_scale_factor(spec_writer, geometry, sh, sw):
    h, w, mode, corners = geometry
    attrs = f"scale: [{sh!r}, {sw!r}], mode: {mode}, align_corners: {str(corners).lower()}"
    # PyTorch's output size is floor(N × scale) in double precision
    want_hw = (math.floor(h * sh), math.floor(w * sw))
    # whole: PyTorch's size is N × scale as written (10 × 0.7 = 7, whatever the double
    # 7.000000000000001), or the double product itself (3 × 0.6666666666666666 = 2.0)
    whole = all(n * s == k or n * Fraction(repr(s)) == k
                for n, s, k in ((h, sh, want_hw[0]), (w, sw, want_hw[1])))
    floor_path = resize_spec(spec_writer, h, w, attrs + ", round: floor")
    exact_path = resize_spec(spec_writer, h, w, attrs)
    if min(want_hw) < 1:  # nothing left: netc refuses, as PyTorch does
        assert codes(floor_path) == ["E310"]
        with pytest.raises(RuntimeError):
            F.interpolate(torch.zeros(1, 1, h, w), scale_factor=(sh, sw), mode=mode)
        return
    if mode == "bicubic" and not corners and want_hw == (h, w) and (sh, sw) != (1, 1):
        # PyTorch resamples an input of the output's size, ONNX Runtime copies it
        assert codes(floor_path) == ["E310"]
        return
    # exact is accepted where the products are whole, and only there
    assert codes(exact_path) == ([] if whole else ["E310"])
    [x] = feeds((2, h, w))
    graph, y = run_both(floor_path, {"x": x})
    assert graph.outputs[0].shape == ("N", 2, *want_hw)
    assert onnx_spatial_shape(floor_path) == want_hw
    want = F.interpolate(torch.from_numpy(x), scale_factor=(sh, sw), mode=mode,
                         align_corners=corners if mode in INTERPOLATING else None,
                         recompute_scale_factor=None).numpy()
    same_values(y, want, mode)


@pytest.mark.parametrize("mode", INTERPOLATING)
@pytest.mark.parametrize("n, out", [(16, 40), (100, 150), (300, 450), (520, 300)])
def test_bilinear_and_bicubic_differ_from_pytorch_by_the_sample_positions(make_spec, mode, n,
                                                                           out):
    """What docs/spec.md says of their precision: ONNX Runtime and PyTorch compute each
    source position in float32, in different orders, so the positions differ by up to about
    1e-7 × N pixels and the values by about that times the difference between neighbouring
    pixels (so it grows with the size: ~5e-6 at 16 pixels, ~5e-4 at 520 for this noise)."""
    [x] = feeds((1, n, n))
    _, y = run_both(make_spec(f"- resize: {{size: {out}, mode: {mode}}}", ("N", 1, n, n)),
                    {"x": x})
    want = F.interpolate(torch.from_numpy(x), size=(out, out), mode=mode,
                         align_corners=False).numpy()
    step = max(np.abs(np.diff(x, axis=2)).max(), np.abs(np.diff(x, axis=3)).max())
    assert np.abs(y - want).max() <= 2e-7 * n * step + 1e-6


@SETTINGS
@given(geometries(), st.integers(1, 40), st.integers(1, 40))
def test_resize_to_a_size_is_f_interpolate_with_size(spec_writer, geometry, oh, ow):
    h, w, mode, corners = geometry
    path = resize_spec(spec_writer, h, w, f"size: [{oh}, {ow}], mode: {mode}, "
                       f"align_corners: {str(corners).lower()}")
    [x] = feeds((2, h, w))
    graph, y = run_both(path, {"x": x})
    assert graph.outputs[0].shape == ("N", 2, oh, ow)
    assert onnx_spatial_shape(path) == (oh, ow)
    want = F.interpolate(torch.from_numpy(x), size=(oh, ow), mode=mode,
                         align_corners=corners if mode in INTERPOLATING else None).numpy()
    same_values(y, want, mode)


def test_nearest_is_one_resize_where_every_ratio_is_a_power_of_two(make_spec):
    """2x, 4x and 0.5x are ONNX Resize (its arithmetic is exact there); 14 -> 4 columns,
    where ONNX Runtime's Resize reads column 6 and PyTorch column 7, are gathered."""
    ops = {}
    for attrs, shape in (("scale: 2", (3, 7, 5)), ("scale: [4, 0.5]", (3, 4, 8)),
                         ("{size: [13, 4]}", (3, 13, 14)), ("{size: [26, 4]}", (3, 13, 14))):
        text = f"- resize: {attrs}" if attrs.startswith("{") else f"- resize: {{{attrs}}}"
        path = make_spec(text, ("N", *shape))
        model = netc.compile_spec(path, seed=0)
        ops[attrs] = [n.op_type for n in model.graph.node if n.op_type != "Constant"]
        [x] = feeds(shape)
        _, y = run_both(path, {"x": x})
        out = check(path).outputs[0].shape[2:]
        same_values(y, F.interpolate(torch.from_numpy(x), size=out).numpy(), "nearest")
    assert ops == {"scale: 2": ["Resize"], "scale: [4, 0.5]": ["Resize"],
                   "{size: [13, 4]}": ["Gather"],  # rows unchanged: only the columns
                   "{size: [26, 4]}": ["Gather", "Gather"]}


# --- 2. crop: slicing at torchvision's offsets ---------------------------------------------------


def centre(have: int, want: int) -> int:
    """torchvision.transforms.functional.center_crop's offset: int(round((have - want) / 2.0))
    (Python's round: half to even)."""
    return int(round((have - want) / 2.0))


@SETTINGS
@given(st.integers(1, 16), st.integers(1, 16), st.data())
def test_centre_crop_is_torchvisions_offsets(spec_writer, h, w, data):
    ch, cw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    path = spec_writer(f"- crop: {{size: [{ch}, {cw}]}}", ("N", 2, h, w))
    [x] = feeds((2, h, w))
    graph, y = run_both(path, {"x": x})
    top, left = centre(h, ch), centre(w, cw)
    np.testing.assert_array_equal(y, x[..., top:top + ch, left:left + cw])
    assert graph.outputs[0].shape == ("N", 2, ch, cw)


def test_centre_crop_is_torchvisions_center_crop(make_spec):
    tf = pytest.importorskip("torchvision.transforms.functional",
                             reason="torchvision's center_crop is the oracle here")
    for h, w, ch, cw in [(9, 8, 5, 6), (7, 7, 6, 4), (10, 5, 3, 5), (4, 11, 1, 2), (6, 6, 3, 3)]:
        path = make_spec(f"- crop: {{size: [{ch}, {cw}]}}", ("N", 2, h, w))
        [x] = feeds((2, h, w))
        _, y = run_both(path, {"x": x})
        np.testing.assert_array_equal(y, tf.center_crop(torch.from_numpy(x), [ch, cw]).numpy())


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 12), st.lists(st.integers(0, 5), min_size=4,
                                                        max_size=4))
def test_crop_amounts_are_slicing(spec_writer, h, w, amount):
    top, left, bottom, right = amount
    path = spec_writer(f"- crop: {{amount: {amount}}}", ("N", 2, h, w))
    if top + bottom >= h or left + right >= w:
        assert codes(path) == ["E310"]
        return
    [x] = feeds((2, h, w))
    _, y = run_both(path, {"x": x})
    np.testing.assert_array_equal(y, x[..., top:h - bottom, left:w - right])


# --- 3. pad: F.pad ----------------------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 9), st.integers(1, 9), st.lists(st.integers(0, 6), min_size=4, max_size=4),
       st.sampled_from(["constant", "reflect", "replicate"]), st.sampled_from([0.0, -1.5]))
def test_pad_is_f_pad(spec_writer, h, w, amount, mode, value):
    top, left, bottom, right = amount
    value = value if mode == "constant" else 0.0
    path = spec_writer(f"- pad: {{amount: {amount}, mode: {mode}, value: {value}}}",
                       ("N", 2, h, w))
    x = torch.from_numpy(feeds((2, h, w))[0])
    pads = [left, right, top, bottom]
    if mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        assert codes(path) == ["E310"]  # and PyTorch refuses it too
        with pytest.raises(RuntimeError):
            F.pad(x, pads, mode="reflect")
        return
    _, y = run_both(path, {"x": x.numpy()})
    want = F.pad(x, pads, mode=mode, value=value) if mode == "constant" \
        else F.pad(x, pads, mode=mode)
    np.testing.assert_array_equal(y, want.numpy())


@SETTINGS
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 5), st.integers(0, 5))
def test_pad_and_crop_to_a_layer_are_the_unet_formulas(spec_writer, h, w, dh, dw):
    """pad {to}: the PyTorch U-Net's F.pad(x1, [diffX // 2, diffX - diffX // 2, diffY // 2,
    diffY - diffY // 2]); crop {to} takes that back (a centre crop)."""
    layers = "- pad: {to: big}\n  from: small\n- crop: {to: small}\n  from: big\n  name: cut"
    inputs = {"small": ("N", 2, h, w), "big": ("N", 2, h + dh, w + dw)}
    path = spec_writer(layers, inputs, outputs=["pad1", "cut"])
    small, big = feeds((2, h, w), (2, h + dh, w + dw))
    padded, cut = session(compile_bytes(path)).run(None, {"small": small, "big": big})
    want = F.pad(torch.from_numpy(small), [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
    np.testing.assert_array_equal(padded, want.numpy())
    top, left = centre(h + dh, h), centre(w + dw, w)
    np.testing.assert_array_equal(cut, big[..., top:top + h, left:left + w])


# --- 4. `to:` references -----------------------------------------------------------------------

HEADER = "netc: 1\nname: t\ninputs:\n  image: [N, 3, 16, 16]\n"


def write(tmp_path, body: str, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body).lstrip("\n"), encoding="utf-8")
    return path


def position(path, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the `nth` `needle` in the file."""
    text = path.read_text(encoding="utf-8")
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1


UNET_LEVEL = """
    blocks:
      level:
        args: {filters: int}
        layers:
          - conv: {filters: $filters, kernel: 3, pad: 1}
          - maxpool: {kernel: 2, round: floor}
          - resize: {to: input, mode: bilinear}
            name: up
          - concat: {from: [up, input]}
    layers:
      - level: {filters: 4}
        name: down1
      - level: {filters: 2}
        name: down2
      - maxpool: 4
        from: down2
      - resize: {to: down1}
        name: last
"""


def test_to_inside_a_block_names_the_blocks_input(tmp_path):
    graph = check(write(tmp_path, UNET_LEVEL))
    reads = {n.name: [v.name for v in n.inputs] for n in graph.nodes}
    assert reads["down1.up"] == ["down1.maxpool1", "image"]  # the data input, then `to:`
    assert reads["down2.up"] == ["down2.maxpool1", "down1.concat1"]  # the block's output
    assert reads["last"] == ["maxpool1", "down1.concat1"]  # at the top level, too
    shapes = {n.name: n.output.shape for n in graph.nodes}
    assert shapes["down1.up"] == ("N", 4, 16, 16) and shapes["down2.concat1"] == ("N", 9, 16, 16)
    assert shapes["last"] == ("N", 9, 16, 16)


def test_a_layer_read_only_by_to_is_used(tmp_path):
    """W201 sees the dependency: `shape` is read by nothing but the resize's `to:`."""
    from netc.errors import Diagnostics
    from netc.pipeline import check_file

    body = """
        layers:
          - maxpool: 2
            name: shape
          - resize: {scale: 0.25}
            from: image
          - resize: {to: shape}
    """
    warnings = Diagnostics()
    check_file(write(tmp_path, body), warnings)
    assert [d.code for d in warnings.items] == []


def test_forward_reference_is_refused_where_it_is_written(tmp_path):
    path = write(tmp_path, """
        layers:
          - resize: {to: later}
          - relu:
            name: later
    """)
    [e] = errors(path)
    assert e.code == "E111" and "defined later" in e.message
    assert (e.span.line, e.span.col) == position(path, "later")


def test_unknown_name_suggests_one(tmp_path):
    path = write(tmp_path, "layers:\n  - conv: {filters: 2, kernel: 1}\n"
                           "  - resize: {to: conv}\n")
    [e] = errors(path)
    assert e.code == "E111" and "'conv'" in e.message
    assert e.hints == ("did you mean 'conv1'?",)
    assert (e.span.line, e.span.col) == position(path, "conv}")


def test_input_outside_a_block_is_not_a_name(tmp_path):
    path = write(tmp_path, "layers:\n  - resize: {to: input}\n")
    [e] = errors(path)
    assert e.code == "E111" and "`input` names a block's input" in e.hints[0]


@pytest.mark.parametrize("body, code, needle", [
    # two data inputs without `to:` are not read as one input and a size
    ("layers:\n  - relu\n  - resize: {from: [image, relu1]}\n", "E113", "relu1]"),
    # a `to:` that no layer resolves: from `defaults:` (one for every resize) or `first:`
    ("defaults:\n  resize: {to: image}\nlayers:\n  - resize: {mode: bilinear}\n", "E105",
     "image}"),
    ("layers:\n  - resize: {scale: 1}\n    repeat: 2\n    first: {to: image}\n", "E105", "to:"),
    ("layers:\n  - resize: {to: 3}\n", "E103", "3}"),
    ("inputs2", "E307", "flat}"),
])
def test_wrong_references(tmp_path, body, code, needle):
    if body == "inputs2":  # `to:` a value without a height and width
        path = tmp_path / "spec.yaml"
        path.write_text("netc: 1\nname: t\ninputs:\n  image: [N, 3, 8, 8]\n  flat: [N, 5]\n"
                        "layers:\n  - resize: {to: flat}\n    from: image\n", encoding="utf-8")
    else:
        path = write(tmp_path, body)
    [e] = errors(path)
    assert e.code == code, str(NetcError(e))
    assert (e.span.line, e.span.col) == position(path, needle)


def test_a_number_or_a_name_where_the_other_is_meant_gets_a_hint_that_works(tmp_path):
    """`to: 3` at the top level: quoting it gives E109 (a top-level name starts with a letter),
    so the hint says that rather than to quote it. `- resize: conv1` (a layer's name where the
    scale goes) hints `to:`, which then checks."""
    path = write(tmp_path, "layers:\n  - conv: {filters: 2, kernel: 1}\n  - resize: {to: 3}\n")
    [e] = errors(path)
    assert e.code == "E103" and "quotes" not in e.hints[0], e.hints
    assert "starts with a letter" in e.hints[0]
    assert codes(write(tmp_path, 'layers:\n  - resize: {to: "3"}\n', "q.yaml")) == ["E109"]
    for kind in ("resize", "crop", "pad"):
        body = f"layers:\n  - conv: {{filters: 2, kernel: 1, pad: 1}}\n  - {kind}: conv1\n"
        [e] = errors(write(tmp_path, body, f"{kind}.yaml"))
        assert e.code == "E103"
        [hint] = e.hints
        fix = re.search(r"`(.*)`", hint).group(1)
        assert fix == f"{kind}: {{to: conv1}}"
        fixed = write(tmp_path, body.replace(f"{kind}: conv1", fix), f"{kind}_fixed.yaml")
        assert check(fixed).outputs[0].shape[2:] == (18, 18)


def test_repeat_keeps_the_reference(tmp_path):
    graph = check(write(tmp_path, "layers:\n  - maxpool: 2\n  - resize: {to: image}\n"
                                  "    repeat: 2\n"))
    assert [[v.name for v in n.inputs] for n in graph.nodes[1:]] == [
        ["maxpool1", "image"], ["resize1.0", "image"]]


def test_expand_round_trips_to_the_identical_model(tmp_path):
    from netc.emit import emit, serialize
    from netc.tools.unparse import flat_spec

    path = write(tmp_path, UNET_LEVEL.replace("mode: bilinear", "mode: bilinear, "
                                              "align_corners: true"))
    graph = check(path)
    flat = tmp_path / "flat.yaml"
    flat.write_text(flat_spec(graph), encoding="utf-8")
    text = flat.read_text()
    assert "resize: {to: image, mode: bilinear, align_corners: true" in text
    assert "from: down1.maxpool1\n" in text  # the data input alone in `from:`
    again = check(flat)
    assert serialize(emit(again, seed=0)) == serialize(emit(graph, seed=0))


def test_sizes_checks_every_size_with_resize_to_input(tmp_path):
    """`to: input` lines the skip up whatever the size; a fixed scale only at even sizes."""
    from netc.tools.sizes import solve

    body = """
        blocks:
          level:
            layers:
              - maxpool: {kernel: 2, round: floor}
              - resize: {RESIZE}
              - concat: {from: [resize1, input]}
        layers:
          - level:
    """
    follows = solve(str(write(tmp_path, body.replace("{RESIZE}", "{to: input}"), "a.yaml")),
                    9, 24)
    assert follows.valid == list(range(9, 25))
    assert follows.exact == list(range(10, 25, 2))  # the floor pool rounds at odd sizes
    fixed = solve(str(write(tmp_path, body.replace("{RESIZE}", "2"), "b.yaml")), 9, 24)
    assert fixed.valid == list(range(10, 25, 2))


def test_graph_draws_the_reference_dotted(tmp_path):
    from netc.tools.graph import render

    graph = check(write(tmp_path, "layers:\n  - maxpool: 2\n  - resize: {to: image}\n"))
    mermaid = render(graph, "mermaid")
    assert 'i_image -.->|"size of N×3×16×16"| n_resize1' in mermaid
    assert 'n_maxpool1 -->|"N×3×8×8"| n_resize1' in mermaid
    dot = render(graph, "dot")
    assert 'label="size of N×3×16×16"' in dot.replace("headlabel", "label") and \
        "style=dotted" in dot


def test_netc_torch_takes_the_reference_as_its_second_input(tmp_path):
    import netc.torch

    path = write(tmp_path, UNET_LEVEL)
    model = netc.torch.build(path, seed=0)
    model.train(False)
    assert list(model.state_dict()) == ["down1.conv1.weight", "down1.conv1.bias",
                                        "down2.conv1.weight", "down2.conv1.bias"]
    assert type(model.layer("last")).__name__ == "Resize"
    [x] = feeds((3, 16, 16))
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    [want] = session(compile_bytes(path)).run(None, {"image": x})
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_float16_models_pass_the_full_check_and_run(tmp_path):
    import onnx

    from netc.cli import main

    body = """
        layers:
          - resize: {scale: 1.5, round: floor, mode: bilinear}
          - resize: {to: image, mode: bicubic}
          - resize: {size: [7, 9]}
          - pad: {amount: [1, 0, 2, 3], value: 0.5}
          - pad: {amount: 1, mode: reflect}
          - crop: {to: image}
            from: resize1
          - concat: {from: [crop1, image]}
          - resize: 2
    """
    path, out = write(tmp_path, body), tmp_path / "m.onnx"
    assert main(["compile", str(path), "-o", str(out), "--dtype", "float16"]) == 0
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    [x] = feeds((3, 16, 16))
    [y16] = session(out.read_bytes()).run(None, {"image": x})
    [y32] = session(compile_bytes(path)).run(None, {"image": x})
    assert y16.shape == y32.shape == (BATCH, 6, 32, 32)
    np.testing.assert_allclose(y16.astype(np.float32), y32, atol=2e-2, rtol=1e-2)


# --- 5. errors: E310 and the attributes --------------------------------------------------------


def test_a_scale_that_is_not_whole_is_e310_with_fixes_that_work(tmp_path):
    body = "layers:\n  - conv: {filters: 2, kernel: 2}\n  - resize: 1.5\n"  # 15 × 1.5 = 22.5
    path = write(tmp_path, body)
    [e] = errors(path)
    assert e.code == "E310" and "scale 1.5 doesn't give a whole number" in e.message
    assert (e.span.line, e.span.col) == position(path, "1.5")
    assert e.details == ("15 × 1.5 = 22.5 is not a whole number",)
    assert list(e.hints) == ["`scale: 2` gives 30x30; write `size: [22, 22]` or `size: [23, 23]` "
                       "instead of the scale",
                       "or declare `round: floor` for 22x22, as F.interpolate rounds down"]
    # each fix checks, and gives the size the hint says
    for fix, hw in (("resize: 2", (30, 30)), ("resize: {size: [22, 22]}", (22, 22)),
                    ("resize: {size: [23, 23]}", (23, 23)),
                    ("resize: {scale: 1.5, round: floor}", (22, 22))):
        graph = check(write(tmp_path, body.replace("resize: 1.5", fix), "fixed.yaml"))
        assert graph.outputs[0].shape[2:] == hw
    # and floor is F.interpolate's size
    assert F.interpolate(torch.zeros(1, 1, 15, 15), scale_factor=1.5).shape[2:] == (22, 22)


def test_a_decimal_scale_without_an_exact_binary_form(tmp_path):
    """100 × 0.29 is 29 in decimal, 28.999999999999996 as PyTorch computes it: it gives 28."""
    path = tmp_path / "s.yaml"
    path.write_text(HEADER.replace("16, 16", "100, 100") + "layers:\n  - resize: 0.29\n")
    [e] = errors(path)
    assert e.code == "E310"
    assert "28.999999999999996 as PyTorch computes it" in e.details[0]
    assert F.interpolate(torch.zeros(1, 1, 100, 100), scale_factor=0.29).shape[2:] == (28, 28)
    path.write_text(path.read_text().replace("0.29", "{scale: 0.29, round: floor}"))
    assert check(path).outputs[0].shape[2:] == (28, 28)


def test_a_decimal_scale_whose_product_is_whole_is_accepted(tmp_path, capsys):
    """100 × 0.07 is 7: 7.000000000000001 in double precision, which PyTorch rounds down to 7.
    netc accepts it (it was refused, its message saying PyTorch rounds 7.000000000000001 down
    to 7), and the model is F.interpolate's."""
    from netc.cli import main

    assert 100 * 0.07 != 7
    path = tmp_path / "s.yaml"
    path.write_text(HEADER.replace("16, 16", "100, 100")
                    + "layers:\n  - resize: {scale: 0.07, mode: bilinear}\n")
    assert check(path).outputs[0].shape[2:] == (7, 7)
    [x] = feeds((3, 100, 100))
    _, y = run_both(path, {"image": x})
    want = F.interpolate(torch.from_numpy(x), scale_factor=0.07, mode="bilinear",
                         align_corners=False, recompute_scale_factor=None).numpy()
    same_values(y, want, "bilinear")
    assert main(["explain", str(path), "resize1"]) == 0
    assert "height: 100 × 0.07 = 7, a whole number" in capsys.readouterr().out


# a `scale: ...`, `size: [...]` or `round: floor` a hint shows, and the size it says the fix
# gives ("`scale: 2` gives 30x30", "`round: floor` for 22x22"; a size is its own)
FIX = re.compile(r"`(scale|size|round): ([^`]+)`(?: (?:gives|for) (\d+)x(\d+))?")


def rule_error(layer, h: int, w: int):
    """The RuleError `layer` raises on an N×1×h×w input (the test fails if it checks)."""
    from netc.errors import RuleError

    with pytest.raises(RuleError) as caught:
        layer.infer(("N", 1, h, w))
    return caught.value


def applied_fixes(layer, e, h: int, w: int) -> list[tuple[str, tuple[int, int]]]:
    """Each fix that the hints of the resize E310 `e` show, applied to `layer` on an h×w
    input: it must check, and give the size the hint says. Returns (fix, size) pairs."""
    import dataclasses

    done = []
    for hint in e.hints:
        for m in FIX.finditer(hint):
            key, value = m.group(1), yaml.safe_load(m.group(2))
            if key == "scale":
                fixed = dataclasses.replace(layer, scale=value)
            elif key == "size":
                fixed = dataclasses.replace(layer, scale=None, size=value)
                said = tuple(value)
            else:
                fixed = dataclasses.replace(layer, round=value)
            if m.group(3):
                said = (int(m.group(3)), int(m.group(4)))
            elif key != "size":
                said = None
            got = fixed.infer(("N", 1, h, w))[2:]  # raises if the fix doesn't check
            assert said is None or got == said, (hint, got)
            done.append((m.group(0), got))
    return done


DECIMALS = ["0.07", "0.29", "0.1", "0.3", "0.57", "0.58", "0.7", "1.01", "1.1", "1.15", "1.3",
            "2.3", "4.35", "0.01", "0.001", "0.3333333333333333", "1.5", "0.75"]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.sampled_from(DECIMALS),
       st.sampled_from(DECIMALS), st.sampled_from(MODES), st.sampled_from(["exact", "floor"]))
def test_e310_of_a_scale_refuses_only_what_differs_and_its_fixes_check(h, w, th, tw, mode,
                                                                      round):
    """A scale is refused exactly where PyTorch's size is not N × scale as written (in exact
    decimal arithmetic) nor the double product it computes; and every fix the E310 shows
    (scales, sizes, `round: floor`) checks when applied and gives the size it says."""
    from netc.errors import RuleError
    from netc.layers.resize import Resize

    sh, sw = float(th), float(tw)
    layer = Resize(scale=(sh, sw), mode=mode, round=round)
    try:
        torch_hw = tuple(F.interpolate(torch.zeros(1, 1, h, w), scale_factor=(sh, sw),
                                       mode="nearest").shape[2:])
    except RuntimeError:  # PyTorch refuses an output with no pixels
        torch_hw = None
    try:
        got = layer.infer(("N", 1, h, w))[2:]
    except RuleError as e:
        assert e.code == "E310" and e.attr == "scale"
        fixes = applied_fixes(layer, e, h, w)
        assert fixes, e.hints
        if torch_hw is not None and round == "exact" and e.details[0].count("rounds that "
                                                                             "down"):
            # "as PyTorch computes it ..., not 29; it rounds that down to 28": never "to 29"
            assert not e.details[0].endswith(f"down to {Fraction(th) * h}")
        return
    assert got == torch_hw  # what checks is F.interpolate's size
    if round == "exact":
        for n, text, k in ((h, th, got[0]), (w, tw, got[1])):
            assert n * Fraction(text) == k or n * float(text) == k


def test_round_floor_is_hinted_only_where_it_checks():
    """16 × 1.01 = 16.16: `round: floor` would give 16x16, which bicubic refuses (PyTorch
    resamples there, ONNX Runtime copies), so the hint is not shown; for bilinear it is. The
    refusal names each axis once."""
    from netc.layers.resize import Resize

    e = rule_error(Resize(scale=1.01, mode="bicubic"), 16, 16)
    assert not [h for h in e.hints if "round" in h]
    applied_fixes(Resize(scale=1.01, mode="bicubic"), e, 16, 16)
    e = rule_error(Resize(scale=1.01, mode="bicubic", round="floor"), 16, 16)
    assert "PyTorch's bicubic still resamples" in e.message
    assert e.details == ["height and width: floor(16 × 1.01) = 16"]
    e = rule_error(Resize(scale=(1.01, 1.02), mode="bicubic", round="floor"), 16, 20)
    assert e.details == ["height: floor(16 × 1.01) = 16", "width: floor(20 × 1.02) = 20"]
    e = rule_error(Resize(scale=1.01, mode="bilinear"), 16, 16)
    assert ("`round: floor` for 16x16", (16, 16)) in applied_fixes(
        Resize(scale=1.01, mode="bilinear"), e, 16, 16)


def test_a_scale_that_leaves_no_row_hints_a_scale_that_checks():
    """16 × 0.01 leaves no row of a 16x1000 input; 1/16 on both axes would give 62.5 columns
    (E310 again), so the hint raises the height's scale alone, which F.interpolate takes."""
    from netc.layers.resize import Resize

    layer = Resize(scale=0.01)
    e = rule_error(layer, 16, 1000)
    assert e.message == "scale 0.01 makes the 16x1000 input 0x10"
    fixes = applied_fixes(layer, e, 16, 1000)
    assert fixes == [("`scale: [0.0625, 0.01]` gives 1x10", (1, 10)),
                     ("`size: [1, 10]` gives 1x10", (1, 10))]
    assert F.interpolate(torch.zeros(1, 1, 16, 1000),
                         scale_factor=(0.0625, 0.01)).shape[2:] == (1, 10)
    # 49 × float(1/49) is just below 1: the scale hinted is the next double up
    e = rule_error(Resize(scale=0.001), 49, 49)
    [(fix, got), _] = applied_fixes(Resize(scale=0.001), e, 49, 49)
    assert got == (1, 1) and fix != "`scale: 0.02040816326530612` gives 1x1"
    scale = float(fix.split("`")[1].split(": ")[1])
    assert F.interpolate(torch.zeros(1, 1, 49, 49), scale_factor=scale).shape[2:] == (1, 1)
    # 253 × s is 1 for no double s near 1/253 (just below, then just above): only the size
    e = rule_error(Resize(scale=0.001), 253, 253)
    assert applied_fixes(Resize(scale=0.001), e, 253, 253) == [("`size: [1, 1]` gives 1x1",
                                                                (1, 1))]
    assert 253 * (1 / 253) < 1 < 253 * math.nextafter(1 / 253, 1)


# a crop or pad to `to: r` that doesn't fit: the input, r, the layer, and its mode
MISFITS = [("crop", (16, 16), (20, 10), "constant"), ("pad", (16, 16), (20, 10), "constant"),
           ("pad", (16, 16), (20, 10), "reflect"), ("pad", (3, 16), (20, 10), "reflect"),
           ("crop", (14, 14), (28, 28), "constant"), ("pad", (16, 16), (10, 10), "constant"),
           ("crop", (5, 9), (9, 5), "constant"), ("pad", (5, 9), (9, 5), "replicate")]


@pytest.mark.parametrize("kind, hw, target, mode", MISFITS)
def test_crop_and_pad_to_a_layer_hint_only_fixes_that_work(make_spec, kind, hw, target, mode):
    """Each fix an E310 of `crop: {to: r}` or `pad: {to: r}` shows, written into the spec,
    checks and gives r's size, with PyTorch's values: a pad (crop) where r is larger
    (smaller) on both axes, a crop then a pad where it is larger on one, a resize to it. A
    16x16 map and a 20x10 r: a pad to r is refused as a crop to r is (their hints pointed at
    each other)."""
    padding = "" if kind == "crop" else f", mode: {mode}"
    layer = f"{{{kind}: {{to: r{padding}}}, from: image}}"
    inputs = {"image": ("N", 2, *hw), "r": ("N", 2, *target)}
    [e] = errors(make_spec(f"- {layer}", inputs))
    assert e.code == "E310" and e.hints
    x, r = feeds((2, *hw), (2, *target))
    tx = torch.from_numpy(x)
    for hint in e.hints:
        cut = re.search(r"`crop: \{size: \[(\d+), (\d+)\]\}`", hint)
        if "`resize: {to: r}`" in hint:
            fixed = "- {resize: {to: r}, from: image}"
            want = F.interpolate(tx, size=target, mode="nearest")
        elif cut:  # crop the axis that is too large, then pad to r
            ch, cw = int(cut.group(1)), int(cut.group(2))
            pad = "`pad: {to: r}`" if kind == "crop" else f"{{to: r{padding}}}"
            assert pad in hint or kind == "pad"
            fixed = (f"- {{crop: {{size: [{ch}, {cw}]}}, from: image}}\n"
                     f"- {{pad: {{to: r{padding}}}}}")
            top, left = centre(hw[0], ch), centre(hw[1], cw)
            dh, dw = target[0] - ch, target[1] - cw
            cropped = tx[..., top:top + ch, left:left + cw]
            pads = [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2]
            want = F.pad(cropped, pads, mode=mode) if mode != "constant" else \
                F.pad(cropped, pads)
        elif "`pad: {to: r}` pads up to it" in hint:
            fixed = "- {pad: {to: r}, from: image}"
            dh, dw = target[0] - hw[0], target[1] - hw[1]
            want = F.pad(tx, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        elif "`crop: {to: r}` crops down to it" in hint:
            fixed = "- {crop: {to: r}, from: image}"
            top, left = centre(hw[0], target[0]), centre(hw[1], target[1])
            want = tx[..., top:top + target[0], left:left + target[1]]
        else:
            raise AssertionError(f"a hint this test can't apply: {hint}")
        path = make_spec(fixed, inputs)
        assert check(path).outputs[0].shape == ("N", 2, *target), hint
        [y] = session(compile_bytes(path)).run(None, {"image": x, "r": r})
        np.testing.assert_array_equal(y, want.numpy())


@pytest.mark.parametrize("layer, code, needle, message", [
    ("resize: {scale: 2, align_corners: true}", "E105", "true", "align_corners applies to"),
    ("resize: {scale: 2, size: 4}", "E105", "4}", "takes one of `scale`, `size` or `to`"),
    ("resize", "E105", "resize", "needs `scale`, `size` or `to`"),
    ("resize: 0.05", "E310", "0.05", "makes the 16x16 input 0x0"),
    ("crop: 20", "E310", "20", "can't crop a 16x16 input to 20x20"),
    ("crop: {amount: [8, 0, 8, 0]}", "E310", "[8", "removing 16 rows of a 16x16 input"),
    ("pad: {amount: 16, mode: reflect}", "E310", "16, mode", "reflect padding of 16"),
    ("pad: {amount: 1, value: 2, mode: replicate}", "E105", "2,", "`value` is the value"),
    ("pad: {amount: [1, 2, 3]}", "E103", "[1", "an int, [h, w] or [top, left, bottom, right]"),
    ("resize: {scale: [1, 2, 3]}", "E103", "[1", "a number or [height, width]"),
    ("resize: {scale: -2}", "E105", "-2", "at least 0"),
    ("pad: {to: image, amount: 1}", "E105", "image,", "takes one of `amount` or `to`"),
])
def test_attribute_and_size_errors(tmp_path, layer, code, needle, message):
    path = write(tmp_path, f"layers:\n  - {layer}\n")
    [e] = errors(path)
    assert (e.code, message in e.message) == (code, True), e.message
    assert (e.span.line, e.span.col) == position(path, needle)


def test_explain_shows_the_arithmetic(tmp_path, capsys):
    from netc.cli import main

    path = write(tmp_path, "layers:\n  - pad: {amount: [1, 0, 2, 0]}\n"
                           "  - resize: {scale: 1.5, round: floor, mode: bilinear}\n"
                           "  - crop: {to: image}\n")
    assert main(["explain", str(path), "resize1"]) == 0
    out = capsys.readouterr().out
    assert "height: 19 × 1.5 = 28.5, rounded down by `round: floor` to 28" in out
    assert "width:  16 × 1.5 = 24, a whole number" in out
    assert main(["explain", str(path), "crop1"]) == 0
    out = capsys.readouterr().out
    assert "top  = round((28 - 16) / 2) = 6" in out and "left = round((24 - 16) / 2) = 4" in out
    assert "image" in out.split("inputs:")[1]  # the `to:` value is one of its inputs


def test_bicubic_that_keeps_the_size_is_refused_because_onnx_runtime_copies(make_spec):
    """floor(1 × 1) and floor(2 × 1.125) keep a 1x2 map at 1x2: PyTorch's bicubic still
    resamples it (at 1/1.125 apart), while ONNX Runtime's Resize copies an input of the
    output's size; netc refuses rather than differ. Both halves are checked here, so that the
    refusal goes when ONNX Runtime changes."""
    from onnx import TensorProto, helper

    path = make_spec("- resize: {scale: [1, 1.125], round: floor, mode: bicubic}",
                     ("N", 2, 1, 2))
    [e] = errors(path)
    assert e.code == "E310" and "PyTorch's bicubic still resamples" in e.message
    nodes = [helper.make_node("Constant", [], ["s"], value=helper.make_tensor(
                 "s", TensorProto.FLOAT, [4], [1, 1, 1, 1.125])),
             helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic",
                              coordinate_transformation_mode="half_pixel")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 2, 1, 2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    [x] = feeds((2, 1, 2))
    [y] = session(model.SerializeToString()).run(None, {"x": x})
    np.testing.assert_array_equal(y, x)  # ONNX Runtime copies
    want = F.interpolate(torch.from_numpy(x), scale_factor=(1, 1.125), mode="bicubic",
                         align_corners=False).numpy()
    assert np.abs(want - x).max() > 1e-3  # PyTorch doesn't


def test_the_schema_takes_the_new_attributes():
    jsonschema = pytest.importorskip("jsonschema")
    from netc.tools.schema import spec_schema

    validator = jsonschema.Draft7Validator(spec_schema())
    good = {"netc": 1, "name": "t", "inputs": {"x": ["N", 3, 8, 8]}, "layers": [
        {"resize": 2}, {"resize": {"scale": [1.5, 2], "round": "floor", "mode": "bicubic"}},
        {"resize": {"to": "x", "mode": "nearest-exact"}}, {"crop": 4},
        {"crop": {"to": "resize1"}}, {"crop": {"amount": [0, 1, 0, 1]}},
        {"pad": 1}, {"pad": {"amount": [1, 2], "mode": "replicate"}},
        {"pad": {"to": "x", "value": -1.5}}]}
    assert not [e.message for e in validator.iter_errors(good)]
    for layer in ({"resize": {"to": 3}}, {"resize": {"scale": [1, 2, 3]}},
                  {"resize": {"mode": "area"}}, {"pad": {"amount": [1, 2, 3]}},
                  {"pad": {"amount": "same"}}, {"crop": {"to": "a b"}}):
        assert list(validator.iter_errors({**good, "layers": [layer]})), layer
