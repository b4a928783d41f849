"""Input mistakes get the right diagnosis, each with a fix (issue 13, point 4): a file that
is not .npy given to --input, the axes in another order, a missing batch axis, one channel
for three (and back), an image smaller than the crop, a batch that a fixed-batch model
cannot take, in `netc run` as in `netc bench`.

Each test checks the message a user reads and, where the fix is an expression, applies it
and runs again: the fix must work. Never a traceback, never `allow_pickle`.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
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


# --- files that are not regular files (issue 15): refused unread, never blocking ----------------


class _Hang(Exception):
    pass


@pytest.fixture
def no_hang():
    """Fail (rather than hang the test run) if netc blocks: a FIFO opened for reading waits
    for a writer forever. SIGALRM interrupts the blocking open()."""
    import signal

    def alarm(signum, frame):
        raise _Hang("netc blocked for 20 s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _not_regular(tmp_path: Path, kind: str, ext: str) -> tuple[Path, str]:
    """A path of `kind` ending in `ext`, and what netc says of it."""
    import socket

    path = tmp_path / f"{kind}{ext}"
    if kind == "fifo":
        os.mkfifo(path)
        return path, "it is a FIFO (named pipe), not a regular file"
    if kind == "dev-zero":  # a link to the device: the path keeps the extension netc looks at
        path.symlink_to("/dev/zero")
        return path, "it is a character device, not a regular file"
    if kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()  # the socket file stays
        return path, "it is a socket, not a regular file"
    if kind == "folder":
        path.mkdir()
        return path, "it is a folder, not a regular file"
    if kind == "dangling":
        path.symlink_to(tmp_path / "gone" / "nothing")
        return path, f"it is a symbolic link to '{tmp_path / 'gone' / 'nothing'}', which does " \
                     "not exist"
    path.symlink_to(path.name)  # "loop"
    return path, "its symbolic links form a loop"


def _labels_spec(tmp_path: Path, labels: Path) -> Path:
    spec = tmp_path / "labelled.yaml"
    spec.write_text(RGB.format(batch="N") + f"labels: {Path(labels).name}\n", encoding="utf-8")
    return spec


# reader: (extension, argv from the path, code, prefix of the message before the reason)
READERS = {
    "check SPEC": (".yaml", lambda p, t: ["check", p], "E001", "cannot read '{p}': "),
    "compile SPEC": (".yaml", lambda p, t: ["compile", p, "-o", t / "o.onnx"], "E001",
                     "cannot read '{p}': "),
    "run MODEL": (".onnx", lambda p, t: ["run", p], "E001", "cannot read '{p}': "),
    "bench MODEL": (".onnx", lambda p, t: ["bench", p, *FAST], "E001", "cannot read '{p}': "),
    "weights MODEL": (".onnx", lambda p, t: ["weights", p, "-o", t / "w.npz"], "E001",
                      "cannot read '{p}': "),
    "--weights": (".safetensors", lambda p, t: ["compile", rgb(t), "--weights", p, "-o",
                                                t / "o.onnx"], "E506", "cannot read '{p}': "),
    "--input": (".npy", lambda p, t: ["run", rgb(t), "--input", p], "E602",
                "cannot read '{p}': "),
    "--image": (".png", lambda p, t: ["run", rgb(t), "--image", p], "E605",
                "cannot read image '{p}': "),
    "labels file": (".txt", lambda p, t: ["check", _labels_spec(t, p)], "E119",
                    "cannot read labels file '{n}': "),
}
KINDS = ["fifo", "dev-zero", "socket", "folder", "dangling", "loop"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reader", list(READERS))
def test_a_file_that_is_not_regular_is_refused_unread(tmp_path, capsys, no_hang, reader, kind):
    """Every file netc reads from a path it is given: a FIFO (which would block netc forever),
    /dev/zero (which never ends), a socket, a folder, a dangling link and a loop of links are
    each one error with the reader's code, saying what the path is, and nothing is read."""
    ext, argv, code, prefix = READERS[reader]
    path, says = _not_regular(tmp_path, kind, ext)
    if (reader, kind) == ("check SPEC", "folder"):  # `netc check` searches a folder
        prefix, says = "", f"no .yaml or .yml files in the folder '{path}'"
    if (reader, kind) == ("--image", "folder"):  # so does --image
        prefix, says = "", f"the folder '{path}' holds no image files"
    if reader == "labels file" and kind == "dev-zero":  # a link that leads out of the folder
        prefix, says = "", "labels file 'dev-zero.txt' is outside the spec's folder"
    if reader == "labels file" and kind == "dangling":  # (read at the link's resolved path)
        says = "No such file or directory"
    status = main([str(a) for a in argv(str(path), tmp_path)])
    err = user_error(capsys, status)
    assert f"error[{code}]: " + prefix.format(p=path, n=path.name) + says in err, err
    assert err.count("error[") == 1, err
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "w.npz").exists()


def test_dev_stdin_as_a_spec_with_a_pipe_left_open(tmp_path):
    """`netc check /dev/stdin` with standard input a pipe that nobody writes to or closes:
    reading would wait forever; netc says what the path is instead."""
    proc = subprocess.Popen([sys.executable, "-m", "netc", "check", "/dev/stdin"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=120)  # (communicate closes stdin only after)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("netc check /dev/stdin blocked on the pipe")
    finally:
        if proc.stdin and not proc.stdin.closed:
            proc.stdin.close()
    text = err.decode()
    assert proc.returncode == 1, text
    assert "error[E001]: cannot read '/dev/stdin': it is a FIFO (named pipe), not a regular " \
           "file" in text, text


def test_check_folder_with_fifos_links_and_names_that_are_not_utf8(tmp_path):
    """`netc check DIR` in every format, on a folder holding a FIFO named *.yaml, a dangling
    link, a socket, a link to the folder itself (a loop netc must not follow) and specs whose
    names are not UTF-8 (one with an error, one without): exit 1, no hang, standard output
    and error valid UTF-8 and JSON/SARIF valid; the name's byte is written `\\xff` in every
    format (SARIF's URI percent-encodes it: %FF); each spec is found once (oracle: os.walk
    without following links)."""
    import socket

    folder = tmp_path / "specs"
    (folder / "sub").mkdir(parents=True)
    os.mkfifo(folder / "pipe.yaml")
    (folder / "gone.yaml").symlink_to(folder / "nowhere.yaml")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(folder / "sock.yaml"))
    s.close()
    (folder / "sub" / "loop").symlink_to("..")
    good = LENET.read_bytes()
    with open(os.fsencode(folder) + b"/bad\xff.yaml", "wb") as f:
        f.write(b"netc: 1\nname: x\n")  # E101: no inputs
    with open(os.fsencode(folder / "sub") + b"/ok\xe9.yaml", "wb") as f:
        f.write(good)
    want = sorted(os.path.join(root, n) for root, _, names in os.walk(folder) for n in names
                  if n.endswith(".yaml"))
    assert len(want) == 5
    for fmt in ("text", "json", "github", "sarif"):
        proc = subprocess.run([sys.executable, "-m", "netc", "check", str(folder), "--format",
                               fmt], capture_output=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        out, err = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")  # strict: UTF-8
        assert "Traceback" not in err and "internal error" not in err, err
        shown = {"text": err, "json": out.replace("\\\\", "\\"), "github": out,
                 "sarif": out}[fmt]
        assert ("bad%FF.yaml" if fmt == "sarif" else "bad\\xff.yaml") in shown, shown
        if fmt in ("json", "sarif"):
            doc = json.loads(out)
            dumped = json.dumps(doc)
            assert "\\udc" not in dumped and "\\ud8" not in dumped  # no lone surrogate
        if fmt == "json":
            files = {d["file"] for d in doc["diagnostics"]}
            assert any(f.endswith("/bad\\xff.yaml") for f in files), files
            codes = sorted(d["code"] for d in doc["diagnostics"])
            assert codes == ["E001", "E001", "E001", "E101"], codes
            assert doc["summary"]["files"] == len(want)
        if fmt == "sarif":
            uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    for r in doc["runs"][0]["results"]]
            assert any(u.endswith("bad%FF.yaml") for u in uris), uris
        if fmt == "text":
            assert "it is a FIFO (named pipe), not a regular file" in err
            assert "it is a socket, not a regular file" in err
            assert "which does not exist" in err


# --- models from elsewhere: outputs netc's never give (issue 15) --------------------------------


def _model(tmp_path: Path, name: str, nodes, inputs, outputs, inits=(), ml=False) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("ai.onnx.ml", 3)] if ml
                                               else [])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _odd_models(tmp_path: Path) -> dict[str, Path]:
    from onnx import TensorProto as T
    from onnx import helper as h

    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 3])
    ints = [h.make_tensor(n, T.INT64, [1], [v]) for n, v in (("s", 0), ("e", 0), ("a", 1))]
    seq_map = h.make_sequence_type_proto(h.make_map_type_proto(
        T.INT64, h.make_tensor_type_proto(T.FLOAT, [])))
    return {
        "zero-size output": _model(tmp_path, "zero", [h.make_node("Slice", ["x", "s", "e", "a"],
                                                                  ["y"])],
                                   [x], [h.make_tensor_value_info("y", T.FLOAT, ["N", 0])], ints),
        "sequence output": _model(tmp_path, "seq", [h.make_node("SequenceConstruct", ["x", "x"],
                                                                ["y"])],
                                  [x], [h.make_tensor_sequence_value_info("y", T.FLOAT,
                                                                          ["N", 3])]),
        "map output": _model(tmp_path, "map", [h.make_node(
            "ZipMap", ["x"], ["y"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2])],
            [x], [h.make_value_info("y", seq_map)], ml=True),
        "string output": _model(tmp_path, "str", [h.make_node("Cast", ["x"], ["y"],
                                                              to=T.STRING)],
                                [x], [h.make_tensor_value_info("y", T.STRING, ["N", 3])]),
        "scalar output": _model(tmp_path, "scalar", [h.make_node("ReduceSum", ["x"], ["y"],
                                                                 keepdims=0)],
                                [x], [h.make_tensor_value_info("y", T.FLOAT, [])]),
    }


@pytest.mark.parametrize("case", ["zero-size output", "sequence output", "map output",
                                  "string output", "scalar output"])
def test_run_a_model_whose_output_is_not_a_plain_tensor(tmp_path, capsys, case):
    """`netc run` prints what ONNX Runtime gives (the oracle: the same model and input run in
    ONNX Runtime directly): a shape with no values, a sequence, a map, strings, a scalar.
    --output saves numeric tensors only (numpy would pickle the rest): E602 for the others;
    a zero-size one is saved as ONNX Runtime gave it. `netc bench` times them all."""
    import onnxruntime as ort

    path = _odd_models(tmp_path)[case]
    x = np.random.default_rng(0).standard_normal((2, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    [want] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    if isinstance(want, list):
        assert f"y: a sequence of {len(want)} values (not a tensor)" in out, out
    elif want.dtype == object:
        assert f"y: {'×'.join(map(str, want.shape))} of strings" in out, out
    elif want.ndim == 0:
        assert f"y: a scalar float32  min {float(want):.4g}" in out, out
    else:
        assert f"y: {'×'.join(map(str, want.shape))} float32  (no values)" in out, out
    numeric = isinstance(want, np.ndarray) and want.dtype.kind == "f"
    for name in ("o.npy", "o.npz"):
        status = main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--output",
                       str(tmp_path / name)])
        if numeric:
            assert status == 0, capsys.readouterr().err
            saved = np.load(tmp_path / name)
            got = saved if name == "o.npy" else saved["y"]
            assert got.shape == want.shape and got.dtype == want.dtype
        else:
            err = user_error(capsys, status)
            assert "error[E602]: output 'y' is " in err and "--output saves numeric tensors " \
                   "only" in err, err
            assert not (tmp_path / name).exists()
    assert main(["bench", str(path), *FAST]) == 0
    capsys.readouterr()


def test_inputs_netc_cannot_make_or_feed(tmp_path, capsys):
    """An input that is a sequence or strings: E602 naming its type. A fixed input of
    10^6 × 10^6 values: E602 before anything is allocated (tracemalloc: under 16 MiB)."""
    import tracemalloc

    from onnx import TensorProto as T
    from onnx import helper as h

    seq = _model(tmp_path, "seqin", [h.make_node("SequenceLength", ["s"], ["y"])],
                 [h.make_tensor_sequence_value_info("s", T.FLOAT, ["N", 3])],
                 [h.make_tensor_value_info("y", T.INT64, [])])
    text = _model(tmp_path, "strin", [h.make_node("Identity", ["t"], ["y"])],
                  [h.make_tensor_value_info("t", T.STRING, ["N"])],
                  [h.make_tensor_value_info("y", T.STRING, ["N"])])
    huge = _model(tmp_path, "huge", [h.make_node("Identity", ["x"], ["y"])],
                  [h.make_tensor_value_info("x", T.FLOAT, [10**6, 10**6])],
                  [h.make_tensor_value_info("y", T.FLOAT, [10**6, 10**6])])
    for path, says in ((seq, "input 's' is a seq(tensor(float))"),
                       (text, "input 't' is a tensor(string)")):
        for command in (["run", str(path)], ["bench", str(path), *FAST]):
            err = user_error(capsys, main(command))
            assert f"error[E602]: {says}" in err, err
    main(["run", str(LENET)])  # imports warmed up: what is measured is the refusal
    capsys.readouterr()
    tracemalloc.start()
    try:
        status = main(["run", str(huge)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = user_error(capsys, status)
    assert "error[E602]: input 'x' is 1000000×1000000: 1,000,000,000,000 values, more than " \
           "netc makes at random" in err, err
    assert peak < 16 << 20, peak


def _image_model(tmp_path: Path, name: str, make) -> Path:
    """The rgb spec compiled (so the model carries netc's preprocessing record), its output
    replaced by `make(output name)` -> (nodes, output value info, initializers)."""
    import onnx

    base = tmp_path / "base.onnx"
    if not base.exists():
        assert main(["compile", str(rgb(tmp_path)), "-o", str(base)]) == 0
    model = onnx.load(str(base))
    nodes, output, inits = make(model.graph.output[0].name)
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(inits)
    del model.graph.output[:]
    model.graph.output.append(output)
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def test_images_through_a_model_whose_first_output_has_no_rows(tmp_path, capsys):
    """--image reads a row per image from the first output: a sequence, strings or a scalar
    is E602 before any image is run; an output with 0 classes (N×0) is a feature map with
    no values, as ONNX Runtime gives it."""
    from onnx import TensorProto as T
    from onnx import helper as h

    ints = [h.make_tensor(n, T.INT64, [1], [v]) for n, v in (("s", 0), ("e", 0), ("a", 1))]
    odd = {
        "seq": (lambda o: ([h.make_node("SequenceConstruct", [o], ["y"])],
                           h.make_tensor_sequence_value_info("y", T.FLOAT, None), []),
                "an ONNX sequence (seq(tensor(float))), not a tensor"),
        "str": (lambda o: ([h.make_node("Cast", [o], ["y"], to=T.STRING)],
                           h.make_tensor_value_info("y", T.STRING, ["N", 4]), []),
                "a tensor(string), not a tensor of numbers"),
        "scalar": (lambda o: ([h.make_node("ReduceSum", [o], ["y"], keepdims=0)],
                              h.make_tensor_value_info("y", T.FLOAT, []), []),
                   "a scalar, without a batch axis"),
    }
    for name, (make, says) in odd.items():
        path = _image_model(tmp_path, name, make)
        for extra in ([], ["--output", str(tmp_path / "t.npy")]):
            err = user_error(capsys, main(["run", str(path), "--image", str(CAT), *extra]))
            assert f"error[E602]: --image gives each image its row of the model's first " \
                   f"output, and output 'y' is {says}" in err, err
    zero = _image_model(tmp_path, "zero", lambda o: (
        [h.make_node("Slice", [o, "s", "e", "a"], ["y"])],
        h.make_tensor_value_info("y", T.FLOAT, ["N", 0]), ints))
    assert main(["run", str(zero), "--image", str(CAT), "--output", str(tmp_path / "z.npy")]) == 0
    out = capsys.readouterr().out
    assert "y: 0  (no values)" in out, out
    assert np.load(tmp_path / "z.npy").shape == (1, 0)


def test_an_input_file_with_a_batch_of_zero(tmp_path, capsys):
    """A batch of 0 (an .npy of shape 0×1×32×32) is E602, and the hint's shape runs."""
    np.save(tmp_path / "x.npy", np.zeros((0, 1, 32, 32), np.float32))
    err = user_error(capsys, main(["run", str(LENET), "--input", str(tmp_path / "x.npy")]))
    assert f"error[E602]: '{tmp_path / 'x.npy'}' holds no values (0×1×32×32): input 'image' " \
           "needs at least one" in err, err
    assert "(a batch of 1: 1×1×32×32)" in err
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 32, 32), np.float32))
    assert main(["run", str(LENET), "--input", str(tmp_path / "x.npy")]) == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
@pytest.mark.parametrize("reader", list(READERS))
def test_a_file_without_read_permission(tmp_path, capsys, reader):
    """A file netc may not read (chmod 000): one error with the reader's code, the system's
    reason."""
    ext, argv, code, prefix = READERS[reader]
    path = tmp_path / f"locked{ext}"
    path.write_bytes(b"x")
    path.chmod(0)
    try:
        err = user_error(capsys, main([str(a) for a in argv(str(path), tmp_path)]))
    finally:
        path.chmod(0o600)
    assert f"error[{code}]: " in err and "Permission denied" in err, err


@pytest.mark.skipif(not os.access("/proc/kmsg", os.R_OK), reason="/proc/kmsg is root's")
def test_a_regular_file_whose_read_would_wait(capsys, no_hang):
    """/proc/kmsg is a "regular" file whose read waits for the kernel's next message: netc
    reads without blocking and says so (it hung in `netc check`)."""
    err = user_error(capsys, main(["check", "/proc/kmsg"]))
    assert "error[E001]: cannot read '/proc/kmsg': reading it would wait" in err, err
    err = user_error(capsys, main(["run", str(LENET), "--image", "/proc/kmsg"]))
    assert "error[E605]: cannot read image '/proc/kmsg': reading it would wait" in err, err


def test_an_input_file_whose_name_holds_an_equals_sign(tmp_path, capsys, monkeypatch):
    """--input NAME=FILE splits at the first "=", unless the whole value names a file and
    its part after the "=" does not (x=1.npy is a file, not input 'x')."""
    monkeypatch.chdir(tmp_path)
    np.save("x=1.npy", np.zeros((2, 1, 32, 32), np.float32))
    for value in ("x=1.npy", "image=x=1.npy"):
        assert main(["run", str(LENET), "--input", value]) == 0, capsys.readouterr().err
        assert "inputs: image 2×1×32×32" in capsys.readouterr().out
    err = user_error(capsys, main(["run", str(LENET), "--input", "foo=x=1.npy"]))
    assert "error[E602]: the model has no input 'foo'" in err, err


# --- input values the model's dtype can't hold, and .npy files as np.load reads them --------


def _identity(tmp_path: Path, elem: int, name: str) -> Path:
    from onnx import helper as h

    return _model(tmp_path, name, [h.make_node("Identity", ["x"], ["y"])],
                  [h.make_tensor_value_info("x", elem, ["N", 3])],
                  [h.make_tensor_value_info("y", elem, ["N", 3])])


VALUE_CASES = {
    # (model input, array, first bad index, value shown)
    "float64 past float32": ("float", np.array([[1.0, 2.0, 1e300]]), "[0, 2] = 1e+300"),
    "NaN": ("float", np.array([[0.5, np.nan, 1.0]], np.float32), "[0, 1] = NaN"),
    "infinity": ("double", np.array([[0.5, 1.0, -np.inf]]), "[0, 2] = -infinity"),
    "float32 past float16": ("float16", np.array([[1.0, 7e4, 1.0]], np.float32),
                             "[0, 1] = 70000"),
    "fraction for int64": ("int64", np.array([[1.0, 2.5, 3.0]]), "[0, 1] = 2.5"),
    "past int8": ("int8", np.array([[1, 2, 300]], np.int64), "[0, 2] = 300"),
}


@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_input_values_the_models_dtype_cant_hold(tmp_path, capfd, case):
    """E602 naming the file, the first bad index and its value; no numpy warning (the oracle
    for 'can't hold': numpy's own cast to the input's dtype, which overflows or truncates)."""
    from onnx import TensorProto as T

    kind, array, where = VALUE_CASES[case]
    elem = {"float": T.FLOAT, "double": T.DOUBLE, "float16": T.FLOAT16, "int64": T.INT64,
            "int8": T.INT8}[kind]
    dtype = {"float": np.float32, "double": np.float64, "float16": np.float16,
             "int64": np.int64, "int8": np.int8}[kind]
    with np.errstate(all="ignore"):  # the premise: the plain cast loses the value
        cast = array.astype(dtype)
    assert not np.isfinite(array).all() or not np.array_equal(cast.astype(np.float64),
                                                               array.astype(np.float64))
    model = _identity(tmp_path, elem, f"m_{kind}")
    path = tmp_path / "x.npy"
    np.save(path, array)
    code = main(["run", str(model), "--input", str(path)])
    err = capfd.readouterr().err
    assert code == 1, err
    assert f"error[E602]: '{path}' holds" in err and where in err, err
    assert "Warning" not in err and "Traceback" not in err, err


def test_input_values_that_fit_run_exactly(tmp_path, capfd):
    """float64 values float32 holds, integers for an int8 input: run, and ONNX Runtime's
    Identity gives them back."""
    from onnx import TensorProto as T

    for elem, array in ((T.FLOAT, np.array([[1.0, -2.0, 3e38]])),
                        (T.INT8, np.array([[1.0, -128.0, 127.0]]))):
        model = _identity(tmp_path, elem, f"ok{elem}")
        path, out = tmp_path / "x.npy", tmp_path / f"y{elem}.npz"
        np.save(path, array)
        assert main(["run", str(model), "--input", str(path), "--output", str(out)]) == 0
        with np.load(out) as got:
            # (float64 rounds to the nearest float32, as numpy's cast does)
            assert np.array_equal(got["y"], array.astype(got["y"].dtype))
            assert got["y"].dtype == (np.float32 if elem == T.FLOAT else np.int8)
    assert "Warning" not in capfd.readouterr().err


def _npy_bytes(array, version=None) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_input_npy_in_every_version_np_load_reads(tmp_path, capsys, version):
    spec = rgb(tmp_path)
    array = np.random.default_rng(0).standard_normal((1, 3, 32, 24)).astype(np.float32)
    path = tmp_path / "x.npy"
    path.write_bytes(_npy_bytes(array, version))
    assert np.array_equal(np.load(path), array)  # the oracle
    assert main(["run", str(spec), "--input", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("case", ["trailing", "short", "negative", "bool"])
def test_input_npy_whose_size_or_shape_is_not_what_it_says(tmp_path, capsys, case):
    """Bytes past the data are refused as in an .npz weights member (the file is not what its
    header says); a header shape of -4 or True is said as such, not echoed as sizes."""
    spec = rgb(tmp_path)
    data = _npy_bytes(np.zeros((1, 3, 32, 24), np.float32))
    if case in ("negative", "bool"):
        shape = (-4,) if case == "negative" else (True, True, True, True)
        header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
        header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
        data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(16)
    path = tmp_path / "x.npy"
    path.write_bytes(data + b"JUNK" if case == "trailing" else
                     data[:-4] if case == "short" else data)
    err = user_error(capsys, main(["run", str(spec), "--input", str(path)]))
    says = {"trailing": "has 4 bytes past its data", "short": "is truncated",
            "negative": "its header's shape (-4,) is not a list of sizes",
            "bool": "its header's shape (True, True, True, True) is not a list of sizes"}[case]
    assert "error[E602]" in err and f"'{path}'" in err and says in err, err


def test_onnx_runtime_warnings_are_not_printed_and_shapes_are_said(tmp_path, capfd):
    """An initializer that is also a graph input makes ONNX Runtime warn in its own coloured
    log; netc prints none of it. An input without dimensions is fed a scalar: said so."""
    from onnx import TensorProto as T
    from onnx import helper as h

    init = h.make_tensor("x", T.FLOAT, [1, 3], [1.0, 2.0, 3.0])
    model = _model(tmp_path, "initin", [h.make_node("Identity", ["x"], ["y"])],
                   [h.make_tensor_value_info("x", T.FLOAT, [1, 3])],
                   [h.make_tensor_value_info("y", T.FLOAT, [1, 3])], inits=[init])
    import onnx

    scalar = tmp_path / "noshape.onnx"  # (onnx's checker wants a shape: saved unchecked)
    onnx.save(h.make_model(h.make_graph(
        [h.make_node("Identity", ["x"], ["y"])], "noshape",
        [h.make_tensor_value_info("x", T.FLOAT, None)],
        [h.make_tensor_value_info("y", T.FLOAT, None)]),
        opset_imports=[h.make_opsetid("", 17)], ir_version=8), str(scalar))
    assert main(["run", str(model)]) == 0
    out, err = capfd.readouterr()
    assert "onnxruntime" not in err and "appears in graph inputs" not in err, err
    assert "(inputs: none)" in out, out
    assert main(["run", str(scalar)]) == 0
    out, err = capfd.readouterr()
    assert "(inputs: x a scalar (shape not declared))" in out, out
