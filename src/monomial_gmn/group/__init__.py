"""The monomial group acting on parameter graphs and modules."""

from ._canonical import CANONICAL_SCALES, CanonicalForm, canonical_form
from ._group import MonomialGroup, random_transform, sample_transform
from ._structure import SymmetryStructure
from ._transform import MonomialTransform

__all__ = ["MonomialGroup", "MonomialTransform", "SymmetryStructure", "sample_transform", "random_transform",
           "canonical_form", "CanonicalForm", "CANONICAL_SCALES"]
