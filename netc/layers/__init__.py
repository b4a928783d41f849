"""The layer types, one module per family; importing this package registers all of them.

A new layer type is one class in one of these modules (or a new module imported here): see
base.py for what the class holds, and docs/architecture.md for the rows it adds to the docs
and tests.
"""

from . import activation, conv, dense, merge, norm, pool  # noqa: F401  (registration)
from .base import (REGISTRY, AttrSpec, Layer, Shape, ShapePreserving, Site, WeightSpec, attr,
                   attributes, fmt_shape, layer)

__all__ = ["REGISTRY", "AttrSpec", "Layer", "Shape", "ShapePreserving", "Site", "WeightSpec",
           "attr", "attributes", "fmt_shape", "layer"]
