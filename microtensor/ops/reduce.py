"""Reductions over axes (sum, mean, max, min) and the softmax family along one axis."""
from collections.abc import Callable

import numpy as np

from ..autograd import Op, register
from ..errors import ShapeError


def normalize_axis(axis, ndim, op_name):
    """None, or a sorted tuple of non-negative axes; a clear error for an axis out of range."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < max(ndim, 1):
            raise ShapeError(f"{op_name}: axis {ax} is out of range for a tensor with "
                             f"{ndim} dimension(s)")
        out.append(int(ax) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op_name}: repeated axis in {axis}")
    return tuple(sorted(out))


def _expand(xp, g, shape, axis, keepdims):
    """Put the reduced axes back into g (as size 1) so it broadcasts against the input."""
    if keepdims:
        return g
    if axis is None:
        return g.reshape((1,) * len(shape))
    return xp.expand_dims(g, axis)


@register
class Sum(Op):
    """Σ a over axis;  ∂a = g broadcast back over the summed axes"""
    name = "sum"
    reads_output, reads_inputs = False, ()

    @staticmethod
    def forward(a, axis=None, keepdims=False):
        return np.sum(a, axis=axis, keepdims=keepdims), (a.shape, axis, keepdims)

    @staticmethod
    def backward(ctx, g):
        shape, axis, keepdims = ctx.saved
        xp = ctx.xp
        return (xp.broadcast_to(_expand(xp, g, shape, axis, keepdims), shape),)


@register
class Mean(Op):
    """mean of a over axis;  ∂a = g/n broadcast back, n the count averaged over"""
    name = "mean"
    reads_output, reads_inputs = False, ()

    @staticmethod
    def forward(a, axis=None, keepdims=False):
        return np.mean(a, axis=axis, keepdims=keepdims), (a.shape, axis, keepdims)

    @staticmethod
    def backward(ctx, g):
        shape, axis, keepdims = ctx.saved
        n = np.prod([shape[i] for i in axis]) if axis is not None else np.prod(shape)
        xp = ctx.xp
        g = _expand(xp, g, shape, axis, keepdims) / g.dtype.type(n)
        return (xp.broadcast_to(g, shape),)


class _Extremum(Op):
    """max/min over axis; tied extrema share the gradient equally (as torch.amax/amin)."""
    reads_output, reads_inputs = True, (0,)
    reduce: Callable[..., np.ndarray] | None = None

    @classmethod
    def forward(cls, a, axis=None, keepdims=False):
        return cls.reduce(a, axis=axis, keepdims=keepdims), (a, axis, keepdims)

    @staticmethod
    def backward(ctx, g):
        a, axis, keepdims = ctx.saved
        xp = ctx.xp
        hit = a == _expand(np, xp.constant(ctx._data), a.shape, axis, keepdims)  # a constant mask
        count = hit.sum(axis=axis, keepdims=True)
        return (hit * (_expand(xp, g, a.shape, axis, keepdims) / count).astype(g.dtype),)


@register
class Max(_Extremum):
    """max of a over axis;  ∂a = g/k at each of the k maximal elements, 0 elsewhere"""
    name = "max"
    reduce = staticmethod(np.max)


@register
class Min(_Extremum):
    """min of a over axis;  ∂a = g/k at each of the k minimal elements, 0 elsewhere"""
    name = "min"
    reduce = staticmethod(np.min)


@register
class Softmax(Op):
    """yᵢ = e^(aᵢ − max a)/Σ e^(a − max a);  ∂a = y·(g − Σ g·y)"""
    name = "softmax"
    reads_output, reads_inputs = True, ()

    @staticmethod
    def forward(a, axis=-1):
        e = np.exp(a - a.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True), axis

    @staticmethod
    def backward(ctx, g):
        y = ctx._data
        gy = g * y
        return (gy - y * gy.sum(axis=ctx.saved, keepdims=True),)


@register
class LogSoftmax(Op):
    """yᵢ = aᵢ − max a − ln Σ e^(a − max a), finite for any finite a;  ∂a = g − eʸ·Σ g"""
    name = "log_softmax"
    reads_output, reads_inputs = True, ()

    @staticmethod
    def forward(a, axis=-1):
        shifted = a - a.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True)), axis

    @staticmethod
    def backward(ctx, g):
        return (g - ctx.xp.exp(ctx._data) * g.sum(axis=ctx.saved, keepdims=True),)


@register
class CrossEntropy(Op):
    """ℓᵢ = ln Σ e^zᵢ − zᵢ[tᵢ] per row, reduced;  ∂z = (softmax(z) − onehot(t))·g.

    Fused rather than log_softmax + indexing: backward needs one (N, C) array, not four,
    which is most of the memory of a long sequence's loss.
    """
    name = "cross_entropy"
    reads_output, reads_inputs = False, (0,)

    @staticmethod
    def forward(z, targets, reduction="mean"):
        rows = np.arange(len(targets))
        m = z.max(axis=1, keepdims=True)
        e = z - m
        np.exp(e, out=e)                                            # one (N, C) temporary
        lse = np.log(e.sum(axis=1)) + m[:, 0]                       # log Σ e^z, stably
        losses = lse - z[rows, targets]
        if reduction == "mean":
            out = losses.mean()
        elif reduction == "sum":
            out = losses.sum()
        else:
            out = losses
        return out, (targets, lse, reduction)

    @staticmethod
    def backward(ctx, g):
        targets, lse, reduction = ctx.saved
        xp = ctx.xp
        p = xp.softmax_minus_onehot(ctx.parents[0]._data, lse, targets)     # a new (N, C)
        if reduction == "mean":
            scale = g / p.dtype.type(len(targets))
        elif reduction == "sum":
            scale = g
        else:
            scale = g[:, None]
        return (xp.multiply(p, scale, out=p),)                      # in place on NumPy
