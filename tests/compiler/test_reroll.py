"""Loop rerolling (microtensor/compiler/reroll.py): a plan's repeated blocks run as loops make
the same calls on the same values in the same order as the statements they stand for, and a
compiled step that uses them stays bitwise eager's."""
import re

import numpy as np
import pytest

import microtensor as mt
import microtensor.compiler as compiler
from microtensor import models
from microtensor.compiler.reroll import reroll

from .helpers import run_both, same
from .test_compile import MGU, UserLSTM, _cell_setup, classifier_setup

rng = np.random.default_rng(7)


# ---- the pass on its own: a call log, rerolled against unrolled --------------------------

class Log:
    """A namespace whose K names are functions that log each call (by the values it got)
    and return a new value: running statements in it records what they did, in order."""

    def __init__(self):
        self.calls, self.ns = [], {}
        for i in range(8):
            self.ns[f"K{i}"] = self._fn(i)
        self.ns["K9"] = 1000                            # a constant read by every iteration

    def _fn(self, i):
        def call(*args):
            self.calls.append((i, tuple(getattr(a, "k", a) for a in args)))
            return len(self.calls) * 10 + i
        call.k = f"K{i}"
        return call


def _run(lines, tail, ns):
    src = "def plan(ARGS):\n" + "".join("    " + s.replace("\n", "\n    ") + "\n"
                                         for s in lines + [f"return {tail}"])
    exec(compile(src, "<test>", "exec"), ns)
    return ns["plan"](None)


def _same_run(stmts, tail, loops_expected=True):
    want = Log()
    out_want = _run(list(stmts), tail, want.ns)
    got = Log()
    lines, tail2 = reroll(list(stmts), tail, got.ns)
    out_got = _run(lines, tail2, got.ns)
    assert got.calls == want.calls and out_got == out_want
    assert any(s.startswith("for ") for s in lines) == loops_expected, lines
    return lines


def _chain(n, reverse_reads=False):
    """A forward chain carried through v, then a backward one reading it in reverse."""
    stmts, names = ["v0 = K0(1)"], ["v0"]
    for t in range(n):
        a, b = f"v{2 * t + 1}", f"v{2 * t + 2}"
        stmts += [f"{a} = K1({names[-1]}, K9, {t})", f"{b} = K2({a}, {3 * t + 5})"]
        names.append(b)
    g = "g0"
    stmts.append(f"{g} = K3({names[-1]})")
    for t in range(n):
        new = f"g{t + 1}"
        stmts.append(f"{new} = K4({g}, {names[n - t - 1] if reverse_reads else 'K9'})")
        g = new
    return stmts, f"({names[-1]}, {g}, {names[1]})"


@pytest.mark.parametrize("n", [1, 2, 3, 25])
def test_chains_rerolled_call_for_call(n):
    stmts, tail = _chain(n, reverse_reads=True)
    lines = _same_run(stmts, tail, loops_expected=n >= 3)
    if n == 25:
        assert len(lines) < 25


def test_a_loops_values_read_in_order_or_reversed_are_its_buffer_starred():
    stmts, tail = _chain(20)
    hs = [f"v{2 * t + 2}" for t in range(20)]
    stmts += [f"w0 = K5({', '.join(hs)})", f"w1 = K6([{', '.join(hs[::-1])}], K9)",
              f"w2 = K7(({', '.join(hs[3:9])}, ), {', '.join(hs[15:5:-1])})",
              f"w3 = K5(({', '.join(hs[2:6])}))"]           # a lone tuple: not starred
    lines = _same_run(stmts, "(w0, w1, w2, w3)")
    assert sum(line.count("*_b") for line in lines) == 4, lines
    assert "for _k1 in range(20):" in lines                 # the shortest body repeating


def test_carried_value_used_before_its_slot_and_a_mutated_accumulator():
    stmts = ["v0 = K0(0)", "v1 = K0(1)"]
    prev = "v1"
    for t in range(10):             # slot 0 reads the carry, slot 1 redefines it after use
        stmts += [f"v{10 + 3 * t} = K1({prev}, K9)", f"v{11 + 3 * t} = K2(v{10 + 3 * t})",
                  f"v{12 + 3 * t} = K3(v{11 + 3 * t}, {prev})"]
        prev = f"v{12 + 3 * t}"
    _same_run(stmts, prev)


def test_per_iteration_constants_strings_and_a_pattern_that_breaks():
    stmts = ["v0 = K0(0)"]
    for t in range(12):             # K5 / K6 alternate: gathered; the string is the same
        k = "K5" if t % 2 else "K6"
        stmts += [f"v{t + 1} = K1(v{t}, {k}, 'v{t} is not a name')"]
    stmts += ["v50 = K2(v3, v7, v12)"]                  # reads iterations 2, 6 and the last
    for t in range(8):              # breaks at t = 5: the loop stops before it
        stmts += [f"g{t} = K4(v50, {t if t != 5 else 99})", f"g{t + 20} = K3(g{t})"]
    _same_run(stmts, "(v50, g27, g4)")


def test_a_plan_that_does_not_repeat_is_left_as_it_is():
    stmts = [f"v{i} = K{i % 8}({', '.join(['0'] + [f'v{j}' for j in range(i)])})"
             for i in range(12)]                # each statement has one more operand
    lines, tail = reroll(list(stmts), "v11", Log().ns)
    assert lines == stmts and tail == "v11"


def _random_program(seed):
    """Blocks repeated n times whose operands are each kind the pass knows (carried, local,
    constant, an index a + b·t, a per-iteration outside value, an earlier block's value in
    reverse), sometimes with one iteration changed; then statements reading values back."""
    r = np.random.default_rng(seed)
    stmts, made, count = ["v0 = K0(0)", "v1 = K0(1)", "v2 = K0(2)"], ["v0", "v1", "v2"], [3]
    blocks = []

    def new():
        count[0] += 1
        return f"v{count[0]}"
    for _ in range(int(r.integers(1, 4))):
        P, n = int(r.integers(1, 5)), int(r.integers(2, 14))
        init = [str(r.choice(made)) for _ in range(P)]
        names, spoil = [], (int(r.integers(0, n)) if r.random() < 0.3 else -1)
        kinds = [[str(r.choice(["carry", "local", "K9", "int", "rev", "outside", "num"]))
                  for _ in range(int(r.integers(1, 4)))] for _ in range(P)]
        earlier = blocks[-1] if blocks else None
        for t in range(n):
            row = []
            for j in range(P):
                args = []
                for kind in kinds[j]:
                    if kind == "carry":
                        args.append(names[t - 1][j] if t else init[j])
                    elif kind == "local" and j:
                        args.append(row[0])
                    elif kind == "int":
                        args.append(str(2 * t + 1 if t != spoil else 99))
                    elif kind == "rev" and earlier is not None:
                        args.append(earlier[len(earlier) - 1 - t % len(earlier)][0])
                    elif kind == "outside":
                        args.append(made[t % 3])
                    elif kind == "num":
                        args.append("7")
                    else:
                        args.append("K9")
                name = new()
                stmts.append(f"{name} = K{1 + j}({', '.join(args)})")
                row.append(name)
            names.append(row)
        blocks.append(names)
        made += [x for row in names for x in row]
    for _ in range(int(r.integers(0, 5))):
        args = ", ".join(str(r.choice(made)) for _ in range(int(r.integers(1, 6))))
        name = new()
        stmts.append(f"{name} = K7({args})")
        made.append(name)
    tail = "(" + "".join(str(r.choice(made)) + ", " for _ in range(3)) + ")"
    return stmts, tail


@pytest.mark.parametrize("seed", range(60))
def test_random_programs_rerolled_call_for_call(seed):
    stmts, tail = _random_program(seed)
    want = Log()
    out_want = _run(list(stmts), tail, want.ns)
    got = Log()
    lines, tail2 = reroll(list(stmts), tail, got.ns)
    assert _run(lines, tail2, got.ns) == out_want and got.calls == want.calls


# ---- compiled steps: bitwise eager's, with loops in the plan ------------------------------

def _vanilla_setup(T):
    def setup():
        model = models.VanillaRNN(5, 9, 5)
        opt = mt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(xs, ys):
            model.zero_grad()
            loss, h = model.loss(xs, ys)
            loss.backward()
            opt.step()
            return loss, h
        return step, list(model.parameters())
    return setup


@pytest.mark.parametrize("T", [1, 2, 25])
def test_vanilla_rnn_rerolled_bitwise(T):
    def data():
        idx = rng.integers(0, 5, size=(T + 1, 3))
        return np.eye(5)[idx[:-1]], idx[1:]
    compiled = run_both(_vanilla_setup(T), [data() for _ in range(3)])
    if T == 25:
        assert "for " in compiled.last_source


def _unrolled_source(setup, args):
    compiler.REROLL = False
    try:
        step, _ = setup()
        c = mt.compile(step)
        c(*args)
        return c.last_source
    finally:
        compiler.REROLL = True


def test_rerolled_plan_is_a_fraction_of_the_unrolled_one():
    idx = rng.integers(0, 5, size=(26, 2))
    args = (np.eye(5)[idx[:-1]], idx[1:])
    compiled = run_both(_vanilla_setup(25), [args, args])
    unrolled = _unrolled_source(_vanilla_setup(25), args)
    assert "for " not in unrolled
    assert len(compiled.last_source.splitlines()) * 3 < len(unrolled.splitlines())


@pytest.mark.parametrize("cell", [MGU, UserLSTM])
def test_user_cells_rerolled_bitwise(cell):
    compiled = run_both(_cell_setup(cell), [(mt.tensor(rng.standard_normal((12, 3, 2))),)
                                            for _ in range(3)])
    assert compiled.last_source.count("for ") >= 2         # forward and backward


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_lengths_and_directions_rerolled_bitwise(bidirectional):
    D = 2 if bidirectional else 1
    setup = classifier_setup(lambda: models.LSTM(4, 6, num_layers=2,
                                                 bidirectional=bidirectional), 6 * D)
    lengths = np.array([10, 4, 7])
    compiled = run_both(setup, [(mt.tensor(rng.standard_normal((10, 3, 4))),
                                 rng.integers(0, 3, (10, 3)), lengths) for _ in range(3)])
    assert "for " in compiled.last_source


def test_a_transposed_argument_that_differs_per_iteration_is_gathered_whole():
    """A body operand that is another argument's transpose in every iteration (a1_T, a2_T,
    …) is gathered as one name: the compiled fuzzer's seed 7372 made a plan that wrote
    `_g2_2[_k2]_T` and did not compile."""
    def step(*xs):
        h = xs[0]
        for x in xs[1:]:
            h = (h @ x).tanh()
        h.sum().backward()
        return h.detach()

    def args():
        r = np.random.default_rng(3)
        return [mt.tensor(r.standard_normal((3, 3)), requires_grad=True) for _ in range(12)]
    compiled = mt.compile(step)
    for _ in range(2):
        xe, xc = args(), args()
        out_e, out_c = step(*xe), compiled(*xc)
        assert out_e.data.tobytes() == out_c.data.tobytes()
        assert all(a.grad.tobytes() == b.grad.tobytes() for a, b in zip(xe, xc))
    assert compiled.counts == {"replayed": 1, "traced": 1, "eager": 0}
    assert "for " in compiled.last_source and "_T" in compiled.last_source


def test_stacked_tanh_states_give_one_derivative_call_and_row_lists():
    """An unrolled tanh RNN whose states are stacked: the plan computes 1 − h² once for the
    stack (rec.rowwise) and adds each step's ∂x_t into a row of its buffer through a list of
    the rows (walk._rows); the compiled step stays bitwise eager's."""
    idx = rng.integers(0, 5, size=(26, 4))
    args = (np.eye(5)[idx[:-1]], idx[1:])
    src = run_both(_vanilla_setup(25), [args, args]).last_source
    assert src.count("np.subtract(1, ") == 1 and "(1 - " not in src
    assert src.count(" = list(z") == 1
    assert re.search(r"= K\d+\((v\d+), out=\1\)", src)       # tanh over its pre-activation


def test_a_ufunc_writes_over_an_input_only_when_nothing_reads_it_after():
    """rec._write_over: `y = tanh(x)` over x when x is read by nothing after; not when x is
    returned, read by a later op, or a view of it exists; not for a result too small to be
    worth it (record.OVER_BYTES)."""
    w = mt.tensor(rng.standard_normal((8, 8)), requires_grad=True)

    def step(x):
        a = x + w                   # read once, by tanh: written over
        b = x - w                   # returned: kept
        c = x + 2 * w               # read by tanh and by the sum: kept (2 * w: written over)
        d = x - 3 * w               # viewed by e: kept (3 * w: written over)
        e = d[0]
        loss = (a.tanh().sum() + b.tanh().sum() + c.tanh().sum() + c.sum() + d.tanh().sum()
                + e.sum())
        loss.backward()
        return loss.detach(), b.detach()
    compiled = mt.compile(step)
    x = mt.tensor(rng.standard_normal((8, 8)))
    for _ in range(2):
        w.grad = None
        want, want_b = step(x)
        g = w.grad.copy()
        w.grad = None
        got, got_b = compiled(x)
        assert same(want, got) and same(want_b, got_b) and same(g, w.grad)
    assert len(re.findall(r"out=", compiled.last_source)) == 3
    small = mt.compile(step)
    w.grad, w.data = None, w.data[:2, :2].copy()
    small(mt.tensor(rng.standard_normal((2, 2))))           # 32 bytes: not written over
    assert "out=" not in small.last_source


def test_concatenated_reads_runs_of_a_stacks_rows_as_one_slice():
    """rec.concatenated: four or more consecutive rows of a stack, either way, become a slice
    of it; a shorter run, another array, or a row written since stay as names. Every source
    it gives evaluates to np.concatenate of the arrays."""
    from microtensor.compiler.record import Recorder
    from microtensor.compiler.walk import Val
    rec = Recorder([])
    S = rng.standard_normal((6, 2, 3))
    rows = [S[k].copy() for k in range(6)]
    for k, a in enumerate(rows):
        rec.rows[id(a)] = (a, "S", k, S)
    other = rng.standard_normal((2, 3))
    written = rows[2].copy()
    rec.rows[id(written)] = (written, "S", 2, S)
    written[0, 0] += 1.0                                    # no longer row 2 of S
    ns = {"np": np, "S": S, "x": other, "w": written, **{f"r{k}": a for k, a in enumerate(rows)}}
    cases = [([0, 1, 2, 3, 4], "S[0:5].reshape(-1, 3)"),
             ([5, 4, 3, 2, 1, 0, "x"], "np.concatenate([S[5::-1].reshape(-1, 3), x])"),
             (["x", 1, 2, 3], "np.concatenate([x, r1, r2, r3])"),
             ([0, 1, "w", 3, 4, 5], "np.concatenate([r0, r1, w, r3, r4, r5])"),
             ([3, 2, 1, 0, 2, 3, 4, 5], "np.concatenate([S[3::-1].reshape(-1, 3), "
                                        "S[2:6].reshape(-1, 3)])")]
    for picks, want in cases:
        names = [p if isinstance(p, str) else f"r{p}" for p in picks]
        vals = [Val(ns[n], n) for n in names]
        src = rec.concatenated(vals)
        assert src == want
        assert same(eval(src, ns), np.concatenate([ns[n] for n in names]))
