"""Parameter initialisers as torch.nn.init: in place on .data (a stamped write, as every write
of microtensor's: versions.py), no graph, mt's seeded generator."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .. import versions
from ..creation import generator
from ..errors import ShapeError
from ..tensor import Tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

_T = TypeVar("_T", bound="Tensor | np.ndarray")    # filled in place and returned


def _array(t):
    return t._data if isinstance(t, Tensor) else t


def _fill(t, values):
    if isinstance(t, Tensor):
        with versions.writing(t) as a:
            a[...] = values
    else:
        t[...] = values
    return t


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that keeps activations' variance steady: tanh 5/3, relu √2, linear 1, …"""
    if nonlinearity in ("linear", "identity", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(name, shape):
    """(fan_in, fan_out) of a weight (out, in, *kernel), as torch computes them."""
    if len(shape) < 2:
        raise ShapeError(f"{name}: fan in and fan out need a tensor of at least 2 dimensions, "
                         f"got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def uniform_(t: _T, a: float = 0.0, b: float = 1.0) -> _T:
    """Fill t with samples from U(a, b)."""
    return _fill(t, generator().uniform(a, b, _array(t).shape))


def normal_(t: _T, mean: float = 0.0, std: float = 1.0) -> _T:
    """Fill t with samples from N(mean, std²)."""
    return _fill(t, generator().normal(mean, std, _array(t).shape))


def constant_(t: _T, value: ArrayLike) -> _T:
    """Fill t with value (broadcast to t's shape)."""
    return _fill(t, value)


def zeros_(t: _T) -> _T:
    """Fill t with zeros."""
    return _fill(t, 0)


def ones_(t: _T) -> _T:
    """Fill t with ones."""
    return _fill(t, 1)


def xavier_uniform_(t: _T, gain: float = 1.0) -> _T:
    """U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans("xavier_uniform_", _array(t).shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t: _T, gain: float = 1.0) -> _T:
    """N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans("xavier_normal_", _array(t).shape)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(t: _T, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> _T:
    """U(−b, b) with b = gain·√(3 / fan) (He et al., 2015); a is leaky_relu's negative slope.

    a=√5 gives b = 1/√fan_in, torch's default for Linear weights.
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_uniform_: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans("kaiming_uniform_", _array(t).shape)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan) if fan else 0.0
    return uniform_(t, -bound, bound)


def orthogonal_(t: _T, gain: float = 1.0) -> _T:
    """A (semi-)orthogonal matrix: Q of the QR of a normal matrix, signs fixed by diag(R).

    Tensors of more than 2 dimensions are flattened to (shape[0], rest), as torch does.
    """
    arr = _array(t)
    if arr.ndim < 2:
        raise ShapeError(f"orthogonal_: needs a tensor of at least 2 dimensions, got shape "
                         f"{arr.shape}")
    rows = arr.shape[0]
    cols = arr.size // rows if rows else 0
    if arr.size == 0:
        return t
    flat = generator().standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))         # makes Q uniform over orthogonal matrices (Mezzadri, 2007)
    if rows < cols:
        q = q.T
    return _fill(t, gain * q.reshape(arr.shape))
