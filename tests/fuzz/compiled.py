"""Compiled replay: each program run as a training step eagerly and through mt.compile, bit for bit.

A program becomes a step in three flavours, each run eagerly on one copy of the leaves and
through mt.compile on another, three calls in a row:
  backward  the leaves are the step's arguments; loss.backward() fills their .grad;
  grad      the same arguments; the step returns mt.grad(loss, [the leaves and every float
            value]), every slot of the recorded walk;
  sgd       the leaves are parameters the step closes over: zero_grad, backward, SGD with
            momentum, so each call starts from new values.
The first call traces, the second must replay; the third gives the arguments new values (the
first's × SCALE), which the plan reads from its arguments (a leaf no op reads is guarded by
value, so the plan is traced again there). The loss, every gradient and (sgd) every updated
leaf must have eager's shape, dtype and bytes; compile must not fall back (no CompileWarning).
"""
import warnings
from dataclasses import replace

import numpy as np

import microtensor as mt

from .minimize import minimize
from .programs import Ref, array, const
from .run import Report, execute
from .vocab import CALLS

FLAVOURS = ("backward", "grad", "sgd", "adam")
# the optimizer flavours: the step updates the leaves as parameters
OPTIMIZERS = {"sgd": (mt.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
              "adam": (mt.optim.Adam, {"lr": 0.01})}
SCALE = 1.05
CALLS_PER_CHECK = 3

def bitwise(a, b):
    """Both None, or arrays (or tensors) of one shape and dtype holding the same bytes."""
    if a is None or b is None:
        return a is None and b is None
    a = a.data if isinstance(a, mt.Tensor) else np.asarray(a)
    b = b.data if isinstance(b, mt.Tensor) else np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def make_step(program, flavour, dtype="float64", calls=None):
    """(step, parameters): the program as one training step of this flavour; parameters is
    None where the leaves are the step's arguments."""
    p = replace(program, retain=None)        # retain_grad would make compile fall back
    names = {leaf.name for leaf in p.leaves}

    def forward(leaves):
        return execute(p, "mt", dtype, leaves=leaves, replace=calls)

    if flavour == "backward":
        def step(*leaves):
            _, loss = forward(leaves)
            loss.backward()
            return loss
        return step, None
    if flavour == "grad":
        def step(*leaves):
            env, loss = forward(leaves)
            values = [v for n, v in env.items() if n not in names and
                      isinstance(v, mt.Tensor) and v.requires_grad]
            return loss, mt.grad(loss, list(leaves) + values)
        return step, None
    if flavour not in OPTIMIZERS:
        raise ValueError(f"unknown flavour {flavour!r}")
    params = [mt.tensor(np.asarray(leaf.value, dtype=dtype), requires_grad=True)
              for leaf in p.leaves]
    cls, kwargs = OPTIMIZERS[flavour]
    opt = cls(params, **kwargs)                     # programs have 0-d leaves: Adam too

    def step():
        opt.zero_grad()
        _, loss = forward(params)
        loss.backward()
        opt.step()
        return loss
    return step, params


def leaf_arguments(program, dtype, call):
    scale = SCALE if call == 2 else 1.0
    return [mt.tensor(np.asarray(leaf.value * scale, dtype=dtype), requires_grad=True)
            for leaf in program.leaves]


def check_compiled(program, flavours=FLAVOURS, dtype="float64", calls=None,
                   compile_fn=None):
    """A Report whose failures say where a compiled call differs from eager, crashed, or
    was not replayed; `rejected` when eager itself raises on the first call. compile_fn:
    mt.compile by default (a stand-in tests the check itself)."""
    r = Report(program)
    for flavour in flavours:
        _check(r, program, flavour, dtype, calls, compile_fn or mt.compile)
    return r


def _outcome(fn, args):
    try:
        return fn(*args), None
    except Exception as e:
        return None, e


def _check(r, program, flavour, dtype, calls, compile_fn):
    kind = f"compiled {flavour} ≠ eager"
    eager, params_e = make_step(program, flavour, dtype, calls)
    step, params_c = make_step(program, flavour, dtype, calls)
    compiled = compile_fn(step)
    with np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", mt.CompileWarning)
        for call in range(CALLS_PER_CHECK):
            args_e, args_c = ([], []) if params_e is not None else \
                (leaf_arguments(program, dtype, call), leaf_arguments(program, dtype, call))
            out_e, err_e = _outcome(eager, args_e)
            out_c, err_c = _outcome(compiled, args_c)
            if err_e is not None or err_c is not None:
                if err_e is not None and call == 0 and type(err_c) is type(err_e):
                    r.rejected = r.rejected or f"eager raises {_name(err_e)}"
                elif type(err_c) is not type(err_e):
                    r.fail(f"compiled {flavour}: crash", f"call {call}: eager "
                           f"{_name(err_e) if err_e else 'ran'}, compiled "
                           f"{_name(err_c) if err_c else 'ran'}")
                break
            diff = _differences(flavour, out_e, out_c, args_e or params_e, args_c or params_c)
            if diff:
                r.fail(kind, f"call {call} ({_calls(call)}): {', '.join(diff[:6])}"
                             f"{' …' if len(diff) > 6 else ''}")
                break
            if call == 1 and compiled.counts["replayed"] != 1:
                r.fail(f"compiled {flavour}: not replayed", f"counts {compiled.counts}")
    warned = [str(w.message) for w in caught if issubclass(w.category, mt.CompileWarning)]
    if warned or compiled.counts["eager"]:
        r.fail(f"compiled {flavour}: fell back to eager",
               warned[0] if warned else f"counts {compiled.counts}")


def _name(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


def _calls(call):
    return ("the trace", "the first replay", f"new values ×{SCALE}")[call]


def _differences(flavour, out_e, out_c, leaves_e, leaves_c):
    """What differs between the eager and the compiled call: loss, gradients, values."""
    diff = []
    loss_e, loss_c = (out_e[0], out_c[0]) if flavour == "grad" else (out_e, out_c)
    if not bitwise(loss_e, loss_c):
        diff.append("the loss")
    if flavour == "grad":
        if len(out_e[1]) != len(out_c[1]):
            return diff + [f"{len(out_e[1])} gradients vs {len(out_c[1])}"]
        diff += [f"slot {i}" for i, (a, b) in enumerate(zip(out_e[1], out_c[1]))
                 if not bitwise(a, b)]
        return diff
    for i, (a, b) in enumerate(zip(leaves_e, leaves_c)):
        if not bitwise(a.grad, b.grad):
            diff.append(f"x{i}.grad")
        if not bitwise(a, b):
            diff.append(f"x{i}")
    return diff


# ---- a failure as a script ------------------------------------------------------------------

def to_python_compiled(program, flavour, dtype="float64"):
    """A script that runs the program's step eagerly and compiled and prints what differs."""
    p = replace(program, retain=None)
    other = "float32" if dtype == "float64" else "float64"
    args = ", ".join(leaf.name for leaf in p.leaves)
    body = []
    for s in p.stmts:
        srcs = [a.name if isinstance(a, Ref) else const(a) for a in s.args]
        body.append(f"{', '.join(s.outs)} = {CALLS[s.op].py(srcs, **s.attrs)}")
    body.append("loss = " + " + ".join(f"({n} * {array(w)}).sum()" for n, w in p.loss))
    leaf_list = ", ".join(f"mt.tensor(np.array({leaf.value.tolist()!r}) * scale, dtype=DT, "
                          f"requires_grad=True)" for leaf in p.leaves)
    lines = [f"# microtensor fuzz program, seed {p.seed}, {dtype}: its step ({flavour}) "
             f"eagerly and through mt.compile",
             "import numpy as np", "import microtensor as mt", "import microtensor.functional as F",
             "", f"DT, OTHER = mt.{dtype}, mt.{other}", "", ""]
    if flavour in OPTIMIZERS:
        cls, kwargs = OPTIMIZERS[flavour]
        lines += ["def make():",
                  f"    {args}, = leaves = [{leaf_list.replace(' * scale', '')}]",
                  f"    opt = mt.optim.{cls.__name__}(leaves, "
                  f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())})", "",
                  "    def step():", "        opt.zero_grad()"]
        lines += [f"        {b}" for b in body]
        lines += ["        loss.backward()", "        opt.step()", "        return loss",
                  "    return step, leaves", "", "",
                  "(eager, xe), (step, xc) = make(), make()",
                  "compiled = mt.compile(step)",
                  f"for call in range({CALLS_PER_CHECK}):",
                  "    le, lc = eager(), compiled()"]
    else:
        lines += [f"def step({args}):"] + [f"    {b}" for b in body]
        if flavour == "grad":
            outs = [n for s in p.stmts for n in s.outs]
            lines += [f"    values = [v for v in ({', '.join(outs)},) if isinstance(v, mt.Tensor) "
                      f"and v.requires_grad]",
                      f"    return loss, mt.grad(loss, [{args}] + values)"]
        else:
            lines += ["    loss.backward()", "    return loss"]
        lines += ["", "", "def leaves(scale):", f"    return [{leaf_list}]", "", "",
                  "compiled = mt.compile(step)",
                  f"for call, scale in enumerate((1.0, 1.0, {SCALE})):",
                  "    xe, xc = leaves(scale), leaves(scale)",
                  "    le, lc = step(*xe), compiled(*xc)"]
    if flavour == "grad":
        lines += ["    (le, ge), (lc, gc) = le, lc",
                  "    same = [np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ge, gc)]"]
    else:
        lines += ["    same = [np.array_equal(a.grad, b.grad) and np.array_equal(a.data, b.data) "
                  "for a, b in zip(xe, xc)]"]
    lines += ["    print(f'call {call}: loss {le.item()!r} eager, {lc.item()!r} compiled; '",
              "          f'equal gradients: {same}; {compiled.counts}')"]
    return "\n".join(lines) + "\n"



# ---- minimising and explaining a failure ----------------------------------------------------

def still_fails(program, kind, dtype="float64"):
    """Whether the program's step still fails with `kind` (only its flavour is run)."""
    try:
        return kind in check_compiled(program, (kind.split()[1],), dtype).kinds
    except Exception:          # a candidate the interpreter cannot even run
        return False


def explain(report, seconds=20.0, how_to_rerun=None, small=None, dtype="float64"):
    """The text for a failing report: what differed, then the program minimised for the
    first kind as a script that runs its step eagerly and compiled."""
    p, kind = report.program, report.kinds[0]
    lines = [f"FAIL seed {p.seed}{' (kink pass)' if p.kinks else ''}: {', '.join(report.kinds)}"]
    lines += [f"  {f.kind}: {f.detail}" for f in report.failures[:8]]
    small = small or minimize(p, kind, seconds=seconds,
                              fails=lambda c: still_fails(c, kind, dtype))
    lines.append(f"minimised for '{kind}' to {len(small.stmts)} statement(s)"
                 + (f"; {how_to_rerun}" if how_to_rerun else "") + ":")
    lines.append(to_python_compiled(small, kind.split()[1], dtype))
    return "\n".join(lines)
