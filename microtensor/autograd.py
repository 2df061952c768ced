"""The Op base class, the op registry, the gradient contract and the iterative backward engine."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .broadcast import unbroadcast, where
from .errors import DTypeError, GraphError, MicrotensorError, ShapeError, error_kind
from .mode import (OFF, current_mode, current_scope, enable_grad, is_grad_enabled,  # noqa: F401
                   name_scope, no_grad, set_mode)

if TYPE_CHECKING:
    from . import autograd_functional as functional  # noqa: F401  (loaded lazily by __getattr__)
    from ._types import Frame
    from .tensor import Tensor

ndarray = np.ndarray
_OpT = TypeVar("_OpT", bound="type[Op]")


class Op:
    """One differentiable operation: `forward` and `backward` side by side, on plain ndarrays.

    forward(*arrays, **attrs) -> (out, saved): `saved` is what backward needs besides the
    inputs and the output, which it reads from ctx.
    backward(ctx, g) -> one gradient per input, in argument order. `ctx` is the output
    tensor: ctx._data (the result), ctx.parents (the input tensors: ._data, .requires_grad),
    ctx.saved and ctx.xp, the array namespace (ops/xp.py). (`_data` is the array itself; the
    public `.data` is a property that guards what it hands out, and a backward reads
    hundreds of arrays per step.) g is the gradient of the output;
    backward must not write into g or into any array it did not allocate (g may also reach
    other inputs). A backward is written once, for both paths: it reads the output and the
    inputs only through ctx._data and ctx.parents[i]._data, and calls ctx.xp (never `np`) on
    anything derived from them or from g. On the first-order path those are ndarrays and
    ctx.xp is NumPy; with create_graph=True they are Tensors and ctx.xp spells the same
    names with microtensor's ops (create_graph.py), so the formula builds a graph that can
    be differentiated again. ctx.saved holds constants (shapes, indices, masks). Each
    gradient is
      - None, where the input needs none (ctx.parents[i].requires_grad is False);
      - an array of the input's shape, or of any shape that broadcasting stretched it to:
        the engine sums it down (broadcast.unbroadcast) and rejects an incompatible one
        with a ShapeError naming the op and the input; or
      - a `Gradient`: a structured gradient (ops.shape.Scatter, ops.linalg.Outer), made
        by ctx.xp.scatter / ctx.xp.outer, which with create_graph=True make ops instead.
    With create_graph=True each gradient is a Tensor or None; an op whose backward returns
    anything else, or calls NumPy on a Tensor, raises a GraphError that names it.
    An op whose forward is one NumPy ufunc and saves nothing declares `ufunc` instead of
    forward; Tensor's methods then call the ufunc without a Python frame in between.

    What backward reads besides g, so that a write into it between forward and backward is
    caught (versions.py): `reads_output` — ctx._data; `reads_inputs` — the positions of the
    inputs whose arrays it reads, through ctx.parents or ctx.saved (None: all of them). An
    op whose output can be a view of its input's memory declares `view = True`. The
    defaults are the safe ones; tests/test_versions.py checks every op's declaration.
    """
    name: str | None = None
    ufunc: np.ufunc | None = None
    reads_output: bool = True
    reads_inputs: tuple[int, ...] | None = None
    view: bool = False
    guards: frozenset[int] | None = None      # set by __init_subclass__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.ufunc is not None and "forward" not in cls.__dict__:
            ufunc = cls.ufunc
            cls.forward = staticmethod(  # type: ignore[method-assign, assignment]  # generated
                lambda *arrays: (ufunc(*arrays), None))
        # the inputs whose leaves a recorded op locks (None: all): those it reads or views
        cls.guards = None if cls.view or cls.reads_inputs is None else frozenset(cls.reads_inputs)

    @staticmethod
    def forward(*arrays: ndarray, **attrs: Any) -> tuple[ndarray, Any]:
        """(out, saved) for the input arrays and the op's attributes (see the class docstring)."""
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Tensor, g: Any) -> Sequence[Any]:
        """One gradient per input (None, an array or a Gradient) for g, the output's gradient."""
        raise NotImplementedError

    @staticmethod
    def shape_error(*shapes: tuple[int, ...], **attrs: Any) -> str | None:
        """A message for inputs whose shapes don't fit, or None for the generic one."""
        return None


REGISTRY: dict[str, type[Op]] = {}


def register(op: _OpT) -> _OpT:
    """Add a differentiable op to the registry the gradient tests iterate over."""
    if not op.name or op.name in REGISTRY:
        raise ValueError(f"register: {op.__name__} needs a name of its own, got {op.name!r}")
    REGISTRY[op.name] = op
    return op


class Gradient:
    """A structured gradient: an input's gradient in a form cheaper than its dense array.

    The one protocol every non-array gradient follows (the engine consumes it only in
    `_sum` and `_conform`):
      shape, dtype   the dense array it stands for (checked against the input's shape);
      dense()        that array, newly allocated (the engine may then add into it);
      add_into(buf)  add itself into buf, a dense array of `shape` the engine owns;
      merge(other)   self combined with another gradient for the same input, or None
                     when they don't combine (the engine then densifies and adds).
    A Gradient is made by one backward and consumed by one walk; merge may extend self.
    """
    __slots__ = ()

    def dense(self) -> ndarray:
        """The dense array this gradient stands for, newly allocated."""
        raise NotImplementedError

    def add_into(self, buf: ndarray) -> None:
        """Add this gradient into buf, a dense array of its shape that the engine owns."""
        raise NotImplementedError

    def merge(self, other: Gradient) -> Gradient | None:
        """self combined with other (a gradient for the same input), or None if they don't."""
        return None


RELEASED = object()    # stands in for an op's saved arrays once backward has freed them
next_seq = itertools.count().__next__    # creation order: a consumer always outranks its inputs


class _State:
    """What the ops and the engine consult for issue 13's checks (versions.py, anomaly.py):
    last_write, the seq of the latest in-place write or rebase microtensor saw (a node made
    after it cannot have been affected); walking, the backward walks running; anomaly."""
    __slots__ = ("last_write", "walking", "anomaly")
    last_write: int
    walking: int
    anomaly: bool


STATE = _State()
STATE.last_write, STATE.walking, STATE.anomaly = -1, 0, False


def _released_error(node, root_released):
    where = f"'{node.op.name}'" + (f" (made in {node.scope})" if node.scope else "")
    if root_released:
        hint = ("Call backward(retain_graph=True) the first time if you need to backward "
                "through the same graph twice.")
    else:
        hint = ("This part of the graph was built in an earlier step and freed by that step's "
                "backward. If you carry a state across steps (an RNN's hidden state), "
                "detach() it between steps; otherwise use backward(retain_graph=True).")
    return GraphError(f"backward: the graph through op {where} has already been freed by "
                      f"a previous backward() call. {hint}")


def run_backward(roots: Sequence[Tensor], root_grads: Sequence[ndarray],
                 retain_graph: bool = False, capture: set[int] | None = None,
                 keep_grads: bool = False) -> dict[int, Any]:
    """_walk, counted in STATE.walking: ops' backward reads .data of live tensors, and a
    read during a walk is not the user's (versions.expose)."""
    STATE.walking += 1
    try:
        return _walk(roots, root_grads, retain_graph, capture, keep_grads)
    finally:
        STATE.walking -= 1


def _walk(roots, root_grads, retain_graph, capture, keep_grads):
    """Propagate root_grads from roots to every tensor that needs a gradient.

    Tensors are taken in decreasing creation order (a max-heap on `seq`): every consumer of
    a tensor was made after it, so when a tensor comes off the heap its gradient is complete
    (no counting pass, no recursion). Pending gradients live in `grads`, keyed by seq, and
    are dropped once used. Every edge's gradient is checked against its input's shape
    (`_conform`); a second contribution is summed in one place (`_sum`). Three fast lanes,
    each an invariant the loop keeps:
      top     the newest pending non-leaf and its gradient, held out of heap and dict, so a
              chain of ops (an RNN's steps) hands each gradient straight on. Invariant: top
              outranks (has a larger seq than) every tensor in the heap, and is not in grads.
      owned   seqs whose pending gradient is a dense array this walk allocated and nothing
              else references: a later dense contribution is added into it in place.
              Invariant: s in owned ⇒ grads[s] is that array (a top is never owned).
      leaves  pass nothing on, so they wait in grads (off the heap) until the walk ends and
              accumulate into .grad then: an error part-way leaves every .grad as it was.
    `capture` (a set of ids) asks for gradients back instead (mt.grad); keep_grads=True
    also stores every intermediate tensor's gradient in its .grad (for drawing BPTT).
    A node made before the latest in-place write (or every node, in anomaly mode) takes
    the checked path of checks.py; the rest pay one comparison (issue 13).
    """
    grads = {}
    owned = set()
    heap = []
    top = top_g = None
    leaves = []
    for r, g in zip(roots, root_grads):
        if r.seq in grads:
            grads[r.seq] = _sum(grads[r.seq], g, r.seq, owned)
        else:
            grads[r.seq] = g
            if r.op is None:
                leaves.append(r)
            else:
                heappush(heap, (-r.seq, r))
    root_released = any(r.saved is RELEASED for r in roots)
    watch = capture is not None or keep_grads    # every tensor's gradient is wanted: _visit
    finals = []            # (tensor, gradient, ours) to store once the walk has succeeded
    captured = {}
    careful = checks.careful_below()    # issue 13: nodes made before this seq are checked
    t = None
    while True:
        if top is not None:
            t, g, top = top, top_g, None
        elif heap:
            t = heappop(heap)[1]
            g = grads.pop(t.seq)
        else:
            break
        if type(g) is not ndarray:
            g = g.dense()                       # a structured gradient reaching an op
        if watch or t._meta is not None:
            g = _visit(t, g, capture, captured, keep_grads, finals)
            if t._meta is not None and t._meta.hooks:
                careful = checks.careful_below()    # a hook may have written in place
        if t.saved is RELEASED:
            raise _released_error(t, root_released)
        if t.seq < careful:                     # issue 13: versions, rebased inputs, anomalies
            out = checks.backward(t, g)
        else:
            try:
                out = t.op.backward(t, g)
            except (ValueError, TypeError, IndexError, ArithmeticError) as e:
                if isinstance(e, MicrotensorError):
                    raise
                raise _backward_error(t, e) from e     # a NumPy error, with the op's name
        if not retain_graph:
            t.saved = RELEASED
        for p, gp in zip(t.parents, out):
            if gp is None or not p.requires_grad:
                continue
            if type(gp) is not ndarray or gp.shape != p._data.shape:
                gp = _conform(gp, p, t)         # now an array of p's shape, or a Gradient
            ps = p.seq
            if ps in owned:                     # lane `owned`: add in place, no call
                if type(gp) is ndarray:
                    prev = grads[ps]
                    prev += gp
                else:
                    grads[ps] = _sum(grads[ps], gp, ps, owned)
            elif ps in grads:                   # a second contribution (a leaf's, say)
                grads[ps] = _sum(grads[ps], gp, ps, owned)
            elif p is top:                      # the same for `top`: it joins the heap, so
                grads[ps] = _sum(top_g, gp, ps, owned)     # a top is never owned
                heappush(heap, (-ps, p))
                top = None
            elif p.op is None:                  # lane `leaves`: the first contribution is
                grads[ps] = gp                  # kept, not copied
                leaves.append(p)
            elif top is None:                   # lane `top`
                if heap and ps < -heap[0][0]:
                    grads[ps] = gp
                    heappush(heap, (-ps, p))
                else:
                    top, top_g = p, gp
            elif ps > top.seq:                  # p outranks top, which goes to the heap
                grads[top.seq] = top_g
                heappush(heap, (-top.seq, top))
                top, top_g = p, gp
            else:
                grads[ps] = gp
                heappush(heap, (-ps, p))
    if t is not None:                           # t: the oldest node walked
        checks.after_walk(roots, t.seq, retain_graph)    # issue 13
    for t in leaves:
        g = grads.pop(t.seq)
        ours = t.seq in owned
        if type(g) is not ndarray:
            g, ours = g.dense(), True
        _visit(t, g, capture, captured, keep_grads, finals, ours)
    for t, g, ours in finals:
        _store_grad(t, g, ours)
    return captured


def _conform(g, p, node):
    """g as the gradient of input p of node: an array of p's shape (broadcast axes summed
    down), or a structured Gradient of that shape; anything else is an op's bug."""
    shape = p._data.shape
    if isinstance(g, Gradient):
        if g.shape != shape:
            raise ShapeError(f"{where(node, p)}: the gradient has shape {g.shape}, but the "
                             f"input has shape {shape}")
        return g
    if type(g) is not ndarray:
        g = np.asarray(g)                       # a NumPy scalar: a 0-d ufunc result
    if g.shape != shape:
        g = unbroadcast(g, shape, node, p)
        if type(g) is not ndarray:              # a 0-d sum comes back as a NumPy scalar
            g = np.asarray(g)
    return g


def _backward_error(node, e):
    shapes = ", ".join(str(q._data.shape) for q in node.parents)
    scope = f" (made in {node.scope})" if node.scope is not None else ""
    return error_kind(e)(f"backward of {node.op.name}{scope}: {e} (input shapes {shapes}, "
                         f"output shape {node._data.shape})")


def _sum(prev, g, s, owned):
    """prev + g, the one place where two contributions to one tensor's gradient meet.

    Either may be a structured Gradient (merged when it can be, else densified). The sum
    is a new array that `owned` then records, or prev itself when prev is owned already:
    an array the graph or the caller may still use is never written to.
    """
    if type(prev) is not ndarray:
        merged = prev.merge(g)
        if merged is not None:
            return merged
        prev = prev.dense()
        owned.add(s)
    if type(g) is not ndarray:
        if s not in owned:
            prev = np.array(prev)               # copy, an ndarray even when 0-d
            owned.add(s)
        return g.add_into(prev)
    if s in owned:
        prev += g
        return prev
    owned.add(s)
    out = np.add(prev, g, dtype=prev.dtype)     # one pass instead of a copy and an add
    return out if type(out) is ndarray else np.asarray(out)


def _visit(t, g, capture, captured, keep_grads, finals, ours=False):
    """The rare per-tensor work: hooks, mt.grad's capture, retained and leaf gradients.
    ours: g was allocated by this backward and is referenced nowhere else."""
    meta = t._meta
    if meta is not None and meta.hooks:
        g, ours = meta.run_hooks(g if ours else g.copy()), False
    if capture is not None:
        if id(t) in capture:
            captured[id(t)] = g if ours and g.dtype == t._data.dtype else \
                np.array(g, dtype=t._data.dtype)
    elif keep_grads or t.op is None or (meta is not None and meta.retain):
        finals.append((t, g, ours))
    return g


def _store_grad(t, g, ours=False):
    """Accumulate into .grad in t's own dtype (leaves and retained tensors alike, as torch),
    copying so .grad never aliases another array (unless ours: made by this backward).
    A Tensor in .grad (left by backward(create_graph=True)) gives way to an ndarray of its
    values plus g: a first-order backward builds no graph."""
    _check_grad_target(t, g.shape)
    if t.grad is None:
        t.grad = g if ours and g.dtype == t._data.dtype else np.array(g, dtype=t._data.dtype)
    elif type(t.grad) is ndarray:
        t.grad += g
    else:
        t.grad = np.add(t.grad._data, g, dtype=t._data.dtype)


def _check_grad_target(t, shape):
    if shape != t._data.shape:           # only an op's buggy backward can get here
        raise ShapeError(f"backward: the gradient reaching a tensor of shape {t._data.shape} "
                         f"has shape {shape}; an op's backward returned the wrong shape")
    if t._data.dtype.kind != "f":
        raise DTypeError(f"backward: a tensor of dtype {t._data.dtype} requires grad, but only "
                         f"floating-point tensors can have gradients (was its .data replaced "
                         f"by integers? cast it with .astype(mt.float64))")


class TensorMeta:
    """Rarely-used per-tensor extras, kept off the hot path: hooks, retain_grad, a name, and
    issue 13's (versions.py, anomaly.py): before, the tensor as it was before an in-place op
    rebased it; replaced, the seq at which .data was last reassigned; trace, the forward
    stack in anomaly mode; anomaly, what anomaly mode found (drawn in red)."""
    __slots__ = ("hooks", "retain", "name", "before", "replaced", "trace", "anomaly")
    hooks: list[Callable[[Any], Any]]      # fn(grad) -> a replacement or None
    retain: bool
    name: str | None
    before: Tensor | None
    replaced: int
    trace: list[Frame] | None
    anomaly: str | None

    def __init__(self) -> None:
        self.hooks = []
        self.retain = False
        self.name = self.before = self.trace = self.anomaly = None
        self.replaced = -1

    def run_hooks(self, g: ndarray | Tensor) -> ndarray | Tensor:
        """g after every hook ran on it in turn (a hook that returns a value replaces g)."""
        for fn in self.hooks:
            r = fn(g)
            if r is not None:
                g = np.asarray(r)
        return g


def __getattr__(name: str) -> Any:
    """mt.autograd.functional (jacobian, hessian, …, as torch's), loaded on first use."""
    if name == "functional":
        from . import autograd_functional
        return autograd_functional
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from . import checks  # noqa: E402  (it imports this module)
