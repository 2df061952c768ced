"""One spec per registered op: how to call it through the public API, what to draw, and where.

test_ops.py and test_torch_parity.py iterate over SPECS; test_ops checks that SPECS and
microtensor.autograd.REGISTRY name the same ops, so a new op cannot skip its gradient check.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import assume, strategies as st
from hypothesis.extra import numpy as hnp

import microtensor as mt
import microtensor.functional as F
from microtensor import ops
from microtensor.ops.shape import _has_int_array
from microtensor.tensor import apply

MAX_DIMS, MAX_SIDE = 3, 4


# ---- value domains: fn(rng, shape) -> float64 array, away from kinks, poles and ties -----------

def real(rng, shape):
    return rng.uniform(-2, 2, shape)


def positive(rng, shape):
    """For log, sqrt and the base of pow: far from the pole at 0."""
    return rng.uniform(0.5, 2, shape)


def nonzero(rng, shape):
    """For a divisor: |b| ≥ 0.5."""
    return rng.choice((-1.0, 1.0), shape) * rng.uniform(0.5, 2, shape)


def away_from(*kinks, gap=0.1):
    """Uniform on (−2, 2), with values within `gap` of a kink pushed out by `gap`."""
    def domain(rng, shape):
        x = rng.uniform(-2, 2, shape)
        for k in kinks:
            x = np.where(np.abs(x - k) < gap, x + np.copysign(gap, x - k), x)
        return x
    return domain


def distinct(rng, shape):
    """Values at least 0.08 apart, so max/min have no ties within finite-difference reach."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.1 + rng.uniform(-0.01, 0.01, n)).reshape(shape)


def grid(offset):
    """Values within 0.05 of offset + 0.6k; grids 0.3 apart keep maximum/minimum off ties."""
    def domain(rng, shape):
        return offset + 0.6 * rng.integers(-3, 3, shape) + rng.uniform(-0.05, 0.05, shape)
    return domain


# ---- shapes and attributes: strategies of (input shapes, attrs) -------------------------------

def shapes(min_dims=0):
    return hnp.array_shapes(min_dims=min_dims, max_dims=MAX_DIMS, min_side=1, max_side=MAX_SIDE)


def broadcastable(n):
    return hnp.mutually_broadcastable_shapes(num_shapes=n, max_dims=MAX_DIMS, max_side=MAX_SIDE)


UNARY = shapes().map(lambda s: ((s,), {}))
BINARY = broadcastable(2).map(lambda b: (b.input_shapes, {}))
# vector·vector, matrix·vector, matrix·matrix and batched stacks with broadcast batch axes
MATMUL = hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=1,
                                           max_side=MAX_SIDE).map(lambda b: (b.input_shapes, {}))


def axis_of(ndim, extra=0):
    """One axis of a tensor with ndim axes (+extra for inserting one), possibly negative."""
    return st.integers(-ndim - extra, ndim - 1 + extra)


@st.composite
def reduction(draw):
    """axis None, an int (maybe negative) or a tuple of distinct axes; keepdims either way."""
    shape = draw(shapes())
    nd = len(shape)
    axes = [st.none()]
    if nd:
        axes += [axis_of(nd), st.lists(axis_of(nd), min_size=1, max_size=nd,
                                       unique_by=lambda a: a % nd).map(tuple)]
    return (shape,), {"axis": draw(st.one_of(axes)), "keepdims": draw(st.booleans())}


@st.composite
def along_axis(draw):
    shape = draw(shapes(min_dims=1))
    return (shape,), {"axis": draw(axis_of(len(shape)))}


@st.composite
def clip_case(draw):
    lo = draw(st.sampled_from([None, -0.5, 0.5]))
    hi = draw(st.sampled_from([None, 0.5, 1.0]).filter(
        lambda h: (lo is None) != (h is None) or (lo is not None and lo < h)))
    return (draw(shapes()),), {"lo": lo, "hi": hi}


@st.composite
def reshape_case(draw):
    shape = draw(shapes())
    n = int(np.prod(shape))
    d = draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    targets = [(n,), (-1,), shape[::-1], (1, n), shape + (1,), (d, n // d), (d, -1, 1)]
    return (shape,), {"shape": draw(st.sampled_from(targets))}


@st.composite
def transpose_case(draw):
    shape = draw(shapes())
    nd = len(shape)
    perm = st.permutations(range(nd)).flatmap(
        lambda p: st.tuples(*[st.sampled_from([a, a - nd]) for a in p]))
    return (shape,), {"axes": draw(st.none() | perm)}


@st.composite
def squeeze_case(draw):
    shape = draw(shapes())
    ones = [i for i, s in enumerate(shape) if s == 1]
    axis = st.none()
    if ones:
        axis |= st.sampled_from(ones + [i - len(shape) for i in ones])
        axis |= st.lists(st.sampled_from(ones), min_size=1, unique=True).map(tuple)
    return (shape,), {"axis": draw(axis)}


@st.composite
def expand_dims_case(draw):
    shape = draw(shapes())
    return (shape,), {"axis": draw(axis_of(len(shape), extra=1))}


@st.composite
def broadcast_to_case(draw):
    """An input shape that broadcasts to the target: leading axes dropped, some sides set to 1."""
    target = draw(shapes())
    lead = draw(st.integers(0, len(target)))
    shape = tuple(draw(st.sampled_from((1, s))) for s in target[lead:])
    return (shape,), {"shape": target}


def int_array(n, as_list=False):
    """Integer indices in [−n, n), the first repeated at the end (backward must add them up)."""
    lists = st.lists(st.integers(-n, n - 1), min_size=1, max_size=4).map(lambda v: v + v[:1])
    return lists if as_list else lists.map(np.array)


@st.composite
def getitem_case(draw):
    """ints, slices, None, Ellipsis, integer arrays with repeats and boolean masks."""
    shape = draw(shapes(min_dims=1))
    n = shape[0]
    kinds = [st.integers(-n, n - 1), st.slices(n),
             hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True),
             int_array(n), int_array(n, as_list=True),
             int_array(n).map(lambda v: v.reshape(-1, 1)),
             hnp.arrays(np.bool_, shape), hnp.arrays(np.bool_, (n,))]
    if len(shape) > 1:
        kinds += [st.tuples(st.just(Ellipsis), int_array(shape[-1])),
                  st.tuples(st.slices(n), int_array(shape[1]))]
    return (shape,), {"index": draw(st.one_of(kinds))}


@st.composite
def scatter_add_case(draw):
    """getitem's cases turned round: values of the indexed shape, added into zeros(shape)."""
    (shape,), attrs = draw(getitem_case())
    index = ops.normalize_index(attrs["index"])
    values = np.zeros(shape)[index].shape
    assume(np.prod(values) > 0)              # gradcheck needs an input with elements
    return (values,), {"index": index, "shape": shape}


def scatter_add(v, index, shape):
    """getitem's gradient as an op (no public function: create_graph makes it)."""
    repeats = type(index) is not int and _has_int_array(index)
    return apply(ops.ScatterAdd, v, index=index, shape=shape, repeats=repeats)


@st.composite
def stack_case(draw):
    shape = draw(shapes())
    return (shape,) * 3, {"axis": draw(axis_of(len(shape), extra=1))}


@st.composite
def concat_case(draw):
    """Three inputs that differ only along the joined axis."""
    shape = draw(shapes(min_dims=1))
    axis = draw(axis_of(len(shape)))
    sizes = draw(st.lists(st.integers(1, 3), min_size=3, max_size=3))
    ins = []
    for k in sizes:
        s = list(shape)
        s[axis] = k
        ins.append(tuple(s))
    return tuple(ins), {"axis": axis}


@st.composite
def linear_case(draw):
    """x of shape (…, in) with up to two leading axes, weight (out, in), and no bias, a bias
    (out,), or anything else that broadcasts against the product (torch accepts it too)."""
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=MAX_SIDE))
    n_in, n_out = draw(st.integers(1, MAX_SIDE)), draw(st.integers(1, MAX_SIDE))
    out = lead + (n_out,)
    bias = draw(st.sampled_from([None, (n_out,), (1,), out, (1,) * len(lead) + (n_out,)]))
    return (lead + (n_in,), (n_out, n_in)) + ((bias,) if bias else ()), {}


@st.composite
def linear_add_case(draw):
    """x (…, in), weight (out, in) and an addend the product's shape or broadcasting into it
    (a recurrent step's precomputed input row is the product's shape)."""
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=MAX_SIDE))
    n_in, n_out = draw(st.integers(1, MAX_SIDE)), draw(st.integers(1, MAX_SIDE))
    out = lead + (n_out,)
    addend = draw(st.sampled_from([out, (n_out,), (1,) * len(lead) + (n_out,), ()]))
    return (lead + (n_in,), (n_out, n_in), addend), {}


@st.composite
def cross_entropy_case(draw):
    n, c = draw(st.integers(1, MAX_SIDE)), draw(st.integers(1, MAX_SIDE))
    targets = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return ((n, c),), {"targets": targets,
                       "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}


@st.composite
def where_case(draw):
    cond_shape, a, b = draw(broadcastable(3)).input_shapes
    return (a, b), {"cond": draw(hnp.arrays(np.bool_, cond_shape))}


# ---- the specs ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """call(*tensors, **attrs) through the public API; case draws (shapes, attrs); one value
    domain per input; eps for gradcheck (larger only where forward rounds to float32)."""
    call: Callable
    case: st.SearchStrategy
    domains: tuple
    eps: float = 1e-6


def _roundtrip(a):
    """a cast to the other float dtype and back: both casts are ops, the result a's dtype."""
    other = np.float32 if a.dtype == np.float64 else np.float64
    return a.astype(other).astype(a.dtype)


SPECS = {
    "add": Spec(lambda a, b: a + b, BINARY, (real, real)),
    "sub": Spec(lambda a, b: a - b, BINARY, (real, real)),
    "mul": Spec(lambda a, b: a * b, BINARY, (real, real)),
    "div": Spec(lambda a, b: a / b, BINARY, (real, nonzero)),
    "pow": Spec(lambda a, b: a ** b, BINARY, (positive, real)),
    "maximum": Spec(mt.maximum, BINARY, (grid(0.0), grid(0.3))),
    "minimum": Spec(mt.minimum, BINARY, (grid(0.0), grid(0.3))),
    "where": Spec(lambda a, b, cond: mt.where(cond, a, b), where_case(), (real, real)),
    "matmul": Spec(lambda a, b: a @ b, MATMUL, (real, real)),
    "linear": Spec(F.linear, linear_case(), (real, real, real)),
    "linear_add": Spec(F.linear_add, linear_add_case(), (real, real, real)),
    "cross_entropy": Spec(lambda z, targets, reduction: F.cross_entropy(z, targets, reduction),
                          cross_entropy_case(), (real,)),
    "neg": Spec(lambda a: -a, UNARY, (real,)),
    "exp": Spec(lambda a: a.exp(), UNARY, (real,)),
    "log": Spec(lambda a: a.log(), UNARY, (positive,)),
    "tanh": Spec(lambda a: a.tanh(), UNARY, (real,)),
    "sigmoid": Spec(lambda a: a.sigmoid(), UNARY, (real,)),
    "relu": Spec(lambda a: a.relu(), UNARY, (away_from(0),)),
    "sqrt": Spec(lambda a: a.sqrt(), UNARY, (positive,)),
    "abs": Spec(lambda a: a.abs(), UNARY, (away_from(0),)),
    "clip": Spec(lambda a, lo, hi: a.clip(lo, hi), clip_case(), (away_from(-0.5, 0.5, 1.0),)),
    # f(x) = float64(float32(x)) is linear with slope 1 but rounds at 6e-8: a wider eps
    "cast": Spec(_roundtrip, UNARY, (real,), eps=1e-3),
    "sum": Spec(lambda a, axis, keepdims: a.sum(axis, keepdims), reduction(), (real,)),
    "mean": Spec(lambda a, axis, keepdims: a.mean(axis, keepdims), reduction(), (real,)),
    "max": Spec(lambda a, axis, keepdims: a.max(axis, keepdims), reduction(), (distinct,)),
    "min": Spec(lambda a, axis, keepdims: a.min(axis, keepdims), reduction(), (distinct,)),
    "softmax": Spec(lambda a, axis: F.softmax(a, axis=axis), along_axis(), (real,)),
    "log_softmax": Spec(lambda a, axis: F.log_softmax(a, axis=axis), along_axis(), (real,)),
    "reshape": Spec(lambda a, shape: a.reshape(shape), reshape_case(), (real,)),
    "transpose": Spec(lambda a, axes: a.T if axes is None else a.transpose(*axes),
                      transpose_case(), (real,)),
    "squeeze": Spec(lambda a, axis: a.squeeze(axis), squeeze_case(), (real,)),
    "expand_dims": Spec(lambda a, axis: a.expand_dims(axis), expand_dims_case(), (real,)),
    "broadcast_to": Spec(lambda a, shape: a.broadcast_to(shape), broadcast_to_case(), (real,)),
    "getitem": Spec(lambda a, index: a[index], getitem_case(), (real,)),
    "scatter_add": Spec(scatter_add, scatter_add_case(), (real,)),
    "stack": Spec(lambda a, b, c, axis: mt.stack([a, b, c], axis=axis), stack_case(),
                  (real, real, real)),
    "concat": Spec(lambda a, b, c, axis: mt.concat([a, b, c], axis=axis), concat_case(),
                   (real, real, real)),
}


# Cases every run checks whatever hypothesis draws: the layouts that matter most.
EDGES = [
    ("matmul", ((3,), (3,)), {}),
    ("matmul", ((2, 3), (3,)), {}),
    ("matmul", ((3,), (3, 2)), {}),
    ("matmul", ((2, 1, 2, 3), (4, 3, 2)), {}),            # broadcast batch axes
    ("matmul", ((3,), (2, 3, 2)), {}),
    ("linear", ((2, 3, 4), (2, 4), (2,)), {}),
    ("linear_add", ((3, 4), (2, 4), (3, 2)), {}),
    ("getitem", ((4, 3),), {"index": np.array([1, 1, 3, 1])}),
    ("getitem", ((4, 3),), {"index": (slice(None), [2, 0, 2])}),
    ("getitem", ((4, 3),), {"index": np.array([[True, False, True]] * 4)}),
    ("getitem", ((4, 3),), {"index": (None, Ellipsis, 1)}),
    ("getitem", ((4, 3),), {"index": (slice(3, None, -2), -1)}),
    ("scatter_add", ((4, 3),), {"index": np.array([1, 1, 3, 1]), "shape": (4, 3)}),
    ("scatter_add", ((2,),), {"index": (slice(3, None, -2), -1), "shape": (4, 3)}),
    ("transpose", ((2, 3, 4),), {"axes": (-1, 0, 1)}),
    ("sum", ((2, 3, 4),), {"axis": (0, -1), "keepdims": False}),
    ("mean", ((2, 3, 4),), {"axis": (-2, 0), "keepdims": True}),
    ("max", ((2, 3, 4),), {"axis": (0, 2), "keepdims": False}),
    ("min", ((2, 3, 4),), {"axis": -2, "keepdims": True}),
    ("squeeze", ((1, 3, 1),), {"axis": (0, 2)}),
    ("stack", ((2, 3),) * 3, {"axis": -1}),
    ("concat", ((2, 1), (2, 3), (2, 2)), {"axis": -1}),
    ("where", ((3, 1), (1, 4)), {"cond": np.array([True, False, True, False])}),
    ("broadcast_to", ((3, 1),), {"shape": (2, 3, 4)}),
    ("softmax", ((2, 3, 4),), {"axis": 1}),
    ("log_softmax", ((2, 3, 4),), {"axis": 0}),
    ("add", ((2, 1, 3), (4, 1)), {}),
    ("pow", ((2, 3), (3,)), {}),
]


@st.composite
def inputs(draw, spec):
    """(float64 arrays, attrs) for one call of spec; values from a seed hypothesis draws."""
    shapes_, attrs = draw(spec.case)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return [domain(rng, s) for domain, s in zip(spec.domains, shapes_)], attrs


def edge_inputs(name, shapes_):
    rng = np.random.default_rng(0)
    return [domain(rng, s) for domain, s in zip(SPECS[name].domains, shapes_)]


def ops_used(t):
    """Names of every op in the graph that made t (an iterative walk)."""
    seen, stack, names = set(), [t], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or t.op is None:
            continue
        seen.add(id(t))
        names.add(t.op.name)
        stack.extend(t.parents)
    return names
