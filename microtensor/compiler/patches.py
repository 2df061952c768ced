"""The entry points swapped in while compile traces a call, and only then.

Eager code pays nothing for compile: its Tensor methods, `apply` and `run_backward` are the
plain ones except while a trace runs. During a trace (`recording()`), each entry point below
is replaced by one that calls the original, so fn's results stay eager's, and then tells the
Recorder what happened. They check a ContextVar first: another thread (or asyncio task) that
runs eager code meanwhile goes straight to the original. A recording failure never changes a
result: it poisons the trace (fn finishes eagerly, compile falls back for that signature).
"""
import contextlib
import contextvars
import sys
import threading
import types

import numpy as np

from .. import create_graph, creation, functional, functions, ops, optim
from ..nn import layers, module, utils
from ..tensor import Tensor, as_tensor
from .record import Poison
from .walk import record_backward

ndarray = np.ndarray
tensor_mod = sys.modules[Tensor.__module__]      # (mt.tensor is the factory function)
_recorder = contextvars.ContextVar("microtensor_compile_recorder", default=None)


def active():
    """The Recorder of this thread's trace, unless there is none, it is poisoned, or it is
    inside a call it records as a whole."""
    rec = _recorder.get()
    if rec is None or rec.depth or rec.poisoned is not None:
        return None
    return rec


def _safe(rec, fn, *args):
    try:
        fn(*args)
    except Poison as e:
        rec.poison(str(e))
    except Exception as e:                       # a bug in the recorder: never fn's problem
        rec.poison(f"compile could not record this ({type(e).__name__}: {e})")


# ---- ops ---------------------------------------------------------------------------------

def _unary(op, orig):
    def method(a):
        rec = active()
        t = orig(a)
        if rec is not None:
            _safe(rec, rec.record_op, op, (a,), {}, t)
        return t
    return method


def _binary(op, orig):
    def method(a, b):
        rec = active()
        if rec is None:
            return orig(a, b)
        if not isinstance(b, Tensor):
            b = as_tensor(b, a)                  # as the original does
        t = orig(a, b)
        _safe(rec, rec.record_op, op, (a, b), {}, t)
        return t
    return method


def _reflected(method):
    return lambda a, b: method(as_tensor(b, a), a)


def _apply(orig):
    def apply(op, *parents, **attrs):
        rec = active()
        t = orig(op, *parents, **attrs)
        if rec is not None:
            _safe(rec, rec.record_op, op, parents, attrs, t)
        return t
    return apply


def _compare(symbol, orig):
    def method(self, other):
        rec = active()
        res = orig(self, other)
        if rec is not None:
            _safe(rec, lambda: rec.record_array(
                res._data, f"np.asarray({rec.tensor_data(self)} {symbol} {rec.value(other)})"))
        return res
    return method


def _astype(orig):
    def astype(self, dtype):
        rec = active()
        res = orig(self, dtype)
        if rec is not None and res is not self and np.dtype(dtype).kind != "f":
            _safe(rec, lambda: rec.record_array(
                res._data, f"{rec.tensor_data(self)}.astype({rec.const(np.dtype(dtype))})"))
        return res
    return astype


def _init(orig):
    def __init__(self, data, requires_grad=False, dtype=None):
        rec = active()
        orig(self, data, requires_grad, dtype)
        if rec is not None:
            rec.seen[id(self)] = self
            src = data._data if isinstance(data, Tensor) else data
            if isinstance(src, ndarray):
                dt = "None" if dtype is None else rec.const(dtype)
                _safe(rec, lambda: rec.record_array(self._data,
                                                    f"np.array({rec.bind(src)}, dtype={dt})"))
    return __init__


_EXEMPT_READS = {creation.zeros_like.__code__, creation.ones_like.__code__}


def _read(name, orig):
    def method(self, *args, **kwargs):
        rec = active()
        if rec is not None and sys._getframe(1).f_code not in _EXEMPT_READS:
            rec.poison(f"fn reads a tensor's value ({name}) while it is traced")
        return orig(self, *args, **kwargs)
    return method


def _backward(roots, root_grads, retain_graph=False, capture=None, keep_grads=False):
    rec = active()
    if rec is None:
        return _ORIG["run_backward"](roots, root_grads, retain_graph, capture, keep_grads)
    return record_backward(rec, roots, root_grads, retain_graph, capture, keep_grads)


def _create_graph_walk(orig):
    """A create_graph backward is not recorded: its formulas read values (the masks of abs,
    clip, max, pow) that a replay would keep from the trace. fn runs eagerly instead."""
    def run_backward_graph(*args, **kwargs):
        rec = active()
        if rec is not None:
            rec.poison("fn differentiates with create_graph=True, which compile does not "
                       "replay (its backward formulas read values)")
        return orig(*args, **kwargs)
    return run_backward_graph


_grad_slot = Tensor.__dict__["grad"]


def _grad_set(self, value):
    rec = active()
    if rec is not None and getattr(self, "seq", None) is not None:  # unset: a tensor being made
        def record():
            target = rec.call_value(self)
            if value is None:
                rec.emit(f"{target}.grad = None")
            else:
                src = rec.lookup(value) if isinstance(value, ndarray) else None
                if src is None:
                    raise Poison("fn sets .grad to an array compile did not compute")
                rec.emit(f"{target}.grad = {src}")
        _safe(rec, record)
    _grad_slot.__set__(self, value)


_grad_property = property(lambda self: _grad_slot.__get__(self, Tensor), _grad_set)


# ---- data that is not a float tensor ------------------------------------------------------

def _validated(orig):
    """cross_entropy / nll_loss: the targets' checks run at every replay, as in eager
    (functional._targets is what both call, however the user bound them)."""
    def targets_(name, logp, targets):
        t = orig(name, logp, targets)
        rec = active()
        if rec is not None:
            def record():
                src = rec.lookup(t)
                if src is not None:
                    holder = types.SimpleNamespace(shape=logp.shape)
                    rec.emit(f"{rec.const(orig)}({name!r}, {rec.const(holder)}, {src})")
            _safe(rec, record)
        return t
    return targets_


def _one_hot(orig):
    def one_hot(indices, num_classes, dtype=np.float64):
        rec = active()
        out = orig(indices, num_classes, dtype)
        if rec is not None:
            def record():
                idx = np.asarray(indices._data if isinstance(indices, Tensor) else indices)
                src = rec.lookup(idx)
                if src is not None:
                    rec.record_array(out._data, f"{rec.const(orig)}({src}, {num_classes!r}, "
                                               f"{rec.const(dtype)})._data")
            _safe(rec, record)
        return out
    return one_hot


def _embedding(orig):
    def forward(self, indices):
        rec = active()
        if rec is not None:
            def record():
                idx = np.asarray(indices._data if isinstance(indices, Tensor) else indices)
                src = rec.lookup(idx)
                if src is not None:
                    rec.emit(f"{rec.const(layers.check_indices)}({src}, "
                             f"{self.num_embeddings!r})")
            _safe(rec, record)
        return orig(self, indices)
    return forward


def _condition(orig):
    """where's condition: its copy is recorded from the array it copies (functions._condition
    is what every `where` calls, however the user bound it)."""
    def condition(cond):
        c = orig(cond)
        rec = active()
        src = cond._data if isinstance(cond, Tensor) else cond
        if rec is not None and isinstance(src, ndarray):
            _safe(rec, lambda: rec.lookup(src) is not None and rec.record_array(
                c, f"np.array({rec.lookup(src)}, dtype=bool)"))
        return c
    return condition


def _dropout(orig):
    def dropout(x, p=0.5, training=True):
        rec = active()
        if rec is None or not 0 <= p < 1 or not training or p == 0:
            return orig(x, p, training)
        # MIRROR of functional.dropout: the draw is recorded, the mask is made from it
        x = as_tensor(x)
        draw = creation.generator().random(x.shape)
        mask = (draw >= p).astype(x.dtype) / x.dtype.type(1 - p)
        _safe(rec, lambda: rec.record_array(
            mask, f"({rec.bind(draw)} >= {p!r}).astype({rec.const(x.dtype)}) / "
                  f"{rec.const(x.dtype.type(1 - p))}"))
        return x * mask
    return dropout


DRAWS = {"random", "standard_normal", "normal", "uniform", "integers", "binomial",
         "exponential", "standard_exponential", "choice", "permutation", "beta", "gamma"}


class RecordingGenerator:
    """Stands for mt's generator during a trace: each draw is made, and recorded so that a
    replay draws again from the generator of that moment, in the same order."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        rec = active()
        if rec is None:
            return attr
        if name not in DRAWS:
            rec.poison(f"fn uses generator().{name} while it is traced")
            return attr

        def draw(*args, **kwargs):
            r = attr(*args, **kwargs)
            rec2 = active()
            if rec2 is not None:
                _safe(rec2, rec2.record_draw, name, args, kwargs, r)
            return r
        return draw


# ---- calls recorded as a whole ------------------------------------------------------------

def _whole(orig, prepare=None):
    def call(*args, **kwargs):
        rec = active()
        if rec is None:
            return orig(*args, **kwargs)
        if prepare is not None:
            args = prepare(rec, args, kwargs)
        rec.depth += 1
        try:
            r = orig(*args, **kwargs)
        finally:
            rec.depth -= 1
        _safe(rec, rec.record_call, orig, args, kwargs, r)
        return r
    return call


def _step_prepare(rec, args, kwargs):
    opt = args[0]
    if len(args) > 1 or kwargs.get("closure") is not None:
        rec.poison("optimizer.step(closure) inside fn")
    rec.mutable.update(id(p) for p in opt.params)
    return args


def _params_prepare(rec, args, kwargs):
    first = args[0]
    if not isinstance(first, (Tensor, list, tuple)):
        first = list(first)                      # a generator would be spent at replay
    return (first,) + tuple(args[1:])


# ---- installing ----------------------------------------------------------------------------

_ORIG = {"run_backward": tensor_mod.run_backward}
_UNARY = {"__neg__": ops.Neg, "exp": ops.Exp, "log": ops.Log, "tanh": ops.Tanh,
          "sigmoid": ops.Sigmoid, "relu": ops.Relu, "sqrt": ops.Sqrt, "abs": ops.Abs}
_BINARY = {"__add__": ops.Add, "__sub__": ops.Sub, "__mul__": ops.Mul,
           "__truediv__": ops.Div, "__pow__": ops.Pow, "__matmul__": ops.MatMul}
_COMPARE = {"__lt__": "<", "__le__": "<=", "__gt__": ">", "__ge__": ">=", "__eq__": "==",
            "__ne__": "!="}
_READS = ("item", "__bool__", "numpy", "tolist", "__array__")


def _patches():
    """[(owner, attribute, replacement)] for every entry point a trace swaps."""
    out = []
    T = Tensor
    for name, op in _UNARY.items():
        out.append((T, name, _unary(op, T.__dict__[name])))
    for name, op in _BINARY.items():
        patched = _binary(op, T.__dict__[name])
        out.append((T, name, patched))
        out.append((T, "__r" + name[2:], _reflected(patched)))
    for name, symbol in _COMPARE.items():
        out.append((T, name, _compare(symbol, T.__dict__[name])))
    for name in _READS:
        out.append((T, name, _read(name, T.__dict__[name])))
    out += [(T, "astype", _astype(T.__dict__["astype"])),
            (T, "__init__", _init(T.__dict__["__init__"])),
            (T, "grad", _grad_property),
            (tensor_mod, "run_backward", _backward),
            (create_graph, "run_backward_graph",
             _create_graph_walk(create_graph.run_backward_graph))]
    apply = _apply(tensor_mod.apply)
    for owner in (tensor_mod, functional, functions):
        out.append((owner, "apply", apply))
    out += [(functional, "_linear_no_bias", _binary(ops.Linear, functional._linear_no_bias)),
            (functional, "dropout", _dropout(functional.dropout)),
            (functional, "one_hot", _one_hot(functional.one_hot)),
            (functional, "_targets", _validated(functional._targets)),
            (layers.Embedding, "forward", _embedding(layers.Embedding.forward))]
    out += [(functions, "_condition", _condition(functions._condition)),
            (optim.Optimizer, "step", _whole(optim.Optimizer.step, _step_prepare)),
            (optim.Optimizer, "zero_grad", _whole(optim.Optimizer.zero_grad)),
            (module.Module, "zero_grad", _whole(module.Module.zero_grad)),
            (utils, "clip_grad_norm_", _whole(utils.clip_grad_norm_, _params_prepare)),
            (utils, "clip_grad_value_", _whole(utils.clip_grad_value_, _params_prepare))]
    return out


_lock = threading.Lock()
_installed = [0, None, None]       # traces running, saved originals, the generator proxy


@contextlib.contextmanager
def recording(rec):
    """Swap the entry points in (once for all concurrent traces) and make rec this
    context's recorder for the block."""
    with _lock:
        if _installed[0] == 0:
            saved = []
            for owner, name, new in _patches():
                saved.append((owner, name, owner.__dict__[name]))
                setattr(owner, name, new)
            _installed[1] = saved
            _installed[2] = RecordingGenerator(creation._rng)
            creation._rng = _installed[2]
        _installed[0] += 1
        proxy = _installed[2]
    token = _recorder.set(rec)
    try:
        yield
    finally:
        _recorder.reset(token)
        with _lock:
            _installed[0] -= 1
            if creation._rng is not proxy:
                rec.poison("fn replaces mt's generator (manual_seed) while it is traced")
            if _installed[0] == 0:
                for owner, name, old in reversed(_installed[1]):
                    setattr(owner, name, old)
                if creation._rng is proxy:
                    creation._rng = proxy._real
                _installed[1] = _installed[2] = None
