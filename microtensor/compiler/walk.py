"""The recording engine walk: run_backward's walk, computing the same gradients and writing
each NumPy call it makes into the plan.

MIRROR of autograd.run_backward (and of _conform, _sum, broadcast.unbroadcast, Outer and
Scatter), kept beside it for compile: the same order (tensors in decreasing creation order,
each tensor's contributions summed in arrival order), the same sums (_sum's in-place and
allocating cases), the same Outer merges and folds (so the weight gradient of a shared
weight is one concatenated matmul at the same points), the same unbroadcast sums. What it
leaves out is what a replay never needs: the heap and dict lanes (the order they give is
computed once, here), and hooks, retain_grad and keep_grads (a trace that meets them falls
back to eager). tests/compiler/test_walk.py compares it with run_backward slot for slot.
"""
from heapq import heappop, heappush

import numpy as np

from .. import checks
from ..autograd import (RELEASED, STATE, _backward_error, _released_error, _store_grad,
                        run_backward)
from ..broadcast import unbroadcast, where
from ..errors import MicrotensorError, ShapeError
from ..ops.linalg import Outer
from .record import Poison

ndarray = np.ndarray


class Val:
    """An array the trace computed (real) and the plan's name for it."""
    __slots__ = ("real", "name")

    def __init__(self, real, name):
        self.real, self.name = real, name


class SymOuter:
    """MIRROR of ops.linalg.Outer: the factors' arrays and their names, merged and folded
    exactly as Outer merges and folds them."""

    def __init__(self, rec, a, b):
        self.rec = rec
        self.a, self.b, self.rows, self.acc = [a], [b], len(a.real), None
        self.shape, self.dtype = (a.real.shape[1], b.real.shape[1]), a.real.dtype
        if self.rows >= Outer.FOLD_ROWS:
            self._fold()

    def _fold(self):
        self.acc = self.dense()
        self.a, self.b, self.rows = [], [], 0

    def dense(self):
        rec = self.rec
        if not self.a:
            return self.acc
        if len(self.a) == 1:
            real = self.a[0].real.T @ self.b[0].real
            expr = f"{self.a[0].name}.T @ {self.b[0].name}"
        else:
            real = np.concatenate([v.real for v in self.a]).T @ \
                np.concatenate([v.real for v in self.b])
            expr = f"{rec.concatenated(self.a)}.T @ {rec.concatenated(self.b)}"
        d = Val(real, rec.computed(real, "o"))
        rec.emit(f"{d.name} = {expr}")
        if self.acc is not None:
            d.real += self.acc.real
            rec.emit(f"{d.name} += {self.acc.name}")
        return d

    def add_into(self, buf):
        d = self.dense()
        buf.real += d.real
        self.rec.emit(f"{buf.name} += {d.name}")
        return buf

    def merge(self, other):
        if type(other) is not SymOuter:
            return None
        self.a += other.a
        self.b += other.b
        self.rows += other.rows
        if other.acc is not None:
            if self.acc is None:
                self.acc = other.acc
            else:
                real = self.acc.real + other.acc.real
                name = self.rec.computed(real, "o")
                self.rec.emit(f"{name} = {self.acc.name} + {other.acc.name}")
                self.acc = Val(real, name)
        if self.rows >= Outer.FOLD_ROWS:
            self._fold()
        return self


class SymScatter:
    """MIRROR of ops.shape.Scatter: values at index of zeros; index is source text."""

    def __init__(self, index_src, index, values, shape, repeats):
        self.index_src, self.index, self.values = index_src, index, values
        self.shape, self.repeats, self.dtype = shape, repeats, values.real.dtype

    def dense(self, rec):
        real = np.zeros(self.shape, dtype=self.dtype)
        buf = Val(real, rec.computed(real, "z"))
        rec.emit(f"{buf.name} = np.zeros({self.shape!r}, dtype={rec.const(self.dtype)})")
        return self.add_into(buf, rec)

    def add_into(self, buf, rec):
        if self.repeats:
            np.add.at(buf.real, self.index, self.values.real)
            rec.emit(f"np.add.at({buf.name}, {self.index_src}, {self.values.name})")
        else:
            buf.real[self.index] += self.values.real
            rec.emit(f"{_rows(rec, buf, self.index)}[{self.index_src}] += {self.values.name}")
        return buf

    def merge(self, other):
        return None


def _rows(rec, buf, index):
    """What `buf[index] += v` indexes: buf, or from its second int index on, the list of
    buf's rows. FAST PATH. Invariant: index is an int and buf has two or more axes, so
    buf[index] is a view of a row and `rows[index] += v` adds in place into the same
    memory as `buf[index] += v`, without NumPy's indexing (an unrolled step's ∂x_t lands
    in one row of a (T, …) buffer per step)."""
    if type(index) is not int or buf.real.ndim < 2:
        return buf.name
    seen = rec.row_lists.get(buf.name)
    if seen is None:
        rec.row_lists[buf.name] = False         # the first: not worth a list yet
        return buf.name
    if seen is False:
        seen = rec.row_lists[buf.name] = rec.new("r")
        rec.emit(f"{seen} = list({buf.name})")
    return seen


def _dense(g, rec):
    return g.dense() if type(g) is SymOuter else g.dense(rec)


def _add_into(g, buf, rec):
    return g.add_into(buf) if type(g) is SymOuter else g.add_into(buf, rec)


def conform(rec, g, p, node):
    """MIRROR of autograd._conform (with the loop's check before it)."""
    shape = p._data.shape
    if not isinstance(g, Val):
        if g.shape != shape:
            raise ShapeError(f"{where(node, p)}: the gradient has shape {g.shape}, but the "
                             f"input has shape {shape}")
        return g
    real, name = g.real, g.name
    if type(real) is ndarray and real.shape == shape:
        return g
    if type(real) is not ndarray:
        real = np.asarray(real)
        name = rec.record_array(real, f"asarray({name})")
    if real.shape != shape:
        out = unbroadcast(real, shape, node, p)      # raises the engine's error if it must
        lead = real.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(shape) if s == 1 and real.shape[lead + i] != 1)
        expr = name
        if axes:
            expr = f"{expr}.sum(axis={axes!r}, keepdims=True)"
        if lead:
            expr = f"{expr}.reshape({shape!r})"
        name = rec.computed(out, "u")
        rec.emit(f"{name} = {expr}")
        real = out
        if type(real) is not ndarray:
            real = np.asarray(real)
            name = rec.record_array(real, f"asarray({name})")
    return Val(real, name)


def sum_(rec, prev, g, s, owned):
    """MIRROR of autograd._sum."""
    if not isinstance(prev, Val):
        merged = prev.merge(g)
        if merged is not None:
            return merged
        prev = _dense(prev, rec)
        owned.add(s)
    if not isinstance(g, Val):
        if s not in owned:
            real = np.array(prev.real)
            prev = Val(real, rec.record_array(real, f"np.array({prev.name})"))
            owned.add(s)
        return _add_into(g, prev, rec)
    if s in owned:
        prev.real += g.real
        rec.emit(f"{prev.name} += {g.name}")
        return prev
    owned.add(s)
    real = np.add(prev.real, g.real, dtype=prev.real.dtype)
    name = rec.computed(real, "g")
    if type(prev.real) is ndarray and type(g.real) is ndarray and \
            g.real.dtype == prev.real.dtype:     # the same add: both already of its dtype
        rec.emit(f"{name} = {prev.name} + {g.name}")
    else:
        rec.emit(f"{name} = np.add({prev.name}, {g.name}, dtype={rec.const(prev.real.dtype)})")
    if type(real) is not ndarray:
        real = np.asarray(real)
        name = rec.record_array(real, f"asarray({name})")
    return Val(real, name)


def _check_graph(rec, roots, capture):
    """None if the walk can record this graph, else why not (checked before anything runs)."""
    stack, seen = list(roots), set()
    while stack:
        t = stack.pop()
        if id(t) in seen or not t.requires_grad:
            continue
        seen.add(id(t))
        meta = t._meta
        if meta is not None and (meta.hooks or meta.retain):
            return "a gradient hook or retain_grad() inside fn"
        if t.op is None:
            if capture is None and t.seq >= rec.seq0 and id(t) not in rec.arg_tensor:
                return "fn makes a tensor that requires grad (create it outside fn)"
            continue
        if id(t) not in rec.node:
            return ("backward reaches a graph built before the call (detach the state carried "
                    "from the previous call)")
        if checks.needs_checks(t):              # issue 13: run_backward's checked path
            return "anomaly mode, or an in-place write into the graph since its forward"
        stack.extend(t.parents)
    return None


def record_backward(rec, roots, root_grads, retain_graph=False, capture=None,
                    keep_grads=False):
    """run_backward's results, with its NumPy calls written into rec's plan. On anything the
    plan cannot hold, the trace is poisoned and the real run_backward runs instead."""
    why = "backward(keep_grads=True) inside fn" if keep_grads else _check_graph(rec, roots, capture)
    if why is None:
        STATE.walking += 1                          # as run_backward (versions.expose)
        try:
            return _walk(rec, roots, root_grads, retain_graph, capture)
        except Poison as e:
            why = str(e)
        except MicrotensorError:
            raise                                   # the engine's own error, as eager
        finally:
            STATE.walking -= 1
    rec.poison(why)
    return run_backward(roots, root_grads, retain_graph, capture, keep_grads)


def _walk(rec, roots, root_grads, retain_graph, capture):
    from . import emit
    pending, owned, heap, leaves = {}, set(), [], []
    for r, g in zip(roots, root_grads):
        gv = Val(g, rec.bind(g))
        if r.seq in pending:
            pending[r.seq] = sum_(rec, pending[r.seq], gv, r.seq, owned)
        else:
            pending[r.seq] = gv
            if r.op is None:
                leaves.append(r)
            else:
                heappush(heap, (-r.seq, r))
    root_released = any(r.saved is RELEASED for r in roots)
    captured, finals, released = {}, [], []
    while heap:
        t = heappop(heap)[1]
        g = pending.pop(t.seq)
        if not isinstance(g, Val):
            g = _dense(g, rec)                      # a structured gradient reaching an op
        if capture is not None and id(t) in capture:
            captured[id(t)] = _captured(rec, g, t, False)
        if t.saved is RELEASED:
            raise _released_error(t, root_released)
        try:
            out = t.op.backward(t, g.real)
        except (ValueError, TypeError, IndexError, ArithmeticError) as e:
            if isinstance(e, MicrotensorError):
                raise
            raise _backward_error(t, e) from e
        released.append(t)
        vals = emit.backward(rec, t, rec.node[id(t)], g, out)
        for p, gp, gv in zip(t.parents, out, vals):
            if gp is None or not p.requires_grad:
                continue
            gv = conform(rec, gv, p, t)
            ps = p.seq
            if ps in pending:
                pending[ps] = sum_(rec, pending[ps], gv, ps, owned)
            else:
                pending[ps] = gv
                if p.op is None:
                    leaves.append(p)
                else:
                    heappush(heap, (-ps, p))
    for t in leaves:
        g = pending.pop(t.seq)
        ours = t.seq in owned
        if not isinstance(g, Val):
            g, ours = _dense(g, rec), True
        if capture is not None:
            if id(t) in capture:
                captured[id(t)] = _captured(rec, g, t, ours)
        else:
            finals.append((t, g, ours))
    for t, g, ours in finals:
        rec.depth += 1                          # the store's own .grad write is not fn's
        try:
            _store_grad(t, g.real, ours)
        finally:
            rec.depth -= 1
        target = _target(rec, t)
        rec.emit(f"{rec.const(_store_grad)}({target}, {g.name}, {ours})")
        rec.names[id(t.grad)] = f"{target}.grad"     # read through the tensor, when needed
        rec.keep.append(t.grad)
    if capture is not None:                     # mt.grad gives zeros for inputs not reached
        for i in capture - captured.keys():
            t = rec.seen.get(i)
            if t is not None:
                z = np.zeros_like(t._data)
                rec.record_array(z, f"np.zeros_like({rec.tensor_data(t)})")
                captured[i] = z
    if not retain_graph:
        for t in released:
            t.saved = RELEASED
    checks.walk_ended(retain_graph)             # and their memory locks (issue 13)
    return captured


def _captured(rec, g, t, ours):
    """MIRROR of _visit's capture: mt.grad's result for t."""
    if ours and g.real.dtype == t._data.dtype:
        return g.real
    real = np.array(g.real, dtype=t._data.dtype)
    rec.record_array(real, f"np.array({g.name}, dtype={rec.const(t._data.dtype)})")
    return real


def _target(rec, t):
    i = rec.arg_tensor.get(id(t))
    return f"ARGS[{i}]" if i is not None else rec.const(t)
