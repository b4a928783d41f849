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


def test_default_output_is_named_after_the_spec_file_not_its_name(tmp_path, monkeypatch, capsys):
    """Issue 16 item 6: `compile lenet5_fixed.yaml` (with `name: lenet5`) writes
    lenet5_fixed.onnx in the current directory, so `run lenet5_fixed.onnx` finds it; the
    model inside keeps the spec's `name:` as its graph name."""
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "lenet5_fixed.yaml"
    spec.write_bytes(LENET.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "specs/lenet5_fixed.yaml"]) == 0
    assert "wrote lenet5_fixed.onnx" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet5_fixed.onnx", "specs"]
    assert onnx.load(tmp_path / "lenet5_fixed.onnx").graph.name == "lenet5"
    assert main(["run", "lenet5_fixed.onnx"]) == 0
    assert "ran lenet5_fixed.onnx on cpu" in capsys.readouterr().out


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


# --- option values (issue 15): every number has a range netc can honour ----------------------


@pytest.mark.parametrize("name", ["bytes", "depth", "nodes", "layers", "nesting", "tensor",
                                  "params"])
def test_each_limit_has_a_maximum(name, capsys):
    """`--limit NAME=N` takes 1 to limits.MAXIMA[NAME]; beyond (a 23-digit number, 5,000
    digits), below, malformed: a usage error naming the range, exit 2 (it was exit 70: an
    OverflowError reading the spec with bytes=10^23)."""
    from netc.cli import _parser
    from netc.limits import MAXIMA

    top = MAXIMA[name]
    args = _parser().parse_args(["check", str(LENET), "--limit", f"{name}={top}"])
    assert args.limit == [(name, top)]
    for value in (str(top + 1), "1" * 23, "9" * 5000, "0", "-1", "nan", "1e3", "", "x"):
        with pytest.raises(SystemExit) as e:
            main(["check", str(LENET), "--limit", f"{name}={value}"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "netc check: error: argument --limit: " in err and "Traceback" not in err
        if value in (str(top + 1), "1" * 23, "9" * 5000):
            assert f"{name} must be between 1 and {top:,}" in err, err
    for text in (name, "=", f"={top}", f"{name.upper()}=1"):
        with pytest.raises(SystemExit) as e:
            main(["check", str(LENET), "--limit", text])
        assert e.value.code == 2


def _nested(blocks: int, depth: int) -> str:
    """A spec whose blocks use each other `blocks` deep, the innermost conv with an attribute
    `x` nested `depth` lists deep (E102: conv has no `x`), or none when `depth` is 0."""
    extra = f", x: {'[' * depth}{']' * depth}" if depth else ""
    lines = ["netc: 1", "name: nested", "inputs:", "  image: [N, 3, 8, 8]", "blocks:",
             "  b0:", "    layers:", f"      - conv: {{filters: 2, kernel: 1{extra}}}"]
    for i in range(1, blocks):
        lines += [f"  b{i}:", "    layers:", f"      - b{i - 1}"]
    return "\n".join(lines + ["layers:", f"  - b{blocks - 1}", "  - flatten", ""])


def test_specs_at_the_maxima_of_depth_and_nesting_are_honoured(tmp_path, capsys):
    """The maxima are what netc can do: a spec whose blocks nest limits.MAXIMA["nesting"]
    deep, with YAML nested to MAXIMA["depth"] inside the innermost block, is an E102 in every
    command that reads a spec (not a RecursionError: exit 70, as `--limit nesting=100000`
    gave for blocks nested 300 deep); without the deep attribute it compiles to a model
    that ONNX Runtime runs, with the shape netc predicts."""
    import onnxruntime as ort

    from netc.limits import MAXIMA

    limits = ["--limit", f"nesting={MAXIMA['nesting']}", "--limit",
              f"depth={MAXIMA['depth']}"]
    bad = tmp_path / "deep.yaml"
    bad.write_text(_nested(MAXIMA["nesting"], MAXIMA["depth"] - 7), encoding="utf-8")
    layer = ".".join(["b" + str(i) for i in range(MAXIMA["nesting"] - 1, -1, -1)])
    commands = [["check"], ["compile", "-o", str(tmp_path / "m.onnx")], ["expand"],
                ["summary"], ["graph"], ["sizes", "--range", "8:9"], ["run"],
                ["weights", "-o", str(tmp_path / "w.npz")], ["bench", "--iters", "1"]]
    for command in commands:
        status = main([command[0], str(bad), *command[1:], *limits])
        err = capsys.readouterr().err
        assert status == 1 and "error[E102]: unknown attribute 'x' for conv" in err, \
            (command, err[-2000:])
    assert main(["explain", str(bad), layer, *limits]) == 1
    assert "error[E102]" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(_nested(MAXIMA["nesting"], 0), encoding="utf-8")
    out = tmp_path / "good.onnx"
    assert main(["compile", str(good), "-o", str(out), *limits]) == 0
    capsys.readouterr()
    assert main(["summary", str(good), "--format", "json", *limits]) == 0
    predicted = json.loads(capsys.readouterr().out)["outputs"]
    [name] = predicted
    x = np.zeros((2, 3, 8, 8), np.float32)
    [y] = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"image": x})
    assert list(y.shape) == [2 if d == "N" else d for d in predicted[name]]


def test_a_raised_byte_limit_allocates_what_the_file_holds():
    """--limit bytes=N reads at most N + 1 bytes, a mebibyte at a time: a spec of a few KiB
    read with the maximum (1 GiB) allocates a few KiB, not the limit (f.read(n) allocates n
    bytes first: a MemoryError under a memory limit, reported as out of memory)."""
    import tracemalloc

    from netc.limits import MAXIMA, Limits
    from netc.load import load_file

    load_file(LENET)
    tracemalloc.start()
    try:
        load_file(LENET, Limits(bytes=MAXIMA["bytes"]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


@pytest.mark.parametrize("command, option, top", [
    ("run", "--batch", "MAX_BATCH"), ("bench", "--batch", "MAX_BATCH"),
    ("bench", "--warmup", "MAX_RUNS"), ("bench", "--iters", "MAX_RUNS"),
    ("bench", "--seconds", "MAX_SECONDS"), ("bench", "--threads", "max_threads"),
    ("run", "--seed", "SEED"),
])
def test_numeric_options_have_upper_bounds(command, option, top, capsys):
    """Each numeric option takes values up to a bound netc honours, and refuses the next
    (exit 2): `bench --threads 99999999999` was exit 70 (ONNX Runtime's C int), `--iters`,
    `--warmup` and `--seconds` of 10^23 ran for ever, a batch of 2^63 was exit 70 in numpy."""
    from netc import cli

    bound = {"SEED": 2**63 - 1, "max_threads": cli.max_threads()}.get(top) \
        or getattr(cli, top, None)
    bound = int(bound)
    args = cli._parser().parse_args([command, str(LENET), option, str(bound)])
    assert args is not None
    for value in (str(bound + 1), str(10**23), str(2**63)):
        with pytest.raises(SystemExit) as e:
            main([command, str(LENET), option, value])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {option}: " in err and "at most" in err, err


def test_run_refuses_npy_for_several_outputs_before_running(tmp_path, capsys, monkeypatch):
    """Issue 16 item 7: `run --output b.npy` on a model of three outputs is E603 before the
    model runs (nothing printed about a run, no file), with the .npz that works as the hint;
    following it saves every output, each equal to ONNX Runtime's own run of the model."""
    import onnxruntime as ort

    from netc import run as netc_run

    spec = tmp_path / "three.yaml"
    spec.write_text("netc: 1\nname: three\ninputs:\n  image: [N, 3, 8, 8]\nlayers:\n"
                    "  - conv: {filters: 4, kernel: 3, pad: 1}\n    name: a\n  - relu\n"
                    "  - {relu: , name: b}\n  - {flatten: , name: c}\noutputs: [a, b, c]\n",
                    encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    ran = []
    real = netc_run.run_model
    monkeypatch.setattr(netc_run, "run_model", lambda *a, **k: ran.append(1) or real(*a, **k))
    assert main(["run", str(spec), "--output", "b.npy"]) == 1
    out, err = capsys.readouterr()
    assert "error[E603]: the model has 3 outputs (a, b, c): a .npy file holds one" in err, err
    assert "hint: --output b.npz" in err
    assert ran == [] and "ran " not in out and not (tmp_path / "b.npy").exists()
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((2, 3, 8, 8),
                                                                         dtype=np.float32))
    assert main(["run", str(spec), "--input", "x.npy", "--output", "b.npz"]) == 0
    assert main(["compile", str(spec)]) == 0
    sess = ort.InferenceSession(str(tmp_path / "three.onnx"), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"image": np.load(tmp_path / "x.npy")})
    saved = np.load(tmp_path / "b.npz")
    assert sorted(saved.files) == ["a", "b", "c"]
    for name, value in zip(["a", "b", "c"], want):
        np.testing.assert_allclose(saved[name], value, rtol=1e-6, atol=1e-6)
