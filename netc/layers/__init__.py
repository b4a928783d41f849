"""The layer types, one module per family; importing this package registers all of them."""

from . import activation, conv, dense, merge, norm, pool  # noqa: F401  (registration)
from .base import REGISTRY, AttrSpec, Layer, Shape, WeightSpec, attributes, fmt_shape

__all__ = ["REGISTRY", "AttrSpec", "Layer", "Shape", "WeightSpec", "attributes", "fmt_shape"]
