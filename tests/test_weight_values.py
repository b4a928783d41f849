"""Every tensor netc writes into a model is finite and fits its dtype (issue 15, fault kind 2).

Whatever made a value (a weights file, --fold-bn, an initial value, the cast to float16, a
constant a layer lowers to), netc writes no NaN, no infinity and nothing its dtype can't hold:
it refuses with E508 at the layer, naming the tensor, how many values are bad, the first one
and a fix. The oracles are independent of netc: PyTorch's casts (float64 -> float32 ->
float16) and its `fuse_conv_bn_weights` for --fold-bn, and ONNX Runtime running what netc
accepted. No numpy RuntimeWarning reaches the user: every compile here runs with warnings
as errors.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper
from safetensors.numpy import save_file

from netc.cli import main

torch = pytest.importorskip("torch", reason="PyTorch's casts and batchnorm fusion are the oracle")

# The line numbers matter: positions are asserted.
SPEC = """\
netc: 1
name: v
inputs:
  x: [N, 3, 6, 6]
layers:
  - conv: {{filters: 4, kernel: 3, bias: false}}
    name: conv
  - batchnorm: {{eps: {eps}}}
    name: bn
  - relu
  - flatten
  - dense: 2
    name: fc
"""
CONV_LINE, BN_LINE, DENSE_LINE = 6, 8, 12
SHAPES = {"conv.weight": (4, 3, 3, 3), "bn.weight": (4,), "bn.bias": (4,),
          "bn.running_mean": (4,), "bn.running_var": (4,), "fc.weight": (2, 64),
          "fc.bias": (2,)}
FLT_MAX = float(np.finfo(np.float32).max)
SETTINGS = dict(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def good_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of a trained-looking network (float64): positive variances, modest values."""
    rng = np.random.default_rng(seed)
    w = {name: rng.standard_normal(shape) * 0.5 for name, shape in SHAPES.items()}
    w["bn.running_var"] = rng.uniform(0.5, 2.0, 4)
    w["bn.weight"] = rng.uniform(0.5, 1.5, 4)
    return w


def write_spec(folder: Path, eps: float = 1e-5) -> Path:
    path = folder / f"v{eps!r}.yaml"
    path.write_text(SPEC.format(eps=eps), encoding="utf-8")
    return path


def compile_quietly(capsys, *argv) -> tuple[int, str]:
    """`netc ARGV` in this process with every warning an error (a numpy RuntimeWarning would
    make it exit 70), and what it printed on standard error."""
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err and "Warning" not in err, err
    return code, err


def initializers(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(path)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def save(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
    else:
        np.savez(path, **tensors)
    return path


def e508_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error[E508]" in line]


# --- values in a weights file: refused as they are read -------------------------------------


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e300", "mixed"])
def test_a_weights_file_with_values_float32_cant_hold_is_refused_at_the_layer(
        tmp_path, capsys, ext, bad):
    spec = write_spec(tmp_path)
    w = good_weights()
    kernel = w["conv.weight"]
    planted = {"nan": [np.nan], "inf": [np.inf], "-inf": [-np.inf], "1e300": [1e300],
               "mixed": [np.nan, -1e300, np.inf]}[bad]
    at = [(1, 2, 0, 1), (2, 0, 2, 2), (3, 1, 1, 0)][:len(planted)]
    for index, value in zip(at, planted):
        kernel[index] = value
    out = tmp_path / "m.onnx"
    code, err = compile_quietly(capsys, "compile", spec, "--weights",
                                save(tmp_path / f"w.{ext}", w), "-o", out)
    assert code == 1 and not out.exists()
    [line] = e508_lines(err)
    assert line.startswith(f"{spec}:{CONV_LINE}:5: error[E508]: in '{tmp_path / f'w.{ext}'}', "
                           "'conv.weight' holds ")
    # the oracle: PyTorch's float64 -> float32 cast, and which of its values aren't finite
    cast = torch.tensor(kernel, dtype=torch.float64).to(torch.float32)
    bad_mask = ~torch.isfinite(cast)
    count = int(bad_mask.sum())
    first = tuple(int(i) for i in torch.nonzero(bad_mask)[0])
    assert f"{count:,} value{'s' * (count != 1)} of {kernel.size:,}" in line
    assert f"[{', '.join(map(str, first))}] = " in line
    if bad == "1e300":
        assert "beyond float32's range (±3.4028235e+38)" in line and "= 1e+300" in line
    if bad == "mixed":
        assert "(1 NaN, 1 infinite, 1 beyond float32's range" in line
    assert "hint: " in err


def test_every_bad_tensor_is_reported_in_one_run(tmp_path, capsys):
    spec = write_spec(tmp_path)
    w = good_weights()
    w["conv.weight"][0, 0, 0, 0] = np.nan
    w["fc.bias"][1] = np.inf
    code, err = compile_quietly(capsys, "compile", spec, "--weights",
                                save(tmp_path / "w.safetensors", w), "-o", tmp_path / "m.onnx")
    assert code == 1
    lines = e508_lines(err)
    assert [line.split(": error")[0] for line in lines] == [f"{spec}:{CONV_LINE}:5",
                                                           f"{spec}:{DENSE_LINE}:5"]
    assert "'fc.bias' holds 1 value of 2 that is infinite: [1] = infinity" in lines[1]


def test_float16_and_bfloat16_infinities_in_a_file_are_refused(tmp_path, capsys):
    spec = write_spec(tmp_path)
    w = {k: v.astype(np.float16) for k, v in good_weights().items()}
    w["fc.weight"][1, 5] = np.float16(np.inf)
    code, err = compile_quietly(capsys, "compile", spec, "--weights",
                                save(tmp_path / "w.safetensors", w), "-o", tmp_path / "m.onnx")
    assert code == 1
    [line] = e508_lines(err)
    assert f":{DENSE_LINE}:5:" in line and "[1, 5] = infinity" in line


# netc's cast of a float64 weight to float32 agrees with PyTorch's everywhere, at the edge of
# float32's range too: FLT_MAX + 2^103 is halfway to the next binade and rounds (to even) to
# infinity; the double below it rounds to FLT_MAX, which fits
HALFWAY = FLT_MAX + 2.0 ** 103


@settings(**SETTINGS)
@given(st.floats(allow_nan=True, allow_infinity=True, width=64))
@example(HALFWAY)
@example(float(np.nextafter(HALFWAY, 0)))
@example(-HALFWAY)
@example(5e-324)
def test_a_float64_value_compiles_exactly_when_float32_holds_it(tmp_path_factory, capsys, x):
    folder = tmp_path_factory.mktemp("f64")
    spec = write_spec(folder)
    w = good_weights()
    w["fc.weight"][0, 3] = x
    out = folder / "m.onnx"
    code, err = compile_quietly(capsys, "compile", spec, "--weights",
                                save(folder / "w.safetensors", w), "-o", out)
    expected = torch.tensor(x, dtype=torch.float64).to(torch.float32)
    event("compiled" if torch.isfinite(expected) else "refused")
    if torch.isfinite(expected):
        assert code == 0, err
        got = initializers(out)["fc.weight"][0, 3]
        assert got.tobytes() == expected.numpy().tobytes()
    else:
        assert code == 1 and not out.exists()
        assert e508_lines(err) and f":{DENSE_LINE}:5:" in e508_lines(err)[0]


# --- --fold-bn ---------------------------------------------------------------------------------


def torch_fused(w: dict[str, np.ndarray], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The conv's weight and bias with the batchnorm folded in, by PyTorch (float64, then
    rounded to float32 as netc stores them)."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weight, bias = fuse_conv_bn_weights(
            t["conv.weight"], None, t["bn.running_mean"], t["bn.running_var"], eps,
            t["bn.weight"], t["bn.bias"])
    return weight.detach().float().numpy(), bias.detach().float().numpy()


@pytest.mark.parametrize("fold", [False, True])
def test_a_negative_running_var_is_refused_as_it_is_read(tmp_path, capsys, fold):
    """A variance is never negative: PyTorch's BatchNorm2d (the oracle) computes NaN for that
    channel, so netc refuses the file at the batchnorm's line, folded or not."""
    torch = pytest.importorskip("torch", reason="PyTorch's batchnorm is the oracle here")
    spec = write_spec(tmp_path)
    w = good_weights()
    w["bn.running_var"][2] = -1.0
    bn = torch.nn.BatchNorm2d(4, eps=1e-5).eval()
    bn.running_var.copy_(torch.from_numpy(w["bn.running_var"]))
    with torch.no_grad():
        y = bn(torch.ones(1, 4, 2, 2)).numpy()
    assert np.isnan(y[0, 2]).all() and np.isfinite(np.delete(y, 2, axis=1)).all()
    path = save(tmp_path / "w.safetensors", {k: v.astype(np.float32) for k, v in w.items()})
    out = tmp_path / "m.onnx"
    code, err = compile_quietly(capsys, "compile", spec, "--weights", path, "-o", out,
                                *(["--fold-bn"] if fold else []))
    assert code == 1 and not out.exists()
    [line] = e508_lines(err)
    assert line.startswith(f"{spec}:{BN_LINE}:5: error[E508]: in '{path}', 'bn.running_var' "
                           "holds 1 negative value of 4; the first is [2] = -1"), line
    assert "a variance is never negative" in err


@pytest.mark.parametrize("case", ["running_var + eps = 0", "huge weight", "NaN from 0 / 0"])
def test_fold_bn_statistics_that_fold_into_no_float32_are_refused_at_the_batchnorm(
        tmp_path, capsys, case):
    eps = 0.0 if case in ("running_var + eps = 0", "NaN from 0 / 0") else 1e-5
    spec = write_spec(tmp_path, eps)
    w = good_weights()
    channel = 2
    if case == "running_var + eps = 0":
        w["bn.running_var"][channel] = 0.0
    elif case == "huge weight":
        w["bn.weight"][channel], w["bn.running_var"][channel] = 1e38, 1e-6
    else:
        w["bn.weight"][channel], w["bn.running_var"][channel] = 0.0, 0.0
    weight, bias = torch_fused(w, eps)
    assert not (np.isfinite(weight).all() and np.isfinite(bias).all())  # the oracle agrees
    out = tmp_path / "m.onnx"
    path = save(tmp_path / "w.safetensors", {k: v.astype(np.float32) for k, v in w.items()})
    code, err = compile_quietly(capsys, "compile", spec, "--weights", path, "--fold-bn",
                                "-o", out)
    assert code == 1 and not out.exists()
    [line] = e508_lines(err)
    assert line.startswith(f"{spec}:{BN_LINE}:5: error[E508]: --fold-bn: folding batchnorm "
                           "'bn' into conv 'conv'")
    assert f"the first, channel {channel}," in line
    assert f"{spec}:{CONV_LINE}:5: note: conv 'conv', folded with it" in err
    if case in ("running_var + eps = 0", "NaN from 0 / 0"):
        assert "has running_var[2] = 0 and eps 0: its scale, weight / sqrt(running_var + " \
            "eps), divides by zero" in line
    else:
        assert "past float32's range" in line
    # unfolded, the same file compiles (the values are finite): only folding makes them bad
    assert compile_quietly(capsys, "compile", spec, "--weights", path, "-o", out)[0] == 0


@settings(**SETTINGS)
@given(var=st.sampled_from([-1.0, -1e-5, 0.0, 1e-30, 1e-6, 1.0, 1e30]),
       gamma=st.sampled_from([0.0, 1e-30, 1.0, -3.0, 1e20, 1e38]),
       eps=st.sampled_from([0.0, 1e-5]),
       kernel=st.sampled_from([1e-3, 1.0, 1e10]))
def test_fold_bn_refuses_exactly_what_pytorch_folds_into_no_float32(
        tmp_path_factory, capsys, var, gamma, eps, kernel):
    folder = tmp_path_factory.mktemp("fold")
    spec = write_spec(folder, eps)
    w = {k: v.astype(np.float32).astype(np.float64) for k, v in good_weights().items()}
    w["bn.running_var"][1], w["bn.weight"][1] = np.float32(var), np.float32(gamma)
    w["conv.weight"][1] *= kernel
    w = {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}
    weight, bias = torch_fused(w, eps)
    out = folder / "m.onnx"
    code, err = compile_quietly(capsys, "compile", spec, "--fold-bn", "-o", out, "--weights",
                                save(folder / "w.safetensors",
                                     {k: v.astype(np.float32) for k, v in w.items()}))
    event("compiled" if code == 0 else "refused")
    if np.isfinite(weight).all() and np.isfinite(bias).all():
        assert code == 0, err
        got = initializers(out)
        np.testing.assert_allclose(got["conv.weight"], weight, rtol=2e-6, atol=0)
        np.testing.assert_allclose(got["conv.bias"], bias, rtol=2e-6, atol=1e-30)
    else:
        assert code == 1 and f"{spec}:{BN_LINE}:5: error[E508]" in err, err


# --- --dtype float16 -----------------------------------------------------------------------


@settings(**SETTINGS)
@given(st.floats(min_value=6.0e4, max_value=7.0e4, width=32))
@example(65504.0)
@example(65519.99609375)  # the last float32 that rounds down to float16's largest
@example(65520.0)  # halfway: rounds (to even) to infinity
def test_float16_refuses_exactly_the_weights_pytorch_rounds_to_infinity(
        tmp_path_factory, capsys, x):
    folder = tmp_path_factory.mktemp("f16")
    spec = write_spec(folder)
    w = good_weights()
    w["fc.weight"][1, 7] = -x
    out = folder / "m.onnx"
    code, err = compile_quietly(capsys, "compile", spec, "--dtype", "float16", "-o", out,
                                "--weights", save(folder / "w.npz",
                                                  {k: v.astype(np.float32) for k, v in w.items()}))
    expected = torch.tensor(-x, dtype=torch.float32).half()
    event("compiled" if torch.isfinite(expected) else "refused")
    if torch.isfinite(expected):
        assert code == 0, err
        assert initializers(out)["fc.weight"][1, 7].tobytes() == expected.numpy().tobytes()
    else:
        assert code == 1 and not out.exists()
        [line] = e508_lines(err)
        assert line.startswith(f"{spec}:{DENSE_LINE}:5: error[E508]: dense 'fc': tensor "
                               "'fc.weight' (loaded with --weights) holds 1 value of 128 "
                               "beyond float16's range (±65,504): [1, 7] = -")
        assert "hint: float16 holds at most ±65,504: compile without --dtype float16" in err


def test_float16_refuses_an_initial_value_and_a_constant_it_cant_hold(make_spec, capsys,
                                                                       tmp_path):
    out = tmp_path / "m.onnx"
    spec = make_spec("- conv: {filters: 2, kernel: 3, init: constant(70000)}\n  name: c")
    code, err = compile_quietly(capsys, "compile", spec, "--dtype", "float16", "-o", out)
    assert code == 1 and not out.exists()
    [line] = e508_lines(err)
    assert line.startswith(f"{spec}:6:5: error[E508]: conv 'c': tensor 'c.weight' (initial "
                           "value `init: constant(70000)`) holds 54 values of 54 beyond "
                           "float16's range")
    assert "choose an `init:` whose values stay within ±65,504" in err
    assert compile_quietly(capsys, "compile", spec, "-o", out)[0] == 0  # float32 holds it
    spec = make_spec("- pad: {amount: 1, value: 70000}\n  name: p")
    code, err = compile_quietly(capsys, "compile", spec, "--dtype", "float16", "-o", out)
    assert code == 1
    [line] = e508_lines(err)
    assert line.startswith(f"{spec}:6:5: error[E508]: pad 'p': its constant 'value' would be "
                           "70000, beyond float16's range (±65,504)")
    assert "hint: compile without --dtype float16: float32 holds it" in err


def test_an_infinity_netc_lowers_to_on_purpose_is_kept(make_spec, capsys, tmp_path):
    """maxpool pads with -inf where ONNX Runtime's own padding can't (a dilated window): a
    constant netc writes on purpose, which float16 holds, and the model computes as PyTorch."""
    import onnxruntime as ort

    spec = make_spec("- maxpool: {kernel: 2, stride: 1, pad: 2, dilation: 3}\n  name: mp",
                     ("N", 2, 7, 7))
    out = tmp_path / "m.onnx"
    assert compile_quietly(capsys, "compile", spec, "--dtype", "float16", "-o", out)[0] == 0
    constants = [n for n in onnx.load(out).graph.node if n.op_type == "Constant"
                 and n.output[0].endswith("/-inf")]
    assert constants, "the lowering no longer pads with -inf: find another such constant"
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 7)).astype(np.float32)
    [y] = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    # PyTorch's max_pool2d refuses a pad past half the kernel: pad with -inf, then pool
    padded = torch.nn.functional.pad(torch.tensor(x), (2, 2, 2, 2), value=float("-inf"))
    want = torch.nn.functional.max_pool2d(padded, 2, 1, 0, 3).numpy()
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, want, rtol=2.0 ** -10)  # float16's precision


def test_uint8_input_constants_are_checked_too():
    """The normalisation --uint8-input writes (scale / std, -mean / std) is checked as it is
    made; `preprocess:` is checked earlier (E105), so the check sees a record made by hand."""
    from netc.emit import Builder, _uint8_input
    from netc.errors import NetcError
    from netc.images import Preprocess
    from netc.ir import Value

    pre = Preprocess(input="image", std=(1e-45, 1.0, 1.0), mean=(0.0, 0.0, 0.0))
    with pytest.raises(NetcError) as e:
        _uint8_input(Builder(), Value("image", ("N", 3, 4, 4)), pre, "out", "float32")
    [d] = e.value.diagnostics
    assert d.code == "E508" and "input 'image'" in d.message and "beyond float32" in d.message


# --- writing weights files (`netc weights`) --------------------------------------------------


@pytest.mark.parametrize("value", [1e300, float("nan")])
@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_netc_weights_writes_no_file_that_weights_would_refuse(tmp_path, capsys, value, ext):
    """An ONNX model's float64 initializer that float32 can't hold (or NaN) is refused, not
    written as inf or NaN into a weights file."""
    tensor = numpy_helper.from_array(np.array([1.0, value, 2.0]), "fc.bias")
    graph = helper.make_graph([helper.make_node("Identity", ["fc.bias"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE,
                                                             [3])], [tensor])
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    out = tmp_path / f"w.{ext}"
    code, err = compile_quietly(capsys, "weights", model, "-o", out)
    assert code == 1 and not out.exists()
    [line] = e508_lines(err)
    assert line.startswith(f"netc: error[E508]: cannot write '{out}': tensor 'fc.bias' holds 1 "
                           "value of 3")
    assert "[1] = " in line


# --- the check itself ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, derandomize=True)
@given(dtype=st.sampled_from([np.float16, np.float32, np.float64]),
       size=st.integers(1, 200_000), at=st.floats(0, 1, exclude_max=True),
       value=st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, "max", "-max", "tiny"]),
       fortran=st.booleans())
def test_all_finite_agrees_with_isfinite(dtype, size, at, value, fortran):
    """The chunked check (bits for float16) against numpy's isfinite over the whole array, a
    special value planted anywhere, in C or Fortran order."""
    from netc.weights import all_finite

    info = np.finfo(dtype)
    value = {"max": info.max, "-max": -info.max, "tiny": info.smallest_subnormal}.get(value,
                                                                                       value)
    a = np.full(size, 0.5, dtype)
    a[int(at * size)] = value
    if fortran and size % 2 == 0:
        a = np.asfortranarray(a.reshape(2, -1))
    with np.errstate(all="ignore"):
        assert all_finite(a) == bool(np.isfinite(a).all())
