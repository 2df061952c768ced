"""Layers as PyTorch names them: Linear, Embedding, Dropout, Sequential and activation modules."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .. import functional as F
from ..errors import DTypeError, IndexOutOfRange
from ..tensor import Tensor
from . import init
from .module import Module, Parameter

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from typing_extensions import Self

    from .._types import FloatDType, TensorLike


def check_dtype(where: str, what: str, dtype: np.dtype[Any] | None,
                want: np.dtype[Any]) -> None:
    """A float input must have the parameters' dtype: NumPy would silently compute in the
    wider one (twice the memory and time) and hand back gradients of the other, so raise as
    torch does, naming both dtypes and the fix."""
    if dtype is not None and dtype != want and dtype.kind == "f":
        raise DTypeError(f"{where}: {what} is {dtype} but the parameters are {want}; cast the "
                         f"input ({'xs' if what == 'xs' else 'x'}.astype(np.{want}), or "
                         f"mt.tensor(..., dtype=np.{want})) or the model "
                         f"(model.to(np.{dtype}))")


class Linear(Module):
    """y = x Wᵀ + b with weight (out_features, in_features), as torch.nn.Linear.

    Weight and bias start uniform in ±1/√in_features (torch's kaiming_uniform_ with a=√5).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: FloatDType = np.float64) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=dtype))
            bound = 1 / in_features ** 0.5 if in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: TensorLike) -> Tensor:
        """x Wᵀ + b for x (…, in_features), of the weight's float dtype (else DTypeError)."""
        check_dtype("Linear", "the input", getattr(x, "dtype", None), self.weight._data.dtype)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        """in_features, out_features and whether there is a bias."""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: row i of weight (num_embeddings, embedding_dim) for each index i.

    Weight starts N(0, 1) as torch.nn.Embedding; gradients of repeated indices add up.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 dtype: FloatDType = np.float64) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype))
        init.normal_(self.weight)

    def forward(self, indices: Tensor | ArrayLike) -> Tensor:
        """The rows of weight for integer indices of any shape: (…,) -> (…, embedding_dim)."""
        idx = np.asarray(indices._data if isinstance(indices, Tensor) else indices)
        check_indices(idx, self.num_embeddings)
        return self.weight[idx]

    def extra_repr(self) -> str:
        """num_embeddings, embedding_dim."""
        return f"{self.num_embeddings}, {self.embedding_dim}"


def check_indices(idx: np.ndarray, n: int) -> None:
    """Embedding's check of its indices (also run by every replay of a compiled step)."""
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"Embedding: indices must be integers, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexOutOfRange(f"Embedding: index {bad} is out of range for "
                              f"{n} embeddings (valid: 0 to {n - 1})")


class Dropout(Module):
    """Zero each element with probability p in training and scale the rest by 1/(1 − p);
    the identity in eval mode. Draws from mt's seeded generator."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: TensorLike) -> Tensor:
        """x with dropout applied in training mode; x itself in eval mode."""
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        """The drop probability p."""
        return f"p={self.p}"


class Sequential(Module):
    """Modules applied in order; Sequential(a, b, c) or Sequential(OrderedDict(name=module))."""

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), cast(Module, module))    # add_module rejects a non-Module

    def forward(self, x: Any) -> Any:
        """x passed through each module in turn."""
        for m in self:
            x = m(x)
        return x

    def __getitem__(self, i: int | slice) -> Any:
        items: list[tuple[str, Any]] = list(self._modules.items())
        if isinstance(i, slice):
            return Sequential(OrderedDict(items[i]))
        if not -len(items) <= i < len(items):
            raise IndexError(f"index {i} is out of range for a Sequential of length "
                             f"{len(items)}")
        return items[i][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Self:
        """Add module at the end; returns self."""
        self.add_module(str(len(self._modules)), module)
        return self


class Tanh(Module):
    """tanh as a module, for Sequential."""

    def forward(self, x: TensorLike) -> Tensor:
        """tanh x, elementwise."""
        return F.tanh(x)


class ReLU(Module):
    """max(x, 0) as a module, for Sequential."""

    def forward(self, x: TensorLike) -> Tensor:
        """max(x, 0), elementwise."""
        return F.relu(x)


class Sigmoid(Module):
    """σ(x) = 1/(1 + e⁻ˣ) as a module, for Sequential."""

    def forward(self, x: TensorLike) -> Tensor:
        """σ(x), elementwise."""
        return F.sigmoid(x)
