"""In-place Tensor operators, with torch's rules: x += y, x.add_(y), x.zero_(), x.copy_(y), ….

- No graph to record (under mt.no_grad(), or nothing involved requires grad): the op writes
  into the tensor's memory, so views of it see the change, and the write is stamped
  (versions.py): a graph that saved the old values refuses to backward instead of reading
  the new ones. `with mt.no_grad(): p -= lr * p.grad` is an SGD step.
- In grad mode, on a leaf that requires grad: torch's error (a parameter's update belongs
  under no_grad, where optimizers make it).
- In grad mode otherwise (a non-leaf, or a constant updated with something that requires
  grad): recorded, as torch records it. The new value is computed out of place by the
  ordinary op on a snapshot of the tensor as it was (which keeps its node, and is kept in
  meta.before), written into the tensor's memory, and the tensor takes the new node. Its
  consumers so far keep their gradient path through the snapshot (versions.check resolves
  them); an op that saved the overwritten array refuses to backward, as in torch. Where the
  new op's backward reads the old values (mul_, pow_, clamp_), it reads a copy (torch's
  "original self").
"""
from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

from . import ops, versions
from .autograd import OFF, TensorMeta, current_mode, next_seq
from .errors import DTypeError, GraphError, ShapeError
from .tensor import Tensor, _new, apply, as_tensor

if TYPE_CHECKING:
    from ._types import TensorLike
    from .autograd import Op

_T = TypeVar("_T", bound=Tensor)      # returns the tensor it wrote (a Parameter stays one)


def binary(t: _T, op: type[Op], other: TensorLike, alpha: float = 1) -> _T:
    """t ← t (op) alpha·other: +=, -=, *=, /=, **=, add_, sub_, mul_, div_."""
    if not isinstance(other, Tensor):
        other = as_tensor(other, t)
    if alpha != 1:
        other = other * alpha
    name, ufunc = f"{op.name}_", op.ufunc
    assert ufunc is not None            # every op written in place here is one ufunc
    if _recording(t, other):
        _check_shape(name, t, other.shape)
        return _record(name, t, op, (other,), {})
    arr, o = t._data, other._data
    _check_shape(name, t, o.shape)
    result = ufunc.resolve_dtypes((arr.dtype, o.dtype, None))[-1]
    if not np.can_cast(result, arr.dtype, "same_kind"):
        raise DTypeError(f"{name}: the result has dtype {result}, which cannot be written "
                         f"into a tensor of dtype {arr.dtype} in place; cast the tensor first "
                         f"(as torch requires)")
    with versions.writing(t) as arr:
        ufunc(arr, o, out=arr)
    return t


def clamp(t: _T, lo: float | None, hi: float | None) -> _T:
    """t ← clip(t, lo, hi)."""
    if _recording(t):
        return _record("clamp_", t, ops.Clip, (), {"lo": lo, "hi": hi})
    with versions.writing(t) as arr:
        np.clip(arr, lo, hi, out=arr)
    return t


def fill(t: _T, value: TensorLike) -> _T:
    """t ← value everywhere (a number or a one-element tensor): fill_, zero_."""
    v = value if isinstance(value, Tensor) else as_tensor(value, t)
    if v.size != 1:
        raise ShapeError(f"fill_: expects a number or a tensor with one element; got shape "
                         f"{v.shape} (copy_ writes a tensor)")
    v = v.reshape(())
    if _recording(t, v):
        return _record("fill_", t, ops.Where, (v,), {"cond": np.zeros(t.shape, dtype=bool)})
    with versions.writing(t) as arr:
        arr[...] = v._data
    return t


def copy(t: _T, src: TensorLike) -> _T:
    """t ← src, broadcast to t's shape and cast to its dtype: copy_."""
    src = src if isinstance(src, Tensor) else as_tensor(src)
    _check_shape("copy_", t, src.shape)
    if _recording(t, src):
        if src.dtype != t.dtype:
            src = src.astype(t.dtype)
        return _record("copy_", t, ops.Where, (src,), {"cond": np.zeros(t.shape, dtype=bool)})
    with versions.writing(t) as arr:
        np.copyto(arr, src._data, casting="unsafe")
    return t


def detach(t: _T) -> _T:
    """t becomes a leaf that requires no grad; its consumers so far keep their gradient path
    (through the snapshot), as with torch's detach_."""
    if t.op is not None:
        old = _snapshot(t)
        t.op = t.parents = t.saved = t.scope = None
        t.seq = next_seq()
        t._get_meta().before = old
        versions.note_rebase()
    t.requires_grad = False
    return t


def _recording(t, *others):
    if current_mode() is OFF or not (t.requires_grad or any(o.requires_grad for o in others)):
        return False
    if t.op is None and t.requires_grad:
        label = f" ('{t.name}')" if t.name else ""
        raise GraphError(f"a leaf Variable that requires grad is being used in an in-place "
                         f"operation{label}. Update a parameter under `with mt.no_grad():`, "
                         f"as an optimizer step does, or write it out of place (w = w - lr * "
                         f"g) if the update itself should be differentiated")
    return True


def _check_shape(name, t, shape):
    try:
        out = np.broadcast_shapes(t.shape, shape)
    except ValueError:
        raise ShapeError(f"{name}: cannot broadcast shape {shape} to the tensor's shape "
                         f"{t.shape}") from None
    if out != t.shape:
        raise ShapeError(f"{name}: the result would have shape {out}, but the tensor written "
                         f"in place has shape {t.shape}: an in-place op keeps the shape")


def _record(name, t, op, others, attrs):
    old = _snapshot(t)
    reads = op.reads_inputs
    src = old.clone() if reads is None or 0 in reads else old
    res = apply(op, src, *others, **attrs)
    if res.dtype != t.dtype:
        res = res.astype(t.dtype)
    with versions.writing(t) as arr:
        np.copyto(arr, res._data)
    t.op, t.parents, t.saved, t.scope = res.op, res.parents, res.saved, res.scope
    t.requires_grad = True
    t.seq = next_seq()                  # newer than the write writing() stamped
    m = t._get_meta()
    m.before = old
    if res._meta is not None:
        m.trace = res._meta.trace
    versions.move_locks(res, t)         # the locks res's node took are t's now
    return t


def _snapshot(t):
    """A new Tensor standing for t as it is now (its node and its memory), for t's
    consumers so far (the locks its node holds stay with t, released with it)."""
    old = _new(Tensor)
    old._data, old.grad = t._data, None
    old.requires_grad, old.op, old.parents = t.requires_grad, t.op, t.parents
    old.saved, old.scope, old.seq = t.saved, t.scope, t.seq
    om = old._meta = TensorMeta()
    m = t._meta
    if m is not None:
        om.name, om.before, om.replaced, om.trace = m.name, m.before, m.replaced, m.trace
    return old
