"""Exceptions raised by monomial_gmn. Every message names what is wrong (module path, file, field)."""

from __future__ import annotations

__all__ = ["UnsupportedModuleError", "NonFiniteWeightsError", "GraphMismatchError", "ZooFormatError"]


class UnsupportedModuleError(TypeError):
    """A module (named by its path and type) has no converter, or a configuration the converter rejects."""

    def __init__(self, path: str, module_type: str, reason: str = "no converter is registered for it"):
        self.path = path or "<root>"
        self.module_type = module_type
        self.reason = reason
        super().__init__(f"cannot convert module '{self.path}' of type {module_type}: {reason}")


class NonFiniteWeightsError(ValueError):
    """A parameter (or graph field) holds NaN or infinite values."""


class GraphMismatchError(ValueError):
    """A ParameterGraph does not fit the architecture it is being loaded into."""


class ZooFormatError(ValueError):
    """A zoo file or directory is missing, truncated or malformed (the message names the file and field)."""
