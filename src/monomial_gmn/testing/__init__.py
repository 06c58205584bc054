"""Test helpers shared by the library's own tests and by users checking their models.

* :func:`assert_equivariant` — the one equivariance/invariance check used for every layer and model.
* :func:`random_network` — random Sequential MLPs/CNNs (depth, widths, kernels, strides, paddings, mixed
  activations, flatten over spatial maps) with an example input.
"""

from ._equivariance import TOLERANCES, assert_equivariant, default_tolerance, relative_error
from ._networks import random_network

__all__ = ["assert_equivariant", "default_tolerance", "relative_error", "random_network", "TOLERANCES"]
