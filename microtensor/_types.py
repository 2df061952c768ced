"""Type aliases of the public API's annotations; only type checkers import this module."""
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union

from numpy.typing import ArrayLike, DTypeLike

if TYPE_CHECKING:
    from .nn.module import Parameter
    from .tensor import Tensor

TensorLike = Union["Tensor", ArrayLike]        # a Tensor, an ndarray, a number or nested lists
Axis = Union[int, tuple[int, ...], None]
FloatDType = Any                                # np.float32, np.float64 or their names
Params = Union[Iterable["Parameter"], Iterable[dict]]   # parameters, or groups of them

__all__ = ["ArrayLike", "Axis", "DTypeLike", "FloatDType", "Params", "TensorLike"]
