"""check(program): every comparison the fuzzer makes on one program, collected in a Report."""
import numpy as np

import microtensor as mt

from .run import (FD_STEP, TOL_FD, TOL_FLOAT32, TOL_SAME, TOL_TORCH, Report, StmtError,
                  fmt, grads_of, compare, execute, loss_terms, near_kink)
from .vocab import CALLS, torch

PHASES = ("mt", "torch", "float32", "fd", "second")


def check(program, phases=PHASES):
    """Run the program and compare: loss and gradients (backward, mt.grad, a retained
    intermediate, two accumulating backwards) with torch in float64; a float32 run with the
    float64 one; every leaf's gradient with central differences; and (second) the gradients
    again with create_graph=True and their own gradient with torch's double backward (the
    last two outside the kink pass)."""
    r = Report(program)
    with np.errstate(all="ignore"):
        r.rejected = near_kink(program)
        if r.rejected:
            return r
        got = _mt_phase(r, program)
        if r.rejected or got is None:
            return r
        if "torch" in phases and torch is not None:
            _torch_phase(r, program, got)
        if "float32" in phases:
            _float32_phase(r, program, got)
        if "fd" in phases and not program.kinks:
            _fd_phase(r, program, got)
        if "second" in phases and not program.kinks and torch is not None:
            _second_phase(r, program, got)
    return r


def _watch(program, env):
    names = [leaf.name for leaf in program.leaves] + ([program.retain] if program.retain else [])
    return names, [env[n] for n in names]


def _forward(r, program, dtype="float64"):
    """(env, loss) in microtensor, or None after recording why not."""
    try:
        return execute(program, "mt", dtype)
    except StmtError as e:
        c = CALLS[e.stmt.op]
        raw = [np.asarray(a.data) if isinstance(a, mt.Tensor) else a for a in e.args]
        if isinstance(e.error, mt.MicrotensorError) and c.may_reject and c.may_reject(*raw):
            r.rejected = f"microtensor refuses {e.stmt.op}: {e.error}"
        else:
            r.fail(f"crash in forward: {type(e.error).__name__}", str(e))
        return None


def _types(r, what, names, ts, grads):
    """Every gradient an ndarray of its tensor's shape and dtype (not a NumPy scalar)."""
    for n, t, g in zip(names, ts, grads):
        if g is not None and (type(g) is not np.ndarray or g.shape != t.shape
                              or g.dtype != t.dtype):
            kind = "a NumPy scalar" if isinstance(g, np.generic) else type(g).__name__
            r.fail("grad type", f"{what} of {n} is {kind} of shape {np.shape(g)} and dtype "
                                f"{getattr(g, 'dtype', '?')}; {n} is an array {t.shape} {t.dtype}")


def _crash(r, where, e):
    r.fail(f"crash in {where}: {type(e).__name__}", f"{type(e).__name__}: {e}")


def _mt_phase(r, program):
    """mt.grad, then two backward(retain_graph=True): the gradients of each, or None."""
    fwd = _forward(r, program)
    if fwd is None:
        return None
    env, loss = fwd
    names, ts = _watch(program, env)
    got = {"loss": float(loss.data), "names": names, "grad": None, "backward": None}
    try:
        got["grad"] = list(mt.grad(loss, ts, retain_graph=True))
        if any(t.grad is not None for t in ts):
            r.fail("mt.grad wrote .grad", "after mt.grad: " + ", ".join(
                n for n, t in zip(names, ts) if t.grad is not None))
    except Exception as e:
        _crash(r, "mt.grad", e)
    if len(program.loss) > 1 and got["grad"] is not None:   # the same, one output per term
        try:
            by_term = mt.grad(loss_terms(program, env), ts, retain_graph=True)
            compare(r, "mt.grad of the terms", names, list(by_term), got["grad"], TOL_SAME,
                    "mt.grad(terms)", "mt.grad(loss)")
        except Exception as e:
            _crash(r, "mt.grad of the terms", e)
    try:
        loss.backward(retain_graph=True)
    except Exception as e:
        _crash(r, "backward", e)
        return got
    g1 = got["backward"] = grads_of(ts)
    _types(r, ".grad", names, ts, [t.grad for t in ts])
    if got["grad"] is not None:
        _types(r, "mt.grad", names, ts, got["grad"])
    if got["grad"] is not None:
        compare(r, "mt.grad vs backward", names, got["grad"], g1, TOL_SAME, "mt.grad", "backward")
    try:
        loss.backward(retain_graph=True)
    except Exception as e:
        _crash(r, "second backward", e)
        return got
    g2 = grads_of(ts)
    twice = [None if g is None else 2 * g for g in g1]
    n_leaves = len(program.leaves)
    compare(r, "accumulation (leaf)", names[:n_leaves], g2[:n_leaves], twice[:n_leaves],
            TOL_SAME, "two backwards", "2 × one")
    compare(r, "accumulation (retained)", names[n_leaves:], g2[n_leaves:], twice[n_leaves:],
            TOL_SAME, "two backwards", "2 × one")
    return got


def _torch_phase(r, program, got):
    try:
        env, loss = execute(program, "torch")
        loss.backward(retain_graph=True)
    except Exception as e:              # torch refusing a program is the fuzzer's bug
        r.fail(f"torch refused the program: {type(e).__name__}", str(e))
        return
    names, ts = _watch(program, env)
    want = [None if t.grad is None else t.grad.numpy() for t in ts]
    scale = sum(float(np.sum(np.abs(env[n].detach().numpy()) * np.abs(w)))
                for n, w in program.loss)
    tl = float(loss.detach())
    if abs(got["loss"] - tl) > TOL_TORCH * max(abs(tl), scale, 1e-300):
        r.fail("loss vs torch", f"loss: microtensor {got['loss']!r} vs torch {tl!r}")
    r.expected = [f"torch {torch.__version__}: loss = {tl!r}"] + [
        f"torch: {n}.grad = {'None (the loss does not reach it)' if w is None else fmt(w)}"
        for n, w in zip(names, want)]
    n_leaves = len(program.leaves)
    if got["backward"] is not None:
        compare(r, "backward vs torch", names[:n_leaves], got["backward"][:n_leaves],
                want[:n_leaves], TOL_TORCH)
        compare(r, "retained vs torch", names[n_leaves:], got["backward"][n_leaves:],
                want[n_leaves:], TOL_TORCH)
    if got["grad"] is not None:
        compare(r, "mt.grad vs torch", names, got["grad"], want, TOL_TORCH, "mt.grad")


def _float32_phase(r, program, got):
    fwd = _forward(r, program, "float32")
    if fwd is None:
        return
    env, loss = fwd
    wrong = [n for n, t in env.items() if t.dtype.kind == "f" and t.dtype != np.float32]
    if loss.dtype != np.float32:
        wrong.append("loss")
    if wrong:
        r.fail("float32 dtype: forward", "float64 values in a float32 run: " + ", ".join(wrong))
    names, ts = _watch(program, env)
    try:
        g = mt.grad(loss, ts, retain_graph=True)
        bad = [n for n, a in zip(names, g) if np.asarray(a).dtype != np.float32]
        if bad:
            r.fail("float32 dtype: mt.grad", "mt.grad gives non-float32 for " + ", ".join(bad))
        loss.backward()
    except Exception as e:
        _crash(r, "float32 run", e)
        return
    g32 = grads_of(ts)
    bad = [n for n, a in zip(names, g32) if a is not None and a.dtype != np.float32]
    if bad:
        r.fail("float32 dtype: .grad", ".grad is not float32 for " + ", ".join(bad))
    if got["backward"] is not None:
        # float32's rounding of a gradient summed over n terms grows like √n · eps (a random
        # walk), relative to the terms, which may cancel to ~0 (seed 41589: a 5,000-row
        # linear, −0.8·mean + 0.8·itself): the tolerance grows with the largest tensor
        n = max((t.size for t in env.values() if isinstance(t, mt.Tensor)), default=1)
        compare(r, "float32 values", names, g32, got["backward"],
                TOL_FLOAT32 * max(1.0, np.sqrt(n / 100)), "float32", "float64", floor=0.05)


def fd_loss(program, values):
    """The loss of the microtensor forward at these leaf values, in float64, with every cast
    taken as the identity it is to first order (its rounding would swamp the differences)."""
    with mt.no_grad():
        _, loss = execute(program, values=values, requires_grad=False,
                          replace={"roundtrip": lambda a: a})
    return float(loss.data)


def _fd_phase(r, program, got):
    g = got["backward"] or got["grad"]
    if g is None:
        return
    rng = np.random.default_rng(program.seed)
    x = [leaf.value for leaf in program.leaves]
    total = np.sqrt(sum(float(np.sum(np.square(a))) for a in g[:len(x)] if a is not None))
    size = abs(got["loss"]) + 1.0
    # a cast rounds in the forward but counts as the identity here: allow its rounding, at
    # the scale of what passes through it (order 1 in these programs; the gradients' total
    # may cancel to ~0, as −0.8·x + 0.8·cast(x) does, while the rounding stays ~1e-8)
    rounding = 1e-6 * (total + size) if any(s.op == "roundtrip" for s in program.stmts) else 0.0
    for i, leaf in enumerate(program.leaves):
        gi = np.zeros(leaf.value.shape) if g[i] is None else np.asarray(g[i], dtype=float)
        for _ in range(1 if leaf.value.size <= 2 else 2):
            v = rng.standard_normal(leaf.value.shape)
            v /= np.sqrt(np.sum(v * v))

            def diff(h):
                up = [a + h * v if j == i else a for j, a in enumerate(x)]
                down = [a - h * v if j == i else a for j, a in enumerate(x)]
                return (fd_loss(program, up) - fd_loss(program, down)) / (2 * h)

            try:
                numeric = (4 * diff(FD_STEP / 2) - diff(FD_STEP)) / 3
            except StmtError:
                return
            analytic = float(np.sum(gi * v))
            tol = TOL_FD * (np.sqrt(np.sum(gi * gi)) + 1e-3 * total + 1e-6) + 1e-10 * size \
                + rounding
            if not abs(numeric - analytic) <= tol:
                r.fail("finite differences", f"{leaf.name}: d loss along a random direction: "
                                             f"backward {analytic!r}, central differences "
                                             f"{numeric!r}")
                break


def second_order(program, env, loss):
    """create_graph=True: the leaves' gradients as Tensors, then the gradient of their random
    projection Σ wᵢ·∂loss/∂xᵢ (a Hessian-vector product); (first, second) as arrays."""
    leaves = [env[leaf.name] for leaf in program.leaves]
    rng = np.random.default_rng(program.seed + 7)
    ws = [rng.standard_normal(t.shape) for t in leaves]
    first = mt.grad(loss, leaves, create_graph=True)
    proj = mt.stack([(g * w).sum() for g, w in zip(first, ws)]).sum()
    second = mt.grad(proj, leaves) if proj.requires_grad else [np.zeros(t.shape) for t in leaves]
    return [g.data for g in first], list(second), ws


def _second_phase(r, program, got):
    """The create_graph gradients against mt.grad's, their gradient against torch's."""
    fwd = _forward(r, program)
    if fwd is None:
        return
    names = [leaf.name for leaf in program.leaves]
    try:
        first, second, ws = second_order(program, *fwd)
    except Exception as e:
        _crash(r, "create_graph", e)
        return
    if got["grad"] is not None:
        compare(r, "create_graph vs first order", names, first, got["grad"][:len(names)],
                TOL_SAME, "create_graph", "mt.grad")
    try:
        env, loss = execute(program, "torch")
        leaves = [env[n] for n in names]
        tfirst = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
        proj = sum((g * torch.from_numpy(w)).sum() for g, w in zip(tfirst, ws) if g is not None)
        want = [None] * len(names)
        if isinstance(proj, torch.Tensor) and proj.requires_grad:
            want = [None if g is None else g.numpy(force=True)      # a ZeroTensor for some
                    for g in torch.autograd.grad(proj, leaves, allow_unused=True)]
    except Exception:                   # torch refusing the program: the torch phase says so
        return
    compare(r, "second derivatives vs torch", names, second, want, TOL_TORCH)
