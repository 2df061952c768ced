"""The interpreter (the one place a program is run, in microtensor or torch), kink margins, comparisons."""
from dataclasses import dataclass, field

import numpy as np

import microtensor as mt

from .programs import Ref
from .vocab import CALLS, torch

TOL_TORCH = 1e-10        # float64 against torch, relative to each gradient's largest element
TOL_SAME = 1e-12         # two ways of getting one gradient (mt.grad, a second backward)
TOL_FLOAT32 = 2e-3       # a float32 run against the float64 one
TOL_FD = 1e-6            # a directional derivative against central differences
FD_STEP = 4e-4           # h of the Richardson-extrapolated central difference (h and h/2)

if torch is not None:
    torch.set_num_threads(1)       # the machine is shared; the programs are small


class StmtError(Exception):
    """A statement raised; `stmt` is the one and `args` its evaluated arguments."""

    def __init__(self, stmt, args, error):
        super().__init__(f"{stmt.op}: {type(error).__name__}: {error}")
        self.stmt, self.args, self.error = stmt, args, error


# ---- the interpreter: the one place a program is run -------------------------------------

class _MT:
    @staticmethod
    def leaf(v, dtype, requires_grad):
        return mt.tensor(np.asarray(v, dtype=dtype), requires_grad=requires_grad)

    @staticmethod
    def const(x, dtype):
        return np.asarray(x, dtype=dtype) if isinstance(x, np.ndarray) and x.dtype.kind == "f" \
            else x


class _Torch:
    @staticmethod
    def leaf(v, dtype, requires_grad):
        return torch.tensor(np.asarray(v), dtype=getattr(torch, dtype),
                            requires_grad=requires_grad)

    @staticmethod
    def const(x, dtype):
        if not isinstance(x, np.ndarray):
            return x
        if x.dtype.kind == "f":
            return torch.tensor(x, dtype=getattr(torch, dtype))
        return torch.from_numpy(x.astype(np.int64) if x.dtype.kind in "iu" else x.copy())


BACKENDS = {"mt": _MT, "torch": _Torch}


def execute(program, backend="mt", dtype="float64", values=None, requires_grad=True,
            replace=None, on_stmt=None, leaves=None):
    """Run the program; (env: name → tensor, loss). values: arrays for the leaves instead of
    their own; leaves: the leaf tensors themselves, made by the caller (a compiled step's
    arguments); replace: {op: callable} standing in for those calls; on_stmt(stmt, args, out)
    sees every statement. A statement that raises raises StmtError."""
    be = BACKENDS[backend]
    env = {}
    for i, leaf in enumerate(program.leaves):
        env[leaf.name] = leaves[i] if leaves is not None else \
            be.leaf(leaf.value if values is None else values[i], dtype, requires_grad)
    for s in program.stmts:
        fn = (replace or {}).get(s.op) or getattr(CALLS[s.op], backend)
        args = [env[a.name] if isinstance(a, Ref) else be.const(a, dtype) for a in s.args]
        try:
            out = fn(*args, **s.attrs)
        except Exception as e:
            raise StmtError(s, args, e) from e
        outs = out if isinstance(out, (list, tuple)) else [out]
        env.update(zip(s.outs, outs))
        if on_stmt is not None:
            on_stmt(s, args, out)
        if requires_grad and program.retain in s.outs:
            env[program.retain].retain_grad()
    loss = None
    for term in loss_terms(program, env, backend, dtype):
        loss = term if loss is None else loss + term
    return env, loss


def loss_terms(program, env, backend="mt", dtype="float64"):
    """The loss's terms (v · w).sum(), one per entry of program.loss, made from env."""
    be = BACKENDS[backend]
    return [(env[name] * be.const(w, dtype)).sum() for name, w in program.loss]


def near_kink(program):
    """The first statement whose float64 inputs come within half its gap of a kink (outside
    the kink pass) or leave where its derivative is defined (in it), as text; None if none."""
    found = []

    def watch(s, args, out):
        c = CALLS[s.op]
        if found:
            return
        raw = [np.asarray(a.data) if isinstance(a, mt.Tensor) else a for a in args]
        if program.kinks:
            if c.defined is not None and not c.defined(*raw, **s.attrs):
                found.append(f"{', '.join(s.outs)} = {s.op}(...) has no derivative there")
        elif c.margin is not None:
            m = c.margin(*raw, **s.attrs)
            if m < c.gap / 2:
                found.append(f"{', '.join(s.outs)} = {s.op}(...) is {m:.3g} from a kink")

    try:
        with mt.no_grad(), np.errstate(all="ignore"):
            execute(program, requires_grad=False, on_stmt=watch)
    except StmtError:           # microtensor's forward raised: check() says so in its place
        pass
    return found[0] if found else None


# ---- comparing ---------------------------------------------------------------------------

@dataclass
class Failure:
    kind: str             # what disagreed: "backward vs torch", "crash in backward: TypeError", …
    detail: str


@dataclass
class Report:
    program: object
    failures: list = field(default_factory=list)
    rejected: str = None  # why the program was not checked (microtensor refused it, …)
    expected: list = field(default_factory=list)    # reference values, for the printout

    @property
    def ok(self):
        return not self.failures

    @property
    def kinds(self):
        return list(dict.fromkeys(f.kind for f in self.failures))

    def fail(self, kind, detail):
        self.failures.append(Failure(kind, detail))


def fmt(a):
    a = np.asarray(a, dtype=float)
    flat = np.array2string(a.ravel()[:6], precision=6, separator=", ")
    return f"{flat}{'…' if a.size > 6 else ''} (shape {a.shape})"


def rel_error(got, want, floor):
    """max |got − want| over max(max |want|, floor); ∞ for a shape or nan/inf mismatch."""
    if got is None or want is None:
        return 0.0 if got is None and want is None else float("inf")
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape:
        return float("inf")
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    if not np.all(same | (np.isfinite(got) & np.isfinite(want))):
        return float("inf")
    d = np.where(same, 0.0, np.abs(got - want))
    return float(d.max(initial=0.0) / max(np.abs(np.where(same, 0, want)).max(initial=0.0),
                                          floor))


def compare(report, kind, names, got, want, tol, what="microtensor", ref="torch", floor=1e-3):
    """One failure of this kind per array where got and want differ by more than tol relative
    to the array's largest element, or to floor × the largest element of them all (at least
    floor: the programs' values and weights are of order 1), whichever is larger; a gradient
    that sums to zero is compared at the scale of what was summed, not at zero."""
    scale = max([np.abs(np.asarray(w, dtype=float)).max(initial=0.0)
                 for w in want if w is not None] + [1.0])
    floor = floor * scale
    for n, g, w in zip(names, got, want):
        e = rel_error(_zeros_for_none(g, w), _zeros_for_none(w, g), floor)
        if e > tol:
            report.fail(kind, f"{n}: {what} {fmt(g) if g is not None else None} vs {ref} "
                              f"{fmt(w) if w is not None else None} (rel. error {e:.3g})")


def _zeros_for_none(a, other):
    """An unused leaf has no gradient (None); compare it as zeros."""
    if a is None and other is not None:
        return np.zeros(np.shape(other))
    return a


def grads_of(ts):
    return [None if t.grad is None else np.array(t.grad, copy=True) for t in ts]
