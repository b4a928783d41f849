"""Activation maps (`netc run --image FILE --maps DIR`) and the Gaussian filter (issue 13.6).

The PNGs are decoded with Pillow, cut into tiles by the layout netc.tools.maps documents
(recomputed here from its formulas), and the grey levels turned back into values by the scale
the legend line states; the values must equal the layer's output as ONNX Runtime computes it
on the compiled model with that layer made an output, within half a grey level. The Gaussian
conv is compared with a blur written here in numpy (scipy is not installed), on a photo.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import netc
from netc.cli import main
from netc.emit import serialize
from netc.tools import maps as netc_maps

from conftest import session

ROOT = Path(__file__).resolve().parent.parent
BLUR = ROOT / "examples" / "blur" / "blur.yaml"
LENET = ROOT / "specs" / "lenet5.yaml"
CHELSEA = ROOT / "tests" / "data" / "photos" / "chelsea.png"  # 451×300 RGB
ROCKET = ROOT / "tests" / "data" / "photos" / "rocket.jpg"  # 640×427 RGB


def run_maps(capsys, *argv) -> tuple[int, str, str]:
    code = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def layer_values(model: onnx.ModelProto, feeds: dict, names: list[str]) -> dict:
    """The oracle: each named tensor as ONNX Runtime computes it, the model's outputs set to
    exactly those tensors."""
    model = onnx.ModelProto.FromString(serialize(model))
    del model.graph.output[:]
    for name in names:
        model.graph.output.append(onnx.ValueInfoProto(name=name))
    return dict(zip(names, session(serialize(model)).run(names, feeds)))


def photo_input(path, size: int = 224) -> np.ndarray:
    """torchvision's Resize(size) + CenterCrop(size) + ToTensor on an RGB photo, written out
    with Pillow: 1×3×size×size float32 in 0..1."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    long = int(size * long / short)
    new = (size, long) if w <= h else (long, size)
    image = image.resize(new, Image.BILINEAR)
    left, top = round((new[0] - size) / 2), round((new[1] - size) / 2)
    image = image.crop((left, top, left + size, top + size))
    return (np.asarray(image, np.float32).transpose(2, 0, 1) / np.float32(255))[None]


def decode(path: Path, channels: int, height: int, width: int, legend: str) -> np.ndarray:
    """The C×H×W values drawn in `path`: tiles cut where the documented layout puts them,
    grey levels mapped back by the scale the legend line states."""
    image = Image.open(path)
    rgb = np.asarray(image.convert("RGB"))
    zoom = max(1, math.ceil(48 / max(height, width)))  # MIN_TILE = 48
    columns = math.ceil(math.sqrt(channels))
    rows = math.ceil(channels / columns)
    cell_width = max(width * zoom, 32)  # LABEL_WIDTH = 32
    header, label, gap = 18, 14, 4
    info = json.loads(image.text["netc.maps"])  # the PNG says the same numbers
    assert (info["zoom"], info["columns"], info["rows"], info["cell_width"]) \
        == (zoom, columns, rows, cell_width)
    assert (info["header"], info["label"], info["gap"]) == (header, label, gap)
    assert rgb.shape[0] == header + gap + rows * (label + height * zoom + gap)
    assert rgb.shape[1] >= gap + columns * (cell_width + gap)
    low, high = map(float, re.search(r"shared scale (\S+)\.\.(\S+) -> black\.\.white",
                                     legend).groups())
    assert info["low"] == pytest.approx(low, rel=1e-5) and info["high"] == pytest.approx(
        high, rel=1e-5)
    values = np.empty((channels, height, width))
    for c in range(channels):
        row, column = divmod(c, columns)
        left = gap + column * (cell_width + gap)
        top = header + gap + row * (label + height * zoom + gap) + label
        tile = rgb[top:top + height * zoom, left:left + width * zoom]
        assert (tile[..., 0] == tile[..., 1]).all() and (tile[..., 1] == tile[..., 2]).all()
        blocks = tile[..., 0].reshape(height, zoom, width, zoom)
        assert (blocks == blocks[:, :1, :, :1]).all()  # each value one zoom × zoom block
        values[c] = low + blocks[:, 0, :, 0] / 255.0 * (high - low)
    # just outside the tiles: the background, never a grey
    assert tuple(rgb[header, 0]) == netc_maps.BACKGROUND
    return values


def legends(out: str) -> dict[str, str]:
    """file name -> its legend line, from what `--maps` printed."""
    return {Path(m[1]).name: m[2] for m in re.finditer(r"^(\S+\.png): (.*)$", out, re.M)}


def assert_drawn(values: np.ndarray, expected: np.ndarray, legend: str) -> None:
    """Equal within half a grey level (and the printed scale's 6 significant digits)."""
    low, high = map(float, re.search(r"shared scale (\S+)\.\.(\S+)", legend).groups())
    assert low == pytest.approx(expected.min(), rel=1e-5, abs=1e-6)
    assert high == pytest.approx(expected.max(), rel=1e-5, abs=1e-6)
    step = (high - low) / 255
    np.testing.assert_allclose(values, expected, rtol=0, atol=step / 2 + 1e-5 * step + 1e-6)


# --- the maps equal the layers' outputs ------------------------------------------------------


def test_blur_example_maps_are_the_input_and_its_blur(tmp_path, capsys):
    folder = tmp_path / "maps"  # created by netc
    code, out, err = run_maps(capsys, BLUR, "--image", CHELSEA, "--maps", folder,
                              "--layers", "image,blur")
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["blur.png", "image.png"]
    lines = legends(out)
    x = photo_input(CHELSEA)
    oracle = layer_values(netc.compile_spec(str(BLUR)), {"image": x}, ["blur"])
    assert "3 maps 224×224" in lines["image.png"]
    assert_drawn(decode(folder / "image.png", 3, 224, 224, lines["image.png"]), x[0],
                 lines["image.png"])
    assert_drawn(decode(folder / "blur.png", 3, 224, 224, lines["blur.png"]),
                 oracle["blur"][0], lines["blur.png"])


def test_default_is_every_conv_layer_and_tiles_equal_their_outputs(tmp_path, capsys):
    code, out, err = run_maps(capsys, LENET, "--image", CHELSEA, "--maps", tmp_path)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv1.png", "conv2.png"]
    graph = netc.check_spec(str(LENET))
    image = Image.open(CHELSEA).convert("L").resize((32, 32), Image.BILINEAR)
    x = (np.asarray(image, np.float32) / np.float32(255))[None, None]
    oracle = layer_values(netc.compile_spec(str(LENET)), {"image": x}, ["conv1", "conv2"])
    lines = legends(out)
    for name, (c, h, w) in (("conv1", (6, 28, 28)), ("conv2", (16, 10, 10))):
        assert [n.output.shape[1:] for n in graph.nodes if n.name == name] == [(c, h, w)]
        legend = lines[f"{name}.png"]
        assert f"{c} maps {h}×{w}" in legend and "each value" in legend  # drawn larger
        assert_drawn(decode(tmp_path / f"{name}.png", c, h, w, legend), oracle[name][0], legend)


def test_an_onnx_file_alone_draws_the_same_maps(tmp_path, capsys):
    model = tmp_path / "lenet5.onnx"
    assert main(["compile", str(LENET), "-o", str(model)]) == 0
    capsys.readouterr()
    code, out, err = run_maps(capsys, model, "--image", ROCKET, "--maps", tmp_path / "m",
                              "--layers", "relu1,maxpool2")
    assert code == 0, err
    image = Image.open(ROCKET).convert("L").resize((32, 32), Image.BILINEAR)
    x = (np.asarray(image, np.float32) / np.float32(255))[None, None]
    oracle = layer_values(onnx.load(model), {"image": x}, ["relu1", "maxpool2"])
    lines = legends(out)
    for name, (c, h, w) in (("relu1", (6, 28, 28)), ("maxpool2", (16, 5, 5))):
        legend = lines[f"{name}.png"]
        assert_drawn(decode(tmp_path / "m" / f"{name}.png", c, h, w, legend),
                     oracle[name][0], legend)


def test_a_constant_layer_is_drawn_grey_and_says_so(tmp_path, capsys):
    spec = tmp_path / "zero.yaml"
    spec.write_text(LENET.read_text(encoding="utf-8").replace(
        "- conv: {filters: 6, kernel: 5}", "- conv: {filters: 6, kernel: 5, init: zeros}"),
        encoding="utf-8")
    code, out, err = run_maps(capsys, spec, "--image", CHELSEA, "--maps", tmp_path,
                              "--layers", "conv1")
    assert code == 0, err
    assert "every value is 0 (drawn grey)" in legends(out)["conv1.png"]
    rgb = np.asarray(Image.open(tmp_path / "conv1.png").convert("RGB"))
    top = 18 + 4 + 14
    assert (rgb[top:top + 56, 4:4 + 56] == netc_maps.MID_GREY).all()


def test_values_that_are_not_finite_are_drawn_red():
    maps = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    maps[1, 2, 2] = np.nan
    maps[0, 0, 0] = np.inf
    legend, png = netc_maps.draw("x", maps)
    assert "shared scale 1..16" in legend and "2 non-finite values in red" in legend
    import io

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    zoom = 16  # ceil(48 / 3)
    top, left = 18 + 4 + 14, 4
    assert tuple(rgb[top, left]) == (255, 0, 0)  # channel 0, (0, 0): +inf
    second = left + 48 + 4  # channel 1 in column 1
    assert tuple(rgb[top + 2 * zoom, second + 2 * zoom]) == (255, 0, 0)
    level = round(255 * (9 - 1) / (16 - 1))  # channel 1's first value, 9, on the scale 1..16
    assert tuple(rgb[top, second]) == (level,) * 3


# --- the Gaussian filter ---------------------------------------------------------------------


def gaussian(sigma: float, size: int) -> np.ndarray:
    """g(x, y) = e^(−(x² + y²)/2σ²)/(2πσ²) at integer offsets from the centre, normalised."""
    d = np.arange(size) - (size - 1) / 2
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    g = np.exp(-r2 / (2 * sigma ** 2)) / (2 * np.pi * sigma ** 2)
    return g / g.sum()


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each channel of C×H×W `image` correlated with `kernel`, zeros beyond the border (the
    spec's `pad: same`), output the input's size: the numpy reference."""
    k = kernel.shape[0]
    p = k // 2
    padded = np.pad(image.astype(np.float64), ((0, 0), (p, p), (p, p)))
    out = np.zeros(image.shape)
    h, w = image.shape[1:]
    for dy in range(k):
        for dx in range(k):
            out += kernel[dy, dx] * padded[:, dy:dy + h, dx:dx + w]
    return out


def test_gaussian_conv_blurs_a_photo_as_the_numpy_reference(tmp_path):
    x = photo_input(CHELSEA)
    [y] = session(serialize(netc.compile_spec(str(BLUR)))).run(None, {"image": x})
    expected = blur(x[0], gaussian(2.0, 13))
    np.testing.assert_allclose(y[0], expected, rtol=0, atol=1e-5)
    # the blur is real: it changed the photo, and kept its brightness inside the border
    assert np.abs(y[0] - x[0]).max() > 0.1
    inner = (slice(None), slice(20, -20), slice(20, -20))
    assert abs(y[0][inner].mean() - x[0][inner].mean()) < 1e-3


@pytest.mark.parametrize("layer, weight", [
    ("{filters: 3, kernel: 5, groups: 3, pad: same, init: gaussian(1.5)}", "depthwise"),
    ("{filters: 3, kernel: 5, pad: same, init: gaussian(1.5)}", "diagonal"),
])
def test_each_channel_is_blurred_separately(make_spec, layer, weight):
    path = make_spec(f"- conv: {layer}", (1, 3, 16, 16))
    weights = {t.name: onnx.numpy_helper.to_array(t)
               for t in netc.compile_spec(str(path)).graph.initializer}
    g = gaussian(1.5, 5)
    w = weights["conv1.weight"]
    if weight == "depthwise":
        assert w.shape == (3, 1, 5, 5)
        np.testing.assert_allclose(w[:, 0], np.broadcast_to(g, (3, 5, 5)), rtol=1e-6, atol=0)
    else:  # filter o blurs channel o: the other channels don't mix in
        assert w.shape == (3, 3, 5, 5)
        for o in range(3):
            for i in range(3):
                np.testing.assert_allclose(w[o, i], g if o == i else 0, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(weights["conv1.bias"], 0)
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    [y] = session(serialize(netc.compile_spec(str(path)))).run(None, {"x": x})
    np.testing.assert_allclose(y[0], blur(x[0], g), rtol=0, atol=1e-5)


def test_more_filters_than_channels_blur_channel_o_mod_channels(make_spec):
    path = make_spec("- conv: {filters: 4, kernel: 3, init: gaussian(0.8), bias: false}",
                     (1, 2, 8, 8))
    [w] = [onnx.numpy_helper.to_array(t) for t in netc.compile_spec(str(path)).graph.initializer]
    for o in range(4):
        for i in range(2):
            np.testing.assert_allclose(w[o, i], gaussian(0.8, 3) if o % 2 == i else 0,
                                       rtol=1e-6, atol=0)


@pytest.mark.parametrize("sigma, size", [(0.001, 5), (0.001, 4), (500, 3), (1.0, 4)])
def test_gaussian_kernel_at_its_extremes(sigma, size):
    from netc.layers.base import gaussian_kernel

    k = gaussian_kernel(sigma, size, size)
    assert np.isfinite(k).all() and k.sum() == pytest.approx(1, abs=1e-12)
    np.testing.assert_allclose(k, k[::-1, ::-1], rtol=0, atol=1e-15)  # symmetric
    if sigma < 0.01 and size % 2:  # a point: the identity
        np.testing.assert_allclose(k, np.eye(1, size * size, size * size // 2).reshape(
            size, size), atol=1e-12)
    elif sigma < 0.01:  # an even size: the four taps nearest the centre, a quarter each
        assert k[size // 2 - 1:size // 2 + 1, size // 2 - 1:size // 2 + 1] == pytest.approx(
            np.full((2, 2), 0.25))
    elif sigma > 100:  # flat: a box blur
        np.testing.assert_allclose(k, 1 / size ** 2, rtol=1e-5)
    else:
        np.testing.assert_allclose(k, gaussian(sigma, size), rtol=1e-12)


# --- mistakes --------------------------------------------------------------------------------


@pytest.mark.parametrize("init, says", [
    ("gaussian(0)", "must be above 0 and at most 512, got 0"),
    ("gaussian(-2)", "must be above 0 and at most 512, got -2"),
    ("gaussian(1e6)", "must be above 0 and at most 512, got 1e6"),
    ("gaussian(two)", "'two' is not a number"),
    ("gaussian", "write gaussian(VALUE), for example gaussian(1.5)"),
])
def test_bad_sigma_is_e105_with_a_fix(make_spec, capsys, init, says):
    path = make_spec(f"- conv: {{filters: 3, kernel: 5, groups: 3, init: {init}}}")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error[E105]" in err and says in err and "Traceback" not in err
    assert "hint:" in err and "gaussian(1.5)" in err


def test_gaussian_on_a_dense_layer_is_e105(make_spec, capsys):
    path = make_spec("- flatten\n- dense: {units: 4, init: gaussian(1)}")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error[E105]" in err and "dense 'dense1': gaussian(SIGMA) makes a conv's kernels " \
        "a blur, and this layer's weight is 4×147, not a conv kernel" in err
    assert "init: gaussian(1)" in err  # pointed at


@pytest.mark.parametrize("argv, code, says", [
    (["--image", CHELSEA, ROCKET], "E602", "--image gives 2"),
    (["--image", CHELSEA, "--image", ROCKET], "E602", "--image gives 2"),
    (["--image", CHELSEA.parent], "E602", "is a folder"),
    (["--image", BLUR], "E605", "it is text, not an image"),
    (["--image", CHELSEA, "--layers", "blurr"], "E111", "did you mean 'blur'?"),
    (["--image", CHELSEA, "--layers", "image, ,"], None, None),  # blanks ignored: fine
])
def test_bad_image_and_layer_arguments(tmp_path, capsys, argv, code, says):
    rc, out, err = run_maps(capsys, BLUR, "--maps", tmp_path / "m", *argv)
    if code is None:
        assert rc == 0 and sorted(p.name for p in (tmp_path / "m").iterdir()) == ["image.png"]
        return
    assert rc == 1 and f"error[{code}]" in err and says in err and "Traceback" not in err
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())


def test_a_layer_that_is_not_4d_is_e307(tmp_path, capsys):
    rc, out, err = run_maps(capsys, LENET, "--image", CHELSEA, "--maps", tmp_path,
                            "--layers", "conv1,dense1")
    assert rc == 1 and "error[E307]: layer 'dense1' is N×120: --maps draws N×C×H×W" in err
    assert "hint: layers with N×C×H×W outputs: conv1, relu1, maxpool1" in err
    assert not list(tmp_path.iterdir())  # checked before anything is drawn


def test_an_unknown_layer_of_an_onnx_file_is_e111(tmp_path, capsys):
    model = tmp_path / "lenet5.onnx"
    assert main(["compile", str(LENET), "-o", str(model)]) == 0
    capsys.readouterr()
    rc, out, err = run_maps(capsys, model, "--image", CHELSEA, "--maps", tmp_path / "m",
                            "--layers", "conv3")
    assert rc == 1 and "error[E111]" in err and "has no layer named 'conv3'" in err
    assert "did you mean" in err and "a node's output tensor" in err


def test_a_spec_without_preprocessing_is_e606(make_spec, tmp_path, capsys):
    path = make_spec("- conv: {filters: 2, kernel: 3}", ("N", 3, 16, 16))
    rc, out, err = run_maps(capsys, path, "--image", CHELSEA, "--maps", tmp_path / "m")
    assert rc == 1 and "error[E606]" in err and "has no `preprocess:`" in err
    assert "hint: declare in the spec how an image becomes input 'x'" in err
    assert not (tmp_path / "m").exists()


def foreign_model(path: Path) -> np.ndarray:
    """An .onnx file another exporter could have written (tensor names with slashes, no
    value_info), carrying netc's preprocessing metadata: a 2-filter conv, then a flatten.
    Returns the conv's weight."""
    from onnx import TensorProto, helper, numpy_helper

    from netc.images import Preprocess, to_metadata

    w = np.random.default_rng(3).standard_normal((2, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["input", "w"], ["/conv/Conv_output_0"], pads=[1] * 4),
             helper.make_node("Flatten", ["/conv/Conv_output_0"], ["logits"])]
    graph = helper.make_graph(
        nodes, "foreign", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         ["batch", 3, 20, 20])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, to_metadata(Preprocess("input", resize=(20, 20)), None))
    onnx.save(model, path)
    return w


def test_a_foreign_onnx_file_draws_its_conv_nodes(tmp_path, capsys):
    model = tmp_path / "foreign.onnx"
    w = foreign_model(model)
    rc, out, err = run_maps(capsys, model, "--image", CHELSEA, "--maps", tmp_path / "m")
    assert rc == 0, err
    [(file, legend)] = legends(out).items()
    assert file == "_conv_Conv_output_0.png"  # the slashes made file-name characters
    image = Image.open(CHELSEA).convert("RGB").resize((20, 20), Image.BILINEAR)
    x = (np.asarray(image, np.float32).transpose(2, 0, 1) / np.float32(255))[None]
    expected = np.stack([blur_with(x[0], w[o]) for o in range(2)])
    assert_drawn(decode(tmp_path / "m" / file, 2, 20, 20, legend), expected, legend)
    # its shapes are unknown until it runs: a 2-D tensor is refused after the run
    rc, out, err = run_maps(capsys, model, "--image", CHELSEA, "--maps", tmp_path / "n",
                            "--layers", "logits")
    assert rc == 1 and "error[E307]: layer 'logits' is 1×800" in err
    assert not (tmp_path / "n").exists() or not list((tmp_path / "n").iterdir())


def blur_with(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """One filter (C×k×k) on a C×H×W image, zero padding k // 2: the sum over channels of
    their correlations (`blur` with a kernel per channel)."""
    return sum(blur(image[i:i + 1], kernel[i])[0] for i in range(image.shape[0]))


def test_a_fixed_batch_other_than_one_is_e602_with_the_fix(make_spec, tmp_path, capsys):
    path = make_spec("- conv: {filters: 2, kernel: 3}", (2, 3, 16, 16))
    path.write_text(path.read_text(encoding="utf-8").replace(
        "layers:", "preprocess: {resize: [16, 16]}\nlayers:"), encoding="utf-8")
    rc, out, err = run_maps(capsys, path, "--image", CHELSEA, "--maps", tmp_path / "m")
    assert rc == 1 and "error[E602]: input 'x' must be 2×3×16×16, and the preprocessed " \
        "image is 1×3×16×16" in err
    assert "write `N` for the batch" in err


def test_maps_into_a_file_or_too_large_to_draw_are_e603(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder", encoding="utf-8")
    rc, out, err = run_maps(capsys, LENET, "--image", CHELSEA, "--maps", taken)
    assert rc == 1 and f"error[E603]: cannot create the folder '{taken}'" in err
    from netc.errors import NetcError

    grid = netc_maps.layout(4096, 224, 224)  # 64 × 64 tiles of 224 × 224
    assert grid["image_width"] * grid["image_height"] > netc_maps.MAX_DRAWN
    with pytest.raises(NetcError, match=r"E603.*4096 of 224×224.*more than the 67,108,864"):
        netc_maps.draw("big", np.broadcast_to(np.float32(0), (4096, 224, 224)))


def test_an_onnx_file_without_preprocessing_metadata_is_e606(tmp_path, capsys):
    model = tmp_path / "lenet5.onnx"
    assert main(["compile", str(LENET), "-o", str(model)]) == 0
    proto = onnx.load(model)
    del proto.metadata_props[:]
    onnx.save(proto, model)
    capsys.readouterr()
    rc, out, err = run_maps(capsys, model, "--image", CHELSEA, "--maps", tmp_path / "m")
    assert rc == 1 and "error[E606]" in err and "carries no netc.preprocess record" in err


# --- options --maps does not take, and destinations checked first (breaker 13) ----------------


@pytest.mark.parametrize("extra, says", [
    ([], "--maps draws the activation maps of one image: give it with --image FILE"),
    (["--image", CHELSEA, "--output", "x.csv"], "--output"),
    (["--image", CHELSEA, "--output", ""], "--output"),
    (["--image", CHELSEA, "--top", "3"], "--top"),
    (["--image", CHELSEA, "--batch", "5"], "--batch"),
    (["--image", CHELSEA, "--input", "x.npy"], "--input"),
    (["--image", CHELSEA, "--layers", ""], "--layers"),
    (["--image", CHELSEA, "--layers", " , "], "--layers"),
], ids=["no image", "output", "empty output", "top", "batch", "input", "empty layers",
        "blank layers"])
def test_options_maps_does_not_take_are_usage_errors(tmp_path, capsys, extra, says):
    rc, out, err = run_maps(capsys, BLUR, "--maps", tmp_path / "m", *extra)
    assert rc == 2 and "netc run: error:" in err and says in err and "Traceback" not in err
    assert not (tmp_path / "m").exists() and out == ""


def test_every_destination_is_checked_before_any_png_is_written(tmp_path, capsys):
    folder = tmp_path / "md"
    (folder / "conv2.png").mkdir(parents=True)
    rc, out, err = run_maps(capsys, LENET, "--image", CHELSEA, "--maps", folder)
    assert rc == 1 and "error[E603]" in err and "conv2.png" in err and "a folder" in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["conv2.png"]  # conv1.png not written


def test_a_file_name_too_long_for_the_folder_is_e603_before_any_png(tmp_path, capsys,
                                                                     monkeypatch):
    # a file system's limit, shorter than the map's own file name (temporary names are
    # shortened to fit, so only the name itself can be too long)
    monkeypatch.setattr(netc_maps, "_name_max", lambda folder: 8)
    rc, out, err = run_maps(capsys, LENET, "--image", CHELSEA, "--maps", tmp_path / "m")
    assert rc == 1 and "error[E603]" in err and "conv1.png" in err and "at most 8" in err, err
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())


def long_named_model(path: Path, names: list[str]) -> None:
    """An .onnx file of convs in a row, their outputs named `names`."""
    from onnx import TensorProto, helper, numpy_helper

    from netc.images import Preprocess, to_metadata

    w = np.full((3, 3, 1, 1), 0.5, np.float32)
    nodes, last = [], "input"
    for name in names:
        nodes.append(helper.make_node("Conv", [last, "w"], [name]))
        last = name
    graph = helper.make_graph(
        nodes, "long", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                      ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, to_metadata(Preprocess("input", resize=(8, 8)), None))
    onnx.save(model, path)


def test_layer_names_too_long_for_a_file_name_are_shortened(tmp_path, capsys):
    names = ["a" * 300, "a" * 299 + "b", "short"]
    model = tmp_path / "long.onnx"
    long_named_model(model, names)
    rc, out, err = run_maps(capsys, model, "--image", CHELSEA, "--maps", tmp_path / "m")
    assert rc == 0, err
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert len(files) == 3 and "short.png" in files
    assert all(len(f) <= 200 and f.endswith(".png") for f in files)
    drawn = {json.loads(Image.open(tmp_path / "m" / f).text["netc.maps"])["layer"]
             for f in files}
    assert drawn == set(names)  # each PNG still names its layer in full


def test_the_image_and_folder_are_printed_escaped(tmp_path, capsys):
    """As the --image table shows them: a newline or an escape sequence in the image's path or
    the folder's cannot break the lines or steer the terminal."""
    image = tmp_path / "cat\nx\x1b[2J.png"
    image.write_bytes(CHELSEA.read_bytes())
    folder = tmp_path / "out\x1b]0;t\x07"
    rc, out, err = run_maps(capsys, BLUR, "--image", image, "--maps", folder)
    assert rc == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "cat\\nx\\x1b[2J.png" in out and "out\\x1b]0;t\\x07" in out
    assert len(out.splitlines()) == 2  # the "ran" line, and the conv layer's
    assert sorted(p.name for p in folder.iterdir()) == ["blur.png"]
