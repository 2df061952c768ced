"""Ops that move elements without changing them: reshape, transpose, indexing, stack, concat."""
import numpy as np

from ..autograd import Gradient, Op, register

ndarray = np.ndarray


@register
class Reshape(Op):
    """a viewed with another shape;  ∂a = g reshaped back"""
    name = "reshape"
    reads_output, reads_inputs = False, ()
    view = True

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
    reads_output, reads_inputs = False, ()
    view = True

    @staticmethod
    def forward(a, axes=None):
        y = np.transpose(a, axes)    # validates axes before we invert them (negatives allowed)
        return y, None if axes is None else tuple(np.argsort([ax % a.ndim for ax in axes]))

    @staticmethod
    def backward(ctx, g):
        return (ctx.xp.transpose(g, ctx.saved),)


@register
class Squeeze(Op):
    """a without size-1 axes;  ∂a = g reshaped back"""
    name = "squeeze"
    reads_output, reads_inputs = False, ()
    view = True

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
    reads_output, reads_inputs = False, ()
    view = True

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
    reads_output, reads_inputs = False, ()
    view = True

    @staticmethod
    def forward(a, shape):
        return np.broadcast_to(a, shape), None

    @staticmethod
    def backward(ctx, g):
        return (g,)


def normalize_index(index):
    """An index NumPy understands, with every integer sequence as an array.

    Tensors become their arrays; a list or tuple *inside* an index tuple (x[(3, 0, 3), 1:],
    x[((1, 1),)]) becomes an integer (or bool) array, as NumPy reads it, so that getitem's
    backward knows to sum repeated entries.
    """
    if type(index) is int or type(index) is slice:
        return index
    if isinstance(index, tuple):
        return tuple(_component(i) for i in index)
    return _component(index)


def _component(i):
    if hasattr(i, "op") and hasattr(i, "_data"):         # a Tensor
        return i._data
    if isinstance(i, (list, tuple)):
        return np.asarray(i)
    return i


def _has_int_array(index):
    if isinstance(index, tuple):
        return any(_has_int_array(i) for i in index)
    return isinstance(index, np.ndarray) and index.dtype.kind in "iu"


class Scatter(Gradient):
    """getitem's gradient: `values` at `index` of an otherwise-zero array of `shape`.

    x[t] taken at every step of a T-step loop then costs O(T) in backward, not O(T²): the
    engine adds every step's Scatter into one buffer. repeats: the index holds integer
    arrays, which may name an element twice (np.add.at sums those; += would not).
    """
    __slots__ = ("index", "values", "shape", "dtype", "repeats")

    def __init__(self, index, values, shape, repeats):
        self.index, self.values, self.shape, self.repeats = index, values, shape, repeats
        self.dtype = values.dtype

    def dense(self):
        return self.add_into(np.zeros(self.shape, dtype=self.dtype))

    def add_into(self, buf):
        if self.repeats:
            np.add.at(buf, self.index, self.values)
        else:
            buf[self.index] += self.values
        return buf


@register
class GetItem(Op):
    """a[index];  ∂a = g scattered into zeros at index (repeated integer indices add up)"""
    name = "getitem"
    reads_output, reads_inputs = False, ()
    view = True

    @staticmethod
    def forward(a, index):
        return a[index], (index, a.shape, type(index) is not int and _has_int_array(index))

    @staticmethod
    def backward(ctx, g):
        index, shape, repeats = ctx.saved
        return (ctx.xp.scatter(index, g, shape, repeats),)


@register
class ScatterAdd(Op):
    """zeros(shape) with v added at index (repeated integer indices add up): getitem's
    gradient as an op, so that create_graph can differentiate it;  ∂v = g[index]"""
    name = "scatter_add"

    @staticmethod
    def forward(v, index, shape, repeats):
        return Scatter(index, v, shape, repeats).dense(), index

    @staticmethod
    def backward(ctx, g):
        return (g[ctx.saved],)


@register
class Stack(Op):
    """stack(a₁ … aₙ) along a new axis;  ∂aᵢ = the i-th slice of g (views, linear in n)"""
    name = "stack"
    reads_output, reads_inputs = False, ()

    @staticmethod
    def one_copy(arrays, axis):
        """FAST PATH test. Invariant: axis 0, and every array has the first's shape and dtype
        and at least one axis; then one concatenate along axis 0 lays out the same elements in
        the same C order as np.stack (a copy), at a third of the cost of np.stack's own Python
        per array. (compile's stack emitter asks the same question.)"""
        first = arrays[0]
        return axis == 0 and first.ndim > 0 and all(
            type(a) is ndarray and a.shape == first.shape and a.dtype == first.dtype
            for a in arrays)

    @staticmethod
    def forward(*arrays, axis=0):
        if Stack.one_copy(arrays, axis):
            return np.concatenate(arrays).reshape((len(arrays),) + arrays[0].shape), axis
        return np.stack(arrays, axis=axis), axis

    @staticmethod
    def backward(ctx, g):
        axis = ctx.saved
        return tuple(g if axis == 0 else ctx.xp.moveaxis(g, axis, 0))

    @staticmethod
    def shape_error(*shapes, axis=0):
        if len(set(shapes)) > 1:
            return f"stack: all tensors need the same shape; got {', '.join(map(str, shapes))}"
        return None


@register
class Concat(Op):
    """concat(a₁ … aₙ) along an existing axis;  ∂aᵢ = g split at the same offsets"""
    name = "concat"
    reads_output, reads_inputs = False, ()

    @staticmethod
    def forward(*arrays, axis=0):
        return np.concatenate(arrays, axis=axis), (axis, np.cumsum([a.shape[axis] for a in arrays])[:-1])

    @staticmethod
    def backward(ctx, g):
        axis, offsets = ctx.saved
        return tuple(ctx.xp.split(g, offsets, axis=axis))
