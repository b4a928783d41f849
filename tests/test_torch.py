"""netc.torch against the ONNX model netc emits, run in ONNX Runtime (differential testing).

Every shipped spec, every row of the shape tables (test_shapes.py) and random window
geometries are built as PyTorch modules and compiled to ONNX with the same weights; both run
on the same random input (CPU, fp32, the module in eval mode) and must agree to a relative
error max|torch - onnx| / max|onnx| below 1e-5. The errors observed are far smaller (about
1e-6 on the zoo), so 1e-5 leaves room for other BLAS and convolution kernels, not for a
different rule: a window off by one pixel, padding counted in an average, or a wrong epsilon
gives errors of 1e-3 and more.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="netc.torch needs PyTorch (pip install torch)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import netc  # noqa: E402
import netc.torch  # noqa: E402
from conftest import check, random_feeds, session  # noqa: E402
from netc.emit import emit, serialize  # noqa: E402
from test_shapes import TABLE, Row, x  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
TOLERANCE = 1e-5  # max |torch - onnx| / max |onnx|
# With netc's initial weights (He-normal, identity batchnorm) MobileNetV3-Large's activations
# grow to ~400 and float32 rounding shows: against a float64 run of the same model, ONNX Runtime
# is off by 1.5e-5 and torch by 8.5e-6. With torchvision's weights the two agree to 8.3e-7
# (tests/test_torchvision.py).
LOOSER = {"mobilenet_v3_large": 3e-5, "lraspp_mobilenet_v3_large": 3e-5}  # its backbone
SEED = 3  # not netc's default, so that a seed that is dropped somewhere shows



@pytest.fixture(scope="module", autouse=True)
def two_threads():
    """Two threads, as on CI, whatever the machine; torch's setting is global, so restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
    torch.set_num_threads(before)


def relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def torch_run(model, feeds: dict) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*(torch.from_numpy(a) for a in feeds.values()))
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def netc_weights(model) -> dict[str, np.ndarray]:
    """The module's state_dict as netc reads it (without batchnorm's counters)."""
    return {k: v.numpy() for k, v in model.state_dict().items()
            if not k.endswith(".num_batches_tracked")}


def compare(graph, model, onnx_bytes, batch: int = 2) -> float:
    feeds = random_feeds(graph, batch)
    want = session(onnx_bytes).run(None, feeds)
    got = torch_run(model.eval(), feeds)
    assert len(got) == len(want) == len(graph.outputs)
    return max(relative_error(g, w) for g, w in zip(got, want))


# --- 1. every shipped spec --------------------------------------------------------------------

# the zoo at batch 2, except the networks of 4 GMACs an image and more, to keep CPU time short
BATCH = {"vgg16": 1, "resnet50": 1, "resnet101": 1, "resnet152": 1, "fcn_resnet50": 1,
         "deeplabv3_resnet50": 1, "unet": 1}


@pytest.fixture(scope="module", params=SPECS, ids=lambda p: p.stem)
def zoo(request):
    """(graph, netc.torch module, ONNX model) of a shipped spec, both from seed SEED."""
    path = request.param
    graph = netc.check_spec(path)
    model = netc.torch.build(path, seed=SEED)
    onnx_model = netc.compile_spec(path, seed=SEED)
    yield graph, model, onnx_model


def test_state_dict_keys_are_netc_weight_names(zoo):
    graph, model, _ = zoo
    keys = list(model.state_dict())
    counters = [k for k in keys if k.endswith(".num_batches_tracked")]
    assert [k for k in keys if k not in counters] == [w.name for w in graph.weights]
    # one counter per batchnorm: the only key netc does not know
    assert counters == [f"{n.name}.num_batches_tracked" for n in graph.nodes
                        if n.kind == "batchnorm"]
    trainable = {w.name for w in graph.weights if w.spec.trainable}
    assert {name for name, _ in model.named_parameters()} == trainable
    assert sum(p.numel() for p in model.parameters()) == graph.params


def test_initial_weights_are_netc_compiles(zoo):
    """`netc.torch.build(spec, seed)` starts where `netc compile --seed` does, bit for bit."""
    from onnx import numpy_helper

    _, model, onnx_model = zoo
    mine = netc_weights(model)
    theirs = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    assert list(mine) == list(theirs)
    for name, value in theirs.items():
        assert np.array_equal(mine[name], value), name


def test_outputs_match_onnxruntime(zoo, record_property):
    graph, model, onnx_model = zoo
    error = compare(graph, model, serialize(onnx_model), BATCH.get(graph.name, 2))
    record_property("relative_error", error)
    print(f"{graph.name}: relative error {error:.2e}")
    assert error < LOOSER.get(graph.name, TOLERANCE)


def test_random_weights_match_onnxruntime():
    """Batchnorm with statistics other than 0 and 1 (the initial ones hide a wrong epsilon or
    mean), loaded with load_state_dict from netc's names, then compiled from the same names."""
    graph = netc.check_spec(ROOT / "specs" / "resnet18.yaml")
    model = netc.torch.build(graph)
    weights = random_weights(graph, seed=1)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    error = compare(graph, model, serialize(emit(graph, weights=weights)))
    assert error < TOLERANCE


def random_weights(graph, seed: int) -> dict[str, np.ndarray]:
    """Every weight random, the variances positive (0.5 to 1.5)."""
    rng = np.random.default_rng(seed)
    out = {}
    for w in graph.weights:
        if w.spec.param == "running_var":
            value = rng.uniform(0.5, 1.5, w.shape)
        else:
            value = rng.standard_normal(w.shape) * np.sqrt(1 / max(w.spec.fan_in, 1))
        out[w.name] = value.astype(np.float32)
    return out


# --- 2. every layer and geometry of the shape tables -----------------------------------------

# rows the shape tables don't need, since the size alone is right, but whose values differ
# where padding or rounding is handled wrongly
EXTRA = [
    # asymmetric and large pads: F.pad before the pool, -inf for max, left out of the mean
    # height (7 + 2 + 2 - 3) / 2 + 1 = 5, width (7 + 0 + 2 - 3) / 2 + 1 = 4
    Row("max-pad-4-large", "- maxpool: {kernel: 3, stride: 2, pad: [2, 0, 2, 2]}", x(2, 7),
        ("N", 2, 5, 4)),
    Row("avg-pad-4-large", "- avgpool: {kernel: 3, stride: 2, pad: [2, 0, 2, 2]}", x(2, 7),
        ("N", 2, 5, 4)),
    Row("avg-pad-4-large-include",
        "- avgpool: {kernel: 3, stride: 2, pad: [2, 0, 2, 2], include_pad: true}", x(2, 7),
        ("N", 2, 5, 4)),
    # pad 2 of a 3x3 window: more than PyTorch's own padding allows (half the window)
    Row("max-pad-2-k3", "- maxpool: {kernel: 3, stride: 1, pad: 2}", x(2, 5), ("N", 2, 7, 7)),
    Row("avg-pad-2-k3", "- avgpool: {kernel: 3, stride: 1, pad: 2}", x(2, 5), ("N", 2, 7, 7)),
    # ceil windows over the end: the extra padding never counts, the declared one may
    Row("avg-ceil-pad1", "- avgpool: {kernel: 3, stride: 2, pad: 1, round: ceil}", x(2, 8),
        ("N", 2, 5, 5)),
    Row("avg-ceil-pad1-include",
        "- avgpool: {kernel: 3, stride: 2, pad: 1, round: ceil, include_pad: true}", x(2, 8),
        ("N", 2, 5, 5)),
    Row("avg-ceil-include", "- avgpool: {kernel: 2, round: ceil, include_pad: true}", x(2, 7),
        ("N", 2, 4, 4)),
    Row("avg-same-include", "- avgpool: {kernel: 2, stride: 2, pad: same, include_pad: true}",
        x(2, 7), ("N", 2, 4, 4)),
    Row("max-ceil-pad1", "- maxpool: {kernel: 3, stride: 2, pad: 1, round: ceil}", x(2, 8),
        ("N", 2, 5, 5)),
    # conv with everything at once: ceil, asymmetric pads, dilation and groups
    Row("conv-ceil-groups-dilation",
        "- conv: {filters: 6, kernel: 3, stride: 3, pad: [1, 0, 0, 2], dilation: 2, groups: 3,"
        " round: ceil}", x(3, 11), ("N", 6, 3, 3)),
    Row("conv-same-k4-s2", "- conv: {filters: 4, kernel: 4, stride: 2, pad: same}", x(3, 9),
        ("N", 4, 5, 5)),
    # a residual network in miniature: two outputs, several inputs, batchnorm in 2-D and 4-D
    Row("two-outputs-two-inputs",
        "- conv: {filters: 4, kernel: 3, pad: 1}\n  from: a\n- batchnorm\n- relu\n"
        "- add: {from: [relu1, b]}\n- globalavgpool\n- flatten\n- dense: 5\n- batchnorm\n"
        "- softmax", {"a": x(4, 6), "b": x(4, 6)}, ("N", 5)),
]
ALL_ROWS = TABLE + EXTRA


@pytest.mark.parametrize("row", ALL_ROWS, ids=[r.id for r in ALL_ROWS])
def test_layer_matches_onnxruntime(make_spec, row):
    outputs = ["add1", "softmax1"] if row.id == "two-outputs-two-inputs" else None
    graph = check(make_spec(row.layers, row.inputs, outputs))
    model = netc.torch.build(graph)
    weights = random_weights(graph, seed=0)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    assert compare(graph, model, serialize(emit(graph, weights=weights))) < TOLERANCE


def test_extra_row_ids_are_new():
    assert not {r.id for r in TABLE} & {r.id for r in EXTRA}


def test_every_layer_type_has_a_torch_module():
    from netc.layers import REGISTRY
    from netc.layers.base import Layer

    for kind, cls in REGISTRY.items():
        assert cls.torch_module is not Layer.torch_module, f"{kind} needs a torch_module"


# random geometries: every pool with asymmetric pads, both roundings and both averages, and
# convs with dilation and groups besides; netc's rules decide which are valid
PROPERTY = settings(max_examples=80, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
axis = st.fixed_dictionaries({
    "n": st.integers(1, 12), "k": st.integers(1, 5), "s": st.integers(1, 4),
    "pb": st.integers(0, 3), "pa": st.integers(0, 3), "d": st.integers(1, 3),
})


def window_attrs(h, w, rounding, dilation=False):
    text = (f"kernel: [{h['k']}, {w['k']}], stride: [{h['s']}, {w['s']}], "
            f"pad: [{h['pb']}, {w['pb']}, {h['pa']}, {w['pa']}], round: {rounding}")
    return text + (f", dilation: [{h['d']}, {w['d']}]" if dilation else "")


def check_or_none(path):
    try:
        return check(path)
    except netc.NetcError:
        return None  # a geometry netc refuses is not PyTorch's business


def random_feeds_differ(graph):
    """Inputs with a few repeated values, so that ties in a max are exercised too."""
    feeds = random_feeds(graph)
    for a in feeds.values():
        a[..., ::3] = np.round(a[..., ::3])
    return feeds


@PROPERTY
@given(h=axis, w=axis, rounding=st.sampled_from(["floor", "ceil"]),
       kind=st.sampled_from(["maxpool", "avgpool", "avgpool-include"]))
def test_pool_geometry_matches_onnxruntime(spec_writer, h, w, rounding, kind):
    include = ", include_pad: true" if kind == "avgpool-include" else ""
    layer = f"- {kind.split('-')[0]}: {{{window_attrs(h, w, rounding)}{include}}}"
    graph = check_or_none(spec_writer(layer, ("N", 2, h["n"], w["n"])))
    if graph is None:
        return
    feeds = random_feeds_differ(graph)
    want = session(serialize(emit(graph))).run(None, feeds)
    got = torch_run(netc.torch.build(graph).eval(), feeds)
    assert relative_error(got[0], want[0]) < TOLERANCE, layer


@PROPERTY
@given(h=axis, w=axis, rounding=st.sampled_from(["floor", "ceil"]),
       groups=st.sampled_from([1, 2]))
def test_conv_geometry_matches_onnxruntime(spec_writer, h, w, rounding, groups):
    layer = (f"- conv: {{filters: 2, groups: {groups}, "
             f"{window_attrs(h, w, rounding, dilation=True)}}}")
    graph = check_or_none(spec_writer(layer, ("N", 2, h["n"], w["n"])))
    if graph is None:
        return
    model = netc.torch.build(graph)
    weights = random_weights(graph, seed=0)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    assert compare(graph, model, serialize(emit(graph, weights=weights))) < TOLERANCE, layer


# --- 3. training, saving, loading -----------------------------------------------------------

# 14x14 -> conv 14x14 -> maxpool (14 - 3) / 2 + 1 = 6.5, ceil 7 -> avgpool (7 + 1 - 2) / 2 + 1 = 4
SMALL = """
- conv: {filters: 8, kernel: 3, pad: 1}
- batchnorm
- relu
- maxpool: {kernel: 3, stride: 2, round: ceil}
- avgpool: {kernel: 2, pad: [0, 0, 1, 1], include_pad: true}
- flatten
- dropout: 0.5
- dense: 10
"""


def test_one_sgd_step_trains(make_spec):
    path = make_spec(SMALL, x(3, 14))
    model = netc.torch.build(path, seed=SEED)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    images, labels = torch.randn(4, 3, 14, 14), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # every parameter learns; batchnorm's statistics and counter move in training mode
    assert changed == set(before), set(before) - changed
    assert after["batchnorm1.num_batches_tracked"].item() == 1
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(images)).all()


def test_trained_weights_compile_to_the_same_model(make_spec, tmp_path):
    """state_dict -> safetensors -> netc's weights: the ONNX model computes what the module
    does. (`netc compile --weights` reads the same file; here emit() gets the arrays.)"""
    safetensors = pytest.importorskip("safetensors.torch")
    path = make_spec(SMALL, x(3, 14))
    model = netc.torch.build(path, seed=SEED)
    model.train()
    torch.manual_seed(0)
    for _ in range(2):  # move the batchnorm statistics away from 0 and 1
        model(torch.randn(4, 3, 14, 14))
    file = tmp_path / "trained.safetensors"
    safetensors.save_file(model.state_dict(), str(file))
    loaded = safetensors.load_file(str(file))
    graph = check(path)
    weights = {k: v.numpy() for k, v in loaded.items() if not k.endswith("num_batches_tracked")}
    assert compare(graph, model, serialize(emit(graph, weights=weights))) < TOLERANCE
    # and back into a fresh module, strictly: every key, with or without the counters
    for state in (loaded, {k: torch.from_numpy(v) for k, v in weights.items()}):
        fresh = netc.torch.build(path, seed=SEED + 1)
        fresh.load_state_dict(state, strict=True)
        assert all(np.array_equal(a, b) for a, b in
                   zip(netc_weights(fresh).values(), netc_weights(model).values()))


# --- 4. the module itself ---------------------------------------------------------------------

NAMES = """
- conv: {filters: 4, kernel: 3, pad: 1}
  name: a.b
- batchnorm:
  name: a
- relu:
  name: train
- conv: {filters: 4, kernel: 1}
  name: graph
- flatten:
  name: forward
- dense: 3
  name: eval.weight
"""


def test_names_that_are_module_attributes(make_spec):
    """Layers called like nn.Module's methods, and `a.b` written before `a`, still give
    netc's keys; two outputs come back as a tuple."""
    path = make_spec(NAMES, x(3, 6), outputs=["eval.weight", "train"])
    graph = check(path)
    model = netc.torch.build(path)
    assert sorted(netc_weights(model)) == sorted(w.name for w in graph.weights)
    assert model.layer("a.b") is model.a.b
    assert model.layer("train") is model._modules["train"]  # model.train is the method
    assert compare(graph, model, serialize(emit(graph))) < TOLERANCE
    out = model(torch.randn(2, 3, 6, 6))
    assert isinstance(out, tuple) and [tuple(t.shape) for t in out] == [(2, 3), (2, 4, 6, 6)]


def test_replaced_layer_is_used(make_spec):
    """Fine-tuning replaces a layer's module; forward looks modules up by name each time."""
    model = netc.torch.build(make_spec("- flatten\n- dense: 10\n  name: fc", x(3, 2)))
    model.fc = torch.nn.Linear(12, 4)
    assert tuple(model(torch.randn(5, 3, 2, 2)).shape) == (5, 4)


def test_forward_checks_its_inputs(make_spec):
    model = netc.torch.build(make_spec("- relu", x(3, 4)))
    assert tuple(model(torch.randn(7, 3, 4, 4)).shape) == (7, 3, 4, 4)  # any batch
    with pytest.raises(ValueError, match=r"input 'x' of t must have shape \(N, 3, 4, 4\)"):
        model(torch.randn(2, 3, 5, 4))
    with pytest.raises(TypeError, match=r"takes 1 input\(s\) \(x\), got 2"):
        model(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4))


def test_build_takes_a_path_or_a_graph(make_spec):
    path = make_spec("- dense: 3", ("N", 5))
    from_path, from_graph = netc.torch.build(str(path)), netc.torch.build(check(path))
    assert all(torch.equal(a, b) for a, b in
               zip(from_path.state_dict().values(), from_graph.state_dict().values()))
    with pytest.raises(TypeError, match="spec path or a netc.ir.Graph"):
        netc.torch.build(42)
    with pytest.raises(netc.NetcError):
        netc.torch.build(make_spec("- conv: {filters: 1, kernel: 3, stride: 3}", x(1, 7)))


def test_module_pickles(make_spec):
    model = netc.torch.build(make_spec(SMALL, x(3, 14))).eval()
    again = pickle.loads(pickle.dumps(model))
    assert type(again) is netc.torch.Network
    images = torch.randn(2, 3, 14, 14)
    with torch.no_grad():
        assert torch.equal(model(images), again(images))


def test_netc_imports_without_torch():
    """`import netc` and `import netc.torch` never import torch; build() says what to install."""
    code = textwrap.dedent("""
        import sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("no torch here")

        sys.meta_path.insert(0, NoTorch())
        import netc, netc.torch, netc.cli
        assert "torch" not in sys.modules
        try:
            netc.torch.build("unused.yaml")
        except ImportError as e:
            print(e)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "netc.torch needs PyTorch: pip install torch" in done.stdout
