"""The exception hierarchy: every error microtensor raises is a MicrotensorError."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tensor import Tensor


class MicrotensorError(Exception):
    """Base class of all microtensor errors."""


class ShapeError(MicrotensorError, ValueError):
    """Shapes that do not fit an op: broadcasting, matmul, reshape, a gradient's shape."""


class DTypeError(MicrotensorError, TypeError):
    """A dtype an op cannot take, such as an integer tensor asked to require grad."""


class GraphError(MicrotensorError, RuntimeError):
    """backward() asked of a graph that cannot give it (released, no grad, non-scalar root)."""


class VersionError(GraphError):
    """An array backward needs was written in place, or replaced, after the op saved it."""


class GuardError(MicrotensorError, ValueError):
    """A NumPy write into memory a live graph will read in backward (versions.py's guards)."""


class AnomalyError(MicrotensorError, FloatingPointError):
    """Anomaly mode found a NaN or an infinity; `.tensor` is where (drawn red by mt.viz)."""

    def __init__(self, message: str, tensor: Tensor | None = None) -> None:
        super().__init__(message)
        self.tensor = tensor


class GraphGrowthWarning(RuntimeWarning):
    """One backward walked a graph that keeps growing across backward(retain_graph=True) calls."""


class GradcheckError(MicrotensorError, AssertionError):
    """Analytic and finite-difference gradients disagree."""


class CheckpointError(MicrotensorError, ValueError):
    """A checkpoint or state dict that cannot be saved or loaded as asked."""


class IndexOutOfRange(MicrotensorError, IndexError):
    """An index outside a tensor's shape."""


class ArgumentError(MicrotensorError, TypeError):
    """An argument of the wrong kind for an op."""


def error_kind(e: Exception) -> type[MicrotensorError]:
    """The microtensor error that stands for a NumPy error raised inside an op."""
    if isinstance(e, IndexError):
        return IndexOutOfRange
    if isinstance(e, ValueError):
        return ShapeError
    if isinstance(e, TypeError):
        return ArgumentError
    return GraphError
