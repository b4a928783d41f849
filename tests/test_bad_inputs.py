"""Input mistakes get the right diagnosis, each with a fix (issue 13, point 4): a file that
is not .npy given to --input, the axes in another order, a missing batch axis, one channel
for three (and back), an image smaller than the crop, a batch that a fixed-batch model
cannot take, in `netc run` as in `netc bench`.

Each test checks the message a user reads and, where the fix is an expression, applies it
and runs again: the fix must work. Never a traceback, never `allow_pickle`.
"""

from __future__ import annotations

import pickle
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from netc.cli import main

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "photos"
CAT, ROCKET = PHOTOS / "chelsea.png", PHOTOS / "rocket.jpg"
LENET = ROOT / "specs" / "lenet5.yaml"  # N×1×32×32, grayscale
FAST = ["--iters", "1", "--warmup", "0"]

RGB = """\
netc: 1
name: rgb
inputs:
  image: [{batch}, 3, 32, 24]
preprocess: {{resize: [32, 24]}}
layers:
  - conv: {{filters: 2, kernel: 3, pad: 1}}
  - flatten
  - dense: 4
"""


def rgb(tmp_path: Path, batch="N", name="rgb.yaml", size=(32, 24)) -> Path:
    path = tmp_path / name
    text = RGB.format(batch=batch).replace("32, 24", f"{size[0]}, {size[1]}")
    path.write_text(text, encoding="utf-8")
    return path


def user_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "allow_pickle" not in err, err
    return err


# --- a file that is not .npy given to --input ------------------------------------------------


def _npz(path):
    np.savez(path, weights=np.zeros(3), bias=np.ones(2))


def _torch_file(path):
    """The layout of torch.save's zip archive (an `archive/data.pkl` inside)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps([1, 2, 3]))
        z.writestr("archive/version", "3\n")


NOT_NPY = {
    "png": (lambda p: shutil.copy(CAT, p), "x.png", "is a PNG image, not a .npy array",
            "run on the image with --image {path}"),
    "jpeg named .npy": (lambda p: shutil.copy(ROCKET, p), "x.npy",
                        "is a JPEG image, not a .npy array", "--image {path}"),
    "text": (lambda p: p.write_text("0.1 0.2 0.3\n", encoding="utf-8"), "x.txt",
             "is text, not a .npy array", "np.loadtxt('{path}', dtype=np.float32)"),
    "npz": (_npz, "x.npz", "is an .npz archive of 2 arrays (weights, bias), not a .npy array",
            "np.save('x.npy', np.load('{path}')['weights'])"),
    "pickle": (lambda p: p.write_bytes(pickle.dumps({"x": [1.0]}, protocol=4)), "x.pkl",
               "is Python pickle data, not a .npy array: netc never unpickles a file",
               "np.save(path, x)"),
    "object array": (lambda p: np.save(p, np.array([{"a": 1}], dtype=object),
                                       allow_pickle=True), "x.npy",
                     "holds Python objects (pickled), not numbers",
                     "np.asarray(x, dtype=np.float32)"),
    "torch file": (_torch_file, "x.pt", "is a PyTorch file (torch.save), not a .npy array",
                   "tensor.detach().cpu().numpy()"),
    "binary": (lambda p: p.write_bytes(bytes(range(1, 200))), "x.bin",
               "is not a .npy array: it does not start with the .npy signature",
               "np.save(path, x)"),
    "empty": (lambda p: p.write_bytes(b""), "x.npy", "is an empty file, not a .npy array",
              "np.save(path, x)"),
}


@pytest.mark.parametrize("case", list(NOT_NPY))
def test_input_that_is_not_npy_says_what_it_is(tmp_path, capsys, case):
    make, name, says, fix = NOT_NPY[case]
    path = tmp_path / name
    make(path)
    err = user_error(capsys, main(["run", str(LENET), "--input", str(path)]))
    assert f"error[E602]: '{path}' {says}" in err, err
    assert "hint: " in err and fix.format(path=path) in err, err


def test_the_image_hint_works(tmp_path, capsys):
    path = tmp_path / "x.png"
    shutil.copy(CAT, path)
    err = user_error(capsys, main(["run", str(LENET), "--input", str(path)]))
    hinted = re.search(r"(--image \S+)", err)[1].rstrip(":").split()
    assert main(["run", str(LENET), *hinted]) == 0


# --- arrays of the wrong layout ---------------------------------------------------------------


# (model, the array's shape, what the message says, the fix the hint gives)
LAYOUTS = {
    "HxWxC for NCHW": ("rgb", (32, 24, 3),
                       "holds 32×24×3: channels last (H×W×C, as image libraries decode "
                       "images), and the model takes channels first (C×H×W), and no batch axis",
                       "x.transpose(2, 0, 1)[None]"),
    "NxHxWxC for NCHW": ("rgb", (2, 32, 24, 3), "holds 2×32×24×3: channels last",
                         "x.transpose(0, 3, 1, 2)"),
    "square HxWxC keeps H before W": ("lenet", (32, 32, 1), "holds 32×32×1: channels last",
                                      "x.transpose(2, 0, 1)[None]"),
    "no batch axis": ("rgb", (3, 32, 24), "holds 3×32×24: it has no batch axis", "x[None]"),
    "grayscale HxW": ("lenet", (32, 32), "it has neither a batch nor a channel axis",
                      "x[None, None]"),
    "1 channel for 3": ("rgb", (2, 1, 32, 24), "it has 1 channel (grayscale), and the model "
                        "takes 3 channels (RGB)", "np.repeat(x, 3, axis=1)"),
    "grayscale HxW for RGB": ("rgb", (32, 24), "neither a batch nor a channel axis, and the "
                              "model takes 3 channels (RGB)",
                              "np.repeat(x[None, None], 3, axis=1)"),
}


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_an_array_in_another_layout_gets_the_fix_and_the_fix_works(tmp_path, capsys, case):
    model, shape, says, fix = LAYOUTS[case]
    spec = rgb(tmp_path) if model == "rgb" else LENET
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    err = user_error(capsys, main(["run", str(spec), "--input", str(tmp_path / "x.npy")]))
    assert "error[E602]: input 'image' must be N×" in err and says in err, err
    assert fix in err, err
    np.save(tmp_path / "fixed.npy", eval(fix, {"np": np, "x": x}))  # the hint, applied
    assert main(["run", str(spec), "--input", str(tmp_path / "fixed.npy")]) == 0, \
        capsys.readouterr().err


def test_three_channels_for_a_grayscale_model(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    err = user_error(capsys, main(["run", str(LENET), "--input", str(tmp_path / "x.npy")]))
    assert ("input 'image' must be N×1×32×32, and '" in err and "holds 2×3×32×32: it has 3 "
            "channels (RGB), and the model takes 1 channel (grayscale)" in err), err
    assert "convert('L')" in err and "R × 299/1000 + G × 587/1000 + B × 114/1000" in err
    assert "--image FILE" in err


def test_a_size_no_reordering_fixes_points_at_image_files(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 64, 64), np.float32))
    err = user_error(capsys, main(["run", str(LENET), "--input", str(tmp_path / "x.npy")]))
    assert "must be N×1×32×32, and" in err and "holds 1×1×64×64" in err
    assert "--image FILE" in err


def test_a_float_array_for_a_uint8_input_model(tmp_path, capsys):
    model = tmp_path / "u8.onnx"
    assert main(["compile", str(rgb(tmp_path)), "-o", str(model), "--uint8-input"]) == 0
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((1, 32, 24, 3))
            .astype(np.float32))
    err = user_error(capsys, main(["run", str(model), "--input", str(tmp_path / "x.npy")]))
    assert "input 'image' takes uint8 pixels 0..255 (N×32×24×3, channels last)" in err, err
    assert "--uint8-input" in err and "--image FILE" in err
    pixels = np.asarray(Image.open(CAT).convert("RGB").resize((24, 32)), np.uint8)[None]
    np.save(tmp_path / "p.npy", pixels)
    assert main(["run", str(model), "--input", str(tmp_path / "p.npy")]) == 0
    assert main(["run", str(model)]) == 0  # random pixels, uint8
    assert main(["bench", str(model), *FAST]) == 0


# --- images that cannot be used ---------------------------------------------------------------


def test_an_image_smaller_than_the_crop(tmp_path, capsys):
    spec = tmp_path / "crop.yaml"
    spec.write_text(RGB.format(batch="N").replace("32, 24", "32, 32")
                    .replace("preprocess: {resize: [32, 32]}", "preprocess: {crop: 32}"),
                    encoding="utf-8")
    small = tmp_path / "small.png"
    Image.new("RGB", (20, 16), (200, 10, 10)).save(small)
    err = user_error(capsys, main(["run", str(spec), "--image", str(small)]))
    assert (f"error[E602]: image '{small}' is 20×16 (width × height), smaller than the 32×32 "
            "crop") in err, err
    assert "resize" in err  # the fix: declare a resize
    # in a folder, the same image is skipped with a warning, and the others run
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(small, folder / "a_small.png")
    shutil.copy(CAT, folder / "b_cat.png")
    assert main(["run", str(spec), "--image", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "warning[W601]: skipped: image" in captured.err and "smaller than the" in captured.err
    assert str(folder / "b_cat.png") in captured.out
    assert str(folder / "a_small.png") not in captured.out


# --- a batch that a fixed-batch model cannot take --------------------------------------------


def _fix_is_n(err: str, spec: bool) -> None:
    assert "export" not in err, err
    if spec:
        assert "write N for the batch in the spec's `inputs:` (image: [N, 3, 32, 24])" in err
    else:
        assert "compile the model from its spec with N for the batch in `inputs:` " \
               "(image: [N, 3, 32, 24])" in err


def test_run_batch_on_a_fixed_batch_spec_and_the_fix(tmp_path, capsys):
    spec = rgb(tmp_path, batch=1)
    err = user_error(capsys, main(["run", str(spec), "--batch", "10"]))
    assert ("error[E602]: input 'image' has a fixed batch of 1 (1×3×32×24): --batch 10 does not "
            "fit it") in err, err
    assert "hint: use --batch 1" in err
    _fix_is_n(err, spec=True)
    spec.write_text(spec.read_text("utf-8").replace("[1, 3", "[N, 3"), encoding="utf-8")
    assert main(["run", str(spec), "--batch", "10"]) == 0  # the fix works
    assert "10×4" in capsys.readouterr().out


def test_bench_says_the_same(tmp_path, capsys):
    spec = rgb(tmp_path, batch=1)
    err = user_error(capsys, main(["bench", str(spec), "--batch", "1,10", *FAST]))
    assert ("error[E602]: input 'image' has a fixed batch of 1 (1×3×32×24): --batch 10 does not "
            "fit it") in err, err
    _fix_is_n(err, spec=True)
    assert capsys.readouterr().out == ""  # refused before batch 1 was timed


@pytest.mark.parametrize("command", ["run", "bench"])
def test_a_fixed_batch_onnx_model(tmp_path, capsys, command):
    model = tmp_path / "fixed.onnx"
    assert main(["compile", str(rgb(tmp_path, batch=1)), "-o", str(model)]) == 0
    capsys.readouterr()
    extra = FAST if command == "bench" else []
    err = user_error(capsys, main([command, str(model), "--batch", "3", *extra]))
    assert "input 'image' has a fixed batch of 1 (1×3×32×24): --batch 3 does not fit it" in err
    _fix_is_n(err, spec=False)


def test_an_input_file_with_another_batch_for_a_fixed_batch_model(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((4, 3, 32, 24), np.float32))
    err = user_error(capsys, main(["run", str(rgb(tmp_path, batch=1)), "--input",
                                   str(tmp_path / "x.npy")]))
    assert ("input 'image' has a fixed batch of 1 (1×3×32×24): a batch of 4 (4×3×32×24) "
            f"from '{tmp_path / 'x.npy'}' does not fit it") in err, err
    assert "x[i:i + 1]" in err
    _fix_is_n(err, spec=True)


def test_a_layout_mistake_on_a_fixed_batch_model_names_both(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 32, 24, 3), np.float32))
    err = user_error(capsys, main(["run", str(rgb(tmp_path, batch=1)), "--input",
                                   str(tmp_path / "x.npy")]))
    assert "channels last" in err and "x.transpose(0, 3, 1, 2)" in err
    assert "the model's batch is fixed at 1" in err
    _fix_is_n(err, spec=True)


def test_image_batch_on_a_fixed_batch_model(tmp_path, capsys):
    err = user_error(capsys, main(["run", str(rgb(tmp_path, batch=1)), "--image", str(CAT),
                                   "--batch", "4"]))
    assert "input 'image' has a fixed batch of 1 (1×3×32×24): --batch 4 does not fit it" in err
    _fix_is_n(err, spec=True)


def test_batch_and_an_input_file_that_disagree(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((3, 3, 32, 24), np.float32))
    err = user_error(capsys, main(["run", str(rgb(tmp_path)), "--input", str(tmp_path / "x.npy"),
                                   "--batch", "5"]))
    assert "holds a batch of 3 (3×3×32×24), and --batch says 5" in err
    assert "leave out --batch" in err


def test_three_channels_for_one_is_not_called_a_transposition(tmp_path, capsys):
    """1×3×32×32 for an N×1×32×32 model could be read as 3 grayscale images with the axes
    swapped; it is an RGB image for a grayscale model, and the message says so."""
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 32, 32), np.float32))
    err = user_error(capsys, main(["run", str(LENET), "--input", str(tmp_path / "x.npy")]))
    assert "holds 1×3×32×32: it has 3 channels (RGB), and the model takes 1 channel " \
           "(grayscale)" in err and "transpose" not in err, err
    assert "convert('L')" in err
