"""The spec's `preprocess:` and `labels:` (netc/images.py): what they read, what they refuse,
and what travels with a checked graph. The decoding and its equality with torchvision are in
tests/test_preprocess.py; the metadata in the model in tests/test_uint8_input.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netc import pipeline
from netc.cli import main
from netc.errors import NetcError
from netc.images import (METADATA_LABELS, METADATA_PREPROCESS, Preprocess, from_metadata,
                         imagenet_labels, to_metadata, voc_labels)

ROOT = Path(__file__).resolve().parent.parent

SPEC = """netc: 1
name: small
inputs:
  image: [N, {c}, 16, 16]
{extra}
layers:
  - conv: {{filters: 4, kernel: 3, pad: 1}}
  - globalavgpool
  - flatten
  - dense: 3
"""


def spec(tmp_path: Path, extra: str, c: int = 3, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(SPEC.format(c=c, extra=extra), encoding="utf-8")
    return path


def errors(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(NetcError) as e:
        pipeline.check_file(path)
    return [(d.code, d.message) for d in e.value.diagnostics.errors]


def test_defaults_follow_the_input(tmp_path):
    """Every key is optional: the colour mode follows the input's channels, the scale is
    1/255 (ToTensor), the mean 0 and the std 1."""
    graph = pipeline.check_file(spec(tmp_path, "preprocess: {}"))
    assert graph.preprocess == Preprocess("image", "rgb", None, None, "bilinear", 1 / 255,
                                          (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    graph = pipeline.check_file(spec(tmp_path, "preprocess: {scale: 1/255}", c=1))
    assert graph.preprocess.color == "grayscale" and graph.preprocess.scale == 1 / 255
    assert graph.preprocess.mean == (0.0,) and graph.labels is None


def test_the_zoo_declares_torchvisions_transform():
    """The ImageNet specs: resize 256 and crop 224 (Inception v3 342/299, EfficientNetV2-S
    384/384, as torchvision's weights declare), ImageNet's mean and std, the ImageNet names;
    the segmentation specs: resize and crop 520, the Pascal VOC names."""
    names = imagenet_labels()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[0] == "tench" and names[281] == "tabby" and names[999] == "toilet tissue"
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        graph = pipeline.check_file(path)
        pre = graph.preprocess
        if path.stem == "lenet5":
            assert pre.color == "grayscale" and pre.size() == (32, 32)
            assert graph.labels == tuple("0123456789")
            continue
        if path.stem == "unet":  # an architecture without weights of its own to match
            assert pre is None and graph.labels is None
            continue
        side = graph.inputs[0].shape[2]
        assert pre.crop == (side, side), path.stem
        assert pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
        if len(graph.outputs[0].shape) == 4:
            # torchvision's segmentation weights: SemanticSegmentation(resize_size=520), and
            # a centre square of it for netc's fixed input; the 21 Pascal VOC classes
            assert pre.resize == (520,) and side == 520, path.stem
            assert graph.labels == voc_labels() and graph.outputs[0].shape[1] == 21
            continue
        assert pre.resize == ({224: 256, 299: 342, 384: 384}[side],), path.stem
        assert graph.labels == names and graph.outputs[0].shape[1] == 1000


def test_labels_from_a_file_beside_the_spec(tmp_path):
    (tmp_path / "classes.txt").write_bytes("\ufeffcat\r\ndog \nbird\n\n".encode("utf-8"))
    graph = pipeline.check_file(spec(tmp_path, "labels: classes.txt"))
    assert graph.labels == ("cat", "dog", "bird")  # BOM, CRLF, spaces, trailing blank lines
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "names.txt").write_text("a\nb\nc\n", encoding="utf-8")
    assert pipeline.check_file(spec(tmp_path, "labels: sub/names.txt")).labels == ("a", "b", "c")
    assert pipeline.check_file(spec(tmp_path, "labels: [0, 1, two]")).labels == ("0", "1", "two")


@pytest.mark.parametrize("content, message", [
    ("cat\n\ndog\nbird\n", "has an empty line (2)"),
    ("", "is empty"),
    ("\n\n", "is empty"),
])
def test_a_labels_file_with_a_hole(tmp_path, content, message):
    (tmp_path / "classes.txt").write_text(content, encoding="utf-8")
    [(code, text)] = errors(spec(tmp_path, "labels: classes.txt"))
    assert code == "E119" and message in text


def test_a_labels_file_that_is_not_text_or_too_large(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00cat")
    assert errors(spec(tmp_path, "labels: bin.txt")) == [
        ("E119", "labels file 'bin.txt' is not UTF-8 text")]
    (tmp_path / "big.txt").write_bytes(b"x\n" * (2 << 20) + b"y\n")
    [(code, text)] = errors(spec(tmp_path, "labels: big.txt"))
    assert code == "E119" and "larger than 4 MiB" in text


def test_no_file_outside_the_spec_folder(tmp_path):
    """A spec may come from a stranger, and the names go into the model's metadata: netc
    reads no labels file outside the spec's folder, by path or through a link."""
    outside = tmp_path / "secret.txt"
    outside.write_text("a\nb\nc\n", encoding="utf-8")
    folder = tmp_path / "specs"
    folder.mkdir()
    for ref in ("../secret.txt", str(outside)):
        [(code, text)] = errors(spec(folder, f"labels: {json.dumps(ref)}"))
        assert code == "E119" and "outside the spec's folder" in text
    os.symlink(outside, folder / "link.txt")
    [(code, text)] = errors(spec(folder, "labels: link.txt"))
    assert code == "E119" and "outside the spec's folder" in text


def test_a_spec_from_memory_has_no_folder():
    text = SPEC.format(c=3, extra="labels: classes.txt").encode()
    parsed = pipeline.parse_bytes(text)
    assert [(d.code, d.message) for d in parsed.diags.errors] == [
        ("E119", "labels file 'classes.txt': a spec read from memory has no folder to find it in")]


@pytest.mark.parametrize("extra, code, fragment", [
    ("preprocess: [resize, 256]", "E103", "preprocess must be a mapping, not a list"),
    ("preprocess: {resize: 0}", "E105", "preprocess resize must be a size S"),
    ("preprocess: {resize: [16, 16, 3]}", "E105", "preprocess resize must be"),
    ("preprocess: {crop: big}", "E103", "preprocess crop must be a size or [H, W]"),
    ("preprocess: {scale: 0}", "E105", "preprocess scale must be a positive number"),
    ("preprocess: {scale: one}", "E103", "or a fraction such as 1/255"),
    ("preprocess: {std: [1, 0, 1]}", "E105", "preprocess std must be positive (it divides)"),
    ("preprocess: {mean: 0.5}", "E103", "preprocess mean must be a list of numbers"),
    ("preprocess: {interpolation: bilinaer}", "E105", "interpolation must be one of"),
    ("preprocess: {color: cmyk}", "E105", "preprocess color must be rgb or grayscale"),
    ("preprocess: {input: picture}", "E111", "preprocess: no input is named 'picture'"),
    ("preprocess: {resize: [8, 8], crop: 16}", "E117", "preprocess resizes to 8×8, smaller "
     "than its 16×16 crop"),
    ("preprocess: {resize: [20, 18]}", "E117", "preprocess makes 20×18 images (resize)"),
    ("labels: true", "E103", "labels must be `imagenet`, a file name or a list of names"),
    ("labels: [a, [b], c]", "E103", "a label must be a name or a number, not a list"),
    ("labels: []", "E103", "labels must name at least one class"),
    ("labels: imagenet", "E118", "labels name 1,000 classes, and output 'dense1' has 3"),
])
def test_mistakes_in_the_declaration(tmp_path, extra, code, fragment):
    found = errors(spec(tmp_path, extra))
    assert len(found) == 1 and found[0][0] == code and fragment in found[0][1], found


def test_several_image_inputs_need_a_name(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("""netc: 1
name: two
inputs: {a: [N, 3, 8, 8], b: [N, 3, 8, 8]}
preprocess: {crop: 8}
layers:
  - add: {from: [a, b]}
""", encoding="utf-8")
    [(code, text)] = errors(path)
    assert code == "E117" and "this spec has 2 of them (a, b)" in text
    path.write_text(path.read_text().replace("{crop: 8}", "{crop: 8, input: b}"))
    assert pipeline.check_file(path).preprocess.input == "b"


def test_the_cli_check_reports_them_with_positions(tmp_path, capsys):
    path = spec(tmp_path, "preprocess:\n  crop: 15")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:6:9: error[E117]: preprocess makes 15×15 images (crop), and input 'image' " \
           "is 16×16" in err and "hint: crop: 16" in err


def test_expand_keeps_them(tmp_path, capsys):
    """`netc expand` states every step; the flat spec checks to the same declaration."""
    for name in ("resnet18", "lenet5"):
        source = ROOT / "specs" / f"{name}.yaml"
        out = tmp_path / f"{name}.flat.yaml"
        assert main(["expand", str(source), "-o", str(out)]) == 0
        a, b = pipeline.check_file(source), pipeline.check_file(out)
        assert (a.preprocess, a.labels) == (b.preprocess, b.labels)


# --- the metadata record -------------------------------------------------------------------


def test_metadata_round_trip():
    pre = Preprocess("image", "grayscale", (40,), (32, 32), "bicubic", 1 / 255, (0.5,), (0.25,))
    props = to_metadata(pre, ("a", "ü", "c"))
    assert set(props) == {METADATA_PREPROCESS, METADATA_LABELS}
    assert from_metadata(props) == (pre, ("a", "ü", "c"))
    assert to_metadata(None, None) == {} and from_metadata({}) == (None, None)


@settings(max_examples=200, deadline=None)
@example({"color": [], "input": ""})  # an unhashable colour (found by hypothesis)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["input", "color", "resize", "crop",
                                                       "interpolation", "scale", "mean", "std",
                                                       "other"]), inner, max_size=8),
                    max_leaves=20))
def test_a_malformed_record_is_a_value_error(value):
    """A model's metadata comes from strangers too: anything that is not a record netc
    wrote is a ValueError (netc run turns it into a message), never another exception."""
    for props in ({METADATA_PREPROCESS: json.dumps(value)}, {METADATA_LABELS: json.dumps(value)},
                  {METADATA_PREPROCESS: "{not json"}):
        try:
            from_metadata(props)
        except ValueError:
            pass


# --- what the tester found (breaker 13) --------------------------------------------------------


def located(path: Path) -> list[tuple[str, int, int, str, tuple[str, ...]]]:
    """Every error of a spec that fails: (code, line, column, message, hints), by code and
    position."""
    with pytest.raises(NetcError) as e:
        pipeline.check_file(path)
    return sorted((d.code, d.span.line, d.span.col, d.message, d.hints)
                  for d in e.value.diagnostics.errors)


def quiet_errors(path: Path) -> list[tuple[str, int, int, str, tuple[str, ...]]]:
    """`located`, with every warning (a RuntimeWarning of numpy's) an error."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return located(path)


def test_deep_json_in_the_metadata_is_a_value_error():
    """Deeply nested JSON made json.loads raise RecursionError; the strings are bounded before
    they are parsed at all."""
    deep = "[" * 100_000 + "]" * 100_000
    for key in (METADATA_PREPROCESS, METADATA_LABELS):
        with pytest.raises(ValueError, match="nested|longer"):
            from_metadata({key: deep})
        nested = "[" * 5000 + "]" * 5000  # short enough to parse: its depth is the fault
        with pytest.raises(ValueError):
            from_metadata({key: nested})
    record = to_metadata(Preprocess("image"), None)[METADATA_PREPROCESS]
    with pytest.raises(ValueError, match="characters long"):
        from_metadata({METADATA_PREPROCESS: record[:-1] + " " * (1 << 20) + "}"})
    from netc.images import MAX_LABELS_JSON

    with pytest.raises(ValueError, match=f"is {MAX_LABELS_JSON + 2:,} characters long"):
        from_metadata({METADATA_LABELS: "[" + " " * MAX_LABELS_JSON + "]"})


@pytest.mark.parametrize("extra, where, says", [
    ("preprocess: {scale: 1e308}", (5, 21), "255 × scale"),
    ("preprocess: {scale: 1e37}", (5, 21), "255 × scale"),
    ("preprocess: {scale: 1e-300}", (5, 21), "float32"),
    ("preprocess: {mean: [0, 1e30, 0], std: [1, 1e-10, 1]}", (5, 43), "channel 1"),
    ("preprocess: {std: [1, 1e-50, 1]}", (5, 23), "float32"),
    ("preprocess: {std: [1, 1, 1e39]}", (5, 26), "float32"),
    ("preprocess: {mean: [0, 0, 1e39]}", (5, 27), "float32"),
    ("preprocess: {mean: [0, 0, 3e38], std: [1, 1, 3]}", (5, 27), "float32"),
])
def test_values_past_float32_are_e105(tmp_path, extra, where, says):
    """scale, mean and std whose use overflows float32 (or makes a divisor 0 in it) are E105
    at the value, with the bound; numpy warns of nothing."""
    [(code, line, col, text, hints)] = quiet_errors(spec(tmp_path, extra))
    assert code == "E105" and (line, col) == where and says in text, text
    assert "1e+38" in text or "1.2e-38" in text, text
    assert hints


@pytest.mark.parametrize("record", [
    {"input": "x", "scale": 1e308},
    {"input": "x", "mean": [0, 1e30, 0], "std": [1, 1e-10, 1]},
    {"input": "x", "std": [1, 1e-50, 1]},
    {"input": "x", "mean": [0, 0, 1e39]},
    {"input": "x", "mean": [0, 0, 10 ** 400]},
    {"input": "x", "scale": 10 ** 400},
    {"input": "x", "resize": [32768]},
    {"input": "x", "resize": [20000, 20000], "crop": [16, 16]},
])
def test_values_past_float32_in_the_metadata_are_a_value_error(record):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError):
            from_metadata({METADATA_PREPROCESS: json.dumps(record)})


@pytest.mark.parametrize("extra, where, says", [
    ("preprocess: {mean: [.nan, 0, 0]}", (5, 21), "mean[0] must be a finite number, not .nan"),
    ("preprocess: {mean: [0, .inf, 0]}", (5, 24), "mean[1] must be a finite number, not .inf"),
    ("preprocess: {std: [1, 1, -.inf]}", (5, 26), "std[2] must be a finite number, not -.inf"),
    ("preprocess: {mean: [0, a, 0]}", (5, 24), "mean[1] must be a number, not the string 'a'"),
])
def test_a_mean_that_is_not_finite_says_so_at_the_value(tmp_path, extra, where, says):
    [(code, line, col, text, _)] = located(spec(tmp_path, extra))
    assert (line, col) == where and says in text, text
    assert "not a list" not in text


def test_e118_hint_follows_where_the_labels_come_from(tmp_path):
    """`labels: imagenet` has no file; a short file is still a file; a long list a list."""
    [(_, _, _, _, hints)] = located(spec(tmp_path, "labels: imagenet"))
    assert not any("labels file" in h for h in hints), hints
    assert any("`labels: imagenet` names the 1,000 ImageNet classes" in h for h in hints)
    (tmp_path / "two.txt").write_text("cat\ndog\n", encoding="utf-8")
    [(_, _, _, text, hints)] = located(spec(tmp_path, "labels: two.txt"))
    assert "labels name 2 classes" in text
    assert any("labels file 'two.txt' has one name a line" in h and "3 lines" in h
               for h in hints), hints
    many = ", ".join(f"c{i}" for i in range(60))
    [(_, _, _, _, hints)] = located(spec(tmp_path, f"labels: [{many}]"))
    assert hints == ("one name per output, in order",), hints


def test_labels_in_the_metadata_are_bounded():
    from netc.images import MAX_LABEL, MAX_LABELS

    with pytest.raises(ValueError, match=f"names 200,000 classes, more than netc reads "
                                         f"\\({MAX_LABELS:,}\\)"):
        from_metadata({METADATA_LABELS: json.dumps(["a"] * 200_000)})
    with pytest.raises(ValueError, match=f"name 2 is 10,000 characters long, more than "
                                         f"{MAX_LABEL}"):
        from_metadata({METADATA_LABELS: json.dumps(["a", "b" * 10_000])})
    with pytest.raises(ValueError, match="not a list of names"):
        from_metadata({METADATA_LABELS: json.dumps(["a", 3])})
    assert from_metadata({METADATA_LABELS: json.dumps(["a" * MAX_LABEL] * 3)})[1] == \
        ("a" * MAX_LABEL,) * 3


def test_every_independent_preprocess_error_is_reported(tmp_path):
    """A bad colour hides nothing; an error in mean does not hide the crop's size."""
    found = located(spec(tmp_path, "preprocess: {color: cmyk, mean: [1], scale: 0, crop: 15}"))
    assert [(code, col) for code, _, col, _, _ in found] == \
        [("E105", 21), ("E105", 45), ("E117", 33), ("E117", 54)], found
    found = located(spec(tmp_path, "preprocess: {mean: [a, 0, 0], crop: 15}"))
    assert [(code, col) for code, _, col, _, _ in found] == [("E103", 21), ("E117", 37)], found
    found = located(spec(tmp_path, "preprocess: {interpolation: cubic, std: [0, 1, 1], "
                                   "resize: [16, 15]}"))
    assert [code for code, *_ in found] == ["E105", "E105", "E117"], found


@pytest.mark.parametrize("extra, fragment", [
    ("preprocess: {resize: 1}", "no image comes out 16×16"),
    ("preprocess: {resize: 20}", "no image comes out 16×16"),
])
def test_a_shorter_side_resize_without_crop_must_be_the_input_side(tmp_path, extra, fragment):
    [(code, line, col, text, hints)] = located(spec(tmp_path, extra))
    assert (code, line, col) == ("E117", 5, 22) and fragment in text, text
    assert any("resize: 16" in h for h in hints) and any("crop: 16" in h for h in hints)
    pipeline.check_file(spec(tmp_path, "preprocess: {resize: 16}"))  # square images fit


@pytest.mark.parametrize("extra, col", [
    ("preprocess: {resize: 32768, crop: 16}", 22),
    ("preprocess: {resize: 11586, crop: 16}", 22),
    ("preprocess: {resize: [16384, 16384], crop: 16}", 22),
])
def test_a_resize_past_the_pixel_limit_is_e105(tmp_path, extra, col):
    """No image could be processed: the resize alone makes more pixels than netc handles."""
    from netc.images import MAX_PIXELS

    [(code, line, c, text, hints)] = located(spec(tmp_path, extra))
    assert (code, line, c) == ("E105", 5, col) and f"{MAX_PIXELS:,}" in text, text
    assert any("resize: 11585 is the largest square" in h for h in hints), hints
    assert pipeline.check_file(spec(tmp_path, "preprocess: {resize: 11585, crop: 16}"))


def test_gaussian_of_a_tiny_sigma_is_finite():
    """An even kernel's taps are ±0.5 from the centre: (0.5 / 1e-300)² overflowed and the
    kernel was NaN. A sigma this small puts all the weight on the taps nearest the centre."""
    import warnings

    import numpy as np

    from netc.layers.base import gaussian_kernel

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for sigma in (1e-300, 5e-324, 1e-160, 1e-20, 0.01):
            for kh, kw in ((2, 2), (3, 3), (2, 3), (4, 1), (1, 1), (6, 6)):
                k = gaussian_kernel(sigma, kh, kw)
                assert np.isfinite(k).all() and k.sum() == pytest.approx(1), (sigma, kh, kw)
                nearest = k == k.max()
                assert nearest.sum() == (2 - kh % 2) * (2 - kw % 2)
                np.testing.assert_array_equal(k[~nearest], 0)


def test_gaussian_spec_with_a_tiny_sigma_compiles_without_nan(tmp_path):
    import warnings

    import numpy as np
    import onnx

    import netc

    path = tmp_path / "g.yaml"
    path.write_text("netc: 1\nname: g\ninputs:\n  x: [1, 3, 8, 8]\nlayers:\n"
                    "  - conv: {filters: 3, kernel: 2, groups: 3, init: gaussian(1e-300)}\n",
                    encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = netc.compile_spec(str(path))
    [w] = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer
           if t.name.endswith("weight")]
    assert np.isfinite(w).all() and np.allclose(w, 0.25)


@pytest.mark.parametrize("init", ["gaussian(1_0)", "normal(0_01)", "uniform(1_0)",
                                  "constant(1_0)"])
def test_initialiser_numbers_have_no_underscores(tmp_path, init):
    path = tmp_path / "u.yaml"
    path.write_text("netc: 1\nname: u\ninputs:\n  x: [1, 3, 8, 8]\nlayers:\n"
                    f"  - conv: {{filters: 3, kernel: 3, groups: 3, init: {init}}}\n",
                    encoding="utf-8")
    [(code, line, _, text, hints)] = located(path)
    assert code == "E105" and line == 6 and "underscore" in text, text
