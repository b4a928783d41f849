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
