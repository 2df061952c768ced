"""Each op's forward and backward as plan source: the same NumPy calls as the op, written out.

An op with an emitter here is replayed as one line of NumPy per gradient (what its `backward`
computes, written against the plan's names); any other op is replayed by calling its own
`forward` / `backward` on a small stand-in context, which is exact by construction. Every
emitter mirrors one op's code, so each is pinned to a fingerprint of that code (`PINNED`):
an op whose forward or backward changes is replayed through the generic call until its
emitter is checked again (tests/compiler/test_emit.py fails meanwhile and says which).
"""
import hashlib
import types

import numpy as np

from .. import ops
from ..ops.linalg import LinearAdd, Outer
from ..ops.shape import Scatter
from .record import M, Poison
from .walk import SymOuter, SymScatter, Val

ndarray = np.ndarray


def fingerprint(fn):
    """A hash of fn's bytecode, names and constants (not its line numbers)."""
    h = hashlib.sha256()

    def feed(code):
        h.update(code.co_code)
        h.update(repr((code.co_names, code.co_varnames)).encode())
        for k in code.co_consts:
            feed(k) if isinstance(k, types.CodeType) else h.update(repr(k).encode())
    feed(fn.__code__)
    return h.hexdigest()[:16]


# The code each emitter mirrors, as it was when the emitter was written and checked.
PINNED = {
    ('add', 'backward'): '8d176332241de905',
    ('sub', 'backward'): '84795e632a9f4b0f',
    ('mul', 'backward'): 'e66cba8b1a830be2',
    ('div', 'backward'): 'c78f227487c58984',
    ('neg', 'backward'): 'ff3a04a25ab64737',
    ('exp', 'backward'): '9b79c99eecc24196',
    ('log', 'backward'): 'd1bf1c3193c3f5d4',
    ('tanh', 'backward'): '382c0e3df4bd49b9',
    ('sigmoid', 'backward'): '371c22712f1e307a',
    ('relu', 'backward'): '2e703ea5804c5677',
    ('sqrt', 'backward'): '0b9f53321f76b232',
    ('cast', 'backward'): '4cc642321926f0b6',
    ('where', 'backward'): 'cd4504c733a556c0',
    ('matmul', 'backward'): 'ee7b1da2c9ed494e',
    ('linear', 'forward'): 'd140255c0a542e60',
    ('linear', 'backward'): '6abfd25376860485',
    ('linear_add', 'forward'): 'd140255c0a542e60',      # Linear's code (ops.linalg.LinearAdd)
    ('linear_add', 'backward'): '6abfd25376860485',
    ('getitem', 'forward'): '2a7bbee273d1cd7c',
    ('getitem', 'backward'): '47a0f8f1865a765b',
    ('reshape', 'forward'): '07df13a05170f74d',
    ('reshape', 'backward'): '21031c841777990e',
    ('squeeze', 'backward'): '21031c841777990e',
    ('expand_dims', 'backward'): '21031c841777990e',
    ('transpose', 'backward'): 'd37e1da942b2a611',
    ('stack', 'backward'): '6f6a95471757e0d1',
    ('stack', 'one_copy'): '48a8a5fe3a806d1f',   # the fast path's test, which forward calls
    ('concat', 'forward'): '0ab18c6ebe3eeb3a',
    ('concat', 'backward'): 'e3b3f806629fe7e4',
    ('stack', 'forward'): '055e7e205750a9c1',
    ('sum', 'backward'): 'd23513ccf445f75a',
    ('mean', 'backward'): '3fc62e54e623ff20',
    ('cross_entropy', 'forward'): 'fe29d3299bff63d5',
    ('cross_entropy', 'backward'): '879d33c79d2a5eac',
    ('cross_entropy', 'softmax_minus_onehot'): '98e886554dddcbed',   # ops.xp's, which backward calls
}


def current_fingerprints():
    """{(op name, 'forward'/'backward'): fingerprint of that code today} for the pinned ones."""
    out = {}
    for (name, which) in PINNED:
        op = ops.REGISTRY[name]
        fn = getattr(op, which, None) or getattr(ops.xp, which)    # the op's, or a helper's
        out[(name, which)] = fingerprint(fn)
    return out


_ACTIVE = {k for k, v in current_fingerprints().items() if PINNED[k] == v}


def active(name, which):
    return (name, which) in _ACTIVE


# ---- forward -------------------------------------------------------------------------------

def _plain_index(index):
    """An index of ints, slices, None and ... only (no arrays): its getitem saves nothing."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(type(i) in (int, slice) or i is None or i is Ellipsis for i in parts)


def forward(rec, op, parents, ins, attrs, attr_src, name):
    """Emit `name = op(*ins, **attrs)`; return the name of its saved value, or None."""
    args = ", ".join(ins)
    if op.ufunc is not None and not attrs:
        rec.emit(f"{name} = {rec.const(op.ufunc)}({args})")
        rec.may_write_over(name, ins, parents)
        return None
    if op is ops.GetItem and _plain_index(attrs["index"]) and active("getitem", "forward") \
            and active("getitem", "backward"):
        rec.emit(f"{name} = {ins[0]}[{attr_src['index']}]")
        return None
    if (op is ops.Linear or op is LinearAdd) and parents[0]._data.ndim >= 2 \
            and parents[1]._data.ndim == 2 and active(op.name, "forward") and \
            active(op.name, "backward"):
        x, w = parents[0]._data, parents[1]._data
        if x.ndim == 2:
            rec.emit(f"{name} = {ins[0]} @ {rec.transposed(ins[1])}")
        else:
            rec.emit(f"{name} = ({ins[0]}.reshape(-1, {x.shape[-1]}) @ "
                     f"{rec.transposed(ins[1])}).reshape({x.shape[:-1] + w.shape[:1]!r})")
        if len(ins) == 3:
            rec.emit(f"{name} += {ins[2]}")
        return None
    if (op is ops.Concat or op is ops.Stack) and active(op.name, "forward") and \
            active(op.name, "backward"):            # the backward reads t.saved: a constant
        arrays = [p._data for p in parents]
        if op is ops.Stack and op.one_copy(arrays, attrs.get("axis", 0)):   # its fast path
            rec.emit(f"{name} = np.concatenate(({args}, )).reshape("
                     f"{(len(arrays),) + arrays[0].shape!r})")
            whole = rec.named[-1][1]                # this stack's output (rec.computed)
            for k, a in enumerate(arrays):          # a is row k of it (rec.rowwise)
                rec.rows.setdefault(id(a), (a, name, k, whole))
            return None
        fn = "concatenate" if op is ops.Concat else "stack"
        rec.emit(f"{name} = np.{fn}(({args}, ), axis={attr_src.get('axis', '0')})")
        return None
    if op is ops.CrossEntropy and _cross_entropy_active() and parents[0]._data.ndim == 2:
        return _cross_entropy(rec, ins[0], attrs, attr_src, name)
    if op is ops.Reshape and active("reshape", "forward") and active("reshape", "backward"):
        rec.emit(f"{name} = {ins[0]}.reshape({attr_src['shape']})")
        return None
    saved = rec.new("s")
    kw = "".join(f", {k}={v}" for k, v in attr_src.items())
    rec.emit(f"{name}, {saved} = {rec.const(op.forward)}({args}{kw})")
    return saved


def _cross_entropy_active():
    return all(active("cross_entropy", w) for w in ("forward", "backward",
                                                     "softmax_minus_onehot"))


def _cross_entropy(rec, z, attrs, attr_src, name):
    """CrossEntropy.forward written out; its rows (np.arange of the targets' length, which
    the key's shapes fix) made once. Returns the name of the saved (targets, lse, reduction)."""
    targets, reduction = attrs["targets"], attrs.get("reduction", "mean")
    rows = rec.const(np.arange(len(targets)))
    tsrc = attr_src["targets"]
    m, e, lse, saved = rec.new("v"), rec.new("v"), rec.new("v"), rec.new("s")
    losses = f"({lse} - {z}[{rows}, {tsrc}])"
    rec.emit(f"{m} = {z}.max(axis=1, keepdims=True)\n{e} = {z} - {m}\nnp.exp({e}, out={e})\n"
             f"{lse} = np.log({e}.sum(axis=1)) + {m}[:, 0]\n"
             f"{name} = {losses}{'.mean()' if reduction == 'mean' else '.sum()' if reduction == 'sum' else ''}\n"
             f"{saved} = ({tsrc}, {lse}, {reduction!r})")
    rec.ce_rows[saved] = (rows, lse)
    return saved


# ---- backward ------------------------------------------------------------------------------

def _g(rec, real, expr):
    """A gradient the plan computes as expr."""
    name = rec.computed(real, "g")
    rec.emit(f"{name} = {expr}")
    return Val(real, name)


def _same_pattern(out, vals):
    if [o is None for o in out] != [v is None for v in vals]:
        raise Poison("an emitter disagrees with its op's backward (a bug: please report it)")
    return vals


def _unary(expr):
    def emit(rec, t, info, g, out):
        y, a = info.name, info.ins[0]
        return [_g(rec, out[0], expr.format(g=g.name, y=y, a=a))]
    return emit


def _bw_tanh(rec, t, info, g, out):
    d = rec.rowwise(t._data, info.name, "(1 - {x} * {x})",      # y·y, then 1 − that
                    "{d} = {x} * {x}\nnp.subtract(1, {d}, out={d})")
    return [_g(rec, out[0], f"{g.name} * {d}")]


def _bw_cross_entropy(rec, t, info, g, out):
    """CrossEntropy.backward and xp.softmax_minus_onehot written out, for a forward the
    emitter above wrote (its rows constant)."""
    written = rec.ce_rows.get(info.saved)
    if written is None:
        return None
    (rows, lse), (targets, _, reduction) = written, t.saved
    tsrc = info.attrs["targets"]
    p = rec.new("v")
    if reduction == "mean":
        scale = f"{g.name} / {rec.const(out[0].dtype.type(len(targets)))}"
    elif reduction == "sum":
        scale = g.name
    else:
        scale = f"{g.name}[:, None]"
    rec.emit(f"{p} = {info.ins[0]} - {lse}[:, None]\nnp.exp({p}, out={p})\n"
             f"{p}[{rows}, {tsrc}] -= 1")
    return [_g(rec, out[0], f"np.multiply({p}, {scale}, out={p})")]


def _bw_add(rec, t, info, g, out):
    return [g, g]


def _bw_sub(rec, t, info, g, out):
    return [g, None if out[1] is None else _g(rec, out[1], f"-{g.name}")]


def _bw_mul(rec, t, info, g, out):
    a, b = info.ins
    return [None if out[0] is None else _g(rec, out[0], f"{g.name} * {b}"),
            None if out[1] is None else _g(rec, out[1], f"{g.name} * {a}")]


def _bw_div(rec, t, info, g, out):
    b = info.ins[1]
    ga = _g(rec, out[0], f"{g.name} / {b}")
    return [ga, None if out[1] is None else _g(rec, out[1], f"-{ga.name} * {info.name}")]


def _bw_cast(rec, t, info, g, out):
    return [_g(rec, out[0], f"{g.name}.astype({rec.const(t.saved)})")]


def _bw_where(rec, t, info, g, out):
    cond = info.attrs["cond"]
    zero = rec.new("z")
    rec.emit(f"{zero} = np.zeros((), dtype={g.name}.dtype)")
    return [_g(rec, out[0], f"np.where({cond}, {g.name}, {zero})"),
            _g(rec, out[1], f"np.where({cond}, {zero}, {g.name})")]


def _bw_matmul(rec, t, info, g, out):
    pa, pb = t.parents
    if not (pa._data.ndim == 2 and pb._data.ndim == 2):
        return None
    a, b = info.ins
    return [None if out[0] is None else _g(rec, out[0], f"{g.name} @ {rec.transposed(b)}"),
            None if out[1] is None else _g(rec, out[1], f"{rec.transposed(a)} @ {g.name}")]


def _bw_linear(rec, t, info, g, out):
    px = t.parents[0]
    x, w = info.ins[:2]
    gr = g.real
    vals = []
    if out[0] is None:
        vals.append(None)
    elif gr.ndim <= 2:
        vals.append(_g(rec, out[0], f"{g.name} @ {w}"))
    else:
        vals.append(_g(rec, out[0], f"({g.name}.reshape(-1, {gr.shape[-1]}) @ {w})"
                                    f".reshape({px._data.shape!r})"))
    if out[1] is None:
        vals.append(None)
    else:
        if type(out[1]) is not Outer:
            raise Poison("linear's weight gradient is not an Outer")
        a = g if gr.ndim == 2 else _g(rec, gr.reshape(-1, gr.shape[-1]),
                                       f"{g.name}.reshape(-1, {gr.shape[-1]})")
        xr = px._data
        b = Val(xr, x) if xr.ndim == 2 else _g(rec, xr.reshape(-1, xr.shape[-1]),
                                                f"{x}.reshape(-1, {xr.shape[-1]})")
        vals.append(SymOuter(rec, a, b))
    if len(out) == 3:
        vals.append(g)
    return vals


def _bw_getitem(rec, t, info, g, out):
    index, shape, repeats = t.saved
    return [SymScatter(info.attrs["index"], index, g, shape, repeats)]


def _bw_reshape(rec, t, info, g, out):
    return [_g(rec, out[0], f"{g.name}.reshape({t.saved!r})")]


def _bw_transpose(rec, t, info, g, out):
    return [_g(rec, out[0], f"np.transpose({g.name}, {t.saved!r})")]


def _pieces(rec, r, out):
    vals = []
    for i, o in enumerate(out):
        vals.append(None if o is None else _g(rec, o, f"{r}[{M}{i}{M}]"))
    return vals


def _bw_stack(rec, t, info, g, out):
    axis = t.saved
    r = rec.new("r")
    rec.emit(f"{r} = tuple({g.name})" if axis == 0 else
             f"{r} = tuple(np.moveaxis({g.name}, {axis!r}, 0))")
    return _pieces(rec, r, out)


def _bw_concat(rec, t, info, g, out):
    """np.split's pieces are views of g; slicing g makes the same views (same offset,
    shape and strides), without np.split's Python."""
    axis, offsets = t.saved
    bounds = [None] + [int(o) for o in offsets] + [None]
    lead = ":, " * (axis % g.real.ndim)
    vals = []
    for i, o in enumerate(out):
        lo, hi = bounds[i], bounds[i + 1]
        vals.append(None if o is None else _g(rec, o, f"{g.name}[{lead}{'' if lo is None else lo}"
                                                      f":{'' if hi is None else hi}]"))
    return vals


def _expand_src(g, shape, axis, keepdims):
    """ops.reduce._expand as source."""
    if keepdims:
        return g
    if axis is None:
        return f"{g}.reshape({(1,) * len(shape)!r})"
    return f"np.expand_dims({g}, {axis!r})"


def _bw_sum(rec, t, info, g, out):
    shape, axis, keepdims = t.saved
    return [_g(rec, out[0], f"np.broadcast_to({_expand_src(g.name, shape, axis, keepdims)}, "
                            f"{shape!r})")]


def _bw_mean(rec, t, info, g, out):
    shape, axis, keepdims = t.saved
    n = np.prod([shape[i] for i in axis]) if axis is not None else np.prod(shape)
    k = rec.const(g.real.dtype.type(n))
    return [_g(rec, out[0], f"np.broadcast_to({_expand_src(g.name, shape, axis, keepdims)} / "
                            f"{k}, {shape!r})")]


BACKWARD = {
    "add": _bw_add, "sub": _bw_sub, "mul": _bw_mul, "div": _bw_div,
    "neg": _unary("-{g}"), "exp": _unary("{g} * {y}"), "log": _unary("{g} / {a}"),
    "tanh": _bw_tanh, "sigmoid": _unary("{g} * {y} * (1 - {y})"),
    "relu": _unary("{g} * ({y} > 0)"), "sqrt": _unary("{g} / (2 * {y})"),
    "cast": _bw_cast, "where": _bw_where, "matmul": _bw_matmul, "linear": _bw_linear,
    "linear_add": _bw_linear,
    "getitem": _bw_getitem, "reshape": _bw_reshape, "squeeze": _bw_reshape,
    "expand_dims": _bw_reshape, "transpose": _bw_transpose, "stack": _bw_stack,
    "concat": _bw_concat, "sum": _bw_sum, "mean": _bw_mean,
    "cross_entropy": _bw_cross_entropy,
}


class _Stub:
    """What an op's backward may read of a tensor: ._data (and .data, for an op written
    against the property), .requires_grad (and ctx.saved), and ctx.xp, the array namespace
    of a first-order backward (NumPy, as Tensor's)."""
    __slots__ = ("_data", "data", "requires_grad", "saved", "parents", "op", "scope", "seq",
                 "_meta", "grad")
    xp = ops.xp


def _stub(t, parents):
    s = _Stub()
    s._data = s.data = s.saved = s._meta = s.grad = None
    s.requires_grad, s.op, s.scope, s.seq = t.requires_grad, t.op, t.scope, t.seq
    s.parents = parents
    return s


def run_generic(backward, ctx, g, data, saved, arrays):
    """An op's own backward on a stand-in context that holds this replay's arrays."""
    ctx._data = ctx.data = data
    ctx.saved = saved
    for p, a in zip(ctx.parents, arrays):
        p._data = p.data = a
    try:
        return backward(ctx, g)
    finally:
        ctx._data = ctx.data = ctx.saved = None
        for p in ctx.parents:
            p._data = p.data = None


def _generic(rec, t, info, g, out):
    if info.saved is None and t.op.ufunc is None:
        raise Poison(f"{t.op.name}: no saved value to replay its backward with")
    ctx = _stub(t, tuple(_stub(p, ()) for p in t.parents))
    r = rec.new("r")
    saved = info.saved or "None"
    rec.emit(f"{r} = {rec.const(run_generic)}({rec.const(t.op.backward)}, {rec.const(ctx)}, "
             f"{g.name}, {info.name}, {saved}, ({''.join(i + ', ' for i in info.ins)}))")
    vals = []
    for i, o in enumerate(out):
        if o is None:
            vals.append(None)
        elif type(o) is Outer:
            if o.acc is not None or len(o.a) != 1:
                raise Poison(f"{t.op.name}: a folded Outer from a generic backward")
            a = _g(rec, o.a[0], f"{r}[{i}].a[0]")
            b = _g(rec, o.b[0], f"{r}[{i}].b[0]")
            vals.append(SymOuter(rec, a, b))
        elif type(o) is Scatter:
            ix = rec.new("ix")
            rec.emit(f"{ix} = {r}[{i}].index")
            vals.append(SymScatter(ix, o.index, _g(rec, o.values, f"{r}[{i}].values"), o.shape,
                                   o.repeats))
        elif isinstance(o, (ndarray, np.generic)):
            vals.append(_g(rec, o, f"{r}[{M}{i}{M}]"))
        else:
            raise Poison(f"{t.op.name}: a gradient of type {type(o).__name__} compile cannot "
                         f"replay")
    return vals


def backward(rec, t, info, g, out):
    """Emit the backward of node t given its gradient g; out is what t.op.backward returned."""
    name = t.op.name
    emitter = BACKWARD.get(name)
    vals = None
    if emitter is not None and active(name, "backward"):
        vals = emitter(rec, t, info, g, out)
    if vals is None:
        vals = _generic(rec, t, info, g, out)
    return _same_pattern(out, vals)
