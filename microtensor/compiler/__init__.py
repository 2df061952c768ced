"""mt.compile: trace one call of a training step, then replay it as flat NumPy code (issue 17).

The first call of a signature runs fn eagerly while recording what it does (forward ops,
backward through the engine's recorded walk, whole calls such as optimizer.step()); the
record becomes the source of one Python function, the plan, of NumPy calls only: no Tensor,
no heap, no dict per op. A block of statements the record repeats (an unrolled step: T
bodies forward, T in reverse backward) is written once, as a loop over per-step lists
(reroll.py). Later calls whose guards hold run the plan. Its results are bitwise eager's:
the same NumPy calls on the same arrays in the same order, or where a cheaper form gives every
element the same bits, that form (a stack's rows read as a slice, an elementwise derivative
computed once for a stack, a row buffer indexed through a list of views, an elementwise op
writing over a dead input: each a FAST PATH in record.py or walk.py, its invariant beside it).

Guards. The cache key: grad mode; for every argument (tuples, lists and dicts are walked)
its kind, and a Tensor's or array's shape, dtype, strides and requires_grad; Python numbers,
strings and None by value; any other object by identity. Per plan: every tensor fn reaches
that existed before the call (parameters, buffers, a closure's tensors) by identity, with its
shape, dtype and requires_grad; each module fn reaches through its closure, globals, `self`
or arguments: its training flag and the identity of its parameters and submodules; and the
value of each argument array no op reads directly (see below). A failed guard traces again;
at most `cache_size` plans are kept (least recently used dropped), and a signature traced
more than `cache_size` times runs eagerly.

Binding. An array an op reads (or a leaf tensor's data, or an op's index / targets /
condition) is found again at replay as one of: an array the plan computes, an argument or a
view of one (read from this call's argument), a pre-existing tensor's .data (read again), or
an object the plan holds (a constant fn made, an array from its closure). An argument array
that no op reads directly, such as `lengths` that nn.unroll turns into masks or indices fn
turns into one-hot codes with its own NumPy, is guarded by value: a new value traces again.
What compile cannot see, and fn must not do: compute with the raw values of an argument or
of a tensor (`.data`, NumPy on an argument array) and feed the result to an op, or branch on
them — use the tensor methods that read values, which compile catches; Python state fn reads
outside its arguments (a global flag, a counter) is baked in at trace time.

Fallback. Reading a value during the trace (.item(), bool(t), .numpy(), .tolist(),
np.asarray(t)), a hook or retain_grad, keep_grads, a create_graph=True backward, a random number not used as an array by
an op, a write into a tensor's data outside ops and optimizer.step(), a returned tensor whose
graph is still live, or anything else the plan cannot hold: fn finishes eagerly (its results
are eager's), one CompileWarning says why, and calls with that signature run eagerly.
"""
import builtins
import functools
import typing
import warnings
from collections import OrderedDict

import numpy as np

from ..autograd import RELEASED
from ..mode import is_grad_enabled
from ..nn.module import Module
from ..optim import Optimizer
from ..tensor import Tensor, _leaf
from . import patches
from .record import Poison, Recorder

__all__ = ["compile", "Compiled", "CompileWarning"]
ndarray = np.ndarray
REROLL = True               # write a plan's repeated blocks as loops (reroll.py)


class CompileWarning(UserWarning):
    """mt.compile runs a function eagerly instead of replaying it (the message says why)."""


if typing.TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def compile(fn: "Callable[..., Any] | None" = None, *,  # noqa: A001  (as torch.compile)
            cache_size: int = 8) -> "Compiled | Callable[[Callable[..., Any]], Compiled]":
    """fn traced on its first call and replayed as flat NumPy code after (see the module
    docstring for its guards and fallback). Also a decorator: @mt.compile or
    @mt.compile(cache_size=4)."""
    if fn is None:
        return lambda f: Compiled(f, cache_size)
    return Compiled(fn, cache_size)


class Plan:
    """One traced call: its source, the compiled function and the guards beyond the key."""

    def __init__(self, source, fn, captured, modules, values):
        self.source, self.run = source, fn
        self.captured, self.modules, self.values = captured, modules, values

    def holds(self, flat):
        for t, shape, dtype, rg in self.captured:
            d = t._data
            if d.shape != shape or d.dtype != dtype or t.requires_grad is not rg:
                return False
        for m, training, params, children in self.modules:
            if m.training is not training or \
                    tuple(map(id, m._parameters.values())) != params or \
                    tuple(map(id, m._modules.values())) != children:
                return False
        for i, ref in self.values:
            a = flat[i]
            a = a._data if isinstance(a, Tensor) else a
            if a.tobytes() != ref:
                return False
        return True


class Compiled:
    """A function whose calls replay a traced plan where they can (mt.compile(fn))."""

    def __init__(self, fn, cache_size=8):
        if not callable(fn):
            raise TypeError(f"mt.compile: expected a function, got {type(fn).__name__}")
        if cache_size < 1:
            raise ValueError(f"mt.compile: cache_size must be >= 1, got {cache_size}")
        functools.update_wrapper(self, fn)
        self.fn, self.cache_size = fn, cache_size
        self.plans = OrderedDict()          # key -> [Plan]
        self.eager = {}                     # key -> why calls with it run eagerly
        self.trace_count = {}
        self.counts = {"replayed": 0, "traced": 0, "eager": 0}
        self.warned = False

    def __call__(self, *args, **kwargs):
        if patches._recorder.get() is not None:     # inside another trace: it records us
            return self.fn(*args, **kwargs)
        flat, key = signature(args, kwargs)
        plans = self.plans.get(key)
        if plans is not None:
            for plan in plans:
                if plan.holds(flat):
                    self.plans.move_to_end(key)
                    self.counts["replayed"] += 1
                    return plan.run(flat)
        if key in self.eager:
            self.counts["eager"] += 1
            return self.fn(*args, **kwargs)
        n = self.trace_count[key] = self.trace_count.get(key, 0) + 1
        if n > self.cache_size:
            self._fall_back(key, f"traced {n - 1} times for calls of one signature (an "
                                 f"argument guarded by value changes on every call?)")
            return self.fn(*args, **kwargs)
        return self._trace(key, flat, args, kwargs)

    @property
    def last_source(self):
        """The source of the most recently traced plan (for reading and debugging)."""
        for plans in reversed(self.plans.values()):
            return plans[-1].source
        return None

    def _fall_back(self, key, why):
        self.eager[key] = why
        self.plans.pop(key, None)
        self.counts["eager"] += 1
        if not self.warned:
            self.warned = True
            name = getattr(self.fn, "__qualname__", repr(self.fn))
            warnings.warn(f"mt.compile({name}): {why}; calls like this one run eagerly",
                          CompileWarning, stacklevel=3)

    def _trace(self, key, flat, args, kwargs):
        self.counts["traced"] += 1
        rec = Recorder(flat)
        modules, tensors = _discover(self.fn, flat)
        rec.guarded = {id(m) for m in modules}
        snaps = _snapshot(tensors, flat)
        with patches.recording(rec):
            out = self.fn(*args, **kwargs)
        try:
            if rec.poisoned is None:
                plan = self._plan(rec, out, flat, modules, snaps)
        except Poison as e:
            rec.poison(str(e))
        if rec.poisoned is not None:
            self._fall_back(key, rec.poisoned)
            return out
        self.plans.setdefault(key, []).append(plan)
        self.plans.move_to_end(key)
        while sum(len(p) for p in self.plans.values()) > self.cache_size:
            oldest = next(iter(self.plans))
            self.plans[oldest].pop(0)
            if not self.plans[oldest]:
                del self.plans[oldest]
        return out

    def _plan(self, rec, out, flat, modules, snaps):
        for name, unbound in rec.draws.items():
            if unbound:
                raise Poison("fn uses random numbers other than as an array an op reads "
                             "(only such draws can be replayed)")
        for _, t in rec.captured.values():
            snaps.setdefault(id(t), (t, rec.snapshots[id(t)][0], rec.snapshots[id(t)][1]))
        for t, data, copy in snaps.values():
            current = t._data if isinstance(t, Tensor) else t
            if current is not data:
                raise Poison("fn replaces the .data of a tensor (do it outside fn)")
            if copy is not None and id(t) not in rec.mutable and not np.array_equal(
                    current, copy, equal_nan=current.dtype.kind in "fc"):
                raise Poison("fn writes into a tensor's or an argument's data outside ops and "
                             "optimizer.step() (do it outside fn)")
        out_src = _output(rec, out)
        values = []
        for i, a in enumerate(flat):
            if isinstance(a, (Tensor, ndarray)) and i not in rec.received:
                values.append((i, (a._data if isinstance(a, Tensor) else a).tobytes()))
        captured = [(t, t._data.shape, t._data.dtype, t.requires_grad)
                    for _, t in rec.captured.values()]
        guards = [(m, m.training, tuple(map(id, m._parameters.values())),
                   tuple(map(id, m._modules.values()))) for m in modules]
        source = rec.finish_source(out_src, REROLL)
        ns = rec.ns
        ns["LEAF"] = _leaf
        exec(builtins_compile(source, f"<mt.compile plan of {self.__qualname__}>", "exec"), ns)
        keep = [t for t, *_ in captured] + [m for m, *_ in guards]
        ns["__keep__"] = keep
        return Plan(source, ns["plan"], captured, guards, values)


builtins_compile = builtins.compile


# ---- arguments -----------------------------------------------------------------------------

def signature(args, kwargs):
    """(the flat list of argument leaves the plan reads, the cache key)."""
    flat, spec = [], [is_grad_enabled()]
    _flatten(args, flat, spec)
    if kwargs:
        spec.append(tuple(kwargs))
        _flatten(tuple(kwargs.values()), flat, spec)
    return flat, tuple(spec)


def _flatten(x, flat, spec):
    if isinstance(x, Tensor):
        d = x._data
        flat.append(x)
        spec.append(("T", type(x), d.shape, d.dtype.str, d.strides, x.requires_grad))
    elif isinstance(x, ndarray):
        flat.append(x)
        spec.append(("A", x.shape, x.dtype.str, x.strides))
    elif isinstance(x, (tuple, list)):
        spec.append((type(x), len(x)))
        for e in x:
            _flatten(e, flat, spec)
    elif isinstance(x, dict):
        spec.append((dict, tuple(x)))
        for e in x.values():
            _flatten(e, flat, spec)
    elif x is None or isinstance(x, (bool, int, str)):
        spec.append((type(x), x))
    elif isinstance(x, float):
        spec.append((float, x.hex()))
    elif isinstance(x, np.generic):
        spec.append((type(x), x.tobytes()))
    else:
        flat.append(x)
        spec.append(("O", id(x)))


def _discover(fn, flat):
    """Modules and tensors fn reaches through its closure, globals, `self` and arguments
    (two levels of helper functions deep), for the guards and the write check."""
    roots = list(flat)
    seen_fns = set()

    def scan(f, depth):
        if id(f) in seen_fns or depth > 2:
            return
        seen_fns.add(id(f))
        if hasattr(f, "__self__"):
            roots.append(f.__self__)
        f = getattr(f, "__func__", f)
        if isinstance(f, functools.partial):
            roots.extend(f.args)
            roots.extend(f.keywords.values())
            scan(f.func, depth)
            return
        code = getattr(f, "__code__", None)
        if code is None:
            call = getattr(type(f), "__call__", None)
            if call is not None and not isinstance(f, type):
                roots.append(f)
            return
        for cell in f.__closure__ or ():
            try:
                roots.append(cell.cell_contents)
            except ValueError:
                pass
        g = f.__globals__
        roots.extend(g[n] for n in code.co_names if n in g)
        roots.extend(f.__defaults__ or ())
        for r in list(roots):
            if callable(r) and not isinstance(r, (type, Module, Tensor)) and \
                    hasattr(r, "__code__"):
                scan(r, depth + 1)
    scan(fn, 0)
    modules, tensors, seen = [], [], set()
    for r in roots:
        if isinstance(r, Module):
            for m in r.modules():
                if id(m) not in seen:
                    seen.add(id(m))
                    modules.append(m)
                    tensors.extend(p for p in m._parameters.values() if p is not None)
                    tensors.extend(b for b in m._buffers.values() if isinstance(b, Tensor))
        elif isinstance(r, Optimizer):
            tensors.extend(r.params)
        elif isinstance(r, Tensor):
            tensors.append(r)
        elif isinstance(r, (list, tuple)) and len(r) < 10_000:
            tensors.extend(x for x in r if isinstance(x, Tensor))
    return modules, tensors


def _snapshot(tensors, flat):
    """{id: (tensor or array, its data, a copy)} before the call, to catch writes into them."""
    snaps = {}
    for t in list(tensors) + [a for a in flat if isinstance(a, (Tensor, ndarray))]:
        if id(t) not in snaps:
            d = t._data if isinstance(t, Tensor) else t
            snaps[id(t)] = (t, d, d.copy())
    return snaps


# ---- outputs -------------------------------------------------------------------------------

def _output(rec, x):
    """Source that rebuilds fn's result at replay."""
    if isinstance(x, Tensor):
        for i, a in enumerate(rec.flat_args):
            if a is x:
                return f"ARGS[{i}]"
        if x.seq < rec.seq0:
            return rec.const(x)
        if x.requires_grad and x.op is not None and x.saved is not RELEASED:
            raise Poison("fn returns a tensor whose graph is still live (compile whole steps: "
                         "forward and backward inside fn)")
        if x.requires_grad and x.op is None:
            raise Poison("fn returns a tensor that requires grad made inside it")
        src = rec.lookup(x._data)
        if src is None:
            src = f"{rec.const(x._data)}.copy()"
        return f"LEAF({src})"
    if isinstance(x, ndarray):
        src = rec.lookup(x)
        if src is None:
            raise Poison("fn returns an array compile did not compute")
        return src
    if isinstance(x, tuple):
        return "(" + "".join(_output(rec, e) + ", " for e in x) + ")"
    if isinstance(x, list):
        return "[" + ", ".join(_output(rec, e) for e in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{rec.const(k)}: {_output(rec, v)}" for k, v in x.items()) + "}"
    if x is None or isinstance(x, (bool, str)):
        return repr(x)
    if isinstance(x, float) and id(x) in rec.names:
        return rec.names[id(x)]
    if isinstance(x, (int, float, np.generic)):
        raise Poison("fn returns a Python number (compile cannot tell how it was computed)")
    for i, a in enumerate(rec.flat_args):
        if a is x:
            return f"ARGS[{i}]"
    return rec.const(x)
