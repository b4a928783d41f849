"""Every shipped spec: checks, compiles to a valid ONNX model, runs in ONNX Runtime, and its
counts equal the published ones (reference/numbers.md, torchvision's metadata)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import netc
from netc.cli import main
from netc.emit import IR_VERSION, OPSET, emit, serialize

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))

# Published counts: torchvision's weight metadata (num_params, "GFLOPS" = GMACs) and the modern
# LeNet-5 variant's hand count (conv1 117,600 + conv2 240,000 + fc 48,000 + 10,080 + 840).
PUBLISHED = {
    "lenet5": (61_706, 416_520, 10),
    "alexnet": (61_100_840, 714_188_480, 1000),
    "vgg16": (138_357_544, 15_470_264_320, 1000),
    "googlenet": (6_624_904, 1_498_376_192, 1000),
    "resnet18": (11_689_512, 1_814_073_344, 1000),
    "resnet34": (21_797_672, 3_663_761_408, 1000),
    "resnet50": (25_557_032, 4_089_184_256, 1000),
    "resnet101": (44_549_160, 7_801_405_440, 1000),
    "resnet152": (60_192_808, 11_513_626_624, 1000),
    "squeezenet1_1": (1_235_496, 349_151_936, 1000),
    "vgg16_bn": (138_365_992, 15_470_264_320, 1000),
    "resnext50_32x4d": (25_028_904, 4_230_479_872, 1000),
    "wide_resnet50_2": (68_883_240, 11_398_021_120, 1000),
    # torchvision's num_params (27,161,264) counts the auxiliary head (3,326,696), which
    # aux_logits=False leaves out; its 5.713 GFLOPS are those of the model without it.
    "inception_v3": (23_834_568, 5_713_216_096, 1000),
    "mnasnet1_0": (4_383_312, 314_415_872, 1000),
    "densenet121": (7_978_856, 2_834_161_664, 1000),
    "mobilenet_v2": (3_504_872, 300_774_272, 1000),
    "mobilenet_v3_small": (2_542_856, 56_510_400, 1000),
    "mobilenet_v3_large": (5_483_032, 216_589_760, 1000),
    "efficientnet_b0": (5_288_548, 385_814_752, 1000),
    "shufflenet_v2_x1_0": (2_278_604, 144_907_992, 1000),
    "regnet_y_400mf": (4_344_144, 401_842_848, 1000),
    # torchvision's 8.366 GFLOPS are at its weights' 384x384 input, as the spec's
    "efficientnet_v2_s": (21_458_488, 8_365_617_152, 1000),
    "convnext_tiny": (28_589_128, 4_455_531_264, 1000),
}
# Segmentation (N×21×520×520 out): torchvision publishes GFLOPS to three decimals at 520x520,
# counting the auxiliary head (FCNHead(1024, 21) on layer3's 1024×65×65: 9,990,432,000 MACs),
# which the specs leave out as aux_loss=False does; their parameters are checked against
# torchvision's own count in tests/data/torchvision/*.txt.
PUBLISHED_GFLOPS = {"fcn_resnet50": (152.717, 9_990_432_000),
                    "deeplabv3_resnet50": (178.722, 9_990_432_000),
                    "lraspp_mobilenet_v3_large": (2.086, 0)}

# torchvision's state_dict keys (parameters and running statistics; num_batches_tracked left
# out), written by torchvision 0.29.1 itself: see the first line of each file.
TORCHVISION_KEYS = ROOT / "tests" / "data" / "torchvision"


def test_every_published_network_is_shipped():
    assert set(PUBLISHED) <= {p.stem for p in SPECS}


@pytest.fixture(scope="module", params=SPECS, ids=lambda p: p.stem)
def compiled(request):
    path = request.param
    graph = netc.check_spec(path)
    model = emit(graph, seed=0)
    return path, graph, model


def test_check_model_full(compiled):
    _, _, model = compiled
    assert model.ir_version == IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    onnx.checker.check_model(model, full_check=True)


def test_node_names_are_layer_names(compiled):
    """Each layer's first ONNX node carries the layer's name; a layer that lowers to several
    nodes (relu6: Constant + Clip; silu: Sigmoid + Mul) names the others `<layer>/<Op><k>`."""
    _, graph, model = compiled
    names = [n.name for n in model.graph.node]
    # a `param` layer's value is its initializer (ConvNeXt's layer_scale): no node computes it
    initializers = {i.name for i in model.graph.initializer}
    layers = [n.name for n in graph.nodes if n.output.name not in initializers]
    assert [n for n in names if "/" not in n] == layers
    assert {n.split("/")[0] for n in names} == set(layers)
    assert {i.name for i in model.graph.initializer} == {w.name for w in graph.weights}


def test_onnx_shape_inference_agrees_with_netc(compiled):
    """Strip netc's value_info and let ONNX infer every intermediate shape on its own."""
    _, graph, model = compiled
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(bare, check_type=True, strict_mode=True)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = tuple(d.dim_param if d.HasField("dim_param") else d.dim_value
                                for d in dims)
    shapes.update((i.name, tuple(i.dims)) for i in model.graph.initializer)  # `param` layers
    for node in graph.nodes:
        inferred = shapes[node.name]
        # ONNX's Resize inference multiplies each dimension by its scale, and a symbolic batch
        # times 1.0 is unknown to it (`unk__0`), as is every shape after it: that much only
        # stays unsaid (netc's value_info, which ONNX Runtime reads, states N)
        assert len(inferred) == len(node.output.shape), node.name
        for got, want in zip(inferred, node.output.shape):
            unsaid = isinstance(want, str) and isinstance(got, str) and got.startswith("unk__")
            assert got == want or unsaid, node.name


def test_runs_in_onnxruntime_at_two_batch_sizes(compiled):
    """At batch 2 and 3 (1 and 2 for the segmentation networks of 20 GMACs an image and more,
    to keep CPU time short): the batch is symbolic, and every image is computed."""
    _, graph, model = compiled
    sess = ort.InferenceSession(serialize(model), providers=["CPUExecutionProvider"])
    (inp,) = graph.inputs
    for batch in (1, 2) if graph.macs >= 20e9 else (2, 3):
        x = np.random.default_rng(0).standard_normal((batch, *inp.shape[1:]), dtype=np.float32)
        outputs = sess.run(None, {inp.name: x})
        for value, out in zip(graph.outputs, outputs):
            assert out.shape == (batch, *value.shape[1:])
            assert np.isfinite(out).all()


@pytest.mark.parametrize("fixture", sorted(TORCHVISION_KEYS.glob("*.txt")), ids=lambda p: p.stem)
def test_weight_names_are_torchvision_state_dict_keys(fixture):
    graph = netc.check_spec(ROOT / "specs" / f"{fixture.stem}.yaml")
    lines = fixture.read_text().splitlines()
    keys = [k for k in lines if not k.startswith("#")]
    assert [w.name for w in graph.weights] == keys  # the same names, in the same order
    assert f"{graph.params} parameters" in lines[0]


def test_expand_round_trips_to_the_identical_model(compiled, tmp_path):
    """`netc expand` prints a flat spec that compiles to a byte-identical model."""
    from netc.tools.unparse import flat_spec

    _, graph, model = compiled
    flat = tmp_path / "flat.yaml"
    flat.write_text(flat_spec(graph), encoding="utf-8")
    again = netc.check_spec(flat)
    assert serialize(emit(again, seed=0)) == serialize(model)
    assert "blocks:" not in flat.read_text() and "repeat:" not in flat.read_text()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_summary_json_reports_published_counts(name, capsys):
    params, macs, classes = PUBLISHED[name]
    assert main(["summary", "--format", "json", str(ROOT / "specs" / f"{name}.yaml")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == params
    assert report["macs"] == macs
    assert report["flops"] == 2 * macs
    assert list(report["outputs"].values()) == [["N", classes]]
    assert sum(layer["params"] for layer in report["layers"]) == params
    assert sum(layer["macs"] for layer in report["layers"]) == macs


@pytest.mark.parametrize("name", sorted(PUBLISHED_GFLOPS))
def test_segmentation_macs_round_to_torchvisions_gflops(name, capsys):
    gflops, aux = PUBLISHED_GFLOPS[name]
    assert main(["summary", "--format", "json", str(ROOT / "specs" / f"{name}.yaml")]) == 0
    macs = json.loads(capsys.readouterr().out)["macs"]
    assert abs((macs + aux) / 1e9 - gflops) <= 0.001


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "resnet152"])
def test_big_networks_fit_on_a_screen_or_two(name):
    assert len((ROOT / "specs" / f"{name}.yaml").read_text().splitlines()) <= 150


def test_check_specs_folder(capsys):
    assert main(["check", str(ROOT / "specs")]) == 0
    assert f"checked {len(SPECS)} specs: no errors" in capsys.readouterr().out


def _compile_in_subprocess(spec: Path, out: Path, cwd: Path, env_extra: dict) -> bytes:
    env = {**os.environ, **env_extra}
    subprocess.run([sys.executable, "-m", "netc", "compile", str(spec), "-o", str(out),
                    "--seed", "7"], cwd=cwd, env=env, check=True, capture_output=True)
    return (cwd / out).read_bytes()


def test_two_compiles_are_byte_identical(tmp_path):
    """Same spec and seed in two processes, with different hash seeds, working directories,
    output paths, time zones and locales: the same bytes."""
    spec = ROOT / "specs" / "lenet5.yaml"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _compile_in_subprocess(spec, tmp_path / "a" / "m.onnx", tmp_path / "a",
                                   {"PYTHONHASHSEED": "1", "TZ": "UTC", "LC_ALL": "C"})
    second = _compile_in_subprocess(spec, Path("other.onnx"), tmp_path / "b",
                                    {"PYTHONHASHSEED": "2", "TZ": "Asia/Tokyo",
                                     "LC_ALL": "C.UTF-8"})
    assert first == second
    third = _compile_in_subprocess(spec, tmp_path / "c.onnx", tmp_path, {})
    assert third == first
    different_seed = serialize(netc.compile_spec(spec, seed=8))
    assert different_seed != first


def test_weights_are_he_normal_and_batchnorm_identity(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("netc: 1\nname: s\ninputs: {x: [N, 64, 8, 8]}\nlayers:\n"
                    "  - conv: {filters: 256, kernel: 3, pad: 1}\n  - batchnorm\n")
    model = netc.compile_spec(spec, seed=3)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    w = weights["conv1.weight"]
    assert w.shape == (256, 64, 3, 3)
    expected_std = np.sqrt(2 / (64 * 9))  # He: variance 2 / fan_in
    assert abs(w.std() / expected_std - 1) < 0.02
    assert abs(w.mean()) < 0.01 * expected_std * 10
    assert not weights["conv1.bias"].any()
    np.testing.assert_array_equal(weights["batchnorm1.weight"], 1)
    np.testing.assert_array_equal(weights["batchnorm1.bias"], 0)
    np.testing.assert_array_equal(weights["batchnorm1.running_mean"], 0)
    np.testing.assert_array_equal(weights["batchnorm1.running_var"], 1)


def test_tensor_values_do_not_depend_on_other_layers(tmp_path):
    """Each tensor is seeded by its name: adding a layer elsewhere leaves it unchanged."""
    base = "netc: 1\nname: s\ninputs: {x: [N, 3, 8, 8]}\nlayers:\n"
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(base + "  - conv: {filters: 4, kernel: 3}\n    name: c\n")
    b.write_text(base + "  - conv: {filters: 3, kernel: 1}\n    name: first\n"
                 "  - conv: {filters: 4, kernel: 3}\n    name: c\n")
    wa = {t.name: t.raw_data for t in netc.compile_spec(a).graph.initializer}
    wb = {t.name: t.raw_data for t in netc.compile_spec(b).graph.initializer}
    assert wa["c.weight"] == wb["c.weight"]
