"""netc's shape rules against what ONNX Runtime actually produces (differential testing).

netc is the authority on shapes (ONNX's own inference is too lenient), so each rule is checked
three ways: against a hand-computed table, against ONNX Runtime's output at batch 2, and, for
the window arithmetic, against ONNX Runtime on random geometries (hypothesis). A spec that netc
accepts and ONNX Runtime then rejects, or runs to another shape, is a netc bug.

Every expected size below is worked out by hand from

    out = (N + pad_before + pad_after - F_eff) / stride + 1,    F_eff = dilation * (F - 1) + 1

(floor: round down; ceil: round up, minus a last window that would start in the end padding),
never copied from netc's output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import netc
from conftest import check, compile_bytes, concrete, random_feeds, run, session
from netc.emit import emit, serialize

# --- 1. per-layer shape tables ----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    layers: str  # the spec's `layers:` list
    inputs: object  # one shape (the input `x`) or {name: shape}
    expected: tuple  # the model output's shape, by hand


def x(c, h, w=None):
    return ("N", c, h, h if w is None else w)


CONV = [
    Row("k3", "- conv: {filters: 4, kernel: 3}", x(3, 7), ("N", 4, 5, 5)),
    Row("k3-s2", "- conv: {filters: 4, kernel: 3, stride: 2}", x(3, 7), ("N", 4, 3, 3)),
    Row("k3-p1", "- conv: {filters: 4, kernel: 3, pad: 1}", x(3, 7), ("N", 4, 7, 7)),
    Row("k5-32", "- conv: {filters: 6, kernel: 5}", x(3, 32), ("N", 6, 28, 28)),
    Row("k1", "- conv: {filters: 2, kernel: 1}", x(3, 5, 6), ("N", 2, 5, 6)),
    Row("k-equals-input", "- conv: {filters: 2, kernel: 7}", x(3, 7), ("N", 2, 1, 1)),
    Row("no-bias", "- conv: {filters: 4, kernel: 3, bias: false}", x(3, 7), ("N", 4, 5, 5)),
    # dilation 2 spreads a 3x3 filter over 5x5: (9 - 5) / 1 + 1 = 5
    Row("dilation2", "- conv: {filters: 4, kernel: 3, dilation: 2}", x(3, 9), ("N", 4, 5, 5)),
    # F_eff = 3 * (3 - 1) + 1 = 7; (11 + 2 - 7) / 2 + 1 = 4
    Row("dilation3-s2-p1", "- conv: {filters: 4, kernel: 3, dilation: 3, stride: 2, pad: 1}",
        x(3, 11), ("N", 4, 4, 4)),
    Row("groups", "- conv: {filters: 6, kernel: 3, groups: 3}", x(3, 8), ("N", 6, 6, 6)),
    Row("depthwise", "- conv: {filters: 4, kernel: 3, groups: 4, pad: 1}", x(4, 6), ("N", 4, 6, 6)),
    # height (7 - 3) + 1 = 5, width (11 - 5) + 1 = 7
    Row("kernel-hw", "- conv: {filters: 4, kernel: [3, 5]}", x(3, 7, 11), ("N", 4, 5, 7)),
    # height (7 - 3) / 1 + 1 = 5, width (9 - 3) / 2 + 1 = 4
    Row("stride-hw", "- conv: {filters: 4, kernel: 3, stride: [1, 2]}", x(3, 7, 9), ("N", 4, 5, 4)),
    # F_eff height 3, width 2 * 2 + 1 = 5: (7 - 3) + 1 = 5, (9 - 5) + 1 = 5
    Row("dilation-hw", "- conv: {filters: 4, kernel: 3, dilation: [1, 2]}", x(3, 7, 9),
        ("N", 4, 5, 5)),
    # pad [h, w] = [1, 2]: height 5 + 2 - 3 + 1 = 5, width 5 + 4 - 3 + 1 = 7
    Row("pad-hw", "- conv: {filters: 4, kernel: 3, pad: [1, 2]}", x(3, 5), ("N", 4, 5, 7)),
    # [top, left, bottom, right] = [0, 1, 2, 3]: height 6 + 0 + 2 - 3 + 1 = 6,
    # width 6 + 1 + 3 - 3 + 1 = 8
    Row("pad-4", "- conv: {filters: 4, kernel: 3, pad: [0, 1, 2, 3]}", x(3, 6), ("N", 4, 6, 8)),
    # a 3x2 filter at stride 2 over [top, left, bottom, right] = [1, 0, 2, 1]:
    # height (8 + 1 + 2 - 3) / 2 + 1 = 5, width (5 + 0 + 1 - 2) / 2 + 1 = 3
    Row("pad-4-s2-khw", "- conv: {filters: 2, kernel: [3, 2], stride: 2, pad: [1, 0, 2, 1]}",
        x(3, 8, 5), ("N", 2, 5, 3)),
    Row("same-k3", "- conv: {filters: 4, kernel: 3, pad: same}", x(3, 7), ("N", 4, 7, 7)),
    # even filter at stride 1: 3 pixels of padding in all, 1 before and 2 after (SAME_UPPER)
    Row("same-k4", "- conv: {filters: 4, kernel: 4, pad: same}", x(3, 7), ("N", 4, 7, 7)),
    # same at stride 2 gives ceil(N / 2): 7 -> 4 (pads 1 + 1), 8 -> 4 (pads 0 + 1)
    Row("same-s2-odd", "- conv: {filters: 4, kernel: 3, stride: 2, pad: same}", x(3, 7),
        ("N", 4, 4, 4)),
    Row("same-s2-even", "- conv: {filters: 4, kernel: 3, stride: 2, pad: same}", x(3, 8),
        ("N", 4, 4, 4)),
    # dilated 3x3 spans 5: pads 2 + 2 keep 9x6
    Row("same-dilation2", "- conv: {filters: 4, kernel: 3, dilation: 2, pad: same}", x(3, 9, 6),
        ("N", 4, 9, 6)),
    # ceil(10 / 3) = 4, ceil(7 / 3) = 3
    Row("same-s3-k5", "- conv: {filters: 4, kernel: 5, stride: 3, pad: same}", x(3, 10, 7),
        ("N", 4, 4, 3)),
    # a 1x1 filter at stride 2: ceil(7 / 2) = 4 exactly; ceil(8 / 2) = 4 with no padding,
    # (8 - 1) / 2 + 1 = 4.5, the last column lies between windows and is skipped (SAME_UPPER)
    Row("same-k1-s2", "- conv: {filters: 4, kernel: 1, stride: 2, pad: same}", x(3, 7, 8),
        ("N", 4, 4, 4)),
    Row("valid", "- conv: {filters: 4, kernel: 3, pad: valid}", x(3, 7), ("N", 4, 5, 5)),
    # (7 - 3) / 3 + 1 = 2.33: floor keeps 2 windows, ceil 3 (the third starts at 6 < 7,
    # inside the input, and gets 2 columns of end padding)
    Row("floor", "- conv: {filters: 4, kernel: 3, stride: 3, round: floor}", x(3, 7),
        ("N", 4, 2, 2)),
    Row("ceil", "- conv: {filters: 4, kernel: 3, stride: 3, round: ceil}", x(3, 7),
        ("N", 4, 3, 3)),
    # AlexNet conv1: (224 + 4 - 11) / 4 + 1 = 55.25 -> 55
    Row("alexnet-conv1-floor", "- conv: {filters: 2, kernel: 11, stride: 4, pad: 2, round: floor}",
        x(3, 224), ("N", 2, 55, 55)),
    # ResNet stem: (224 + 6 - 7) / 2 + 1 = 112.5 -> 112
    Row("resnet-stem-floor", "- conv: {filters: 2, kernel: 7, stride: 2, pad: 3, round: floor}",
        x(3, 224), ("N", 2, 112, 112)),
    # (6 + 2 - 3) / 2 + 1 = 3.5 -> ceil 4: the 4th window starts at 6 < 6 + 1 (in the input)
    Row("ceil-p1", "- conv: {filters: 4, kernel: 3, stride: 2, pad: 1, round: ceil}", x(3, 6),
        ("N", 4, 4, 4)),
    # (5 + 2 - 2) / 2 + 1 = 3.5 -> ceil 4, but the 4th window would start at 6 >= 5 + 1, in the
    # end padding: dropped, 3
    Row("ceil-drops-window-in-padding",
        "- conv: {filters: 4, kernel: 2, stride: 2, pad: 1, round: ceil}", x(3, 5), ("N", 4, 3, 3)),
    # floor in width only matters: height (7 - 3) / 2 + 1 = 3, width (8 - 3) / 2 + 1 = 3.5 -> 3
    Row("floor-one-axis", "- conv: {filters: 4, kernel: 3, stride: 2, round: floor}", x(3, 7, 8),
        ("N", 4, 3, 3)),
    # ... and ceil: width 4 (the 4th window starts at 6 < 8)
    Row("ceil-one-axis", "- conv: {filters: 4, kernel: 3, stride: 2, round: ceil}", x(3, 7, 8),
        ("N", 4, 3, 4)),
]

POOL = [
    # stride defaults to the kernel: 8 / 2 = 4
    Row("max-k2", "- maxpool: 2", x(3, 8), ("N", 3, 4, 4)),
    Row("max-k2-s2", "- maxpool: {kernel: 2, stride: 2}", x(3, 8), ("N", 3, 4, 4)),
    Row("max-k3-s2", "- maxpool: {kernel: 3, stride: 2}", x(3, 7), ("N", 3, 3, 3)),
    Row("max-k3-s1-p1", "- maxpool: {kernel: 3, stride: 1, pad: 1}", x(3, 6), ("N", 3, 6, 6)),
    # (7 + 2 - 3) / 2 + 1 = 4
    Row("max-k3-s2-p1", "- maxpool: {kernel: 3, stride: 2, pad: 1}", x(3, 7), ("N", 3, 4, 4)),
    # (8 - 3) / 2 + 1 = 3.5: floor 3, ceil 4 (the 4th window starts at 6 < 8)
    Row("max-floor", "- maxpool: {kernel: 3, stride: 2, round: floor}", x(3, 8), ("N", 3, 3, 3)),
    Row("max-ceil", "- maxpool: {kernel: 3, stride: 2, round: ceil}", x(3, 8), ("N", 3, 4, 4)),
    # GoogLeNet's pool1: (112 - 3) / 2 + 1 = 55.5 -> ceil 56
    Row("max-ceil-googlenet", "- maxpool: {kernel: 3, stride: 2, round: ceil}", x(2, 112),
        ("N", 2, 56, 56)),
    # (5 + 2 - 2) / 2 + 1 = 3.5 -> 4, but the 4th window would start at 6 >= 5 + 1: 3
    Row("max-ceil-drops-window-in-padding",
        "- maxpool: {kernel: 2, stride: 2, pad: 1, round: ceil}", x(3, 5), ("N", 3, 3, 3)),
    # height (6 - 2) / 2 + 1 = 3, width (6 - 3) / 1 + 1 = 4
    Row("max-hw", "- maxpool: {kernel: [2, 3], stride: [2, 1]}", x(3, 6), ("N", 3, 3, 4)),
    # [top, left, bottom, right] = [0, 1, 0, 1]: height (4 - 2) / 2 + 1 = 2,
    # width (6 + 2 - 2) / 2 + 1 = 4
    Row("max-pad-4", "- maxpool: {kernel: 2, stride: 2, pad: [0, 1, 0, 1]}", x(3, 4, 6),
        ("N", 3, 2, 4)),
    # same at stride 2: ceil(7 / 2) = 4 (3x3: pads 1 + 1; 2x2: pads 0 + 1)
    Row("max-same-k3", "- maxpool: {kernel: 3, stride: 2, pad: same}", x(3, 7), ("N", 3, 4, 4)),
    Row("max-same-k2", "- maxpool: {kernel: 2, stride: 2, pad: same}", x(3, 7), ("N", 3, 4, 4)),
    # ceil(7 / 3) = 3 exactly; ceil(8 / 3) = 3: (8 - 1) / 3 + 1 = 3.33, the last column skipped
    Row("max-same-k1-s3", "- maxpool: {kernel: 1, stride: 3, pad: same}", x(3, 7, 8),
        ("N", 3, 3, 3)),
    Row("avg-k2", "- avgpool: 2", x(3, 8), ("N", 3, 4, 4)),
    Row("avg-k3-s1-p1", "- avgpool: {kernel: 3, stride: 1, pad: 1}", x(3, 6), ("N", 3, 6, 6)),
    Row("avg-k3-s1-p1-include-pad", "- avgpool: {kernel: 3, stride: 1, pad: 1, include_pad: true}",
        x(3, 6), ("N", 3, 6, 6)),
    # (7 - 2) / 2 + 1 = 3.5: floor 3, ceil 4 (the 4th window starts at 6 < 7)
    Row("avg-floor", "- avgpool: {kernel: 2, round: floor}", x(3, 7), ("N", 3, 3, 3)),
    Row("avg-ceil", "- avgpool: {kernel: 2, round: ceil}", x(3, 7), ("N", 3, 4, 4)),
    # (6 + 1 - 3) / 2 + 1 = 3 with [1, 1, 0, 0]: exact
    Row("avg-pad-4", "- avgpool: {kernel: 3, stride: 2, pad: [1, 1, 0, 0]}", x(3, 6),
        ("N", 3, 3, 3)),
    # (5 + 2 - 2) / 2 + 1 = 3.5 -> 4, the 4th would start at 6 >= 5 + 1: 3
    Row("avg-ceil-drops-window-in-padding",
        "- avgpool: {kernel: 2, stride: 2, pad: 1, round: ceil, include_pad: true}", x(3, 5),
        ("N", 3, 3, 3)),
    Row("globalavgpool", "- globalavgpool", x(3, 7, 5), ("N", 3, 1, 1)),
]

OTHER = [
    Row("flatten", "- flatten", x(3, 4, 5), ("N", 60)),
    Row("flatten-2d", "- flatten", ("N", 12), ("N", 12)),
    Row("flatten-dense", "- flatten\n- dense: 10", x(3, 4, 5), ("N", 10)),
    Row("dense", "- dense: 7", ("N", 20), ("N", 7)),
    Row("dense-no-bias", "- dense: {units: 7, bias: false}", ("N", 20), ("N", 7)),
    Row("gap-flatten-dense", "- globalavgpool\n- flatten\n- dense: 5", x(8, 3), ("N", 5)),
    Row("relu", "- relu", x(3, 5), ("N", 3, 5, 5)),
    Row("leakyrelu", "- leakyrelu: {alpha: 0.2}", x(3, 5), ("N", 3, 5, 5)),
    Row("leakyrelu-default", "- leakyrelu", ("N", 9), ("N", 9)),
    Row("tanh", "- tanh", x(3, 5, 4), ("N", 3, 5, 4)),
    Row("sigmoid", "- sigmoid", ("N", 6), ("N", 6)),
    Row("softmax", "- softmax", ("N", 10), ("N", 10)),
    Row("softmax-channels", "- softmax", x(4, 3), ("N", 4, 3, 3)),
    Row("softmax-axis-last", "- softmax: {axis: -1}", x(4, 3, 5), ("N", 4, 3, 5)),
    Row("dropout", "- dropout: 0.5", x(3, 5), ("N", 3, 5, 5)),
    Row("dropout-2d", "- dropout: {rate: 0.2}", ("N", 10), ("N", 10)),
    Row("batchnorm", "- batchnorm", x(6, 5), ("N", 6, 5, 5)),
    Row("batchnorm-2d", "- batchnorm: {eps: 0.001}", ("N", 6), ("N", 6)),
    Row("lrn", "- lrn: {size: 5, alpha: 0.0001, beta: 0.75, bias: 2}", x(8, 5), ("N", 8, 5, 5)),
    Row("lrn-3", "- lrn: 3", x(3, 4), ("N", 3, 4, 4)),
    Row("add", "- add: {from: [a, b]}", {"a": x(4, 5), "b": x(4, 5)}, ("N", 4, 5, 5)),
    Row("add-3", "- add:\n  from: [a, b, c]", {"a": ("N", 7), "b": ("N", 7), "c": ("N", 7)},
        ("N", 7)),
    # a residual: conv (pad 1 keeps 6x6) + the input
    Row("add-residual", "- conv: {filters: 4, kernel: 3, pad: 1}\n- add: {from: [conv1, x]}",
        x(4, 6), ("N", 4, 6, 6)),
    Row("concat", "- concat: {from: [a, b]}", {"a": x(4, 5), "b": x(6, 5)}, ("N", 10, 5, 5)),
    Row("concat-axis2", "- concat: {axis: 2, from: [a, b]}", {"a": x(4, 5), "b": x(4, 3, 5)},
        ("N", 4, 8, 5)),
    Row("concat-axis-last", "- concat: {axis: -1, from: [a, b, c]}",
        {"a": x(2, 3, 1), "b": x(2, 3, 2), "c": x(2, 3, 4)}, ("N", 2, 3, 7)),
    # inception-like: two branches of the same input, 4 + 2 channels
    Row("concat-branches",
        "- conv: {filters: 4, kernel: 1}\n  name: b1\n  from: x\n"
        "- conv: {filters: 2, kernel: 3, pad: 1}\n  name: b2\n  from: x\n"
        "- concat: {from: [b1, b2]}", x(3, 5), ("N", 6, 5, 5)),
]

# the layer catalogue since 2016 (issue 12); each type also has its own file with torch oracles
NEWER = [
    Row("relu6", "- relu6", x(3, 8), ("N", 3, 8, 8)),
    Row("clip", "- clip: {min: -1, max: 1}", x(3, 8), ("N", 3, 8, 8)),
    Row("hardswish", "- hardswish", x(3, 8), ("N", 3, 8, 8)),
    Row("hardsigmoid", "- hardsigmoid", x(3, 8), ("N", 3, 8, 8)),
    Row("silu", "- silu", x(3, 8), ("N", 3, 8, 8)),
    Row("gelu-tanh", "- gelu: tanh", x(3, 8), ("N", 3, 8, 8)),
    Row("mish", "- mish", x(3, 8), ("N", 3, 8, 8)),
    Row("elu", "- elu: 0.5", x(3, 8), ("N", 3, 8, 8)),
    Row("prelu", "- prelu", x(3, 8), ("N", 3, 8, 8)),
    Row("prelu-2d", "- flatten\n- prelu", x(3, 2), ("N", 12)),
    Row("layernorm-channels", "- layernorm: {eps: 1e-6}", x(8, 6, 5), ("N", 8, 6, 5)),
    Row("layernorm-last", "- layernorm: last", x(6, 5, 8), ("N", 6, 5, 8)),
    Row("groupnorm", "- groupnorm: 4", x(8, 6, 5), ("N", 8, 6, 5)),
    Row("instancenorm", "- instancenorm", x(5, 6, 7), ("N", 5, 6, 7)),
    Row("param-scale", "- param:\n  name: gamma\n- mul: {from: [gamma, x]}", x(8, 6, 5),
        ("N", 8, 6, 5)),
    Row("mul-se", "- mul: {from: [a, b]}", {"a": ("N", 4, 1, 1), "b": x(4, 5)}, ("N", 4, 5, 5)),
    Row("add-broadcast", "- add: {from: [a, b]}", {"a": ("N", 1, 5, 5), "b": x(4, 5)},
        ("N", 4, 5, 5)),
    Row("shuffle", "- shuffle: 2", x(4, 3), ("N", 4, 3, 3)),
    Row("split", "- split: {parts: 2, index: 1}", x(4, 3), ("N", 2, 3, 3)),
    Row("split-sizes", "- split: {sizes: [1, 3], index: 1}", x(4, 3), ("N", 3, 3, 3)),
    Row("permute", "- permute: {dims: [0, 2, 3, 1]}", x(4, 3, 5), ("N", 3, 5, 4)),
    Row("reshape", "- reshape: {shape: [2, -1]}", x(4, 3), ("N", 2, 18)),
    Row("dense-last", "- permute: {dims: [0, 2, 3, 1]}\n- dense: {units: 6, axis: last}",
        x(4, 3), ("N", 3, 3, 6)),
    Row("adaptiveavg-7-3", "- adaptiveavgpool: 3", x(3, 7), ("N", 3, 3, 3)),
    Row("adaptiveavg-hw", "- adaptiveavgpool: {output: [4, 5]}", x(3, 11, 9), ("N", 3, 4, 5)),
    Row("adaptivemax-divides", "- adaptivemaxpool: {output: [2, 3]}", x(3, 8, 9),
        ("N", 3, 2, 3)),
    Row("adaptivemax-5-3", "- adaptivemaxpool: 3", x(3, 5), ("N", 3, 3, 3)),
    Row("max-dilated", "- maxpool: {kernel: 3, stride: 1, dilation: 2}", x(3, 9), ("N", 3, 5, 5)),
    Row("avg-dilated", "- avgpool: {kernel: 3, stride: 2, dilation: 2, pad: 1, round: floor}",
        x(3, 10), ("N", 3, 4, 4)),
    Row("max-same-lower", "- maxpool: {kernel: 2, stride: 1, pad: same_lower}", x(3, 8),
        ("N", 3, 8, 8)),
    Row("conv-same-lower", "- conv: {filters: 4, kernel: 4, stride: 2, pad: same_lower}", x(3, 7),
        ("N", 4, 4, 4)),
    # transposed convs (issue 14; tests/test_convtranspose.py has the torch oracles):
    # out = (N - 1) × S - pad_before - pad_after + D × (F - 1) + output_padding + 1
    # U-Net's 2x2/2: (7 - 1) × 2 + 1 + 1 = 14
    Row("convtranspose-2x2-s2", "- convtranspose: {filters: 4, kernel: 2, stride: 2}", x(8, 7),
        ("N", 4, 14, 14)),
    # (5 - 1) × 2 - 1 - 1 + 2 + 1 + 1 = 10
    Row("convtranspose-p1-op1",
        "- convtranspose: {filters: 4, kernel: 3, stride: 2, pad: 1, output_padding: 1}",
        x(3, 5), ("N", 4, 10, 10)),
    # height (4 - 1) × 2 - 0 - 2 + 2 × 2 + 1 = 9, width (5 - 1) × 3 - 1 - 0 + 2 × 2 + 1 = 16
    Row("convtranspose-pad-4-dilation-groups",
        "- convtranspose: {filters: 4, kernel: 3, stride: [2, 3], pad: [0, 1, 2, 0], "
        "dilation: 2, groups: 2}", x(2, 4, 5), ("N", 4, 9, 16)),
    # same: N × stride, 5 × 2 = 10 and 6 × 2 = 12
    Row("convtranspose-same", "- convtranspose: {filters: 2, kernel: 3, stride: 2, pad: same}",
        x(3, 5, 6), ("N", 2, 10, 12)),
    # output_padding 2 below dilation 3 at stride 1: (4 - 1) × 1 + 3 × 1 + 2 + 1 = 9
    Row("convtranspose-op-below-dilation",
        "- convtranspose: {filters: 2, kernel: 2, dilation: 3, output_padding: 2}", x(2, 4),
        ("N", 2, 9, 9)),
    Row("stochasticdepth", "- stochasticdepth: 0.2", x(3, 5), ("N", 3, 5, 5)),
    # resize, crop and pad (issue 14; tests/test_resize.py has the torch oracles)
    # 7 × 2 = 14
    Row("resize-2", "- resize: 2", x(3, 7), ("N", 3, 14, 14)),
    # 15 × 1.5 = 22.5, rounded down to 22 (as F.interpolate); 15 × 2 = 30
    Row("resize-floor-bilinear", "- resize: {scale: [1.5, 2], round: floor, mode: bilinear}",
        x(2, 15), ("N", 2, 22, 30)),
    Row("resize-size-bicubic-corners",
        "- resize: {size: [5, 9], mode: bicubic, align_corners: true}", x(2, 7), ("N", 2, 5, 9)),
    # 7 -> 5 rows and 3 columns: ratios that are not powers of two (gathered)
    Row("resize-size-nearest", "- resize: {size: [5, 3]}", x(2, 7), ("N", 2, 5, 3)),
    # the height and width of b, the channels of a
    Row("resize-to", "- resize: {to: b, mode: nearest-exact}\n  from: a",
        {"a": x(3, 4), "b": x(2, 9, 6)}, ("N", 3, 9, 6)),
    # a centre crop of 9x8 to 5x6
    Row("crop", "- crop: {size: [5, 6]}", x(3, 9, 8), ("N", 3, 5, 6)),
    Row("crop-to", "- crop: {to: b}\n  from: a", {"a": x(3, 9), "b": x(2, 6)}, ("N", 3, 6, 6)),
    # [top, left, bottom, right] = [1, 0, 2, 3]: 9 - 1 - 2 = 6 rows, 8 - 0 - 3 = 5 columns
    Row("crop-amount", "- crop: {amount: [1, 0, 2, 3]}", x(3, 9, 8), ("N", 3, 6, 5)),
    Row("pad", "- pad: 1", x(3, 5), ("N", 3, 7, 7)),
    # 5 + 1 + 3 = 9 rows, 6 + 2 + 0 = 8 columns
    Row("pad-reflect", "- pad: {amount: [1, 2, 3, 0], mode: reflect}", x(3, 5, 6),
        ("N", 3, 9, 8)),
    Row("pad-to-replicate", "- pad: {to: b, mode: replicate}\n  from: a",
        {"a": x(3, 5), "b": x(1, 8, 9)}, ("N", 3, 8, 9)),
]

TABLE = CONV + POOL + OTHER + NEWER


def check_and_run(path, expected=None):
    """netc's output shape (== `expected` if given) and ONNX Runtime's, at batch 2."""
    graph = check(path)
    [out] = graph.outputs
    if expected is not None:
        assert out.shape == tuple(expected), f"netc: {out.shape}, by hand: {expected}"
    [y] = run(compile_bytes(path), random_feeds(graph))
    assert y.shape == concrete(out.shape), f"ONNX Runtime: {y.shape}, netc: {out.shape}"
    return graph, y


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
def test_shape_table(make_spec, row):
    check_and_run(make_spec(row.layers, row.inputs), row.expected)


def test_table_ids_are_unique():
    assert len({r.id for r in TABLE}) == len(TABLE)


def test_table_covers_every_layer_type():
    from netc.layers import REGISTRY

    kinds = {m for r in TABLE for m in re.findall(r"- (\w+)", r.layers)}
    assert set(REGISTRY) <= kinds, f"no table row for {set(REGISTRY) - kinds}"


# --- 2. the lecture's cases -------------------------------------------------------------------


@pytest.mark.parametrize("stride, size", [(1, 5), (2, 3)])
def test_lecture_7x7_input_3x3_filter(make_spec, stride, size):
    path = make_spec(f"- conv: {{filters: 1, kernel: 3, stride: {stride}}}", x(1, 7))
    check_and_run(path, ("N", 1, size, size))


def test_lecture_7x7_3x3_stride3_doesnt_fit(make_spec):
    path = make_spec("- conv: {filters: 1, kernel: 3, stride: 3}", x(1, 7))
    with pytest.raises(netc.NetcError) as caught:
        check(path)
    text = str(caught.value)
    line_no, line = next((i, s) for i, s in enumerate(path.read_text().splitlines(), 1)
                         if "stride: 3" in s)
    col = line.index("stride: 3") + len("stride: ") + 1  # the value, 1-based
    assert f"{path}:{line_no}:{col}: error[E301]" in text
    assert "(7 - 3 + 0) / 3 + 1 = 2.33" in text
    assert "hint:" in text
    [diag] = caught.value.diagnostics.items
    assert (diag.code, diag.span.line, diag.span.col) == ("E301", line_no, col)
    # the fixes it suggests must be true: stride 2 gives 3x3, pad 1 gives 3x3
    hint = " ".join(diag.hints)
    assert "stride 2 gives 3x3" in hint and "pad: 1 gives 3x3" in hint


def test_lecture_7x7_3x3_pad1_keeps_size(make_spec):
    path = make_spec("- conv: {filters: 1, kernel: 3, pad: 1}", x(1, 7))
    check_and_run(path, ("N", 1, 7, 7))


def test_lecture_32x32x3_image_six_5x5x3_filters(make_spec):
    path = make_spec("- conv: {filters: 6, kernel: 5}", x(3, 32))
    graph, _ = check_and_run(path, ("N", 6, 28, 28))
    weights = {w.name: w.shape for w in graph.weights}
    assert weights == {"conv1.weight": (6, 3, 5, 5), "conv1.bias": (6,)}


@pytest.mark.parametrize("f", [3, 5, 7])
@pytest.mark.parametrize("n", [7, 12])
def test_lecture_pad_half_filter_keeps_size(make_spec, f, n):
    pad = (f - 1) // 2
    path = make_spec(f"- conv: {{filters: 2, kernel: {f}, pad: {pad}}}", x(3, n))
    check_and_run(path, ("N", 2, n, n))


# --- 3. properties of the window arithmetic ---------------------------------------------------

PROPERTY = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def f_eff(k, d=1):
    return d * (k - 1) + 1


def expected_out(n, k, s, pb, pa, d, rounding):
    """An independent statement of the rule, in integers: None where `exact` can't tile."""
    span = n + pb + pa - f_eff(k, d)
    if span < 0:
        return None
    if span % s == 0:  # the windows tile: every rounding gives the same size
        return span // s + 1
    if rounding == "exact":
        return None
    if rounding == "floor":
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= n + pb:  # the last window would start inside the end padding
        out -= 1
    return out


def note_ceil_drop(axes, rounding):
    """Tell hypothesis's statistics how often the ceil rule's exception is exercised."""
    for a in axes:
        span = a["n"] + a["pb"] + a["pa"] - f_eff(a["k"], a.get("d", 1))
        if rounding == "ceil" and span >= 0 and span % a["s"] and \
                -(-span // a["s"]) * a["s"] >= a["n"] + a["pb"]:
            event("ceil: a last window starting in the end padding is dropped")


axis = st.fixed_dictionaries({
    "n": st.integers(1, 16), "k": st.integers(1, 6), "s": st.integers(1, 4),
    "pb": st.integers(0, 3), "pa": st.integers(0, 3), "d": st.integers(1, 3),
})


def conv_layer(h, w, rounding):
    return (f"- conv: {{filters: 1, kernel: [{h['k']}, {w['k']}], stride: [{h['s']}, {w['s']}], "
            f"pad: [{h['pb']}, {w['pb']}, {h['pa']}, {w['pa']}], "
            f"dilation: [{h['d']}, {w['d']}], round: {rounding}}}")


def shapes_or_error(path):
    """(netc's output shape, ONNX Runtime's) or (NetcError, None)."""
    try:
        graph = check(path)
    except netc.NetcError as e:
        event("netc rejects: " + ", ".join(d.code for d in e.diagnostics.items))
        return e, None
    event("netc accepts; run in ONNX Runtime")
    [out] = graph.outputs
    [y] = run(compile_bytes(path), random_feeds(graph))
    return out.shape, y.shape


@PROPERTY
@given(h=axis, w=axis, rounding=st.sampled_from(["floor", "ceil"]))
def test_conv_window_matches_onnxruntime(spec_writer, h, w, rounding):
    note_ceil_drop((h, w), rounding)
    path = spec_writer(conv_layer(h, w, rounding), ("N", 1, h["n"], w["n"]))
    got, ort_shape = shapes_or_error(path)
    too_large = any(f_eff(a["k"], a["d"]) > a["n"] + a["pb"] + a["pa"] for a in (h, w))
    if isinstance(got, netc.NetcError):
        assert [d.code for d in got.diagnostics.items] == ["E302"], str(got)
        assert too_large
        check_too_large_fixes(" ".join(got.diagnostics.items[0].hints), h, w)
        return
    assert not too_large
    assert ort_shape == concrete(got)
    want = tuple(expected_out(**a, rounding=rounding) for a in (h, w))
    assert got[2:] == want


@PROPERTY
@given(h=axis, w=axis)
def test_conv_exact_accepts_iff_whole(spec_writer, h, w):
    # symmetric padding per axis (`pad: [h, w]`), as the lecture writes N + 2P
    h, w = ({**a, "pa": a["pb"]} for a in (h, w))
    layer = (f"- conv: {{filters: 1, kernel: [{h['k']}, {w['k']}], stride: [{h['s']}, {w['s']}], "
             f"pad: [{h['pb']}, {w['pb']}], dilation: [{h['d']}, {w['d']}]}}")
    path = spec_writer(layer, ("N", 1, h["n"], w["n"]))
    got, ort_shape = shapes_or_error(path)
    fits = [f_eff(a["k"], a["d"]) <= a["n"] + 2 * a["pb"] for a in (h, w)]
    whole = [(a["n"] + 2 * a["pb"] - f_eff(a["k"], a["d"])) % a["s"] == 0 for a in (h, w)]
    if all(fits) and all(whole):
        assert not isinstance(got, netc.NetcError), str(got)
        assert ort_shape == concrete(got)
        assert got[2:] == tuple((a["n"] + 2 * a["pb"] - f_eff(a["k"], a["d"])) // a["s"] + 1
                                for a in (h, w))
    else:
        assert isinstance(got, netc.NetcError)
        [diag] = got.diagnostics.items
        assert diag.code == ("E302" if not all(fits) else "E301"), str(got)
        if diag.code == "E301":
            check_fixes(" ".join(diag.hints), h, w)


def check_too_large_fixes(hint, h, w):
    """The E302 hints: the largest kernel that fits, and a padding that makes this one fit."""
    [(kh, kw)] = re.findall(r"kernel of at most (\d+)x(\d+)", hint)
    for a, k in ((h, int(kh)), (w, int(kw))):
        padded = a["n"] + a["pb"] + a["pa"]
        d = a.get("d", 1)
        assert f_eff(k, d) <= padded < f_eff(k + 1, d), hint
    [p] = re.findall(r"pad by at least (\d+) on each side", hint)
    assert all(f_eff(a["k"], a.get("d", 1)) <= a["n"] + 2 * int(p) for a in (h, w)), hint


def check_fixes(hint, h, w):
    """Every size an E301 hint promises is the size that fix really gives."""
    def sizes(**change):
        return tuple(expected_out(**{**a, **change.get("all", {})}, rounding=change["round"])
                     for a in (h, w))

    for s, hh, ww in re.findall(r"stride (\d+) gives (\d+)x(\d+)", hint):
        assert sizes(all={"s": int(s)}, round="exact") == (int(hh), int(ww)), hint
    for p, hh, ww in re.findall(r"pad: (\d+) gives (\d+)x(\d+)", hint):
        assert sizes(all={"pb": int(p), "pa": int(p)}, round="exact") == (int(hh), int(ww)), hint
    for rounding in ("floor", "ceil"):
        [(hh, ww)] = re.findall(rf"round: {rounding}`[^(]*\((\d+)x(\d+)\)", hint)
        assert sizes(round=rounding) == (int(hh), int(ww)), hint


same_axis = st.fixed_dictionaries({
    "n": st.integers(1, 16), "k": st.integers(1, 6), "s": st.integers(1, 4), "d": st.integers(1, 3),
})


@PROPERTY
@given(h=same_axis, w=same_axis, op=st.sampled_from(["conv", "maxpool", "avgpool"]),
       rounding=st.sampled_from(["exact", "floor", "ceil"]))
def test_same_padding_gives_n_over_stride_rounded_up(spec_writer, h, w, op, rounding):
    """`same` never needs rounding (docs/spec.md), whatever `round` says."""
    attrs = (f"kernel: [{h['k']}, {w['k']}], stride: [{h['s']}, {w['s']}], pad: same, "
             f"round: {rounding}")
    if op == "conv":
        attrs = f"filters: 1, {attrs}, dilation: [{h['d']}, {w['d']}]"
    path = spec_writer(f"- {op}: {{{attrs}}}", ("N", 1, h["n"], w["n"]))
    got, ort_shape = shapes_or_error(path)
    assert not isinstance(got, netc.NetcError), str(got)
    assert ort_shape == concrete(got)
    assert got[2:] == tuple(-(-a["n"] // a["s"]) for a in (h, w))


# ONNX Runtime refuses pooling pads as large as the window (netc's E105, tested below), so
# the pads here stay smaller than the kernel
pool_axis = st.integers(1, 5).flatmap(lambda k: st.fixed_dictionaries({
    "n": st.integers(1, 16), "k": st.just(k), "s": st.integers(1, 4),
    "pb": st.integers(0, k - 1), "pa": st.integers(0, k - 1),
}))
pool_rounding = st.sampled_from(["ceil", "ceil", "floor", "exact"])


def pool_property(spec_writer, op, h, w, rounding, extra=""):
    layer = (f"- {op}: {{kernel: [{h['k']}, {w['k']}], stride: [{h['s']}, {w['s']}], "
             f"pad: [{h['pb']}, {w['pb']}, {h['pa']}, {w['pa']}], round: {rounding}{extra}}}")
    note_ceil_drop((h, w), rounding)
    path = spec_writer(layer, ("N", 2, h["n"], w["n"]))
    got, ort_shape = shapes_or_error(path)
    too_large = any(a["k"] > a["n"] + a["pb"] + a["pa"] for a in (h, w))
    want = tuple(expected_out(**a, d=1, rounding=rounding) for a in (h, w))
    if isinstance(got, netc.NetcError):
        [diag] = got.diagnostics.items
        if too_large:
            assert diag.code == "E302", str(got)
            check_too_large_fixes(" ".join(diag.hints), h, w)
        else:
            assert rounding == "exact" and None in want and diag.code == "E301", str(got)
            hint = " ".join(diag.hints)
            check_fixes(hint, {**h, "d": 1}, {**w, "d": 1})
            for p in re.findall(r"pad: (\d+) gives", hint):  # a pad netc itself would allow
                assert int(p) < min(h["k"], w["k"]), hint
        return
    assert not too_large
    assert ort_shape == concrete(got)
    assert got[2:] == want


@PROPERTY
@given(h=pool_axis, w=pool_axis, rounding=pool_rounding)
def test_maxpool_window_matches_onnxruntime(spec_writer, h, w, rounding):
    pool_property(spec_writer, "maxpool", h, w, rounding)


@PROPERTY
@given(h=pool_axis, w=pool_axis, rounding=pool_rounding, include_pad=st.booleans())
def test_avgpool_window_matches_onnxruntime(spec_writer, h, w, rounding, include_pad):
    pool_property(spec_writer, "avgpool", h, w, rounding,
                  f", include_pad: {str(include_pad).lower()}")


@pytest.mark.parametrize("op, onnx_op", [("maxpool", "MaxPool"), ("avgpool", "AveragePool")])
def test_pool_pad_as_large_as_window_is_refused(make_spec, op, onnx_op):
    """netc's E105 stands in for ONNX Runtime's refusal of a pad >= the pooling window."""
    from onnx import TensorProto, helper

    with pytest.raises(netc.NetcError) as caught:
        check(make_spec(f"- {op}: {{kernel: 2, pad: 2}}", x(1, 6)))
    assert [d.code for d in caught.value.diagnostics.items] == ["E105"]
    node = helper.make_node(onnx_op, ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                            pads=[2, 2, 2, 2])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(Exception, match="(?i)pad"):
        session(model.SerializeToString()).run(None, {"x": np.zeros((1, 1, 6, 6), np.float32)})


# --- numeric oracles --------------------------------------------------------------------------


def conv_reference(xv, weight, bias, stride, pads, dilation, out_hw):
    """Direct convolution in float64: zero padding (top, left, bottom, right) plus as much end
    padding as the output size needs (how `round: ceil` keeps a partial window)."""
    n, c, H, W = xv.shape
    f, _, kh, kw = weight.shape
    top, left = pads[0], pads[1]
    big = np.zeros((n, c, H + top + 64, W + left + 64))  # zeros past the input, any amount
    big[:, :, top:top + H, left:left + W] = xv
    out = np.zeros((n, f, *out_hw))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            r0, c0 = i * stride[0], j * stride[1]
            patch = big[:, :, r0:r0 + dilation[0] * (kh - 1) + 1:dilation[0],
                        c0:c0 + dilation[1] * (kw - 1) + 1:dilation[1]]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, weight)
    return out + bias[None, :, None, None]


@pytest.mark.parametrize("layer, x_shape, geometry", [
    # (7 - 3) / 3 + 1 = 2.33 -> 3: the third window (rows 6..8) reads 2 rows of end padding
    ("{filters: 3, kernel: 3, stride: 3, round: ceil}", (2, 2, 7, 7),
     ((3, 3), (0, 0, 0, 0), (1, 1), (3, 3))),
    # height (8 + 1 - 5) / 2 + 1 = 3, width (9 + 1 - 5) / 2 + 1 = 3.5 -> 4; dilated 3x3 = 5x5
    ("{filters: 2, kernel: 3, stride: 2, dilation: 2, pad: [1, 0, 0, 1], round: ceil}",
     (1, 3, 8, 9), ((2, 2), (1, 0, 0, 1), (2, 2), (3, 4))),
    # height (6 + 1 - 2) / 3 + 1 = 2.67 -> 3, width (5 - 3) / 3 + 1 = 1.67 -> 2
    ("{filters: 2, kernel: [2, 3], stride: 3, pad: [1, 0, 0, 0], round: ceil}",
     (2, 1, 6, 5), ((3, 3), (1, 0, 0, 0), (1, 1), (3, 2))),
])
def test_conv_ceil_values_match_numpy(make_spec, layer, x_shape, geometry):
    stride, pads, dilation, out_hw = geometry
    path = make_spec(f"- conv: {layer}", ("N", *x_shape[1:]))
    graph = check(path)
    assert graph.outputs[0].shape[2:] == out_hw
    rng = np.random.default_rng(1)
    weights = {w.name: rng.standard_normal(w.shape).astype(np.float32) for w in graph.weights}
    xv = rng.standard_normal(x_shape).astype(np.float32)
    [y] = session(serialize(emit(graph, weights=weights))).run(None, {"x": xv})
    want = conv_reference(xv.astype(np.float64), weights["conv1.weight"].astype(np.float64),
                          weights["conv1.bias"].astype(np.float64), stride, pads, dilation, out_hw)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def avgpool_reference(xv, kernel, stride, pads, out_hw, include_pad):
    """Average of each window's pixels; with include_pad, padded zeros count too (the window
    clipped to the padded input, as PyTorch and ONNX Runtime do in ceil mode)."""
    n, c, H, W = xv.shape
    top, left, bottom, right = pads
    out = np.zeros((n, c, *out_hw))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            r0, c0 = i * stride[0] - top, j * stride[1] - left
            r1, c1 = r0 + kernel[0], c0 + kernel[1]
            rows, cols = slice(max(r0, 0), min(r1, H)), slice(max(c0, 0), min(c1, W))
            total = xv[:, :, rows, cols].sum(axis=(2, 3))
            if include_pad:
                count = ((min(r1, H + bottom) - max(r0, -top))
                         * (min(c1, W + right) - max(c0, -left)))
            else:
                count = (rows.stop - rows.start) * (cols.stop - cols.start)
            out[:, :, i, j] = total / count
    return out


@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("layer, geometry", [
    # 3x3 stride 1 pad 1 keeps 5x6: border windows hold 4 or 6 real pixels of 9
    ("{kernel: 3, stride: 1, pad: 1}", ((3, 3), (1, 1), (1, 1, 1, 1), (5, 6))),
    # height (5 + 2 - 3) / 2 + 1 = 3, width (6 + 2 - 3) / 2 + 1 = 3.5 -> 3
    ("{kernel: 3, stride: 2, pad: 1, round: floor}", ((3, 3), (2, 2), (1, 1, 1, 1), (3, 3))),
    # ... ceil: width 4, its last window starts at 6 < 6 + 1 and holds column 5 and padding
    ("{kernel: 3, stride: 2, pad: 1, round: ceil}", ((3, 3), (2, 2), (1, 1, 1, 1), (3, 4))),
    # [top, left, bottom, right] = [2, 0, 1, 1]: height (5 + 3 - 3) / 1 + 1 = 6,
    # width (6 + 1 - 3) / 2 + 1 = 3
    ("{kernel: 3, stride: [1, 2], pad: [2, 0, 1, 1]}", ((3, 3), (1, 2), (2, 0, 1, 1), (6, 3))),
])
def test_avgpool_values_match_numpy(make_spec, layer, geometry, include_pad):
    kernel, stride, pads, out_hw = geometry
    text = layer.replace("}", f", include_pad: {str(include_pad).lower()}}}")
    path = make_spec(f"- avgpool: {text}", ("N", 2, 5, 6))
    graph, _ = check_and_run(path, ("N", 2, *out_hw))
    xv = np.random.default_rng(2).standard_normal((2, 2, 5, 6)).astype(np.float32)
    [y] = run(compile_bytes(path), {"x": xv})
    want = avgpool_reference(xv.astype(np.float64), kernel, stride, pads, out_hw, include_pad)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def lrn_reference(xv, size, alpha, beta, bias):
    """y = x / (bias + alpha / size * sum of x^2 over the `size` channels centred on c)^beta."""
    c = xv.shape[1]
    half = (size - 1) // 2
    squares = np.zeros_like(xv)
    for i in range(c):
        lo, hi = max(0, i - half), min(c, i + half + 1)
        squares[:, i] = (xv[:, lo:hi] ** 2).sum(axis=1)
    return xv / (bias + alpha / size * squares) ** beta


@pytest.mark.parametrize("size, alpha, beta, bias", [
    (5, 0.5, 0.75, 2.0),  # large alpha, so the normalisation visibly matters
    (3, 1.0, 0.5, 1.0),
    (5, 1e-4, 0.75, 1.0),  # netc's defaults (AlexNet's alpha and beta)
])
def test_lrn_values_match_formula(make_spec, size, alpha, beta, bias):
    path = make_spec(f"- lrn: {{size: {size}, alpha: {alpha}, beta: {beta}, bias: {bias}}}",
                     x(7, 3, 4))
    graph, _ = check_and_run(path, x(7, 3, 4))
    xv = np.random.default_rng(3).standard_normal((2, 7, 3, 4)).astype(np.float32)
    [y] = run(compile_bytes(path), {"x": xv})
    want = lrn_reference(xv.astype(np.float64), size, alpha, beta, bias)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
