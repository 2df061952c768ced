"""The statements a program may hold: each called in microtensor, in torch and printed, with its kinks."""
import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np

import microtensor as mt
import microtensor.functional as F

from .programs import index as index_src

try:
    import torch
    import torch.nn.functional as TF
except ImportError:            # the fuzzer then checks against finite differences only
    torch = TF = None

INF = float("inf")


@dataclass(frozen=True)
class Call:
    """mt(*args, **attrs) and torch(*args, **attrs) do the same thing; py(arg sources, **attrs)
    writes it as Python; uses: the registered ops it records; margin(*values, **attrs): the
    distance of its float64 inputs from the nearest kink or pole (∞ for a smooth call), which
    programs keep ≥ gap/2 outside the kink pass; may_reject: microtensor may refuse it at
    forward with a MicrotensorError for these input values (torch accepts them); defined(*values,
    **attrs): in the kink pass, whether the derivative exists there (pow at 0)."""
    mt: Callable
    torch: Callable
    py: Callable
    uses: tuple
    margin: Callable = None
    gap: float = 0.0
    may_reject: Callable = None
    defined: Callable = None


CALLS = {}


def call(name, mt_fn, torch_fn, py, uses, **kw):
    CALLS[name] = Call(mt_fn, torch_fn or mt_fn, py, tuple(uses), **kw)


def _kw(**attrs):
    """`, axis=1, keepdims=True` for the attributes that differ from their defaults."""
    defaults = {"axis": None, "keepdims": False, "reduction": "mean"}
    return "".join(f", {k}={v!r}" for k, v in attrs.items() if defaults.get(k, object()) != v)


def _arr(x):
    return np.asarray(x, dtype=float)


# ---- torch helpers: NumPy's conventions spelled in torch ---------------------------------

def _tt(x, like):
    """A number as a 0-d tensor of like's dtype (torch.maximum takes tensors only)."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=like.dtype)


def _dims(a, axis):
    if axis is None:
        return tuple(range(a.ndim))
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _t_getitem(a, index):
    """a[index] with NumPy's meaning: the flat positions NumPy picks, gathered by torch (torch
    has no negative steps and reads nested sequences its own way)."""
    where = np.arange(a.numel()).reshape(tuple(a.shape))[index]
    return a.reshape(-1)[torch.from_numpy(np.array(where, dtype=np.int64))]


def _bounds(n, sections):
    if isinstance(sections, int):
        return list(range(0, n + 1, n // sections))
    return [0, *sections, n]


def _t_split(a, sections, axis=0):
    b = _bounds(a.shape[axis], sections)
    return [a.narrow(axis, lo, hi - lo) for lo, hi in zip(b[:-1], b[1:])]


def _t_linear(x, w, b=None):
    if b is None or tuple(b.shape) == (w.shape[0],):
        return TF.linear(x, w, b)
    return TF.linear(x, w) + b             # a bias that broadcasts: torch adds it after


def _bias_grows_output(x, w, b=None):
    """A bias that broadcasts the product to a larger shape (issue 12: support or refuse)."""
    out = np.shape(x)[:-1] + np.shape(w)[:1]
    return b is not None and np.broadcast_shapes(out, np.shape(b)) != out


# ---- margins: how far the float64 inputs are from a kink or pole --------------------------

def _m_abs0(a, *_, **__):
    return float(np.min(np.abs(a)))


def _m_positive(a, *_, **__):
    return float(np.min(a))


def _m_divisor(a, b):
    return float(np.min(np.abs(b)))


def _m_pow(a, b):
    """Integer exponents ≥ 0 are polynomials; a negative one needs a ≠ 0; any other a > 0."""
    if not isinstance(a, np.ndarray):          # number ** tensor: smooth for a number > 0
        return INF if a > 0 else -INF
    if not isinstance(b, np.ndarray) and float(b).is_integer():
        return INF if b >= 0 else float(np.min(np.abs(a)))
    return float(np.min(a))


def _pow_defined(a, b):
    """Where d(aᵇ) is finite at a kink: an integer b ≥ 0 for any a; else a ≥ 0 with, where
    a = 0, b = 0 or b ≥ 1 (torch's masks give 0 there; a⁰·⁵ at 0 has no finite slope)."""
    if not isinstance(b, np.ndarray) and float(b).is_integer() and b >= 0:
        return True
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    return not np.any(a < 0) and bool(np.all((a > 0) | (b == 0) | (b >= 1)))


def _m_apart(a, b):
    return float(np.min(np.abs(_arr(a) - _arr(b))))


def _m_clip(a, lo=None, hi=None):
    return min(float(np.min(np.abs(a - v))) for v in (lo, hi) if v is not None)


def _m_extremum(a, axis=None, keepdims=False):
    """The smallest gap between the top two of any group reduced over (sign-free: call on
    −a for min); a group of one element has no kink."""
    a = np.asarray(a, dtype=float)
    axes = tuple(range(a.ndim)) if axis is None else (axis,) if isinstance(axis, int) else axis
    axes = tuple(x % max(a.ndim, 1) for x in axes)
    if a.ndim == 0:
        return INF
    rest = [i for i in range(a.ndim) if i not in axes]
    groups = np.transpose(a, rest + list(axes)).reshape(
        int(np.prod([a.shape[i] for i in rest])), -1)
    if groups.shape[1] < 2:
        return INF
    top = -np.sort(-groups, axis=1)
    return float(np.min(top[:, 0] - top[:, 1]))


# ---- arithmetic: tensors or numbers on either side ----------------------------------------

for _name, _fn, _sym, _margin, _gap in [
        ("add", operator.add, "+", None, 0), ("sub", operator.sub, "-", None, 0),
        ("mul", operator.mul, "*", None, 0), ("div", operator.truediv, "/", _m_divisor, 0.3),
        ("pow", operator.pow, "**", _m_pow, 0.3), ("matmul", operator.matmul, "@", None, 0)]:
    call(_name, _fn, None, lambda s, sym=_sym: f"{s[0]} {sym} {s[1]}", [_name],
         margin=_margin, gap=_gap, defined=_pow_defined if _name == "pow" else None)

call("mt.matmul", mt.matmul, lambda a, b: torch.matmul(a, b),
     lambda s: f"mt.matmul({s[0]}, {s[1]})", ["matmul"])
call("neg", lambda a: -a, None, lambda s: f"-{s[0]}", ["neg"])
call("pos", lambda a: +a, None, lambda s: f"+{s[0]}", [])
call("gt", lambda a, c: a > c, None, lambda s: f"{s[0]} > {s[1]}", [],
     margin=_m_apart, gap=0.05)

for _name in ("maximum", "minimum"):
    call(_name, getattr(mt, _name),
         lambda a, b, n=_name: getattr(torch, n)(_tt(a, b), _tt(b, a)),
         lambda s, n=_name: f"mt.{n}({s[0]}, {s[1]})", [_name], margin=_m_apart, gap=0.05)

call("where", mt.where, lambda c, a, b: torch.where(c, a, b),
     lambda s: f"mt.where({s[0]}, {s[1]}, {s[2]})", ["where"])

# ---- elementwise functions: as methods, as mt.f and (where it exists) as F.f --------------

def _unary(name, kink):
    """x.name(), mt.name(x) and F.name(x), one torch call for all three."""
    margin, gap = kink or (None, 0.0)

    def in_torch(a):
        return getattr(torch, name)(a)

    call(name, lambda a: getattr(a, name)(), in_torch, lambda s: f"{s[0]}.{name}()", [name],
         margin=margin, gap=gap)
    for module, prefix in ((mt, "mt"), (F, "F")):
        if hasattr(module, name):
            call(f"{prefix}.{name}", getattr(module, name), in_torch,
                 lambda s, p=prefix: f"{p}.{name}({s[0]})", [name], margin=margin, gap=gap)


for _name, _kink in {"exp": None, "log": (_m_positive, 0.3), "tanh": None, "sigmoid": None,
                     "relu": (_m_abs0, 0.05), "sqrt": (_m_positive, 0.3),
                     "abs": (_m_abs0, 0.05)}.items():
    _unary(_name, _kink)

call("clip", lambda a, lo=None, hi=None: a.clip(lo, hi),
     lambda a, lo=None, hi=None: torch.clamp(a, lo, hi),
     lambda s, lo=None, hi=None: f"{s[0]}.clip({lo!r}, {hi!r})", ["clip"],
     margin=_m_clip, gap=0.05)
call("mt.clip", lambda a, lo=None, hi=None: mt.clip(a, lo, hi),
     lambda a, lo=None, hi=None: torch.clamp(a, lo, hi),
     lambda s, lo=None, hi=None: f"mt.clip({s[0]}, {lo!r}, {hi!r})", ["clip"],
     margin=_m_clip, gap=0.05)
# a cast there and back: rounds to float32 in a float64 run (torch rounds the same way)
call("roundtrip", lambda a: a.astype(mt.float32 if a.dtype == np.float64 else mt.float64)
     .astype(a.dtype),
     lambda a: a.to(torch.float32 if a.dtype == torch.float64 else torch.float64).to(a.dtype),
     lambda s: f"{s[0]}.astype(OTHER).astype(DT)", ["cast"])

# ---- reductions: every axis form, as methods and as mt.f ----------------------------------

def _m_min(a, axis=None, keepdims=False):
    return _m_extremum(-np.asarray(a), axis)


def _reduction(name, torch_name, margin):
    """x.name(axis=…, keepdims=…) and mt.name(x, …); torch.amax/amin for max/min, which
    share the gradient between ties as ours do."""
    def in_torch(a, axis=None, keepdims=False):
        return getattr(torch, torch_name)(a, dim=_dims(a, axis), keepdim=keepdims)

    call(name, lambda a, axis=None, keepdims=False: getattr(a, name)(axis=axis, keepdims=keepdims),
         in_torch, lambda s, **k: f"{s[0]}.{name}({_kw(**k)[2:]})", [name],
         margin=margin, gap=0.05)
    call(f"mt.{name}", lambda a, axis=None, keepdims=False:
         getattr(mt, name)(a, axis=axis, keepdims=keepdims),
         in_torch, lambda s, **k: f"mt.{name}({s[0]}{_kw(**k)})", [name],
         margin=margin, gap=0.05)


for _args in [("sum", "sum", None), ("mean", "mean", None), ("max", "amax", _m_extremum),
              ("min", "amin", _m_min)]:
    _reduction(*_args)

# ---- the softmax family and the losses ----------------------------------------------------

call("softmax", lambda a, axis: F.softmax(a, axis=axis),
     lambda a, axis: torch.softmax(a, dim=axis),
     lambda s, axis: f"F.softmax({s[0]}, axis={axis})", ["softmax"])
call("log_softmax", lambda a, axis: F.log_softmax(a, axis=axis),
     lambda a, axis: torch.log_softmax(a, dim=axis),
     lambda s, axis: f"F.log_softmax({s[0]}, axis={axis})", ["log_softmax"])
call("cross_entropy", lambda z, t, reduction="mean": F.cross_entropy(z, t, reduction),
     lambda z, t, reduction="mean": TF.cross_entropy(z, t, reduction=reduction),
     lambda s, **k: f"F.cross_entropy({s[0]}, {s[1]}{_kw(**k)})", ["cross_entropy"])
call("nll_loss", lambda p, t, reduction="mean": F.nll_loss(p, t, reduction),
     lambda p, t, reduction="mean": TF.nll_loss(p, t, reduction=reduction),
     lambda s, **k: f"F.nll_loss({s[0]}, {s[1]}{_kw(**k)})", ["getitem", "neg"])
call("mse_loss", lambda a, b, reduction="mean": F.mse_loss(a, b, reduction),
     lambda a, b, reduction="mean": TF.mse_loss(a, b, reduction=reduction),
     lambda s, **k: f"F.mse_loss({s[0]}, {s[1]}{_kw(**k)})", ["sub", "mul"])
call("linear", lambda *a: F.linear(*a), _t_linear,
     lambda s: f"F.linear({', '.join(s)})", ["linear"], may_reject=_bias_grows_output)
call("linear_add", lambda x, w, c: F.linear_add(x, w, c), lambda x, w, c: TF.linear(x, w) + c,
     lambda s: f"F.linear_add({', '.join(s)})", ["linear_add"])

# ---- shapes: reshape, transpose, squeeze, expand, broadcast, index, join, split -----------

call("reshape", lambda a, shape: a.reshape(shape), lambda a, shape: a.reshape(shape),
     lambda s, shape: f"{s[0]}.reshape({', '.join(map(str, shape)) or '()'})", ["reshape"])
call("flatten", lambda a: a.flatten(), lambda a: a.reshape(-1),
     lambda s: f"{s[0]}.flatten()", ["reshape"])
call("transpose", lambda a, axes: a.transpose(*axes), lambda a, axes: a.permute(axes),
     lambda s, axes: f"{s[0]}.transpose({', '.join(map(str, axes))})", ["transpose"])
call("T", lambda a: a.T, lambda a: a.permute(tuple(reversed(range(a.ndim)))),
     lambda s: f"{s[0]}.T", ["transpose"])
call("squeeze", lambda a, axis=None: a.squeeze(axis),
     lambda a, axis=None: a.squeeze() if axis is None else a.squeeze(axis),
     lambda s, axis=None: f"{s[0]}.squeeze({'' if axis is None else axis})", ["squeeze"])
call("expand_dims", lambda a, axis: a.expand_dims(axis), lambda a, axis: a.unsqueeze(axis),
     lambda s, axis: f"{s[0]}.expand_dims({axis})", ["expand_dims"])
call("broadcast_to", lambda a, shape: a.broadcast_to(shape),
     lambda a, shape: a.broadcast_to(shape),
     lambda s, shape: f"{s[0]}.broadcast_to({shape!r})", ["broadcast_to"])
call("getitem", lambda a, index: a[index], _t_getitem,
     lambda s, index: f"{s[0]}[{index_src(index)}]", ["getitem"])
call("stack", lambda *ts, axis=0: mt.stack(list(ts), axis=axis),
     lambda *ts, axis=0: torch.stack(list(ts), dim=axis),
     lambda s, axis=0: f"mt.stack([{', '.join(s)}], axis={axis})", ["stack"])
call("concat", lambda *ts, axis=0: mt.concat(list(ts), axis=axis),
     lambda *ts, axis=0: torch.cat(list(ts), dim=axis),
     lambda s, axis=0: f"mt.concat([{', '.join(s)}], axis={axis})", ["concat"])
call("split", lambda a, sections, axis=0: mt.split(a, sections, axis=axis), _t_split,
     lambda s, sections, axis=0: f"mt.split({s[0]}, {sections!r}, axis={axis})", ["getitem"])


def registry_ops(names):
    """The registered ops that statements of these kinds record."""
    return {u for n in names for u in CALLS[n].uses}
