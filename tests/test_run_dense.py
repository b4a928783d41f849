"""`netc run MODEL --image FILE... [--masks DIR]` on a segmentation model: a class per pixel.

The model here is a 1×1 conv with known weights (netc.weights.save_weights, read back with
--weights): classes 0, 1 and 2 score a pixel's red, green and blue, class 3 scores 0.375. After
the preprocessing (x / 255, mean 0, std 1, the same for every channel) the argmax per pixel is
therefore the argmax of the resized image's 8-bit [R, G, B, 95.625], which numpy computes from
the Pillow-resized image: the oracle. Every channel gets the same monotonic map from the same
byte, so equal bytes stay exactly equal and ties (a grey pixel) go to the lower index on both
sides; class 3's 0.375 (3/8, exact in float32) is 95.625 bytes, never a byte, so it never
ties.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper
from PIL import Image

from netc import pipeline
from netc.cli import main
from netc.errors import NetcError
from netc.images import voc_labels
from netc.tools.predict import mask_names, voc_palette
from netc.weights import save_weights

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "photos"
CAT, ROCKET = PHOTOS / "chelsea.png", PHOTOS / "rocket.jpg"
LRASPP = ROOT / "specs" / "lraspp_mobilenet_v3_large.yaml"
H, W = 48, 64  # not square: a transposed mask would not pass
LABELS = ("red", "green", "blue", "dark")

SPEC = """\
netc: 1
name: colours
inputs:
  image: [{batch}, 3, {h}, {w}]
preprocess: {{resize: [{h}, {w}]}}
{labels}
layers:
  - conv: {{filters: {classes}, kernel: 1}}
    name: scores
"""


def dense_spec(tmp_path: Path, batch="N", labels=f"labels: [{', '.join(LABELS)}]",
               classes=4, name="colours.yaml") -> tuple[Path, Path]:
    """The spec and its weights (classes 0..2: R, G, B; class 3: the constant 0.375; any more
    classes: -1, never chosen)."""
    spec = tmp_path / name
    spec.write_text(SPEC.format(batch=batch, h=H, w=W, labels=labels, classes=classes),
                    encoding="utf-8")
    weight = np.zeros((classes, 3, 1, 1), np.float32)
    bias = np.full(classes, -1, np.float32)
    for c in range(min(classes, 3)):
        weight[c, c] = 1
        bias[c] = 0
    if classes > 3:
        bias[3] = 0.375
    weights = tmp_path / f"{spec.stem}.safetensors"
    save_weights(str(weights), {"scores.weight": weight, "scores.bias": bias})
    return spec, weights


def oracle(path: Path) -> np.ndarray:
    """The class of each pixel (H×W), by numpy from the resized image's bytes."""
    a = np.asarray(Image.open(path).convert("RGB").resize((W, H), Image.BILINEAR))
    scores = np.concatenate([a.astype(np.float64), np.full((H, W, 1), 95.625)], axis=2)
    return scores.argmax(axis=2)


def ranked(classes: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """The top `k` classes by pixels (ties: lower index), only those present, and shares."""
    counts = np.bincount(classes.ravel(), minlength=len(LABELS))
    order = sorted((i for i in range(len(counts)) if counts[i]), key=lambda i: (-counts[i], i))
    return order[:k], [int(counts[i]) / classes.size for i in order[:k]]


def printed_in_order(out: str) -> list[tuple[str, list[str]]]:
    """[(image, [its indented lines])] of netc run's standard output, in order."""
    found = []
    for line in out.splitlines():
        if line.startswith("  "):
            found[-1][1].append(line)
        elif not line.startswith("saved "):
            found.append((line, []))
    return found


def printed(out: str) -> dict[str, list[str]]:
    return dict(printed_in_order(out))


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def solid(path: Path, colour, size=(30, 20)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


# --- shares and masks against numpy -------------------------------------------------------------


def test_pixel_shares_and_masks_equal_the_numpy_argmax(tmp_path, capsys):
    spec, weights = dense_spec(tmp_path)
    masks, table = tmp_path / "out" / "masks", tmp_path / "t.jsonl"
    rc, out, err = run(capsys, spec, "--weights", weights, "--image", CAT, ROCKET, "--top", 3,
                       "--masks", masks, "--output", table)
    assert rc == 0, err
    shown = printed(out)
    assert list(shown) == [str(CAT), str(ROCKET)]
    rows = [json.loads(line) for line in table.read_text(encoding="utf-8").splitlines()]
    for image, row in zip((CAT, ROCKET), rows):
        expected = oracle(image)
        assert len(np.unique(expected)) >= (2 if image == CAT else 4)  # a real ranking
        indices, shares = ranked(expected, 3)
        assert row == {"file": str(image), "mask": str(masks / f"{image.stem}.png"),
                       "labels": [LABELS[i] for i in indices], "indices": indices,
                       "shares": shares}
        assert shown[str(image)] == [f"  {p:7.2%}  {LABELS[i]} ({i})"
                                     for i, p in zip(indices, shares)] \
            + [f"  mask: {masks / (image.stem + '.png')}"]
        with Image.open(masks / f"{image.stem}.png") as png:
            assert png.format == "PNG" and png.mode == "P" and png.size == (W, H)
            np.testing.assert_array_equal(np.asarray(png), expected)
            assert bytes(png.getpalette()) == voc_palette()
    assert sorted(os.listdir(masks)) == ["chelsea.png", "rocket.png"]  # no temporary files


def test_csv_table_holds_shares_and_pads_an_image_with_fewer_classes(tmp_path, capsys):
    spec, weights = dense_spec(tmp_path)
    red = solid(tmp_path / "red.png", (200, 10, 10))
    rc, out, err = run(capsys, spec, "--weights", weights, "--image", CAT, red,
                       "--output", tmp_path / "t.csv")
    assert rc == 0, err
    assert printed(out)[str(red)] == ["  100.00%  red (0)"]  # only the classes present
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    # without --masks, no mask column; K = 4 (the default 5, at most the classes)
    assert rows[0] == ["file"] + [f"{c}_{r}" for r in range(1, 5)
                                  for c in ("label", "index", "share")]
    indices, shares = ranked(oracle(CAT), 4)
    cells = [str(CAT)]
    for i, p in zip(indices, shares):
        cells += [LABELS[i], str(i), repr(p)]
    assert rows[1] == cells + [""] * (3 * (4 - len(indices)))
    assert rows[2] == [str(red), "red", "0", "1.0"] + [""] * 9


def test_an_onnx_file_with_labels_is_dense_and_without_them_needs_masks(tmp_path, capsys):
    """The .onnx file carries the labels (netc.labels): it runs as the spec does. Its
    unlabelled twin is a feature map, summarised, until --masks asks for class maps; then
    classes are shown by index."""
    spec, weights = dense_spec(tmp_path)
    model = tmp_path / "colours.onnx"
    assert main(["compile", str(spec), "--weights", str(weights), "-o", str(model)]) == 0
    capsys.readouterr()
    rc, out, _ = run(capsys, model, "--image", CAT, "--top", 2)
    indices, shares = ranked(oracle(CAT), 2)
    assert rc == 0 and printed(out)[str(CAT)] == [f"  {p:7.2%}  {LABELS[i]} ({i})"
                                                  for i, p in zip(indices, shares)]
    bare, weights = dense_spec(tmp_path, labels="", name="bare.yaml")
    rc, out, _ = run(capsys, bare, "--weights", weights, "--image", CAT)
    assert rc == 0 and f"{CAT}\n  scores: 4×{H}×{W}  min " in out
    rc, out, err = run(capsys, bare, "--weights", weights, "--image", CAT, "--output",
                       tmp_path / "t.csv")
    assert rc == 1 and "give --masks DIR as well" in err
    rc, out, _ = run(capsys, bare, "--weights", weights, "--image", CAT, "--top", 2,
                     "--masks", tmp_path / "m")
    assert rc == 0 and printed(out)[str(CAT)][:2] == [f"  {p:7.2%}  class {i}"
                                                      for i, p in zip(indices, shares)]


# --- mask names ------------------------------------------------------------------------------


def test_names_that_collide_are_made_unique_in_run_order(tmp_path, capsys):
    """A folder with a-2.png, a.jpg and a.png (sorted: a-2.png first), another folder's
    a.png, and a.jpg again: the first of each stem keeps it, the others get the first -k
    that no image is called. A fixed batch of 2 runs them (the last batch filled up)."""
    spec, weights = dense_spec(tmp_path, batch=2)
    x, y = tmp_path / "x", tmp_path / "y"
    x.mkdir()
    y.mkdir()
    images = [solid(x / "a-2.png", (250, 0, 0)), solid(x / "a.jpg", (0, 250, 0)),
              solid(x / "a.png", (0, 0, 250)), solid(y / "a.png", (20, 20, 20))]
    masks = tmp_path / "masks"
    rc, out, err = run(capsys, spec, "--weights", weights, "--image", x, y / "a.png",
                       x / "a.jpg", "--masks", masks)
    assert rc == 0, err
    names = ["a-2.png", "a.png", "a-3.png", "a-4.png", "a-5.png"]
    shown = printed_in_order(out)
    assert [file for file, _ in shown] == [str(p) for p in images + [x / "a.jpg"]]
    for image, name, (_, lines) in zip(images + [images[1]], names, shown):
        assert lines[-1] == f"  mask: {masks / name}"
        with Image.open(masks / name) as png:
            np.testing.assert_array_equal(np.asarray(png), oracle(image))
    assert sorted(os.listdir(masks)) == sorted(names)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x/", "y/", ""]),
                          st.sampled_from(["a", "A", "a-2", "a-3", "b", "a-2-2"]),
                          st.sampled_from([".png", ".jpg", ""])), max_size=8))
def test_mask_names_are_unique_and_keep_each_first_stem(parts):
    paths = ["".join(p) for p in parts]
    names = mask_names(paths)
    assert len({n.casefold() for n in names}) == len(names)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    for i, (stem, name) in enumerate(zip(stems, names)):
        first = all(s.casefold() != stem.casefold() for s in stems[:i])
        assert name == stem + ".png" if first else \
            (name.startswith(stem + "-") and name[len(stem) + 1:-4].isdigit())
    assert mask_names(paths) == names  # the list alone decides


def test_a_long_image_name_is_cut_with_a_hash(tmp_path):
    long = "é" * 200  # 400 bytes
    a, b = mask_names([f"{long}x.png", f"{long}y.png"])
    assert a != b and len(os.fsencode(a)) <= 154 and a.startswith("é" * 70)


# --- what is refused ---------------------------------------------------------------------------


def test_masks_need_a_dense_output(tmp_path, capsys):
    classifier = tmp_path / "c.yaml"
    classifier.write_text(SPEC.format(batch="N", h=H, w=W, labels="labels: [a, b]", classes=2)
                          + "  - globalavgpool\n  - flatten\n", encoding="utf-8")
    rc, out, err = run(capsys, classifier, "--image", CAT, "--masks", tmp_path / "m")
    assert rc == 2 and "--masks writes class maps, which need a dense output, N×classes×H×W" \
        in err and "output 'flatten1' is N×2" in err
    assert not (tmp_path / "m").exists() and out == ""


@pytest.mark.parametrize("classes, says", [
    (300, "--masks writes 8-bit palette PNGs (class indices 0..255), and output 'scores' has "
          "300 classes"),
    (1, "output 'scores' has one channel (N×1×48×64): its argmax is class 0 at every pixel"),
])
def test_masks_refused_for_more_classes_than_8_bits_or_one_channel(tmp_path, capsys, classes,
                                                                   says):
    spec, weights = dense_spec(tmp_path, labels="", classes=classes)
    rc, _, err = run(capsys, spec, "--weights", weights, "--image", CAT, "--masks",
                     tmp_path / "m")
    assert rc == 2 and says in err, err


def test_masks_destinations_are_checked_first(tmp_path, capsys):
    spec, weights = dense_spec(tmp_path)
    file = tmp_path / "file"
    file.write_text("x")
    rc, _, err = run(capsys, spec, "--weights", weights, "--image", CAT, "--masks", file)
    assert rc == 1 and f"error[E603]: --masks '{file}' is a file, not a folder" in err
    (tmp_path / "m" / "chelsea.png").mkdir(parents=True)
    rc, _, err = run(capsys, spec, "--weights", weights, "--image", CAT, "--masks", tmp_path / "m")
    assert rc == 1 and "/m/chelsea.png': it is a folder" in err
    # the images' own folder: chelsea.png's class map would replace it
    own = tmp_path / "own"
    own.mkdir()
    photo = own / "chelsea.png"
    photo.write_bytes(CAT.read_bytes())
    rc, _, err = run(capsys, spec, "--weights", weights, "--image", own, "--masks", own)
    assert rc == 1 and "would replace the image" in err
    assert photo.read_bytes() == CAT.read_bytes()


def test_masks_never_replace_a_file_netc_did_not_write(tmp_path, capsys):
    """`--image a.jpg --masks .` beside the user's own a.png (not an image of this run): E603
    before anything runs, the file left as it was; the same for a file of another kind, and a
    link, at a mask's name. Both hints work: another folder, or deleting the file."""
    spec, weights = dense_spec(tmp_path)
    here = tmp_path / "photos"
    here.mkdir()
    jpg = solid(here / "a.jpg", (0, 200, 0))
    own = solid(here / "a.png", (9, 9, 9))
    before = own.read_bytes()
    rc, out, err = run(capsys, spec, "--weights", weights, "--image", jpg, "--masks", here)
    assert rc == 1 and out == "", err
    assert f"error[E603]: the class map of '{jpg}' would replace '{own}', a file netc did not " \
        "write" in err and "hint: give --masks a folder of its own" in err
    assert f"hint: or delete '{own}' if it may go" in err
    assert own.read_bytes() == before and sorted(os.listdir(here)) == ["a.jpg", "a.png"]
    # several: the first named, the rest counted; text, and a link to a mask netc wrote
    rc, _, _ = run(capsys, spec, "--weights", weights, "--image", jpg, "--masks", tmp_path / "m")
    assert rc == 0
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "b.png").write_text("notes")
    (tmp_path / "x" / "c.png").symlink_to(tmp_path / "m" / "a.png")
    others = [solid(here / "b.jpg", (1, 1, 1)), solid(here / "c.jpg", (2, 2, 2))]
    rc, _, err = run(capsys, spec, "--weights", weights, "--image", *others, "--masks",
                     tmp_path / "x")
    assert rc == 1 and "would replace '" in err and "/x/b.png' (and 1 more), a file netc did " \
        "not write" in err
    assert (tmp_path / "x" / "b.png").read_text() == "notes"
    assert (tmp_path / "x" / "c.png").is_symlink()
    # the hints, followed
    rc, _, err = run(capsys, spec, "--weights", weights, "--image", jpg, "--masks",
                     here / "masks")
    assert rc == 0, err
    own.unlink()
    rc, out, err = run(capsys, spec, "--weights", weights, "--image", jpg, "--masks", here)
    assert rc == 0 and f"  mask: {own}" in out, err
    with Image.open(own) as png:
        np.testing.assert_array_equal(np.asarray(png), oracle(jpg))


def test_a_rerun_replaces_netcs_own_masks_which_name_their_image(tmp_path, capsys):
    """Each mask carries a `netc.mask` text chunk naming its image; a later run writing the
    same name (another image with that stem) replaces it, the mark then naming the new one."""
    spec, weights = dense_spec(tmp_path)
    masks = tmp_path / "masks"
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    images = [solid(first / "a.png", (200, 0, 0)), solid(second / "a.jpg", (0, 0, 200))]
    assert oracle(images[0])[0, 0] != oracle(images[1])[0, 0]  # the masks differ
    for image in images:
        rc, _, err = run(capsys, spec, "--weights", weights, "--image", image, "--masks", masks)
        assert rc == 0, err
        with Image.open(masks / "a.png") as png:
            assert png.info["netc.mask"] == str(image)
            np.testing.assert_array_equal(np.asarray(png), oracle(image))
    assert os.listdir(masks) == ["a.png"]


def test_a_spec_without_preprocess_is_e606_before_it_is_compiled(tmp_path, capsys,
                                                                 monkeypatch):
    """The spec's checked graph says it has no `preprocess:`: compiling the model first (2 s
    and 600 MB for specs/unet.yaml) only to say so is not done, nor are its weights read."""
    spec, weights = dense_spec(tmp_path)
    spec.write_text(spec.read_text(encoding="utf-8").replace(
        f"preprocess: {{resize: [{H}, {W}]}}\n", ""), encoding="utf-8")

    def never(*args, **kwargs):
        pytest.fail("the model was compiled (or its weights read) before E606")

    monkeypatch.setattr(pipeline, "runnable", never)
    monkeypatch.setattr("netc.weights.read_weights", never)
    rc, out, err = run(capsys, spec, "--weights", weights, "--image", CAT, "--masks",
                       tmp_path / "m")
    assert rc == 1 and out == "", err
    assert f"error[E606]: spec '{spec}' has no `preprocess:`" in err and f"N×3×{H}×{W}" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("argv, says", [
    (["--masks", ""], "--masks '' names no folder"),
    (["--masks", "m", "--maps", "d"], "--maps draws the activation maps of layers and --masks"),
])
def test_usage_errors(tmp_path, capsys, argv, says):
    spec, weights = dense_spec(tmp_path)
    rc, _, err = run(capsys, spec, "--weights", weights, "--image", CAT, *argv)
    assert rc == 2 and says in err, err


def test_masks_without_images_is_a_usage_error(tmp_path, capsys):
    spec, _ = dense_spec(tmp_path)
    rc, _, err = run(capsys, spec, "--masks", tmp_path / "m")
    assert rc == 2 and "--masks writes the class map of each image given with --image" in err


def test_nan_scores_are_e604(tmp_path, capsys):
    spec, weights = dense_spec(tmp_path)
    model = tmp_path / "nan.onnx"
    assert main(["compile", str(spec), "--weights", str(weights), "-o", str(model)]) == 0
    m = onnx.load(str(model))
    for t in m.graph.initializer:
        if t.name == "scores.bias":
            t.CopyFrom(numpy_helper.from_array(np.array([0, np.nan, 0, 0.375], np.float32),
                                               t.name))
    onnx.save(m, str(model))
    capsys.readouterr()
    rc, _, err = run(capsys, model, "--image", CAT, "--masks", tmp_path / "m")
    assert rc == 1 and "error[E604]: output 'scores' holds NaN for image" in err
    assert os.listdir(tmp_path / "m") == []


# --- labels on a dense output (check.py's E118) ---------------------------------------------


def check_errors(path: Path) -> list[tuple[str, str, list[str]]]:
    with pytest.raises(NetcError) as e:
        pipeline.check_file(path)
    return [(d.code, d.message, d.hints) for d in e.value.diagnostics.errors]


def test_labels_name_axis_1_of_a_dense_output(tmp_path):
    spec, _ = dense_spec(tmp_path)
    assert pipeline.check_file(spec).labels == LABELS
    spec, _ = dense_spec(tmp_path, labels="labels: [a, b, c]")
    [(code, message, hints)] = check_errors(spec)
    assert code == "E118" and message == (f"labels name 3 classes, and output 'scores' has 4 "
                                          f"on axis 1 (N×4×{H}×{W}: a score per class per "
                                          "pixel)")
    spec, _ = dense_spec(tmp_path, labels="labels: voc")
    [(code, message, hints)] = check_errors(spec)
    assert code == "E118" and "labels name 21 classes, and output 'scores' has 4" in message
    assert hints[0].startswith("`labels: voc` names the 21 Pascal VOC classes, for an output "
                               "of 21; name these 4 as a list")


def test_labels_on_an_output_of_another_rank_are_e118(tmp_path):
    path = tmp_path / "r3.yaml"
    path.write_text("netc: 1\nname: r3\ninputs:\n  x: [N, 4, 6, 1]\nlabels: [a, b, c, d]\n"
                    "layers:\n  - reshape: {shape: [4, 6]}\n", encoding="utf-8")
    [(code, message, _)] = check_errors(path)
    assert code == "E118" and message == ("labels name the classes of an N×classes or "
                                          "N×classes×H×W output, and output 'reshape1' is "
                                          "N×4×6")


def test_voc_labels_are_torchvisions():
    tv = pytest.importorskip("torchvision", reason="the VOC names' oracle is torchvision's "
                             "weights metadata (pip install torchvision)")
    from torchvision.models import segmentation as seg

    for weights in (seg.FCN_ResNet50_Weights, seg.DeepLabV3_ResNet50_Weights,
                    seg.LRASPP_MobileNet_V3_Large_Weights):
        assert voc_labels() == tuple(weights.DEFAULT.meta["categories"]), tv.__version__


def test_the_torchvision_segmentation_specs_name_the_voc_classes():
    for name in ("fcn_resnet50", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large"):
        graph = pipeline.check_file(ROOT / "specs" / f"{name}.yaml")
        assert graph.labels == voc_labels() and graph.outputs[0].shape[1] == 21
    assert voc_labels()[0] == "__background__" and voc_labels()[15] == "person"


def test_voc_palette_is_the_devkits():
    """VOC's SegmentationClass colours (the devkit's VOClabelcolormap.m), a few by name."""
    p = np.frombuffer(voc_palette(), np.uint8).reshape(256, 3)
    assert [tuple(p[i]) for i in (0, 1, 2, 8, 15, 20, 255)] == [
        (0, 0, 0), (128, 0, 0), (0, 128, 0), (64, 0, 0), (192, 128, 128), (0, 64, 128),
        (224, 224, 192)]
    assert len({tuple(c) for c in p}) == 256


# --- a zoo model ------------------------------------------------------------------------------


def test_lraspp_writes_a_520_palette_mask_of_its_output(tmp_path, capsys):
    """2 GMACs: seconds. Its initial weights: the classes mean nothing, but the mask is the
    argmax of the scores it saved, at the output's size."""
    masks, scores = tmp_path / "masks", tmp_path / "scores.npy"
    rc, out, err = run(capsys, LRASPP, "--image", CAT, "--masks", masks, "--output", scores)
    assert rc == 0, err
    y = np.load(scores)
    assert y.shape == (1, 21, 520, 520)
    with Image.open(masks / "chelsea.png") as png:
        assert png.mode == "P" and png.size == (520, 520)
        classes = np.asarray(png)
    np.testing.assert_array_equal(classes, y[0].argmax(axis=0))
    counts = np.bincount(classes.ravel(), minlength=21)
    top = sorted(range(21), key=lambda i: (-counts[i], i))[0]
    assert printed(out)[str(CAT)][0] == \
        f"  {counts[top] / classes.size:7.2%}  {voc_labels()[top]} ({top})"
