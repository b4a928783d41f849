"""Images in, labels out: the preprocessing a spec declares, its class names, and decoding.

A spec says how an image file becomes its input tensor (`preprocess:`) and what its output's
classes are called (`labels:`), as Caffe's prototxt declared its transform beside the
network. The steps and their order are torchvision's evaluation transforms, which is what the
zoo's weights were trained with:

    colour mode   PIL `Image.convert("RGB")` or `"L"` (grayscale)
    resize        torchvision `Resize(S)`: the shorter side to S, the longer one to
                  int(S * long / short) (rounded down); or `Resize((H, W))`; Pillow's
                  filter (bilinear by default; bicubic, nearest), which is what torchvision
                  uses on a PIL image
    crop          torchvision `CenterCrop`: top = round((h - H) / 2), left = round((w - W) / 2)
                  (Python's round); an image smaller than the crop is an error here, where
                  torchvision would pad it with black
    to a tensor   H x W x C bytes -> C x H x W float32, times `scale` (1/255: ToTensor)
    normalise     (x - mean[c]) / std[c] per channel (Normalize)

Compiled models carry both in their ONNX metadata_props under METADATA_PREPROCESS and
METADATA_LABELS (JSON), so that a .onnx file alone runs on images (`netc run --image`).

This module holds the declaration (read by expand.py, checked against the input by check.py,
written by emit.py) and the decoding (Pillow, imported when an image is decoded).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

METADATA_PREPROCESS = "netc.preprocess"  # JSON: Preprocess.to_dict()
METADATA_LABELS = "netc.labels"  # JSON: the class names, in output order
COLORS = {"rgb": 3, "grayscale": 1}
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
PREPROCESS_KEYS = ("color", "resize", "crop", "interpolation", "scale", "mean", "std")
MAX_SIDE = 1 << 15  # a resize or crop side (Pillow's own limit on a side is larger)
MAX_LABELS = 100_000
MAX_LABEL = 256  # characters in one class name
# An image's pixels, before and after the resize: more is refused (see open_image and
# image_pixels; a resize whose result alone is larger can make no image: read_preprocess)
MAX_PIXELS = 1 << 27
MAX_RESIZE_SIDE = math.isqrt(MAX_PIXELS)  # 11,585: a shorter side S makes at least S × S
# The preprocessed values are float32: a scale, mean or std whose result could pass
# MAX_VALUE (float32 ends at 3.4e38, and the margin keeps float32's rounding of each step
# below it) is refused, as is a scale or std under float32's smallest normal number (a scale
# that rounds to 0 makes every image 0, a std that does divides by 0)
MAX_VALUE = 1e38
FLOAT32_TINY = 2.0 ** -126  # 1.2e-38
_FLOAT32 = f"float32 ends at {3.4028234663852886e38:.2g}"
# the longest metadata strings netc parses (a record it writes is far shorter: a name of at
# most 128 characters and seven numbers; at most MAX_LABELS names of MAX_LABEL characters,
# each of which JSON may write as 6, \u0001), checked before json.loads reads them
MAX_PREPROCESS_JSON = 1 << 16
MAX_LABELS_JSON = MAX_LABELS * (6 * MAX_LABEL + 3) + 2
# the 1,000 ImageNet classes in the order of torchvision's classifiers (netc/data/)
IMAGENET = "imagenet"
# the 21 Pascal VOC classes, background first, in the order of torchvision's segmentation
# models (netc/data/)
VOC = "voc"
# `labels: NAME` for netc's own copies of well-known class lists: NAME -> (file in netc/data/,
# what it names)
SHIPPED_LABELS = {IMAGENET: ("imagenet_classes.txt", "the 1,000 ImageNet classes"),
                  VOC: ("voc_classes.txt", "the 21 Pascal VOC classes")}


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes the input `input` (N x C x H x W, float32).

    `resize` is (S,) for the shorter side or (H, W); `crop` a centre crop (H, W); None: not
    done. Pixel values 0..255 are multiplied by `scale`, then `mean` is subtracted and the
    result divided by `std`, per channel (one value each for grayscale, three for RGB)."""

    input: str
    color: str = "rgb"
    resize: tuple[int, ...] | None = None
    crop: tuple[int, int] | None = None
    interpolation: str = "bilinear"
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)

    @property
    def channels(self) -> int:
        return COLORS[self.color]

    def size(self) -> tuple[int, int] | None:
        """The (H, W) the steps produce: the crop, or a resize to H x W; None when the
        image's own size passes through (then it must already be the input's size)."""
        if self.crop is not None:
            return self.crop
        if self.resize is not None and len(self.resize) == 2:
            return self.resize
        return None

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("resize", "crop", "mean", "std"):
            d[key] = list(d[key]) if d[key] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        """The inverse of to_dict; raises ValueError for anything else (a model's metadata
        comes from strangers too), and for values that read_preprocess refuses in a spec
        (a resize past MAX_PIXELS, values past float32)."""
        if not isinstance(d, dict) or set(d) - set(PREPROCESS_KEYS) - {"input"} \
                or not isinstance(d.get("input"), str):
            raise ValueError("not a netc preprocessing record")
        color = d.get("color", "rgb")
        if not isinstance(color, str) or color not in COLORS:
            raise ValueError(f"unknown colour mode {_brief(color)}")
        n = COLORS[color]

        def ints(key, lengths):
            v = d.get(key)
            if v is None:
                return None
            if not isinstance(v, list) or len(v) not in lengths or not all(
                    type(x) is int and 1 <= x <= MAX_SIDE for x in v):
                raise ValueError(f"bad size {_brief(v)}")
            problem = _pixels_problem(key, tuple(v))
            if problem:
                raise ValueError(problem[0])
            return tuple(v)

        def floats(v, positive):
            reals = [_real(x) for x in v] if isinstance(v, list) else None
            if reals is None or len(v) != n or not all(
                    x is not None and math.isfinite(x) and (x > 0 if positive else True)
                    for x in reals):
                raise ValueError(f"bad per-channel values {_brief(v)}")
            return tuple(reals)

        scale = _real(d.get("scale", 1 / 255))
        if scale is None or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"bad scale {_brief(d.get('scale'))}")
        interpolation = d.get("interpolation", "bilinear")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {_brief(interpolation)}")
        mean = floats(d.get("mean", [0.0] * n), False)
        std = floats(d.get("std", [1.0] * n), True)
        problems = _float32_problems(scale, mean, std)
        if problems:
            raise ValueError(problems[0][2])
        return cls(d["input"], color, ints("resize", (1, 2)), ints("crop", (2,)),
                   interpolation, scale, mean, std)


def _real(x) -> float | None:
    """A JSON or YAML number as a float (inf past float's range), None for anything else."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        return float(x)
    except OverflowError:  # an integer past 1.8e308
        return math.inf if x > 0 else -math.inf


def _brief(value) -> str:
    """A value from a stranger's record, for a message: repr, cut short (and never deeper than
    a few levels, so a nested one cannot recurse)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlevel = 60, 60, 3
    return r.repr(value)


def _pixels_problem(key: str, sides: tuple[int, ...]) -> tuple[str, str] | None:
    """(message, hint) when a resize (or a crop) makes more than MAX_PIXELS for every image:
    a shorter side S makes at least S × S, [H, W] makes H × W, and an image holding the crop
    has at least its pixels. None when it does not."""
    h, w = (sides[0], sides[0]) if len(sides) == 1 else sides
    if h * w <= MAX_PIXELS:
        return None
    shown = sides[0] if len(sides) == 1 else list(sides)
    least = "at least " if len(sides) == 1 or key == "crop" else ""
    return (f"preprocess {key} {shown} makes images of {least}{w:,}×{h:,} pixels ({w * h:,}), "
            f"more than netc processes ({MAX_PIXELS:,})",
            f"{key}: {MAX_RESIZE_SIDE} is the largest square ([H, W] may have up to "
            f"{MAX_PIXELS:,} pixels); torchvision's ImageNet transform is resize: 256 with "
            "crop: 224")


def _float32_problems(scale: float, mean: tuple[float, ...],
                      std: tuple[float, ...]) -> list[tuple[str, int | None, str]]:
    """(key, channel or None, message) for each of scale, mean and std whose use would pass
    float32's range: (x × scale - mean) / std for pixels x of 0..255, each step rounded to
    float32 (and emit.py's scale / std and -mean / std for --uint8-input, which are no
    larger). The values are finite; scale and std positive."""
    found = []
    if scale < FLOAT32_TINY:
        found.append(("scale", None, f"preprocess scale {scale:g} is below float32's smallest "
                      f"normal number ({FLOAT32_TINY:.2g}): every pixel would be 0"))
    elif 255 * scale > MAX_VALUE:
        from decimal import Decimal  # (255 × 1e308 is inf in float)

        found.append(("scale", None, f"preprocess scale {scale:g} makes pixel 255 into "
                      f"255 × scale = {Decimal(255) * Decimal(scale):.3g}, more than "
                      f"{MAX_VALUE:g} ({_FLOAT32})"))
    for c, m in enumerate(mean):
        if abs(m) > MAX_VALUE:
            found.append(("mean", c, f"preprocess mean[{c}] is {m:g}, more than {MAX_VALUE:g} "
                          f"in size ({_FLOAT32})"))
    for c, s in enumerate(std):
        if not FLOAT32_TINY <= s <= MAX_VALUE:
            found.append(("std", c, f"preprocess std[{c}] is {s:g}: a divisor must be from "
                          f"float32's smallest normal number, {FLOAT32_TINY:.2g}, to "
                          f"{MAX_VALUE:g} ({_FLOAT32})"))
    if found:
        return found
    for c, (m, s) in enumerate(zip(mean, std)):
        top = max(abs(m), abs(255 * scale - m)) / s
        if top > MAX_VALUE:
            # the divisor when it enlarges, else the larger of the two terms
            key = "std" if s < 1 else "mean" if abs(m) >= 255 * scale else "scale"
            found.append((key, None if key == "scale" else c,
                          f"preprocess makes values as large as {top:.3g} in channel {c} "
                          f"((x × scale - mean) / std for pixels x of 0..255, with scale "
                          f"{scale:g}, mean {m:g}, std {s:g}), more than {MAX_VALUE:g} "
                          f"({_FLOAT32})"))
    return found


FLOAT32_HINTS = {
    "scale": "scale: 1/255 makes pixels 0..1 (torchvision's ToTensor); scale: 1 keeps 0..255",
    "mean": "mean is in the units after the scale (0..1 with scale 1/255): ImageNet's is "
            "[0.485, 0.456, 0.406]",
    "std": "std is in the units after the scale (0..1 with scale 1/255): ImageNet's is "
           "[0.229, 0.224, 0.225]",
}


def to_metadata(preprocess: Preprocess | None, labels: tuple[str, ...] | None) -> dict:
    """The metadata_props entries of a model (empty when it declares neither)."""
    import json  # (here and below: `netc check` reads this module and never needs JSON)

    props = {}
    if preprocess is not None:
        props[METADATA_PREPROCESS] = json.dumps(preprocess.to_dict(), separators=(",", ":"))
    if labels is not None:
        props[METADATA_LABELS] = json.dumps(list(labels), ensure_ascii=False,
                                            separators=(",", ":"))
    return props


def from_metadata(props: dict) -> tuple[Preprocess | None, tuple[str, ...] | None]:
    """The preprocessing and labels a model's metadata_props carry; ValueError if present
    but malformed (too long to be netc's, nested too deeply, not JSON, not a record, values
    a spec could not hold, more than MAX_LABELS names or a name longer than MAX_LABEL).
    Only netc.preprocess and netc.labels are read here: netc.input is netc run's
    (tools/predict.py)."""
    preprocess = labels = None
    if METADATA_PREPROCESS in props:
        found = _metadata_json(props, METADATA_PREPROCESS, MAX_PREPROCESS_JSON)
        try:
            preprocess = Preprocess.from_dict(found)
        except RecursionError:  # (a nested value that _brief did not cut: defensive)
            raise ValueError(f"{METADATA_PREPROCESS} is nested too deeply to be a netc "
                             "record") from None
    if METADATA_LABELS in props:
        found = _metadata_json(props, METADATA_LABELS, MAX_LABELS_JSON)
        if not isinstance(found, list):
            raise ValueError(f"{METADATA_LABELS} is not a list of names")
        if len(found) > MAX_LABELS:
            raise ValueError(f"{METADATA_LABELS} names {len(found):,} classes, more than netc "
                             f"reads ({MAX_LABELS:,})")
        if not all(isinstance(x, str) for x in found):
            raise ValueError(f"{METADATA_LABELS} is not a list of names")
        long = next((i for i, x in enumerate(found) if len(x) > MAX_LABEL), None)
        if long is not None:
            raise ValueError(f"{METADATA_LABELS}: name {long + 1:,} is {len(found[long]):,} "
                             f"characters long, more than {MAX_LABEL}")
        labels = tuple(found)
    return preprocess, labels


def _metadata_json(props: dict, key: str, limit: int):
    """The JSON value of metadata entry `key`, its length bounded before it is parsed;
    ValueError for text that is too long, nested too deeply for json.loads, or not JSON."""
    text = props[key]
    if not isinstance(text, str):
        raise ValueError(f"{key} is not text")
    if len(text) > limit:
        raise ValueError(f"{key} is {len(text):,} characters long, longer than netc writes "
                         f"({limit:,})")
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{key} is not JSON: {e}") from None
    except RecursionError:
        raise ValueError(f"{key} is nested too deeply to be a netc record") from None


@lru_cache(maxsize=None)  # (read once: every zoo spec names them)
def shipped_labels(name: str) -> tuple[str, ...]:
    """The class names of `labels: NAME` for NAME in SHIPPED_LABELS, from netc's copy in
    netc/data/ (netc/data/README.md names each file's source and licence)."""
    path = Path(__file__).parent / "data" / SHIPPED_LABELS[name][0]
    return tuple(line for line in path.read_text(encoding="utf-8").splitlines() if line)


def imagenet_labels() -> tuple[str, ...]:
    """The 1,000 ImageNet class names, in the order of torchvision's classifiers (from
    torchvision's `torchvision/models/_meta.py`, `_IMAGENET_CATEGORIES`, BSD-3-Clause; see
    netc/data/imagenet_classes.txt)."""
    return shipped_labels(IMAGENET)


def voc_labels() -> tuple[str, ...]:
    """The 21 Pascal VOC class names, `__background__` first, in the order of torchvision's
    segmentation models (from torchvision's `torchvision/models/_meta.py`, `_VOC_CATEGORIES`,
    BSD-3-Clause; see netc/data/voc_classes.txt)."""
    return shipped_labels(VOC)


# --- decoding ------------------------------------------------------------------------------


def resized_size(width: int, height: int, resize: tuple[int, ...]) -> tuple[int, int]:
    """(width, height) after torchvision's Resize: (S,) puts the shorter side at S and the
    longer at int(S * long / short) (torchvision's `_compute_resized_output_size`); (H, W)
    is exact."""
    if len(resize) == 2:
        return resize[1], resize[0]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = resize[0], int(resize[0] * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def crop_box(width: int, height: int, crop: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of torchvision's CenterCrop of a width x height image."""
    top = int(round((height - crop[0]) / 2.0))
    left = int(round((width - crop[1]) / 2.0))
    return left, top, left + crop[1], top + crop[0]


# --- reading the declaration (expand.py calls these) ------------------------------------------

_FRACTION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*([0-9]+(?:\.[0-9]+)?)\s*\Z")
LABELS_FILE_BYTES = 4 << 20


def read_preprocess(diags, node, inputs) -> Preprocess | None:
    """`preprocess:` of a spec, checked against its inputs (`expand.InputDecl`s); None after
    an error (reported) or when absent. Every key is optional: `color` follows the input's
    channels, `scale` is 1/255, `mean` 0 and `std` 1.

    Every independent error is reported: each key is read on its own (a bad colour or mean
    hides nothing else), and the sizes are checked against the input whenever the keys they
    depend on are valid. Only what follows from an earlier error is left out: the lengths of
    mean and std when the channels are unknown, the sizes when the input is."""
    from .errors import closest, did_you_mean
    from .load import YList, YMap, YScalar, kind_name

    if node is None:
        return None
    if not isinstance(node, YMap):
        diags.error("E103", f"preprocess must be a mapping, not {kind_name(node)}", node.span,
                    hints=["preprocess: {resize: 256, crop: 224, mean: [0.485, 0.456, 0.406], "
                           "std: [0.229, 0.224, 0.225]}"])
        return None
    failed, meant = False, set()
    for key in node.entries:
        if key not in PREPROCESS_KEYS and key != "input":
            meant.add(closest(key, PREPROCESS_KEYS))
            diags.error("E102", f"unknown key '{key}' in preprocess", node.key_span(key),
                        hints=did_you_mean(key, PREPROCESS_KEYS + ("input",))
                        or [f"preprocess takes: {', '.join(PREPROCESS_KEYS)} (and `input`)"])
            failed = True
    # --- which input: its channels and size (None when it is not known: reported)
    images = [d for d in inputs if len(d.shape) == 4]
    target = node.get("input")
    decl = None
    if target is not None:
        name = target.value if isinstance(target, YScalar) else None
        found = [d for d in inputs if d.name == name]
        if found:
            decl = found[0]
        else:
            diags.error("E111", f"preprocess: no input is named {name!r}" if isinstance(name, str)
                        else f"preprocess: input must be an input's name, not {kind_name(target)}",
                        target.span, hints=did_you_mean(str(name), [d.name for d in inputs])
                        or [f"inputs: {', '.join(d.name for d in inputs)}"])
            failed = True
    elif len(images) == 1:
        decl = images[0]
    else:
        if inputs:  # (no inputs: reported already)
            diags.error("E117", f"preprocess makes one N×C×H×W input, and this spec has "
                        f"{len(images)} of them" + (f" ({', '.join(d.name for d in images)})"
                                                    if images else ""),
                        node.span, hints=["name it: `input: <name>` in preprocess"]
                        if images else ["preprocess is for a spec whose input is an image"])
        failed = True
    if decl is not None and len(decl.shape) != 4:
        diags.error("E117", f"preprocess makes an N×C×H×W image, and input '{decl.name}' is "
                    f"{len(decl.shape)}-D", (target or node).span)
        decl, failed = None, True
    channels, height, width = decl.shape[1:] if decl is not None else (None, None, None)

    def number(key, positive=True):
        v = node.get(key)
        value = v.value if isinstance(v, YScalar) else None
        if isinstance(value, str) and _FRACTION.match(value):
            a, b = _FRACTION.match(value).groups()
            value = float(a) / float(b) if float(b) else math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or (positive and value <= 0):
            diags.error("E105" if isinstance(value, (int, float)) else "E103",
                        f"preprocess {key} must be a {'positive ' if positive else ''}number"
                        f"{' or a fraction such as 1/255' if key == 'scale' else ''}, not "
                        f"{kind_name(v)}", v.span)
            return None
        return float(value)

    def sides(key, lengths):
        v = node.get(key)
        items = v.items if isinstance(v, YList) else [v]
        values = [i.value if isinstance(i, YScalar) else None for i in items]
        if len(items) not in lengths or not all(
                type(x) is int and 1 <= x <= MAX_SIDE for x in values):
            form = "a size S (the shorter side) or [H, W]" if key == "resize" else "a size or [H, W]"
            diags.error("E103" if not all(type(x) is int for x in values) else "E105",
                        f"preprocess {key} must be {form} of whole pixels from 1 to "
                        f"{MAX_SIDE:,}, not {kind_name(v)}", v.span)
            return None
        problem = _pixels_problem(key, tuple(values) if key == "resize" or len(values) == 2
                                  else (values[0], values[0]))
        if problem:
            diags.error("E105", problem[0], v.span, hints=[problem[1]])
            return None
        return tuple(values)

    def per_channel(key, n, positive):
        """The values of `key`, one per channel (n of them; None: not known), each a finite
        number (positive for std); None after errors (each at its value)."""
        v = node.get(key)
        example = f"{key}: [{', '.join(['0.5'] * (n or 3))}]"
        if not isinstance(v, YList):
            diags.error("E103", f"preprocess {key} must be a list of numbers, one per channel, "
                        f"not {kind_name(v)}", v.span, hints=[example])
            return None
        values, bad = [], False
        for i, item in enumerate(v.items):
            x = item.value if isinstance(item, YScalar) else None
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                diags.error("E103", f"preprocess {key}[{i}] must be a number, not "
                            f"{kind_name(item)}", item.span, hints=[example])
                bad = True
            elif not math.isfinite(x):
                shown = ".nan" if x != x else ".inf" if x > 0 else "-.inf"
                diags.error("E105", f"preprocess {key}[{i}] must be a finite number, not "
                            f"{shown}", item.span, hints=[FLOAT32_HINTS[key]])
                bad = True
            elif positive and x <= 0:
                diags.error("E105", f"preprocess {key} must be positive (it divides): "
                            f"{key}[{i}] is {x:g}", item.span, hints=[FLOAT32_HINTS[key]])
                bad = True
            else:
                values.append(float(x))
        if n is not None and len(v.items) != n:
            diags.error("E117", f"preprocess {key} has {len(v.items)} value"
                        f"{'s' * (len(v.items) != 1)}, and input '{decl.name}' has {n} channel"
                        f"{'s' * (n != 1)}", v.span,
                        hints=[f"give one value per channel: {key}: [{', '.join(['...'] * n)}]"])
            bad = True
        return None if bad else tuple(values)

    # --- colour: the input's channels decide (a colour given must agree)
    color = {3: "rgb", 1: "grayscale"}.get(channels)
    if "color" in node.entries:
        v = node.get("color")
        given = v.value if isinstance(v, YScalar) else None
        if given not in COLORS:
            diags.error("E105", f"preprocess color must be rgb or grayscale, not {kind_name(v)}",
                        v.span, hints=did_you_mean(str(given), COLORS) or [])
            failed = True
        elif channels is not None and COLORS[given] != channels:
            diags.error("E117", f"preprocess color {given} makes {COLORS[given]} channel"
                        f"{'s' * (COLORS[given] > 1)}, and input '{decl.name}' has {channels}",
                        v.span, hints=[f"color: {color}" if color else
                                       "an image has 1 (grayscale) or 3 (rgb) channels"])
            failed = True
        else:
            color = given
    elif channels is not None and color is None:
        diags.error("E117", f"preprocess makes 1 (grayscale) or 3 (rgb) channels, and input "
                    f"'{decl.name}' has {channels}", node.span)
        failed = True
    # the number of values mean and std must have; None: not known (an error said why)
    n = COLORS[color] if color is not None and decl is not None else None
    # --- each key on its own
    resize = sides("resize", (1, 2)) if "resize" in node.entries else None
    crop = sides("crop", (1, 2)) if "crop" in node.entries else None
    if crop is not None and len(crop) == 1:
        crop = (crop[0], crop[0])
    interpolation = "bilinear"
    if "interpolation" in node.entries:
        v = node.get("interpolation")
        interpolation = v.value if isinstance(v, YScalar) else None
        if interpolation not in INTERPOLATIONS:
            diags.error("E105", f"preprocess interpolation must be one of "
                        f"{', '.join(INTERPOLATIONS)}, not {kind_name(v)}", v.span,
                        hints=did_you_mean(str(interpolation), INTERPOLATIONS) or [])
            failed = True
    scale = number("scale") if "scale" in node.entries else 1 / 255
    mean = per_channel("mean", n, False) if "mean" in node.entries else (0.0,) * (n or 3)
    std = per_channel("std", n, True) if "std" in node.entries else (1.0,) * (n or 3)
    if None in (scale, mean, std) or ("resize" in node.entries and resize is None) \
            or ("crop" in node.entries and crop is None):
        failed = True
    else:
        for key, channel, message in _float32_problems(scale, mean, std):
            v = node.get(key)
            at = v.items[channel] if channel is not None and isinstance(v, YList) else v
            diags.error("E105", message, (at or node).span, hints=[FLOAT32_HINTS[key]])
            failed = True
    # --- the sizes against the input, when the keys they need are valid
    if decl is not None and crop is not None and crop != (height, width):
        diags.error("E117", f"preprocess makes {crop[0]}×{crop[1]} images (crop), and input "
                    f"'{decl.name}' is {height}×{width}", node.get("crop").span,
                    hints=[f"crop: {height if height == width else [height, width]}"])
        failed = True
    elif decl is not None and "crop" not in node.entries and resize is not None:
        if len(resize) == 2 and resize != (height, width):
            diags.error("E117", f"preprocess makes {resize[0]}×{resize[1]} images (resize), and "
                        f"input '{decl.name}' is {height}×{width}", node.get("resize").span,
                        hints=[f"crop: {height if height == width else [height, width]}, or "
                               f"resize: [{height}, {width}]"])
            failed = True
        elif len(resize) == 1 and resize[0] != min(height, width):
            # the shorter side at S and no crop: an image comes out S × S (square) or S on its
            # shorter side; only S equal to the input's shorter side can make the input
            diags.error("E117", f"preprocess resizes the shorter side to {resize[0]} and crops "
                        f"nothing, and input '{decl.name}' is {height}×{width}: no image comes "
                        f"out {height}×{width}", node.get("resize").span,
                        hints=[f"resize: {min(height, width)} with crop: "
                               f"{height if height == width else [height, width]} (any image), "
                               f"or resize: [{height}, {width}] (stretched to it)"])
            failed = True
    if crop is not None and resize is not None and len(resize) == 2 \
            and (resize[0] < crop[0] or resize[1] < crop[1]):
        diags.error("E117", f"preprocess resizes to {resize[0]}×{resize[1]}, smaller than its "
                    f"{crop[0]}×{crop[1]} crop", node.get("resize").span)
        failed = True
    if crop is not None and resize is not None and len(resize) == 1 and resize[0] < max(crop):
        diags.error("E117", f"preprocess resizes the shorter side to {resize[0]}, smaller than "
                    f"its {crop[0]}×{crop[1]} crop", node.get("resize").span,
                    hints=[f"resize: {max(crop)} or more (torchvision's ratio is 256 for 224)"])
        failed = True
    if failed:
        return None
    return Preprocess(decl.name, color, resize, crop, interpolation, scale, mean, std)


def read_labels(diags, node, source_path: str | None) -> tuple[str, ...] | None:
    """`labels:` of a spec: `imagenet` or `voc` (netc's copies of the 1,000 ImageNet names
    and of the 21 Pascal VOC names: SHIPPED_LABELS), a file
    beside the spec (one name a line; it must lie in the spec's folder, as a spec may come
    from a stranger and the names go into the model), or a list. None after an error
    (reported) or when absent."""
    from .load import YList, YScalar, kind_name

    if node is None:
        return None
    if isinstance(node, YList):
        names = []
        for item in node.items:
            v = item.value if isinstance(item, YScalar) else None
            if isinstance(v, bool) or not isinstance(v, (str, int)) or str(v) == "":
                diags.error("E103", f"a label must be a name or a number, not {kind_name(item)}",
                            item.span)
                return None
            if len(str(v)) > MAX_LABEL:
                diags.error("E112", f"a label of {len(str(v)):,} characters is longer than "
                            f"{MAX_LABEL}", item.span)
                return None
            names.append(str(v))
        if not names:
            diags.error("E103", "labels must name at least one class", node.span)
            return None
        return tuple(names)
    value = node.value if isinstance(node, YScalar) else None
    if not isinstance(value, str) or not value:
        diags.error("E103", f"labels must be `imagenet`, a file name or a list of names, not "
                    f"{kind_name(node)}", node.span,
                    hints=["labels: imagenet", "labels: voc (the 21 Pascal VOC classes)",
                           "labels: classes.txt (one name a line)", "labels: [cat, dog]"])
        return None
    if value in SHIPPED_LABELS:
        return shipped_labels(value)
    return _labels_file(diags, node, value, source_path)


def _labels_file(diags, node, value: str, source_path: str | None) -> tuple[str, ...] | None:
    if source_path is None or source_path.startswith("<"):
        diags.error("E119", f"labels file {value!r}: a spec read from memory has no folder to "
                    "find it in", node.span, hints=["give the names as a list"])
        return None
    folder = Path(source_path).resolve().parent
    try:
        path = (folder / value).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # 3.11: RuntimeError for a loop of links
        reason = "the name holds a NUL" if isinstance(e, ValueError) else \
            "its symbolic links form a loop"
        diags.error("E119", f"cannot read labels file {value!r}: {reason}", node.span)
        return None
    if Path(value).is_absolute() or not path.is_relative_to(folder):
        diags.error("E119", f"labels file {value!r} is outside the spec's folder", node.span,
                    hints=["put the labels file beside the spec (a spec may come from someone "
                           "else: netc reads no file it names outside its folder)"])
        return None
    from .files import note_input

    from .errors import NetcError
    from .load import open_regular, read_at_most, unreadable

    reason = None
    try:
        with open_regular(str(path), "E119") as f:  # a FIFO or a device: refused, unread
            note_input(path, "the labels file")  # (no output may replace it)
            data = read_at_most(f, LABELS_FILE_BYTES + 1)
    except NetcError:
        reason = unreadable(str(path))
    except OSError as e:
        reason = e.strerror or str(e)
    if reason is not None:
        diags.error("E119", f"cannot read labels file {value!r}: {reason}", node.span,
                    hints=["one class name a line, in the order of the outputs; or "
                           "`labels: imagenet`"])
        return None
    if len(data) > LABELS_FILE_BYTES:
        diags.error("E119", f"labels file {value!r} is larger than "
                    f"{LABELS_FILE_BYTES >> 20} MiB", node.span)
        return None
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        diags.error("E119", f"labels file {value!r} is not UTF-8 text", node.span)
        return None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    empty = [i for i, name in enumerate(names, 1) if not name]
    if empty or not names:
        diags.error("E119", f"labels file {value!r} " + (f"has an empty line ({empty[0]})"
                    if empty else "is empty"), node.span,
                    hints=["one class name a line: line k names output k - 1"])
        return None
    if len(names) > MAX_LABELS or max(len(n) for n in names) > MAX_LABEL:
        diags.error("E119", f"labels file {value!r} has more than {MAX_LABELS:,} names or a "
                    f"name longer than {MAX_LABEL} characters", node.span)
        return None
    return tuple(names)


# --- decoding (netc run --image) ---------------------------------------------------------------

# MAX_PIXELS (above): an image's pixels, read from its header before any is decoded: more is
# refused (a decompression bomb: a few bytes of PNG can claim 100,000 × 100,000 pixels). 2^27
# is below Pillow's own refusal (2 × Image.MAX_IMAGE_PIXELS, about 179 million) so that netc's
# message, with the image's size, is the one a user sees; 2^27 RGB pixels decode to 384 MiB.
# The same limit holds for the image the resize makes (image_pixels), checked before it is
# made: a 10000×1 image with its shorter side resized to 256 would be 2,560,000×256.
IMAGE_FORMATS = "PNG, JPEG, BMP, GIF, TIFF or WebP"
_SMALLER = "a network's input is a few hundred pixels a side: scale the image down first"


def open_image(path: str):
    """The image at `path`, decoded by Pillow, as a PIL image in the mode the file holds.

    Its width × height is read from the header and checked against MAX_PIXELS before any pixel
    is decoded. Raises NetcError E605 when the file is not an image Pillow reads (naming what
    it is: text, a .npy array ...), is truncated or corrupt, or is too large."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    from .errors import fail
    from .files import note_input
    from .load import regular_file

    regular_file(path, "E605", "image ")  # a FIFO would block Pillow, /dev/zero never end
    try:
        with warnings.catch_warnings():
            # netc's own limit (below) decides, and says so in a message, not a warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            note_input(path, "an image")  # (no output of this run may replace it)
            image = Image.open(path)
    except Image.DecompressionBombError as e:
        # Pillow refuses past 2 × MAX_IMAGE_PIXELS as it opens, before netc sees the size;
        # its message has the pixel count ("Image size (N pixels) exceeds limit of ...")
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"has {int(found.group(1)):,} pixels" if found else f"is too large ({e})"
        raise fail("E605", f"image '{path}' {size}: more than netc decodes ({MAX_PIXELS:,})",
                   None, hints=[_SMALLER]) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        kind = sniff(path)
        reason = getattr(e, "strerror", None) or str(e)
        if kind is not None and kind.endswith(" image"):
            # its signature says image, yet Pillow cannot read it: damaged, or a variant
            message = f"cannot read image '{path}': it starts as {kind}, and Pillow cannot " \
                      f"read it ({reason})"
        elif kind is not None:
            message = f"cannot read image '{path}': it is {kind}, not an image"
        else:
            message = f"cannot read image '{path}': {reason}"
        raise fail("E605", message, None, hints=[f"give {IMAGE_FORMATS} files"]) from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise fail("E605", f"image '{path}' is {width:,}×{height:,} (width × height), "
                   f"{width * height:,} pixels: more than netc decodes ({MAX_PIXELS:,})", None,
                   hints=[_SMALLER])
    try:
        image.load()
    except Exception as e:  # a truncated or corrupt file fails in any of the plugins' ways
        image.close()
        raise fail("E605", f"cannot decode image '{path}' ({image.format or 'unknown format'}, "
                   f"{width}×{height}): {e}", None,
                   hints=["the file is truncated or damaged: decode it in an image viewer, or "
                          "export it again"]) from None
    return image


_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"), (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"), (b"\x93NUMPY", "a .npy array"),
    (b"PK\x03\x04", "a zip archive (an .npz file is one)"), (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "gzip-compressed data"), (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
]


def sniff(path: str) -> str | None:
    """What a file is, from its first bytes, for messages: "a PNG image" (every image kind
    ends in " image"), "a .npy array", "text", "Python pickle data", "an empty file" ...;
    None when it is unknown (or unreadable)."""
    from .errors import NetcError
    from .load import open_regular, read_at_most

    try:
        with open_regular(path) as f:  # a FIFO or a device is no known format: never read
            head = read_at_most(f, 512)
    except (OSError, NetcError):
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    # BMP: "BM", then at byte 14 the size of a known DIB header (text can start with "BM")
    if head[:2] == b"BM" and len(head) >= 18 \
            and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return "a BMP image"
    # safetensors: an 8-byte little-endian header length, then a JSON object
    if len(head) >= 10 and head[8:10] == b'{"' \
            and 2 <= int.from_bytes(head[:8], "little") < 100 << 20:
        return "a safetensors file"
    if head.startswith(b"\x80") and len(head) > 1 and head[1] in range(2, 6):
        return "Python pickle data"
    if not head:
        return "an empty file"
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # only a character cut at byte 512 is forgiven
        if not (e.reason == "unexpected end of data" and e.start >= len(head) - 3):
            return None
    return "text"


def preprocess_image(image, preprocess: Preprocess, path: str = "<image>"):
    """A decoded PIL image made into the input tensor: C × H × W float32 (C = 3 for rgb, 1 for
    grayscale; H × W = the crop, or the resize's [H, W], or the image's own size).

    The steps are torchvision's Resize, CenterCrop, ToTensor and Normalize applied to
    `image.convert("RGB")` (or Grayscale), with the same results to the bit (module doc and
    tests/test_preprocess.py): `image_pixels`, then x × scale in float32 (x / k when scale is
    1/k for a whole k, as ToTensor divides by 255), then (x - mean[c]) / std[c] in float32.
    Raises NetcError E602 when the image is smaller than the crop (or the resize would make it
    larger than MAX_PIXELS), E605 when its pixels cannot be made the declared colour (integer
    or float values outside 0..255, NaN)."""
    import numpy as np

    pixels = image_pixels(image, preprocess, path)
    x = pixels.transpose(2, 0, 1).astype(np.float32)
    inverse = 1 / preprocess.scale
    reciprocal = round(inverse) if inverse <= 1 << 24 else 0  # (a whole float32 up to 2^24)
    if reciprocal >= 1 and 1 / reciprocal == preprocess.scale:
        x /= np.float32(reciprocal)  # exactly ToTensor's x / 255 (x * (1/255) is 1 ulp off)
    else:
        x *= np.float32(preprocess.scale)
    mean = np.asarray(preprocess.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(preprocess.std, dtype=np.float32).reshape(-1, 1, 1)
    return (x - mean) / std


def image_pixels(image, preprocess: Preprocess, path: str = "<image>"):
    """A decoded PIL image made into H × W × C uint8 pixels 0..255: the declared colour mode,
    resize (Pillow's filter, as torchvision's Resize on a PIL image) and centre crop; no scale,
    mean or std (the input of a model compiled with --uint8-input, which does those itself).
    Raises NetcError E602 when the image is smaller than the crop or the resize would make more
    than MAX_PIXELS (checked before it is made), E605 when its pixels cannot be made the
    declared colour."""
    import numpy as np
    from PIL import Image

    from .errors import fail

    image = _colored(image, preprocess.color, path)
    filters = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "nearest": Image.Resampling.NEAREST}
    before = image.size
    if preprocess.resize is not None:
        size = resized_size(image.width, image.height, preprocess.resize)
        if size[0] * size[1] > MAX_PIXELS:
            if _pixels_problem("resize", preprocess.resize) is None:  # the image's shape
                hint = f"its sides are {max(before) / min(before):,.0f}:1, and the resize " \
                       f"puts the shorter one at {preprocess.resize[0]:,}: crop the image " \
                       "nearer to square before running it"
            else:  # no image at all (a model's metadata; a spec cannot declare it)
                hint = "compile the model again from its spec"
            raise fail("E602", f"image '{path}' is {before[0]:,}×{before[1]:,} (width × "
                       f"height), and the resize to {list(preprocess.resize)} would make it "
                       f"{size[0]:,}×{size[1]:,}, {size[0] * size[1]:,} pixels: more than netc "
                       f"processes ({MAX_PIXELS:,})", None, hints=[hint])
        if size != image.size:  # (torchvision returns the image itself then)
            image = image.resize(size, filters[preprocess.interpolation])
    if preprocess.crop is not None:
        h, w = preprocess.crop
        if image.height < h or image.width < w:
            if preprocess.resize is None:
                where = f"is {image.width}×{image.height}"
                hints = ["use a larger image, or declare `resize:` in the spec's preprocess "
                         f"(e.g. resize: {max(h, w)}) so that images are scaled to the crop "
                         "first"]
            else:
                where = f"is {before[0]}×{before[1]}, {image.width}×{image.height} after the " \
                        f"resize to {list(preprocess.resize)}"
                hints = [f"resize to at least the crop: resize: {max(h, w)}"]
            raise fail("E602", f"image '{path}' {where} (width × height), smaller than the "
                       f"{w}×{h} crop", None, hints=hints)
        image = image.crop(crop_box(image.width, image.height, preprocess.crop))
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _colored(image, color: str, path: str):
    """`image` in mode "RGB" or "L" (`color`), as `image.convert(...)` makes it (which is what
    torchvision users write), except where that would clip: 16-bit grayscale keeps its high
    byte, as Pillow decodes 16-bit RGB: a 16-bit PNG or TIFF ("I;16") and a PGM whose maxval
    is above 255 (mode "I" from the PPM plugin, which scales it to 0..65535); other integer
    or float pixels ("I", "F") must hold 0..255 (their scale is not known), and float ones
    must be numbers (NaN is no level). Transparency is dropped, as convert does. Raises
    NetcError E605 for pixels that cannot be converted."""
    import warnings

    import numpy as np
    from PIL import Image

    from .errors import fail

    mode = "RGB" if color == "rgb" else "L"
    sixteen = image.mode.startswith("I;16")
    if image.mode == "I" and image.format == "PPM":
        values = np.asarray(image)
        sixteen = not values.size or (values.min() >= 0 and values.max() <= 65535)
    if sixteen:
        wide = np.asarray(image).astype(np.uint16)
        image = Image.fromarray((wide >> 8).astype(np.uint8))  # mode L
    elif image.mode in ("I", "F"):
        values = np.asarray(image)
        nan = int(np.isnan(values).sum()) if image.mode == "F" else 0
        if nan:  # (NaN passes every comparison of the range test below)
            raise fail("E605", f"image '{path}' has {nan:,} floating-point pixel"
                       f"{'s' * (nan != 1)} that {'are' if nan != 1 else 'is'} not a number "
                       "(NaN): netc reads levels 0..255", None,
                       hints=["replace them (e.g. np.nan_to_num(x, nan=0)) and save it as an "
                              "8-bit PNG (values 0..255)"])
        low, high = (float(values.min()), float(values.max())) if values.size else (0, 0)
        if low < 0 or high > 255:
            # (mode I holds 32-bit values, and 16-bit ones from some files: no bit depth named)
            kind = "integer" if image.mode == "I" else "floating-point"
            raise fail("E605", f"image '{path}' has {kind} pixels from {low:g} to {high:g}: "
                       "netc reads 8-bit levels 0..255 and does not know this image's scale",
                       None, hints=["save it as an 8-bit PNG (values 0..255), e.g. "
                                    "Image.fromarray(np.uint8(x / x.max() * 255))"])
    if image.mode == mode:
        return image
    try:
        with warnings.catch_warnings():
            # a palette image with transparency: the transparency is dropped, as intended
            warnings.simplefilter("ignore", UserWarning)
            return image.convert(mode)
    except (ValueError, OSError) as e:
        raise fail("E605", f"cannot convert image '{path}' from mode {image.mode} to "
                   f"{mode}: {e}", None, hints=["save it as an RGB or grayscale PNG"]) from None
