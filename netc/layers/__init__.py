"""The layer types, one module per family; importing this package registers all of them.

A new layer type is one class in one of these modules (or a new module imported here): see
base.py for what the class holds, and docs/architecture.md for the rows it adds to the docs
and tests.
"""

# importing the family modules registers their layer types
from . import activation, conv, dense, merge, norm, pool, regularize, resize, shape  # noqa: F401
from .base import (REGISTRY, AttrSpec, Layer, Shape, ShapePreserving, Site, WeightSpec, attr,
                   attributes, fmt_shape, layer)



def counting_macs() -> str:
    """The layer types whose multiply-accumulates netc counts, as prose: `conv and dense`."""
    kinds = sorted(kind for kind, cls in REGISTRY.items() if cls.macs is not Layer.macs)
    return " and ".join(kinds) if len(kinds) < 3 else ", ".join(kinds[:-1]) + " and " + kinds[-1]


__all__ = ["REGISTRY", "AttrSpec", "Layer", "Shape", "ShapePreserving", "Site", "WeightSpec",
           "attr", "attributes", "counting_macs", "fmt_shape", "layer"]
