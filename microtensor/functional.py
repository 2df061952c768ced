"""Losses and activations with PyTorch's names: softmax, cross_entropy, linear, … (axis= as NumPy)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import ops, versions
from .errors import ShapeError
from .ops.linalg import LinearAdd
from .tensor import Tensor, _binary_op, apply, as_tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ._types import DTypeLike, Reduction, TensorLike


def softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """e^x / Σ e^x along axis, computed stably."""
    return apply(ops.Softmax, as_tensor(x), axis=axis)


def log_softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """x − logΣexp(x) along axis; finite for any finite x (logits of 1e4 included)."""
    return apply(ops.LogSoftmax, as_tensor(x), axis=axis)


def relu(x: TensorLike) -> Tensor:
    """max(x, 0), elementwise (subgradient 0 at 0)."""
    return as_tensor(x).relu()


def tanh(x: TensorLike) -> Tensor:
    """tanh x, elementwise."""
    return as_tensor(x).tanh()


def sigmoid(x: TensorLike) -> Tensor:
    """σ(x) = 1/(1 + e⁻ˣ), elementwise."""
    return as_tensor(x).sigmoid()


_linear_no_bias = _binary_op(ops.Linear)


def linear(x: TensorLike, weight: TensorLike, bias: TensorLike | None = None) -> Tensor:
    """x @ weightᵀ + bias as one op, as torch.nn.functional.linear: weight (out, in), bias
    (out,). To add a whole precomputed term instead of a bias, use linear_add."""
    x = x if isinstance(x, Tensor) else as_tensor(x)
    weight = weight if isinstance(weight, Tensor) else as_tensor(weight)
    if bias is None:
        return _linear_no_bias(x, weight)
    return apply(ops.Linear, x, weight, bias if isinstance(bias, Tensor) else as_tensor(bias))


def linear_add(x: TensorLike, weight: TensorLike, addend: TensorLike) -> Tensor:
    """x @ weightᵀ + addend as one op (torch.addmm(addend, x, weight.T)), addend of any shape
    that broadcasts against the product: a recurrent step's h Whhᵀ + its precomputed row."""
    x = x if isinstance(x, Tensor) else as_tensor(x)
    weight = weight if isinstance(weight, Tensor) else as_tensor(weight)
    return apply(LinearAdd, x, weight, addend if isinstance(addend, Tensor) else as_tensor(addend))


def _reduce(loss, reduction, name):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _targets(name, logp, targets):
    t = np.asarray(targets._data if isinstance(targets, Tensor) else targets)
    n, c = logp.shape
    if t.dtype.kind not in "iu":
        raise ShapeError(f"{name}: targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ShapeError(f"{name}: input has shape {logp.shape} (N, C), so targets must have "
                         f"shape ({n},); got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= c):
        bad = t[(t < 0) | (t >= c)][0]
        raise ShapeError(f"{name}: target {bad} is out of range for {c} classes "
                         f"(valid: 0 to {c - 1})")
    return t


def nll_loss(log_probs: TensorLike, targets: Tensor | ArrayLike,
             reduction: Reduction = "mean") -> Tensor:
    """−log_probs[i, targets[i]], reduced; log_probs of shape (N, C), targets (N,)."""
    log_probs = as_tensor(log_probs)
    if log_probs.ndim != 2:
        raise ShapeError(f"nll_loss: expected input of shape (N, C), got {log_probs.shape}")
    t = _targets("nll_loss", log_probs, targets)
    return _reduce(-log_probs[np.arange(len(t)), t], reduction, "nll_loss")


def cross_entropy(logits: TensorLike, targets: Tensor | ArrayLike,
                  reduction: Reduction = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, C) against integer targets (N,), one fused op."""
    logits = as_tensor(logits)
    if logits.ndim != 2:
        raise ShapeError(f"cross_entropy: expected logits of shape (N, C), got {logits.shape}; "
                         f"reshape a sequence's (T, B, C) logits to (T*B, C)")
    t = _targets("cross_entropy", logits, targets)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got "
                         f"{reduction!r}")
    out = apply(ops.CrossEntropy, logits, targets=t, reduction=reduction)
    if out.op is not None:                           # backward reads the targets
        versions.lease_arrays(out, (t,))
    return out


def mse_loss(pred: TensorLike, target: TensorLike, reduction: Reduction = "mean") -> Tensor:
    """(pred − target)², reduced; the shapes must match."""
    pred = as_tensor(pred)
    target = as_tensor(target, pred)
    if pred.shape != target.shape:
        raise ShapeError(f"mse_loss: pred has shape {pred.shape} but target has shape "
                         f"{target.shape}; they must match")
    d = pred - target
    return _reduce(d * d, reduction, "mse_loss")


def one_hot(indices: Tensor | ArrayLike, num_classes: int,
            dtype: DTypeLike = np.float64) -> Tensor:
    """A (…, num_classes) tensor with 1 at each index (float64 by default, ready for matmul)."""
    idx = np.asarray(indices._data if isinstance(indices, Tensor) else indices)
    if idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= num_classes)):
        raise ShapeError(f"one_hot: indices must be integers in [0, {num_classes}); "
                         f"got dtype {idx.dtype}" + (f", range [{idx.min()}, {idx.max()}]"
                                                     if idx.size and idx.dtype.kind in 'iu' else ""))
    out = np.zeros(idx.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, idx[..., None], 1, axis=-1)
    return Tensor(out)


def dropout(x: TensorLike, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1 − p) (inverted dropout)."""
    from .creation import generator
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    x = as_tensor(x)
    if not training or p == 0:
        return x
    mask = (generator().random(x.shape) >= p).astype(x.dtype) / x.dtype.type(1 - p)
    return x * mask
