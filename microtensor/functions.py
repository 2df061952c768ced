"""The ops as functions (mt.exp(t), mt.stack(ts), …), for tensors, arrays and numbers alike."""
import numpy as np

from . import ops
from .errors import ArgumentError, ShapeError
from .tensor import Tensor, apply, as_tensor


def _t(x):
    return as_tensor(x)


def exp(x):
    return _t(x).exp()


def log(x):
    return _t(x).log()


def tanh(x):
    return _t(x).tanh()


def sigmoid(x):
    return _t(x).sigmoid()


def relu(x):
    return _t(x).relu()


def sqrt(x):
    return _t(x).sqrt()


def abs(x):  # noqa: A001  (mirrors numpy.abs)
    return _t(x).abs()


def clip(x, lo=None, hi=None):
    return _t(x).clip(lo, hi)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _t(x).sum(axis, keepdims)


def mean(x, axis=None, keepdims=False):
    return _t(x).mean(axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _t(x).max(axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return _t(x).min(axis, keepdims)


def reshape(x, *shape):
    return _t(x).reshape(*shape)


def transpose(x, *axes):
    return _t(x).transpose(*axes)


def squeeze(x, axis=None):
    return _t(x).squeeze(axis)


def expand_dims(x, axis):
    return _t(x).expand_dims(axis)


def broadcast_to(x, *shape):
    return _t(x).broadcast_to(*shape)


def flatten(x):
    return _t(x).flatten()


def _pair(a, b):
    """a and b as tensors; a Python number takes the other operand's float dtype, on either
    side (mt.maximum(0.5, x) stays float32 for a float32 x, as torch)."""
    if isinstance(a, Tensor):
        return a, as_tensor(b, a)
    if isinstance(b, Tensor):
        return as_tensor(a, b), b
    a = _t(a)
    return a, as_tensor(b, a)


def matmul(a, b):
    return apply(ops.MatMul, *_pair(a, b))


def maximum(a, b):
    return apply(ops.Maximum, *_pair(a, b))


def minimum(a, b):
    return apply(ops.Minimum, *_pair(a, b))


def where(cond, a, b):
    """a where cond is true, else b; differentiable in a and b."""
    cond = np.array(cond.data if isinstance(cond, Tensor) else cond, dtype=bool)  # a copy
    return apply(ops.Where, *_pair(a, b), cond=cond)


def _tensor_list(op_name, tensors):
    if isinstance(tensors, Tensor) or not len(tensors):
        raise ArgumentError(f"{op_name}: expected a non-empty sequence of tensors")
    return tuple(_t(t) for t in tensors)


def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis."""
    tensors = _tensor_list("stack", tensors)
    return apply(ops.Stack, *tensors, axis=axis)


def concat(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = _tensor_list("concat", tensors)
    return apply(ops.Concat, *tensors, axis=axis)


def split(x, indices_or_sections, axis=0):
    """Split x along axis as numpy.split does: into n equal parts, or at the given indices."""
    x = _t(x)
    n = x.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ShapeError(f"split: an axis of size {n} cannot be split into {k} equal parts")
        bounds = list(range(0, n + 1, n // k))
    else:
        bounds = [0, *indices_or_sections, n]
    head = (slice(None),) * (axis % x.ndim)
    return [x[head + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:])]
