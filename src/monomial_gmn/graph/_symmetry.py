"""Per-neuron symmetry and role codes, and the algebra that derives a neuron's symmetry from the ops after it.

A hidden neuron's *symmetry* is the set of factors d_i for which scaling the neuron's pre-activation by
d_i can be undone by the next layer (the transformation law: :mod:`monomial_gmn.graph._parameter_graph`).
The table below is the one place the factor sets are written down; code reads them from :data:`FACTORS`
(through :func:`magnitude_free` and :func:`sign_free`):

=================  ==========================  =========================================================
code               factors d_i                 ops after the neuron that give it
=================  ==========================  =========================================================
``FIXED``          d = 1, never permuted       input and output neurons
``NONE``           d = 1, permutable           sigmoid, GELU, ELU, softplus, ... (no homogeneity)
``POSITIVE_SCALE`` d > 0, permutable           ReLU, LeakyReLU, max pooling
``SIGN``           d = ±1, permutable          tanh, sin, SIREN's sin(ω0·x) (odd functions)
``SCALE``          d ≠ 0, permutable           identity / linear ops only (dropout, average pooling)
=================  ==========================  =========================================================

A chain of ops keeps the intersection (:func:`meet`) of what each op allows.
"""

from __future__ import annotations

import enum

from torch import Tensor

__all__ = ["Symmetry", "Role", "meet", "FACTORS", "magnitude_free", "sign_free"]


class Symmetry(enum.IntEnum):
    """Which monomial factors a neuron admits. Stored per node in ``ParameterGraph.sym``."""

    FIXED = 0
    NONE = 1
    POSITIVE_SCALE = 2
    SIGN = 3
    SCALE = 4

    @classmethod
    def parse(cls, value: "Symmetry | str | int") -> "Symmetry":
        if isinstance(value, Symmetry):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"unknown symmetry {value!r}; expected one of "
                                 f"{[m.name.lower() for m in cls]}") from None
        return cls(int(value))

    @property
    def label(self) -> str:
        return self.name.lower()


#: The factor set of each code as (|d| free, sign of d free): d = 1 (fixed, none), d > 0 (positive_scale),
#: d = ±1 (sign), d ≠ 0 (scale). Fixed neurons are moreover never permuted.
FACTORS: dict[Symmetry, tuple[bool, bool]] = {
    Symmetry.FIXED: (False, False),
    Symmetry.NONE: (False, False),
    Symmetry.POSITIVE_SCALE: (True, False),
    Symmetry.SIGN: (False, True),
    Symmetry.SCALE: (True, True),
}
_MAGNITUDE_FREE = tuple(s for s, (mag, _) in FACTORS.items() if mag)
_SIGN_FREE = tuple(s for s, (_, sign) in FACTORS.items() if sign)


def _any_code(sym: Tensor, codes: tuple[Symmetry, ...]) -> Tensor:
    out = sym == codes[0]
    for code in codes[1:]:
        out = out | (sym == code)
    return out


def magnitude_free(sym: Tensor) -> Tensor:
    """Bool mask (shape of ``sym``, long codes): neurons whose factor may have any magnitude (positive_scale, scale)."""
    return _any_code(sym, _MAGNITUDE_FREE)


def sign_free(sym: Tensor) -> Tensor:
    """Bool mask (shape of ``sym``, long codes): neurons whose factor may be negative (sign, scale)."""
    return _any_code(sym, _SIGN_FREE)


class Role(enum.IntEnum):
    """Position of a neuron in the network. Stored per node in ``ParameterGraph.role``."""

    INPUT = 0
    HIDDEN = 1
    OUTPUT = 2


def meet(a: Symmetry, b: Symmetry) -> Symmetry:
    """The symmetry left after two ops in a row (the intersection of their factor sets).

    >>> meet(Symmetry.SCALE, Symmetry.SIGN).label
    'sign'
    >>> meet(Symmetry.POSITIVE_SCALE, Symmetry.SIGN).label
    'none'
    """
    if Symmetry.FIXED in (a, b):
        return Symmetry.FIXED
    if a == b:
        return a
    if a == Symmetry.SCALE:
        return b
    if b == Symmetry.SCALE:
        return a
    return Symmetry.NONE
