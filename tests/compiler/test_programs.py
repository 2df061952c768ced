"""Random programs: the recording walk against run_backward slot for slot (every tensor's
gradient through mt.grad), and replays against eager, bitwise.

These programs are drawn here, over the registered ops, with shared inputs, broadcasting,
indexing (ints, slices, integer arrays with repeats, masks), weights shared by many linear
steps (Outer merges, and folds past Outer.FOLD_ROWS, lowered to 9 so that small programs
fold) and every structured gradient. test_fuzz_programs.py runs the differential fuzzer's
programs (tests/fuzz) the same way.
"""
import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor.ops.linalg import Outer

from .helpers import same


def _program(seed):
    """A random program: leaves -> a list of (op name, input indices, extra) steps."""
    rng = np.random.default_rng(seed)
    n_leaves = int(rng.integers(2, 5))
    shapes = [(4, 3), (4, 3), (1, 3), (3,), (4, 1)]
    leaves = [rng.uniform(0.5, 1.5, shapes[int(rng.integers(0, 5))]) *
              rng.choice([-1, 1]) for _ in range(n_leaves)]
    w = rng.uniform(-0.5, 0.5, (3, 3))
    steps = []
    for _ in range(int(rng.integers(4, 14))):
        steps.append((rng.choice(OPS), int(rng.integers(0, 1 << 30))))
    return leaves, w, steps


def _run(leaves, w, steps):
    """Evaluate the program on tensors; returns (loss, every intermediate)."""
    vals = list(leaves)
    for name, r in steps:
        rng = np.random.default_rng(r)
        a = vals[int(rng.integers(0, len(vals)))]
        b = vals[int(rng.integers(0, len(vals)))]
        out = BUILD[name](a, b, w, rng)
        if out is not None:
            vals.append(out)
    loss = sum((v * v).sum() if v.ndim else v for v in vals[len(leaves):]) \
        if len(vals) > len(leaves) else vals[0].sum()
    return loss, vals


def _fit(t, shape=(4, 3)):
    """t broadcast to shape (or reduced to it), so ops always apply."""
    if t.shape == shape:
        return t
    if t.ndim == 0:
        return t * mt.ones(*shape)
    try:
        return t.broadcast_to(shape)
    except Exception:
        return t.sum() * mt.ones(*shape)


BUILD = {
    "add": lambda a, b, w, r: a + b if _ok(a, b) else a + 1.0,
    "sub": lambda a, b, w, r: a - 0.5 * b if _ok(a, b) else -a,
    "mul": lambda a, b, w, r: a * b if _ok(a, b) else a * 2.0,
    "div": lambda a, b, w, r: a / (b * b + 1.0) if _ok(a, b) else a / 3.0,
    "tanh": lambda a, b, w, r: a.tanh(),
    "sigmoid": lambda a, b, w, r: a.sigmoid(),
    "exp": lambda a, b, w, r: (a * 0.1).exp(),
    "log": lambda a, b, w, r: (a * a + 1.0).log(),
    "relu": lambda a, b, w, r: (a + 0.05).relu(),
    "pow": lambda a, b, w, r: (a * a + 0.5) ** 1.5,
    "max": lambda a, b, w, r: a.max(axis=-1) if a.ndim else a,
    "mean": lambda a, b, w, r: a.mean(axis=0) if a.ndim else a,
    "sum": lambda a, b, w, r: a.sum(axis=0, keepdims=True) if a.ndim else a,
    "softmax": lambda a, b, w, r: F.softmax(a) if a.ndim else a,
    "log_softmax": lambda a, b, w, r: F.log_softmax(a) if a.ndim else a,
    "linear": lambda a, b, w, r: F.linear(_fit(a), W[0], _fit(b)[0]),
    "linear_chain": lambda a, b, w, r: _chain(_fit(a)),
    "matmul": lambda a, b, w, r: _fit(a) @ W[0],
    "getitem_int": lambda a, b, w, r: _fit(a)[int(r.integers(0, 4))],
    "getitem_slice": lambda a, b, w, r: _fit(a)[1:3, ::2],
    "getitem_array": lambda a, b, w, r: _fit(a)[np.array([0, 2, 2, 3])],
    "getitem_mask": lambda a, b, w, r: _fit(a)[_fit(a).data > 0] if (_fit(a).data > 0).any() else a,
    "stack": lambda a, b, w, r: mt.stack([_fit(a), _fit(b)], axis=1),
    "concat": lambda a, b, w, r: mt.concat([_fit(a), _fit(b)], axis=0),
    "where": lambda a, b, w, r: mt.where(_fit(a) > 0, _fit(a), _fit(b)),
    "reshape": lambda a, b, w, r: _fit(a).reshape(3, 4),
    "transpose": lambda a, b, w, r: _fit(a).T,
    "cross_entropy": lambda a, b, w, r: F.cross_entropy(_fit(a), r.integers(0, 3, 4)),
    "maximum": lambda a, b, w, r: mt.maximum(_fit(a), _fit(b) * 0.7),
    "clip": lambda a, b, w, r: _fit(a).clip(-0.8, 0.9),
    "abs": lambda a, b, w, r: (a + 0.03).abs(),
    "cast": lambda a, b, w, r: a.astype(np.float32).astype(np.float64),
}
OPS = sorted(BUILD)
W = []


def _bs(a, b):
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        return None


def _ok(a, b):
    return _bs(a, b) is not None


def _chain(x):
    """A weight shared by many linear steps: Outer merges (and folds, with FOLD_ROWS low)."""
    h = x
    for _ in range(5):
        h = F.linear(h, W[0]).tanh()
    return h


@pytest.fixture(autouse=True)
def small_fold(monkeypatch):
    monkeypatch.setattr(Outer, "FOLD_ROWS", 9)      # folds happen in small programs too


@pytest.mark.parametrize("seed", range(60))
def test_walk_equals_run_backward_slot_for_slot(seed):
    """Every tensor's gradient (mt.grad over all of them) from the recording walk, on the
    trace and on a replay, equals run_backward's."""
    leaves, w, steps = _program(seed)

    def grads(*arrays):
        ts = [mt.tensor(a, requires_grad=True) for a in arrays[:-1]]
        W[:] = [mt.tensor(arrays[-1], requires_grad=True)]
        loss, vals = _run(ts, w, steps)
        want = [v for v in vals + W if v.requires_grad]
        return loss, mt.grad(loss, want)

    eager = grads(*leaves, w)
    compiled = mt.compile(grads)
    for _ in range(2):
        got = compiled(*leaves, w)
        assert same(got[0], eager[0])
        assert len(got[1]) == len(eager[1])
        for i, (a, b) in enumerate(zip(got[1], eager[1])):
            assert same(a, b), f"slot {i} differs"
    assert compiled.counts["replayed"] == 1, compiled.counts


@pytest.mark.parametrize("seed", range(60, 100))
def test_random_programs_backward_and_sgd_bitwise(seed):
    """.backward() into parameters, then an optimizer step, over calls with new data."""
    leaves, w, steps = _program(seed)
    params = [mt.tensor(a, requires_grad=True) for a in leaves[1:]] + \
        [mt.tensor(w, requires_grad=True)]
    twins = [mt.tensor(p.data.copy(), requires_grad=True) for p in params]
    opts = [mt.optim.Adam(params, lr=0.01), mt.optim.Adam(twins, lr=0.01)]

    def make(ps, opt):
        def step(x0):
            W[:] = [ps[-1]]
            opt.zero_grad()
            loss, _ = _run([x0] + ps[:-1], w, steps)
            if loss.requires_grad:
                loss.backward()
            opt.step()
            return loss
        return step
    eager, compiled = make(params, opts[0]), mt.compile(make(twins, opts[1]))
    rng = np.random.default_rng(seed)
    for _ in range(3):
        x0 = mt.tensor(leaves[0] * rng.uniform(0.5, 1.5))
        assert same(eager(x0), compiled(x0))
        for p, q in zip(params, twins):
            assert same(p, q) and (p.grad is None) == (q.grad is None)
            if p.grad is not None:
                assert same(p.grad, q.grad)
    # x0 changes every call: replayed where an op reads it, guarded by value where none does
    assert compiled.counts["eager"] == 0 and compiled.counts["replayed"] + \
        compiled.counts["traced"] == 3, compiled.counts
