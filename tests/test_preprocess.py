"""Decoding an image into a network's input (netc/images.py) against two oracles.

1. torchvision.transforms (where installed): `Compose([Grayscale()?, Resize(size,
   interpolation), CenterCrop(crop), ToTensor(), Normalize(mean, std)])` on the same PIL
   image after `.convert("RGB")`, as torchvision's ImageFolder loads it. netc's float32 tensor
   must equal it to the bit: the zoo's declared transforms, and resizes to [H, W], bicubic,
   nearest, grayscale, crops whose offset (h - H) / 2 ends in .5 (Python's round-half-even),
   landscape and portrait, tiny and large images, RGBA/palette/LA/bilevel inputs.
2. A numpy reference, always: the whole pipeline written out here without Pillow's resize and
   without netc's code:
   - torchvision's size arithmetic (`_compute_resized_output_size`): the shorter side to S,
     the longer to floor(S * long / short);
   - Pillow's uint8 resampling (src/libImaging/Resample.c): two separable passes, each
     rounded and clipped to uint8, horizontal first except where Pillow 13 removes more than
     twice as many rows as columns (_vertical_first). For output pixel i the input window is
     centred at (i + 0.5) * scale with scale = in / out; support = filter support (bilinear
     1, bicubic 2) * max(scale, 1); the taps are filter((j - center + 0.5) / max(scale, 1))
     for j from int(center - support + 0.5) to int(center + support + 0.5), normalised to sum
     1 in double, then made fixed point: int(±0.5 + w * 2^22) (PRECISION_BITS = 22); a pixel
     is clip((2^21 + sum(v * k)) >> 22). The bilinear filter is the triangle 1 - |x|, the
     bicubic one Keys' cubic with a = -0.5;
   - Pillow's NEAREST, which is no convolution (src/libImaging/Geometry.c,
     ImagingScaleAffine): source index int(x) for x = scale / 2, then x += scale per output
     pixel (accumulated in double, as Pillow does);
   - Pillow's conversions: palette lookup, alpha dropped, grayscale replicated, and RGB to
     grayscale by ITU-R 601-2 in fixed point, (19595 R + 38470 G + 7471 B + 2^15) >> 16;
   - CenterCrop's offsets round((h - H) / 2) with halves to even, written in integers;
   - ToTensor's x / 255 and Normalize's (x - mean) / std, in float32.
   It reproduces Pillow exactly (every comparison is equality, with no tolerance).

netc departs from `image.convert("RGB")` in one place, on purpose: a 16-bit grayscale image
(mode I;16) keeps its high byte, as Pillow decodes 16-bit RGB PNGs, where convert() would clip
every value above 255 to white; 32-bit integer or float images must hold 0..255 (E605).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import PIL
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from netc import pipeline
from netc.errors import NetcError
from netc.images import (MAX_PIXELS, Preprocess, crop_box, image_pixels, open_image,
                         preprocess_image, resized_size, sniff)

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = sorted((ROOT / "tests" / "data" / "photos").glob("*.[pj][np]g"))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --- the numpy reference ----------------------------------------------------------------------

PRECISION_BITS = 22  # Pillow's fixed point for uint8 resampling: 32 - 8 bits - 2 for overflow


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x: float) -> float:
    a = -0.5  # Keys' cubic convolution, as Pillow (and PIL before it) uses
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


FILTERS = {"bilinear": (_bilinear, 1.0), "bicubic": (_bicubic, 2.0)}


def reference_size(width: int, height: int, resize: tuple[int, ...]) -> tuple[int, int]:
    """(width, height) after torchvision's Resize, in integers: floor(S * long / short)
    equals torchvision's int(S * long / short), as a float quotient of integers below 2^53
    never rounds across a whole number."""
    if len(resize) == 2:
        return resize[1], resize[0]
    s = resize[0]
    if width <= height:
        return s, s * height // width
    return s * width // height, s


def _taps(in_size: int, out_size: int, interpolation: str) -> np.ndarray:
    """Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` as an out_size × in_size matrix
    of its fixed-point weights (whole numbers, held in float64)."""
    filt, filter_support = FILTERS[interpolation]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filter_support * filterscale
    inverse = 1.0 / filterscale
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)  # int(): truncation toward zero, as C's cast
        n = min(int(center + support + 0.5), in_size) - lo
        w = [filt((j + lo - center + 0.5) * inverse) for j in range(n)]
        total = 0.0
        for v in w:  # summed in order, as the C loop does (numpy's sum is pairwise)
            total += v
        if total != 0.0:
            w = [v / total for v in w]
        weights[i, lo:lo + n] = [int(-0.5 + v * (1 << PRECISION_BITS)) if v < 0
                                 else int(0.5 + v * (1 << PRECISION_BITS)) for v in w]
    return weights


def _nearest_index(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's NEAREST resize (ImagingScaleAffine): x starts at scale / 2 and grows by scale
    per output pixel, accumulated in double; the source index is int(x); -1 (left black)
    outside the image."""
    scale = in_size / out_size
    x, index = scale * 0.5, []
    for _ in range(out_size):
        i = int(x)
        index.append(i if 0 <= i < in_size else -1)
        x += scale
    return np.asarray(index)


def _resample_columns(pixels: np.ndarray, width: int, interpolation: str) -> np.ndarray:
    """H × W × C uint8 -> H × width × C uint8: one pass of Pillow's resampling along axis 1."""
    in_size = pixels.shape[1]
    if interpolation == "nearest":
        index = _nearest_index(in_size, width)
        out = pixels[:, np.maximum(index, 0)]
        out[:, index < 0] = 0
        return out
    # Pillow's integer sums, as a float64 product: every term (< 2^8 × 2^23) and every partial
    # sum (< 2^43) is a whole number below 2^53, so exact in any order
    h, _, c = pixels.shape
    rows = pixels.transpose(0, 2, 1).reshape(h * c, in_size).astype(np.float64)
    acc = (rows @ _taps(in_size, width, interpolation).T).reshape(h, c, width)
    acc = acc.transpose(0, 2, 1).astype(np.int64) + (1 << (PRECISION_BITS - 1))
    return np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)  # >>: floor, as C's on int


PILLOW = tuple(int(part) for part in PIL.__version__.split(".")[:2])


def _vertical_first(width: int, height: int, new_width: int, new_height: int) -> bool:
    """Whether Pillow resamples the rows (vertical pass) before the columns: the order
    changes the result by up to one level, as each pass rounds to uint8.

    Pillow 13 (python-pillow/Pillow#9549, "if height is scaled down significantly more than
    width, resize vertically first", in Resample.c) does so when it removes rows and more
    than twice as many rows as columns. The rule here was read off Pillow 13.0.0's results
    (its final C source was not at hand): it reproduced every one of 1,455 random resizes
    from up to 120 to up to 150 pixels a side, and the tests here check it on each resize."""
    if PILLOW >= (13, 0):
        return new_height < height and height - new_height > 2 * (width - new_width)
    if PILLOW >= (12, 2):  # Image.resize, python-pillow/Pillow#9524: very tall images
        return height > width * 100 and new_height < height
    return False


def reference_resize(pixels: np.ndarray, size: tuple[int, int], interpolation: str):
    """H × W × C uint8 resized to size = (width, height) in two passes, each only when its
    side changes (Pillow's ImagingResampleInner), in Pillow's order (_vertical_first)."""
    width, height = size

    def columns(p):
        return _resample_columns(p, width, interpolation) if p.shape[1] != width else p

    def rows(p):
        return p if p.shape[0] == height else _resample_columns(
            p.transpose(1, 0, 2), height, interpolation).transpose(1, 0, 2)

    if interpolation != "nearest" and _vertical_first(pixels.shape[1], pixels.shape[0],
                                                      width, height):
        return np.ascontiguousarray(columns(rows(pixels)))
    return np.ascontiguousarray(rows(columns(pixels)))


def reference_color(image: Image.Image, color: str) -> np.ndarray:
    """The decoded pixels of `image` (np.asarray: the file's own values, no conversion) made
    H × W × 3 RGB or H × W × 1 grayscale as Pillow's convert() does (module doc)."""
    raw = np.asarray(image)
    mode = image.mode
    if mode == "P":
        palette = np.asarray(image.getpalette("RGB"), np.uint8).reshape(-1, 3)
        rgb = palette[raw]
    elif mode == "1":
        rgb = np.repeat((raw.astype(np.uint8) * 255)[:, :, None], 3, axis=2)
    elif mode.startswith("I;16"):
        rgb = np.repeat((raw.astype(np.uint16) >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    elif mode in ("L", "LA"):
        grey = raw if raw.ndim == 2 else raw[:, :, 0]
        if color == "grayscale":
            return grey[:, :, None].copy()
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    elif mode in ("RGB", "RGBA"):
        rgb = raw[:, :, :3]
    else:
        raise AssertionError(f"no reference for mode {mode}")
    if color == "rgb":
        return np.ascontiguousarray(rgb)
    r, g, b = (rgb[:, :, i].astype(np.int64) for i in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16).astype(np.uint8)[:, :, None]


def _centre_offset(size: int, crop: int) -> int:
    """round((size - crop) / 2) with halves to the even neighbour, in integers."""
    q, r = divmod(size - crop, 2)
    return q + (q % 2 if r else 0)


def reference_pixels(image: Image.Image, pre: Preprocess) -> np.ndarray:
    """H × W × C uint8: colour, resize, centre crop."""
    pixels = reference_color(image, pre.color)
    if pre.resize is not None:
        size = reference_size(pixels.shape[1], pixels.shape[0], pre.resize)
        if size != (pixels.shape[1], pixels.shape[0]):
            pixels = reference_resize(pixels, size, pre.interpolation)
    if pre.crop is not None:
        top = _centre_offset(pixels.shape[0], pre.crop[0])
        left = _centre_offset(pixels.shape[1], pre.crop[1])
        pixels = pixels[top:top + pre.crop[0], left:left + pre.crop[1]]
    return pixels


def reference_tensor(image: Image.Image, pre: Preprocess) -> np.ndarray:
    """C × H × W float32: reference_pixels, ToTensor's / 255 (or × scale), Normalize."""
    x = reference_pixels(image, pre).transpose(2, 0, 1).astype(np.float32)
    x = x / np.float32(255) if pre.scale == 1 / 255 else x * np.float32(pre.scale)
    mean = np.asarray(pre.mean, np.float32)[:, None, None]
    std = np.asarray(pre.std, np.float32)[:, None, None]
    return (x - mean) / std


# --- images and preprocessings -------------------------------------------------------------------


def imagenet(resize=(256,), crop=(224, 224), interpolation="bilinear", color="rgb"):
    """torchvision's evaluation transform (ImageNet's mean and std; for grayscale 0.5, 0.25),
    with the given changes."""
    n = 3 if color == "rgb" else 1
    return Preprocess("x", color, resize, crop, interpolation, 1 / 255,
                      IMAGENET_MEAN[:n] if n == 3 else (0.5,), IMAGENET_STD[:n] if n == 3
                      else (0.25,))


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
    assert image.mode == mode
    return image


def gradient(width: int, height: int) -> Image.Image:
    """Smooth ramps (where a resize filter's rounding shows as steps) with a sharp square
    (where bicubic overshoots and its clipping matters)."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                       (x + y) * 255 // max(width + height - 2, 1)], axis=2).astype(np.uint8)
    pixels[height // 3:2 * height // 3, width // 3:2 * width // 3] = (255, 0, 255)
    return Image.fromarray(pixels)


def photos() -> list[tuple[str, Image.Image]]:
    return [(p.name, open_image(str(p))) for p in PHOTOS]


def synthetic() -> list[tuple[str, Image.Image]]:
    return [("noise 300×200 (landscape)", noise(300, 200, seed=1)),
            ("noise 199×301 (portrait)", noise(199, 301, seed=2)),
            ("gradient 257×259", gradient(257, 259)),
            ("noise 7×5 (tiny: scaled up)", noise(7, 5, seed=3)),
            ("noise 1×1", noise(1, 1, seed=4))]


def large() -> Image.Image:
    """A camera-sized image, 2400 × 1700 (shrunk 6.6 times to 256): tested on its own, as
    the reference takes about a second on it."""
    return gradient(2400, 1700)


def zoo_preprocesses() -> list[Preprocess]:
    """The distinct `preprocess:` of specs/*.yaml, as netc reads them."""
    found = []
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        pre = pipeline.check_file(path).preprocess
        if pre is not None and pre not in found:
            found.append(pre)
    return found


# resizes and crops beyond the zoo's; crops whose offset (d / 2 for odd d) ends in .5 below
# (on 300×200: resize 255 gives 382×255: (255 - 224) / 2 = 15.5 -> 16, (382 - 224) / 2 = 79;
# on 199×301 with resize 225: 225×340: 0.5 -> 0, 58)
MORE = [
    imagenet(), imagenet(interpolation="bicubic"), imagenet(interpolation="nearest"),
    imagenet(resize=(255,)), imagenet(resize=(225,), interpolation="bicubic"),
    imagenet(resize=(227,), crop=(221, 223)), imagenet(resize=(256, 320), crop=(223, 301)),
    imagenet(resize=(224, 224), crop=None), imagenet(resize=(31, 47), crop=None,
                                                    interpolation="bicubic"),
    imagenet(resize=(64,), crop=(33, 47), interpolation="nearest"),
    imagenet(resize=(32, 32), crop=None, color="grayscale"),
    imagenet(resize=(33,), crop=(31, 31), interpolation="bicubic", color="grayscale"),
    imagenet(resize=None, crop=(1, 1)),
]


def describe(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} and {b.shape}"
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return f"{int((d > 0).sum())} of {d.size} values differ, by up to {d.max():g}"


def assert_same(netc_value: np.ndarray, oracle: np.ndarray, what: str) -> None:
    assert netc_value.dtype == oracle.dtype, what
    assert np.array_equal(netc_value, oracle), f"{what}: {describe(netc_value, oracle)}"


# --- torchvision ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transforms():
    """torchvision.transforms (skipped without it: the numpy reference below runs anyway)."""
    pytest.importorskip("torchvision", reason="the oracle here is torchvision.transforms, which "
                        "is not installed (pip install torchvision); the numpy reference tests "
                        "in this file check the same pipeline without it")
    from torchvision import transforms

    return transforms


def torchvision_tensor(transforms, image: Image.Image, pre: Preprocess) -> np.ndarray:
    """What a torchvision user gets: the image converted to RGB (ImageFolder's loader), then
    [Grayscale], Resize, CenterCrop, ToTensor, Normalize."""
    assert pre.scale == 1 / 255, "torchvision's ToTensor scales by 1/255"
    mode = transforms.InterpolationMode
    steps = [transforms.Grayscale()] if pre.color == "grayscale" else []
    if pre.resize is not None:
        steps.append(transforms.Resize(pre.resize[0] if len(pre.resize) == 1
                                       else list(pre.resize),
                                       interpolation={"bilinear": mode.BILINEAR,
                                                      "bicubic": mode.BICUBIC,
                                                      "nearest": mode.NEAREST}[
                                                          pre.interpolation]))
    if pre.crop is not None:
        steps.append(transforms.CenterCrop(list(pre.crop)))
    steps += [transforms.ToTensor(), transforms.Normalize(list(pre.mean), list(pre.std))]
    with warnings.catch_warnings():  # (Pillow's about a palette's transparency, dropped)
        warnings.simplefilter("ignore", UserWarning)
        rgb = image.convert("RGB")
    return transforms.Compose(steps)(rgb).numpy()


def test_zoo_transforms_equal_torchvision(transforms):
    """Every preprocessing the zoo declares, on the photos and synthetic images: equal to the
    bit."""
    zoo = zoo_preprocesses()
    assert {(p.resize, p.crop) for p in zoo} >= {((256,), (224, 224)), ((342,), (299, 299)),
                                                 ((384,), (384, 384)), ((32, 32), None)}
    for pre in zoo:
        for name, image in photos() + synthetic()[:4]:
            assert_same(preprocess_image(image, pre), torchvision_tensor(transforms, image, pre),
                        f"{name}, {pre}")


@pytest.mark.parametrize("pre", MORE, ids=lambda p: f"{p.color}-{p.resize}-{p.crop}-"
                         f"{p.interpolation}")
def test_more_transforms_equal_torchvision(transforms, pre):
    """Resizes to [H, W], bicubic, nearest, grayscale, crops with offsets ending in .5,
    landscape and portrait, tiny (scaled up) and large images."""
    for name, image in photos() + synthetic():
        if pre.resize is None and (image.width < pre.crop[1] or image.height < pre.crop[0]):
            continue
        assert_same(preprocess_image(image, pre), torchvision_tensor(transforms, image, pre),
                    name)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_a_large_image_equals_torchvision(transforms, interpolation):
    pre = imagenet(interpolation=interpolation)
    image = large()
    assert_same(preprocess_image(image, pre), torchvision_tensor(transforms, image, pre),
                "2400×1700")


def converted_inputs() -> list[tuple[str, Image.Image]]:
    """Images in the modes files decode to, other than RGB."""
    base = noise(53, 41, seed=5)
    palette = base.quantize(64)
    with_transparency = palette.copy()
    with_transparency.info["transparency"] = bytes(range(0, 256, 4))  # a tRNS chunk's bytes
    return [("RGBA", noise(53, 41, "RGBA", seed=6)), ("L", noise(53, 41, "L", seed=7)),
            ("LA", noise(53, 41, "LA", seed=8)), ("P", palette),
            ("P with transparency", with_transparency),
            ("1 (bilevel)", noise(53, 41, "L", seed=9).convert("1"))]


@pytest.mark.parametrize("color", ["rgb", "grayscale"])
def test_converted_inputs_equal_torchvision(transforms, color):
    """RGBA, L, LA, palette and bilevel images become RGB (or grayscale) as `.convert("RGB")`
    (and Grayscale) makes them for a torchvision user; no warning about the transparency
    that conversion drops."""
    pre = imagenet(resize=(40,), crop=(32, 32), color=color)
    for name, image in converted_inputs():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = preprocess_image(image, pre)
        assert_same(got, torchvision_tensor(transforms, image, pre), name)


def test_sixteen_bit_grayscale_keeps_the_high_byte(transforms):
    """A 16-bit grayscale PNG (mode I;16): netc equals torchvision on its high bytes (as
    Pillow itself decodes a 16-bit RGB PNG), where `.convert("RGB")` would clip every value
    above 255: the image would be white."""
    rng = np.random.default_rng(10)
    wide = rng.integers(0, 65536, (41, 53), dtype=np.uint16)
    image = Image.open(io.BytesIO(png_bytes(Image.fromarray(wide))))
    assert image.mode == "I;16"
    pre = imagenet(resize=(40,), crop=(32, 32))
    high = Image.fromarray((wide >> 8).astype(np.uint8), "L")
    got = preprocess_image(image, pre)
    assert_same(got, torchvision_tensor(transforms, high, pre), "I;16")
    clipped = np.asarray(image.convert("RGB"))
    assert (clipped == 255).mean() > 0.99  # what netc avoids


# --- the numpy reference (always) ------------------------------------------------------------


def test_zoo_transforms_equal_the_reference():
    """The zoo's preprocessing on the photos and synthetic images (landscape, portrait, tiny,
    large): netc equals the numpy reference to the bit."""
    for pre in zoo_preprocesses():
        for name, image in photos() + synthetic():
            assert_same(preprocess_image(image, pre), reference_tensor(image, pre),
                        f"{name}, {pre}")


@pytest.mark.parametrize("pre", MORE, ids=lambda p: f"{p.color}-{p.resize}-{p.crop}-"
                         f"{p.interpolation}")
def test_more_transforms_equal_the_reference(pre):
    for name, image in photos() + synthetic():
        if pre.resize is None and (image.width < pre.crop[1] or image.height < pre.crop[0]):
            continue
        assert_same(preprocess_image(image, pre), reference_tensor(image, pre), name)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_a_large_image_equals_the_reference(interpolation):
    """2400 × 1700 to 256 shortest side: support 6.6 (bilinear) and 13.3 (bicubic) pixels."""
    pre = imagenet(interpolation=interpolation)
    image = large()
    assert_same(preprocess_image(image, pre), reference_tensor(image, pre), "2400×1700")


@pytest.mark.parametrize("color", ["rgb", "grayscale"])
def test_converted_inputs_equal_the_reference(color):
    pre = imagenet(resize=(40,), crop=(32, 32), color=color)
    wide = np.random.default_rng(11).integers(0, 65536, (41, 53), dtype=np.uint16)
    inputs = converted_inputs() + [("RGB", noise(53, 41, seed=12)),
                                   ("I;16", Image.fromarray(wide))]
    for name, image in inputs:
        assert_same(preprocess_image(image, pre), reference_tensor(image, pre), name)


@st.composite
def cases(draw):
    """An image (random size 1..90 a side, noise or a gradient, RGB or L) and a
    preprocessing: resize S or [H, W] or none, a crop that fits, any filter and colour."""
    width, height = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    mode = draw(st.sampled_from(["RGB", "L"]))
    if draw(st.booleans()):
        image = noise(width, height, mode, seed=draw(st.integers(0, 2**16)))
    else:
        image = gradient(width, height).convert(mode)
    kind = draw(st.sampled_from(["short", "both", "none"]))
    resize = {"short": (draw(st.integers(1, 120)),),
              "both": (draw(st.integers(1, 120)), draw(st.integers(1, 120))),
              "none": None}[kind]
    w, h = resized_size(width, height, resize) if resize else (width, height)
    crop = (draw(st.integers(1, h)), draw(st.integers(1, w))) if draw(st.booleans()) else None
    color = draw(st.sampled_from(["rgb", "grayscale"]))
    n = 3 if color == "rgb" else 1
    mean = tuple(draw(st.floats(-1, 1)) for _ in range(n))
    std = tuple(draw(st.floats(0.01, 2)) for _ in range(n))
    interpolation = draw(st.sampled_from(["bilinear", "bicubic", "nearest"]))
    return image, Preprocess("x", color, resize, crop, interpolation, 1 / 255, mean, std)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_any_size_and_crop_equals_the_reference(case):
    """Random image sizes, resizes (up and down, either side), crops and filters."""
    image, pre = case
    assert_same(preprocess_image(image, pre), reference_tensor(image, pre), str(pre))


def test_size_arithmetic_and_half_even_offsets():
    """resized_size and crop_box against the integer reference, over every short side and
    crop up to 64: this includes each offset that ends in .5 (Python's round goes to the even
    neighbour: 15.5 -> 16, 16.5 -> 16), which a round-half-up would put one pixel off."""
    seen_halves = set()
    for short in range(1, 65):
        for long in (short, short + 1, 2 * short + 1, 3 * short - 1 or 1):
            for s in (1, 7, 224, 256):
                assert resized_size(short, long, (s,)) == reference_size(short, long, (s,))
                assert resized_size(long, short, (s,)) == reference_size(long, short, (s,))
        for crop in range(1, short + 1):
            left, top, right, bottom = crop_box(short, short + 3, (crop, crop))
            assert (left, top) == (_centre_offset(short, crop), _centre_offset(short + 3, crop))
            assert (right - left, bottom - top) == (crop, crop)
            if (short - crop) % 2:
                seen_halves.add((short - crop) // 2 % 2)
    assert seen_halves == {0, 1}  # both x.5 cases: q even (rounds down), q odd (rounds up)


# --- pixels, errors ------------------------------------------------------------------------


def test_image_pixels_are_the_tensor_before_scaling():
    """image_pixels (a --uint8-input model's input, H × W × C uint8) equals the float
    pipeline without scale, mean and std, rounded, and the reference's pixels."""
    image = open_image(str(PHOTOS[0]))
    for pre in (imagenet(), imagenet(resize=(32, 32), crop=None, color="grayscale")):
        pixels = image_pixels(image, pre)
        plain = Preprocess(pre.input, pre.color, pre.resize, pre.crop, pre.interpolation, 1.0,
                           (0.0,) * pre.channels, (1.0,) * pre.channels)
        tensor = preprocess_image(image, plain)
        assert pixels.dtype == np.uint8 and pixels.shape == (*pre.size(), pre.channels)
        assert_same(pixels, np.rint(tensor.transpose(1, 2, 0)).astype(np.uint8), str(pre))
        assert_same(pixels, reference_pixels(image, pre), str(pre))


def message(excinfo) -> tuple[str, str, list[str]]:
    [d] = excinfo.value.diagnostics.errors
    return d.code, d.message, list(d.hints)


def test_an_image_smaller_than_the_crop_is_E602():
    """torchvision would pad it with black; netc says so, with the fix."""
    with pytest.raises(NetcError) as e:
        preprocess_image(noise(100, 300), imagenet(resize=None), "small.png")
    code, text, hints = message(e)
    assert code == "E602"
    assert text == "image 'small.png' is 100×300 (width × height), smaller than the 224×224 crop"
    assert any("resize: 224" in h for h in hints)
    # a model's metadata (from anyone) can resize to less than its crop
    stranger = Preprocess.from_dict({"input": "x", "resize": [100], "crop": [224, 224]})
    with pytest.raises(NetcError) as e:
        image_pixels(noise(300, 200), stranger, "p.png")
    code, text, hints = message(e)
    assert code == "E602" and "150×100 after the resize to [100]" in text
    assert hints == ["resize to at least the crop: resize: 224"]


def test_32_bit_pixels_must_be_8_bit_levels():
    """Mode I or F images: 0..255 pass as they are (equal to the same values in mode L);
    other values are E605 with the range, not clipped."""
    levels = np.random.default_rng(13).integers(0, 256, (20, 30))
    pre = imagenet(resize=(16,), crop=(16, 16))
    expected = preprocess_image(Image.fromarray(levels.astype(np.uint8), "L"), pre)
    assert_same(preprocess_image(Image.fromarray(levels.astype(np.int32), "I"), pre), expected,
                "I")
    assert_same(preprocess_image(Image.fromarray(levels.astype(np.float32), "F"), pre),
                expected, "F")
    with pytest.raises(NetcError) as e:
        preprocess_image(Image.fromarray((levels * 4).astype(np.int32), "I"), pre, "deep.tif")
    code, text, _ = message(e)
    assert code == "E605" and f"from 0 to {levels.max() * 4}" in text and "deep.tif" in text


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width × height RGB pixels, one empty IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                            0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_open_image_names_what_a_file_is(tmp_path):
    """A file that is no image: E605 saying what it is, with the formats netc reads."""
    files = {"notes.txt": (b"mean: 0.5\nstd: 0.25\n", "it is text, not an image"),
             "x.npy": (None, "it is a .npy array, not an image"),
             "data.pkl": (b"\x80\x04\x95\x05\x00", "it is Python pickle data, not an image"),
             "empty.png": (b"", "it is an empty file, not an image"),
             "w.safetensors": (b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": {}}      ",
                               "it is a safetensors file, not an image"),
             "bad.png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
                         "it starts as a PNG image, and Pillow cannot read it")}
    for name, (data, expected) in files.items():
        path = tmp_path / name
        if data is None:
            np.save(path, np.zeros((1, 3, 2, 2), np.float32))
        else:
            path.write_bytes(data)
        with pytest.raises(NetcError) as e:
            open_image(str(path))
        code, text, hints = message(e)
        assert code == "E605" and f"'{path}'" in text and expected in text, text
        assert hints == ["give PNG, JPEG, BMP, GIF, TIFF or WebP files"]
    with pytest.raises(NetcError) as e:
        open_image(str(tmp_path / "missing.png"))
    assert message(e)[:2] == ("E605", f"cannot read image '{tmp_path / 'missing.png'}': "
                              "No such file or directory")


def test_sniff_tells_images_from_lookalikes(tmp_path):
    """Each image format Pillow writes is named as an image; text that happens to start with
    an image's first letters ("BM...") is text."""
    image = noise(8, 6)
    for fmt, kind in (("PNG", "a PNG image"), ("JPEG", "a JPEG image"), ("BMP", "a BMP image"),
                      ("GIF", "a GIF image"), ("TIFF", "a TIFF image"),
                      ("WEBP", "a WebP image")):
        path = tmp_path / f"i.{fmt.lower()}"
        image.save(path, fmt)
        assert sniff(str(path)) == kind, fmt
        assert open_image(str(path)).size == (8, 6)
    text = tmp_path / "bmw.txt"
    text.write_text("BMW 3 series, 2019\n" + "é" * 300, encoding="utf-8")  # é cut at byte 512
    assert sniff(str(text)) == "text"
    (tmp_path / "zeros.bin").write_bytes(bytes(64))
    assert sniff(str(tmp_path / "zeros.bin")) is None


def test_a_truncated_image_is_E605(tmp_path):
    data = PHOTOS[0].read_bytes()
    path = tmp_path / "half.png"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(NetcError) as e:
        open_image(str(path))
    code, text, hints = message(e)
    assert code == "E605" and text.startswith(f"cannot decode image '{path}' (PNG, ")
    assert "truncated" in text and "truncated or damaged" in hints[0]


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (12_000, 12_000)])
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, width, height):
    """A 100-byte PNG claiming 10^10 pixels (past Pillow's own limit) or 1.44 × 10^8 (past
    netc's, below Pillow's): E605 with the size, from the header alone. Had the pixels been
    decoded, the empty IDAT would have failed as a truncated file instead (and allocated
    gigabytes first)."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(width, height))
    assert width * height > MAX_PIXELS and path.stat().st_size < 100
    with pytest.raises(NetcError) as e:
        open_image(str(path))
    code, text, _ = message(e)
    assert code == "E605"
    if width * height > 2 * Image.MAX_IMAGE_PIXELS:  # Pillow refuses as it opens: no size
        assert text == (f"image '{path}' has {width * height:,} pixels: more than netc "
                        f"decodes ({MAX_PIXELS:,})")
    else:
        assert text == (f"image '{path}' is {width:,}×{height:,} (width × height), "
                        f"{width * height:,} pixels: more than netc decodes ({MAX_PIXELS:,})")


# --- what the tester found (breaker 13) --------------------------------------------------------


def test_float_pixels_that_are_nan_are_e605():
    """NaN made values.min() and max() NaN, which passed the range test."""
    values = np.full((20, 30), 100, np.float32)
    values[3, 4] = np.nan
    pre = imagenet(resize=(16,), crop=(16, 16))
    with pytest.raises(NetcError) as e:
        preprocess_image(Image.fromarray(values, "F"), pre, "nan.tif")
    code, text, hints = message(e)
    assert code == "E605" and "nan.tif" in text and "not a number (NaN)" in text, text
    assert hints
    values[3, 4] = np.inf
    with pytest.raises(NetcError) as e:
        preprocess_image(Image.fromarray(values, "F"), pre, "inf.tif")
    code, text, _ = message(e)
    assert code == "E605" and "inf" in text


def pgm_bytes(wide: np.ndarray, maxval: int = 65535) -> bytes:
    h, w = wide.shape
    return f"P5 {w} {h} {maxval}\n".encode() + wide.astype(">u2").tobytes()


def test_sixteen_bit_pgm_keeps_the_high_byte_as_a_png_does():
    """Pillow opens a 16-bit PGM as mode I (values 0..65535, any maxval above 255 scaled to
    that), a 16-bit PNG as I;16: both keep their high byte, and no message calls a 16-bit
    image 32-bit."""
    wide = np.random.default_rng(14).integers(0, 65536, (41, 53), dtype=np.uint16)
    pgm = Image.open(io.BytesIO(pgm_bytes(wide)))
    png = Image.open(io.BytesIO(png_bytes(Image.fromarray(wide))))
    assert (pgm.mode, png.mode) == ("I", "I;16")
    pre = imagenet(resize=(40,), crop=(32, 32))
    high = Image.fromarray((wide >> 8).astype(np.uint8), "L")
    expected = preprocess_image(high, pre)
    assert_same(preprocess_image(pgm, pre, "w.pgm"), expected, "PGM")
    assert_same(preprocess_image(png, pre, "w.png"), expected, "PNG")
    assert_same(image_pixels(pgm, pre), image_pixels(high, pre), "PGM pixels")
    # a 10-bit PGM (maxval 1023): Pillow scales it to 0..65535, so its high byte is its level
    ten = np.random.default_rng(15).integers(0, 1024, (20, 20), dtype=np.uint16)
    got = image_pixels(Image.open(io.BytesIO(pgm_bytes(ten, 1023))), imagenet(None, None))
    assert np.abs(got[:, :, 0].astype(int) - ten.astype(int) * 255 / 1023).max() <= 1


def test_a_deep_integer_image_never_says_32_bit_for_16_bit_values():
    """Mode I outside 0..255 that is not a PGM: the message says integer pixels, not a bit
    depth it cannot know (a 16-bit signed TIFF is mode I too)."""
    values = np.full((8, 8), 40000, np.int32)
    with pytest.raises(NetcError) as e:
        preprocess_image(Image.fromarray(values, "I"), imagenet(None, None), "deep.tif")
    code, text, _ = message(e)
    assert code == "E605" and "32-bit" not in text and "from 40000 to 40000" in text


@pytest.mark.parametrize("size, resize", [((10_000, 1), (256,)), ((1, 100_000), (256,)),
                                          ((1, 1), (11_585 + 1,))])
def test_the_resized_size_is_bounded_before_resizing(size, resize):
    """The pixel limit holds after the resize too: a 10000×1 image with the shorter side to
    256 would be 2,560,000×256 (655 million pixels, gigabytes): E602 with the sizes, before
    anything is allocated."""
    import time

    image = Image.new("L", size, 100)
    pre = Preprocess("image", "grayscale", resize, (16, 16))
    width, height = resized_size(*size, resize)
    start = time.perf_counter()
    with pytest.raises(NetcError) as e:
        image_pixels(image, pre, "thin.png")
    assert time.perf_counter() - start < 1
    code, text, hints = message(e)
    assert code == "E602" and "thin.png" in text and f"{width:,}×{height:,}" in text, text
    assert f"{width * height:,} pixels" in text and f"{MAX_PIXELS:,}" in text
    assert hints
    # within the limit it is done
    assert image_pixels(Image.new("L", (1000, 1), 100), Preprocess(
        "image", "grayscale", (16,), (16, 16))).shape == (16, 16, 1)
