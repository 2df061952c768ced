"""NumPy as the array namespace of a first-order backward (`ctx.xp` is this module).

Each op's backward is written once, against `ctx.xp`. On the first-order path ctx is the
output tensor, its and its inputs' `._data` are ndarrays and `ctx.xp` is this module: NumPy's own
functions, so a backward runs exactly the NumPy calls it always did. With create_graph=True
the engine passes a context whose `._data` are Tensors and whose `xp` has the same names as
microtensor's differentiable ops (microtensor/create_graph.py), so the same formula builds
a graph. Four names stand for forms NumPy has no single call for:
  constant(y)  y's values, for a mask or a count that is not differentiated;
  outer(a, b)  aᵀb, kept factored here (ops.linalg.Outer; a graph gets the matmul);
  scatter      getitem's gradient, kept structured here (ops.shape.Scatter; a graph gets
               the scatter_add op, whose own backward is getitem);
  softmax_minus_onehot  cross_entropy's softmax(z) − onehot(t), from its saved log Σ eᶻ.
"""
import numpy as np
from numpy import (broadcast_to, exp, expand_dims, log, moveaxis, multiply,  # noqa: F401
                   sign, split, swapaxes, transpose, where)

from .linalg import Outer as outer  # noqa: F401
from .shape import Scatter as scatter  # noqa: F401

constant = np.asarray


def softmax_minus_onehot(z, lse, targets):
    """softmax(z) − onehot(targets) for z (N, C), in one new array."""
    p = z - lse[:, None]
    np.exp(p, out=p)
    p[np.arange(len(targets)), targets] -= 1
    return p
