"""`netc bench`: its reports (text and JSON) hold together, every batch size is measured, an
.onnx file works, bad options are usage errors, and the CUDA provider never falls back to
the CPU. Kept fast: LeNet-5 and a handful of runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from netc.tools import bench
from netc.cli import main

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "specs" / "lenet5.yaml"
LENET_MACS = 416_520
FAST = ["--warmup", "1", "--iters", "5"]


def bench_json(capsys, *args) -> dict:
    assert main(["bench", *map(str, args), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # runs this short show no progress
    return json.loads(out)


def check_consistent(result: dict, batches) -> None:
    assert [r["batch"] for r in result["results"]] == list(batches)
    for r in result["results"]:
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["max_ms"]
        assert r["min_ms"] <= r["mean_ms"] <= r["max_ms"]
        assert r["images_per_s"] == pytest.approx(r["batch"] / (r["median_ms"] / 1e3))
        assert r["first_ms"] > 0
        if result["macs"] is None:
            assert r["gflops"] is None
        else:
            flops = 2 * result["macs"] * r["batch"]
            assert r["gflops"] == pytest.approx(flops / (r["median_ms"] / 1e3) / 1e9)


def test_json_report_for_several_batch_sizes(capsys):
    result = bench_json(capsys, LENET, "--batch", "1,4,16", *FAST)
    assert result["name"] == "lenet5" and result["source"] == "spec"
    assert result["provider"] == "cpu"
    assert result["execution_providers"] == ["CPUExecutionProvider"]
    assert result["macs"] == LENET_MACS and result["params"] == 61_706
    assert result["dtype"] == "float32" and result["input_dtypes"] == {"image": "float32"}
    assert result["load_s"] > 0 and result["compile_s"] > 0
    assert result["io_binding"] is False and result["prefer_nhwc"] is False
    assert result["onnxruntime"] and result["device"]
    assert all(r["runs"] == 5 for r in result["results"])
    check_consistent(result, [1, 4, 16])


def test_text_report(capsys):
    assert main(["bench", str(LENET), "--batch", "1,8", "--threads", "1", *FAST]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("netc bench: lenet5 (")
    for label in ("provider  cpu: CPUExecutionProvider", "intra-op threads: 1", "device ",
                  "onnxruntime ", "dtype     float32", "416.52 KMACs per image",
                  "session   created in", "1 warm-up, then 5 timed"):
        assert label in out, label
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["batch"])
    assert lines[header].split() == ["batch", "runs", "median", "ms", "p90", "ms", "images/s",
                                     "GFLOP/s"]
    rows = [line.split() for line in lines[header + 1:]]
    assert [row[0] for row in rows] == ["1", "8"]
    for batch, runs, median, p90, throughput, gflops in rows:
        median, p90 = float(median.replace(",", "")), float(p90.replace(",", ""))
        assert runs == "5" and 0 < median <= p90
        rel = 0.0006 / median + 0.001  # the median is printed to 3 decimals
        assert float(throughput.replace(",", "")) == pytest.approx(
            int(batch) / median * 1e3, rel=rel, abs=0.1)
        assert float(gflops.replace(",", "")) == pytest.approx(
            2 * LENET_MACS * int(batch) / median / 1e6, rel=rel, abs=0.1)


def test_seconds_and_default_run_counts(capsys):
    result = bench_json(capsys, LENET, "--warmup", "0", "--seconds", "0.05")
    [r] = result["results"]
    assert r["runs"] >= 1 and r["runs"] * r["max_ms"] >= 50
    assert result["seconds"] == 0.05 and result["iters"] is None
    # the default stopping rule: at least DEFAULT_SECONDS and DEFAULT_MIN_RUNS
    options = bench.Options()
    assert not bench._enough(bench.DEFAULT_MIN_RUNS, bench.DEFAULT_SECONDS - 0.01, options)
    assert not bench._enough(bench.DEFAULT_MIN_RUNS - 1, 100.0, options)
    assert bench._enough(bench.DEFAULT_MIN_RUNS, bench.DEFAULT_SECONDS, options)


def test_onnx_model_has_no_gflops(tmp_path, capsys):
    model = tmp_path / "lenet.onnx"
    assert main(["compile", str(LENET), "-o", str(model)]) == 0
    capsys.readouterr()
    result = bench_json(capsys, model, "--batch", "1,3", *FAST)
    assert result["source"] == "onnx" and result["name"] == "lenet"
    assert result["macs"] is None and result["compile_s"] is None
    assert result["dtype"] == "float32"
    check_consistent(result, [1, 3])
    assert main(["bench", str(model), *FAST]) == 0
    out = capsys.readouterr().out
    assert "MACs n/a" in out and out.splitlines()[-1].split()[-1] == "n/a"


def test_spec_in_float16_with_folded_batchnorm(make_spec, capsys):
    spec = make_spec("""
        - conv: {filters: 8, kernel: 3, pad: 1, bias: false}   # a bias would draw W202
        - batchnorm
        - relu
        - globalavgpool
    """, ("N", 3, 16, 16))
    result = bench_json(capsys, spec, "--dtype", "float16", "--fold-bn", "--batch", "2", *FAST)
    assert result["dtype"] == "float16" and result["fold_bn"] is True
    assert result["input_dtypes"] == {"x": "float32"}  # netc's float16 models take float32
    check_consistent(result, [2])


def test_onnx_model_dtype_must_match(tmp_path, capsys):
    model = tmp_path / "lenet.onnx"
    assert main(["compile", str(LENET), "-o", str(model)]) == 0
    capsys.readouterr()
    assert main(["bench", str(model), "--dtype", "float16", *FAST]) == 1
    err = capsys.readouterr().err
    assert "error[E602]" in err and "computes in float32, not float16" in err


def test_float16_onnx_model_gets_float16_inputs(tmp_path, capsys):
    model = tmp_path / "half.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 4])
    bias = helper.make_tensor("b", TensorProto.FLOAT16, [4], np.ones(4, np.float16).tobytes(),
                              raw=True)
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"])], "half", [x], [y],
                              [bias])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, model)
    result = bench_json(capsys, model, "--dtype", "float16", "--batch", "2", *FAST)
    assert result["dtype"] == "float16" and result["input_dtypes"] == {"x": "float16"}
    check_consistent(result, [2])


def test_fixed_batch_onnx_model_refuses_other_batches(tmp_path, capsys):
    model = tmp_path / "fixed.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fixed",
                                            [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, model)
    assert main(["bench", str(model), "--batch", "1", *FAST]) == 0
    capsys.readouterr()
    assert main(["bench", str(model), "--batch", "1,2", *FAST]) == 1
    err = capsys.readouterr().err
    assert "error[E602]" in err and "fixed batch of 1" in err


def test_missing_onnx_file(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "nope.onnx")]) == 1
    assert "error[E001]" in capsys.readouterr().err


def _cuda_works() -> bool:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    from netc import run

    try:
        run.session(_tiny_model(), "cuda")
    except Exception:
        return False
    return True


def _tiny_model() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "t",
                                            [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def test_cuda_without_a_gpu_fails_clearly(capsys):
    if _cuda_works():
        pytest.skip("a working CUDA provider is present")
    assert main(["bench", str(LENET), "--provider", "cuda", *FAST]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # nothing was measured, on the CPU or anywhere
    assert "error[E601]" in err
    assert "ONNX Runtime said:" in err or "built without the CUDA" in err


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "batch sizes must be at least 1"),
    (["--batch", "1,x"], "not a comma-separated list of batch sizes"),
    (["--batch", ""], "not a comma-separated list of batch sizes"),
    (["--warmup", "-1"], "must be 0 or more"),
    (["--iters", "0"], "must be at least 1"),
    (["--seconds", "0"], "must be a positive number of seconds"),
    (["--seconds", "nan"], "must be a positive number of seconds"),
    (["--seconds", "soon"], "not a number of seconds"),
    (["--threads", "0"], "must be at least 1"),
    (["--iters", "5", "--seconds", "1"], "not allowed with argument"),
    (["--provider", "tpu"], "invalid choice"),
    (["--dtype", "int8"], "invalid choice"),
    (["--format", "csv"], "invalid choice"),
])
def test_bad_option_values_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", str(LENET), *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--prefer-nhwc"], "--prefer-nhwc is an option of the CUDA provider"),
    (["--fold-bn"], "--fold-bn applies when compiling a spec"),
])
def test_options_that_do_not_apply_are_usage_errors(tmp_path, args, message, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(_tiny_model())
    assert main(["bench", str(model), *args]) == 2
    assert message in capsys.readouterr().err


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_terminal_is_one_line_redrawn_then_erased():
    clock, out = FakeClock(), io.StringIO()
    p = bench.Progress(out, tty=True, clock=clock)
    p.start("batch 8")
    p.update("run 1 of 50")
    assert out.getvalue() == ""  # nothing during the first second
    clock.now = 1.2
    p.update(lambda: "run 9 of 50")
    clock.now = 1.25
    p.update("run 10 of 50")  # too soon to redraw
    assert out.getvalue() == "\r\x1b[Knetc bench: batch 8: run 9 of 50"
    p.done()
    assert out.getvalue().endswith("\r\x1b[K") and "\n" not in out.getvalue()


def test_progress_in_a_log_is_a_line_every_ten_seconds():
    clock, out = FakeClock(), io.StringIO()
    p = bench.Progress(out, tty=False, clock=clock)
    p.start("batch 1")
    for t in range(0, 25):
        clock.now = float(t)
        p.update(f"{t} s")
    p.done()
    assert out.getvalue().splitlines() == ["netc bench: batch 1: 10 s",
                                           "netc bench: batch 1: 20 s"]
