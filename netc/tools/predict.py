"""`netc run MODEL --image FILE_OR_DIR... [--top K] [--output FILE]`: images in, labels out.

The model is a spec (compiled in memory, as `netc run` does) or an .onnx file. Its
preprocessing and class names come from the spec (`preprocess:`, `labels:`) or, for an .onnx
file, from the metadata_props netc writes into every model it compiles (`netc.preprocess`,
`netc.labels`: images.to_metadata). Each image is decoded by Pillow and made into the input
by images.preprocess_image, exactly as torchvision's evaluation transforms make it; a model
compiled with --uint8-input (its input uint8 N×H×W×C, `netc.input` = `uint8-nhwc`) gets the
resized and cropped pixels themselves (images.image_pixels) and normalises them inside.

Files: each --image is a file or a folder. A folder contributes its image files (by
extension, IMAGE_EXTENSIONS, case-insensitive), sorted by name, not its subfolders and not
its hidden files (`.name`: editors' and macOS's `._photo.jpg` companions are not images). A
file named explicitly that cannot be read or used is an error (E605, E602: exit 1); a file
in a folder that cannot is skipped with a warning (W601) each, and the run goes on.

Batches: a model whose batch is symbolic runs up to `--batch` images at a time (default
BATCH); a model whose batch is fixed at B runs B at a time, the last batch filled up with
copies of its last image whose outputs are dropped. That is exact: inference layers (a
batchnorm uses its running statistics) compute each image of a batch alone.

Output: for each image, its file and the top K classes (label, or the class index without
labels) with probabilities: the softmax of the first output's row, computed in float64, or
the row itself when the model ends in a softmax, so that it is not applied twice. That is
told from the outputs (`is_distribution`: rows of values in [0, 1] summing to 1), which holds
for a spec's `- softmax` and any .onnx model's Softmax alike. `--output` writes the raw
outputs (.npy: the first output, one row per image in the order printed; .npz: every output
by name), or a table (.csv, .jsonl: file, top-K labels, indices and probabilities),
crash-safely (files.write_atomic).

Text from outside (file names, labels from a stranger's model) is shown on the terminal with
the characters that would break a line or steer the terminal escaped (`_shown`), and a label
longer than LABEL_SHOWN characters cut with `…`. Text that is not Unicode (a file name of
bytes that are not UTF-8, which Python holds as lone surrogates `\\udc80`..`\\udcff`, and a lone
surrogate in a label) is written `\\xff` (a file name's byte) or `\\ud800` (`_text`): in the
terminal, and in the .csv and .jsonl tables alike, which are UTF-8 and could not hold it.
A table otherwise keeps the text whole (a CSV field with a line break or a comma quoted).

Images whose sizes differ (a model whose H and W are symbolic, and no resize and crop that make
every image one size) run in batches of equal sizes, in the order given.

Dense outputs (segmentation): a first output N×classes×H×W is a score per class per pixel
(classes on axis 1, as PyTorch's segmentation models give them) when the model names its
classes (`labels:`, or the .onnx's netc.labels record: check.py's E118 makes them one per
class) or when --masks asks for its class maps; without either it is a feature map, and only
summarised (min, mean, max). Each pixel's class is the argmax over axis 1 (ties: the lower
index, as numpy's and torch's argmax); the table shows the top K classes by the share of the
image's pixels they cover, most first (ties: the lower index), only classes that cover at
least one pixel. The .csv and .jsonl tables hold those shares (`share_1`.., `shares`) where a
classifier's hold probabilities.

`--masks DIR` writes each image's class map as `DIR/<image stem>.png` (`mask_names`: a stem an
earlier image has gets `-2`, `-3`...): an 8-bit palette PNG at the output's size, pixel value
= class index, coloured with Pascal VOC's palette (`voc_palette`) so that any viewer shows the
classes apart, and marked as netc's by a `netc.mask` text chunk naming its image. DIR is
created; the destinations are checked before the model is compiled (E603: DIR is a file, a
folder stands at a PNG's name, a PNG would replace one of the images, or any other file that
is not a class map netc wrote: only those, from an earlier run, are replaced). More than 256
classes do not fit 8 bits, and a classifier has no class map: usage errors (exit 2).

A spec without `preprocess:` is refused (E606) from its checked graph, before it is compiled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..errors import Diagnostic, NetcError, fail

# the extensions of the formats Pillow reads that cameras, browsers and datasets use
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm")
BATCH = 32  # images per run of a model whose batch is symbolic, unless --batch says
TABLES = (".csv", ".jsonl")
ARRAYS = (".npy", ".npz")
UINT8_NHWC = "uint8-nhwc"  # emit.py's `netc.input` for a --uint8-input model
METADATA_INPUT = "netc.input"
EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
LABEL_SHOWN = 64  # characters of a label on the terminal (escapes counted); longer ones cut
MASK_CLASSES = 256  # classes an 8-bit palette PNG holds (values 0..255)
MAX_STEM = 150  # bytes of a mask's file name stem: room for write_atomic's temporary name
MASK_MARK = "netc.mask"  # the PNG text chunk that marks a class map as netc's (its image)


@dataclass(frozen=True)
class Target:
    """What a model takes from an image and what it gives back.

    `shape` is the declared input shape (N×C×H×W floats, or N×H×W×C uint8 with `pixels`),
    symbolic dimensions as names; `fixed` its batch when fixed (else None). `classes` is the
    number of classes on axis 1 of the first output `output`: N×classes, or, when `dense`,
    N×classes×H×W (a score per class per pixel: the model names its classes, or --masks asks
    for its class maps); None otherwise (then there are no top classes to print)."""

    input: str
    shape: tuple
    dtype: np.dtype
    pixels: bool
    preprocess: object  # images.Preprocess
    labels: tuple[str, ...] | None
    output: str
    output_shape: tuple
    classes: int | None
    fixed: int | None
    dense: bool = False

    def size(self) -> tuple:
        """The (C, H, W) or (H, W, C) of one image as the input declares it (names for
        symbolic sizes)."""
        return tuple(self.shape[1:])


def run_images(args) -> int:
    """`netc run` with --image (or --layers without --maps): returns the exit code; raises
    NetcError for the user's mistakes (E602 an image that does not fit, E603 a --masks
    folder or class map that cannot be written, E604 a model's malformed metadata or NaN
    scores, E605 an unreadable image, E606 no declared preprocessing). (--maps is
    tools/maps.py's.)"""
    if getattr(args, "maps", None) is not None:  # (a folder named: tools/maps.py's)
        return _usage("--maps '' names no folder: give the folder to draw the maps into, e.g. "
                      "--maps maps/")
    if args.layers is not None:
        return _usage("--layers picks the layers of --maps DIR: give --maps too")
    if args.input:
        return _usage("give images with --image or an array with --input, not both")
    masks = getattr(args, "masks", None)
    if masks == "":
        return _usage("--masks '' names no folder: give the folder to write the class maps "
                      "into, e.g. --masks masks/")
    if masks is not None and not args.image:
        return _usage("--masks writes the class map of each image given with --image: give "
                      "them (netc run MODEL --image photo.jpg --masks masks/)")
    output = args.output
    if output == "":
        return _usage("--output '' names no file: give e.g. --output top.csv, or leave "
                      "--output out")
    if output and not output.lower().endswith(ARRAYS + TABLES):
        return _usage(f"with --image, --output writes {', '.join(ARRAYS + TABLES)} files, not "
                      f"'{_shown(output, fs=True)}'")
    files = image_files([p for group in args.image for p in group])
    if masks is not None and os.path.exists(masks) and not os.path.isdir(masks):
        raise fail("E603", f"--masks '{_text(masks, fs=True)}' is a file, not a folder", None,
                   hints=["give a folder for the class maps (created if missing), e.g. "
                          "--masks masks/"])

    # where the class maps go, checked before the model is compiled (E603); created later,
    # once the model is known to give class maps
    mask_files = _mask_destinations(masks, [p for p, _ in files]) if masks is not None else None

    from .. import run

    model, graph = _load_model(args)
    if output:  # every input noted (the spec, its labels, weights, images): refused now,
        from ..files import check_target  # before the model runs and prints (E603)

        check_target(output, os.path.splitext(output)[1].lower())
    spec = graph is not None
    if spec and not args.weights:  # (a surprise otherwise: confident, meaningless classes)
        print(f"netc: note: {_text(args.model, fs=True)} runs with its initial weights (seed "
              f"{args.seed}), so its classes mean nothing yet; give trained ones with "
              "--weights FILE", file=sys.stderr)
    sess = run.session(model, args.provider, graph=graph)
    target = model_target(sess, graph, args.model, masks=masks is not None)
    if masks is not None:
        refused = _masks_refused(target)
        if refused:
            return _usage(refused)
    if output and output.lower().endswith(TABLES) and target.classes is None:
        hints = ["save the outputs themselves: --output FILE.npy (or .npz)"]
        if len(target.output_shape) == 4:
            hints.append("or, if they are a score per class per pixel, name the classes "
                         "(`labels:` in the spec) or give --masks DIR as well")
        raise fail("E602", f"--output {os.path.basename(output)} is a table of the top classes, "
                   f"and output '{target.output}' is {run.dims(target.output_shape)}, not "
                   "N×classes", None, hints=hints)
    if masks is not None:
        _make_folder(masks)
    if target.fixed is not None:
        if args.batch is not None and args.batch != target.fixed:
            raise run.fixed_batch_error(target.input, list(target.shape), f"--batch {args.batch}",
                                        spec)
        chunk = target.fixed
    else:
        chunk = args.batch or BATCH

    outputs = [o.name for o in sess.get_outputs()]
    # the outputs --output saves (.npz: all, .npy: the first), a part per batch
    kept = outputs if output and output.lower().endswith(".npz") else \
        outputs[:1] if output and output.lower().endswith(".npy") else []
    for o in sess.get_outputs():
        problem = not_rows(o) if o.name in kept else None
        if problem:  # (before the images are run)
            raise fail("E602", f"--output {_shown(os.path.basename(output), fs=True)} saves "
                       f"a row per image of output '{_shown(o.name)}', and it is {problem}",
                       None, hints=["save the first output alone: --output FILE.npy"])
    saved: dict[str, list] = {name: [] for name in kept}
    first_of: dict[str, str] = {}  # output -> the first image saved (whose shape the rest take)
    table: list[tuple[str, list, list, str | None]] = []
    decided: list[bool] = []  # [whether the outputs already are probabilities], once known
    skipped = done = 0
    from .bench import Progress

    progress = Progress(prefix="netc run")
    progress.start("images")
    started = time.monotonic()

    def flush(batch: list[tuple[str, np.ndarray, int]]) -> None:
        x = np.stack([a for _, a, _ in batch])
        if len(batch) < chunk and target.fixed is not None:  # fill up a fixed batch
            x = np.concatenate([x, np.repeat(x[-1:], chunk - len(batch), axis=0)])
        results = run.run_model(sess, {target.input: x}, graph, model, args.provider)
        progress.done()  # the results go to standard output, under the bar's line
        for name, value in zip(outputs, results):
            rows = value.shape[0] if value.ndim else 0
            if (name in saved or name == target.output) and rows != len(x):
                raise fail("E604", f"output '{_shown(name)}' has {rows} rows for a batch of "
                           f"{len(x)} image{'s' * (len(x) != 1)}: netc reads a row per image",
                           None, hints=["the model's outputs must keep the batch on their "
                                        "first axis"])
        for name, value in zip(outputs, results):
            if name in saved:
                part = value[:len(batch)]
                if saved[name] and saved[name][0].shape[1:] != part.shape[1:]:
                    raise _not_one_array(output, name, first_of[name], saved[name][0],
                                         batch[0][0], part)
                first_of.setdefault(name, batch[0][0])
                saved[name].append(part)
        first = results[0][:len(batch)]
        if target.classes is not None and not target.dense and not decided:
            # a softmax ends the model when its first rows are probabilities: then they are
            # shown as they are, for every image (decided once, so that all rows agree)
            decided.append(all(is_distribution(row) for row in first))
        for i, (path, _, number) in enumerate(batch):
            if target.classes is None:
                row = first[i]
                values = (f"min {row.min():.4g}  mean {row.mean():.4g}  max {row.max():.4g}"
                          if row.size else "(no values)")
                print(f"{_shown(path, fs=True)}\n  {_shown(target.output)}: "
                      f"{run.dims(row.shape) or 'a scalar'}  {values}")
                continue
            if np.isnan(first[i]).any():  # no ranking to show: say where it went wrong
                raise fail("E604", f"output '{_text(target.output)}' holds NaN for image "
                           f"{_shown(path, fs=True)}: the model's weights or arithmetic are "
                           "not finite", None,
                           hints=["check the weights (`netc weights MODEL -o w.npz` shows "
                                  "them); a spec's --weights file is checked for NaN when "
                                  "compiled"])
            if target.dense:
                classes = pixel_classes(first[i])
                indices, shares = top_shares(classes, target.classes, args.top or 5)
            else:
                indices, shares = top_classes(first[i], args.top or 5, decided[0])
            print(_shown(path, fs=True))
            for index, p in zip(indices, shares):
                print(f"  {p:7.2%}  {_class_name(target, index)}")
            mask = None
            if mask_files is not None:
                mask = mask_files[number]
                write_atomic(mask, mask_png(classes, path))
                print(f"  mask: {_shown(mask, fs=True)}")
            table.append((path, indices, shares, mask))
        sys.stdout.flush()

    from ..files import write_atomic

    pending: list[tuple[str, np.ndarray, int]] = []
    total = len(files)
    for number, (path, explicit) in enumerate(files):
        try:
            x = image_input(path, target)
        except NetcError as e:
            if explicit:
                raise
            skipped += 1
            progress.done()
            print(_skipped(path, e).render(), file=sys.stderr)
        else:
            # a batch is one array: an image of another size (a model whose H and W are
            # symbolic) starts the next batch
            if pending and pending[0][1].shape != x.shape:
                flush(pending)
                pending = []
            pending.append((path, x, number))
        done += 1
        if len(pending) == chunk:
            flush(pending)
            pending = []
        progress.update(lambda: _bar(done, total, time.monotonic() - started))
    if pending:
        flush(pending)
    progress.done()
    if skipped == total:
        raise fail("E605", f"none of the {total} image{'s' * (total != 1)} could be read "
                   "(each is named above)", None,
                   hints=[f"give {', '.join(IMAGE_EXTENSIONS)} files Pillow reads"])
    if skipped:
        print(f"netc run: skipped {skipped} of {total} images (W601 above)", file=sys.stderr)
    if output:
        _write_output(output, saved, table, target, args.top or 5)
    return EXIT_OK


def _shown(text: str, fs: bool = False) -> str:
    """`text` (a file name, a label from a stranger's model) with the characters that would
    break its line or steer the terminal escaped, as diagnostics show them, and what is not
    Unicode escaped as `_text` writes it (`fs`: `text` is a file name)."""
    from ..errors import _visible

    return _visible(_text(text, fs))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(text: str, fs: bool = False) -> str:
    """`text` with its lone surrogates, which no UTF-8 output can hold, escaped: in a file
    name (`fs`), `\\udc80`..`\\udcff` is a byte that was not UTF-8 (Python's surrogateescape,
    os.fsdecode) and is written as that byte, `\\xff`; any other, `\\ud800`. The one form for
    the terminal and the tables: what a table says is what was printed."""
    def escape(m):
        c = ord(m.group())
        return f"\\x{c - 0xdc00:02x}" if fs and 0xdc80 <= c <= 0xdcff else f"\\u{c:04x}"

    return _SURROGATE.sub(escape, text)


def _cut(label: str) -> str:
    """A label as the table of top classes shows it: escaped (`_shown`), and cut with `…`
    at LABEL_SHOWN characters (escapes counted, never cut inside one)."""
    shown = _shown(label)
    if len(shown) <= LABEL_SHOWN:
        return shown
    pieces, width = [], 0
    for c in label:
        piece = _shown(c)
        if width + len(piece) > LABEL_SHOWN - 1:
            break
        pieces.append(piece)
        width += len(piece)
    return "".join(pieces) + "…"


def _usage(message: str) -> int:
    print(f"netc run: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _not_one_array(output: str, name: str, first: str, before: np.ndarray, path: str,
                   after: np.ndarray) -> NetcError:
    """E602: output `name` has another shape for image `path` than for image `first`, so that
    --output cannot make one array of it (a model whose H and W are symbolic)."""
    def dims(a):
        return "×".join(str(d) for d in (1, *a.shape[1:]))

    return fail("E602", f"--output {os.path.basename(output)} saves output '{name}' as one "
                f"array, and it is {dims(before)} for image '{first}' and {dims(after)} for "
                f"image '{path}'", None,
                hints=["declare a resize and a crop in the preprocessing (the spec's "
                       "`preprocess:`) so that every image is one size",
                       "or run the images of each size apart, each with its own --output"])


def _skipped(path: str, error: NetcError) -> Diagnostic:
    """W601 for an image of a folder that could not be used: the reason is the error's."""
    first = error.diagnostics.items[0]
    return Diagnostic("W601", f"skipped: {first.message}", None, "warning", hints=first.hints)


def _bar(done: int, total: int, elapsed: float, width: int = 24) -> str:
    """`[#########...............] 37/100 images, 12.3/s`."""
    filled = width * done // max(total, 1)
    rate = f", {done / elapsed:.1f}/s" if elapsed > 0 else ""
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}{rate}"


# --- which files ------------------------------------------------------------------------------


def image_files(paths: list[str]) -> list[tuple[str, bool]]:
    """(path, named explicitly) of each image to run: a file as given; a folder's image files
    (IMAGE_EXTENSIONS, not hidden, not in subfolders) sorted by name. Raises E605 for a path
    that does not exist and for a folder without image files."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as e:
                raise fail("E605", f"cannot list the folder '{path}': {e.strerror or e}",
                           None) from None
            inside = [os.path.join(path, n) for n in names
                      if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
                      and os.path.isfile(os.path.join(path, n))]
            if not inside:
                raise fail("E605", f"the folder '{path}' holds no image files", None,
                           hints=[f"netc reads the files ending in {', '.join(IMAGE_EXTENSIONS)} "
                                  "directly in the folder (not in its subfolders): give a "
                                  "subfolder, or the files themselves"])
            found += [(p, False) for p in inside]
        elif not os.path.lexists(path):
            raise fail("E605", f"cannot read image '{path}': no such file or folder", None)
        else:
            from ..load import regular_file

            # a FIFO, a device, a dangling link or a loop: refused before compiling
            regular_file(path, "E605", "image ")
            found.append((path, True))
    from ..files import note_input

    for path, _ in found:  # all before the first is read: no mask may replace a later image
        note_input(path, "an image")
    return found


# --- the model --------------------------------------------------------------------------------


def _load_model(args):
    """(model, graph) as run.load_model gives them, except that a spec without `preprocess:`
    is refused (E606) from its checked graph, before its weights are read and the model is
    compiled (seconds and hundreds of MB for a big one, only to say that). An .onnx file
    carries its record in the model itself: model_target checks it."""
    from .. import run

    def preprocessed(graph) -> None:
        if graph.preprocess is None:
            raise _no_preprocess([(v.name, v.shape) for v in graph.inputs], args.model,
                                 spec=True)

    return run.load_model(args, check=preprocessed)


def model_target(sess, graph, path: str, masks: bool = False) -> Target:
    """What the model takes and gives (Target), from the spec's checked `graph` or, for an
    .onnx file (`graph` None), from its metadata_props. A first output N×C×H×W is dense (C
    classes per pixel) when the model has labels or `masks` (--masks) asks for class maps.
    Raises E606 when no preprocessing is declared, E604 when the metadata is malformed or
    contradicts the model, E602 when the model's inputs are not one image."""
    from .. import run

    inputs = run.input_specs(sess)
    ort_outputs = sess.get_outputs()
    if graph is not None:
        preprocess, labels, props = graph.preprocess, graph.labels, {}
        if preprocess is None:
            raise _no_preprocess(inputs, path, spec=True)
    else:
        from ..images import from_metadata

        props = dict(sess.get_modelmeta().custom_metadata_map)  # metadata_props
        try:
            preprocess, labels = from_metadata(props)
        except ValueError as e:
            raise fail("E604", f"'{path}' carries a malformed netc preprocessing or labels "
                       f"record in its metadata_props: {e}", None,
                       hints=["compile the model again from its spec (netc compile SPEC) to "
                              "write the record anew"]) from None
        if preprocess is None:
            raise _no_preprocess(inputs, path, spec=False)
    names = [n for n, _ in inputs]
    if preprocess.input not in names:
        raise fail("E604", f"'{path}' declares preprocessing for input '{preprocess.input}', "
                   f"and its inputs are {', '.join(names)}", None,
                   hints=["compile the model again from its spec"])
    if len(names) > 1:
        raise fail("E602", f"--image feeds input '{preprocess.input}' only, and the model has "
                   f"{len(names)} inputs ({', '.join(names)})", None,
                   hints=["make every input an array and give each with --input NAME=FILE.npy"])
    shape = tuple(dict(inputs)[preprocess.input])
    dtype = run.input_dtype(sess, preprocess.input)
    pixels = dtype == np.uint8
    if METADATA_INPUT in props and props[METADATA_INPUT] != UINT8_NHWC:
        raise fail("E604", f"'{path}' has an unknown {METADATA_INPUT} record "
                   f"({_text(props[METADATA_INPUT][:40])}): netc writes only {UINT8_NHWC}", None,
                   hints=["compile the model again from its spec"])
    if props.get(METADATA_INPUT) == UINT8_NHWC and not pixels:
        raise fail("E604", f"'{path}' says its input takes uint8 pixels ({METADATA_INPUT}: "
                   f"{UINT8_NHWC}), and input '{preprocess.input}' is {dtype}", None,
                   hints=["compile the model again from its spec"])
    _check_fits(preprocess, shape, pixels, path)
    out = ort_outputs[0]
    problem = not_rows(out)
    if problem:
        raise fail("E602", f"--image gives each image its row of the model's first output, and "
                   f"output '{_shown(out.name)}' is {problem}", None,
                   hints=["run the model on an array instead: netc run MODEL --input x.npy"])
    out_shape = tuple(out.shape)
    # axis 1: a classifier's classes (N×classes), or a segmentation model's (N×classes×H×W);
    # none when it is 0 (no class to rank)
    axis1 = out_shape[1] if len(out_shape) in (2, 4) and isinstance(out_shape[1], int) \
        and out_shape[1] > 0 else None
    if labels is not None and axis1 is not None and len(labels) != axis1:
        raise fail("E604", f"'{path}' names {len(labels):,} classes in its labels record, and "
                   f"output '{out.name}' has {axis1:,}", None,
                   hints=["compile the model again from its spec"])
    dense = len(out_shape) == 4 and axis1 is not None and (labels is not None or masks)
    classes = axis1 if len(out_shape) == 2 or dense else None
    return Target(preprocess.input, shape, dtype, pixels, preprocess, labels, out.name,
                  out_shape, classes, run.fixed_batch(list(shape)), dense)


_NUMERIC = re.compile(r"tensor\((float|double|float16|bfloat16|u?int(8|16|32|64)|bool)\)\Z")


def not_rows(output) -> str | None:
    """What an ONNX Runtime output (NodeArg) is when it is not a numeric tensor with a batch
    axis, the row per image that --image reads and --output saves: "a sequence ...", "a
    tensor of strings", "a scalar"; None when it is one. netc's own models always give one;
    an .onnx file from elsewhere may not."""
    kind = output.type or ""
    if kind.startswith(("seq(", "map(", "optional(", "sparse_tensor(")):
        return f"an ONNX {kind.split('(')[0].replace('seq', 'sequence')} ({kind}), not a tensor"
    if not _NUMERIC.match(kind):
        return f"a {kind or 'value of unknown type'}, not a tensor of numbers"
    if not output.shape:
        return "a scalar, without a batch axis"
    return None


def _check_fits(preprocess, shape: tuple, pixels: bool, path: str) -> None:
    """E604 when a model's own preprocessing record contradicts its input (a spec's is checked
    by check.py): the channels, and the height and width the steps make."""
    from .. import run

    if len(shape) != 4:
        raise fail("E604", f"'{path}' declares image preprocessing for input "
                   f"'{preprocess.input}', which is {run.dims(shape)}, not an image batch "
                   f"({'N×H×W×C' if pixels else 'N×C×H×W'})", None)
    c, h, w = (shape[3], shape[1], shape[2]) if pixels else shape[1:]
    if isinstance(c, int) and c != preprocess.channels:
        raise fail("E604", f"'{path}' declares {preprocess.color} preprocessing "
                   f"({preprocess.channels} channel{'s' * (preprocess.channels != 1)}), and "
                   f"input '{preprocess.input}' has {c}", None,
                   hints=["compile the model again from its spec"])
    size = preprocess.size()
    if size is not None and any(isinstance(d, int) and d != s for d, s in zip((h, w), size)):
        raise fail("E604", f"'{path}' declares preprocessing that makes {size[0]}×{size[1]} "
                   f"images, and input '{preprocess.input}' is {run.dims(shape)}", None,
                   hints=["compile the model again from its spec"])


def _no_preprocess(inputs, path: str, spec: bool) -> NetcError:
    """E606: the model declares no preprocessing; the hint is the `preprocess:` block to
    write, sized for the model's image input."""
    from .. import run

    images = [(n, s) for n, s in inputs if len(s) == 4]
    what = f"spec '{path}'" if spec else f"'{path}'"
    carries = "has no `preprocess:`" if spec else "carries no netc.preprocess record in its " \
                                                  "metadata_props"
    if not images:
        return fail("E606", f"{what} {carries}, and no input is an image batch (N×C×H×W): "
                    "--image has nothing to make", None,
                    hints=["give the input as an array: --input FILE.npy"])
    name, shape = images[0]
    c, h, w = shape[1:]
    if c == 1:
        block = f"preprocess: {{color: grayscale, resize: [{h}, {w}]}}"
    elif isinstance(h, int) and h == w:  # torchvision's ImageNet evaluation transform
        block = (f"preprocess: {{resize: {round(h * 256 / 224)}, crop: {h}, "
                 "mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}")
    else:
        block = (f"preprocess: {{resize: [{h}, {w}], mean: [0.485, 0.456, 0.406], "
                 "std: [0.229, 0.224, 0.225]}")
    if spec:
        hints = [f"declare in the spec how an image becomes input '{name}', e.g. `{block}`"]
    else:
        hints = [f"compile it with netc from a spec that declares how an image becomes input "
                 f"'{name}', e.g. `{block}`: netc writes it into the model's metadata"]
    if c == 3:
        hints.append("those mean and std are ImageNet's: use the ones the weights were trained "
                     "with")
    hints.append("or make the input array yourself and give it with --input FILE.npy")
    return fail("E606", f"{what} {carries}: netc does not know how to make an image into "
                f"input '{name}' ({run.dims(shape)})", None, hints=hints)


# --- images and classes -----------------------------------------------------------------------


def image_input(path: str, target: Target) -> np.ndarray:
    """One image file made into one item of the model's input: C×H×W float (N×C×H×W
    models) or H×W×C uint8 pixels (--uint8-input models). Raises E605 (unreadable), E602
    (smaller than the crop, or not the input's size when no resize or crop makes it so)."""
    from .. import run
    from ..images import image_pixels, open_image, preprocess_image

    image = open_image(path)
    try:
        if target.pixels:
            x = image_pixels(image, target.preprocess, path)
        else:
            x = preprocess_image(image, target.preprocess, path).astype(target.dtype,
                                                                        copy=False)
    finally:
        image.close()
    want = target.size()
    if any(isinstance(d, int) and d != s for d, s in zip(want, x.shape)):
        hw = x.shape[:2] if target.pixels else x.shape[1:]
        size = want[:2] if target.pixels else want[1:]
        raise fail("E602", f"image '{path}' is {hw[1]}×{hw[0]} (width × height) after the "
                   f"preprocessing, and input '{target.input}' takes "
                   f"{size[1]}×{size[0]} ({run.dims(target.shape)})", None,
                   hints=[f"declare a resize or a crop in the spec's `preprocess:` (e.g. "
                          f"resize: [{size[0]}, {size[1]}]) so that every image fits"])
    return x


def is_distribution(row: np.ndarray) -> bool:
    """Whether an output row already holds probabilities: every value in [0, 1] and their sum
    1 within 1e-3 (float16 rounding over 1,000 classes stays within half of that), as a
    softmax ending the model makes them. Logits practically never do."""
    values = np.asarray(row, dtype=np.float64)
    return values.size > 1 and bool(np.all((values >= 0) & (values <= 1))) \
        and abs(values.sum() - 1) <= 1e-3


def top_classes(row: np.ndarray, k: int, probabilities: bool = False
                ) -> tuple[list[int], list[float]]:
    """The `k` most probable classes of one output row (K values), most probable first (ties:
    the lower index first), and their probabilities: softmax(row) in float64, or, when the
    rows already are `probabilities` (a softmax ends the model: `is_distribution`), the row
    itself, not softmaxed twice. (After a log-softmax, softmax(row) = exp(row): the same
    probabilities.)"""
    values = np.asarray(row, dtype=np.float64)
    if probabilities:
        p = values
    elif np.isposinf(values).any():  # the limit of the softmax: +inf takes everything
        p = np.isposinf(values) / np.count_nonzero(np.isposinf(values))
    elif np.isneginf(values).all():  # nothing is likelier than anything else
        p = np.full(values.shape, 1 / values.size)
    else:
        e = np.exp(values - values.max())  # shifted: exp never overflows (-inf gives 0)
        p = e / e.sum()
    order = np.argsort(-p, kind="stable")[:min(k, p.size)]
    return [int(i) for i in order], [float(p[i]) for i in order]


def _class_name(target: Target, index: int) -> str:
    """Class `index` as the terminal shows it: `cat (8)`, the label alone when it is the
    index itself (`7`), or `class 8` without labels."""
    label = target.labels[index] if target.labels else None
    if label is None:
        return f"class {index}"
    return _cut(label) if label == str(index) else f"{_cut(label)} ({index})"


# --- dense outputs: a class per pixel ---------------------------------------------------------


def pixel_classes(scores: np.ndarray) -> np.ndarray:
    """The class of each pixel of one image's scores (classes×H×W): the argmax over axis 0,
    the lower index on ties (numpy's argmax, as torch.argmax), H×W int64. The scores must be
    free of NaN (run_images raises E604 first)."""
    return np.argmax(scores, axis=0)


def top_shares(classes: np.ndarray, count: int, k: int) -> tuple[list[int], list[float]]:
    """The `k` classes that cover most pixels of a class map `classes` (H×W, values below
    `count`), most first (ties: the lower index), and the share of the pixels each covers
    (pixels / (H·W)); only classes that cover at least one pixel."""
    pixels = np.bincount(classes.ravel(), minlength=count)
    order = [int(i) for i in np.argsort(-pixels, kind="stable")[:k] if pixels[i] > 0]
    return order, [int(pixels[i]) / classes.size for i in order]


def voc_palette() -> bytes:
    """The 256 colours (768 bytes, R G B) of Pascal VOC's class maps, as the VOC devkit's
    `VOClabelcolormap.m` makes them and VOC's SegmentationClass PNGs carry: the bits of index
    i, three at a time (red, green, blue), become the high bits of the colour, so that class
    0 (background) is black, 1 (128, 0, 0), 15 (person) (192, 128, 128) and 255 (VOC's
    `void`, the outlines) (224, 224, 192). Any classes get colours far apart this way, not
    only VOC's."""
    colours = bytearray()
    for i in range(MASK_CLASSES):
        r = g = b = 0
        c = i
        for bit in range(7, -1, -1):
            r |= (c & 1) << bit
            g |= (c >> 1 & 1) << bit
            b |= (c >> 2 & 1) << bit
            c >>= 3
        colours += bytes((r, g, b))
    return bytes(colours)


def mask_png(classes: np.ndarray, image_path: str) -> bytes:
    """A class map (H×W, values 0..255) as an 8-bit palette PNG (mode P: pixel value = class
    index, colours voc_palette), marked as netc's by a text chunk MASK_MARK whose value names
    the image `image_path` (as `_text` writes it: a tEXt chunk, or iTXt beyond Latin-1), so
    that a later --masks run knows the file is one it may replace (is_netc_mask)."""
    from PIL import Image, PngImagePlugin

    h, w = classes.shape
    image = Image.frombytes("P", (w, h), np.ascontiguousarray(classes, dtype=np.uint8).tobytes())
    image.putpalette(voc_palette())
    info = PngImagePlugin.PngInfo()
    info.add_text(MASK_MARK, _text(image_path, fs=True))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def is_netc_mask(path: str) -> bool:
    """Whether the file at `path` is a class map netc wrote (mask_png): a plain file (not a
    link) that is a PNG carrying the MASK_MARK text chunk. Anything else, including a file
    that cannot be read, is not: --masks never replaces it. Reads the chunks before the
    pixels only (Pillow's open), not the image."""
    return png_marked(path, MASK_MARK)


def png_marked(path: str, key: str) -> bool:
    """Whether `path` is a plain file (not a link) that is a PNG carrying the text chunk
    `key` (netc's mark on the PNGs it writes: MASK_MARK, maps.METADATA_KEY). Anything else,
    including a file that cannot be read, is not. Reads the chunks before the pixels only
    (Pillow's open), not the image."""
    import warnings

    from PIL import Image

    if os.path.islink(path) or not os.path.isfile(path):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (Pillow's DecompressionBombWarning)
            with Image.open(path) as image:
                return image.format == "PNG" and key in image.info
    except Exception:  # not an image, unreadable, a decompression bomb: not netc's
        return False


def mask_names(paths: list[str]) -> list[str]:
    """The file name of each image's class map, in the order of `paths` (the order the images
    run in): `<stem>.png`, the image's file name without its extension (a stem longer than
    MAX_STEM bytes is cut and ends in `-` and 8 hex digits of its SHA-256). A stem that an
    earlier image already has (`a.jpg` and `a.png`; `x/a.jpg` and `y/a.jpg`; compared without
    case, for file systems that ignore it) gets `-2`, `-3`...: the first that neither an
    earlier image's name nor any image's own stem is. So each name depends only on the list."""
    stems = [_mask_stem(p) for p in paths]
    own = {stem.casefold() for stem in stems}
    used: set[str] = set()
    names = []
    for stem in stems:
        name, k = stem, 1
        # (a name that is some image's own stem stays free for that image, even a later one)
        while name.casefold() in used or (k > 1 and name.casefold() in own):
            k += 1
            name = f"{stem}-{k}"
        used.add(name.casefold())
        names.append(name + ".png")
    return names


def _mask_stem(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0] or os.path.basename(path)
    raw = os.fsencode(stem)
    if len(raw) <= MAX_STEM:
        return stem
    digest = hashlib.sha256(raw).hexdigest()[:8]
    cut = stem
    while len(os.fsencode(cut)) > MAX_STEM - 9:  # (characters of several bytes: one at a time)
        cut = cut[:-1]
    return f"{cut}-{digest}"


def _masks_refused(target: Target) -> str | None:
    """Why --masks cannot write class maps of this model's output (None: it can)."""
    from .. import run

    shape = run.dims(target.output_shape)
    if not target.dense:
        why = {2: ": a classifier's, one score per class per image; leave --masks out",
               4: ": its classes (axis 1) are not a fixed number"}
        return (f"--masks writes class maps, which need a dense output, N×classes×H×W (a "
                f"score per class per pixel), and output '{_shown(target.output)}' is {shape}"
                + why.get(len(target.output_shape), ""))
    if target.classes > MASK_CLASSES:
        return (f"--masks writes 8-bit palette PNGs (class indices 0..{MASK_CLASSES - 1}), and "
                f"output '{_shown(target.output)}' has {target.classes:,} classes ({shape}); "
                "save the scores with --output FILE.npy and take their argmax over axis 1")
    if target.classes == 1:
        return (f"output '{_shown(target.output)}' has one channel ({shape}): its argmax is "
                "class 0 at every pixel. A single score per pixel (a sigmoid) needs a "
                "threshold: save the scores with --output FILE.npy")
    return None


def _mask_destinations(folder: str, paths: list[str]) -> list[str]:
    """The path of each image's class map in `folder` (mask_names), checked before the model
    is compiled: E603 when a folder stands at one's name, when one would replace an image of
    this run (--masks naming the images' own folder, with PNG images), or any other file that
    is not a class map netc wrote (is_netc_mask: a user's own a.png beside a.jpg); netc's own
    class maps, from an earlier run, are replaced. Creates nothing (_make_folder)."""
    targets = [os.path.join(folder, name) for name in mask_names(paths)]
    images = set()
    for p in paths:  # an image by its file (a link to it too): never written over
        for get in (os.stat, os.lstat):
            try:
                st = get(p)
            except OSError:
                continue
            images.add((st.st_dev, st.st_ino))
    for path, target in zip(paths, targets):
        if os.path.isdir(target) and not os.path.islink(target):
            raise fail("E603", f"cannot write the class map of '{_text(path, fs=True)}' to "
                       f"'{_text(target, fs=True)}': it is a folder", None,
                       hints=["remove or rename that folder, or give another --masks folder"])
        for get in (os.stat, os.lstat):
            try:
                st = get(target)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in images:
                raise fail("E603", f"the class map of '{_text(path, fs=True)}' would replace "
                           f"the image '{_text(target, fs=True)}'", None,
                           hints=["give --masks a folder of its own, e.g. --masks masks/"])
    refuse_foreign([(f"the class map of '{_text(path, fs=True)}'", target)
                    for path, target in zip(paths, targets)
                    if os.path.lexists(target) and not is_netc_mask(target)],
                   "class maps", MASK_MARK, "--masks", "masks/")
    return targets


def refuse_foreign(foreign: list[tuple[str, str]], kind: str, mark: str, flag: str,
                   folder: str, empty: bool = False) -> None:
    """E603 for the first of `foreign`, (what would be written, the existing file netc did
    not write), saying how many more: --masks and --maps replace only the PNGs they wrote
    themselves (marked with the text chunk `mark`), never a user's file of the same name."""
    if not foreign:
        return
    what, target = foreign[0]
    more = f" (and {len(foreign) - 1:,} more)" if len(foreign) > 1 else ""
    raise fail("E603", f"{what} would replace '{_shown(target, fs=True)}'{more}, a file netc "
               "did not write", None,
               details=[f"netc replaces only the {kind} it wrote itself (PNGs with a {mark} "
                        "text chunk)"],
               hints=[f"give {flag} {'an empty' if empty else 'a'} folder of its own, e.g. "
                      f"{flag} {folder}",
                      f"or delete '{_shown(target, fs=True)}'"
                      + (" and the others if they may go" if more else " if it may go")])


def _make_folder(folder: str) -> None:
    """Creates the --masks folder (and its parents) if missing; E603 when it cannot."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise fail("E603", f"cannot create the folder '{_text(folder, fs=True)}': "
                   f"{e.strerror or e}", None) from None


# --- --output ---------------------------------------------------------------------------------


def _write_output(path: str, saved: dict, table: list, target: Target, k: int) -> None:
    """The outputs (.npy: the first output; .npz: all, by name) or the table of top classes
    (.csv, .jsonl), written atomically. A dense output's table holds the shares of the pixels
    (`share`, `shares`) where a classifier's holds probabilities, and, with --masks, each
    image's class map (`mask`); an image whose pixels fall in fewer than K classes has fewer
    entries (empty cells in the CSV)."""
    from ..files import write_atomic

    lower = path.lower()
    if lower.endswith(ARRAYS):
        arrays = {name: np.concatenate(parts) for name, parts in saved.items()}
        if lower.endswith(".npz"):
            data = npz_bytes(arrays)
            what = ", ".join(_shown(name) for name in arrays)
        else:
            buf = io.BytesIO()
            np.save(buf, arrays[target.output])
            data = buf.getvalue()
            what = f"{_shown(target.output)} ({len(arrays[target.output])} rows)"
        write_atomic(path, data)
    elif lower.endswith(".csv"):
        text = io.StringIO()
        # the csv module's own line ending, \r\n (RFC 4180): a field holding a \r or a \n is
        # quoted only when the line ending has that character ("\n" alone left a \r bare)
        writer = csv.writer(text, lineterminator="\r\n")
        k = min(k, target.classes)
        value = "share" if target.dense else "probability"
        masks = bool(table) and table[0][3] is not None
        writer.writerow(["file"] + ["mask"] * masks
                        + [f"{c}_{r}" for r in range(1, k + 1) for c in ("label", "index", value)])
        for file, indices, probabilities, mask in table:
            cells = [_text(file, fs=True)] + ([_text(mask, fs=True)] if masks else [])
            for i, p in zip(indices, probabilities):
                cells += [_label(target, i), i, repr(p)]
            writer.writerow(cells + [""] * (3 * (k - len(indices))))
        write_atomic(path, text.getvalue().encode("utf-8"))
        what = _top_what(k, len(table))
    else:
        value = "shares" if target.dense else "probabilities"
        lines = [json.dumps({"file": _text(file, fs=True)}
                            | ({} if mask is None else {"mask": _text(mask, fs=True)})
                            | {"labels": [_label(target, i) for i in indices],
                               "indices": indices, value: probabilities},
                            ensure_ascii=False) for file, indices, probabilities, mask in table]
        write_atomic(path, "".join(line + "\n" for line in lines).encode("utf-8"))
        what = _top_what(min(k, target.classes), len(table))
    print(f"saved {what} to {_shown(path, fs=True)}")


def npz_bytes(arrays: dict) -> bytes:
    """An .npz archive of `arrays` by name, as np.savez writes it (a zip of NAME.npy, not
    compressed, never pickled). Not `np.savez(buf, **arrays)`: an array named `file` clashed
    with savez's parameter, and one named `allow_pickle` was taken for it and not saved."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def _label(target: Target, index: int) -> str:
    """The label of class `index` as the tables hold it (`_text`), or the index."""
    return _text(target.labels[index]) if target.labels else str(index)


def _top_what(k: int, n: int) -> str:
    return ("the top class" if k == 1 else f"the top {k} classes") \
        + f" of {n} image{'s' * (n != 1)}"
