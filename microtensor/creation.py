"""Tensor factories and microtensor's own seeded random generator."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .tensor import Tensor, _leaf
from .versions import GuardedArray, unwrap

if TYPE_CHECKING:
    from ._types import DTypeLike, FloatDType, TensorLike

_rng = np.random.default_rng()


def manual_seed(seed: int | None) -> np.random.Generator:
    """Seed the generator behind randn, rand, nn.init and Dropout, for reproducible runs."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def generator() -> np.random.Generator:
    """The numpy.random.Generator microtensor draws from."""
    return _rng


def get_rng_state() -> Mapping[str, Any]:
    """The generator's state as a JSON-able dict (for checkpoints)."""
    return _rng.bit_generator.state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the generator to a state from get_rng_state() (for resuming a run exactly)."""
    _rng.bit_generator.state = state


def tensor(data: TensorLike, requires_grad: bool = False, dtype: DTypeLike | None = None) -> Tensor:
    """A new leaf tensor holding a copy of data; Python floats default to float64."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(data: TensorLike, dtype: DTypeLike | None = None) -> Tensor:
    """data as a Tensor without copying where possible (as torch.as_tensor): a Tensor is
    returned as is, an ndarray of the right dtype is shared, not copied."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtype):
        return data
    if isinstance(data, Tensor):
        data = data._data
    elif isinstance(data, GuardedArray):    # .data of a locked tensor: its array, shared
        data = unwrap(data)
    return _leaf(np.asarray(data, dtype=dtype))


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def zeros(*shape: int | tuple[int, ...], dtype: DTypeLike = np.float64,
          requires_grad: bool = False) -> Tensor:
    """A leaf of zeros; the shape as ints or one tuple: zeros(2, 3) or zeros((2, 3))."""
    return _leaf(np.zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape: int | tuple[int, ...], dtype: DTypeLike = np.float64,
         requires_grad: bool = False) -> Tensor:
    """A leaf of ones; the shape as ints or one tuple."""
    return _leaf(np.ones(_shape(shape), dtype=dtype), requires_grad)


def full(shape: int | tuple[int, ...], fill_value: float, dtype: DTypeLike = np.float64,
         requires_grad: bool = False) -> Tensor:
    """A leaf of the given shape filled with fill_value."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _leaf(np.full(shape, fill_value, dtype=dtype), requires_grad)


def zeros_like(t: TensorLike, dtype: DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    """Zeros of t's shape (and dtype, unless given)."""
    return _leaf(np.zeros_like(np.asarray(t), dtype=dtype), requires_grad)


def ones_like(t: TensorLike, dtype: DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    """Ones of t's shape (and dtype, unless given)."""
    return _leaf(np.ones_like(np.asarray(t), dtype=dtype), requires_grad)


def randn(*shape: int | tuple[int, ...], dtype: FloatDType = np.float64,
          requires_grad: bool = False) -> Tensor:
    """Standard normal samples from microtensor's seeded generator."""
    return _leaf(_rng.standard_normal(_shape(shape), dtype=dtype), requires_grad)


def rand(*shape: int | tuple[int, ...], dtype: FloatDType = np.float64,
         requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from microtensor's seeded generator."""
    return _leaf(_rng.random(_shape(shape), dtype=dtype), requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: DTypeLike | None = None,
           requires_grad: bool = False) -> Tensor:
    """Evenly spaced values as numpy.arange (integers stay integers unless dtype says)."""
    data = np.arange(start, stop, step, dtype=dtype) if stop is not None else \
        np.arange(start, dtype=dtype)
    return _leaf(data, requires_grad)
