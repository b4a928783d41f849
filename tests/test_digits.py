"""examples/digits end to end: LeNet-5 trained on real handwritten digits through netc.torch,
compiled with the trained weights, run in ONNX Runtime on images.

The example runs once, as a user runs it (`python examples/digits/train.py --out DIR`, a
subprocess). The test then checks it with its own means, not the script's word:

- the 450 held-out scans are written as PNG files and classified by `netc run --image FOLDER
  --output logits.npy`, the path a user takes: the accuracy of those logits is >= 98 % and is
  the one the script printed (so training and inference saw the same inputs);
- the PyTorch model (netc.torch with the saved safetensors, eval mode) on the same files,
  decoded and preprocessed by netc.images, predicts the same digit for every image, and its
  logits equal ONNX Runtime's within 1e-5 (relative, as tests/test_torch.py);
- each shipped `digit_<d>.png` is the scan it says (pixels from scikit-learn's data), is held
  out, and `netc run MODEL --image PNG` prints `d` first.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the example trains through netc.torch "
                            "(pip install torch)")
pytest.importorskip("sklearn", reason="the example's data are scikit-learn's bundled digits "
                    "(pip install scikit-learn)")
import safetensors.torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import netc  # noqa: E402
import netc.torch  # noqa: E402
from netc.cli import main as netc_main  # noqa: E402
from netc.images import open_image, preprocess_image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digits"
TRAIN = EXAMPLE / "train.py"
SPEC = ROOT / "specs" / "lenet5.yaml"
THRESHOLD = 98.0  # percent of the 450 test scans (issue 13); the default seed gives 99.56 %


def _example_module():
    """examples/digits/train.py as a module (its split and the shipped scans' indices), under
    a name no other module has."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("netc_example_digits_train", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = _example_module()


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """(folder, standard output) of one run of the example with its defaults."""
    out = tmp_path_factory.mktemp("digits")
    done = subprocess.run([sys.executable, str(TRAIN), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


@pytest.fixture(scope="module")
def scans():
    """(images as uint8 8 × 8, digits): scikit-learn's scans, value · 255/16 rounded
    (computed here, not by the example)."""
    data = load_digits()
    return np.floor(data.images * 255 / 16 + 0.5).astype(np.uint8), data.target


def printed_predictions(text: str) -> dict[str, list[tuple[float, str]]]:
    """`netc run --image` output -> {file: [(percent, label), ...] in the order printed}."""
    found, current = {}, None
    for line in text.splitlines():
        m = re.fullmatch(r"\s+([0-9.]+)%\s+(\S.*)", line)
        if m and current is not None:
            found[current].append((float(m.group(1)), m.group(2)))
        elif line and not line[0].isspace() and not line.startswith("saved "):
            current = line
            found[current] = []
    return found


def test_split_is_fixed_and_stratified(scans):
    _, digits = scans
    train_idx, test_idx = train.split(digits)
    assert len(np.intersect1d(train_idx, test_idx)) == 0
    assert len(train_idx) + len(test_idx) == len(digits) == 1797
    assert len(test_idx) == 450
    # a quarter of each digit, rounded
    for d in range(10):
        assert (digits[test_idx] == d).sum() == round((digits == d).sum() / 4)
    again = train.split(digits)
    assert np.array_equal(again[1], test_idx)


def test_example_trains_to_98_percent_and_onnx_agrees_with_torch(example, scans, tmp_path,
                                                                 capsys):
    out, stdout = example
    model, weights = out / "lenet5_digits.onnx", out / "lenet5_digits.safetensors"
    assert model.is_file() and weights.is_file()
    images, digits = scans
    _, test_idx = train.split(digits)
    # the held-out scans as PNG files, named so that sorted order is the split's order
    folder = tmp_path / "test"
    folder.mkdir()
    from PIL import Image

    files = []
    for i in test_idx:
        files.append(folder / f"{i:04d}_{digits[i]}.png")
        Image.fromarray(images[i]).save(files[-1])
    logits_file = tmp_path / "logits.npy"
    assert netc_main(["run", str(model), "--image", str(folder), "--top", "1",
                      "--output", str(logits_file)]) == 0
    printed = printed_predictions(capsys.readouterr().out)
    onnx_logits = np.load(logits_file)
    assert onnx_logits.shape == (450, 10)
    predicted = onnx_logits.argmax(1)
    # netc run printed, per file, the label of the row it saved
    assert [p[0][1] for p in printed.values()] == [str(d) for d in predicted]
    correct = int((predicted == digits[test_idx]).sum())
    accuracy = 100 * correct / len(test_idx)
    assert accuracy >= THRESHOLD, f"{correct} of 450 right"
    # the script measured the same model on the same inputs
    m = re.search(r"test accuracy \(ONNX Runtime, lenet5_digits.onnx\): ([0-9.]+) % "
                  r"\((\d+) of (\d+)\)", stdout)
    assert m, stdout
    assert (int(m.group(2)), int(m.group(3))) == (correct, 450)

    # PyTorch, with the saved weights, on the same files
    graph = netc.check_spec(SPEC)
    net = netc.torch.build(graph)
    net.load_state_dict(safetensors.torch.load_file(str(weights)))
    net.train(False)
    x = np.stack([preprocess_image(open_image(str(f)), graph.preprocess) for f in files])
    with torch.no_grad():
        torch_logits = net(torch.from_numpy(x)).numpy()
    assert np.array_equal(torch_logits.argmax(1), predicted)
    error = np.abs(torch_logits - onnx_logits).max() / np.abs(onnx_logits).max()
    assert error < 1e-5
    assert "predict the same digit for 450 of 450 test images" in stdout


@pytest.mark.parametrize("digit", sorted(train.EXAMPLES))
def test_shipped_png_is_a_held_out_scan_and_netc_run_names_it(example, scans, digit, capsys):
    out, _ = example
    images, digits = scans
    index = train.EXAMPLES[digit]
    png = EXAMPLE / f"digit_{digit}.png"
    image = open_image(str(png))
    assert image.mode == "L" and image.size == (8, 8)
    assert np.array_equal(np.asarray(image), images[index])
    assert digits[index] == digit
    assert index in train.split(digits)[1]  # never trained on
    assert netc_main(["run", str(out / "lenet5_digits.onnx"), "--image", str(png)]) == 0
    [(file, top)] = printed_predictions(capsys.readouterr().out).items()
    assert file == str(png)
    assert len(top) == 5 and top[0][1] == str(digit), top
    assert top[0][0] > 50


def test_write_examples_writes_the_shipped_pixels(scans, tmp_path):
    images, digits = scans
    written = train.write_examples(tmp_path, *train.load_scans(), train.split(digits)[1])
    assert [p.name for p in written] == [f"digit_{d}.png" for d in sorted(train.EXAMPLES)]
    for path in written:
        assert np.array_equal(np.asarray(open_image(str(path))),
                              np.asarray(open_image(str(EXAMPLE / path.name))))


def test_shipped_pngs_are_the_examples():
    """No stray PNG beside the script, and none missing: the README lists these."""
    assert sorted(p.name for p in EXAMPLE.glob("*.png")) == sorted(
        f"digit_{d}.png" for d in train.EXAMPLES)


def test_help():
    done = subprocess.run([sys.executable, str(TRAIN), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    for option in ("--out", "--epochs", "--seed", "--threads"):
        assert option in done.stdout


def test_bad_option_is_a_usage_error():
    done = subprocess.run([sys.executable, str(TRAIN), "--epochs", "0"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "--epochs must be 1 or more" in done.stderr
