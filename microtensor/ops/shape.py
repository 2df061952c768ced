"""Ops that move elements without changing them: reshape, transpose, indexing, stack, concat."""
import numpy as np

from ..autograd import Op, Scatter, register


@register
class Reshape(Op):
    """a viewed with another shape;  ∂a = g reshaped back"""
    name = "reshape"

    @staticmethod
    def forward(a, shape):
        return a.reshape(shape), a.shape

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.saved),)


@register
class Transpose(Op):
    """a with axes permuted (reversed when axes is None);  ∂a = g with the inverse permutation"""
    name = "transpose"

    @staticmethod
    def forward(a, axes=None):
        y = np.transpose(a, axes)    # validates axes before we invert them (negatives allowed)
        return y, None if axes is None else tuple(np.argsort([ax % a.ndim for ax in axes]))

    @staticmethod
    def backward(ctx, g):
        return (np.transpose(g, ctx.saved),)


@register
class Squeeze(Op):
    """a without size-1 axes;  ∂a = g reshaped back"""
    name = "squeeze"

    @staticmethod
    def forward(a, axis=None):
        return np.squeeze(a, axis), a.shape

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.saved),)


@register
class ExpandDims(Op):
    """a with a new size-1 axis;  ∂a = g reshaped back"""
    name = "expand_dims"

    @staticmethod
    def forward(a, axis):
        return np.expand_dims(a, axis), a.shape

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.saved),)


@register
class BroadcastTo(Op):
    """a broadcast to shape;  ∂a = g, which the engine sums back to a's shape"""
    name = "broadcast_to"
    broadcasts = True

    @staticmethod
    def forward(a, shape):
        return np.broadcast_to(a, shape), None

    @staticmethod
    def backward(ctx, g):
        return (g,)


def normalize_index(index):
    """An index NumPy understands: tensors become arrays, lists become integer/bool arrays."""
    if type(index) is int or type(index) is slice:
        return index
    if isinstance(index, tuple):
        return tuple(normalize_index(i) for i in index)
    if hasattr(index, "op") and hasattr(index, "data"):      # a Tensor
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _has_int_array(index):
    if isinstance(index, tuple):
        return any(_has_int_array(i) for i in index)
    return isinstance(index, np.ndarray) and index.dtype.kind in "iu"


@register
class GetItem(Op):
    """a[index];  ∂a = g scattered into zeros at index (repeated integer indices add up)"""
    name = "getitem"
    broadcasts = True

    @staticmethod
    def forward(a, index):
        return a[index], (index, type(index) is not int and _has_int_array(index))

    @staticmethod
    def backward(ctx, g):
        index, repeats = ctx.saved
        return (Scatter(index, g, repeats),)


@register
class Stack(Op):
    """stack(a₁ … aₙ) along a new axis;  ∂aᵢ = the i-th slice of g (views, linear in n)"""
    name = "stack"

    @staticmethod
    def forward(*arrays, axis=0):
        return np.stack(arrays, axis=axis), axis

    @staticmethod
    def backward(ctx, g):
        axis = ctx.saved
        return tuple(g if axis == 0 else np.moveaxis(g, axis, 0))

    @staticmethod
    def shape_error(*shapes, axis=0):
        if len(set(shapes)) > 1:
            return f"stack: all tensors need the same shape; got {', '.join(map(str, shapes))}"
        return None


@register
class Concat(Op):
    """concat(a₁ … aₙ) along an existing axis;  ∂aᵢ = g split at the same offsets"""
    name = "concat"

    @staticmethod
    def forward(*arrays, axis=0):
        return np.concatenate(arrays, axis=axis), (axis, np.cumsum([a.shape[axis] for a in arrays])[:-1])

    @staticmethod
    def backward(ctx, g):
        axis, offsets = ctx.saved
        return tuple(np.split(g, offsets, axis=axis))
