"""Weights: initial values, and reading and writing them by name (issue 4).

Round trips (template -> --weights -> the same initializers), every kind of mismatch in one
positioned report, hostile and broken files (refused from their header, fast, without a
traceback), and the initialisers' distributions against their formulas.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from safetensors.numpy import load_file, save_file

import netc
from netc.cli import main
from netc.weights import initial_weights

# A small network with every kind of weight; the line numbers matter (positions are asserted).
SPEC = """\
netc: 1
name: w
inputs:
  x: [N, 3, 8, 8]
layers:
  - conv: {filters: 4, kernel: 3}
    name: features_conv
  - batchnorm:
    name: features_bn
  - relu
  - flatten
  - dense: 5
    name: classifier
"""
CONV_LINE, BN_LINE, DENSE_LINE = 6, 8, 12  # where each layer's type is written (column 5)
SHAPES = {
    "features_conv.weight": (4, 3, 3, 3), "features_conv.bias": (4,),
    "features_bn.weight": (4,), "features_bn.bias": (4,),
    "features_bn.running_mean": (4,), "features_bn.running_var": (4,),
    "classifier.weight": (5, 144), "classifier.bias": (5,),
}


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def compiled(spec, tmp_path, *args) -> dict[str, np.ndarray]:
    """Compile with `netc compile` and return the model's initializers by name."""
    out = tmp_path / f"m{len(list(tmp_path.glob('m*.onnx')))}.onnx"
    assert main(["compile", str(spec), "-o", str(out), *map(str, args)]) == 0
    model = onnx.load(out)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype == np.float32, name
        assert a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), name


def template(spec, tmp_path, seed: int = 0) -> dict[str, np.ndarray]:
    path = tmp_path / "template.safetensors"
    assert main(["weights", str(spec), "-o", str(path), "--seed", str(seed)]) == 0
    return load_file(str(path))


def load_err(capsys, spec, weights, *extra) -> tuple[int, str]:
    code = main(["compile", str(spec), "--weights", str(weights), "-o",
                 str(Path(weights).parent / "out.onnx"), *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
@pytest.mark.parametrize("seed", [0, 7])
def test_template_round_trip_gives_identical_initializers(spec, tmp_path, capsys, ext, seed):
    path = tmp_path / f"t.{ext}"
    assert main(["weights", str(spec), "-o", str(path), "--seed", str(seed)]) == 0
    assert f"wrote 8 tensors" in capsys.readouterr().out
    plain = compiled(spec, tmp_path, "--seed", seed)
    loaded = compiled(spec, tmp_path, "--weights", path)  # the file decides, not the seed
    assert_same(plain, loaded)
    assert {k: v.shape for k, v in plain.items()} == SHAPES
    # batchnorm starts as the identity: gamma 1, beta 0, mean 0, var 1; biases 0
    assert (plain["features_bn.weight"] == 1).all() and (plain["features_bn.bias"] == 0).all()
    assert (plain["features_bn.running_mean"] == 0).all()
    assert (plain["features_bn.running_var"] == 1).all()
    assert (plain["features_conv.bias"] == 0).all() and (plain["classifier.bias"] == 0).all()


def test_template_file_holds_the_names_shapes_and_values(spec, tmp_path):
    saved = template(spec, tmp_path, seed=3)
    assert {k: v.shape for k, v in saved.items()} == SHAPES
    assert all(v.dtype == np.float32 for v in saved.values())
    assert_same(dict(sorted(saved.items())),
                dict(sorted(compiled(spec, tmp_path, "--seed", 3).items())))
    npz = tmp_path / "t.npz"
    assert main(["weights", str(spec), "-o", str(npz), "--seed", "3"]) == 0
    with np.load(npz, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(SHAPES)
        for name in archive.files:
            assert archive[name].tobytes() == saved[name].tobytes()


def test_weights_of_an_onnx_model_are_exactly_its_initializers(spec, tmp_path, capsys):
    model = tmp_path / "m.onnx"
    assert main(["compile", str(spec), "-o", str(model), "--seed", "5"]) == 0
    out = tmp_path / "w.safetensors"
    assert main(["weights", str(model), "-o", str(out)]) == 0
    assert "wrote 8 tensors" in capsys.readouterr().out
    extracted = load_file(str(out))
    initializers = {t.name: numpy_helper.to_array(t) for t in onnx.load(model).graph.initializer}
    assert sorted(extracted) == sorted(initializers)
    for name, value in initializers.items():
        assert extracted[name].dtype == value.dtype and extracted[name].shape == value.shape
        assert extracted[name].tobytes() == value.tobytes()
    # and they compile back into the same model
    assert_same(compiled(spec, tmp_path, "--weights", out), initializers)


def test_hand_written_values_are_the_models_initializers(spec, tmp_path):
    rng = np.random.default_rng(42)
    mine = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    mine["features_bn.running_var"] = np.abs(mine["features_bn.running_var"]) + 0.5
    path = tmp_path / "mine.safetensors"
    save_file(mine, str(path))
    got = compiled(spec, tmp_path, "--weights", path)
    assert list(got) == list(SHAPES)  # in the spec's order, whatever the file's order
    for name, value in mine.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    # an .npz with the same values, one of them Fortran-ordered and one big-endian
    fortran = dict(mine)
    fortran["classifier.weight"] = np.asfortranarray(mine["classifier.weight"])
    fortran["features_conv.weight"] = mine["features_conv.weight"].astype(">f4")
    np.savez(tmp_path / "mine.npz", **fortran)
    got = compiled(spec, tmp_path, "--weights", tmp_path / "mine.npz")
    for name, value in mine.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def _safetensors_bytes(tensors: dict[str, tuple[str, tuple, bytes]], pad: bool = True) -> bytes:
    """A safetensors file made by hand: name -> (dtype, shape, raw little-endian bytes)."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_float16_and_float64_become_float32(spec, tmp_path, ext):
    rng = np.random.default_rng(0)
    values = {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}
    values["features_bn.running_var"] = np.abs(values["features_bn.running_var"])  # (a variance)
    stored = {name: v.astype(np.float16 if i % 2 else np.float64)
              for i, (name, v) in enumerate(values.items())}
    path = tmp_path / f"mixed.{ext}"
    if ext == "safetensors":
        save_file(stored, str(path))
    else:
        np.savez(path, **stored)
    got = compiled(spec, tmp_path, "--weights", path)
    for name, v in stored.items():
        assert got[name].dtype == np.float32
        np.testing.assert_array_equal(got[name], v.astype(np.float32), err_msg=name)


def test_bfloat16_becomes_float32(spec, tmp_path):
    rng = np.random.default_rng(1)
    tensors, expected = {}, {}
    for name, shape in SHAPES.items():
        # bfloat16 is the top half of a float32: values whose low 16 bits are 0 are exact
        x = rng.standard_normal(shape)
        x = np.abs(x) if name.endswith("running_var") else x  # (a variance is never negative)
        bits = x.astype(np.float32).view("<u4") & 0xFFFF0000
        expected[name] = bits.view(np.float32)
        tensors[name] = ("BF16", shape, (bits >> 16).astype("<u2").tobytes())
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(_safetensors_bytes(tensors))
    got = compiled(spec, tmp_path, "--weights", path)
    for name in SHAPES:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert np.abs(got["classifier.weight"]).max() > 0.5  # not all zeros by accident


def test_num_batches_tracked_is_ignored(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    saved["features_bn.num_batches_tracked"] = np.array(1000, dtype=np.int64)  # shape ()
    path = tmp_path / "torch_like.safetensors"
    save_file(saved, str(path))
    capsys.readouterr()
    got = compiled(spec, tmp_path, "--weights", path)
    assert "features_bn.num_batches_tracked" not in got
    assert_same(got, compiled(spec, tmp_path))
    # no weights warning (W5xx); the spec's conv bias before batchnorm draws W202, on purpose
    assert "warning[W5" not in capsys.readouterr().err


# --- mismatches ------------------------------------------------------------------------------


def pos(spec, line: int) -> str:
    return f"{spec}:{line}:5:"


def test_missing_tensor_is_positioned_at_its_layer(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    del saved["features_bn.running_var"], saved["features_bn.running_mean"]
    save_file(saved, str(tmp_path / "w.safetensors"))
    code, err = load_err(capsys, spec, tmp_path / "w.safetensors")
    assert code == 1
    assert (f"{pos(spec, BN_LINE)} error[E502]: '{tmp_path / 'w.safetensors'}' has no tensors "
            "'features_bn.running_mean', 'features_bn.running_var'") in err
    assert "    - batchnorm:\n        ^" in err  # the source line and a caret under the type
    assert "error[E501]" in err and "(2 missing)" in err
    assert "--allow-missing" in err
    assert not (tmp_path / "out.onnx").exists()


def test_unexpected_tensor_with_a_near_name(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    saved["clasifier.bias"] = saved.pop("classifier.bias")  # the layer was misspelt
    save_file(saved, str(tmp_path / "w.safetensors"))
    code, err = load_err(capsys, spec, tmp_path / "w.safetensors")
    assert code == 1
    assert "error[E505]" in err and "tensor 'clasifier.bias' that no layer of the spec uses" in err
    assert "hint: did you mean 'classifier.bias'?" in err
    # ... and the tensor the layer lacks points back at the file's near name
    assert f"{pos(spec, DENSE_LINE)} error[E502]" in err
    assert "hint: the file has 'clasifier.bias'" in err
    assert "(1 missing, 1 unexpected)" in err


def test_unexpected_tensor_alone(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    saved["head.fc.weight"] = np.zeros((2, 2), np.float32)
    save_file(saved, str(tmp_path / "w.safetensors"))
    code, err = load_err(capsys, spec, tmp_path / "w.safetensors")
    assert code == 1
    assert "error[E505]" in err and "'head.fc.weight'" in err
    assert "did you mean" not in err
    assert "(1 unexpected)" in err and "missing" not in err.split("E501]")[1].split("\n")[0]


def test_wrong_shape(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    saved["features_conv.weight"] = np.zeros((4, 3, 5, 5), np.float32)
    save_file(saved, str(tmp_path / "w.safetensors"))
    code, err = load_err(capsys, spec, tmp_path / "w.safetensors")
    assert code == 1
    assert (f"{pos(spec, CONV_LINE)} error[E503]: in '{tmp_path / 'w.safetensors'}', "
            "'features_conv.weight' is 4×3×5×5 but the layer needs 4×3×3×3") in err
    assert "transposed" not in err
    assert "(1 layer with tensors of the wrong shape or dtype)" in err


def test_scalar_instead_of_a_vector(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    saved["features_conv.bias"] = np.array(0.5, np.float32)
    save_file(saved, str(tmp_path / "w.safetensors"))
    code, err = load_err(capsys, spec, tmp_path / "w.safetensors")
    assert code == 1
    assert "'features_conv.bias' is a scalar but the layer needs 4" in err


def test_reshapeable_tensor_says_reshape(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    saved["features_conv.weight"] = np.zeros((4, 27), np.float32)
    save_file(saved, str(tmp_path / "w.safetensors"))
    code, err = load_err(capsys, spec, tmp_path / "w.safetensors")
    assert code == 1 and "error[E503]" in err and "reshape it" in err


def test_transposed_dense_weight(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    saved["classifier.weight"] = np.ascontiguousarray(saved["classifier.weight"].T)
    save_file(saved, str(tmp_path / "w.safetensors"))
    code, err = load_err(capsys, spec, tmp_path / "w.safetensors")
    assert code == 1
    assert (f"{pos(spec, DENSE_LINE)} error[E503]: in '{tmp_path / 'w.safetensors'}', "
            "'classifier.weight' is 144×5 but the layer needs 5×144") in err
    assert "hint: it is transposed" in err and "(units, features)" in err


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_integer_dtype(spec, tmp_path, capsys, ext):
    saved = template(spec, tmp_path)
    saved["features_bn.weight"] = np.ones(4, np.int32)
    path = tmp_path / f"w.{ext}"
    save_file(saved, str(path)) if ext == "safetensors" else np.savez(path, **saved)
    code, err = load_err(capsys, spec, path)
    assert code == 1
    assert f"{pos(spec, BN_LINE)} error[E504]" in err
    assert "'features_bn.weight' holds " + ("I32" if ext == "safetensors" else "int32") in err
    assert "floating-point weights only" in err


def test_every_problem_in_one_report(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    del saved["features_bn.running_var"]                                      # missing
    saved["clasifier.bias"] = saved.pop("classifier.bias")                   # near name
    saved["junk.weight"] = np.zeros(3, np.float32)                            # unexpected
    saved["features_conv.bias"] = np.zeros(5, np.float32)                     # wrong shape
    saved["classifier.weight"] = np.ascontiguousarray(saved["classifier.weight"].T)  # transposed
    saved["features_bn.weight"] = np.ones(4, np.int64)                        # dtype
    path = tmp_path / "w.safetensors"
    save_file(saved, str(path))
    code, err = load_err(capsys, spec, path)
    assert code == 1
    assert err.count("error[E501]") == 1
    assert (f"the weights in '{path}' don't match the spec (2 missing, 2 unexpected, "
            "3 layers with tensors of the wrong shape or dtype)") in err
    assert err.count("error[E505]") == 2 and "did you mean 'classifier.bias'?" in err
    assert err.count("error[E502]") == 2
    assert f"{pos(spec, BN_LINE)} error[E502]" in err
    assert f"{pos(spec, DENSE_LINE)} error[E502]" in err
    assert f"{pos(spec, CONV_LINE)} error[E503]" in err and "'features_conv.bias' is 5" in err
    assert f"{pos(spec, DENSE_LINE)} error[E503]" in err and "transposed" in err
    assert f"{pos(spec, BN_LINE)} error[E504]" in err and "I64" in err
    # positioned errors come in the spec's order
    lines = [line for line in err.splitlines() if line.startswith(str(spec))]
    assert [int(line.split(":")[1]) for line in lines] == sorted(
        int(line.split(":")[1]) for line in lines)


def test_allow_missing_initialises_and_lists_them(spec, tmp_path, capsys):
    rng = np.random.default_rng(3)
    mine = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    del mine["features_bn.running_var"], mine["classifier.bias"]
    path = tmp_path / "w.safetensors"
    save_file(mine, str(path))
    capsys.readouterr()
    got = compiled(spec, tmp_path, "--weights", path, "--allow-missing", "--seed", 9)
    err = capsys.readouterr().err
    assert "warning[W501]: 2 tensors are not in" in err
    assert "initialised: features_bn.running_var, classifier.bias" in err
    assert "error" not in err
    for name, value in mine.items():
        np.testing.assert_array_equal(got[name], value)
    assert (got["features_bn.running_var"] == 1).all() and (got["classifier.bias"] == 0).all()
    # without it, the same file is refused
    code, err = load_err(capsys, spec, path)
    assert code == 1 and "error[E502]" in err


def test_allow_missing_still_reports_the_other_problems(spec, tmp_path, capsys):
    saved = template(spec, tmp_path)
    del saved["features_bn.running_var"]
    saved["classifier.weight"] = np.ascontiguousarray(saved["classifier.weight"].T)
    save_file(saved, str(tmp_path / "w.safetensors"))
    code, err = load_err(capsys, spec, tmp_path / "w.safetensors", "--allow-missing")
    assert code == 1
    assert "error[E503]" in err and "error[E502]" not in err
    assert "(1 layer with tensors of the wrong shape or dtype)" in err
    assert "--allow-missing initialises" not in err


def test_allow_missing_without_weights_is_refused(spec, tmp_path, capsys):
    assert main(["compile", str(spec), "--allow-missing", "-o", str(tmp_path / "m.onnx")]) == 1
    assert "--allow-missing goes with --weights" in capsys.readouterr().err


def test_weights_with_weights_fills_a_template(spec, tmp_path, capsys):
    """`netc weights SPEC --weights partial --allow-missing` completes a partial file."""
    saved = template(spec, tmp_path)
    partial = {"classifier.weight": np.full((5, 144), 0.25, np.float32)}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    out = tmp_path / "full.safetensors"
    assert main(["weights", str(spec), "--weights", str(tmp_path / "partial.safetensors"),
                 "--allow-missing", "-o", str(out)]) == 0
    full = load_file(str(out))
    assert sorted(full) == sorted(SHAPES)
    assert (full["classifier.weight"] == 0.25).all()
    assert full["features_conv.weight"].tobytes() == saved["features_conv.weight"].tobytes()


# --- hostile and broken files ----------------------------------------------------------------


class _Touch:
    """Unpickling this creates a file: the proof that something was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path(self.path).touch, ())


def _zip(path, entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)


def _npy(array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, **kw)
    return buf.getvalue()


def _npy_header(shape, descr="<f4") -> bytes:
    """The header of a .npy file declaring `shape`, without its data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()  # the magic string and version included


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _raw_header_file(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def _hostile(spec, tmp_path, marker):
    """name -> (file name, bytes, what the message says)."""
    template(spec, tmp_path)
    good = (tmp_path / "template.safetensors").read_bytes()
    tib8 = {"features_conv.weight": {"dtype": "F32", "shape": [1 << 41],
                                     "data_offsets": [0, 1 << 43]}}
    tib8_small = {"features_conv.weight": {"dtype": "F32", "shape": [1 << 41],
                                           "data_offsets": [0, 16]}}
    overlap = {"features_conv.weight": {"dtype": "F32", "shape": [4, 3, 3, 3],
                                        "data_offsets": [0, 432]},
               "features_conv.bias": {"dtype": "F32", "shape": [4], "data_offsets": [400, 416]}}
    duplicate = (b'{"features_conv.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}'
                 b', "features_conv.bias": {"dtype": "F32", "shape": [4], '
                 b'"data_offsets": [16, 32]}}')
    bomb_data = _npy_header((4, 3, 3, 3)) + bytes(32 << 20)  # declares 432 bytes, holds 32 MiB
    return {
        "pickle": ("p.npz", {"features_conv.weight.npy": _npy(
            np.array([_Touch(marker)], dtype=object), allow_pickle=True)},
            "holds Python objects, which netc never unpickles"),
        "truncated": ("t.safetensors", good[: len(good) - 100], "truncated"),
        "truncated inside the header": ("h.safetensors", good[:40], "its header claims"),
        "too short": ("s.safetensors", b"\x01\x02", "too short"),
        "8 TiB tensor": ("big.safetensors", _raw_header_file(json.dumps(tib8).encode(),
                                                              bytes(16)), "lies outside"),
        "8 TiB shape in 16 bytes": ("big2.safetensors", _raw_header_file(
            json.dumps(tib8_small).encode(), bytes(16)), "holds 16 bytes"),
        "header longer than the file": ("l.safetensors", struct.pack("<Q", 10_000) + b"{}",
                                        "its header claims 10,000 bytes"),
        "header length of 2**63": ("l2.safetensors", struct.pack("<Q", 1 << 63) + b"{}",
                                   "its header claims"),
        "not JSON": ("j.safetensors", _raw_header_file(b"this is not json"), "not valid JSON"),
        "not UTF-8": ("u.safetensors", _raw_header_file(b"{\"\xff\xfe\": 1}"), "not valid JSON"),
        "not an object": ("a.safetensors", _raw_header_file(b"[1, 2]"), "not a JSON object"),
        "deeply nested": ("n.safetensors", _raw_header_file(b"[" * 200_000 + b"]" * 200_000),
                          "nested too deeply"),
        "malformed entry": ("m.safetensors", _raw_header_file(
            b'{"features_conv.bias": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}}',
            bytes(16)), "malformed"),
        "negative offsets": ("o.safetensors", _raw_header_file(
            b'{"features_conv.bias": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}',
            bytes(16)), "data offsets that run backwards"),
        "overlapping offsets": ("ov.safetensors", _raw_header_file(json.dumps(overlap).encode(),
                                                                   bytes(432)), "overlap"),
        "duplicate key": ("d.safetensors", _raw_header_file(duplicate, bytes(32)),
                          "'features_conv.bias' is declared twice"),
        "zip bomb": ("b.npz", {"features_conv.weight.npy": bomb_data}, "size does not match"),
        "8 TiB .npy": ("b2.npz", {"features_conv.weight.npy": _npy_header((1 << 41,)) + bytes(64)},
                       "size does not match"),
        "npz not a zip": ("z.npz", good, "not a valid .npz (zip) file"),
        "npz entry not npy": ("e.npz", {"features_conv.weight.npy": b"garbage" * 20},
                              "is not a valid .npy array"),
        "npz bad CRC": ("c.npz", None, "corrupt"),
        "missing file": ("nothing_here.safetensors", None, "No such file"),
    }


@pytest.fixture
def hostile(spec, tmp_path):
    marker = tmp_path / "unpickled"
    return _hostile(spec, tmp_path, marker), marker


HOSTILE = ["pickle", "truncated", "truncated inside the header", "too short", "8 TiB tensor",
           "8 TiB shape in 16 bytes", "header longer than the file", "header length of 2**63",
           "not JSON", "not UTF-8", "not an object", "deeply nested", "malformed entry",
           "negative offsets", "overlapping offsets", "duplicate key", "zip bomb", "8 TiB .npy",
           "npz not a zip", "npz entry not npy", "npz bad CRC", "missing file"]


def _corrupt_crc_npz(path, spec_path, tmp_path) -> None:
    """A stored .npz whose data was changed after it was written: the CRC no longer matches.
    The tensor is big enough that the header is read before zipfile reaches the end."""
    big = tmp_path / "big.yaml"
    big.write_text("netc: 1\nname: big\ninputs:\n  x: [N, 64]\nlayers:\n  - dense: 256\n"
                   "    name: fc\n", encoding="utf-8")
    buf = io.BytesIO()
    np.savez(buf, **{"fc.weight": np.ones((256, 64), np.float32),
                     "fc.bias": np.zeros(256, np.float32)})
    raw = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as z:
        info = z.getinfo("fc.weight.npy")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + 50_000] ^= 0xFF
    path.write_bytes(bytes(raw))
    return big


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_and_broken_files_are_refused(spec, tmp_path, capsys, hostile, case):
    cases, marker = hostile
    name, content, says = cases[case]
    path = tmp_path / name
    target = spec
    if case == "npz bad CRC":
        target = _corrupt_crc_npz(path, spec, tmp_path)
    elif isinstance(content, dict):
        _zip(path, content, zipfile.ZIP_DEFLATED)
    elif content is not None:
        path.write_bytes(content)
    capsys.readouterr()
    rss = _peak_rss_mib()
    tracemalloc.start()  # numpy reports its buffers to tracemalloc too
    try:
        code, err = load_err(capsys, target, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 1, err
    assert "error[E506]" in err and f"cannot read '{path}'" in err, err
    assert says in err, err
    assert err.count("error[") == 1  # one clear message, no follow-on errors
    assert peak < 16 << 20, f"refusing the file allocated {peak:,} bytes"
    assert _peak_rss_mib() - rss < 64, "refusing the file allocated memory"
    assert not marker.exists(), "the file was unpickled"
    assert not (tmp_path / "out.onnx").exists()


def test_unknown_header_dtype_with_a_huge_shape_is_not_read(spec, tmp_path, capsys):
    """A dtype netc does not read is reported from the header alone; a shape its bytes can't
    hold (2^43 values in 8 bytes) is refused by safetensors' validation, before any read."""
    header = {"features_conv.weight": {"dtype": "I8", "shape": [4, 3, 3, 3],
                                       "data_offsets": [0, 108]},
              "big.weight": {"dtype": "U8", "shape": [8], "data_offsets": [108, 116]}}
    path = tmp_path / "w.safetensors"
    path.write_bytes(_raw_header_file(json.dumps(header).encode(), bytes(116)))
    code, err = load_err(capsys, spec, path)
    assert code == 1
    assert "error[E504]" in err and "holds I8 values" in err
    assert "error[E505]" in err and "'big.weight'" in err
    header["big.weight"]["shape"] = [1 << 43]
    path.write_bytes(_raw_header_file(json.dumps(header).encode(), bytes(116)))
    code, err = load_err(capsys, spec, path)
    assert code == 1 and err.count("error[") == 1
    assert f"error[E506]: cannot read '{path}': tensor 'big.weight' declares {1 << 43} U8 but " \
        "holds 8 bytes" in err


@pytest.mark.parametrize("ext", ["pt", "pth", "bin", "ckpt"])
def test_wrong_extension(spec, tmp_path, capsys, ext):
    path = tmp_path / f"model.{ext}"
    path.write_bytes(pickle.dumps({"features_conv.weight": [1.0]}))
    code, err = load_err(capsys, spec, path)
    assert code == 1
    assert f"error[E507]: '{path}': netc reads weights from .safetensors or .npz files" in err
    assert "hint: save a PyTorch state_dict with safetensors.torch.save_file" in err


def test_writing_to_a_wrong_extension_is_refused(spec, tmp_path, capsys):
    assert main(["weights", str(spec), "-o", str(tmp_path / "w.pt")]) == 1
    err = capsys.readouterr().err
    assert "error[E507]" in err and "Traceback" not in err
    assert not (tmp_path / "w.pt").exists()


def test_weights_of_a_broken_onnx_model(tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"\x08garbage")
    assert main(["weights", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "w.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "error[E604]" in err and "Traceback" not in err


# --- initialisers ----------------------------------------------------------------------------

# conv: 64 channels -> 128 filters, 3×3 (fan_in 576, fan_out 1152 as PyTorch counts them),
# on a 3×3 input so it flattens into a dense layer of 128 -> 256 (fan_in 128, fan_out 256)
INIT_SPEC = """\
netc: 1
name: init
inputs:
  x: [N, 64, 3, 3]
layers:
  - conv: {{filters: 128, kernel: 3, init: {init}}}
    name: conv
  - flatten
  - dense: {{units: 256, init: {init}}}
    name: fc
"""
FANS = {"conv.weight": (576, 1152), "fc.weight": (128, 256)}


def _init_values(tmp_path, init: str, seed: int = 0, text: str | None = None):
    path = tmp_path / f"init{abs(hash((init, text)))}.yaml"
    path.write_text(text or INIT_SPEC.format(init=init), encoding="utf-8")
    return initial_weights(netc.check_spec(str(path)), seed)


def _assert_normal(x: np.ndarray, std: float) -> None:
    n = x.size
    assert abs(x.mean()) < 5 * std / np.sqrt(n)
    assert x.std() == pytest.approx(std, rel=0.03)
    # normal, not uniform: 68.3 % within one standard deviation (uniform: 57.7 %)
    assert np.mean(np.abs(x) < std) == pytest.approx(0.6827, abs=0.015)
    assert np.abs(x).max() > 3 * std


def _assert_uniform(x: np.ndarray, bound: float) -> None:
    n = x.size
    assert np.abs(x).max() <= bound
    assert x.min() < -0.99 * bound and x.max() > 0.99 * bound
    assert abs(x.mean()) < 5 * bound / np.sqrt(3 * n)
    assert x.std() == pytest.approx(bound / np.sqrt(3), rel=0.03)
    # flat: each tenth of the range holds about a tenth of the values
    counts, _ = np.histogram(x, bins=10, range=(-bound, bound))
    assert counts.min() > 0.9 * n / 10 and counts.max() < 1.1 * n / 10


@pytest.mark.parametrize("init", ["he_normal", "he_uniform", "glorot_normal", "glorot_uniform",
                                  "normal(0.02)", "uniform(0.1)", "zeros", "ones",
                                  "constant(0.5)", "constant(-2)"])
def test_initialiser_distributions(tmp_path, init):
    values = _init_values(tmp_path, init)
    for name, (fan_in, fan_out) in FANS.items():
        x = values[name].astype(np.float64)
        assert values[name].dtype == np.float32
        if init == "he_normal":
            _assert_normal(x, np.sqrt(2 / fan_in))
        elif init == "he_uniform":
            _assert_uniform(x, np.sqrt(6 / fan_in))
        elif init == "glorot_normal":
            _assert_normal(x, np.sqrt(2 / (fan_in + fan_out)))
        elif init == "glorot_uniform":
            _assert_uniform(x, np.sqrt(6 / (fan_in + fan_out)))
        elif init == "normal(0.02)":
            _assert_normal(x, 0.02)
        elif init == "uniform(0.1)":
            _assert_uniform(x, 0.1)
        else:
            c = {"zeros": 0.0, "ones": 1.0, "constant(0.5)": 0.5, "constant(-2)": -2.0}[init]
            assert (x == c).all(), name
    # `init:` is about the weight: biases start at zero whatever it says
    assert (values["conv.bias"] == 0).all() and (values["fc.bias"] == 0).all()


def test_default_is_he_normal(tmp_path):
    text = INIT_SPEC.replace(", init: {init}", "").replace("{{", "{").replace("}}", "}")
    values = _init_values(tmp_path, "", text=text)
    assert_same(values, _init_values(tmp_path, "he_normal"))


def test_spec_defaults_choose_the_initialiser(tmp_path):
    text = (INIT_SPEC.replace(", init: {init}", "").replace("{{", "{").replace("}}", "}")
            .replace("inputs:", "defaults:\n  conv: {init: glorot_uniform}\ninputs:"))
    values = _init_values(tmp_path, "", text=text)
    _assert_uniform(values["conv.weight"].astype(np.float64), np.sqrt(6 / (576 + 1152)))
    _assert_normal(values["fc.weight"].astype(np.float64), np.sqrt(2 / 128))  # untouched
    # a layer's own init: wins over the defaults
    text = text.replace("kernel: 3}", "kernel: 3, init: zeros}")
    assert (_init_values(tmp_path, "", text=text)["conv.weight"] == 0).all()


@pytest.mark.parametrize("init, says, hint", [
    ("normal(x)", "'x' is not a number", "normal(...) takes one number"),
    ("uniform(-1)", "uniform's scale must not be negative", "uniform(...) takes one number"),
    ("normal", "write normal(VALUE)", ""),
    ("he_normall", "unknown initialiser 'he_normall'", "did you mean 'he_normal'?"),
    ("glorot_unifrom", "unknown initialiser", "did you mean 'glorot_uniform'?"),
    ("kaiming", "unknown initialiser", "choose one of: he_normal"),
    ("1.5", "must be an initialiser name", ""),
])
def test_invalid_init_is_e105_with_a_hint(tmp_path, capsys, init, says, hint):
    path = tmp_path / "bad.yaml"
    path.write_text(INIT_SPEC.format(init=init), encoding="utf-8")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    col = INIT_SPEC.format(init=init).splitlines()[5].index(f"init: {init}") + 7
    assert f"{path}:6:{col}: error[" in err, err
    assert ("error[E105]" if init != "1.5" else "error[E103]") in err
    assert says in err
    if hint:
        assert f"hint: {hint}" in err
    if init == "normal(x)":
        assert "he_normal" not in err  # not a misspelt name: no misleading "did you mean"


def test_defaults_with_an_invalid_init_point_at_the_defaults(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("netc: 1\nname: d\ndefaults:\n  conv: {init: he_normall}\ninputs:\n"
                    "  x: [N, 3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3}\n",
                    encoding="utf-8")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4:16: error[E105]" in err and "did you mean 'he_normal'?" in err


def test_values_are_deterministic_per_seed_and_name(tmp_path):
    a = _init_values(tmp_path, "he_normal", seed=1)
    assert_same(a, _init_values(tmp_path, "he_normal", seed=1))
    b = _init_values(tmp_path, "he_normal", seed=2)
    assert not np.array_equal(a["conv.weight"], b["conv.weight"])
    # a layer added elsewhere leaves the others' values alone; a renamed layer gets new ones
    text = INIT_SPEC.format(init="he_normal").replace(
        "  - flatten\n", "  - conv: {filters: 128, kernel: 1}\n    name: extra\n  - flatten\n")
    c = _init_values(tmp_path, "", seed=1, text=text)
    assert c["conv.weight"].tobytes() == a["conv.weight"].tobytes()
    assert c["fc.weight"].tobytes() == a["fc.weight"].tobytes()
    renamed = INIT_SPEC.format(init="he_normal").replace("name: conv", "name: conv0")
    d = _init_values(tmp_path, "", seed=1, text=renamed)
    assert not np.array_equal(d["conv0.weight"], a["conv.weight"])
    # the same shape under two names: two different streams
    twins = INIT_SPEC.format(init="he_normal").replace(
        "  - flatten\n", "  - conv: {filters: 128, kernel: 1}\n    name: left\n"
        "  - conv: {filters: 128, kernel: 1}\n    name: right\n  - flatten\n")
    e = _init_values(tmp_path, "", text=twins)
    assert e["left.weight"].shape == e["right.weight"].shape == (128, 128, 1, 1)
    assert not np.array_equal(e["left.weight"], e["right.weight"])


def test_values_do_not_depend_on_the_process(tmp_path):
    """Seeded from the name's SHA-256, not Python's randomised hash()."""
    path = tmp_path / "w.yaml"
    path.write_text(SPEC, encoding="utf-8")
    code = ("import sys, netc; from netc.weights import initial_weights; "
            "w = initial_weights(netc.check_spec(sys.argv[1]), 11); "
            "sys.stdout.write(w['classifier.weight'].tobytes().hex())")
    outs = {subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                           text=True, env={**os.environ, "PYTHONHASHSEED": str(h)},
                           check=True).stdout for h in (1, 2)}
    here = initial_weights(netc.check_spec(str(path)), 11)["classifier.weight"]
    assert outs == {here.tobytes().hex()}


# --- other people's formats: what their libraries check, and what netc adds (issue 15) -------


def _raw_zip(members: list[tuple[bytes, bytes]], utf8_flag: bool) -> bytes:
    """A stored zip of (name bytes, data) members, the names written exactly as given (zipfile
    would encode them), with zip's flag bit 11 (names are UTF-8) set or not."""
    import zlib

    out, central = bytearray(), bytearray()
    flag = 0x800 if utf8_flag else 0
    for name, data in members:
        crc = zlib.crc32(data)
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flag, 0, 0, 0x21, crc, len(data),
                           len(data), len(name), 0) + name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flag, 0, 0, 0x21,
                               crc, len(data), len(data), len(name), 0, 0, 0, 0, 0,
                               offset) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                      len(central), len(out), 0)
    return bytes(out + central + end)


NAME_ODDITIES = {
    # a name that is not UTF-8 though the archive says its names are: exit 70 before
    "bit 11, not UTF-8": ([b"features_conv.weight\xff.npy"], True, "E506",
                          "a member's name is not valid UTF-8 (byte 0xff)"),
    # without bit 11, zip names are cp437: every byte decodes, to a name no layer has
    "cp437": ([b"features_conv.weight\x82.npy"], False, "E505",
              "has a tensor 'features_conv.weighté' that no layer"),
    # zipfile cuts a name at a NUL, silently: "features_conv.weight.npy" would be read
    "NUL": ([b"features_conv.weight.npy\x00.txt"], False, "E506",
            "holds a NUL character"),
    "duplicate": ([b"features_conv.weight.npy", b"features_conv.weight.npy"], False, "E506",
                  "the archive holds two members named 'features_conv.weight.npy'"),
    # netc never extracts a member: a path is just a name no layer has
    "path": ([b"../x/features_conv.weight.npy"], False, "E505",
             "has a tensor '../x/features_conv.weight' that no layer"),
    "escape": ([b"\x1b[2Jfeatures_conv.weight.npy"], False, "E505",
               "has a tensor '\\x1b[2Jfeatures_conv.weight' that no layer"),
}


@pytest.mark.parametrize("case", list(NAME_ODDITIES))
def test_npz_member_names_that_are_no_tensor_name(spec, tmp_path, capsys, case):
    names, utf8, code, says = NAME_ODDITIES[case]
    data = _npy(np.ones(SHAPES["features_conv.weight"], np.float32))
    path = tmp_path / "w.npz"
    path.write_bytes(_raw_zip([(n, data) for n in names], utf8))
    status, err = load_err(capsys, spec, path, "--allow-missing")
    assert status == 1, err
    assert f"error[{code}]" in err and says in err, err
    assert "\x1b" not in err  # shown escaped, never sent to the terminal


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_a_weights_path_that_is_not_a_regular_file_is_refused_unread(spec, tmp_path, kind,
                                                                     ext):
    """A FIFO would block the read forever, a device never end: refused before opening. (A
    process with a timeout: a regression would hang.)"""
    path = tmp_path / f"w.{ext}"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    proc = subprocess.run([sys.executable, "-m", "netc", "compile", str(spec), "--weights",
                           str(path), "-o", str(tmp_path / "m.onnx")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "error[E506]" in proc.stderr and "Traceback" not in proc.stderr
    assert f"'{path}'" in proc.stderr


def test_safetensors_gaps_and_trailing_bytes_are_refused(spec, tmp_path, capsys):
    """safetensors' validation (which netc now uses) also refuses data that no tensor covers,
    which the reader netc wrote itself let through; netc says where."""
    entry = {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}
    path = tmp_path / "gap.safetensors"
    path.write_bytes(_raw_header_file(json.dumps({"features_conv.bias": entry}).encode(),
                                      bytes(32)))
    code, err = load_err(capsys, spec, path)
    assert code == 1 and "error[E506]" in err and "bytes 0-16 of the data belong to no tensor" \
        in err, err
    entry["data_offsets"] = [0, 16]
    path = tmp_path / "tail.safetensors"
    path.write_bytes(_raw_header_file(json.dumps({"features_conv.bias": entry}).encode(),
                                      bytes(20)))
    code, err = load_err(capsys, spec, path)
    assert code == 1 and "error[E506]" in err and "the data is 20 bytes and its tensors end " \
        "at byte 16" in err, err


def test_safetensors_duplicate_entries_that_agree_are_one_tensor(spec, tmp_path):
    """Two identical entries of one name describe the same bytes: safetensors keeps one, and
    so does netc (entries that disagree leave a gap, refused above)."""
    values = {name: np.full(shape, 0.25, np.float32) for name, shape in SHAPES.items()}
    path = tmp_path / "w.safetensors"
    save_file(values, str(path))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = raw[8:8 + n].decode().rstrip()
    first = header[1:header.index("},") + 1]  # the first entry, repeated
    doubled = ("{" + first + "," + header[1:]).encode()
    path.write_bytes(_raw_header_file(doubled, raw[8 + n:]))
    got = compiled(spec, tmp_path, "--weights", path)
    assert all((got[name] == 0.25).all() for name in SHAPES)


# --- input arrays (`netc run --input x.npy`): the header's size against the file's -----------


def test_a_npy_whose_header_claims_4_gib_is_refused_without_allocating(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("netc: 1\nname: s\ninputs:\n  x: [N, 1, 32, 32]\nlayers:\n  - relu\n",
                    encoding="utf-8")
    path = tmp_path / "x.npy"
    path.write_bytes(_npy_header((1, 1, 32768, 32768)))  # 128 bytes that declare 4 GiB
    tracemalloc.start()
    try:
        code = main(["run", str(spec), "--input", str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == 1, err
    assert (f"error[E602]: '{path}' is truncated: its header declares 1×1×32768×32768 values "
            "of float32 (4,294,967,296 bytes), and the file holds 0 bytes after it") in err
    assert peak < 64 << 20, f"refusing it allocated {peak:,} bytes"
    # the same array written whole runs, in C and in Fortran order
    for order in "CF":
        x = np.asarray(np.arange(1024, dtype=np.float32).reshape(1, 1, 32, 32), order=order)
        np.save(path, x)
        assert main(["run", str(spec), "--input", str(path)]) == 0
        assert "max 1023" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_an_input_that_is_not_a_regular_file_is_refused_unread(tmp_path, kind):
    spec = tmp_path / "s.yaml"
    spec.write_text("netc: 1\nname: s\ninputs:\n  x: [N, 4]\nlayers:\n  - relu\n",
                    encoding="utf-8")
    path = tmp_path / "x.npy"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    proc = subprocess.run([sys.executable, "-m", "netc", "run", str(spec), "--input",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "error[E602]" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# --- diagnostic floods: capped where they are shown, counted in full -------------------------


def _zero_size_tensors(path: Path, n: int) -> None:
    save_file({f"t{i}.weight": np.zeros((0,), np.float32) for i in range(n)}, str(path))


def test_a_file_of_20000_unexpected_tensors_prints_a_page_not_megabytes(spec, tmp_path,
                                                                        capsys):
    from netc.errors import SHOW_PER_CODE

    path = tmp_path / "many.safetensors"
    _zero_size_tensors(path, 20_000)
    code, err = load_err(capsys, spec, path)
    assert code == 1
    assert err.count("error[E505]") == SHOW_PER_CODE
    assert f"netc: ... and {20_000 - SHOW_PER_CODE:,} more E505 errors like these\n" in err + "\n"
    assert "error[E501]: the weights in" in err and "(8 missing, 20000 unexpected)" in err
    assert len(err) < 20_000, len(err)  # 1.5 MB before the cap


def test_the_formats_show_the_same_capped_diagnostics_and_count_them_all(tmp_path):
    """text, JSON, GitHub and SARIF show at most SHOW_PER_CODE of a code per file and
    SHOW_PER_FILE per file, then say how many more; the JSON summary counts them all."""
    from netc.errors import SHOW_PER_CODE, SHOW_PER_FILE, Diagnostics
    from netc.source import SourceFile as Source, Span
    from netc.tools.formats import Report, render

    text = "x\n" * 10
    source = Source(str(tmp_path / "s.yaml"), text)
    report = Report()
    found = Diagnostics()
    for i in range(3000):  # 3,000 E505 at distinct columns, 400 E502 and 30 warnings
        found.error("E505", f"number {i}", Span(source, 1 + i % 9, 1 + i // 9, 1 + i % 9,
                                                 2 + i // 9))
    for i in range(400):
        found.error("E502", f"missing {i}", Span(source, 10, 1 + i, 10, 2 + i))
    for i in range(30):
        found.warning("W501", f"warned {i}", Span(source, 10, 500 + i, 10, 501 + i))
    report.add(str(tmp_path / "s.yaml"), found)
    other = Diagnostics()
    other.error("E506", "one problem in another file", None)
    report.add(str(tmp_path / "t.safetensors"), other)

    shown = render(report, "text")
    assert shown.count("error[E505]") == SHOW_PER_CODE
    assert shown.count("error[E502]") == SHOW_PER_CODE
    assert shown.count("warning[W501]") == 30
    assert shown.count("error[E506]") == 1  # the other file has its own caps
    assert f"netc: ... and {3000 - SHOW_PER_CODE:,} more E505 errors like these in" in shown
    assert f"netc: ... and {400 - SHOW_PER_CODE:,} more E502 errors like these in" in shown

    doc = json.loads(render(report, "json"))
    assert len(doc["diagnostics"]) == SHOW_PER_CODE * 2 + 30 + 1
    assert doc["summary"]["errors"] == 3000 + 400 + 1 and doc["summary"]["warnings"] == 30

    lines = render(report, "github").splitlines()
    assert len(lines) == SHOW_PER_CODE * 2 + 30 + 1 + 2
    assert sum("::error" in line and "more E505 errors like these" in line
               for line in lines) == 1

    log = json.loads(render(report, "sarif"))
    [run] = log["runs"]
    assert len(run["results"]) == SHOW_PER_CODE * 2 + 30 + 1
    notes = [n["message"]["text"] for n in run["invocations"][0]["toolExecutionNotifications"]]
    assert any(f"{3000 - SHOW_PER_CODE:,} more E505 errors like these" in t for t in notes)
    assert SHOW_PER_CODE * 2 + 30 <= SHOW_PER_FILE


def test_many_files_each_keep_their_own_caps():
    from netc.errors import SHOW_PER_FILE, Diagnostics
    from netc.source import SourceFile as Source, Span

    found = Diagnostics()
    for f in range(3):
        source = Source(f"f{f}.yaml", "x\n")
        for i in range(300):  # 6 codes of 50: 300 problems per file, 200 shown
            found.error(["E501", "E502", "E503", "E504", "E505", "E506"][i % 6], f"p{i}",
                        Span(source, 1, 1 + i, 1, 2 + i))
    text = found.render()
    for f in range(3):
        assert sum(line.startswith(f"f{f}.yaml:") for line in text.splitlines()) == \
            SHOW_PER_FILE


def _calls(fn) -> int:
    """How many Python function calls `fn()` makes (cProfile's count: deterministic, unlike
    a duration)."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.runcall(fn)
    return pstats.Stats(profile).total_calls


def _misnamed_network(folder: Path, n: int) -> tuple[Path, Path]:
    """A spec of n dense layers, and a weights file where every weight has the wrong shape
    and every bias a misspelt name: 3n problems, each with a hint to look for."""
    layers = "".join(f"  - dense: 4\n    name: d{i}\n" for i in range(n))
    spec = folder / f"n{n}.yaml"
    spec.write_text(f"netc: 1\nname: n\ninputs:\n  x: [N, 4]\nlayers:\n{layers}",
                    encoding="utf-8")
    path = folder / f"n{n}.safetensors"
    tensors = {f"d{i}.weight": np.zeros((5, 4), np.float32) for i in range(n)}
    tensors.update({f"dd{i}.bias": np.zeros(4, np.float32) for i in range(n)})
    save_file(tensors, str(path))
    return spec, path


def test_many_diagnostics_cost_work_in_proportion_to_their_number(tmp_path, capsys):
    """Reading a file with n misnamed and n misshapen tensors, and showing what is wrong, is
    linear in n: comparing every missing name with every unexpected one (the near-name hints)
    or looking up each layer's tensors in the list of all made 2n cost 4 times n (measured in
    function calls, which don't depend on the machine's speed)."""
    from netc.weights import MAX_NEAR, _near

    counts = []
    for n in (150, 300):
        spec, path = _misnamed_network(tmp_path, n)
        counts.append(_calls(lambda: main(["compile", str(spec), "--weights", str(path),
                                           "-o", str(tmp_path / "m.onnx")])))
        err = capsys.readouterr().err
        assert f"({n} missing, {n} unexpected, {n} layers with tensors" in err, err[-500:]
    assert counts[1] < 2.3 * counts[0], counts
    many = [f"layer{i}.weight" for i in range(MAX_NEAR + 1)]
    assert _calls(lambda: _near("layer1x.weight", many)) < 10  # no difflib among so many
    assert _near("layer1x.weight", many[:MAX_NEAR]) == "layer1.weight"


# --- .npz members as np.load reads them (issue 15, second round) -----------------------------


def _all_members(spec, tmp_path, name=lambda k: k + ".npy", version=None) -> tuple[dict, Path]:
    """The template's tensors written as .npy members named `name(tensor)`, in .npy format
    `version` (numpy's default when None); (the tensors, the archive's path)."""
    tensors = template(spec, tmp_path)
    path = tmp_path / "members.npz"
    _zip(path, {name(k): _npy_v(v, version) for k, v in tensors.items()})
    return tensors, path


def _npy_v(array: np.ndarray, version) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


@pytest.mark.parametrize("how", ["without .npy", "format 3.0", "format 2.0"])
def test_npz_members_np_load_reads_are_read(spec, tmp_path, capsys, how):
    """netc reads what np.load reads: members named without `.npy` (np.load's key is the name
    as it is) and every .npy format version; the oracle is np.load of the same archive."""
    name = (lambda k: k) if how == "without .npy" else (lambda k: k + ".npy")
    version = {"format 3.0": (3, 0), "format 2.0": (2, 0)}.get(how)
    _, path = _all_members(spec, tmp_path, name, version)
    with np.load(path, allow_pickle=False) as archive:
        expected = {k: archive[k] for k in archive.files}
    got = compiled(spec, tmp_path, "--weights", path)
    assert sorted(got) == sorted(expected)
    for k in expected:
        assert got[k].tobytes() == expected[k].astype(np.float32).tobytes(), k


def test_npz_members_np_load_maps_to_one_key_are_refused(spec, tmp_path, capsys):
    """`c.weight.npy` and `c.weight` are both np.load's 'c.weight': which one np.load gives
    depends on the order; netc refuses rather than pick one silently."""
    tensors = template(spec, tmp_path)
    members = {k + ".npy": _npy(v) for k, v in tensors.items()}
    members["features_conv.weight"] = _npy(np.full(SHAPES["features_conv.weight"], 7,
                                                    np.float32))
    path = tmp_path / "decoy.npz"
    _zip(path, members)
    with np.load(path) as archive:  # the premise: np.load shows one key for the two
        assert archive.files.count("features_conv.weight") == 2
    status, err = load_err(capsys, spec, path)
    assert status == 1, err
    assert ("error[E506]" in err and "'features_conv.weight.npy' and 'features_conv.weight' "
            "are both the tensor 'features_conv.weight'" in err), err


def test_npz_member_without_npy_that_is_no_array_is_ignored(spec, tmp_path, capsys):
    """np.load gives a member that is not .npy data as bytes: no tensor, as before."""
    tensors, path = _all_members(spec, tmp_path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("README", b"weights of w.yaml")
    assert_same(compiled(spec, tmp_path, "--weights", path),
                {k: tensors[k] for k in compiled(spec, tmp_path)})


@pytest.mark.parametrize("shape, shown", [((-4,), "(-4,)"),
                                          ((True, True, True, True), "(True, True, True, True)"),
                                          ((2, -2), "(2, -2)")])
def test_npz_header_shapes_that_are_no_sizes(spec, tmp_path, capsys, shape, shown):
    """numpy's header reader takes any Python ints (True, -4): netc says what the header
    declares, and composes no message from the nonsense (no 'True×True values')."""
    tensors = template(spec, tmp_path)
    members = {k + ".npy": _npy(v) for k, v in tensors.items()}
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    members["features_conv.bias.npy"] = (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
                                         + header + tensors["features_conv.bias"].tobytes())
    path = tmp_path / "shape.npz"
    _zip(path, members)
    status, err = load_err(capsys, spec, path)
    assert status == 1, err
    assert "error[E506]" in err and f"its header's shape {shown} is not a list of sizes" in err
    assert "True×" not in err and "-4 values" not in err, err


@pytest.mark.parametrize("extra", [4, -4])
def test_npz_member_size_other_than_its_header_declares(spec, tmp_path, capsys, extra):
    """Bytes past a member's data, or too few: E506 with the sizes (as for an --input .npy)."""
    tensors = template(spec, tmp_path)
    members = {k + ".npy": _npy(v) for k, v in tensors.items()}
    data = members["features_conv.bias.npy"]
    members["features_conv.bias.npy"] = data + b"JUNK" if extra > 0 else data[:extra]
    path = tmp_path / "size.npz"
    _zip(path, members)
    status, err = load_err(capsys, spec, path)
    assert status == 1, err
    assert "error[E506]" in err and "size does not match" in err, err
    assert ("4 bytes past the data" if extra > 0 else "it is shorter") in err, err


def test_safetensors_offsets_that_run_backwards(spec, tmp_path, capsys):
    """An offset past 2^64 before a small end: said in words, not as 'bytes 1844...-448'."""
    header = {"features_conv.bias": {"dtype": "F32", "shape": [4],
                                     "data_offsets": [(1 << 64) + 432, 448]}}
    path = tmp_path / "back.safetensors"
    path.write_bytes(_raw_header_file(json.dumps(header).encode(), bytes(512)))
    status, err = load_err(capsys, spec, path, "--allow-missing")
    assert status == 1, err
    assert "error[E506]" in err and "data offsets that run backwards" in err, err
    assert "18446744073709552048" not in err, err
