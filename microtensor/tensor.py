"""Tensor: an ndarray that remembers the op that made it, and backward() through that graph."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import numpy as np

from . import ops
from .anomaly import check_forward
from .autograd import OFF, STATE, TensorMeta, current_mode, next_seq, run_backward
from .errors import ArgumentError, DTypeError, GraphError, ShapeError, error_kind
from .ops import (Abs, Add, Div, Exp, Log, MatMul, Mul, Neg, Pow, Relu, Sigmoid, Sqrt, Sub,
                  Tanh)
from .versions import (PRIVATE, GuardedArray, expose, hand_out, lease_leaf, note_replace,
                       note_write, unwrap)

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._types import ArrayLike, Axis, DTypeLike, HookT, Index, Shape, TensorLike

    GradOutputs = TensorLike | Sequence[TensorLike | None] | None    # one per output
    from .autograd import Op
    from .mode import Step

_new = object.__new__
ndarray = np.ndarray
_T = TypeVar("_T", bound="Tensor")     # an in-place op returns the tensor it wrote


def apply(op: type[Op], *parents: Tensor, **attrs: Any) -> Tensor:
    """Run op.forward on the parents' arrays; record the graph if any parent needs a gradient.

    A recorded op locks the memory of the leaves it reads (versions.py: the first reader of
    a leaf holds the lock); in anomaly mode its output is checked (anomaly.py).
    """
    try:
        out, saved = op.forward(*[p._data for p in parents], **attrs)
    except (ValueError, IndexError, TypeError) as e:
        raise _op_error(op, parents, attrs, e) from e
    if type(out) is not ndarray:        # a 0-d result is a NumPy scalar: .data is an array
        out = np.asarray(out)
    t = _new(Tensor)
    t._data = out
    t.grad = t._meta = None
    t.seq = next_seq()
    mode = current_mode()
    if mode is not OFF:
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                t.op = op
                t.parents = parents
                t.saved = saved
                t.scope = mode
                for q in parents:
                    if q.op is None and q.saved is None:    # an unlocked leaf: maybe lock it
                        _lease_leaves(op, parents, t)
                        break
                if STATE.anomaly:
                    check_forward(t, op, parents)
                return t
    t.requires_grad = False
    t.op = t.parents = t.saved = t.scope = None
    if STATE.anomaly:
        check_forward(t, op, parents)
    return t


def _lease_leaves(op, parents, t):
    guards = op.guards
    for i, q in enumerate(parents):
        if q.op is None and q.saved is None and (guards is None or i in guards):
            lease_leaf(q, t)


def _unary_op(op: type[Op]) -> Callable[[Tensor], Tensor]:
    """apply() for one input, unrolled: `h.tanh()` in a time loop is one Python call."""
    forward, ufunc = op.forward, op.ufunc
    guard = op.guards is None or 0 in op.guards

    def method(a: Tensor) -> Tensor:
        try:
            if ufunc is not None:
                out, saved = ufunc(a._data), None
            else:
                out, saved = forward(a._data)
        except (ValueError, IndexError, TypeError) as e:
            raise _op_error(op, (a,), {}, e) from e
        if type(out) is not ndarray:
            out = np.asarray(out)
        t = _new(Tensor)
        t._data = out
        t.grad = t._meta = None
        t.seq = next_seq()
        if a.requires_grad and (mode := current_mode()) is not OFF:
            t.requires_grad = True
            t.op = op
            t.parents = (a,)
            t.saved = saved
            t.scope = mode
            if guard and a.op is None and a.saved is None:
                lease_leaf(a, t)
        else:
            t.requires_grad = False
            t.op = t.parents = t.saved = t.scope = None
        if STATE.anomaly:
            check_forward(t, op, (a,))
        return t

    method.__name__, method.__doc__ = cast(str, op.name), op.__doc__
    return method


def _binary_op(op: type[Op]) -> Callable[[Tensor, TensorLike], Tensor]:
    """apply() for two inputs, unrolled: `h * w` in a time loop is one Python call. A
    non-Tensor b becomes a constant (a Python number takes a's float dtype, as in torch)."""
    forward, ufunc = op.forward, op.ufunc
    guard_a = op.guards is None or 0 in op.guards
    guard_b = op.guards is None or 1 in op.guards

    def method(a: Tensor, b: TensorLike) -> Tensor:
        if not isinstance(b, Tensor):
            b = as_tensor(b, a)
        try:
            if ufunc is not None:
                out, saved = ufunc(a._data, b._data), None
            else:
                out, saved = forward(a._data, b._data)
        except (ValueError, IndexError, TypeError) as e:
            raise _op_error(op, (a, b), {}, e) from e
        if type(out) is not ndarray:
            out = np.asarray(out)
        t = _new(Tensor)
        t._data = out
        t.grad = t._meta = None
        t.seq = next_seq()
        if (a.requires_grad or b.requires_grad) and (mode := current_mode()) is not OFF:
            t.requires_grad = True
            t.op = op
            t.parents = (a, b)
            t.saved = saved
            t.scope = mode
            if guard_a and a.op is None and a.saved is None:
                lease_leaf(a, t)
            if guard_b and b.op is None and b.saved is None:
                lease_leaf(b, t)
        else:
            t.requires_grad = False
            t.op = t.parents = t.saved = t.scope = None
        if STATE.anomaly:
            check_forward(t, op, (a, b))
        return t

    method.__name__, method.__doc__ = cast(str, op.name), op.__doc__
    return method


def _in_place(op: type[Op]) -> Callable[[_T, TensorLike], _T]:
    """`x += y` and its kin: written into x's memory, with torch's rules (inplace.py)."""
    def method(a: _T, b: TensorLike) -> _T:
        return _inplace.binary(a, op, b)
    method.__name__ = f"{op.name}_"
    return method


def _reflected(method: Callable[[Tensor, TensorLike], Tensor]
               ) -> Callable[[Tensor, TensorLike], Tensor]:
    """`2 * t` → t.__rmul__(2): the constant goes first."""
    def reflected(a: Tensor, b: TensorLike) -> Tensor:
        return method(as_tensor(b, a), a)
    return reflected


def _op_error(op, parents, attrs, e):
    shapes = [p._data.shape for p in parents]
    msg = op.shape_error(*shapes, **attrs)
    if msg is None:
        shown = ", ".join(str(s) for s in shapes)
        msg = f"{op.name}: {e} (input shapes {shown}{_attrs_text(attrs)})"
    return error_kind(e)(msg)


def _attrs_text(attrs):
    return "".join(f", {k}={v!r}" for k, v in attrs.items())


def _leaf(data, requires_grad=False):
    """A leaf over data itself (no copy). Its array is a plain ndarray, also for a 0-d
    result (a NumPy scalar) or a GuardedArray (a plain view of the same memory)."""
    if type(data) is not ndarray:
        data = unwrap(data) if isinstance(data, GuardedArray) else np.asarray(data)
    t = _new(Tensor)
    t._data = data
    t.grad = t._meta = None
    t.seq = next_seq()
    t.requires_grad = False
    t.op = t.parents = t.saved = t.scope = None
    if requires_grad:
        t.requires_grad_(True)
    return t


def as_tensor(x: TensorLike, like: Tensor | None = None) -> Tensor:
    """x itself if a Tensor, else a constant Tensor (Python numbers take `like`'s float dtype).

    An ndarray is shared, so a graph that reads it locks it; a number or a list becomes an
    array nobody else holds, which needs no lock (versions.PRIVATE).
    """
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return _leaf(x)
    if like is not None and isinstance(x, (int, float)) and not isinstance(x, bool) \
            and like._data.dtype.kind == "f":
        t = _leaf(np.array(x, dtype=like._data.dtype))
    else:
        t = _leaf(np.asarray(x))
        if not isinstance(x, (int, float, complex, list, tuple)):
            return t
    t.saved = PRIVATE
    return t


class Tensor:
    """An n-dimensional array with reverse-mode autodiff.

    A tensor made by an op records `op` and its `parents`; backward() walks that graph in
    reverse and accumulates gradients into the `.grad` of leaves that require grad.

    Attributes:
        grad: the accumulated gradient, an ndarray of this tensor's shape and dtype (a Tensor
            after backward(create_graph=True)), or None.
        requires_grad: whether ops on this tensor record the graph back to it.
        op: the Op class that made this tensor; None for a leaf.
        parents: the op's input tensors, in argument order; None for a leaf.
        scope: the name scope (a str) or time step (an mt.Step) it was made in, or None.
        saved: what op.forward kept for backward.
        seq: creation order: a tensor's consumers have larger ones.
    """
    __slots__ = ("_data", "grad", "requires_grad", "op", "parents", "saved", "scope", "seq",
                 "_meta", "__weakref__")
    __array_ufunc__ = None     # ndarray (op) Tensor defers to Tensor's reflected operators
    xp = ops.xp                # what an op's backward reads as ctx.xp: NumPy (ops/xp.py)
    _data: ndarray
    grad: ndarray | Tensor | None      # a Tensor only after backward(create_graph=True)
    requires_grad: bool
    op: type[Op] | None                # the op that made this tensor; None for a leaf
    parents: tuple[Tensor, ...] | None
    saved: Any                         # what op.forward saved for backward (op-defined)
    scope: str | Step | None           # the name scope or time step it was made in
    seq: int                           # creation order
    _meta: TensorMeta | None

    def __init__(self, data: TensorLike, requires_grad: bool = False,
                 dtype: DTypeLike | None = None) -> None:
        if isinstance(data, Tensor):
            data = data._data
        self._data = np.array(data, dtype=dtype)
        self.grad = self._meta = None
        self.seq = next_seq()
        self.requires_grad = False
        self.op = self.parents = self.saved = self.scope = None
        if requires_grad:
            self.requires_grad_(True)

    # ---- attributes -------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The tensor's ndarray, shared (not copied). While a graph that reads it is live the
        array is read-only, so a NumPy write into it raises (versions.py): write through the
        in-place ops (x += 1, x.zero_(), under mt.no_grad() for a parameter) instead."""
        return hand_out(self)

    @data.setter
    def data(self, value: ArrayLike) -> None:
        """Replace the array; a graph that read the old one then refuses to backward."""
        if not isinstance(value, ndarray):
            value = np.asarray(value)
        elif type(value) is not ndarray:        # a GuardedArray: .data handed it out while
            value = unwrap(value)               # locked, so nothing wrote through it
            if value is getattr(self, "_data", None):
                return                          # x.data = x.data: nothing changed
        try:
            same = value is self._data
        except AttributeError:              # a tensor being built
            self._data = value
            return
        self._data = value
        if same:
            note_write(self)                # x.data += 1: NumPy wrote the array in place
        else:
            note_replace(self)

    @property
    def shape(self) -> Shape:
        """The shape of the data, as ndarray.shape."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the data (a gradient has the same one)."""
        return self._data.dtype

    @property
    def size(self) -> int:
        """The number of elements."""
        return self._data.size

    @property
    def _version(self) -> int:
        """In-place writes microtensor saw into this tensor's memory (as torch's _version)."""
        return _versions.version(self)

    @property
    def is_leaf(self) -> bool:
        """True for a tensor no recorded op made: backward accumulates into a leaf's .grad."""
        return self.op is None

    @property
    def name(self) -> str | None:
        """A label for errors and drawings (nn.Module names its parameters)."""
        return self._meta.name if self._meta is not None else None

    @name.setter
    def name(self, value: str | None) -> None:
        self._get_meta().name = value

    def _get_meta(self) -> TensorMeta:
        if self._meta is None:
            self._meta = TensorMeta()
        return self._meta

    def requires_grad_(self, flag: bool = True) -> Self:
        """Set requires_grad in place (floating-point tensors only) and return self."""
        if flag and self._data.dtype.kind != "f":
            raise DTypeError(f"only floating-point tensors can require grad; this tensor has "
                             f"dtype {self._data.dtype} (cast it with .astype(mt.float64))")
        self.requires_grad = bool(flag)
        return self

    def numpy(self) -> np.ndarray:
        """The tensor's ndarray, shared as .data is (np.array(x) for a copy)."""
        return hand_out(self)

    def item(self) -> float:
        """The value of a one-element tensor as a Python number (int or bool for those dtypes)."""
        return self._data.item()

    def tolist(self) -> Any:
        """The data as nested Python lists (a Python number for a 0-d tensor)."""
        return self._data.tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory, requires no grad)."""
        if self.op is not None:
            expose(self)                    # the caller holds the memory now: lock it
        return _leaf(self._data)

    def clone(self) -> Tensor:
        """A copy of the data, in the graph: its gradient passes through unchanged (the
        graph draws it as `cast`, to its own dtype)."""
        return apply(ops.Cast, self, dtype=self._data.dtype)

    def __array__(self, dtype: DTypeLike | None = None,
                  copy: bool | None = None) -> np.ndarray:
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        if copy:
            return self._data.copy()
        return expose(self) if self.op is not None else self._data

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extra = f", dtype={self._data.dtype}"
        if self.op is not None:
            extra += f", grad_fn=<{self.op.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        return bool(self._data)

    __hash__ = object.__hash__

    # ---- autodiff ---------------------------------------------------------------------
    def backward(self, grad: TensorLike | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False, keep_grads: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's .grad.

        grad: the upstream gradient, required unless self has one element.
        retain_graph: keep saved arrays so backward can run through this graph again
        (default: create_graph).
        create_graph: record the backward itself, so the gradients can be differentiated
        again. .grad then holds a Tensor whose graph leads back to the inputs (as torch):
        the new gradient, or .grad's old value plus it; `.grad.data` is the array. A
        later backward() without create_graph adds into its values and leaves an ndarray.
        keep_grads: also store the gradient of every intermediate tensor in its .grad
        (what mt.viz.draw_graph(show_grads=True) colours; costs memory on long graphs).
        """
        retain = create_graph if retain_graph is None else retain_graph
        if create_graph:
            from .create_graph import root_grad, run_backward_graph
            run_backward_graph([self], [root_grad(self, grad, _root_grad)], retain,
                               keep_grads=keep_grads)
        else:
            run_backward([self], [_root_grad(self, grad)], retain, keep_grads=keep_grads)

    def retain_grad(self) -> Self:
        """Keep this non-leaf tensor's gradient in .grad after backward."""
        if not self.requires_grad:
            raise GraphError("retain_grad: this tensor does not require grad")
        self._get_meta().retain = True
        return self

    def register_hook(self, fn: HookT) -> HookT:
        """Call fn(grad) when this tensor's gradient is ready; a returned array replaces it.
        Under create_graph=True, grad (and what fn returns) is a Tensor."""
        if not self.requires_grad:
            raise GraphError("register_hook: cannot register a hook on a tensor that does "
                             "not require grad")
        self._get_meta().hooks.append(fn)
        return fn

    # ---- operators (ops live in microtensor/ops) ---------------------------------------
    __add__ = _binary_op(Add)
    __radd__ = _reflected(__add__)
    __sub__ = _binary_op(Sub)
    __rsub__ = _reflected(__sub__)
    __mul__ = _binary_op(Mul)
    __rmul__ = _reflected(__mul__)
    __truediv__ = _binary_op(Div)
    __rtruediv__ = _reflected(__truediv__)
    __pow__ = _binary_op(Pow)
    __rpow__ = _reflected(__pow__)
    __matmul__ = _binary_op(MatMul)
    __rmatmul__ = _reflected(__matmul__)

    __neg__ = _unary_op(Neg)

    def __pos__(self) -> Self:
        return self

    # ---- in place: torch's rules (inplace.py; README "In-place operations") -------------
    __iadd__ = _in_place(Add)
    __isub__ = _in_place(Sub)
    __imul__ = _in_place(Mul)
    __itruediv__ = _in_place(Div)
    __ipow__ = _in_place(Pow)

    def add_(self, other: TensorLike, alpha: float = 1) -> Self:
        """self += alpha · other, in place."""
        return _inplace.binary(self, Add, other, alpha)

    def sub_(self, other: TensorLike, alpha: float = 1) -> Self:
        """self −= alpha · other, in place."""
        return _inplace.binary(self, Sub, other, alpha)

    def mul_(self, other: TensorLike) -> Self:
        """self *= other, in place."""
        return _inplace.binary(self, Mul, other)

    def div_(self, other: TensorLike) -> Self:
        """self /= other, in place."""
        return _inplace.binary(self, Div, other)

    def clamp_(self, min: float | None = None,  # noqa: A002  (torch's names)
               max: float | None = None) -> Self:  # noqa: A002
        """Clip into [min, max], in place."""
        return _inplace.clamp(self, min, max)

    def fill_(self, value: TensorLike) -> Self:
        """Set every element to value (a number or a one-element tensor), in place."""
        return _inplace.fill(self, value)

    def zero_(self) -> Self:
        """Set every element to 0, in place (a parameter's, under mt.no_grad())."""
        return _inplace.fill(self, 0)

    def copy_(self, src: TensorLike) -> Self:
        """Write src (broadcast, cast to this dtype) into this tensor."""
        return _inplace.copy(self, src)

    def detach_(self) -> Self:
        """Cut this tensor from the graph, in place: it becomes a leaf needing no grad."""
        return _inplace.detach(self)

    def __getitem__(self, index: Index) -> Tensor:
        if type(index) is not int:                   # xs[t] in a time loop skips this
            index = ops.normalize_index(index)
            t = apply(ops.GetItem, self, index=index)
            if t.op is not None:                     # backward scatters by the index
                _versions.lease_arrays(t, index if isinstance(index, tuple) else (index,))
            return t
        return apply(ops.GetItem, self, index=index)

    # comparisons give bool tensors and are not differentiable
    def __lt__(self, other: TensorLike) -> Tensor:
        return _leaf(self._data < _raw(other))

    def __le__(self, other: TensorLike) -> Tensor:
        return _leaf(self._data <= _raw(other))

    def __gt__(self, other: TensorLike) -> Tensor:
        return _leaf(self._data > _raw(other))

    def __ge__(self, other: TensorLike) -> Tensor:
        return _leaf(self._data >= _raw(other))

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]  # elementwise, as ndarray
        return _leaf(self._data == _raw(other))

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]  # elementwise, as ndarray
        return _leaf(self._data != _raw(other))

    # ---- elementwise ------------------------------------------------------------------
    exp = _unary_op(Exp)
    log = _unary_op(Log)
    tanh = _unary_op(Tanh)
    sigmoid = _unary_op(Sigmoid)
    relu = _unary_op(Relu)
    sqrt = _unary_op(Sqrt)
    abs = _unary_op(Abs)

    def clip(self, lo: float | None = None, hi: float | None = None) -> Tensor:
        """Values limited to [lo, hi] (either may be None); no gradient where clipped."""
        return apply(ops.Clip, self, lo=lo, hi=hi)

    def astype(self, dtype: DTypeLike) -> Tensor:
        """A differentiable cast (float32 <-> float64); the gradient is cast back."""
        dtype = np.dtype(dtype)
        if dtype == self._data.dtype:
            return self
        if dtype.kind != "f":               # integers and bools carry no gradient
            return _leaf(self._data.astype(dtype))
        return apply(ops.Cast, self, dtype=dtype)

    # ---- reductions -------------------------------------------------------------------
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Sum over axis (every axis by default)."""
        return apply(ops.Sum, self, axis=ops.normalize_axis(axis, self._data.ndim, "sum"),
                     keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Mean over axis (every axis by default)."""
        return apply(ops.Mean, self, axis=ops.normalize_axis(axis, self._data.ndim, "mean"),
                     keepdims=keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Maximum over axis; tied maxima share the gradient equally (as torch.amax)."""
        return apply(ops.Max, self, axis=ops.normalize_axis(axis, self._data.ndim, "max"),
                     keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Minimum over axis; tied minima share the gradient equally (as torch.amin)."""
        return apply(ops.Min, self, axis=ops.normalize_axis(axis, self._data.ndim, "min"),
                     keepdims=keepdims)

    # ---- shape ------------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """The same values in a new shape: reshape(2, 3) or reshape((2, 3)); -1 infers one."""
        dims = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return apply(ops.Reshape, self, shape=tuple(dims))

    def flatten(self) -> Tensor:
        """The values as one axis, shape (size,)."""
        return apply(ops.Reshape, self, shape=(-1,))

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Axes permuted as given (reversed when none are): transpose(1, 0, 2)."""
        order = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return apply(ops.Transpose, self, axes=tuple(order) if order else None)

    @property
    def T(self) -> Tensor:
        """The axes reversed, as ndarray.T."""
        return apply(ops.Transpose, self, axes=None)

    def squeeze(self, axis: Axis = None) -> Tensor:
        """Size-1 axes removed (only those in axis, if given)."""
        return apply(ops.Squeeze, self, axis=axis)

    def expand_dims(self, axis: int | tuple[int, ...]) -> Tensor:
        """A size-1 axis inserted at axis, as numpy.expand_dims."""
        return apply(ops.ExpandDims, self, axis=axis)

    def broadcast_to(self, *shape: int | Sequence[int]) -> Tensor:
        """The values broadcast to shape; the gradient is summed back to this shape."""
        dims = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return apply(ops.BroadcastTo, self, shape=tuple(dims))


def _raw(x):
    return x._data if isinstance(x, Tensor) else x


def _root_grad(t, grad):
    if not isinstance(t, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(t).__name__}")
    if not t.requires_grad:
        raise GraphError("backward: this tensor does not require grad and has no graph; "
                         "did you forget requires_grad=True on an input, or build it "
                         "under mt.no_grad()?")
    if grad is None:
        if t._data.size != 1:
            raise GraphError(f"backward: grad can be implicitly created only for a tensor "
                             f"with one element; this one has shape {t._data.shape}, so "
                             f"pass grad= of that shape")
        return np.ones_like(t._data)
    g = np.asarray(grad._data if isinstance(grad, Tensor) else grad)
    if g.shape != t._data.shape:
        raise ShapeError(f"backward: grad has shape {g.shape} but the tensor has shape "
                         f"{t._data.shape}; they must match")
    return g.astype(t._data.dtype, copy=False)



@overload
def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: GradOutputs = None, retain_graph: bool | None = None,
         create_graph: Literal[False] = False) -> tuple[ndarray, ...]: ...
@overload
def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: GradOutputs = None, retain_graph: bool | None = None, *,
         create_graph: Literal[True]) -> tuple[Tensor, ...]: ...
@overload
def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: GradOutputs = None, retain_graph: bool | None = None,
         create_graph: bool = False) -> tuple[ndarray | Tensor, ...]: ...
def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: GradOutputs = None, retain_graph: bool | None = None,
         create_graph: bool = False) -> tuple[ndarray | Tensor, ...]:
    """d(outputs)/d(inputs) as a tuple of ndarrays, leaving every .grad untouched.

    outputs and inputs are a tensor or a sequence of them; grad_outputs gives the upstream
    gradient of each output (one per output, as torch; required for outputs with more than
    one element; a number stands for an array of that value). An input that the outputs
    do not depend on gets a zero array. Results have each input's dtype.
    create_graph=True returns Tensors instead, whose graph can be differentiated again
    (grad_outputs may then be Tensors that require grad; an input not reached gets a
    constant zero Tensor); retain_graph defaults to it.
    """
    found = _grads(outputs, inputs, grad_outputs, retain_graph, create_graph)
    zero = (lambda t: _leaf(np.zeros_like(t._data))) if create_graph else \
        (lambda t: np.zeros_like(t._data))
    return tuple(zero(t) if g is None else g for t, g in found)


def _grads(outputs, inputs, grad_outputs, retain_graph, create_graph):
    """mt.grad's work: [(input, its gradient or None where the outputs do not reach it)]."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray, int, float, np.generic)):
        grad_outputs = [grad_outputs]
    else:
        grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ArgumentError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} "
                            f"outputs; give one per output (None for a one-element output)")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise GraphError(f"grad: input {i} is not a tensor that requires grad")
        if t._data.dtype.kind != "f":
            raise DTypeError(f"grad: input {i} has dtype {t._data.dtype}; only floating-point "
                             f"tensors have gradients")
    grad_outputs = [np.full(o.shape, g, dtype=o.dtype) if isinstance(g, (int, float)) else g
                    for o, g in zip(outputs, grad_outputs)]
    retain = create_graph if retain_graph is None else retain_graph
    capture = {id(t) for t in inputs}
    if create_graph:
        from .create_graph import root_grad, run_backward_graph
        roots = [root_grad(o, g, _root_grad) for o, g in zip(outputs, grad_outputs)]
        captured = run_backward_graph(outputs, roots, retain, capture=capture)
    else:
        roots = [_root_grad(o, g) for o, g in zip(outputs, grad_outputs)]
        captured = run_backward(outputs, roots, retain, capture=capture)
    return [(t, captured.get(id(t))) for t in inputs]


from . import inplace as _inplace, versions as _versions  # noqa: E402  (they import this module)
