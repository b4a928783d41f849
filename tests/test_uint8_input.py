"""Compiled models carry their preprocessing and labels (ONNX metadata_props), and
`netc compile --uint8-input` makes a model whose input is raw uint8 pixels N×H×W×C.

The oracle for a --uint8-input model is the float pipeline: the same spec and weights
compiled without the option, in ONNX Runtime, fed the C×H×W floats that
`netc.images.preprocess_image` makes of real photos (itself checked against torchvision and
numpy in test_spec_images.py); the uint8 model gets `image_pixels` of the same photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import netc
import onnx_reference
from conftest import session
from netc import proto
from netc.cli import main
from netc.emit import METADATA_INPUT, UINT8_NHWC, emit, lower, model_bytes
from netc.images import from_metadata, image_pixels, open_image, preprocess_image
from netc.pipeline import Emission, compile_model, runnable, write
from netc.weights import initial_weights, save_weights

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = sorted((ROOT / "tests" / "data" / "photos").glob("*.[pj][np]g"))
F32 = np.finfo(np.float32).eps


def _graph(name):
    return netc.check_spec(ROOT / "specs" / f"{name}.yaml")


def _trained_like(graph, seed=0):
    """Initial weights with batchnorm statistics and affine parameters drawn at random, so
    that --fold-bn folds something other than identities."""
    rng = np.random.default_rng(seed)
    weights = initial_weights(graph)
    for name, value in weights.items():
        if name.endswith("running_mean"):
            weights[name] = rng.normal(0, 0.1, value.shape).astype(np.float32)
        elif name.endswith("running_var"):
            weights[name] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
    return weights


def _photos(pre):
    """(pixels N×H×W×C uint8, floats N×C×H×W float32) of the test photos."""
    images = [open_image(str(p)) for p in PHOTOS]
    pixels = np.stack([image_pixels(im, pre, str(p)) for im, p in zip(images, PHOTOS)])
    floats = np.stack([preprocess_image(im, pre, str(p)) for im, p in zip(images, PHOTOS)])
    return pixels, floats


def _logits(model, x):
    sess = session(model)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _props(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


def test_photos_are_there():
    assert len(PHOTOS) == 2  # chelsea.png and rocket.jpg: both formats go through Pillow


@pytest.mark.parametrize("name,options", [
    ("resnet18", {}),
    ("lenet5", {}),  # grayscale 32×32: one channel
    ("mobilenet_v3_small", {}),
    ("resnet18", {"fold_bn": True}),
    ("mobilenet_v3_small", {"fold_bn": True}),
])
def test_uint8_model_equals_the_float_pipeline(name, options):
    graph = _graph(name)
    weights = _trained_like(graph)
    pixels, floats = _photos(graph.preprocess)
    plain = runnable(graph, Emission(weights=weights, **options))
    uint8 = runnable(graph, Emission(weights=weights, uint8_input=True, **options))
    onnx.checker.check_model(onnx.load_from_string(uint8), full_check=True)
    want, got = _logits(plain, floats), _logits(uint8, pixels)
    assert got.shape == want.shape == (len(PHOTOS), graph.outputs[0].shape[1])
    # the normalisation is folded into one multiply and one add per value (module doc of
    # emit._uint8_input): a few float32 roundings apart from the pipeline's three steps
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("name", ["resnet18", "lenet5"])
def test_float16_uint8_model_equals_the_float16_pipeline(name):
    """With --dtype float16 the normalisation is done in float32 and rounded to float16 once,
    where the float16 model of a float input rounds that input: the two models' float16
    inputs differ only where the float32 values (a few ulps apart) fall on either side of a
    float16 rounding boundary, one float16 ulp (2^-11 relative) at a few pixels. Their logits
    agree within 1e-3 of the output's range (about two float16 ulps); both are within the 1%
    that float16 keeps of the float32 model (test_emit_options)."""
    graph = _graph(name)
    weights = _trained_like(graph)
    pixels, floats = _photos(graph.preprocess)
    f32 = _logits(runnable(graph, Emission(weights=weights)), floats)
    f16 = _logits(runnable(graph, Emission(weights=weights, dtype="float16")), floats)
    model = compile_model(graph, Emission(weights=weights, dtype="float16", uint8_input=True))
    onnx.checker.check_model(model, full_check=True)
    got = _logits(model.SerializeToString(), pixels)
    assert got.dtype == np.float32
    assert np.abs(got - f16).max() <= 1e-3 * np.abs(f16).max()
    assert np.abs(got - f32).max() <= 1e-2 * np.abs(f32).max()


@pytest.mark.parametrize("name", ["resnet18", "lenet5"])
def test_the_folded_normalisation_equals_numpy(name):
    """The float input the first layer reads (`<input>/normalized`, exposed as an output)
    equals numpy's (x * scale - mean) / std within float32 rounding: 8 ulps of its range."""
    graph = _graph(name)
    pre = graph.preprocess
    pixels, _ = _photos(pre)
    model = compile_model(graph, Emission(uint8_input=True))
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        f"{pre.input}/normalized", onnx.TensorProto.FLOAT, None))
    sess = session(model.SerializeToString())
    got = sess.run([f"{pre.input}/normalized"], {pre.input: pixels})[0]
    x = pixels.transpose(0, 3, 1, 2).astype(np.float64)
    mean = np.asarray(pre.mean).reshape(1, -1, 1, 1)
    std = np.asarray(pre.std).reshape(1, -1, 1, 1)
    want = (x * pre.scale - mean) / std
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= 8 * F32 * np.abs(want).max()


@pytest.mark.parametrize("options,added", [({}, 3), ({"dtype": "float16"}, 3),
                                           ({"fold_bn": True}, 3)])
def test_at_most_four_nodes_are_added(options, added):
    """Transpose (on the uint8 pixels), Cast, and one BatchNormalization doing
    x * (scale / std) + (-mean / std); with float16 a Cast to float16 after it takes the
    place of the float input's Cast. The network's own nodes are unchanged."""
    graph = _graph("resnet18")
    plain = emit(graph, **options)
    uint8 = emit(graph, uint8_input=True, **options)
    assert len(uint8.graph.node) - len(plain.graph.node) == added <= 4
    ops = [n.op_type for n in uint8.graph.node]
    assert ops[:3] == ["Transpose", "Cast", "BatchNormalization"]
    assert "Constant" not in ops[:4]  # the normalisation's values are initializers
    net = len(plain.graph.node) - (1 if options.get("dtype") == "float16" else 0)
    assert [(n.op_type, n.name) for n in uint8.graph.node[-net:]] == \
        [(n.op_type, n.name) for n in plain.graph.node[-net:]]
    # four values per channel, float32 (the normalisation stays float32 with float16)
    extra = {t.name: t for t in uint8.graph.initializer} \
        .keys() - {t.name for t in plain.graph.initializer}
    assert sorted(extra) == sorted(f"image/normalize.{p}" for p in
                                   ("weight", "bias", "running_mean", "running_var"))


@pytest.mark.parametrize("name,batch", [("resnet18", "N"), ("lenet5", "N"), ("fixed", 2)])
def test_the_input_is_uint8_nhwc(name, batch, tmp_path):
    if name == "fixed":
        spec = tmp_path / "fixed.yaml"
        spec.write_text("netc: 1\nname: fixed\ninputs: {img: [2, 3, 6, 5]}\n"
                        "preprocess: {mean: [0.5, 0.25, 0], std: [0.5, 2, 1]}\n"
                        "layers:\n  - conv: {filters: 4, kernel: 3}\n", encoding="utf-8")
        graph = netc.check_spec(spec)
    else:
        graph = _graph(name)
    (x,) = graph.inputs
    model = compile_model(graph, Emission(uint8_input=True))
    (inp,) = model.graph.input
    assert inp.name == x.name
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == [batch, x.shape[2], x.shape[3], x.shape[1]]
    if name == "fixed":  # runs at its batch, each channel normalised with its mean and std
        pixels = np.random.default_rng(0).integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
        floats = (pixels.transpose(0, 3, 1, 2) / 255 - np.array([0.5, 0.25, 0])[:, None, None]) \
            / np.array([0.5, 2, 1])[:, None, None]
        want = _logits(compile_model(graph).SerializeToString(), floats.astype(np.float32))
        got = _logits(model.SerializeToString(), pixels)
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_metadata_round_trips_through_a_file(tmp_path, capsys):
    out = tmp_path / "r.onnx"
    assert main(["compile", str(ROOT / "specs" / "resnet18.yaml"), "-o", str(out)]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    graph = _graph("resnet18")
    props = _props(model)
    assert set(props) == {"netc.preprocess", "netc.labels"}
    assert from_metadata(props) == (graph.preprocess, graph.labels)
    pre, labels = from_metadata(props)
    assert (pre.resize, pre.crop, len(labels)) == ((256,), (224, 224), 1000)
    assert labels[0] == "tench" and labels[-1] == "toilet tissue"  # torchvision's order
    # --uint8-input says that the input is pixels and the normalisation is inside
    assert main(["compile", str(ROOT / "specs" / "lenet5.yaml"), "--uint8-input",
                 "-o", str(out)]) == 0
    props = _props(onnx.load(str(out)))
    assert props[METADATA_INPUT] == UINT8_NHWC == "uint8-nhwc"
    lenet = _graph("lenet5")
    assert from_metadata(props) == (lenet.preprocess, lenet.labels)
    assert json.loads(props["netc.labels"]) == [str(d) for d in range(10)]


def test_every_way_to_a_model_carries_the_same_metadata(tmp_path):
    graph = _graph("lenet5")
    emission = Emission(uint8_input=True, dtype="float16")
    files = write(graph, str(tmp_path / "f.onnx"), emission)
    external = write(graph, str(tmp_path / "e.onnx"), emission, external=True)
    assert len(external) == 2  # the model and its data file
    found = [_props(onnx.load(files[0])), _props(onnx.load(external[0])),
             _props(onnx.load_from_string(runnable(graph, emission))),
             _props(compile_model(graph, emission))]
    assert all(f == found[0] for f in found) and len(found[0]) == 3
    # the byte order is fixed: keys sorted, after everything else in the model
    assert [p.key for p in compile_model(graph, emission).metadata_props] == \
        ["netc.input", "netc.labels", "netc.preprocess"]


def test_a_spec_without_preprocess_or_labels_has_no_metadata(make_spec):
    graph = netc.check_spec(make_spec("- conv: {filters: 2, kernel: 3}"))
    model = emit(graph)
    assert len(model.metadata_props) == 0
    assert from_metadata(_props(model)) == (None, None)


@pytest.mark.parametrize("args", [["--uint8-input"], ["--uint8-input", "--dtype", "float16",
                                                      "--fold-bn"]])
def test_two_compiles_are_byte_identical(args, tmp_path, capsys):
    spec = str(ROOT / "specs" / "mobilenet_v3_small.yaml")
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    assert main(["compile", spec, "-o", str(a), *args]) == 0
    assert main(["compile", spec, "-o", str(b), *args]) == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("options", [{"uint8_input": True},
                                     {"uint8_input": True, "dtype": "float16", "fold_bn": True}])
def test_bytes_equal_onnx_serialisation(options):
    """netc's hand-written protobuf (proto.py) equals onnx's for these models too."""
    graph = _graph("lenet5")
    assert model_bytes(graph, seed=5, **options) == \
        onnx_reference.model_bytes(lower(graph, seed=5, **options))


def test_metadata_props_as_onnx_writes_them():
    entries = [("netc.labels", '["ü","b"]'), ("netc.preprocess", "{}"), ("k", "")]
    model = onnx.ModelProto()
    onnx.helper.set_model_props(model, dict(entries))
    assert proto.metadata_props(entries) == model.SerializeToString(deterministic=True)


def test_without_preprocess_uint8_input_is_a_clear_error(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("netc: 1\nname: s\ninputs: {img: [N, 3, 12, 10]}\n"
                    "layers:\n  - conv: {filters: 4, kernel: 3}\n", encoding="utf-8")
    out = tmp_path / "s.onnx"
    assert main(["compile", str(spec), "--uint8-input", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error[E606]: --uint8-input puts the spec's preprocessing inside the model, and " \
        "spec 's' declares none (no `preprocess:`)" in err
    assert "Traceback" not in err and not out.exists()
    # the hint's declaration is one that works: add it and the same command compiles
    (fix,) = [line.split("`")[1] for line in err.splitlines() if "for example `" in line]
    assert fix == ("preprocess: {resize: [12, 10], mean: [0.485, 0.456, 0.406], "
                   "std: [0.229, 0.224, 0.225]}")
    spec.write_text(spec.read_text() + fix + "\n", encoding="utf-8")
    assert main(["compile", str(spec), "--uint8-input", "-o", str(out)]) == 0
    assert from_metadata(_props(onnx.load(str(out))))[0].mean == (0.485, 0.456, 0.406)


def test_with_weights_and_external_data(tmp_path, capsys):
    """--weights, --external-data, --fold-bn and --uint8-input together, from the command
    line: the model file and its data file run and equal the float model of the same
    weights; the normalisation's few values stay in the model file."""
    spec = str(ROOT / "specs" / "resnet18.yaml")
    graph = _graph("resnet18")
    weights = _trained_like(graph, seed=4)
    save_weights(str(tmp_path / "w.safetensors"), weights)
    out = tmp_path / "m.onnx"
    assert main(["compile", spec, "--uint8-input", "--fold-bn", "--external-data",
                 "--weights", str(tmp_path / "w.safetensors"), "-o", str(out)]) == 0
    assert len(list(tmp_path.glob("m.onnx.*.data"))) == 1
    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out), load_external_data=False)
    inline = {t.name for t in model.graph.initializer
              if t.data_location != onnx.TensorProto.EXTERNAL}
    assert {f"image/normalize.{p}" for p in ("weight", "bias", "running_mean",
                                              "running_var")} <= inline
    pixels, floats = _photos(graph.preprocess)
    want = _logits(runnable(graph, Emission(weights=weights)), floats)
    got = _logits(str(out), pixels)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_an_input_that_is_also_an_output_stays_uint8(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("netc: 1\nname: s\ninputs: {x: [N, 1, 4, 4]}\noutputs: [x, relu1]\n"
                    "preprocess: {mean: [0.5], std: [0.25]}\nlayers:\n  - relu\n",
                    encoding="utf-8")
    graph = netc.check_spec(spec)
    pixels = np.arange(32, dtype=np.uint8).reshape(2, 4, 4, 1) * 8
    for dtype in ("float32", "float16"):
        model = compile_model(graph, Emission(uint8_input=True, dtype=dtype))
        onnx.checker.check_model(model, full_check=True)
        same, relu = session(model.SerializeToString()).run(None, {"x": pixels})
        np.testing.assert_array_equal(same, pixels)
        want = np.maximum((pixels.transpose(0, 3, 1, 2) / 255 - 0.5) / 0.25, 0)
        np.testing.assert_allclose(relu, want, atol=1e-3 if dtype == "float16" else 1e-6)


def test_netc_weights_of_a_uint8_model_loads_back(tmp_path):
    """`netc weights` on a --uint8-input model writes the spec's weights only (its
    normalisation constants belong to the front end), so the file compiles again with
    --weights into a model with the same tensors."""
    from safetensors.numpy import load_file

    spec = ROOT / "specs" / "lenet5.yaml"
    first, again = tmp_path / "a.onnx", tmp_path / "b.onnx"
    assert main(["compile", str(spec), "--uint8-input", "--seed", "5", "-o", str(first)]) == 0
    assert main(["weights", str(first), "-o", str(tmp_path / "w.safetensors")]) == 0
    saved = load_file(str(tmp_path / "w.safetensors"))
    assert not any("/" in name for name in saved) and "conv1.weight" in saved
    assert main(["compile", str(spec), "--uint8-input", "--weights",
                 str(tmp_path / "w.safetensors"), "-o", str(again)]) == 0
    tensors = [{t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(p)).graph.initializer}
               for p in (first, again)]
    assert tensors[0].keys() == tensors[1].keys()
    assert all(np.array_equal(tensors[0][k], tensors[1][k]) for k in tensors[0])
