"""`netc run MODEL --image FILE_OR_DIR...`: images in, labels out (netc/tools/predict.py).

The oracle is the manual pipeline a user would write: Pillow opens the image, the
torchvision-style steps are written here in numpy (the resize is Pillow's, which is what
torchvision's Resize calls on a PIL image), and ONNX Runtime runs the model; the top classes
are numpy's softmax and argsort of those logits. Weights are the seeded initial ones: random,
but the same on both sides, so equality still checks every step.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from netc.cli import main
from netc.images import imagenet_labels

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "photos"
CAT, ROCKET = PHOTOS / "chelsea.png", PHOTOS / "rocket.jpg"
RESNET18 = ROOT / "specs" / "resnet18.yaml"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# a small network with its own preprocessing and six named classes
TINY = """\
netc: 1
name: tiny
inputs:
  image: [{batch}, 3, 32, 32]
preprocess: {{resize: 36, crop: 32, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3]}}
labels: [ant, bee, cat, dog, eel, fox]
layers:
  - conv: {{filters: 4, kernel: 4, stride: 2, pad: 1}}
  - relu
  - flatten
  - dense: 6
    name: logits
{tail}"""
TINY_PRE = dict(resize=36, crop=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def tiny(tmp_path: Path, batch="N", tail="", name="tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(TINY.format(batch=batch, tail=tail), encoding="utf-8")
    return path


def manual_input(path, resize, crop, mean, std, mode="RGB") -> np.ndarray:
    """The preprocessing by hand: C×H×W float32, as torchvision's Resize(resize),
    CenterCrop(crop), ToTensor() and Normalize(mean, std) make it."""
    image = Image.open(path).convert(mode)
    w, h = image.size
    if w <= h:  # torchvision: the shorter side to `resize`, the longer one rounded down
        size = (resize, int(resize * h / w))
    else:
        size = (int(resize * w / h), resize)
    if size != image.size:
        image = image.resize(size, Image.BILINEAR)
    a = np.asarray(image, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    top, left = int(round((a.shape[0] - crop) / 2)), int(round((a.shape[1] - crop) / 2))
    a = a[top:top + crop, left:left + crop]
    x = a.astype(np.float32) / 255
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1)


def ort_run(model, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z.astype(np.float64) - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def printed(out: str) -> dict[str, list[tuple[float, str]]]:
    """The CLI's predictions: {file: [(percent, class text), ...]}."""
    found, current = {}, None
    for line in out.splitlines():
        if line.startswith("  "):
            percent, _, name = line.strip().partition("%  ")
            found[current].append((float(percent), name))
        elif not line.startswith("saved "):
            current = line
            found[current] = []
    return found


@pytest.fixture(scope="module")
def resnet18_onnx(tmp_path_factory) -> Path:
    from netc.pipeline import check_file, write

    path = tmp_path_factory.mktemp("r18") / "resnet18.onnx"
    write(check_file(RESNET18), str(path))
    return path


# --- the done-when: resnet18, from the spec and from the .onnx file alone ---------------


@pytest.mark.parametrize("source", ["spec", "onnx"])
def test_resnet18_prints_five_labelled_predictions_equal_to_the_manual_pipeline(
        source, resnet18_onnx, tmp_path, capsys):
    model = RESNET18 if source == "spec" else resnet18_onnx
    out_npy = tmp_path / "x.npy"
    assert main(["run", str(model), "--image", str(CAT), str(ROCKET), "--top", "5",
                 "--output", str(out_npy)]) == 0
    out = capsys.readouterr().out
    x = np.stack([manual_input(p, 256, 224, IMAGENET_MEAN, IMAGENET_STD) for p in (CAT, ROCKET)])
    expected = ort_run(resnet18_onnx, x)  # the same seed: the same weights as the spec's
    logits = np.load(out_npy)
    assert logits.shape == (2, 1000) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    names = imagenet_labels()
    shown = printed(out)
    assert list(shown) == [str(CAT), str(ROCKET)]
    for row, lines in zip(softmax(expected), shown.values()):
        top = np.argsort(-row, kind="stable")[:5]
        assert [name for _, name in lines] == [f"{names[i]} ({i})" for i in top]
        assert [p for p, _ in lines] == pytest.approx(row[top] * 100, abs=0.006)  # 2 decimals


def test_the_onnx_file_carries_what_run_needs(resnet18_onnx):
    """The .onnx file alone runs on images because netc writes its preprocessing and labels
    into metadata_props (emit.py); run_images reads them back from there."""
    props = {p.key: p.value for p in onnx.load(resnet18_onnx, load_external_data=False)
             .metadata_props}
    assert json.loads(props["netc.preprocess"])["crop"] == [224, 224]
    assert json.loads(props["netc.labels"]) == list(imagenet_labels())


# --- preprocessing, batching and the top classes ---------------------------------------------


def test_tiny_logits_equal_the_manual_pipeline_and_top_k_is_numpys(tmp_path, capsys):
    spec = tiny(tmp_path)
    assert main(["compile", str(spec), "-o", str(tmp_path / "tiny.onnx")]) == 0
    capsys.readouterr()
    assert main(["run", str(spec), "--image", str(ROCKET), str(CAT), "--top", "3",
                 "--output", str(tmp_path / "y.npy")]) == 0
    shown = printed(capsys.readouterr().out)
    x = np.stack([manual_input(p, **TINY_PRE) for p in (ROCKET, CAT)])
    expected = ort_run(tmp_path / "tiny.onnx", x)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)
    labels = ["ant", "bee", "cat", "dog", "eel", "fox"]
    for row, lines in zip(softmax(expected), shown.values()):
        top = np.argsort(-row, kind="stable")[:3]
        assert [n for _, n in lines] == [f"{labels[i]} ({i})" for i in top]
        assert [p for p, _ in lines] == pytest.approx(row[top] * 100, abs=0.006)


def test_top_k_is_capped_at_the_number_of_classes(tmp_path, capsys):
    assert main(["run", str(tiny(tmp_path)), "--image", str(CAT), "--top", "50"]) == 0
    assert len(printed(capsys.readouterr().out)[str(CAT)]) == 6


def test_a_model_ending_in_softmax_is_not_softmaxed_twice(tmp_path, capsys):
    spec = tiny(tmp_path, tail="  - softmax\n")
    table = tmp_path / "t.csv"
    assert main(["run", str(spec), "--image", str(CAT), "--top", "6",
                 "--output", str(table)]) == 0
    assert main(["run", str(spec), "--image", str(CAT), "--output",
                 str(tmp_path / "p.npy")]) == 0
    probabilities = np.load(tmp_path / "p.npy")[0]  # the model's own softmax
    assert probabilities.sum() == pytest.approx(1, abs=1e-6)
    [row] = list(csv.DictReader(table.open(encoding="utf-8")))
    shown = [float(row[f"probability_{k}"]) for k in range(1, 7)]
    indices = [int(row[f"index_{k}"]) for k in range(1, 7)]
    np.testing.assert_allclose(shown, probabilities[indices], rtol=1e-7)
    assert shown == sorted(shown, reverse=True)


def test_a_folder_is_sorted_skips_what_it_cannot_read_and_goes_on(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(ROCKET, folder / "b_rocket.JPG")  # extensions in any case
    shutil.copy(CAT, folder / "a_cat.png")
    (folder / "c_notes.png").write_text("not an image\n", encoding="utf-8")
    (folder / "d_cut.jpg").write_bytes(ROCKET.read_bytes()[:600])  # a truncated JPEG
    (folder / "readme.txt").write_text("ignored: not an image extension\n", encoding="utf-8")
    shutil.copy(CAT, folder / ".hidden.png")  # hidden: left out
    (folder / "sub").mkdir()
    shutil.copy(CAT, folder / "sub" / "deeper.png")  # not recursive
    table = tmp_path / "t.jsonl"
    assert main(["run", str(tiny(tmp_path)), "--image", str(folder), "--output", str(table)]) == 0
    captured = capsys.readouterr()
    assert list(printed(captured.out)) == [str(folder / "a_cat.png"),
                                           str(folder / "b_rocket.JPG")]
    err = captured.err
    assert err.count("warning[W601]") == 2, err
    assert f"'{folder / 'c_notes.png'}': it is text, not an image" in err
    assert str(folder / "d_cut.jpg") in err
    assert "skipped 2 of 4 images" in err and "Traceback" not in err
    rows = [json.loads(line) for line in table.read_text(encoding="utf-8").splitlines()]
    assert [r["file"] for r in rows] == [str(folder / "a_cat.png"), str(folder / "b_rocket.JPG")]
    assert all(len(r["labels"]) == len(r["indices"]) == len(r["probabilities"]) == 5
               for r in rows)


def test_a_file_named_explicitly_that_cannot_be_read_is_an_error(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image\n", encoding="utf-8")
    assert main(["run", str(tiny(tmp_path)), "--image", str(CAT), str(bad),
                 "--output", str(tmp_path / "o.csv")]) == 1
    err = capsys.readouterr().err
    assert f"error[E605]: cannot read image '{bad}': it is text, not an image" in err
    assert not (tmp_path / "o.csv").exists()  # nothing half-written


def test_a_folder_without_images_and_a_missing_file_are_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["run", str(tiny(tmp_path)), "--image", str(tmp_path / "empty")]) == 1
    assert "error[E605]: the folder" in capsys.readouterr().err
    assert main(["run", str(tiny(tmp_path)), "--image", str(tmp_path / "nope.png")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_batches_of_a_symbolic_batch_give_what_one_at_a_time_gives(tmp_path, capsys):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(5):
        shutil.copy(CAT if i % 2 else ROCKET, folder / f"{i}.png")
    spec = tiny(tmp_path)
    assert main(["run", str(spec), "--image", str(folder), "--batch", "2",
                 "--output", str(tmp_path / "b2.npy")]) == 0
    assert main(["run", str(spec), "--image", str(folder), "--batch", "1",
                 "--output", str(tmp_path / "b1.npy")]) == 0
    a, b = np.load(tmp_path / "b2.npy"), np.load(tmp_path / "b1.npy")
    assert a.shape == (5, 6)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_fixed_batch_of_two_runs_three_images_filled_up(tmp_path, capsys):
    """Fixed batch B: B images a run, the last batch filled up with copies whose outputs are
    dropped; each image's output equals the symbolic-batch model's (the same weights)."""
    images = [str(CAT), str(ROCKET), str(CAT)]
    fixed = tiny(tmp_path, batch=2, name="fixed.yaml")
    assert main(["run", str(fixed), "--image", *images, "--output", str(tmp_path / "f.npy")]) == 0
    assert main(["run", str(tiny(tmp_path)), "--image", *images,
                 "--output", str(tmp_path / "s.npy")]) == 0
    f, s = np.load(tmp_path / "f.npy"), np.load(tmp_path / "s.npy")
    assert f.shape == (3, 6)
    np.testing.assert_allclose(f, s, rtol=1e-5, atol=1e-6)


def test_tables_and_arrays(tmp_path, capsys):
    spec = tiny(tmp_path)
    args = ["run", str(spec), "--image", str(CAT), str(ROCKET), "--top", "2"]
    assert main(args + ["--output", str(tmp_path / "t.csv")]) == 0
    assert main(args + ["--output", str(tmp_path / "t.jsonl")]) == 0
    assert main(args + ["--output", str(tmp_path / "all.npz")]) == 0
    assert main(args + ["--output", str(tmp_path / "l.npy")]) == 0
    logits = np.load(tmp_path / "l.npy")
    with np.load(tmp_path / "all.npz") as z:
        np.testing.assert_array_equal(z["logits"], logits)
    rows = list(csv.reader((tmp_path / "t.csv").open(encoding="utf-8")))
    assert rows[0] == ["file", "label_1", "index_1", "probability_1",
                       "label_2", "index_2", "probability_2"]
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text("utf-8").splitlines()]
    labels = ["ant", "bee", "cat", "dog", "eel", "fox"]
    for row, line, z in zip(rows[1:], lines, logits):
        p = softmax(z)
        top = [int(i) for i in np.argsort(-p, kind="stable")[:2]]
        assert row[:3] + row[4:6] == [line["file"], labels[top[0]], str(top[0]),
                                      labels[top[1]], str(top[1])]
        np.testing.assert_allclose([float(row[3]), float(row[6])], p[top], rtol=1e-12)
        assert line["indices"] == top and line["labels"] == [labels[i] for i in top]
        np.testing.assert_allclose(line["probabilities"], p[top], rtol=1e-12)
    assert [r[0] for r in rows[1:]] == [str(CAT), str(ROCKET)]
    assert not list(tmp_path.glob(".*netc-tmp"))  # written through write_atomic


def test_a_model_without_labels_prints_class_indices(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(TINY.format(batch="N", tail="").replace("labels: [ant, bee, cat, dog, eel, "
                                                            "fox]\n", ""), encoding="utf-8")
    assert main(["run", str(spec), "--image", str(CAT), "--top", "2",
                 "--output", str(tmp_path / "t.csv")]) == 0
    lines = printed(capsys.readouterr().out)[str(CAT)]
    assert all(name.startswith("class ") for _, name in lines)
    row = list(csv.DictReader((tmp_path / "t.csv").open(encoding="utf-8")))[0]
    assert row["label_1"] == row["index_1"]


def test_grayscale_image_on_an_rgb_model_and_back_converts_as_pillow_does(tmp_path, capsys):
    """Not a mistake with --image: the declared colour mode converts any image, as
    torchvision users write `image.convert("RGB")`; equal to running the converted file."""
    gray, rgb = tmp_path / "gray.png", tmp_path / "rgb.png"
    Image.open(CAT).convert("L").save(gray)
    Image.open(gray).convert("RGB").save(rgb)
    spec = tiny(tmp_path)
    for path, out in ((gray, "g.npy"), (rgb, "c.npy")):
        assert main(["run", str(spec), "--image", str(path), "--output", str(tmp_path / out)]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), np.load(tmp_path / "c.npy"))
    # an RGB photo on LeNet-5 (grayscale, 32×32): the manual pipeline converts with "L"
    lenet = ROOT / "specs" / "lenet5.yaml"
    assert main(["compile", str(lenet), "-o", str(tmp_path / "lenet.onnx")]) == 0
    assert main(["run", str(lenet), "--image", str(ROCKET),
                 "--output", str(tmp_path / "l.npy")]) == 0
    image = Image.open(ROCKET).convert("L").resize((32, 32), Image.BILINEAR)
    x = (np.asarray(image, np.float32) / 255)[None, None]
    np.testing.assert_allclose(np.load(tmp_path / "l.npy"), ort_run(tmp_path / "lenet.onnx", x),
                               rtol=1e-5, atol=1e-6)


def test_a_uint8_input_model_runs_on_images_like_the_float_model(tmp_path, capsys):
    spec = tiny(tmp_path)
    assert main(["compile", str(spec), "-o", str(tmp_path / "u8.onnx"), "--uint8-input"]) == 0
    assert main(["compile", str(spec), "-o", str(tmp_path / "f.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "u8.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(uint8)"
    images = [str(CAT), str(ROCKET)]
    assert main(["run", str(tmp_path / "u8.onnx"), "--image", *images,
                 "--output", str(tmp_path / "u.npy")]) == 0
    assert main(["run", str(tmp_path / "f.onnx"), "--image", *images,
                 "--output", str(tmp_path / "f.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "u.npy"), np.load(tmp_path / "f.npy"),
                               rtol=1e-5, atol=1e-5)


def test_progress_bar_on_a_terminal_and_plain_elsewhere(tmp_path, capsys, monkeypatch):
    from netc.tools.bench import Progress

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3):
        shutil.copy(CAT, folder / f"{i}.png")
    monkeypatch.setattr(Progress, "DELAY", 0.0)
    monkeypatch.setattr(Progress, "REDRAW", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["run", str(tiny(tmp_path)), "--image", str(folder), "--batch", "2"]) == 0
    captured = capsys.readouterr()
    assert "\r\x1b[Knetc run: images: [" in captured.err and "3/3" in captured.err
    assert captured.err.endswith("\r\x1b[K")  # erased at the end
    assert "\x1b" not in captured.out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert main(["run", str(tiny(tmp_path)), "--image", str(folder)]) == 0
    err = capsys.readouterr().err  # a short run off a terminal: no progress, only the note
    assert "images:" not in err and "\r" not in err and "runs with its initial weights" in err


# --- no preprocessing declared, and a model's records --------------------------------------------


def test_a_spec_without_preprocess_says_what_to_declare_and_that_works(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    text = TINY.format(batch="N", tail="").replace(
        "preprocess: {resize: 36, crop: 32, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3]}\n", "")
    spec.write_text(text, encoding="utf-8")
    assert main(["run", str(spec), "--image", str(CAT)]) == 1
    err = capsys.readouterr().err
    assert f"error[E606]: spec '{spec}' has no `preprocess:`" in err and "N×3×32×32" in err
    block = err.split("e.g. `", 1)[1].split("`", 1)[0]
    assert block.startswith("preprocess: {resize: 37, crop: 32, mean:")
    spec.write_text(text.replace("labels:", block + "\nlabels:"), encoding="utf-8")
    assert main(["run", str(spec), "--image", str(CAT)]) == 0  # the hint, pasted, works


def test_an_onnx_model_without_the_record_says_to_compile_it_from_a_spec(tmp_path, capsys):
    path = tmp_path / "bare.onnx"
    assert main(["compile", str(tiny(tmp_path)), "-o", str(path)]) == 0
    model = onnx.load(path)
    del model.metadata_props[:]
    onnx.save(model, path)
    capsys.readouterr()
    assert main(["run", str(path), "--image", str(CAT)]) == 1
    err = capsys.readouterr().err
    assert f"error[E606]: '{path}' carries no netc.preprocess record" in err
    assert "compile it with netc from a spec" in err and "--input FILE.npy" in err


@pytest.mark.parametrize("key, value, says", [
    ("netc.preprocess", "{not json", "netc.preprocess is not JSON"),
    ("netc.preprocess", '{"input": "image", "color": "cmyk"}', "unknown colour mode"),
    ("netc.labels", '["a", "b"]', "names 2 classes in its labels record, and output"),
    ("netc.preprocess", '{"input": "image", "color": "grayscale", "mean": [0], "std": [1]}',
     "declares grayscale preprocessing (1 channel), and input 'image' has 3"),
], ids=["not json", "bad field", "labels count", "channels"])
def test_a_malformed_record_is_e604(tmp_path, capsys, key, value, says):
    path = tmp_path / "m.onnx"
    assert main(["compile", str(tiny(tmp_path)), "-o", str(path)]) == 0
    model = onnx.load(path)
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
    onnx.save(model, path)
    capsys.readouterr()
    assert main(["run", str(path), "--image", str(CAT)]) == 1
    err = capsys.readouterr().err
    assert "error[E604]" in err and says in err and "Traceback" not in err, err


def test_usage_mistakes_exit_2(tmp_path, capsys):
    spec = str(tiny(tmp_path))
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 32, 32), np.float32))
    assert main(["run", spec, "--image", str(CAT), "--input", str(tmp_path / "x.npy")]) == 2
    assert main(["run", spec, "--image", str(CAT), "--output", str(tmp_path / "o.txt")]) == 2
    assert main(["run", spec, "--image", str(CAT), "--layers", "conv1"]) == 2
    err = capsys.readouterr().err
    assert "not both" in err and "not '" in err and "give --maps too" in err


def test_labels_from_a_strangers_model_cannot_steer_the_terminal(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    assert main(["compile", str(tiny(tmp_path)), "-o", str(path)]) == 0
    model = onnx.load(path)
    for p in model.metadata_props:
        if p.key == "netc.labels":
            p.value = json.dumps(["\x1b[2Jant"] + ["bee\nfake line"] * 5)
    onnx.save(model, path)
    capsys.readouterr()
    assert main(["run", str(path), "--image", str(CAT), "--top", "6"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2Jant (0)" in out and "bee\\nfake line" in out
    assert len(out.splitlines()) == 7  # the file, and one line per class


def test_an_output_that_is_not_classes_is_summarised_and_saved(tmp_path, capsys):
    spec = tmp_path / "maps.yaml"
    spec.write_text(TINY.format(batch="N", tail="").split("labels:")[0]
                    + "layers:\n  - conv: {filters: 4, kernel: 3, pad: 1}\n", encoding="utf-8")
    assert main(["run", str(spec), "--image", str(CAT), "--output", str(tmp_path / "y.npy")]) == 0
    out = capsys.readouterr().out
    assert f"{CAT}\n  conv1: 4×32×32  min " in out
    assert np.load(tmp_path / "y.npy").shape == (1, 4, 32, 32)
    assert main(["run", str(spec), "--image", str(CAT), "--output", str(tmp_path / "t.csv")]) == 1
    err = capsys.readouterr().err
    assert "error[E602]: --output t.csv is a table of the top classes, and output 'conv1' is " \
           "N×4×32×32, not N×classes" in err


# --- file names, labels and output names that are not plain (breaker 13) ------------------------


def test_a_file_name_that_is_not_utf8_is_written_escaped_in_both_tables(tmp_path, capsys):
    """A file name of bytes that are not UTF-8 (os.listdir gives `\\udcff`) is shown and
    written as the terminal shows it: `bad\\xff.png`, never a UnicodeEncodeError."""
    folder = tmp_path / "h2"
    folder.mkdir()
    raw = bytes(folder) + b"/bad\xff.png"
    shutil.copy(CAT, raw)
    spec = str(tiny(tmp_path))
    for table in ("o.csv", "o.jsonl"):
        assert main(["run", spec, "--image", str(folder), "--output", str(tmp_path / table)]) \
            == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    shown = f"{folder}/bad\\xff.png"
    assert shown in out.splitlines()
    [row] = list(csv.DictReader((tmp_path / "o.csv").open(encoding="utf-8", newline="")))
    [line] = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text("utf-8").splitlines()]
    assert row["file"] == line["file"] == shown


def test_a_file_name_with_a_carriage_return_is_quoted_in_the_csv(tmp_path, capsys):
    folder = tmp_path / "cr"
    folder.mkdir()
    shutil.copy(CAT, folder / "a\rb.png")
    shutil.copy(ROCKET, folder / "c.png")
    assert main(["run", str(tiny(tmp_path)), "--image", str(folder),
                 "--output", str(tmp_path / "o.csv")]) == 0
    assert "a\\rb.png" in capsys.readouterr().out  # escaped on the terminal
    rows = list(csv.reader((tmp_path / "o.csv").open(encoding="utf-8", newline="")))
    assert [r[0] for r in rows[1:]] == [str(folder / "a\rb.png"), str(folder / "c.png")]
    assert all(len(r) == len(rows[0]) for r in rows)


def _with_labels(tmp_path: Path, labels: list) -> Path:
    path = tmp_path / "m.onnx"
    assert main(["compile", str(tiny(tmp_path)), "-o", str(path)]) == 0
    model = onnx.load(path)
    for p in model.metadata_props:
        if p.key == "netc.labels":
            p.value = json.dumps(labels)  # ensure_ascii: a lone surrogate as `\ud800`
    onnx.save(model, path)
    return path


def test_labels_with_lone_surrogates_are_shown_and_written_escaped(tmp_path, capsys):
    path = _with_labels(tmp_path, ["\ud800", "x\udcffy", "bee", "cat", "dog", "eel"])
    capsys.readouterr()
    args = ["run", str(path), "--image", str(CAT), "--top", "6"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "\\ud800 (0)" in out and "x\\udcffy (1)" in out
    assert len(out.splitlines()) == 7
    for table in ("o.csv", "o.jsonl"):
        assert main(args + ["--output", str(tmp_path / table)]) == 0, capsys.readouterr().err
    [row] = list(csv.reader((tmp_path / "o.csv").open(encoding="utf-8", newline="")))[1:]
    [line] = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text("utf-8").splitlines()]
    assert set(row[1::3]) == set(line["labels"]) == {"\\ud800", "x\\udcffy", "bee", "cat",
                                                    "dog", "eel"}


def test_a_long_label_is_cut_on_the_terminal_and_whole_in_the_table(tmp_path, capsys):
    long = "a" * 250 + "z"
    path = _with_labels(tmp_path, [long, "b", "c", "d", "e", "f"])
    capsys.readouterr()
    assert main(["run", str(path), "--image", str(CAT), "--top", "6",
                 "--output", str(tmp_path / "o.jsonl")]) == 0
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if "aaaa" in x]
    assert len(line) < 120 and "…" in line and "z" not in line and line.endswith("(0)")
    assert long in json.loads((tmp_path / "o.jsonl").read_text("utf-8"))["labels"]


SAVED_AS = """\
netc: 1
name: named
inputs:
  image: [N, 3, 32, 32]
preprocess: {{resize: [32, 32]}}
layers:
  - conv: {{filters: 2, kernel: 3, pad: 1}}
    name: {first}
  - flatten
  - dense: 3
    name: {last}
"""


@pytest.mark.parametrize("first, last", [("conv1", "file"), ("conv1", "allow_pickle"),
                                         ("file", "allow_pickle")])
def test_outputs_named_like_savez_parameters_are_saved_to_npz(tmp_path, capsys, first, last):
    spec = tmp_path / "s.yaml"
    spec.write_text(SAVED_AS.format(first=first, last=last), encoding="utf-8")
    # plain `netc run SPEC --output o.npz` (cli._save): every output by name
    assert main(["run", str(spec), "--output", str(tmp_path / "plain.npz")]) == 0, \
        capsys.readouterr().err
    with np.load(tmp_path / "plain.npz") as z:
        assert sorted(z.files) == [last] and z[last].shape == (1, 3)
    assert main(["run", str(spec), "--image", str(CAT), str(ROCKET),
                 "--output", str(tmp_path / "images.npz")]) == 0, capsys.readouterr().err
    assert main(["run", str(spec), "--image", str(CAT), str(ROCKET),
                 "--output", str(tmp_path / "images.npy")]) == 0
    with np.load(tmp_path / "images.npz", allow_pickle=False) as z:
        assert sorted(z.files) == [last]
        np.testing.assert_array_equal(z[last], np.load(tmp_path / "images.npy"))


def symbolic_hw_model(path: Path, pool: bool = True) -> None:
    """A hand-made .onnx whose input is N×3×H×W with H and W symbolic, carrying netc's
    preprocessing record without a resize: each image runs at its own size. With `pool`, it
    gives the mean of each channel (N×3); without, the image itself (N×3×H×W)."""
    from onnx import TensorProto, helper

    from netc.images import Preprocess, to_metadata

    if pool:
        nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
                 helper.make_node("Flatten", ["pooled"], ["means"])]
        out = helper.make_tensor_value_info("means", TensorProto.FLOAT, ["N", 3])
    else:
        nodes = [helper.make_node("Identity", ["image"], ["same"])]
        out = helper.make_tensor_value_info("same", TensorProto.FLOAT, ["N", 3, "H", "W"])
    graph = helper.make_graph(nodes, "symhw", [helper.make_tensor_value_info(
        "image", TensorProto.FLOAT, ["N", 3, "H", "W"])], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, to_metadata(Preprocess("image"), None))
    onnx.save(model, path)


def test_images_of_different_sizes_on_a_model_with_symbolic_height_and_width(tmp_path, capsys):
    model = tmp_path / "symhw.onnx"
    symbolic_hw_model(model)
    small = tmp_path / "small.png"
    Image.open(CAT).convert("RGB").resize((7, 5)).save(small)
    images = [str(CAT), str(small), str(ROCKET), str(CAT)]
    assert main(["run", str(model), "--image", *images, "--top", "1",
                 "--output", str(tmp_path / "m.npy")]) == 0, capsys.readouterr().err
    got = np.load(tmp_path / "m.npy")
    expected = [np.asarray(Image.open(p).convert("RGB"), np.float64).mean(axis=(0, 1)) / 255
                for p in images]
    np.testing.assert_allclose(got, expected, rtol=1e-4)  # (float32 sums of 190,000 values)
    heads = [line for line in capsys.readouterr().out.splitlines()
             if not line.startswith(("  ", "saved "))]
    assert heads == images  # in the order given
    # outputs whose shapes differ per image cannot be one array: said, not a traceback
    same = tmp_path / "same.onnx"
    symbolic_hw_model(same, pool=False)
    assert main(["run", str(same), "--image", str(CAT), str(small)]) == 0
    capsys.readouterr()
    assert main(["run", str(same), "--image", str(CAT), str(small),
                 "--output", str(tmp_path / "s.npz")]) == 1
    err = capsys.readouterr().err
    assert "error[E602]" in err and "Traceback" not in err and "1×3×5×7" in err
    assert not (tmp_path / "s.npz").exists()


def test_empty_option_values_and_an_empty_layers_are_usage_errors(tmp_path, capsys):
    spec = str(tiny(tmp_path))
    assert main(["run", spec, "--image", str(CAT), "--output", ""]) == 2
    assert "--output" in capsys.readouterr().err
    assert main(["run", spec, "--image", str(CAT), "--maps", ""]) == 2
    assert "--maps" in capsys.readouterr().err
    assert main(["run", spec, "--image", str(CAT), "--layers", ""]) == 2
    assert "--layers" in capsys.readouterr().err


@pytest.mark.parametrize("extra, says", [
    (["--top", "3"], "--top goes with --image"),
    (["--output", ""], "--output needs a file name"),
    (["--maps", ""], "--maps"),
    (["--layers", ""], "--layers"),
])
def test_image_options_without_an_image_are_usage_errors(capsys, extra, says):
    """An option of --image given without it, or an empty value, is a bad command line
    (exit 2), not silently ignored."""
    assert main(["run", str(ROOT / "specs" / "lenet5.yaml"), *extra]) == 2
    assert says in capsys.readouterr().err


def test_infinite_and_nan_outputs(tmp_path, capsys):
    """The softmax's limits: +inf takes all the probability (without a numpy warning);
    a NaN output is refused with a message instead of a made-up ranking."""
    import warnings

    from netc.tools.predict import top_classes

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert top_classes(np.array([1.0, np.inf, 1.0]), 3) == ([1, 0, 2], [1.0, 0.0, 0.0])
        assert top_classes(np.array([-np.inf, -np.inf]), 2) == ([0, 1], [0.5, 0.5])
        indices, p = top_classes(np.array([1.0, -np.inf, 3.0]), 3)
        assert indices == [2, 0, 1] and p[2] == 0.0 and abs(sum(p) - 1) < 1e-12
    spec = tmp_path / "nan.yaml"
    spec.write_text("netc: 1\nname: nanny\ninputs:\n  image: [N, 3, 8, 8]\n"
                    "preprocess: {resize: [8, 8]}\nlayers:\n  - globalavgpool\n  - flatten\n"
                    "  - dense: 3\n", encoding="utf-8")
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8), (255, 255, 255)).save(image)
    model = tmp_path / "nan.onnx"
    assert main(["compile", str(spec), "-o", str(model)]) == 0
    capsys.readouterr()
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(model))  # NaN weights, as a bad checkpoint would have
    for t in m.graph.initializer:
        if t.name.endswith(".weight"):
            t.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, np.nan,
                                                       np.float32), t.name))
    onnx.save(m, str(model))
    assert main(["run", str(model), "--image", str(image),
                 "--output", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "error[E604]: output 'dense1' holds NaN for image" in err
    assert not (tmp_path / "o.jsonl").exists()
