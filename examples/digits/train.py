"""Train the LeNet-5 spec on real handwritten digits, compile it with the trained weights, and
evaluate the ONNX model in ONNX Runtime; offline, in seconds on two CPU cores.

    python examples/digits/train.py --out DIR

1. The data: scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten
   Digits" test set (`sklearn.datasets.load_digits`: 1,797 scans of 8 × 8 pixels, values
   0..16, no download). Each scan becomes an 8 × 8 uint8 grayscale PIL image (value · 255/16,
   rounded), and the image becomes the network's 1 × 32 × 32 input through
   `netc.images.preprocess_image` with the preprocessing `specs/lenet5.yaml` declares
   (grayscale, bilinear resize to 32 × 32, × 1/255): the function `netc run --image` uses, so
   a PNG of a scan run through `netc run` is the very input the network was trained and
   tested on.
2. A fixed split: a quarter of each digit's scans (450 in all) are held out for testing,
   chosen by numpy's legacy RandomState(0), whose stream numpy keeps the same in every
   version; the other 1,347 train.
3. Training: `netc.torch.build(spec, seed=SEED)` (netc's initial weights for that seed), Adam
   with its learning rate decaying to 0 along a cosine, cross-entropy with label smoothing,
   shuffled mini-batches. Each training image is shifted by up to 2 pixels (of 32) in each
   direction, at random, with zeros (no ink: the scans' background) coming in at the edge: the
   network sees the same preprocessing, and learns that a digit a pixel off is the same digit
   (measured: 99.11 to 99.56 % test accuracy with seeds 0 to 9; 98.44 to 98.89 % with
   `--shift 0`, seeds 0 to 4). The test images are never shifted. Seeded, and deterministic
   for a given machine and thread count (`--threads`, default 1: a batch of 32 LeNet-5 images
   is too little work to share, and two threads on two cores that other processes use too
   wait for each other: an epoch took 0.4 to 6 s with two threads on this project's shared
   2-core machine, 0.45 to 0.8 s with one).
4. Saved: `DIR/lenet5_digits.safetensors` (the state_dict: its keys are netc's weight names),
   then `netc compile specs/lenet5.yaml --weights ... -o DIR/lenet5_digits.onnx`.
5. Evaluated: the ONNX model in ONNX Runtime on the 450 test images (accuracy, printed as a
   percentage), and compared with the PyTorch model: the predicted class (argmax) must be
   the same for every test image, or the script exits with status 1.

The shipped PNGs beside this script (`digit_<d>.png`, see EXAMPLES) are scans from the test
split, written by `--write-examples`; `netc run DIR/lenet5_digits.onnx --image
examples/digits/digit_7.png` classifies one.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent.parent / "specs" / "lenet5.yaml"
SPLIT_SEED = 0  # the train/test split is fixed: the shipped PNGs must stay in the test split
TEST_FRACTION = 0.25
# the shipped held-out scans: digit -> index in load_digits(), the first scan of each of these
# digits in the test split; `--write-examples` writes them
EXAMPLES = {0: 36, 2: 22, 3: 3, 4: 144, 7: 7}
WEIGHTS_FILE = "lenet5_digits.safetensors"
MODEL_FILE = "lenet5_digits.onnx"


def scan_image(scan):
    """One 8 × 8 scan (values 0..16) as a PIL grayscale ("L") image: value · 255/16, rounded
    (to the nearest integer; 8 · 255/16 = 127.5 is the only half and goes to 128)."""
    from PIL import Image

    pixels = np.floor(np.asarray(scan, dtype=np.float64) * 255 / 16 + 0.5).astype(np.uint8)
    return Image.fromarray(pixels)


def load_scans():
    """(scans, digits): the 1,797 scans, 1797 × 8 × 8 float64 in 0..16, and their digits
    (int64, 0..9), from scikit-learn's bundled copy (no download)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images, data.target.astype(np.int64)


def split(digits) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices into the scans: TEST_FRACTION of each digit's scans, rounded, are
    held out, picked by RandomState(SPLIT_SEED) (numpy keeps the legacy stream fixed across
    versions, so the split is the same everywhere). Both sorted."""
    rng = np.random.RandomState(SPLIT_SEED)
    test = []
    for d in range(10):
        members = np.flatnonzero(digits == d)
        test.extend(rng.permutation(members)[:round(TEST_FRACTION * len(members))])
    test = np.sort(np.asarray(test))
    train = np.setdiff1d(np.arange(len(digits)), test)
    return train, test


def inputs(scans, preprocess) -> np.ndarray:
    """The network's inputs, N × 1 × 32 × 32 float32: each scan as an 8 × 8 uint8 image, made
    into the input as `netc run --image` makes a PNG of it (`netc.images.preprocess_image`)."""
    from netc.images import preprocess_image

    return np.stack([preprocess_image(scan_image(s), preprocess) for s in scans])


def shifted(x, most: int, generator):
    """Each image of `x` (N × C × H × W) moved by a random whole number of pixels from -most to
    most, down and right independently, with zeros coming in at the edges (a random crop of
    the zero-padded images)."""
    import torch

    if most == 0:
        return x
    n, _, height, width = x.shape
    padded = torch.nn.functional.pad(x, (most, most, most, most))
    top, left = torch.randint(0, 2 * most + 1, (2, n), generator=generator).tolist()
    return torch.stack([padded[i, :, t:t + height, l:l + width]
                        for i, (t, l) in enumerate(zip(top, left))])


def write_examples(folder: Path, scans, digits, test) -> list[Path]:
    """Write the EXAMPLES scans as `digit_<d>.png` (8 × 8 grayscale) into `folder`."""
    held_out = set(test.tolist())
    written = []
    for digit, index in sorted(EXAMPLES.items()):
        if digits[index] != digit or index not in held_out:
            raise SystemExit(f"EXAMPLES: scan {index} is a {digits[index]}"
                             f"{'' if index in held_out else ' in the training split'}, "
                             f"not a held-out {digit}")
        path = folder / f"digit_{digit}.png"
        scan_image(scans[index]).save(path)
        written.append(path)
    return written


def compile_onnx(weights: Path, model: Path) -> None:
    """`netc compile SPEC --weights WEIGHTS -o MODEL`, through netc's command line."""
    from netc.cli import main as netc_main

    status = netc_main(["compile", str(SPEC), "--weights", str(weights), "-o", str(model)])
    if status != 0:
        raise SystemExit(f"netc compile failed (status {status})")


def onnx_logits(model: Path, x: np.ndarray, threads: int) -> np.ndarray:
    """The ONNX model's output on `x` (N × 1 × 32 × 32), N × 10, in ONNX Runtime on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    [name] = [i.name for i in session.get_inputs()]
    return session.run(None, {name: x})[0]


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Train specs/lenet5.yaml through netc.torch on scikit-learn's handwritten "
        "digits (1,797 real 8x8 scans, no download), save the weights (safetensors), compile "
        "them with `netc compile --weights`, and print the ONNX model's accuracy on the "
        "450 held-out scans (ONNX Runtime), checking that it predicts what PyTorch predicts.")
    p.add_argument("--out", type=Path, default=Path("digits"), metavar="DIR",
                   help=f"folder for {WEIGHTS_FILE} and {MODEL_FILE} (made if missing; "
                   "default: digits)")
    p.add_argument("--epochs", type=int, default=15, metavar="N",
                   help="passes over the 1,347 training scans (default 15)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="scans per Adam step (default 32)")
    p.add_argument("--lr", type=float, default=2e-3, metavar="RATE",
                   help="Adam's initial learning rate, decaying to 0 along a cosine "
                   "(default 0.002)")
    p.add_argument("--shift", type=int, default=2, metavar="PIXELS",
                   help="shift each training image by up to this many pixels (of 32) in each "
                   "direction, at random (default 2; 0: no shifts)")
    p.add_argument("--label-smoothing", type=float, default=0.1, metavar="EPS",
                   help="label smoothing of the cross-entropy (default 0.1)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the initial weights (netc's, as `netc compile --seed`) and "
                   "of the shuffling (default 0); the train/test split does not depend on it")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for PyTorch and ONNX Runtime (default 1: the batches are "
                   "too small to share; results are reproducible for a given machine and "
                   "thread count)")
    p.add_argument("--write-examples", action="store_true",
                   help=f"also (re)write the held-out scans shipped beside this script "
                   f"({', '.join(f'digit_{d}.png' for d in sorted(EXAMPLES))})")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be 1 or more")
    if not 0 < args.lr < 1e3:  # (inf and nan too: training would only make NaN weights)
        p.error("--lr must be a positive number below 1000")
    if args.threads > (os.cpu_count() or 1) * 4:
        p.error(f"--threads must be at most {(os.cpu_count() or 1) * 4} (4 × the CPUs)")
    for name in (WEIGHTS_FILE, MODEL_FILE):  # checked before training, not after it
        if args.out.exists() and not args.out.is_dir():
            p.error(f"--out {args.out} is a file: give a folder")
        if (args.out / name).is_dir():
            p.error(f"--out {args.out}: {args.out / name} is a folder, where the example "
                    f"writes a file")
    if not 0 <= args.shift < 16:
        p.error("--shift must be from 0 to 15 pixels")
    if not 0 <= args.label_smoothing < 1:  # (nan fails this too)
        p.error("--label-smoothing must be from 0 to 1 (1 excluded)")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the example; returns what it measured: `accuracy` (percent, ONNX Runtime on the test
    split), `correct`, `tested`, `agree` (test images where the ONNX model's and PyTorch's
    argmax are the same), `max_logit_difference`, `weights` and `model` (paths), `seconds`."""
    args = parse_args(argv)
    import safetensors.torch
    import torch

    import netc
    import netc.torch

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)  # costs nothing here, on the CPU
    graph = netc.check_spec(SPEC)
    if graph.preprocess is None or graph.labels is None:
        raise SystemExit(f"{SPEC} declares no preprocess: or labels:")

    scans, digits = load_scans()
    train, test = split(digits)
    x = torch.from_numpy(inputs(scans, graph.preprocess))
    y = torch.from_numpy(digits)
    print(f"data: {len(scans):,} scans of 8x8 (scikit-learn's digits) -> "
          f"{'x'.join(map(str, x.shape[1:]))} inputs; {len(train):,} train, {len(test):,} test")
    if args.write_examples:
        for path in write_examples(HERE, scans, digits, test):
            print(f"wrote {path}")

    model = netc.torch.build(graph, seed=args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    batches = (len(train) + args.batch_size - 1) // args.batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs * batches)
    shuffle = torch.Generator().manual_seed(args.seed)
    x_train, y_train = x[train], y[train]
    for epoch in range(1, args.epochs + 1):
        began = time.perf_counter()
        model.train()
        total_loss, correct = 0.0, 0
        for batch in torch.randperm(len(train), generator=shuffle).split(args.batch_size):
            logits = model(shifted(x_train[batch], args.shift, shuffle))
            loss = torch.nn.functional.cross_entropy(logits, y_train[batch],
                                                     label_smoothing=args.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(1) == y_train[batch]).sum())
        if not math.isfinite(total_loss):
            raise SystemExit(f"train.py: the loss is {total_loss} at epoch {epoch}: training "
                             "diverged (lower --lr)")
        print(f"epoch {epoch:>2}/{args.epochs}  loss {total_loss / len(train):.4f}  "
              f"train accuracy {100 * correct / len(train):6.2f} %  "
              f"({time.perf_counter() - began:.2f} s)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    weights, onnx_model = args.out / WEIGHTS_FILE, args.out / MODEL_FILE
    safetensors.torch.save_file(model.state_dict(), str(weights))
    print(f"wrote {weights}")
    compile_onnx(weights, onnx_model)

    x_test = x[test].numpy()
    model.train(False)
    with torch.no_grad():
        torch_logits = model(x[test]).numpy()
    logits = onnx_logits(onnx_model, x_test, args.threads)
    predicted, torch_predicted = logits.argmax(1), torch_logits.argmax(1)
    correct = int((predicted == digits[test]).sum())
    agree = int((predicted == torch_predicted).sum())
    result = {
        "accuracy": 100 * correct / len(test), "correct": correct, "tested": len(test),
        "agree": agree, "max_logit_difference": float(np.abs(logits - torch_logits).max()),
        "weights": weights, "model": onnx_model, "seconds": time.perf_counter() - start,
    }
    print(f"ONNX Runtime and PyTorch predict the same digit for {agree} of {len(test)} test "
          f"images (largest logit difference {result['max_logit_difference']:.1e})")
    print(f"test accuracy (ONNX Runtime, {MODEL_FILE}): {result['accuracy']:.2f} % "
          f"({correct} of {len(test)})")
    print(f"done in {result['seconds']:.1f} s; try: netc run {onnx_model} --image "
          f"{os.path.relpath(HERE / 'digit_7.png')}")
    return result


if __name__ == "__main__":
    found = main()
    same = found["agree"] == found["tested"] and math.isfinite(found["max_logit_difference"])
    sys.exit(0 if same else 1)
