"""`netc run MODEL --image FILE --maps DIR [--layers NAME,...]`: activation maps, drawn.

As the course draws them: a conv with 6 filters turns a 32×32×3 image into 6 activation maps,
"a new 28×28×6 image"; each map shows where its filter responds. netc runs one image through
the model (a spec compiled in memory, or an .onnx file) with each chosen layer's output added
to the model's outputs (netc names a layer's output tensor after the layer; in a foreign
.onnx a "layer" is any node's output tensor), and draws each N×C×H×W output (N = 1) as one
PNG, `DIR/<layer>.png`, a tile per channel. By default every conv layer is drawn (every Conv
node of an .onnx file); `--layers` chooses layers, and may name the input (the preprocessed
image itself, one tile per colour channel).

Layout, in pixels from the top left (every PNG also carries these numbers as JSON in its
`netc.maps` text chunk):

    header   the top HEADER rows, holding the legend line (the layer, its maps, the scale)
    grid     C tiles in `columns` = ceil(√C) columns and `rows` = ceil(C / columns) rows,
             channel c at row c // columns, column c % columns
    zoom     z = ceil(MIN_TILE / max(H, W)) for maps smaller than MIN_TILE, else 1: each
             value is a z × z block of pixels (no smoothing)
    cell     `cell_width` = max(W·z, LABEL_WIDTH) wide; a LABEL-row strip holding the
             channel number (0 to C - 1), then the tile, H·z × W·z
    tile c   left = GAP + column·(cell_width + GAP),
             top  = HEADER + GAP + row·(LABEL + H·z + GAP) + LABEL

The scale is shared by all the tiles of a layer, so that tiles compare (a filter that barely
responds is dark beside one that does): low and high are the least and greatest finite values
of the layer's output, and value v is the grey level round(255·(v − low)/(high − low)) (red,
green and blue equal): low black, high white. The legend line, printed and drawn, states
them; v = low + level/255·(high − low) undoes it, within half a step, (high − low)/510. A layer
whose values are all equal is drawn mid-grey (128); a value that is not finite (NaN, ±inf)
is drawn red. The rest of the image (gaps, label strips, header) is a dark blue that no tile
pixel has.

Files: every destination is checked before any PNG is written (E603: a folder where a PNG
goes, a name longer than the file system takes), so that a run writes all its maps or none. A
layer name longer than MAX_STEM characters is cut and given a hash of the whole name; the PNG's
`netc.maps` chunk names the layer in full. The terminal lines show the image, the folder and
the files escaped as `netc run --image` shows file names (predict._shown).

Options: `--maps` runs one image (`--image FILE`) and writes PNGs only; `--input`, `--output`,
`--top` and `--batch` are `netc run --image`'s, and given with `--maps` they are usage errors
(exit 2), as are no `--image` and a `--layers` that names no layer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys

import numpy as np

from ..errors import fail, layer_name_hints
from ..layers.base import fmt_shape
from .predict import _no_preprocess, _shown, _usage, refuse_foreign

HEADER = 18  # rows of the legend strip at the top
LABEL = 14  # rows of the strip above each tile that holds its channel number
LABEL_WIDTH = 32  # the least cell width: five digits of the default font (6 pixels each)
GAP = 4  # pixels between cells, and around the grid
MIN_TILE = 48  # maps smaller than this (on their longer side) are drawn z times larger
BACKGROUND = (24, 32, 56)  # dark blue: never a tile's grey (R = G = B) nor the red of NaN
TEXT = (230, 230, 230)
NOT_FINITE = (255, 0, 0)
MID_GREY = 128  # every tile of a layer whose values are all equal
MAX_DRAWN = 1 << 26  # pixels of one layer's image (64 Mi, 192 MiB of RGB)
METADATA_KEY = "netc.maps"
MAX_STEM = 150  # characters of a file name's stem: room for write_atomic's temporary name
NAME_MAX = 255  # bytes of a file name where the file system does not say (os.pathconf)


def run_maps(args) -> int:
    """Run one image through `args.model` and write each chosen layer's activation maps into
    the folder `args.maps` (module doc: layout and scale); prints one legend line per layer.

    `args`: model (spec or .onnx path), image (argparse's list of lists of paths: exactly one
    image file), maps (the folder, created if missing), layers (comma-separated names, or None
    for every conv layer), provider, seed, weights, allow_missing, dtype, fold_bn, limits.
    Errors: E602 (not exactly one image file, or an image that doesn't make the input), E605
    (the image can't be read), E606 (no declared preprocessing), E111 (a name that is not a
    layer), E307 (a layer whose output is not N×C×H×W), E603 (the folder or a file can't be
    written), E604 (a bad .onnx file); returns 0."""
    from ..files import write_atomic
    from ..images import image_pixels, open_image, preprocess_image

    conflict = _conflict(args)
    if conflict:
        return _usage(conflict)
    if args.layers is not None and not _layer_names(args.layers):
        return _usage(f"--layers {_shown(repr(args.layers))} names no layer: name the layers "
                      "to draw, separated by commas (--layers conv1,conv2), or leave --layers "
                      "out for every conv layer")
    path = _one_image(args.image)
    from ..files import note_input

    note_input(path, "the image")  # (no map may replace it, a netc map drawn again included)
    asked = _layer_names(args.layers)
    if asked is not None:  # the files named by --layers: refused before the model is made
        _check_destinations(args.maps, _file_names(asked))
    model = _Model.of(args)
    names = model.choose(asked)
    files = _file_names(names)
    _check_destinations(args.maps, files)  # every file, before the image is run
    image = open_image(path)
    pre = model.preprocess
    x = (image_pixels(image, pre, path) if model.uint8 else preprocess_image(image, pre, path))
    x = x[None]
    model.check_input(x)
    values = model.run(x, names)
    for name in names:  # every layer checked before any file is written
        if values[name].ndim != 4:  # an .onnx whose shapes were unknown before it ran
            raise _not_4d(name, values[name].shape, model.drawable())
        _check_size(name, values[name].shape[1:])
    _check_destinations(args.maps, files)  # (again: the folder may have changed meanwhile)
    try:
        os.makedirs(args.maps, exist_ok=True)
    except OSError as e:
        raise fail("E603", f"cannot create the folder '{args.maps}': {e.strerror or e}",
                   None) from None
    print(f"ran {_shown(args.model, fs=True)} on {_shown(path, fs=True)} (input "
          f"{_shown(pre.input)} {fmt_shape(x.shape)}); activation maps in "
          f"{_shown(args.maps, fs=True)}:")
    for name in names:
        out = os.path.join(args.maps, files[name])
        legend, png = draw(name, values[name][0])
        write_atomic(out, png)
        print(f"{_shown(out, fs=True)}: {legend}")
    return 0


def _conflict(args) -> str | None:
    """The usage error of options that --maps does not take (None: none): it runs one image
    given with --image and writes PNGs only."""
    if args.maps == "":  # (cli.py sends an empty --maps here once it tests `is not None`)
        return ("--maps '' names no folder: give the folder to draw the maps into, e.g. "
                "--maps maps/")
    if getattr(args, "input", None):
        return ("--maps draws the maps of an image given with --image, and --input gives an "
                "array: not both (run the array without --maps)")
    output = getattr(args, "output", None)
    if output is not None:
        return (f"--maps writes PNGs into its folder, and --output {_quoted(output)} saves "
                "the outputs or top classes of `netc run --image`: not both (run twice)")
    if getattr(args, "top", None) is not None:  # (given at all: --maps prints no classes)
        return "--top picks the classes printed per image, and --maps prints none: not both"
    if getattr(args, "batch", None) is not None:
        return "--maps runs one image: --batch does not go with it"
    if not [p for group in args.image or [] for p in group]:
        return ("--maps draws the activation maps of one image: give it with --image FILE "
                "(netc run MODEL --image photo.png --maps maps/)")
    return None


def _quoted(text: str) -> str:
    return f"'{_shown(text, fs=True)}'"


# --- what is drawn ---------------------------------------------------------------------------


def _one_image(groups) -> str:
    flat = [p for group in groups or [] for p in group]  # (none: a usage error, _conflict)
    if len(flat) > 1:
        shown = ", ".join(flat[:3]) + (", ..." if len(flat) > 3 else "")
        raise fail("E602", f"--maps draws the activation maps of one image, and --image "
                   f"gives {len(flat)} ({shown})", None,
                   hints=["run once per image, each with its own --maps folder"])
    if os.path.isdir(flat[0]):
        raise fail("E602", f"'{flat[0]}' is a folder: --maps draws the activation maps of one "
                   "image file", None, hints=["give one file: --image FOLDER/photo.png"])
    return flat[0]


def _layer_names(text: str | None) -> list[str] | None:
    """The names --layers gives, once each (blanks ignored); None: every conv layer. (None
    named is a usage error, run_maps'.)"""
    if text is None:
        return None
    return list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def _not_4d(name: str, shape, drawable: list[str]):
    shown = ", ".join(drawable[:6]) + (", ..." if len(drawable) > 6 else "")
    return fail("E307", f"layer '{name}' is {fmt_shape(shape) or 'a scalar'}: --maps draws "
                f"N×C×H×W outputs (a tile per channel), not {len(shape)}-D ones", None,
                hints=[f"layers with N×C×H×W outputs: {shown}" if drawable else
                       "this model has no N×C×H×W layer to draw"])


def _unknown(name: str, names: list[str], where: str, listing: str):
    hints = layer_name_hints(name, names)
    hints.append(listing)
    return fail("E111", f"{where} has no layer named '{name}'", None, hints=hints)


class _Model:
    """The model to run: a spec compiled in memory, or an .onnx file, with what --maps needs
    to know of it (its preprocessing, its layers and their shapes where known)."""

    def __init__(self, args, proto, graph, preprocess, shapes: dict, convs: list[str],
                 inputs: dict, emission=None):
        self.args, self.proto, self.graph, self.preprocess = args, proto, graph, preprocess
        self.shapes = shapes  # name -> shape (None: unknown until run), layers and inputs
        self.convs = convs  # the default layers
        self.inputs = inputs  # graph input name -> (ONNX elem type, dims)
        self.emission = emission  # a spec's: how it is compiled (proto None)
        self.uint8 = inputs.get(preprocess.input, (None,))[0] == 2  # TensorProto.UINT8

    @classmethod
    def of(cls, args) -> _Model:
        return cls._onnx(args) if args.model.endswith(".onnx") else cls._spec(args)

    @classmethod
    def _spec(cls, args) -> _Model:
        from .. import pipeline
        from ..run import spec_graph, spec_weights

        graph = spec_graph(args.model, args.limits)
        if graph.preprocess is None:
            raise _no_preprocess([(v.name, v.shape) for v in graph.inputs], args.model, True)
        if args.fold_bn:  # a folded conv's own output no longer exists in the model
            print("netc: note: --maps draws the model without --fold-bn, so that each conv "
                  "has its own output (folding changes no value beyond float32 rounding)",
                  file=sys.stderr)
        emission = pipeline.Emission(args.seed, spec_weights(args, graph), args.dtype, False)
        shapes = {v.name: tuple(v.shape) for v in graph.inputs}
        shapes.update({n.name: tuple(n.output.shape) for n in graph.nodes})
        convs = [n.name for n in graph.nodes if type(n.layer).drawn_by_default]
        inputs = {v.name: (1, tuple(v.shape)) for v in graph.inputs}
        return cls(args, None, graph, graph.preprocess, shapes, convs, inputs, emission)

    @classmethod
    def _onnx(cls, args) -> _Model:
        from onnx.external_data_helper import load_external_data_for_model, uses_external_data

        from ..files import note_model
        from ..images import from_metadata
        from ..weights import check_onnx_file

        path = args.model
        if not os.path.isfile(path):
            raise fail("E001", f"cannot read '{path}': no such file", None)
        if args.weights:
            raise fail("E507", "--weights goes with a spec; an .onnx model has its weights",
                       None)
        proto = check_onnx_file(path)  # external-data references checked
        note_model(path, proto)  # (no map may replace the model or its data)
        if any(uses_external_data(t) for t in proto.graph.initializer):
            try:
                load_external_data_for_model(proto, os.path.dirname(os.path.abspath(path)))
            except Exception as e:  # checked above: a file changed meanwhile, a read error
                raise fail("E604", f"cannot read the external data of '{path}': {e}",
                           None) from None
        try:
            preprocess, _ = from_metadata({p.key: p.value for p in proto.metadata_props})
        except ValueError as e:
            raise fail("E604", f"'{path}': its preprocessing metadata is malformed ({e})",
                       None, hints=["compile the model again from its spec"]) from None
        g = proto.graph
        weights = {t.name for t in g.initializer}
        inputs = {i.name: (i.type.tensor_type.elem_type, _onnx_dims(i)) for i in g.input
                  if i.name not in weights}
        if preprocess is None:
            raise _no_preprocess([(n, dims or ()) for n, (_, dims) in inputs.items()], path,
                                 False)
        known = {v.name: _onnx_dims(v) for v in (*g.value_info, *g.output)}
        shapes = {name: dims for name, (_, dims) in inputs.items()}
        for node in g.node:
            for out in node.output:
                if out:
                    shapes[out] = known.get(out)
        outputs = {o.name for o in g.output}
        convs = []
        for node in g.node:
            if node.op_type == "Conv" and node.domain in ("", "ai.onnx") and node.output:
                out = node.output[0]
                # netc's float16 models compute an output conv into `<name>/float16` and cast
                # it to the float32 output `<name>`: the layer's name
                base = out.rsplit("/", 1)[0]
                convs.append(base if out.endswith("/float16") and base in outputs else out)
        return cls(args, proto, None, preprocess, shapes, convs, inputs)

    def drawable(self) -> list[str]:
        """The layers known to be N×C×H×W, in order."""
        return [n for n, s in self.shapes.items() if s is not None and len(s) == 4
                and n not in self.inputs]

    def choose(self, asked: list[str] | None) -> list[str]:
        """The layers to draw: `asked`, each checked, or every conv layer."""
        if asked is None:
            if not self.convs:
                shown = ", ".join(self.drawable()[:6])
                raise fail("E111", f"'{self.args.model}' has no conv layer to draw by default",
                           None, hints=[f"name the layers to draw: --layers "
                                        f"{shown or 'NAME,...'}"])
            return list(self.convs)
        names = list(self.shapes)
        for name in asked:
            if name not in self.shapes:
                if self.graph is not None:
                    raise _unknown(name, names, f"the spec '{self.args.model}'",
                                   f"`netc summary {self.args.model}` lists every layer with "
                                   "its full name")
                shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
                raise _unknown(name, names, f"'{self.args.model}'",
                               f"in an .onnx file a layer is a node's output tensor: {shown}")
            shape = self.shapes[name]
            if shape is not None and len(shape) != 4:
                raise _not_4d(name, shape, self.drawable())
            if name in self.inputs and self.inputs[name][0] != 1:  # not float32
                raise fail("E307", f"input '{name}' holds raw pixels (N×H×W×C, uint8), not "
                           "N×C×H×W maps", None,
                           hints=["draw the layers after it, or compile the model without "
                                  "--uint8-input"])
        return asked

    def check_input(self, x: np.ndarray) -> None:
        """E602 unless the preprocessed image `x` fits the model's input."""
        name = self.preprocess.input
        if name not in self.inputs:
            raise fail("E604", f"'{self.args.model}': its preprocessing names the input "
                       f"'{name}', which the model doesn't have", None)
        others = [n for n in self.inputs if n != name]
        if others:
            raise fail("E602", f"the model has inputs besides '{name}' ({', '.join(others)}), "
                       "and --maps feeds only the image", None)
        dims = self.inputs[name][1]
        if dims is not None and (len(dims) != x.ndim or any(
                isinstance(d, int) and d > 0 and d != a for d, a in zip(dims, x.shape))):
            batch_only = len(dims) == x.ndim and all(
                not isinstance(d, int) or d <= 0 or d == a for d, a in zip(dims[1:], x.shape[1:]))
            raise fail("E602", f"input '{name}' must be {fmt_shape(dims)}, and the preprocessed "
                       f"image is {fmt_shape(x.shape)}", None,
                       hints=["--maps runs one image: write `N` for the batch in the spec's "
                              "`inputs:` (or 1)"] if batch_only else
                       ["declare the input's size in the preprocessing: `resize: [H, W]` or "
                        "`crop:`"])

    def run(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Each of `names`' values for the input `x` (float32 arrays), by ONNX Runtime."""
        from .. import run

        model = self._with_outputs(names)
        sess = run.session(model, self.args.provider, graph=self.graph)
        feeds = {self.preprocess.input: x}
        results = run.run_model(sess, feeds, self.graph, model, self.args.provider)
        found = {o.name: r for o, r in zip(sess.get_outputs(), results)}
        found.update(feeds)
        return {n: np.asarray(found[n], dtype=np.float32) for n in names}

    def _with_outputs(self, names: list[str]):
        """The model with `names` (those that are neither inputs nor outputs) added to its
        outputs: its bytes, or the path of a model with external data."""
        import onnx

        from .. import pipeline

        path = None
        proto = self.proto
        if proto is None:  # a spec: compiled now, with the weights it was asked for
            made = pipeline.runnable(self.graph, self.emission)
            if isinstance(made, str):  # weights past protobuf's limit: a temporary file
                path = made
                proto = onnx.load(path, load_external_data=False)
            else:
                proto = onnx.load_model_from_string(made)
        have = {o.name for o in proto.graph.output} | set(self.inputs)
        for name in names:
            if name not in have:
                # only the name: ONNX Runtime infers the type and shape of an output
                proto.graph.output.append(onnx.ValueInfoProto(name=name))
        if path is not None:  # the data file beside it is unchanged
            with open(path, "wb") as f:
                f.write(proto.SerializeToString())
            return path
        try:
            return proto.SerializeToString()
        except ValueError as e:  # protobuf's 2 GiB limit on one message
            raise fail("E604", f"'{self.args.model}' is too large to run with --maps in memory "
                       f"({e})", None) from None


def _onnx_dims(v) -> tuple | None:
    """A ValueInfoProto's dims (names for symbolic ones), or None when it has no shape."""
    t = v.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in t.shape.dim)


def _file_names(names: list[str]) -> dict[str, str]:
    """`<layer>.png` per layer: a name's characters other than letters, digits, `_`, `.`
    and `-` become `_` (an .onnx tensor may be named `/layer1/Conv_output_0`), a name longer
    than MAX_STEM is cut and ends in `-` and 8 hex digits of the whole name's SHA-256, and a
    name made twice gets `-2`, `-3`..."""
    files, used = {}, set()
    for name in names:
        base = re.sub(r"[^\w.-]", "_", name, flags=re.ASCII).lstrip(".") or "layer"
        if len(base) > MAX_STEM:
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            base = f"{base[:MAX_STEM - 9]}-{digest}"
        stem, k = base, 2
        while stem.lower() in used:  # (case-insensitive file systems)
            stem, k = f"{base}-{k}", k + 1
        used.add(stem.lower())
        files[name] = stem + ".png"
    return files


def _check_destinations(folder: str, files: dict[str, str]) -> None:
    """E603 unless every PNG `files` names can be written into `folder` (which may not exist
    yet): no folder stands at its name, none is an input of this run or a device
    (files.check_target), none is a file netc did not write (is_netc_map: a user's own
    `c.png`; netc's maps from an earlier run are replaced), and each name fits the file
    system's limit on a file name."""
    from ..files import check_target

    limit = _name_max(folder)
    targets = ((layer, os.path.join(folder, file)) for layer, file in files.items())
    refuse_foreign([(f"the maps of layer '{_shown(layer)}'", target) for layer, target in targets
                    if os.path.lexists(target) and not os.path.isdir(target)
                    and not is_netc_map(target)],
                   "activation maps", METADATA_KEY, "--maps", "maps/", empty=True)
    for layer, file in files.items():
        target = os.path.join(folder, file)
        if os.path.isdir(target) and not os.path.islink(target):
            raise fail("E603", f"cannot write the maps of layer '{layer}' to '{target}': it is "
                       "a folder", None,
                       hints=["remove or rename that folder, or give another --maps folder"])
        check_target(target, ".png")  # not the image, the model, a device ...
        longest = len(os.fsencode(file))  # (the temporary name is shortened to fit)
        if longest > limit:
            raise fail("E603", f"cannot write the maps of layer '{layer}' to '{target}': the "
                       f"file name is {longest} bytes, and the file system of '{folder}' takes "
                       f"file names of at most {limit}", None,
                       hints=["give a --maps folder on another file system, or draw other "
                              "layers (--layers)"])


def is_netc_map(path: str) -> bool:
    """Whether the file at `path` is one netc drew (draw): a plain PNG file carrying the
    METADATA_KEY text chunk. Anything else (a link, an unreadable file) is not: --maps never
    replaces it."""
    from .predict import png_marked

    return png_marked(path, METADATA_KEY)


def _name_max(folder: str) -> int:
    """The longest file name (bytes) the file system of `folder` (or of its nearest existing
    parent folder) takes: os.pathconf's PC_NAME_MAX, or NAME_MAX where it does not say."""
    place = os.path.abspath(folder)
    while not os.path.exists(place) and os.path.dirname(place) != place:
        place = os.path.dirname(place)
    try:
        limit = os.pathconf(place, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # (Windows has no pathconf)
        return NAME_MAX
    return limit if isinstance(limit, int) and limit > 0 else NAME_MAX


# --- drawing ---------------------------------------------------------------------------------


def layout(channels: int, height: int, width: int) -> dict:
    """The grid of a layer's C×H×W maps (module doc): zoom, columns, rows, cell_width, and
    the image's size in pixels (width and height of the grid; the legend may widen it)."""
    zoom = max(1, math.ceil(MIN_TILE / max(height, width)))
    columns = math.ceil(math.sqrt(channels))
    while (columns - 1) ** 2 >= channels:  # (sqrt's float rounding for large C)
        columns -= 1
    while columns * columns < channels:
        columns += 1
    rows = math.ceil(channels / columns)
    cell_width = max(width * zoom, LABEL_WIDTH)
    return {"zoom": zoom, "columns": columns, "rows": rows, "cell_width": cell_width,
            "image_width": GAP + columns * (cell_width + GAP),
            "image_height": HEADER + GAP + rows * (LABEL + height * zoom + GAP)}


def tile_origin(channel: int, grid: dict, height: int) -> tuple[int, int]:
    """(left, top) of channel `channel`'s tile, in pixels."""
    row, column = divmod(channel, grid["columns"])
    left = GAP + column * (grid["cell_width"] + GAP)
    top = HEADER + GAP + row * (LABEL + height * grid["zoom"] + GAP) + LABEL
    return left, top


def _check_size(name: str, shape) -> dict:
    """The layout of C×H×W maps `shape`; E603 when the image would pass MAX_DRAWN pixels."""
    channels, height, width = shape
    grid = layout(channels, height, width)
    if grid["image_width"] * grid["image_height"] > MAX_DRAWN:
        raise fail("E603", f"the maps of layer '{name}' ({channels} of {height}×{width}) would "
                   f"make a {grid['image_width']}×{grid['image_height']} image, more than the "
                   f"{MAX_DRAWN:,} pixels netc draws", None,
                   hints=["draw a layer with fewer or smaller maps, or run on a smaller input "
                          "(the spec's preprocess)"])
    return grid


def grey_levels(maps: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(levels, low, high): `maps` (any shape) as grey levels 0..255 on the shared scale
    low..high, the least and greatest finite values (module doc); non-finite values get
    level 0 (the caller draws them red); all values equal: MID_GREY."""
    values = maps.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8), math.nan, math.nan
    low, high = float(values[finite].min()), float(values[finite].max())
    if high == low:
        return np.full(values.shape, MID_GREY, np.uint8), low, high
    scaled = np.where(finite, (values - low) * (255.0 / (high - low)), 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8), low, high


def draw(name: str, maps: np.ndarray) -> tuple[str, bytes]:
    """One layer's maps, C × H × W, as (the legend line, the PNG's bytes) (module doc)."""
    import io

    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    channels, height, width = maps.shape
    grid = _check_size(name, maps.shape)
    zoom = grid["zoom"]
    levels, low, high = grey_levels(maps)
    bad = ~np.isfinite(maps)
    if math.isnan(low):
        scale = "no finite values (all drawn red)"
    elif high == low:
        scale = f"every value is {low:.6g} (drawn grey)"
    else:
        scale = f"shared scale {low:.6g}..{high:.6g} -> black..white"
    legend = (f"{channels} map{'s' * (channels != 1)} {height}×{width}, {scale}"
              + (f", each value {zoom}×{zoom} pixels" if zoom > 1 else "")
              + (f", {int(bad.sum()):,} non-finite values in red" if bad.any()
                 and not math.isnan(low) else ""))
    font = ImageFont.load_default()
    title = f"{name}: {legend}".replace("×", "x")  # (the default font has no ×)
    text_width = math.ceil(font.getlength(title)) + 2 * GAP
    canvas = np.empty((grid["image_height"], max(grid["image_width"], text_width), 3), np.uint8)
    canvas[:] = BACKGROUND
    for c in range(channels):
        left, top = tile_origin(c, grid, height)
        tile = np.repeat(np.repeat(levels[c], zoom, axis=0), zoom, axis=1)
        block = canvas[top:top + height * zoom, left:left + width * zoom]
        block[:] = tile[:, :, None]
        if bad[c].any():
            block[np.repeat(np.repeat(bad[c], zoom, axis=0), zoom, axis=1)] = NOT_FINITE
    image = Image.fromarray(canvas, "RGB")
    pen = ImageDraw.Draw(image)
    pen.text((GAP, 3), title, fill=TEXT, font=font)
    for c in range(channels):
        left, top = tile_origin(c, grid, height)
        # clipped to its cell: a number wider than the cell (six digits or more) is cut
        label = Image.new("RGB", (grid["cell_width"], LABEL - 1), BACKGROUND)
        ImageDraw.Draw(label).text((1, 1), str(c), fill=TEXT, font=font)
        image.paste(label, (left, top - LABEL))
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps({
        "layer": name, "channels": channels, "height": height, "width": width,
        "scale": "shared", "low": None if math.isnan(low) else low,
        "high": None if math.isnan(high) else high, "zoom": zoom,
        "columns": grid["columns"], "rows": grid["rows"], "cell_width": grid["cell_width"],
        "header": HEADER, "label": LABEL, "gap": GAP}))
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    return legend, buf.getvalue()
