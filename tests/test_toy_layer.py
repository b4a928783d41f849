"""One layer, one place: layer types defined here, in a test file, and nowhere in netc, are
checked, summarised, explained, drawn, documented, put in the schema, expanded, compiled (in
float32 and float16), run, given weights by name and built as torch modules correctly,
because every command asks the layer's class.

- `upsample2x`: nearest-neighbour upsampling by 2 (N×C×8×8 -> N×C×16×16), lowered as Reshape
  -> Expand -> Reshape (each pixel repeated into a 2x2 block);
- `chanscale`: y = factor · weight[c] · x, with a float attribute (a Constant in the model's
  precision), a learned weight per channel, MACs, and a module class of its own for
  netc.torch (which must pickle).

The oracles: numpy, ONNX Runtime's actual outputs, onnx.checker, torch.nn.Upsample.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pytest

import netc
from conftest import compile_bytes, random_feeds, run, session
from netc.cli import main
from netc.errors import RuleError
from netc.layers import REGISTRY, Layer, ShapePreserving, WeightSpec, attr, layer


def _define():
    @layer("upsample2x")
    @dataclass(frozen=True)
    class Upsample2x(Layer):
        """Nearest-neighbour upsampling by 2: N×C×H×W -> N×C×2H×2W.

        `- upsample2x`"""

        def infer(self, x):
            if len(x) != 4:
                raise RuleError("needs an N×C×H×W input", code="E307", input=0)
            return (x[0], x[1], 2 * x[2], 2 * x[3])

        def equation(self, out, x):
            return [f"shape: every pixel repeated 2x2: {x[2]}x{x[3]} × 2 = {out[2]}x{out[3]}"]

        def label(self):
            return "upsample ×2"

        def lower(self, b, xs, w, out):
            x, (h, wd) = xs[0], out.shape[2:]
            b.constant(f"{out.name}/split", [0, 0, h // 2, 1, wd // 2, 1])
            b.constant(f"{out.name}/tile", [1, 1, 1, 2, 1, 2])
            b.constant(f"{out.name}/shape", [0, 0, h, wd])
            b.node("Reshape", [x.name, f"{out.name}/split"], f"{out.name}/split6")
            b.node("Expand", [f"{out.name}/split6", f"{out.name}/tile"], f"{out.name}/tiled")
            b.node("Reshape", [f"{out.name}/tiled", f"{out.name}/shape"], out.name)

        def torch_module(self, x, nn, classes):
            return nn.Upsample(scale_factor=2, mode="nearest")

    return Upsample2x


@lru_cache(maxsize=None)
def _chanscale_module(torch):
    class ChanScale(torch.nn.Module):
        def __init__(self, channels: int, factor: float) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(channels))
            self.factor = factor

        def forward(self, x):
            return x * self.weight.view(-1, 1, 1) * self.factor

    return ChanScale


# at module level, so that a model holding it pickles; registered by the fixture only
@dataclass(frozen=True)
class ChanScale(ShapePreserving):
    """Each channel scaled by a learned weight and a constant factor.

    `- chanscale: {factor: 0.5}`"""

    factor: float = attr(1.0, doc="a constant multiplier", min=0)

    main = "factor"

    def infer(self, x):
        if len(x) != 4:
            raise RuleError("needs an N×C×H×W input", code="E307", input=0)
        return x

    def weights(self, x):
        return [WeightSpec("weight", (x[1],), "he_normal")]

    def macs(self, out, x):
        return x[1] * x[2] * x[3]

    def macs_formula(self, out, x):
        return f"{x[1]} channels × {x[2]}x{x[3]} positions"

    def label(self):
        return f"chanscale ×{self.factor}"

    def lower(self, b, xs, w, out):
        b.float_constant(f"{out.name}/factor", [self.factor])
        b.constant(f"{out.name}/axes", [1, 2])
        b.node("Unsqueeze", [w["weight"], f"{out.name}/axes"], f"{out.name}/w")
        b.node("Mul", [xs[0].name, f"{out.name}/w"], f"{out.name}/scaled")
        b.node("Mul", [f"{out.name}/scaled", f"{out.name}/factor"], out.name)

    @classmethod
    def torch_classes(cls, torch):
        return {"ChanScale": _chanscale_module(torch)}

    def torch_module(self, x, nn, classes):
        return classes.ChanScale(x[1], self.factor)


@pytest.fixture
def scaled(make_spec):
    """`chanscale` registered for one test; the path of a spec that uses it."""
    assert "chanscale" not in REGISTRY
    layer("chanscale")(ChanScale)
    try:
        yield make_spec("""
            - conv: {filters: 4, kernel: 3, pad: 1}
            - chanscale: 0.5
              name: s
        """, ("N", 3, 8, 8))
    finally:
        del REGISTRY["chanscale"]


@pytest.fixture
def toy(make_spec):
    """The toy registered for one test (and removed after it, so that the docs and schema
    tests see netc's own layers only); the path of a spec that uses it."""
    assert "upsample2x" not in REGISTRY
    cls = _define()
    try:
        yield make_spec("""
            - conv: {filters: 4, kernel: 3, pad: 1}
            - upsample2x:
              name: up
            - relu
        """, ("N", 3, 8, 8))
    finally:
        del REGISTRY["upsample2x"]
    assert cls.kind == "upsample2x"


def test_check_and_summary(toy, capsys):
    graph = netc.check_spec(toy)
    up = next(n for n in graph.nodes if n.name == "up")
    assert up.output.shape == ("N", 4, 16, 16)
    assert graph.outputs[0].shape == ("N", 4, 16, 16)
    assert main(["summary", str(toy)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["up", "upsample2x", "N×4×16×16", "0", "0"] in rows


def test_explain_shows_the_equation_and_output(toy, capsys):
    assert main(["explain", str(toy), "up"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("up: an upsample2x layer\n  Nearest-neighbour upsampling by 2: "
                          "N×C×H×W -> N×C×2H×2W.\n")
    assert "shape: every pixel repeated 2x2: 8x8 × 2 = 16x16\n" in out
    assert "\noutput: N×4×16×16\n" in out
    assert "params: 0 (no tensors)" in out


def test_its_error_has_the_layers_position(make_spec, capsys):
    _define()
    try:
        path = make_spec("- flatten\n- upsample2x", ("N", 3, 8, 8))
        assert main(["check", str(path)]) == 1
    finally:
        del REGISTRY["upsample2x"]
    err = capsys.readouterr().err
    assert ":7:5: error[E307]: upsample2x 'upsample2x1': needs an N×C×H×W input" in err


def test_graph_draws_it(toy, capsys):
    assert main(["graph", str(toy)]) == 0
    out = capsys.readouterr().out
    assert '  n_up["up<br/>upsample ×2"]\n' in out  # the label its class gives
    assert '  n_conv1 -->|"N×4×8×8"| n_up\n' in out
    assert '  n_up -->|"N×4×16×16"| n_relu1\n' in out


def test_schema_and_docs_list_it(toy):
    from netc.tools.docs import layer_reference
    from netc.tools.schema import spec_schema

    assert "upsample2x" in str(spec_schema())
    reference = layer_reference()
    assert "### `upsample2x`\n\nNearest-neighbour upsampling by 2" in reference


def test_onnx_runtime_computes_it(toy, make_spec):
    graph = netc.check_spec(toy)
    feeds = random_feeds(graph)
    [y] = run(compile_bytes(toy, seed=1), feeds)
    # the oracle: the same conv (its weights are drawn by name: conv1.weight) and relu without
    # the upsampling, each pixel then repeated into a 2x2 block by numpy
    plain = make_spec("- conv: {filters: 4, kernel: 3, pad: 1}\n- relu", ("N", 3, 8, 8))
    [small] = run(compile_bytes(plain, seed=1), feeds)
    assert y.shape == (2, 4, 16, 16)
    np.testing.assert_array_equal(y, small.repeat(2, axis=2).repeat(2, axis=3))


def test_torch_module_matches_onnx(toy):
    torch = pytest.importorskip("torch", reason="netc.torch needs PyTorch (pip install torch)")
    import netc.torch

    graph = netc.check_spec(toy)
    feeds = random_feeds(graph)
    [want] = run(compile_bytes(toy, seed=1), feeds)
    model = netc.torch.build(toy, seed=1)
    model.train(False)
    with torch.no_grad():
        got = model(torch.from_numpy(feeds["x"])).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


# --- chanscale: attributes, weights, MACs, float constants, a module class of its own ---------


def test_summary_and_explain_count_its_weights_and_macs(scaled, capsys):
    graph = netc.check_spec(scaled)
    node = graph.nodes[-1]
    assert (node.name, node.params, node.macs) == ("s", 4, 4 * 8 * 8)
    assert [w.name for w in node.weights] == ["s.weight"]
    assert main(["summary", str(scaled)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["s", "chanscale", "N×4×8×8", "4", "256"] in rows
    assert main(["explain", str(scaled), "s"]) == 0
    out = capsys.readouterr().out
    assert "\n  factor  0.5  written in the spec at 7:16\n" in out
    assert "MACs: 256 per image = 4 channels × 8x8 positions" in out
    assert "\n  s.weight  4  4\n" in out


def test_expand_writes_it_back(scaled, tmp_path, capsys):
    out = tmp_path / "flat.yaml"
    assert main(["expand", str(scaled), "-o", str(out)]) == 0
    assert "- chanscale: {factor: 0.5}" in out.read_text()
    assert compile_bytes(out, seed=2) == compile_bytes(scaled, seed=2)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_it_computes_with_weights_by_name(scaled, dtype, tmp_path, capsys):
    """Weights loaded by name (`s.weight`), in float32 and float16: ONNX Runtime's output
    against numpy's, and the model passes onnx.checker's full check."""
    import onnx
    from safetensors.numpy import save_file

    weights = tmp_path / "w.safetensors"
    assert main(["weights", str(scaled), "-o", str(weights)]) == 0
    from safetensors.numpy import load_file

    tensors = load_file(str(weights))
    tensors["s.weight"] = np.array([1.0, -2.0, 0.25, 3.0], np.float32)
    save_file(tensors, str(weights))
    model = tmp_path / "m.onnx"
    assert main(["compile", str(scaled), "-o", str(model), "--weights", str(weights),
                 "--dtype", dtype]) == 0
    onnx.checker.check_model(onnx.load(str(model)), full_check=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    [y] = session(model.read_bytes()).run(None, {"x": x})
    conv = tmp_path / "conv.yaml"
    conv.write_text(scaled.read_text().replace("- chanscale: 0.5\n    name: s\n", ""))
    assert "chanscale" not in conv.read_text()
    conv_weights = {k: v for k, v in tensors.items() if k.startswith("conv1.")}
    want = _conv_output(conv, conv_weights, x) * tensors["s.weight"][None, :, None, None] * 0.5
    tolerance = 1e-6 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(y, want, rtol=0, atol=tolerance * np.abs(want).max())


def _conv_output(spec, weights, x):
    """The conv alone, with the same weights (the oracle's first half)."""
    from netc.pipeline import Emission, check_file, runnable

    [y] = session(runnable(check_file(spec), Emission(weights=weights))).run(None, {"x": x})
    return y


def test_its_torch_module_matches_onnx_and_pickles(scaled, tmp_path):
    torch = pytest.importorskip("torch", reason="netc.torch needs PyTorch (pip install torch)")
    import netc.torch

    graph = netc.check_spec(scaled)
    feeds = random_feeds(graph)
    [want] = run(compile_bytes(scaled, seed=1), feeds)
    model = netc.torch.build(scaled, seed=1)
    assert list(model.state_dict()) == ["conv1.weight", "conv1.bias", "s.weight"]
    model.train(False)
    with torch.no_grad():
        got = model(torch.from_numpy(feeds["x"])).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    # the whole model pickles: its module class has the stable name netc.torch.ChanScale
    assert type(model.layer("s")).__qualname__ == "ChanScale"
    torch.save(model, tmp_path / "m.pt")
    again = torch.load(tmp_path / "m.pt", weights_only=False)
    with torch.no_grad():
        np.testing.assert_array_equal(again(torch.from_numpy(feeds["x"])).numpy(), got)


def test_check_json_and_sizes_take_it(scaled, capsys):
    assert main(["check", "--format", "json", str(scaled)]) == 0
    assert json.loads(capsys.readouterr().out)["diagnostics"] == []
    assert main(["sizes", "--format", "json", "--range", "6:10", str(scaled)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] == [6, 7, 8, 9, 10]
