"""netc's safety limits, as one value that travels through the pipeline.

Specs come from strangers, so every stage bounds the work a file can cause before it does
it (docs/robustness.md): the loader the file's size, nesting and node count, the expander the
layers a spec expands to and how deeply blocks nest, the checker the elements of one tensor
and of all weights. The numbers are defaults against hostile files, not rules of the format: a
user with a legitimately huge spec raises them with `--limit NAME=N` (cli.py builds a `Limits`
from those), and the stages read them from the `Limits` they are given, never from a global.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The limits of one run; every field is a count (bytes for `bytes`). `Limits()` holds the
    defaults; `Limits(layers=500_000)` raises one."""

    bytes: int = 1 << 20  # spec file size: 1 MiB, where the largest zoo spec is a few KiB
    depth: int = 64  # YAML nesting
    nodes: int = 100_000  # YAML nodes
    layers: int = 100_000  # layers after expansion
    nesting: int = 16  # blocks inside blocks
    tensor: int = 1 << 31  # elements in one activation (per image) or one weight tensor
    params: int = 1 << 32  # elements of all weights together (16 GiB in float32)


DEFAULT = Limits()

# The most each limit may be raised to (`--limit NAME=N`): what netc can honour. Past them
# netc itself would fail rather than the file: YAML nesting and blocks in blocks are walked
# recursively (a spec nested 128 levels deep inside blocks 64 deep stays within Python's
# stack, measured with every command; libyaml stops at 1,000 levels of its own), a spec is
# read into memory (bytes), and element counts must stay far inside numpy's and ONNX's 64-bit
# sizes (2^48 elements of 8 bytes is 2^51 bytes).
MAXIMA = {
    "bytes": 1 << 30,
    "depth": 128,
    "nodes": 1 << 31,
    "layers": 1 << 31,
    "nesting": 64,
    "tensor": 1 << 48,
    "params": 1 << 48,
}

# What each limit bounds, for `--help` and error messages (the names are Limits' fields).
BOUNDS = {
    "bytes": "spec file size",
    "depth": "YAML nesting",
    "nodes": "YAML nodes",
    "layers": "layers after expansion",
    "nesting": "blocks inside blocks",
    "tensor": "elements of one tensor",
    "params": "weights in all",
}
