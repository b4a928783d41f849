"""One layer, one place: a layer type defined here, in a test file, and nowhere in netc, is
checked, summarised, explained, drawn, documented, put in the schema, compiled, run and built
as a torch module correctly, because every command asks the layer's class.

The toy is `upsample2x`: nearest-neighbour upsampling by 2 (N×C×8×8 -> N×C×16×16), lowered as
Reshape -> Expand -> Reshape (each pixel repeated into a 2x2 block). The oracles: numpy's
`repeat`, ONNX Runtime's actual output, and torch.nn.Upsample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import netc
from conftest import compile_bytes, random_feeds, run
from netc.cli import main
from netc.errors import RuleError
from netc.layers import REGISTRY, Layer, layer


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
    assert out.startswith("up: a upsample2x layer\n  Nearest-neighbour upsampling by 2: "
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
