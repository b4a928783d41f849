"""Emission options: `--fold-bn` (exact within float32 rounding) and `--dtype float16`
(within a stated tolerance), checked against the plain float32 model in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import netc
from netc.emit import emit, serialize, write_model
from netc.weights import initial_weights

ROOT = Path(__file__).resolve().parent.parent


def _run(model, x):
    data = model if isinstance(model, (bytes, str)) else serialize(model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _trained_like(graph, seed=0):
    """Initial weights with batchnorm statistics and affine parameters drawn at random, so
    that folding them is not folding an identity."""
    rng = np.random.default_rng(seed)
    weights = initial_weights(graph)
    for name, value in weights.items():
        if name.endswith("running_mean") or name.endswith(".bias") and "bn" in name:
            weights[name] = rng.normal(0, 0.1, value.shape).astype(np.float32)
        elif name.endswith("running_var"):
            weights[name] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        elif name.endswith(".weight") and value.ndim == 1:
            weights[name] = rng.normal(1, 0.2, value.shape).astype(np.float32)
    return weights


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_fold_bn_is_exact_within_float32_rounding(name):
    graph = netc.check_spec(ROOT / "specs" / f"{name}.yaml")
    weights = _trained_like(graph)
    plain = emit(graph, weights=weights)
    folded = emit(graph, weights=weights, fold_bn=True)
    onnx.checker.check_model(folded, full_check=True)
    ops = [n.op_type for n in folded.graph.node]
    assert "BatchNormalization" not in ops  # every batchnorm in these nets follows a conv
    assert len(folded.graph.node) < len(plain.graph.node)
    names = {t.name for t in folded.graph.initializer}
    assert not any("running_mean" in n for n in names)
    assert [o.name for o in folded.graph.output] == [o.name for o in plain.graph.output]
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
    a, b = _run(plain, x), _run(folded, x)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_fold_bn_leaves_a_batchnorm_without_a_conv_alone(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("netc: 1\nname: s\ninputs: {x: [N, 3, 8, 8]}\nlayers:\n"
                    "  - batchnorm\n  - conv: {filters: 4, kernel: 3}\n  - relu\n"
                    "  - conv: {filters: 4, kernel: 3, bias: false}\n    name: c\n"
                    "  - batchnorm:\n    name: bn\n  - relu:\n    from: c\n    name: r\n")
    graph = netc.check_spec(spec)
    folded = emit(graph, fold_bn=True)
    # the first batchnorm reads the input; `c` is read by two layers: neither can be folded
    assert [n.op_type for n in folded.graph.node].count("BatchNormalization") == 2


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "googlenet"])
def test_float16_model_is_close_to_float32(name):
    graph = netc.check_spec(ROOT / "specs" / f"{name}.yaml")
    weights = _trained_like(graph)
    model = emit(graph, weights=weights, dtype="float16")
    onnx.checker.check_model(model, full_check=True)
    assert all(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    (inp,) = graph.inputs
    x = np.random.default_rng(2).standard_normal((2, *inp.shape[1:]), dtype=np.float32)
    a = _run(emit(graph, weights=weights), x)
    b = _run(model, x)
    assert b.dtype == np.float32
    # float16 keeps 11 significant bits: 1% of the output's range bounds the error
    assert np.abs(a - b).max() <= 1e-2 * np.abs(a).max()


@pytest.mark.parametrize("options", [{}, {"fold_bn": True}, {"dtype": "float16"},
                                     {"dtype": "float16", "fold_bn": True, "external": True}])
def test_streamed_files_equal_the_in_memory_model(options, tmp_path):
    graph = netc.check_spec(ROOT / "specs" / "resnet18.yaml")
    path = tmp_path / "m.onnx"
    write_model(graph, str(path), seed=3, **options)
    in_memory = emit(graph, seed=3, **{k: v for k, v in options.items() if k != "external"})
    onnx.checker.check_model(str(path), full_check=True)
    on_disk = onnx.load(str(path))
    assert [n.name for n in on_disk.graph.node] == [n.name for n in in_memory.graph.node]
    for a, b in zip(on_disk.graph.initializer, in_memory.graph.initializer):
        assert a.name == b.name
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(a),
                                      onnx.numpy_helper.to_array(b))
    x = np.random.default_rng(3).standard_normal((1, 3, 224, 224), dtype=np.float32)
    np.testing.assert_array_equal(_run(str(path), x), _run(in_memory, x))


def test_float16_model_with_an_input_as_output(tmp_path):
    """An input listed in `outputs:` is the float32 input itself in a float16 model: one Cast
    for the input, none for that output (two `x/cast` nodes made a model ONNX Runtime
    refused)."""
    spec = tmp_path / "s.yaml"
    spec.write_text("netc: 1\nname: s\ninputs: {x: [N, 4]}\noutputs: [x, relu1]\n"
                    "layers:\n  - relu\n", encoding="utf-8")
    model = emit(netc.check_spec(spec), dtype="float16")
    onnx.checker.check_model(model, full_check=True)
    x = np.array([[-1.5, 0.25, 2.0, -0.0]], np.float32)
    sess = ort.InferenceSession(serialize(model), providers=["CPUExecutionProvider"])
    same, relu = sess.run(None, {"x": x})
    np.testing.assert_array_equal(same, x)
    np.testing.assert_array_equal(relu, np.maximum(x, 0))


def test_float16_refuses_a_learned_tensor_as_output(tmp_path, capsys):
    """A `param` layer's value is its initializer: as a float16 model's float32 output it would
    need a second value of the same name. netc says so (E603) instead of writing a model ONNX
    Runtime refuses; in float32 it is fine."""
    from netc.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text("netc: 1\nname: s\ninputs: {x: [N, 4]}\nlayers:\n  - param: last\n",
                    encoding="utf-8")
    assert main(["compile", str(spec), "-o", str(tmp_path / "m.onnx"), "--dtype", "float16"]) == 1
    assert "error[E603]: can't write a float16 model whose output 'param1'" in \
        capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    assert main(["compile", str(spec), "-o", str(tmp_path / "m.onnx")]) == 0
