"""Layer, group and instance normalisation, and `param` (a learned tensor named after its layer,
as ConvNeXt's `layer_scale`), against independent oracles: torch.nn's modules (LayerNorm,
torchvision's LayerNorm2d as torchvision defines it, GroupNorm, InstanceNorm2d) given the same
random weights by name, ONNX Runtime's outputs, onnx.checker's full check (float32 and
float16), and netc.torch's state_dict keys.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import check, random_feeds, session
from netc.cli import main
from netc.errors import NetcError
from netc.pipeline import Emission, check_file, runnable
from netc.weights import initial_weights

torch = pytest.importorskip("torch", reason="the oracle is torch.nn (pip install torch)")
nn = torch.nn


class TorchvisionLayerNorm2d(nn.LayerNorm):
    """torchvision.models.convnext.LayerNorm2d, as torchvision writes it."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


# (netc layer line, input shape, the torch module computing it)
CASES = {
    "layernorm_channels": ("- layernorm: {axis: channels, eps: 1e-6}", ("N", 8, 6, 5),
                           lambda: TorchvisionLayerNorm2d(8, eps=1e-6)),
    "layernorm_last_2d": ("- layernorm: {axis: last}", ("N", 10),
                          lambda: nn.LayerNorm(10)),
    "layernorm_last_4d": ("- layernorm: last", ("N", 6, 5, 8),
                          lambda: nn.LayerNorm(8)),
    "layernorm_no_affine": ("- layernorm: {affine: false, eps: 1e-3}", ("N", 8, 4, 4),
                            lambda: TorchvisionLayerNorm2d(8, eps=1e-3,
                                                           elementwise_affine=False)),
    "groupnorm": ("- groupnorm: {groups: 4}", ("N", 8, 6, 5),
                  lambda: nn.GroupNorm(4, 8)),
    "groupnorm_1": ("- groupnorm: 1", ("N", 6, 3, 7), lambda: nn.GroupNorm(1, 6)),
    "groupnorm_per_channel": ("- groupnorm: {groups: 6, eps: 1e-3}", ("N", 6, 3, 7),
                              lambda: nn.GroupNorm(6, 6, eps=1e-3)),
    "groupnorm_2d": ("- groupnorm: {groups: 3}", ("N", 12), lambda: nn.GroupNorm(3, 12)),
    "groupnorm_no_affine": ("- groupnorm: {groups: 2, affine: false}", ("N", 8, 5, 5),
                            lambda: nn.GroupNorm(2, 8, affine=False)),
    "instancenorm": ("- instancenorm:", ("N", 5, 6, 7), lambda: nn.InstanceNorm2d(5)),
    "instancenorm_affine": ("- instancenorm: {affine: true, eps: 1e-3}", ("N", 5, 6, 7),
                            lambda: nn.InstanceNorm2d(5, eps=1e-3, affine=True)),
}


def _random_state(module, rng) -> dict[str, np.ndarray]:
    """Random values for the module's parameters (not ones and zeros, so that a swapped or
    ignored weight shows)."""
    return {k: rng.standard_normal(tuple(v.shape)).astype(np.float32)
            for k, v in module.state_dict().items()}


def _torch_output(module, state, x):
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    module.train(False)
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _close(got, want, tolerance):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * np.abs(want).max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_runtime_matches_torch(case, make_spec):
    line, shape, module = CASES[case]
    path = make_spec(line + "\n  name: norm", shape)
    graph = check(path)
    assert graph.nodes[0].output.shape == shape
    assert graph.macs == 0
    torch_module = module()
    state = _random_state(torch_module, np.random.default_rng(1))
    # netc's weights by name: PyTorch's parameter names under the layer's name
    assert sorted(w.name for w in graph.weights) == sorted(f"norm.{k}" for k in state)
    assert graph.params == sum(v.size for v in state.values())
    weights = {f"norm.{k}": v for k, v in state.items()}
    x = random_feeds(graph, seed=2)["x"] * 3 + 1
    [y] = session(runnable(graph, Emission(weights=weights))).run(None, {"x": x})
    _close(y, _torch_output(torch_module, state, x), 1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_float16_passes_the_checker_and_computes(case, make_spec, tmp_path):
    import onnx

    line, shape, module = CASES[case]
    path = make_spec(line + "\n  name: norm", shape)
    graph = check(path)
    torch_module = module()
    state = _random_state(torch_module, np.random.default_rng(3))
    weights = {f"norm.{k}": v for k, v in state.items()}
    model = runnable(graph, Emission(weights=weights, dtype="float16"))
    onnx.checker.check_model(onnx.load_model_from_string(model), full_check=True)
    x = random_feeds(graph, seed=4)["x"]
    [y] = session(model).run(None, {"x": x})
    _close(y, _torch_output(torch_module, state, x), 2e-2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_netc_torch_has_pytorchs_keys_and_matches_onnx(case, make_spec):
    import netc.torch

    line, shape, module = CASES[case]
    path = make_spec(line + "\n  name: norm", shape)
    graph = check(path)
    model = netc.torch.build(path, seed=5)
    assert list(model.state_dict()) == [f"norm.{k}" for k in module().state_dict()]
    model.train(False)
    x = random_feeds(graph, seed=6)["x"]
    [want] = session(runnable(graph, Emission(seed=5))).run(None, {"x": x})
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    _close(got, want, 1e-5)


def test_weights_from_a_safetensors_file(make_spec, tmp_path):
    """`netc compile --weights`: a torch state_dict saved with safetensors loads by name."""
    from safetensors.torch import save_file

    path = make_spec("""
        - conv: {filters: 8, kernel: 3, pad: 1}
          name: conv
        - groupnorm: {groups: 4}
          name: gn
        - layernorm: {eps: 1e-6}
          name: ln
        - instancenorm: {affine: true}
          name: inorm
    """, ("N", 3, 6, 6))
    oracle = nn.Sequential()
    oracle.add_module("conv", nn.Conv2d(3, 8, 3, padding=1))
    oracle.add_module("gn", nn.GroupNorm(4, 8))
    oracle.add_module("ln", TorchvisionLayerNorm2d(8, eps=1e-6))
    oracle.add_module("inorm", nn.InstanceNorm2d(8, affine=True))
    with torch.no_grad():
        for p in oracle.parameters():
            p.normal_()
    oracle.train(False)
    save_file(oracle.state_dict(), str(tmp_path / "w.safetensors"))
    model = tmp_path / "m.onnx"
    assert main(["compile", str(path), "-o", str(model), "--weights",
                 str(tmp_path / "w.safetensors")]) == 0
    x = np.random.default_rng(7).standard_normal((2, 3, 6, 6)).astype(np.float32)
    [y] = session(model.read_bytes()).run(None, {"x": x})
    with torch.no_grad():
        want = oracle(torch.from_numpy(x)).numpy()
    _close(y, want, 1e-5)


# --- errors -----------------------------------------------------------------------------------


def test_groupnorm_must_divide_the_channels(make_spec, capsys):
    path = make_spec("- conv: {filters: 6, kernel: 1}\n- groupnorm: {groups: 4}",
                     ("N", 3, 5, 5))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error[E303]: groupnorm 'groupnorm1': 6 channels can't be split into 4 groups" in err
    assert "6 / 4 = 1.50, not a whole number" in err
    assert "use a number of groups that divides 6, such as 3" in err


@pytest.mark.parametrize("line, shape, code", [
    ("- instancenorm", ("N", 12), "E307"),
    ("- layernorm: channels", ("N", 4, 5), "E307"),
    ("- groupnorm: 2", ("N", 4, 5), "E307"),
    ("- param: channels", ("N", 12), "E307"),
    ("- groupnorm: 0", ("N", 4, 5, 5), "E105"),
    ("- layernorm: {eps: -1}", ("N", 4, 5, 5), "E105"),
    ("- layernorm: {axis: first}", ("N", 4, 5, 5), "E105"),
])
def test_bad_attributes_and_ranks(make_spec, line, shape, code):
    with pytest.raises(NetcError) as e:
        check(make_spec(line, shape))
    assert f"error[{code}]" in str(e.value)


# --- param: a learned tensor named after its layer (ConvNeXt's layer_scale) -------------------

BLOCK = """
netc: 1
name: cnblocks
inputs:
  x: [N, 8, 6, 5]
blocks:
  cnblock:
    args: {dim: int}
    layers:
      - conv: {filters: $dim, kernel: 7, pad: 3, groups: $dim}
        name: block.0
      - layernorm: {eps: 1e-6}
        name: block.2
      - conv: {filters: $dim, kernel: 1}
        name: block.3
      - param: {init: constant(1e-6)}
        name: layer_scale
      - mul: {from: [layer_scale, block.3]}
      - add: {from: [mul1, input]}
layers:
  - cnblock: {dim: 8}
    name: features.1.0
  - cnblock: {dim: 8}
    name: features.1.1
"""


def _cnblock(dim: int):
    """A torch oracle shaped like torchvision's CNBlock: a `block` Sequential and a
    `layer_scale` Parameter of the block module itself, (dim, 1, 1), initialised to 1e-6."""

    class CNBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Sequential()
            self.block.add_module("0", nn.Conv2d(dim, dim, 7, padding=3, groups=dim))
            self.block.add_module("1", nn.Identity())  # torchvision's Permute (netc: none)
            self.block.add_module("2", TorchvisionLayerNorm2d(dim, eps=1e-6))
            self.block.add_module("3", nn.Conv2d(dim, dim, 1))
            self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * 1e-6)

        def forward(self, x):
            return self.layer_scale * self.block(x) + x

    return CNBlock()


def _oracle():
    features = nn.Module()
    features.add_module("1", nn.Sequential(_cnblock(8), _cnblock(8)))
    model = nn.Module()
    model.add_module("features", features)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model, lambda x: features._modules["1"](x)


def _mul_takes_a_batchless_operand() -> bool:
    """Whether `mul` broadcasts a (C, 1, 1) tensor over N×C×H×W as numpy, ONNX and torch do
    (`layer_scale * block(x)`); the join's rule is merge.py's, not this file's."""
    from netc.layers import REGISTRY

    try:
        REGISTRY["mul"]().infer((8, 1, 1), ("N", 8, 6, 5))
    except Exception:  # noqa: BLE001 (RuleError, or no `mul` at all)
        return False
    return True


@pytest.fixture
def blocks(tmp_path):
    assert _mul_takes_a_batchless_operand()  # ConvNeXt's `layer_scale * block(x)` needs it
    path = tmp_path / "cnblocks.yaml"
    path.write_text(BLOCK)
    return path


def test_param_is_named_after_its_layer(blocks, capsys):
    graph = check(blocks)
    node = next(n for n in graph.nodes if n.name == "features.1.0.layer_scale")
    assert node.kind == "param"
    assert node.output.shape == (8, 1, 1)
    assert [(w.name, w.shape) for w in node.weights] == [("features.1.0.layer_scale", (8, 1, 1))]
    assert node.params == 8 and node.macs == 0
    oracle, _ = _oracle()
    assert sorted(w.name for w in graph.weights) == sorted(oracle.state_dict())
    assert graph.params == sum(p.numel() for p in oracle.parameters())
    # initial values: constant(1e-6), as torchvision's layer_scale_value
    values = initial_weights(graph, seed=0)
    np.testing.assert_array_equal(values["features.1.0.layer_scale"],
                                  np.full((8, 1, 1), 1e-6, np.float32))
    assert main(["explain", str(blocks), "features.1.0.layer_scale"]) == 0
    out = capsys.readouterr().out
    assert "shape: 8×1×1: one learned value per channel of the input (N×8×6×5)" in out
    assert "features.1.0.layer_scale  8×1×1  8" in out


def test_netc_weights_writes_the_key(blocks, tmp_path):
    from safetensors.numpy import load_file

    out = tmp_path / "w.safetensors"
    assert main(["weights", str(blocks), "-o", str(out)]) == 0
    tensors = load_file(str(out))
    assert tensors["features.1.1.layer_scale"].shape == (8, 1, 1)
    np.testing.assert_array_equal(tensors["features.1.1.layer_scale"],
                                  np.full((8, 1, 1), 1e-6, np.float32))
    assert "features.1.1.layer_scale.weight" not in tensors


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_torch_state_dict_compiles_with_weights(blocks, tmp_path, dtype):
    """The oracle's state_dict, saved with safetensors, compiles unchanged (`--weights`), and
    ONNX Runtime computes what the oracle does."""
    import onnx
    from safetensors.torch import save_file

    oracle, forward = _oracle()
    save_file(oracle.state_dict(), str(tmp_path / "w.safetensors"))
    model = tmp_path / "m.onnx"
    assert main(["compile", str(blocks), "-o", str(model), "--dtype", dtype, "--weights",
                 str(tmp_path / "w.safetensors")]) == 0
    loaded = onnx.load(str(model))
    onnx.checker.check_model(loaded, full_check=True)
    assert "features.1.0.layer_scale" in {t.name for t in loaded.graph.initializer}
    x = np.random.default_rng(8).standard_normal((2, 8, 6, 5)).astype(np.float32)
    [y] = session(model.read_bytes()).run(None, {"x": x})
    with torch.no_grad():
        want = forward(torch.from_numpy(x)).numpy()
    _close(y, want, 1e-5 if dtype == "float32" else 2e-2)


def test_netc_torch_puts_the_parameter_on_the_block(blocks, tmp_path):
    import netc.torch

    model = netc.torch.build(blocks, seed=3)
    keys = list(model.state_dict())
    oracle, forward = _oracle()
    assert sorted(keys) == sorted(oracle.state_dict())
    block = model.features._modules["1"]._modules["0"]
    assert isinstance(block._parameters["layer_scale"], nn.Parameter)
    assert "layer_scale" not in block._modules
    assert model.layer("features.1.0.layer_scale") is block._parameters["layer_scale"]
    # initial values are netc's (those `netc compile --seed 3` writes)
    graph = check_file(blocks)
    x = random_feeds(graph, seed=9)["x"]
    [want] = session(runnable(graph, Emission(seed=3))).run(None, {"x": x})
    model.train(False)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    _close(got, want, 1e-5)
    # the oracle's state_dict loads strictly, and the model then computes what the oracle does
    model.load_state_dict(oracle.state_dict())
    with torch.no_grad():
        _close(model(torch.from_numpy(x)).numpy(), forward(torch.from_numpy(x)).numpy(), 1e-5)
    # gradients reach the parameter; the whole model pickles
    model.train(True)
    model(torch.from_numpy(x)).sum().backward()
    assert block._parameters["layer_scale"].grad is not None
    torch.save(model, tmp_path / "m.pt")
    again = torch.load(tmp_path / "m.pt", weights_only=False)
    assert list(again.state_dict()) == keys


def test_param_last_axis_and_as_an_output(make_spec):
    """`axis: last` gives (C,) for the last axis; a param that is the network's output is
    its initializer (float32 only: in float16, emit.py's Cast back to float32 would write a
    second value of the initializer's name)."""
    import onnx

    path = make_spec("""
        - param: {axis: last, init: constant(0.5)}
          name: gamma
        - param: {init: constant(0.25)}
          name: beta
          from: x
    """, ("N", 4, 3, 6), outputs=["gamma", "beta"])
    graph = check(path)
    assert [n.output.shape for n in graph.nodes] == [(6,), (4, 1, 1)]
    assert [w.name for w in graph.weights] == ["gamma", "beta"]
    x = random_feeds(graph, seed=1)["x"]
    gamma = np.arange(6, dtype=np.float32) - 2
    for dtype in ("float32",):
        model = runnable(graph, Emission(weights={"gamma": gamma}, dtype=dtype))
        onnx.checker.check_model(onnx.load_model_from_string(model), full_check=True)
        out_gamma, out_beta = session(model).run(None, {"x": x})
        np.testing.assert_array_equal(out_gamma, gamma)
        np.testing.assert_array_equal(out_beta, np.full((4, 1, 1), 0.25, np.float32))
