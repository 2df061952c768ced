"""One maker per kind of statement: each picks arguments that fit, emits, and says if it did."""
import numpy as np

from . import forms
from .forms import BIG_ROWS, MAX_SIZE
from .programs import Ref

ARITH = ("add", "sub", "mul", "div", "pow")


def arith(b, op=None):
    op = op or b.choose(ARITH, p=[0.25, 0.2, 0.3, 0.12, 0.13])
    a = b.pick()
    if op == "div":
        return _div(b, a)
    if op == "pow":
        return _pow(b, a)
    u = b.rng.random()
    if u < 0.2:
        args = (Ref(a), b.number())
    elif u < 0.32:
        args = (b.number(), Ref(a))
    elif u < 0.42:
        args = (Ref(a), Ref(a))                    # x * x: one value twice in one op
    else:
        other = b.pick(b.broadcasts_with(b.shape(a)))
        args = (Ref(a), Ref(other)) if b.coin(0.5) else (Ref(other), Ref(a))
    return b.emit(op, args)


def _div(b, a):
    if b.kinks:
        return b.emit("div", (Ref(a), b.choose([2.0, -2.0, 0.5, 4.0])))
    u = b.rng.random()
    if u < 0.3:
        return b.emit("div", (Ref(a), b.choose([0.5, -0.7, 1.3, 2.0, -3.0])))
    if u < 0.5:
        a = b.away_from_zero(a, 0.3)
        return a and b.emit("div", (b.number(), Ref(a)))
    d = b.pick(b.broadcasts_with(b.shape(a)))
    d = b.away_from_zero(d, 0.3)
    return d and b.emit("div", (Ref(a), Ref(d)))


def _pow(b, a):
    u = b.rng.random()
    if b.kinks:        # at 0 only where the derivative is defined: exponents 0 or ≥ 1
        if u < 0.5:
            return b.emit("pow", (Ref(a), b.choose([0, 1, 2, 3, 0.0, 2.0])))
        base = a if np.min(b.vals[a]) >= 0 else b.emit("abs", (Ref(a),))
        if base is None:
            return None
        if u < 0.75:
            return b.emit("pow", (0.0, Ref(base)), tag="0 ** u")
        e = b.pick(b.broadcasts_with(b.shape(base)))
        ev, bv = np.broadcast_arrays(b.vals[e], b.vals[base])
        if np.any((bv == 0) & (ev != 0) & (ev < 1)) or np.any(ev < 0):
            return None
        return b.emit("pow", (Ref(base), Ref(e)))
    if u < 0.45:
        k = b.choose([2, 3, 0.5, 1.5, -1.0, 0, 2.5, -0.5, 2.0])
        if float(k).is_integer() and k < 0:
            a = b.away_from_zero(a, 0.3)
        elif not float(k).is_integer():
            a = b.positive(a)
        return a and b.emit("pow", (Ref(a), k))
    if u < 0.65:
        return b.emit("pow", (b.choose([2.0, 0.5, 1.7, 3.0]), Ref(a)))
    e = b.pick(b.broadcasts_with(b.shape(a)))
    a = b.positive(a)
    return a and b.emit("pow", (Ref(a), Ref(e)))


def extremum(b, op=None):
    """maximum/minimum of two tensors, or of a tensor and a number on either side."""
    op = op or b.choose(["maximum", "minimum"])
    a = b.pick()
    u = b.rng.random()
    if u < 0.45:
        other = b.pick(b.broadcasts_with(b.shape(a)))
        if not b.kinks:
            d = np.subtract(*np.broadcast_arrays(b.vals[a], b.vals[other]))
            c = b.offset(d, 0.05, -0.5, 0.5)
            if c is None:
                return None
            if c:
                other = b.emit("add", (Ref(other), c), tag="shift off a tie")
        args = (Ref(a), Ref(other)) if other else None
    else:
        c = b.offset(b.vals[a], 0.05)
        args = None if c is None else (Ref(a), c) if u < 0.75 else (c, Ref(a))
    return args and b.emit(op, args)


def where(b):
    a = b.pick()
    sa = b.shape(a)
    if b.coin(0.5):                                # a condition computed from a value
        u = b.pick(b.broadcasts_with(sa))
        c = b.offset(b.vals[u], 0.05)
        cond = None if c is None else b.emit("gt", (Ref(u), c))
        cond = cond and Ref(cond)
    else:
        shape = forms.broadcast_variant(b.rng, sa)
        cond = np.asarray(b.rng.random(shape) < 0.5)
    if cond is None:
        return None
    u = b.rng.random()
    if u < 0.2:
        args = (cond, Ref(a), b.number())
    elif u < 0.35:
        args = (cond, b.number(), Ref(a))
    else:
        other = b.pick(b.broadcasts_with(sa))
        args = (cond, Ref(a), Ref(other))
    return b.emit("where", args)


UNARY = ("exp", "log", "tanh", "sigmoid", "relu", "sqrt", "abs", "neg", "pos")
SPELLINGS = {"exp": ["", "mt."], "log": ["", "mt."], "sqrt": ["", "mt."], "abs": ["", "mt."],
             "tanh": ["", "mt.", "F."], "sigmoid": ["", "mt.", "F."], "relu": ["", "mt.", "F."]}


def unary(b, op=None):
    kink_free = ("relu", "abs", "neg", "pos")
    op = op or b.choose(kink_free if b.kinks else UNARY)
    a = b.pick()
    if op == "exp" and np.max(b.vals[a]) > 2.5:
        return None
    if op in ("log", "sqrt"):
        a = b.positive(a)
    if op in ("relu", "abs"):
        a = b.away_from_zero(a, 0.05)
    name = b.choose(SPELLINGS[op]) + op if op in SPELLINGS else op
    return a and b.emit(name, (Ref(a),))


def clip(b):
    a = b.pick()
    x = b.vals[a]
    lo, hi = b.offset(x, 0.05), b.offset(x, 0.05)
    if lo is None or hi is None:
        return None
    lo, hi = min(lo, hi), max(lo, hi)
    u = b.rng.random()
    if u < 0.25:
        lo = None
    elif u < 0.5:
        hi = None
    elif hi - lo < 0.1:
        return None
    return b.emit(b.choose(["clip", "mt.clip"]), (Ref(a),), {"lo": lo, "hi": hi})


def roundtrip(b):
    return b.emit("roundtrip", (Ref(b.pick()),))


def reduce(b, op=None):
    op = op or b.choose(("sum", "max", "min") if b.kinks else ("sum", "mean", "max", "min"))
    a = b.pick()
    name = op if b.coin(0.7) else f"mt.{op}"
    for _ in range(4):                 # max/min: another axis form if this one has a near-tie
        attrs = {"axis": forms.axis_arg(b.rng, len(b.shape(a))), "keepdims": b.coin(0.4)}
        ax = attrs["axis"]
        out = b.emit(name, (Ref(a),), attrs, tag="axis " + ("None" if ax is None else
                                                        type(ax).__name__))
        if out:
            return out
    return None


def softmax(b, op=None):
    op = op or b.choose(["softmax", "log_softmax"])
    a = b.pick(lambda s: max(s, default=1) > 1) if b.coin(0.8) else b.pick(lambda s: len(s) >= 1)
    if a is None:
        a = b.leaf(forms.random_shape(b.rng, max_dims=1) + (int(b.rng.integers(2, 5)),))
    s = b.shape(a)
    wide = [i for i, n in enumerate(s) if n > 1]
    axis = forms.one_axis(b.rng, len(s))
    if wide and b.coin(0.8):          # mostly along an axis of size > 1 (else y is constant)
        axis = b.choose(wide)
        axis = axis - len(s) if b.coin(0.4) else axis
    return b.emit(op, (Ref(a),), {"axis": axis})


def _matrix(b):
    """A 2-D value (N, C), one made by reshaping a value of size ≥ 2, or a new leaf."""
    z = b.pick(lambda s: len(s) == 2 and (s[1] > 1 or b.coin(0.2)))
    if z is not None and b.coin(0.8):
        return z
    z = b.pick(lambda s: int(np.prod(s)) >= 2)
    if z is None:
        return b.leaf((int(b.rng.integers(1, 4)), int(b.rng.integers(2, 5))))
    n = int(np.prod(b.shape(z)))
    d = b.choose([d for d in range(1, n) if n % d == 0])     # C = n // d ≥ 2 classes
    return b.emit("reshape", (Ref(z),), {"shape": (d, n // d)})


def losses(b, op=None):
    op = op or b.choose(["nll_loss", "mse_loss"] if b.kinks else
                        ["cross_entropy", "nll_loss", "mse_loss"])
    reduction = b.choose(["mean", "sum", "none"])
    if b.kinks and reduction == "mean":
        reduction = "sum"
    if op == "mse_loss":
        a = b.pick()
        other = b.pick(lambda s: s == b.shape(a), exclude=(a,))
        if other is None or b.coin(0.4):
            target = np.asarray(np.round(b.rng.uniform(-1, 1, b.shape(a)), 2))
            if b.kinks:
                target = np.asarray(b.rng.integers(-2, 3, b.shape(a)) * 0.5)
        else:
            target = Ref(other)
        return b.emit(op, (Ref(a), target), {"reduction": reduction})
    z = _matrix(b)
    if z is None:
        return None
    if op == "nll_loss" and b.coin(0.5) and not b.kinks:
        z = b.emit("log_softmax", (Ref(z),), {"axis": b.choose([1, -1])})
        if z is None:
            return None
    n, c = b.shape(z)
    targets = b.rng.integers(0, c, n)
    return b.emit(op, (Ref(z), targets), {"reduction": reduction})


def matmul(b):
    """1-D·1-D, matrix·vector, vector·matrix, matrix·matrix and batched, either side new."""
    a = b.pick(lambda s: 1 <= len(s) <= 3)
    if a is None:
        return None
    sa, m, batch = b.shape(a), int(b.rng.integers(1, 5)), int(b.rng.integers(1, 4))
    left = b.coin(0.7)
    k = sa[-1] if left else (sa[0] if len(sa) == 1 else sa[-2])
    if left:
        shapes = [(k,), (k, m), (batch if len(sa) < 3 else b.choose([sa[0], 1]), k, m)]
    else:
        shapes = [(k,), (m, k), (batch if len(sa) < 3 else b.choose([sa[0], 1]), m, k)]
    want = b.choose(shapes, p=[0.3, 0.5, 0.2])
    other = b.pick(lambda s: s == want)
    if other is None or b.coin(0.4):
        other = b.leaf(want)
    args = (Ref(a), Ref(other)) if left else (Ref(other), Ref(a))
    return b.emit(b.choose(["matmul", "mt.matmul"], p=[0.7, 0.3]), args)


def _weight(b, k, share=0.6):
    """A (out, k) weight: an existing one of that width (shared) or a new leaf."""
    shared = [w for w in b.weights if b.shape(w)[1] == k]
    if shared and b.coin(share):
        return b.choose(shared), "shared weight"
    return b.leaf((int(b.rng.integers(1, 5)), k), weight=True), None


def _bias(b, out_shape):
    o = out_shape[-1]
    options = [None, (o,), (1,), out_shape, (1,) * (len(out_shape) - 1) + (o,),
               (2,) + (1,) * len(out_shape)]           # the last makes the output larger
    shape = b.choose(options, p=[0.35, 0.3, 0.05, 0.12, 0.1, 0.08])
    if shape is None:
        return None
    found = b.pick(lambda s: s == shape)
    return Ref(found if found is not None and b.coin(0.3) else b.leaf(shape))


def linear(b, x=None, w=None):
    x = x or b.pick(lambda s: 1 <= len(s) <= 3)
    if x is None:
        return None
    k = b.shape(x)[-1]
    tag = "shared weight" if w else None
    if w is None:
        w, tag = _weight(b, k)
    bias = _bias(b, b.shape(x)[:-1] + (b.shape(w)[0],))
    out = b.emit("linear", (Ref(x), Ref(w)) + ((bias,) if bias else ()), tag=tag)
    if out and tag is None and b.coin(0.4):             # the same weight in a second call
        x2 = b.pick(lambda s: 1 <= len(s) <= 3 and s[-1] == k, exclude=(x,))
        linear(b, x2 or b.leaf((int(b.rng.integers(1, 4)), k)), w)
    return out


def linear_add(b):
    """x Wᵀ plus a whole addend of the product's shape (a recurrent step's precomputed row),
    or one that broadcasts into it; the weight sometimes shared with a linear call."""
    x = b.pick(lambda s: 1 <= len(s) <= 3)
    if x is None:
        return None
    w, tag = _weight(b, b.shape(x)[-1])
    out = b.shape(x)[:-1] + (b.shape(w)[0],)
    shape = b.choose([out, out[-1:], (1,) * (len(out) - 1) + out[-1:]], p=[0.6, 0.2, 0.2])
    found = b.pick(lambda s: s == shape)
    addend = found if found is not None and b.coin(0.4) else b.leaf(shape)
    return b.emit("linear_add", (Ref(x), Ref(w), Ref(addend)), tag=tag)


def big_linear(b):
    """A linear call of ≥ 4,096 rows (a broadcast input) whose weight a second call shares."""
    k = int(b.rng.integers(1, 4))
    w, _ = _weight(b, k, share=0.8)
    v = b.pick(lambda s: s in ((k,), (1, k))) or b.leaf((k,))
    rows = b.emit("broadcast_to", (Ref(v),), {"shape": (b.choose(BIG_ROWS), k)}, big=True)
    y = rows and b.emit("linear", (Ref(rows), Ref(w)), big=True, tag="big linear")
    z = y and b.emit("mean", (Ref(y),), {"axis": 0, "keepdims": b.coin(0.3)})
    x2 = b.pick(lambda s: len(s) in (1, 2) and s[-1] == k) or b.leaf((2, k))
    return z and b.emit("linear", (Ref(x2), Ref(w)), tag="shared weight")


def reshape(b):
    a = b.pick()
    if b.coin(0.2):
        return b.emit("flatten", (Ref(a),))
    shape = b.choose(forms.reshape_targets(b.shape(a)))
    return b.emit("reshape", (Ref(a),), {"shape": shape})


def transpose(b):
    a = b.pick(lambda s: len(s) >= 2) or b.pick()
    nd = len(b.shape(a))
    if b.coin(0.3):
        return b.emit("T", (Ref(a),))
    axes = tuple(int(x) - nd if b.coin(0.4) else int(x) for x in b.rng.permutation(nd))
    return b.emit("transpose", (Ref(a),), {"axes": axes})


def squeeze(b):
    a = b.pick(lambda s: 1 in s) or b.pick()
    s = b.shape(a)
    ones = [i for i, n in enumerate(s) if n == 1]
    axis = None
    if ones and b.coin(0.7):
        axis = b.choose(ones)
        axis = axis - len(s) if b.coin(0.4) else axis
        if b.coin(0.3):
            axis = tuple(i for i in ones if b.coin(0.7)) or (ones[0],)
    return b.emit("squeeze", (Ref(a),), {"axis": axis})


def expand_dims(b):
    a = b.pick()
    return b.emit("expand_dims", (Ref(a),), {"axis": forms.one_axis(b.rng, len(b.shape(a)), 1)})


def broadcast_to(b):
    a = b.pick()
    return b.emit("broadcast_to", (Ref(a),),
                  {"shape": forms.broadcast_target(b.rng, b.shape(a), MAX_SIZE)})


def getitem(b, form=None):
    a = (b.pick(lambda s: len(s) >= 2) if b.coin(0.5) else None) or b.pick()
    form, ix = forms.index_expr(b.rng, b.shape(a), form)
    return b.emit("getitem", (Ref(a),), {"index": ix}, tag=form)


def stack(b):
    a = b.pick()
    s = b.shape(a)
    ts = [a] + [b.pick(lambda t: t == s) for _ in range(int(b.rng.integers(1, 3)))]
    return b.emit("stack", tuple(Ref(t) for t in ts), {"axis": forms.one_axis(b.rng, len(s), 1)})


def concat(b):
    a = b.pick(lambda s: len(s) >= 1)
    if a is None:
        return None
    s = b.shape(a)
    axis = forms.one_axis(b.rng, len(s))
    ax = axis % len(s)

    def fits(t):
        return len(t) == len(s) and all(x == y for i, (x, y) in enumerate(zip(t, s)) if i != ax)

    ts = [a] + [b.pick(fits) for _ in range(int(b.rng.integers(1, 3)))]
    return b.emit("concat", tuple(Ref(t) for t in ts), {"axis": axis})


def split(b):
    a = b.pick(lambda s: any(n >= 2 for n in s))
    if a is None:
        return None
    s = b.shape(a)
    ax = b.choose([i for i, n in enumerate(s) if n >= 2])
    n = s[ax]
    if b.coin(0.5):
        sections = b.choose([k for k in range(2, n + 1) if n % k == 0])
        count = sections
    else:
        sections = sorted({int(i) for i in b.rng.integers(1, n, int(b.rng.integers(1, 3)))})
        count = len(sections) + 1
    axis = ax - len(s) if b.coin(0.4) else ax
    return b.emit("split", (Ref(a),), {"sections": sections, "axis": axis}, n_out=count)


MAKERS = [  # (maker, weight, weight in the kink pass, the registered ops it may record)
    (arith, 14, 14, {"add", "sub", "mul", "div", "pow"}),
    (extremum, 5, 8, {"maximum", "minimum"}),
    (where, 4, 3, {"where"}),
    (unary, 14, 8, {"exp", "log", "tanh", "sigmoid", "relu", "sqrt", "abs", "neg"}),
    (clip, 3, 5, {"clip"}),
    (roundtrip, 2, 1, {"cast"}),
    (reduce, 10, 10, {"sum", "mean", "max", "min"}),
    (softmax, 3, 0, {"softmax", "log_softmax"}),
    (losses, 5, 2, {"cross_entropy", "getitem", "neg", "sub", "mul"}),
    (matmul, 4, 3, {"matmul"}),
    (linear, 5, 3, {"linear"}),
    (linear_add, 2, 1, {"linear_add"}),
    (reshape, 4, 3, {"reshape"}),
    (transpose, 3, 2, {"transpose"}),
    (squeeze, 2, 1, {"squeeze"}),
    (expand_dims, 2, 1, {"expand_dims"}),
    (broadcast_to, 3, 3, {"broadcast_to"}),
    (getitem, 12, 6, {"getitem"}),
    (stack, 3, 2, {"stack"}),
    (concat, 3, 2, {"concat"}),
    (split, 2, 2, {"getitem"}),
]

# how to force a registered op: the maker and the argument that makes it record that op
FORCE = {**{op: (arith, op) for op in ARITH}, "maximum": (extremum, "maximum"),
         "minimum": (extremum, "minimum"), "where": (where, None), "clip": (clip, None),
         "cast": (roundtrip, None), "matmul": (matmul, None), "linear": (linear, None),
         "linear_add": (linear_add, None),
         "cross_entropy": (losses, "cross_entropy"), "reshape": (reshape, None),
         "transpose": (transpose, None), "squeeze": (squeeze, None),
         "expand_dims": (expand_dims, None), "broadcast_to": (broadcast_to, None),
         "getitem": (getitem, None), "stack": (stack, None), "concat": (concat, None),
         "scatter_add": (getitem, None),     # getitem's gradient: made by create_graph
         **{op: (unary, op) for op in ("exp", "log", "tanh", "sigmoid", "relu", "sqrt", "abs",
                                       "neg")},
         **{op: (reduce, op) for op in ("sum", "mean", "max", "min")},
         **{op: (softmax, op) for op in ("softmax", "log_softmax")}}


def draw_statement(b):
    makers = [m for m, w, wk, _ in MAKERS if (wk if b.kinks else w)]
    weights = [(wk if b.kinks else w) for m, w, wk, _ in MAKERS if (wk if b.kinks else w)]
    maker = b.choose(makers, p=weights)
    return maker(b)


def force_op(b, op):
    """Emit a statement that records the registered op `op` (the first one that draws)."""
    maker, arg = FORCE[op]
    for _ in range(50):
        if (maker(b, arg) if arg is not None else maker(b)):
            return
    raise RuntimeError(f"seed {b.seed}: could not draw a statement recording {op!r}")
