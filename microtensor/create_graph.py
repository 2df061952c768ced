"""create_graph=True: a backward walk whose gradients are Tensors, so they can be differentiated
again (to any order).

The walk is run_backward's creation-order heap without its fast lanes: gradients are
Tensors, a second contribution is summed with the add op, and each op's backward (the same
formula as on the NumPy path) is called with a `Context` whose `._data` and `.parents[i]._data`
are the Tensors themselves and whose `xp` (below) spells ops.xp's names with microtensor's
differentiable ops, so every formula records its own graph. The ops made while walking node
t carry t's name scope (its time step).
"""
from heapq import heappop, heappush

import numpy as np

from . import functions as fn
from . import checks, ops
from .autograd import RELEASED, STATE, _backward_error, _check_grad_target, _released_error
from .broadcast import unbroadcast, where
from .errors import GraphError, MicrotensorError
from .mode import current_scope, enable_grad, set_mode
from .tensor import Tensor, _leaf, apply, as_tensor


def _transpose(t, axes):
    return apply(ops.Transpose, t, axes=axes)


def _swapaxes(t, a, b):
    axes = list(range(t.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return _transpose(t, tuple(axes))


def _moveaxis(t, source, destination):
    nd = t.ndim
    axes = [i for i in range(nd) if i != source % nd]
    axes.insert(destination % nd, source % nd)
    return _transpose(t, tuple(axes))


def _softmax_minus_onehot(z, lse, targets):
    """softmax(z) − onehot(targets) as ops: softmax is differentiable again (lse, saved by
    the forward for the NumPy path, would be a constant here)."""
    from .functional import softmax
    onehot = np.zeros(z.shape, dtype=z.dtype)
    onehot[np.arange(len(targets)), targets] = 1
    return softmax(z, axis=1) - onehot


class xp:
    """The array namespace of a create_graph backward: ops.xp's names, as microtensor ops."""
    where = staticmethod(fn.where)
    exp = staticmethod(Tensor.exp)
    log = staticmethod(Tensor.log)
    sign = staticmethod(np.sign)                            # of a constant
    constant = staticmethod(lambda t: t._data)
    multiply = staticmethod(lambda a, b, out=None: a * b)   # out= is NumPy's buffer
    expand_dims = staticmethod(fn.expand_dims)
    broadcast_to = staticmethod(fn.broadcast_to)
    transpose = staticmethod(_transpose)
    swapaxes = staticmethod(_swapaxes)
    moveaxis = staticmethod(_moveaxis)
    split = staticmethod(lambda t, offsets, axis: fn.split(t, list(offsets), axis))
    outer = staticmethod(lambda a, b: a.T @ b)
    scatter = staticmethod(lambda index, v, shape, repeats: apply(
        ops.ScatterAdd, v, index=index, shape=shape, repeats=repeats))
    softmax_minus_onehot = staticmethod(_softmax_minus_onehot)


class _Input:
    """An input as a create_graph backward sees it: ._data is the Tensor itself (and .data,
    for an op of a user's written against the property)."""
    __slots__ = ("_data", "data", "requires_grad")


class Context:
    """What an op's backward reads as ctx when create_graph=True: the output and the inputs
    as Tensors, the op's saved values, and the microtensor namespace."""
    __slots__ = ("_data", "data", "parents", "saved")
    xp = xp


_new = object.__new__


def _context(t, needed):
    """t's Context; an input that leads to no captured tensor is marked as needing no grad."""
    ctx = _new(Context)
    ctx._data = ctx.data = t
    ctx.saved = t.saved
    parents = []
    for p in t.parents:
        i = _new(_Input)
        i._data = i.data = p
        i.requires_grad = p.requires_grad if needed is None else p.seq in needed
        parents.append(i)
    ctx.parents = tuple(parents)
    return ctx


def run_backward_graph(roots, root_grads, retain_graph=True, capture=None, keep_grads=False):
    """run_backward with Tensor gradients that record their own graph (create_graph=True).

    root_grads are Tensors (they may require grad themselves: jvp's double-vjp needs it).
    With `capture` (mt.grad) only the tensors on a path to a captured input are walked,
    and an op is told that an input needs no gradient when none of them lies behind it.
    Leaves that require grad get a Tensor in .grad (added to what was there), as torch.
    """
    needed = None if capture is None else _needed(roots, capture)
    grads, heap, leaves = {}, [], []
    finals, captured = [], {}
    root_released = any(r.saved is RELEASED for r in roots)
    scope = here = current_scope()
    careful = checks.careful_below()            # issue 13, as run_backward (checks.py)
    STATE.walking += 1
    with enable_grad():
        try:
            for r, g in zip(roots, root_grads):
                if needed is not None and r.seq not in needed:
                    continue
                if r.seq in grads:
                    grads[r.seq] = grads[r.seq] + g
                else:
                    grads[r.seq] = g
                    if r.op is None:
                        leaves.append(r)
                    else:
                        heappush(heap, (-r.seq, r))
            while heap:
                t = heappop(heap)[1]
                g = _visit(t, grads.pop(t.seq), capture, captured, keep_grads, finals)
                if t.saved is RELEASED:
                    raise _released_error(t, root_released)
                if t.scope != here:                 # the gradient's ops join t's scope
                    here = t.scope
                    set_mode(True, here)
                if t.seq < careful:
                    checks.before(t)
                out = _call_backward(t, _context(t, needed), g)
                if t.seq < careful:
                    checks.after(t, g, out)
                if not retain_graph:
                    t.saved = RELEASED
                for p, gp in zip(t.parents, out):
                    if gp is None or not p.requires_grad or \
                            (needed is not None and p.seq not in needed):
                        continue
                    gp = _conform(gp, p, t)
                    ps = p.seq
                    if ps in grads:
                        grads[ps] = grads[ps] + gp
                    else:
                        grads[ps] = gp
                        if p.op is None:
                            leaves.append(p)
                        else:
                            heappush(heap, (-ps, p))
            set_mode(True, scope)
            for t in leaves:
                _visit(t, grads.pop(t.seq), capture, captured, keep_grads, finals)
            for t, g in finals:
                _store_grad(t, g)
            checks.walk_ended(retain_graph)     # the released nodes' memory locks (issue 13)
        finally:
            set_mode(True, scope)
            STATE.walking -= 1
    return captured


def _needed(roots, capture):
    """seqs of the tensors that lie on a path from a root to a captured input."""
    seen, stack = {}, [r for r in roots if r.requires_grad]
    while stack:
        t = stack.pop()
        if t.seq not in seen:
            seen[t.seq] = t
            if t.op is not None:
                if checks.needs_checks(t):      # issue 13: rebased inputs resolved first
                    checks.before(t)
                stack.extend(t.parents)
    needed = set()
    for s in sorted(seen):                      # inputs before the ops that consume them
        t = seen[s]
        if id(t) in capture:
            needed.add(s)
        elif t.op is not None:
            for p in t.parents:
                if p.seq in needed:
                    needed.add(s)
                    break
    return needed


def _call_backward(t, ctx, g):
    try:
        return t.op.backward(ctx, g)
    except MicrotensorError:
        raise
    except (TypeError, AttributeError) as e:   # a NumPy-only call met a Tensor
        raise GraphError(f"backward of {t.op.name} with create_graph=True: {e}. Op "
                         f"'{t.op.name}' cannot be differentiated twice: its backward must "
                         f"use ctx.xp and Tensor methods, not NumPy calls") from e
    except (ValueError, IndexError, ArithmeticError) as e:
        raise _backward_error(t, e) from e


def _conform(g, p, node):
    """g as the gradient of input p of node: a Tensor of p's shape (broadcast axes summed
    down with the sum op, so that this too is differentiable)."""
    if not isinstance(g, Tensor):
        raise GraphError(f"{where(node, p)} with create_graph=True: the gradient is a "
                         f"{type(g).__name__}, not a Tensor. Op '{node.op.name}' cannot be "
                         f"differentiated twice: its backward must build its gradients from "
                         f"ctx.xp and Tensor methods")
    if g._data.shape != p._data.shape:
        g = unbroadcast(g, p._data.shape, node, p)
    return g


def _visit(t, g, capture, captured, keep_grads, finals):
    """Hooks (they see and may replace the gradient Tensor), mt.grad's capture, and the
    gradients to store once the walk has succeeded."""
    meta = t._meta
    if meta is not None and meta.hooks:
        for hook in meta.hooks:
            r = hook(g)
            if r is not None:
                g = as_tensor(r)
    if capture is not None:
        if id(t) in capture:
            captured[id(t)] = g if g.dtype == t._data.dtype else g.astype(t._data.dtype)
    elif keep_grads or t.op is None or (meta is not None and meta.retain):
        finals.append((t, g))
    return g


def _store_grad(t, g):
    """.grad becomes a Tensor with a graph: g, or what .grad held plus g."""
    _check_grad_target(t, g._data.shape)
    if g.dtype != t._data.dtype:
        g = g.astype(t._data.dtype)
    prev = t.grad
    if prev is None:
        t.grad = g
    else:
        t.grad = (prev if isinstance(prev, Tensor) else _leaf(prev)) + g


def root_grad(t, grad, root_grad_array):
    """The gradient a create_graph walk starts from at root t: grad itself when it is a
    Tensor of t's shape (its graph is kept), else root_grad_array's result as a constant."""
    if isinstance(grad, Tensor):
        root_grad_array(t, grad._data)                  # the same checks and messages
        return grad if grad.dtype == t.dtype else grad.astype(t.dtype)
    return _leaf(root_grad_array(t, grad))
