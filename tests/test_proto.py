"""netc writes ONNX's protobuf by hand (netc/proto.py, so that `netc compile` never imports
onnx): its bytes must be exactly those of onnx.helper + protobuf's serialiser for the same
model (tests/onnx_reference.py), message by message and for whole models. The hypothesis
networks of test_fuzz.py check the same equality for every network they build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import netc
import onnx_reference
from netc import proto
from netc.emit import lower, model_bytes, write_model

ROOT = Path(__file__).resolve().parent.parent
SMALL_SPECS = ["lenet5", "alexnet", "googlenet", "resnet18"]  # every layer kind of the zoo


@pytest.mark.parametrize("value", [
    0, 1, 127, 128, 300, 2**31 - 1, 2**31, 2**63 - 1, -1, -2, -2**63, True, False,
    np.int64(-5), np.int32(7),
    0.0, -0.0, 1e-5, 0.75, -3.5, 1e30, 1e-45, float("inf"), np.float32(0.1),
    "", "mode", "ünïcode ✓",
    [0], [1, 2, 3], [-1, 0, 2**40], [0.5, 1.0], [1, 2.5],
    proto.Tensor("t", proto.INT64, (3,), int64s=(0, -1, 2**40)),
    proto.Tensor("empty", proto.INT64, (0,), int64s=()),
    proto.Tensor("f", proto.FLOAT, (2,), raw=np.array([0.5, -3], "<f4").tobytes()),
    proto.Tensor("h", proto.FLOAT16, (1, 2, 1, 1), raw=np.array([6, 1e-3], "<f2").tobytes()),
])
def test_attributes_as_onnx_writes_them(value):
    want = helper.make_attribute("a", onnx_reference.attribute_value(value))
    assert proto._attribute("a", value) == want.SerializeToString(deterministic=True)


def test_an_empty_list_has_no_type():
    with pytest.raises(ValueError, match="empty list"):
        proto._attribute("a", [])


@pytest.mark.parametrize("dims", [(), ("N",), ("N", 3, 224, 224), (1, 0, 2**33), ("batch size", 7)])
def test_value_infos_as_onnx_writes_them(dims):
    want = helper.make_tensor_value_info("x/y", onnx.TensorProto.FLOAT16, list(dims))
    assert proto.value_info("x/y", proto.FLOAT16, dims) == want.SerializeToString()


def test_external_tensor_headers_as_onnx_writes_them():
    entries = (("location", "m.onnx.0123456789abcdef.data"), ("offset", "4096"),
               ("length", "1024"))
    t = onnx.TensorProto()
    t.name, t.data_type = "conv1.weight", onnx.TensorProto.FLOAT
    t.dims.extend([64, 3, 7, 7])
    t.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries:
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    got = proto.tensor(proto.Tensor("conv1.weight", proto.FLOAT, (64, 3, 7, 7), external=entries))
    assert got == t.SerializeToString(deterministic=True)


@pytest.mark.parametrize("options", [{}, {"dtype": "float16"}, {"fold_bn": True}],
                         ids=["float32", "float16", "fold-bn"])
@pytest.mark.parametrize("name", SMALL_SPECS)
def test_whole_models_equal_onnx_serialisation(name, options, tmp_path):
    graph = netc.check_spec(ROOT / "specs" / f"{name}.yaml")
    want = onnx_reference.model_bytes(lower(graph, seed=5, **options))
    assert model_bytes(graph, seed=5, **options) == want
    path = tmp_path / "m.onnx"
    write_model(graph, str(path), seed=5, **options)
    assert path.read_bytes() == want  # streamed to disk: the same bytes


def test_a_description_becomes_the_graph_doc_string(tmp_path):
    spec = tmp_path / "d.yaml"
    spec.write_text("netc: 1\nname: d\ndescription: 'two layers, ü'\n"
                    "inputs: {x: [N, 3, 8, 8]}\nlayers:\n"
                    "  - conv: {filters: 2, kernel: 3}\n  - relu\n", encoding="utf-8")
    graph = netc.check_spec(spec)
    low = lower(graph)
    assert model_bytes(graph) == onnx_reference.model_bytes(low)
    assert onnx.load_from_string(model_bytes(graph)).graph.doc_string == "two layers, ü"


def test_compile_never_imports_onnx(tmp_path):
    """The point of proto.py: compiling a model loads neither onnx nor protobuf."""
    code = ("import sys; from netc.cli import main; rc = main(['compile', sys.argv[1], '-o', "
            "sys.argv[2]]); bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'google', 'onnxruntime')); print(bad); sys.exit(rc or bool(bad))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "specs" / "resnet18.yaml"),
                          str(tmp_path / "r.onnx")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    onnx.checker.check_model(str(tmp_path / "r.onnx"), full_check=True)
