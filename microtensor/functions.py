"""The ops as functions (mt.exp(t), mt.stack(ts), …), for tensors, arrays and numbers alike."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import ops
from .errors import ArgumentError, ShapeError
from .tensor import Tensor, apply, as_tensor

if TYPE_CHECKING:
    from ._types import Axis, TensorLike


def _t(x: TensorLike) -> Tensor:
    return as_tensor(x)


def exp(x: TensorLike) -> Tensor:
    """eˣ, elementwise."""
    return _t(x).exp()


def log(x: TensorLike) -> Tensor:
    """The natural logarithm, elementwise."""
    return _t(x).log()


def tanh(x: TensorLike) -> Tensor:
    """tanh x, elementwise."""
    return _t(x).tanh()


def sigmoid(x: TensorLike) -> Tensor:
    """σ(x) = 1/(1 + e⁻ˣ), elementwise."""
    return _t(x).sigmoid()


def relu(x: TensorLike) -> Tensor:
    """max(x, 0), elementwise (subgradient 0 at 0)."""
    return _t(x).relu()


def sqrt(x: TensorLike) -> Tensor:
    """√x, elementwise."""
    return _t(x).sqrt()


def abs(x: TensorLike) -> Tensor:  # noqa: A001  (mirrors numpy.abs)
    """|x|, elementwise (subgradient 0 at 0)."""
    return _t(x).abs()


def clip(x: TensorLike, lo: float | None = None, hi: float | None = None) -> Tensor:
    """x limited to [lo, hi] (either may be None); no gradient where x is clipped."""
    return _t(x).clip(lo, hi)


def sum(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The sum over axis (all axes when None)."""
    return _t(x).sum(axis, keepdims)


def mean(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The mean over axis (all axes when None)."""
    return _t(x).mean(axis, keepdims)


def max(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The maximum over axis; tied maxima share the gradient equally (as torch.amax)."""
    return _t(x).max(axis, keepdims)


def min(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The minimum over axis; tied minima share the gradient equally (as torch.amin)."""
    return _t(x).min(axis, keepdims)


def reshape(x: TensorLike, *shape: int | tuple[int, ...]) -> Tensor:
    """The same elements in a new shape (given as ints or one tuple; -1 once is inferred)."""
    return _t(x).reshape(*shape)


def transpose(x: TensorLike, *axes: int) -> Tensor:
    """The axes permuted (reversed when none are given), as numpy.transpose."""
    return _t(x).transpose(*axes)


def squeeze(x: TensorLike, axis: Axis = None) -> Tensor:
    """Axes of size 1 removed (those given, or all)."""
    return _t(x).squeeze(axis)


def expand_dims(x: TensorLike, axis: int | tuple[int, ...]) -> Tensor:
    """A new axis of size 1 at axis, as numpy.expand_dims."""
    return _t(x).expand_dims(axis)


def broadcast_to(x: TensorLike, *shape: int | tuple[int, ...]) -> Tensor:
    """x broadcast to shape; the gradient is summed back to x's shape."""
    return _t(x).broadcast_to(*shape)


def flatten(x: TensorLike) -> Tensor:
    """x as one axis (a reshape to (-1,))."""
    return _t(x).flatten()


def _pair(a, b):
    """a and b as tensors; a Python number takes the other operand's float dtype, on either
    side (mt.maximum(0.5, x) stays float32 for a float32 x, as torch)."""
    if isinstance(a, Tensor):
        return a, as_tensor(b, a)
    if isinstance(b, Tensor):
        return as_tensor(a, b), b
    a = _t(a)
    return a, as_tensor(b, a)


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """a @ b, as numpy.matmul (batched over leading axes)."""
    return apply(ops.MatMul, *_pair(a, b))


def maximum(a: TensorLike, b: TensorLike) -> Tensor:
    """The elementwise maximum; at a tie each side gets half the gradient."""
    return apply(ops.Maximum, *_pair(a, b))


def minimum(a: TensorLike, b: TensorLike) -> Tensor:
    """The elementwise minimum; at a tie each side gets half the gradient."""
    return apply(ops.Minimum, *_pair(a, b))


def where(cond: TensorLike, a: TensorLike, b: TensorLike) -> Tensor:
    """a where cond is true, else b; differentiable in a and b."""
    return apply(ops.Where, *_pair(a, b), cond=_condition(cond))


def _condition(cond: TensorLike) -> np.ndarray:
    """where's condition as a bool array of its own: a copy, so the caller may reuse theirs
    (mt.compile records it here, whichever name `where` was called by)."""
    return np.array(cond._data if isinstance(cond, Tensor) else cond, dtype=bool)


def _tensor_list(op_name: str, tensors: Sequence[TensorLike]) -> tuple[Tensor, ...]:
    if isinstance(tensors, Tensor) or not len(tensors):
        raise ArgumentError(f"{op_name}: expected a non-empty sequence of tensors")
    return tuple(_t(t) for t in tensors)


def stack(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    ts = _tensor_list("stack", tensors)
    return apply(ops.Stack, *ts, axis=axis)


def concat(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    ts = _tensor_list("concat", tensors)
    return apply(ops.Concat, *ts, axis=axis)


def split(x: TensorLike, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split x along axis as numpy.split does: into n equal parts, or at the given indices."""
    x = _t(x)
    n = x.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ShapeError(f"split: an axis of size {n} cannot be split into {k} equal parts")
        bounds = list(range(0, n + 1, n // k))
    else:
        bounds = [0, *indices_or_sections, n]
    head = (slice(None),) * (axis % x.ndim)
    return [x[head + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:])]
