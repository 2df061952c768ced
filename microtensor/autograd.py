"""The Op base class, the op registry and the iterative backward engine."""
import itertools
from heapq import heappop, heappush

import numpy as np

from .broadcast import unbroadcast
from .errors import GraphError, ShapeError
from .mode import (OFF, current_mode, current_scope, enable_grad, is_grad_enabled,  # noqa: F401
                   name_scope, no_grad, set_mode)


class Op:
    """One differentiable operation: `forward` and `backward` side by side, on plain ndarrays.

    forward(*arrays, **attrs) -> (out, saved): `saved` is all backward needs.
    backward(ctx, g) -> one gradient per input (None where not needed), in the output's
    broadcast shape; the engine reduces it to each input's shape. `ctx` is the output
    tensor: ctx.saved, ctx.data (the result) and ctx.parents (the input tensors).
    An op whose forward is one NumPy ufunc and saves nothing declares `ufunc` instead of
    forward; Tensor's methods then call the ufunc without a Python frame in between.
    """
    name = None
    ufunc = None
    broadcasts = False     # True: gradients may come in the output's broadcast shape, or as
                           # a Scatter, and the engine brings them to each input's shape

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.ufunc is not None and "forward" not in cls.__dict__:
            ufunc = cls.ufunc
            cls.forward = staticmethod(lambda *arrays: (ufunc(*arrays), None))

    @staticmethod
    def forward(*arrays, **attrs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError

    @staticmethod
    def shape_error(*shapes, **attrs):
        """A message for inputs whose shapes don't fit, or None for the generic one."""
        return None


REGISTRY = {}


def register(op):
    """Add a differentiable op to the registry the gradient tests iterate over."""
    if not op.name or op.name in REGISTRY:
        raise ValueError(f"register: {op.__name__} needs a name of its own, got {op.name!r}")
    REGISTRY[op.name] = op
    return op


class Scatter:
    """A sparse gradient: `values` belong at `index` of an otherwise-zero array.

    Indexing ops return it so that x[t] taken at every step of a T-step loop costs O(T) in
    backward, not O(T²): the engine adds it into the parent's one gradient buffer.
    """
    __slots__ = ("index", "values", "repeats")
    shape = None           # never equal to an array's: the engine's shape test sends it aside

    def __init__(self, index, values, repeats):
        self.index, self.values, self.repeats = index, values, repeats

    def add_into(self, buf):
        if self.repeats:
            np.add.at(buf, self.index, self.values)   # integer arrays may name an element twice
        else:
            buf[self.index] += self.values
        return buf


class Outer:
    """A weight gradient Σᵢ aᵢᵀbᵢ kept as its factors until it is needed.

    linear's backward returns one for its weight; a weight shared by T time steps then
    gets its gradient from one (out × TB) @ (TB × in) matmul instead of T outer products
    added one by one: the hoisted hand-written BPTT's trick, done by the engine. Every
    FOLD_ROWS rows the factors are folded into a dense sum, which bounds their memory.
    """
    __slots__ = ("a", "b", "rows", "acc")
    FOLD_ROWS = 4096
    shape = None

    def __init__(self, a, b):
        if len(a) >= self.FOLD_ROWS:       # already one big product: don't hold its factors
            self.a, self.b, self.rows, self.acc = [], [], 0, a.T @ b
        else:
            self.a, self.b, self.rows, self.acc = [a], [b], len(a), None

    def merge(self, other):
        self.a += other.a
        self.b += other.b
        self.rows += other.rows
        if self.rows >= self.FOLD_ROWS:
            self.acc = self.dense()
            self.a, self.b, self.rows = [], [], 0

    def dense(self):
        if not self.a:
            return self.acc
        if len(self.a) == 1:
            d = self.a[0].T @ self.b[0]
        else:
            d = np.concatenate(self.a).T @ np.concatenate(self.b)
        return d if self.acc is None else d + self.acc


RELEASED = object()    # stands in for an op's saved arrays once backward has freed them
next_seq = itertools.count().__next__    # creation order: a consumer always outranks its inputs


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


def run_backward(roots, root_grads, retain_graph=False, capture=None, keep_grads=False):
    """Propagate root_grads from roots to every tensor that needs a gradient.

    Tensors are taken in decreasing creation order (a max-heap on `seq`): every consumer of
    a tensor was made after it, so when a tensor comes off the heap its gradient is complete
    (no counting pass, no recursion). Pending gradients live in a dict keyed by seq and are
    dropped once used. The newest pending tensor waits in `top` instead, so a chain of ops
    (an RNN's steps) passes each gradient straight on without touching heap or dict. Leaves
    have nothing to pass on: they wait until the walk ends and accumulate into .grad then,
    so an error part-way leaves every .grad as it was; `capture` (a set of ids) asks for
    gradients back instead (mt.grad). keep_grads=True stores every tensor's gradient in .grad
    (for drawing BPTT).
    """
    pending = {}           # seq -> gradient so far
    owned = set()          # seqs whose pending gradient we allocated, so may add into in place
    heap = []              # (−seq, tensor): the latest-made tensor comes off first
    top = top_g = None     # the pending tensor made last and its gradient, held out of the
                           # heap and of `pending`: a chain hands each tensor to the next step
    leaves = []            # leaves reached; they have nothing to pass on, so wait for the end
    for r, g in zip(roots, root_grads):
        if r.seq in pending:
            _accumulate(pending, owned, r, g, None)
        else:
            pending[r.seq] = g
            if r.op is None:
                leaves.append(r)
            else:
                heappush(heap, (-r.seq, r))
    root_released = any(r.saved is RELEASED for r in roots)
    watch = capture is not None or keep_grads    # every tensor's gradient is wanted (or a
                                                  # factored one must be densified): _visit
    finals = []            # (tensor, gradient, ours) to store once the walk has succeeded
    captured = {}
    while True:
        if top is not None:
            t, g, top = top, top_g, None
        elif heap:
            t = heappop(heap)[1]
            g = pending.pop(t.seq)
        else:
            break
        if watch or t._meta is not None:
            g = _visit(t, g, capture, captured, keep_grads, finals)
        if t.saved is RELEASED:
            raise _released_error(t, root_released)
        op = t.op
        grads = op.backward(t, g)
        if not retain_graph:
            t.saved = RELEASED
        shaped = op.broadcasts
        for p, gp in zip(t.parents, grads):
            if gp is None or not p.requires_grad:
                continue
            ps = p.seq
            if ps in owned:                     # a buffer of ours (a shared weight's, say)
                prev = pending[ps]
                if gp.shape == prev.shape:
                    prev += gp                  # the common case, without a call
                else:
                    _accumulate(pending, owned, p, gp, t)
                continue
            if ps in pending:                   # the second contribution: sum it in
                _accumulate(pending, owned, p, gp, t)
                continue
            if p is top:                        # the same, for the tensor held in `top`
                pending[ps] = top_g
                heappush(heap, (-ps, p))
                top = None
                _accumulate(pending, owned, p, gp, t)
                continue
            if shaped and gp.shape != p.data.shape:     # broadcast, scattered or factored
                gp = _first_shape(gp, p, t, owned)
                if type(gp) is Outer and p.op is not None:
                    watch = True                # a factored non-leaf gradient (W.T, say)
                if ps in owned and p.op is not None:    # a scattered gradient's buffer (xs[t])
                    if top is not None and ps > top.seq:  # stays in `pending`, where later
                        pending[top.seq] = top_g          # ones find it
                        heappush(heap, (-top.seq, top))
                        top = None
                    pending[ps] = gp
                    heappush(heap, (-ps, p))
                    continue
            if p.op is None:                    # the first contribution is kept, not copied
                pending[ps] = gp
                leaves.append(p)
            elif top is None:
                if heap and ps < -heap[0][0]:
                    pending[ps] = gp
                    heappush(heap, (-ps, p))
                else:
                    top, top_g = p, gp
            elif ps > top.seq:                  # p outranks `top`, which goes to the heap
                pending[top.seq] = top_g
                heappush(heap, (-top.seq, top))
                top, top_g = p, gp
            else:
                pending[ps] = gp
                heappush(heap, (-ps, p))
    for t in leaves:
        _visit(t, pending.pop(t.seq), capture, captured, keep_grads, finals, t.seq in owned)
    for t, g, ours in finals:
        if t.op is None:
            _accumulate_leaf(t, g, ours)
        else:
            t.grad = g.copy()
    return captured


def _first_shape(g, p, node, owned):
    """A first gradient for p in p's shape: a Scatter becomes a buffer of ours, an Outer
    stays factored, and a broadcast one is summed down."""
    if type(g) is Scatter:
        owned.add(p.seq)
        return g.add_into(np.zeros(p.data.shape, dtype=p.data.dtype))
    if type(g) is Outer:
        return g
    return unbroadcast(g, p.data.shape, node, p)


def _visit(t, g, capture, captured, keep_grads, finals, ours=False):
    """The rare per-tensor work: factored gradients, hooks, mt.grad's capture, retained and
    leaf gradients. ours: g was allocated by this backward, so .grad may keep it uncopied."""
    if type(g) is Outer:
        g, ours = g.dense(), True
    meta = t._meta
    if meta is not None and meta.hooks:
        g, ours = meta.run_hooks(g), False
    if capture is not None:
        if id(t) in capture:
            captured[id(t)] = g
    elif keep_grads or t.op is None or (meta is not None and meta.retain):
        finals.append((t, g, ours))
    return g


def _accumulate(pending, owned, p, g, node):
    """Sum a further gradient into p's pending one: allocate on the second contribution and
    add in place after that, so no array the graph still uses is ever written to."""
    ps = p.seq
    prev = pending[ps]
    if type(prev) is Outer:
        if type(g) is Outer:
            prev.merge(g)              # factors made in this backward: ours to extend
            return
        prev = prev.dense()
        pending[ps] = prev
        owned.add(ps)
    elif type(g) is Outer:
        g = g.dense()
    if type(g) is Scatter:
        if ps not in owned:
            prev = pending[ps] = prev.copy()
            owned.add(ps)
        g.add_into(prev)
        return
    if g.shape != prev.shape:
        g = unbroadcast(g, prev.shape, node, p)
    if ps in owned:
        prev += g
    else:                              # one pass instead of a copy and an add
        pending[ps] = np.add(prev, g, dtype=prev.dtype)
        owned.add(ps)


def _accumulate_leaf(t, g, ours=False):
    """Leaves add into .grad in their own dtype, copying so .grad never aliases another array
    (unless the array is ours: made by this backward and referenced nowhere else)."""
    if g.shape != t.data.shape:         # only an op's buggy backward can get here
        raise ShapeError(f"backward: the gradient reaching a leaf of shape {t.data.shape} "
                         f"has shape {g.shape}; an op's backward returned the wrong shape")
    if t.grad is None:
        t.grad = g if ours and g.dtype == t.data.dtype else np.array(g, dtype=t.data.dtype)
    else:
        t.grad += g


class TensorMeta:
    """Rarely-used per-tensor extras (hooks, retain_grad, a name), kept off the hot path."""
    __slots__ = ("hooks", "retain", "name")

    def __init__(self):
        self.hooks = []
        self.retain = False
        self.name = None

    def run_hooks(self, g):
        for fn in self.hooks:
            r = fn(g)
            if r is not None:
                g = np.asarray(r)
        return g
