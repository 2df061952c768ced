"""The differential fuzzer's random programs (tests/fuzz) as training steps, run eagerly and
through mt.compile: losses, gradients and updated leaves bitwise eager's, and every step
replayed rather than run eagerly (tests/fuzz/compiled.py says how). More programs:
python -m tests.fuzz --compiled --count 5000 [--with-kinks].
"""
import numpy as np
import pytest

import microtensor as mt
from fuzz import compiled as fc
from fuzz.generate import generate

SEEDS = range(0, 200)
KINK_SEEDS = range(0, 60)          # values on kinks and ties: max, relu, clip, abs at their kinks
FLOAT32_SEEDS = range(200, 260)
CHUNK = 50

def _check(reports):
    """Every report passes: bitwise, replayed, no fallback, no crash."""
    bad = [r for r in reports if not r.ok]
    assert not [r.program.seed for r in reports if r.rejected], "eager raised on a program"
    if bad:
        pytest.fail(f"{len(bad)} of {len(reports)} programs are not replayed bitwise; the "
                    f"first, minimised:\n{fc.explain(bad[0], seconds=5)}\nothers: "
                    + ", ".join(f"seed {r.program.seed} ({', '.join(r.kinds)})"
                                for r in bad[1:12]), pytrace=False)


@pytest.mark.parametrize("start", range(SEEDS.start, SEEDS.stop, CHUNK))
def test_random_programs_replay_bitwise(start):
    _check([fc.check_compiled(generate(s)) for s in range(start, start + CHUNK)])


def test_kink_pass_programs_replay_bitwise():
    _check([fc.check_compiled(generate(s, kinks=True)) for s in KINK_SEEDS])


def test_float32_programs_replay_bitwise():
    _check([fc.check_compiled(generate(s), dtype="float32") for s in FLOAT32_SEEDS])


# ---- the compiler bugs these programs found ---------------------------------------------------

def _where_step(where, w):
    def step(x):
        w.grad = None
        loss = where(x > 0, w, -w).sum()
        loss.backward()
        return loss
    return step


def _replays_where_bitwise(where, x_shape):
    """A condition that flips on the third call: eager and compiled agree on every call."""
    w = mt.tensor([1.0, 2.0], requires_grad=True)
    step = _where_step(where, w)
    compiled = mt.compile(step)
    results = []
    for sign in (1.0, 1.0, -1.0):
        x = mt.tensor(np.full(x_shape, sign))
        results.append((step(x).data, w.grad.copy(), compiled(x).data, w.grad.copy()))
    assert compiled.counts["replayed"] == 2
    return all(fc.bitwise(le, lc) and fc.bitwise(ge, gc) for le, ge, lc, gc in results)


def test_a_where_condition_of_two_elements_is_read_at_replay():
    assert _replays_where_bitwise(lambda c, a, b: mt.where(c, a, b), (2,))


def test_a_0d_where_condition_is_read_at_replay():
    """x > c of a 0-d x was a NumPy scalar, so where's copy of it was not recorded and the
    plan kept the trace's condition (found by these programs; comparisons now give arrays)."""
    assert _replays_where_bitwise(lambda c, a, b: mt.where(c, a, b), ())


WHERE_BOUND_AT_IMPORT = mt.where


def test_a_where_bound_before_the_trace_reads_its_condition_at_replay():
    """mt.compile patched the attribute mt.where, so `from microtensor import where` before
    the trace recorded no condition; it now records functions._condition, which every
    where calls."""
    assert _replays_where_bitwise(WHERE_BOUND_AT_IMPORT, (2,))
    assert _replays_where_bitwise(WHERE_BOUND_AT_IMPORT, ())


def test_a_cross_entropy_bound_before_the_trace_checks_its_targets_at_replay():
    from microtensor.functional import cross_entropy      # bound before the trace
    w = mt.tensor(np.ones((3, 4)), requires_grad=True)

    def step(t):
        w.grad = None
        loss = cross_entropy(w * 1.0, t)
        loss.backward()
        return loss
    compiled = mt.compile(step)
    compiled(np.array([0, 1, 2]))
    compiled(np.array([0, 1, 3]))
    assert compiled.counts["replayed"] == 1
    with pytest.raises(mt.ShapeError, match="target 9 is out of range for 4 classes"):
        compiled(np.array([0, 1, 9]))
