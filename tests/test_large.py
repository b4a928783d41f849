"""Models over 2 GiB: protobuf cannot hold them, so their weights go to an external data file,
streamed to disk; ONNX Runtime loads and runs the result."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort

from netc.cli import main

# 513 x 1,048,576 float32 weights = 2,151,677,952 bytes, just over 2 GiB (2,147,483,648)
SPEC = """\
netc: 1
name: big
inputs:
  x: [N, 1048576]
layers:
  - dense: {units: 513, init: constant(0.001)}
    name: fc
"""


def test_model_over_2_gib_compiles_and_runs(tmp_path, capsys):
    spec = tmp_path / "big.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "big.onnx"
    assert main(["compile", str(spec), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    data_files = [p for p in tmp_path.iterdir() if p.name.endswith(".data")]
    assert len(data_files) == 1, "the weights go to one external data file"
    data = data_files[0]
    assert data.stat().st_size >= 513 * 1048576 * 4 > 2**31
    assert out.stat().st_size < 1 << 20  # the model itself holds no weights
    assert data.name in printed
    assert not [p for p in tmp_path.iterdir() if "netc-tmp" in p.name]

    # the data file's name is netc's own: no separators, nothing that leaves the folder
    model = onnx.load(str(out), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data
                 if e.key == "location"}
    assert locations == {data.name}
    onnx.checker.check_model(str(out), full_check=True)

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 1048576), dtype=np.float32)
    (y,) = sess.run(None, {"x": x})
    assert y.shape == (2, 513)
    expected = x.astype(np.float64).sum(axis=1, keepdims=True) * 0.001  # bias is zero
    np.testing.assert_allclose(y, np.broadcast_to(expected, y.shape), rtol=1e-3, atol=1e-3)
    del sess
    os.unlink(data)


def test_external_data_on_request_and_recompile_replaces_the_old_data(tmp_path):
    spec = os.path.join(os.path.dirname(__file__), "..", "specs", "lenet5.yaml")
    out = tmp_path / "m.onnx"
    assert main(["compile", spec, "-o", str(out), "--external-data"]) == 0
    first = [p.name for p in tmp_path.iterdir() if p.name.endswith(".data")]
    assert main(["compile", spec, "-o", str(out), "--external-data", "--seed", "1"]) == 0
    second = [p.name for p in tmp_path.iterdir() if p.name.endswith(".data")]
    assert len(first) == len(second) == 1 and first != second  # the stale file is gone
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"image": np.zeros((1, 1, 32, 32), np.float32)})
    assert y.shape == (1, 10)
    # the same model inline: identical outputs
    inline = tmp_path / "inline.onnx"
    assert main(["compile", spec, "-o", str(inline), "--seed", "1"]) == 0
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32), dtype=np.float32)
    a = sess.run(None, {"image": x})[0]
    b = ort.InferenceSession(str(inline), providers=["CPUExecutionProvider"]).run(
        None, {"image": x})[0]
    np.testing.assert_array_equal(a, b)
