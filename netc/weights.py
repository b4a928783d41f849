"""Weight tensors: deterministic initial values.

Each tensor draws from its own random stream, seeded by the user's `--seed` and a hash of the
tensor's name, so the same spec and seed give the same bytes on any machine, and a tensor keeps
its values when layers elsewhere in the spec are added or removed.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .ir import Weight

DEFAULT_SEED = 0


def stream(seed: int, name: str) -> np.random.Generator:
    """The random stream of tensor `name` under `seed` (independent of Python's hash seed)."""
    words = np.frombuffer(hashlib.sha256(name.encode("utf-8")).digest(), dtype="<u4")
    entropy = [int(seed) & 0xFFFFFFFF, int(seed) >> 32, *(int(w) for w in words)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def initial_value(weight: Weight, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The initial float32 value of a weight, by its initialiser name.

    he_normal: N(0, 2 / fan_in) (He et al. 2015, for ReLU networks); zeros; ones.
    """
    spec = weight.spec
    if spec.init == "zeros":
        return np.zeros(spec.shape, dtype=np.float32)
    if spec.init == "ones":
        return np.ones(spec.shape, dtype=np.float32)
    if spec.init == "he_normal":
        values = stream(seed, weight.name).standard_normal(spec.shape, dtype=np.float32)
        values *= np.float32(np.sqrt(2.0 / max(spec.fan_in, 1)))
        return values
    raise ValueError(f"unknown initialiser {spec.init!r}")  # a netc bug: layers name known ones
