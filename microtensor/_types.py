"""Type aliases of the public API's annotations; only type checkers import this module."""
import os
from collections.abc import Callable, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

from numpy import ndarray
from numpy.typing import ArrayLike, DTypeLike

if TYPE_CHECKING:
    from .tensor import Tensor

TensorLike = Union["Tensor", ArrayLike]        # a Tensor, an ndarray, a number or nested lists
Axis = Union[int, tuple[int, ...], None]
Shape = tuple[int, ...]
FloatDType = Any                                # np.float32, np.float64 or their names
TensorOrTensors = Union["Tensor", Sequence["Tensor"]]   # one Tensor, or a tuple (or list) of them
State = Union["Tensor", tuple["Tensor", ...]]   # a recurrent state: h, or a tuple such as (h, c)
# what indexing takes: ints, slices, None, ..., integer arrays and masks, or a tuple of them
Index = Union[int, slice, None, EllipsisType, ndarray, "Tensor", Sequence[int], tuple[Any, ...]]
Reduction = Literal["mean", "sum", "none"]     # how a loss reduces over its elements
Frame = tuple[str, int, str]                    # (file, line, function) of a kept forward stack
StrPath = Union[str, "os.PathLike[str]"]
F = TypeVar("F", bound=Callable[..., Any])      # a decorator that returns the function it wraps
HookT = TypeVar("HookT", bound=Callable[..., Any])   # register_hook returns the hook it was given

__all__ = ["ArrayLike", "Axis", "DTypeLike", "F", "FloatDType", "Frame", "HookT", "Index",
           "Reduction", "Shape", "State", "StrPath", "TensorLike", "TensorOrTensors"]
