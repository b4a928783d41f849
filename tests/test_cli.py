"""The command line as users and scripts meet it: outputs, files, exit codes and help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from netc.cli import main

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "specs" / "lenet5.yaml"


def netc_process(*args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "netc", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, **kw)


def test_compile_writes_name_onnx_in_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compile", str(LENET)]) == 0
    assert (tmp_path / "lenet5.onnx").exists()
    assert "wrote lenet5.onnx" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*netc-tmp"))  # no temporary file left behind
    onnx.checker.check_model(onnx.load(tmp_path / "lenet5.onnx"), full_check=True)


def test_compile_into_missing_folder_is_a_positioned_user_error(tmp_path, capsys):
    assert main(["compile", str(LENET), "-o", str(tmp_path / "no" / "such" / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "error[E603]" in err and "Traceback" not in err


def test_run_onnx_with_input_and_output_files(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    assert main(["compile", str(LENET), "-o", str(model)]) == 0
    x = np.random.default_rng(1).standard_normal((3, 1, 32, 32), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    assert main(["run", str(model), "--input", str(tmp_path / "x.npy"),
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "logits: 3×10 float32" in text
    y = np.load(out)
    assert y.shape == (3, 10)
    # the same input through the spec (compiled in memory with the same seed) agrees
    assert main(["run", str(LENET), "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "y2.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y2.npy"), y)


def test_run_random_batch(capsys):
    assert main(["run", str(LENET), "--batch", "5"]) == 0
    assert "logits: 5×10" in capsys.readouterr().out


def test_run_rejects_wrong_input_shape(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    assert main(["run", str(LENET), "--input", str(tmp_path / "x.npy")]) == 1
    err = capsys.readouterr().err
    assert "error[E602]" in err and "N×1×32×32" in err


def test_run_refuses_pickled_input(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["run", str(LENET), "--input", str(tmp_path / "x.npy")]) == 1
    assert "error[E602]" in capsys.readouterr().err


def test_run_cuda_fails_clearly_without_a_gpu(capsys):
    """ONNX Runtime would fall back to the CPU silently; netc must not."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        sess = ort.InferenceSession(_tiny_model(), providers=["CUDAExecutionProvider"])
        if "CUDAExecutionProvider" in sess.get_providers():
            pytest.skip("a working CUDA GPU is present: the failure path cannot be shown here")
    code = main(["run", str(LENET), "--provider", "cuda"])
    err = capsys.readouterr().err
    assert code == 1
    assert "error[E601]" in err and "CUDA" in err and "Traceback" not in err


def _tiny_model() -> bytes:
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def test_summary_text_table(capsys):
    assert main(["summary", str(LENET)]) == 0
    out = capsys.readouterr().out
    assert "conv1     conv     N×6×28×28      156  117,600" in out
    assert "params:      61,706" in out
    assert "FLOPs:       833,040" in out


def test_summary_json_layers(capsys):
    assert main(["summary", str(LENET), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    first = report["layers"][0]
    assert first == {"name": "conv1", "type": "conv", "shape": ["N", 6, 28, 28],
                     "params": 156, "macs": 117600, "inputs": ["image"]}
    assert report["outputs"] == {"logits": ["N", 10]}
    assert report["weight_bytes"] == 4 * 61706


def test_check_missing_file(capsys):
    assert main(["check", "/no/such/spec.yaml"]) == 1
    assert "error[E001]" in capsys.readouterr().err


def test_usage_errors_exit_2():
    result = netc_process("compile")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert netc_process("frobnicate").returncode == 2
    assert netc_process("run", str(LENET), "--batch", "0").returncode == 2


@pytest.mark.parametrize("command", ["", "compile", "check", "summary", "run"])
def test_help(command):
    result = netc_process(*([command] if command else []), "--help")
    assert result.returncode == 0
    assert "usage: netc" in result.stdout
    if command:
        assert len(result.stdout.splitlines()) > 5


def test_check_does_not_import_onnx_or_onnxruntime():
    code = ("import sys; from netc.cli import main; rc = main(['check', %r]); "
            "bad = [m for m in ('onnx', 'onnxruntime') if m in sys.modules]; "
            "print(bad); sys.exit(rc)" % str(ROOT / "specs"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]")


def test_summary_does_not_import_onnxruntime():
    code = ("import sys; from netc.cli import main; main(['summary', %r]); "
            "print('onnxruntime' in sys.modules)" % str(LENET))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("False")


def test_internal_errors_are_distinct(monkeypatch, capsys):
    import netc.cli

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setitem(netc.cli.COMMANDS, "check", broken)
    assert main(["check", str(LENET)]) == 70
    err = capsys.readouterr().err
    assert "internal error" in err and "bug in netc" in err


def test_entry_point_installed():
    """`netc` is on PATH once the package is installed (pip install .)."""
    exe = Path(sys.executable).parent / "netc"
    if not exe.exists():
        pytest.skip("netc is run from a source tree that was not pip-installed")
    result = subprocess.run([str(exe), "check", str(LENET)], capture_output=True, text=True,
                            env={**os.environ})
    assert result.returncode == 0


def test_limits_can_be_raised_for_one_run(tmp_path, capsys):
    """A spec over a safety limit is refused, and accepted when the user raises the limit."""
    spec = tmp_path / "wide.yaml"
    layers = "".join("  - relu\n" for _ in range(600))
    spec.write_text("netc: 1\nname: wide\ninputs: {x: [N, 3, 8, 8]}\nlayers:\n" + layers)
    assert main(["check", str(spec), "--limit", "nodes=500"]) == 1
    err = capsys.readouterr().err
    assert "error[E010]" in err and "--limit nodes=N" in err
    assert main(["check", str(spec)]) == 0
    assert main(["check", str(spec), "--limit", "layers=100"]) == 1
    assert "error[E112]" in capsys.readouterr().err


def test_unknown_limit_is_a_usage_error():
    result = netc_process("check", str(LENET), "--limit", "speed=3")
    assert result.returncode == 2 and "unknown limit 'speed'" in result.stderr
