"""The differential fuzzer in CI: fixed seeds against torch and finite differences, the kink pass,
a perturbed backward of every registered op caught (and a perturbed double backward), and the
fuzzer's own machinery."""
import contextlib
import functools
import io
from collections import Counter

import numpy as np
import pytest

import microtensor as mt
from fuzz import forms
from fuzz.__main__ import main
from fuzz.check import check
from fuzz.generate import generate
from fuzz.minimize import minimize
from fuzz.programs import Leaf, Program, Ref, Stmt, to_python
from fuzz.report import explain
from fuzz.run import execute, near_kink
from fuzz.vocab import torch
from microtensor.autograd import REGISTRY
from microtensor.create_graph import Context
from op_specs import ops_used

CI_SEEDS = range(0, 160)
KINK_SEEDS = range(0, 80)
MUTATION_SEEDS = range(1000, 1012)
GRADIENT_KINDS = {"backward vs torch", "mt.grad vs torch", "finite differences"}
SECOND_KINDS = {"create_graph vs first order", "second derivatives vs torch"}
SECOND_ORDER_ONLY = {"scatter_add"}        # ops that only a create_graph backward makes


def _fail_with_first(reports, what):
    failing = [r for r in reports if not r.ok]
    if failing:
        others = "\n".join(f"  seed {r.program.seed}: {', '.join(r.kinds)}" for r in failing[1:12])
        pytest.fail(f"{len(failing)} of {len(reports)} {what} disagree; the first, minimised:\n"
                    f"{explain(failing[0], seconds=5)}\nothers:\n{others}", pytrace=False)


@pytest.mark.parametrize("start", range(CI_SEEDS.start, CI_SEEDS.stop, 40))
def test_random_programs_agree_with_torch_and_finite_differences(start):
    reports = [check(generate(s)) for s in range(start, start + 40)]
    not_checked = [(r.program.seed, r.rejected) for r in reports
                   if r.rejected and not r.rejected.startswith("microtensor refuses")]
    assert not not_checked, f"the generator put values near a kink: {not_checked}"
    _fail_with_first(reports, "programs")


def test_kink_pass_agrees_with_torch():
    pytest.importorskip("torch")
    reports = [check(generate(s, kinks=True)) for s in KINK_SEEDS]
    _fail_with_first(reports, "kink-pass programs")


# ---- breaking any op's backward is caught ------------------------------------------------

def _recorded(program):
    with np.errstate(all="ignore"):
        _, loss = execute(program)
    return ops_used(loss)


def _recorded_twice(program):
    """The ops in the graphs of the leaves' create_graph gradients."""
    with np.errstate(all="ignore"):
        env, loss = execute(program)
        grads = mt.grad(loss, [env[leaf.name] for leaf in program.leaves], create_graph=True)
    return set().union(*(ops_used(g) for g in grads))


@functools.lru_cache(maxsize=None)
def _candidates(op):
    """Up to three short programs recording `op` (in their create_graph gradients, for the
    ops only those make) whose first and second derivatives were right, with their kinds."""
    twice = op in SECOND_ORDER_ONLY       # longer: a getitem whose gradient is not constant
    recorded, length = (_recorded_twice, 10) if twice else (_recorded, 3)
    found = []
    for seed in MUTATION_SEEDS:
        p = generate(seed, force=op, length=length)
        r = check(p)
        if op in recorded(p) and not r.rejected and not (GRADIENT_KINDS | SECOND_KINDS) & \
                set(r.kinds) and not any(k.startswith("crash") for k in r.kinds):
            found.append((p, frozenset(r.kinds)))
        if len(found) == 3:
            break
    assert found, f"no program among seeds {MUTATION_SEEDS} records {op} with right " \
                  f"gradients, so the mutation cannot be judged"
    return found


@pytest.mark.parametrize("op", sorted(REGISTRY))
def test_a_perturbed_backward_is_caught(op, monkeypatch):
    """Scale every gradient `op`'s backward returns by 1 + 1e-3 (through its upstream
    gradient, so every kind of gradient it returns is scaled): on short programs recording
    `op` whose gradients were right, finite differences and torch must both see it (the
    second derivatives, for an op that only a create_graph backward makes)."""
    candidates = _candidates(op)
    cls = REGISTRY[op]
    original = cls.backward
    monkeypatch.setattr(cls, "backward",
                        staticmethod(lambda ctx, g: original(ctx, g * (1 + 1e-3))))
    caught = []
    for p, before in candidates:
        new = set(check(p).kinds) - before
        if op in SECOND_ORDER_ONLY:
            want = {"second derivatives vs torch"} if torch is not None else set()
        else:
            want = {"finite differences"} | ({"backward vs torch", "mt.grad vs torch"}
                                             if torch is not None else set())
        caught.append(want <= new)
    assert any(caught), f"{op}'s backward scaled by 1 + 1e-3 went unnoticed on seeds " \
                        f"{[p.seed for p, _ in candidates]}"


@pytest.mark.parametrize("op", sorted(set(REGISTRY) - SECOND_ORDER_ONLY))
def test_a_perturbed_double_backward_is_caught(op, monkeypatch):
    """The same scaling only where `op`'s backward builds a graph (create_graph=True): the
    second-order phase must see it, in the create_graph gradients or in their own."""
    pytest.importorskip("torch")
    candidates = _candidates(op)                # judged with the op as it is
    cls = REGISTRY[op]
    original = cls.backward
    monkeypatch.setattr(cls, "backward", staticmethod(
        lambda ctx, g: original(ctx, g * (1 + 1e-3) if type(ctx) is Context else g)))
    caught = [bool(SECOND_KINDS & (set(check(p).kinds) - before)) for p, before in candidates]
    assert any(caught), f"{op}'s create_graph backward scaled by 1 + 1e-3 went unnoticed"


# ---- the generator draws what the issue asks for ------------------------------------------

def _stats(seeds, kinks=False):
    s = Counter()
    ops, forms_seen = set(), set()
    for seed in seeds:
        p = generate(seed, kinks=kinks)
        ops |= _recorded(p)
        uses = Counter(a.name for st in p.stmts for a in st.args if isinstance(a, Ref))
        uses.update(n for n, _ in p.loss)
        with np.errstate(all="ignore"), mt.no_grad():
            env, _ = execute(p, requires_grad=False)
        for n, u in uses.items():
            if env[n].ndim == 0 and u >= 3:
                s["0-d value used 3+ times"] += 1
            s[f"used {min(u, 4)}"] += 1
        for st in p.stmts:
            forms_seen.add(st.tag)
            a = st.attrs.get("axis", "none")
            if st.op in ("sum", "mean", "max", "min", "mt.sum", "mt.mean", "mt.max", "mt.min"):
                s["axis " + ("None" if a is None else "negative" if isinstance(a, int) and a < 0
                             else type(a).__name__)] += 1
                s[f"keepdims {st.attrs['keepdims']}"] += 1
            if st.op in ("matmul", "mt.matmul"):
                s["matmul " + "·".join(str(env[x.name].ndim) for x in st.args)] += 1
            if st.op in ("maximum", "minimum", "where"):
                a, b = st.args[-2:]
                for side, x in (("first", a), ("second", b)):
                    s[f"{st.op} number {side}"] += not isinstance(x, Ref)
            if st.op == "linear":
                s["linear with bias" if len(st.args) == 3 else "linear without bias"] += 1
                if env[st.args[0].name].size >= 4096 * env[st.args[0].name].shape[-1]:
                    s["linear of 4,096+ rows"] += 1
            if st.op in ("relu", "mt.relu", "F.relu", "abs", "mt.abs") and \
                    np.any(env[st.args[0].name].data == 0):
                s["relu/abs at 0"] += 1
            if st.op in ("maximum", "minimum") and all(isinstance(x, Ref) for x in st.args):
                x, y = (env[a.name].data for a in st.args)
                s["maximum/minimum tie"] += bool(np.any(np.asarray(x) == np.asarray(y)))
    return s, ops, forms_seen


def test_programs_draw_every_registered_op_and_every_form():
    s, ops, tags = _stats(CI_SEEDS)
    assert ops == set(REGISTRY) - SECOND_ORDER_ONLY, f"never recorded: {set(REGISTRY) - ops}"
    twice = set().union(*(_recorded_twice(generate(seed)) for seed in CI_SEEDS[:40]))
    assert SECOND_ORDER_ONLY <= twice, f"never made by create_graph: {SECOND_ORDER_ONLY - twice}"
    missing = set(forms.INDEX_FORMS) - tags
    assert not missing, f"index forms never drawn: {missing}"
    assert {"shared weight", "big linear"} <= tags
    need = ["0-d value used 3+ times", "used 3", "used 4", "axis None", "axis int",
            "axis negative", "axis tuple", "keepdims True", "keepdims False", "matmul 1·1",
            "matmul 2·1", "matmul 1·2", "matmul 2·2", "matmul 3·2", "linear with bias",
            "linear without bias", "linear of 4,096+ rows", "maximum number first",
            "maximum number second", "minimum number first", "where number first",
            "where number second"]
    assert all(s[k] > 0 for k in need), {k: s[k] for k in need}
    assert s["used 3"] + s["used 4"] > 0.12 * sum(s[f"used {k}"] for k in range(1, 5)), s


def test_the_kink_pass_sits_on_kinks_and_ties():
    s, ops, _ = _stats(KINK_SEEDS, kinks=True)
    assert s["relu/abs at 0"] >= 5 and s["maximum/minimum tie"] >= 5, s
    assert {"relu", "abs", "clip", "maximum", "minimum", "max", "min", "pow"} <= ops


def test_generation_is_deterministic_and_keeps_off_kinks():
    for seed in range(20):
        assert to_python(generate(seed)) == to_python(generate(seed))
        assert near_kink(generate(seed)) is None


def test_near_kink_finds_a_value_on_a_kink():
    p = Program(0, [Leaf("x0", np.array([0.5, 0.01]))],
                [Stmt(("v0",), "relu", (Ref("x0"),))], [("v0", np.ones(2))])
    assert "v0 = relu" in near_kink(p)
    assert "rejected" not in check(p).kinds and "0.01 from a kink" in check(p).rejected


def test_a_bias_that_grows_the_output_is_refused_at_forward_or_computed():
    """F.linear(x (1,), W (1, 1), b (2, 1)): torch gives (2, 1); microtensor may refuse it at
    forward with a MicrotensorError (the program is then not checked) or must agree."""
    p = Program(0, [Leaf("x0", np.array([0.5])), Leaf("x1", np.array([[1.5]])),
                    Leaf("x2", np.array([[-2.0], [1.0]]))],
                [Stmt(("v0",), "linear", (Ref("x0"), Ref("x1"), Ref("x2")))],
                [("v0", np.array([[1.0], [-0.5]]))])
    r = check(p)
    assert (r.rejected or "").startswith("microtensor refuses linear") or r.ok, r.failures


# ---- the printed script is the program ------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_printed_script_computes_what_the_interpreter_does(dtype):
    """exec(to_python(p)) gives the interpreter's loss and gradients, bit for bit."""
    for seed in range(0, 60, 3):
        p = generate(seed)
        ns = {}
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            exec(to_python(p, dtype, tail=[]), ns)
            env, loss = execute(p, dtype=dtype)
        assert np.array_equal(ns["loss"].data, loss.data), seed
        for leaf in p.leaves:
            assert np.array_equal(ns[leaf.name].data, env[leaf.name].data)
        outcome = []
        for run_loss in (ns["loss"], loss):
            try:
                with np.errstate(all="ignore"):
                    run_loss.backward()
                outcome.append(None)
            except Exception as e:         # the engine's bugs crash both alike
                outcome.append(type(e))
        assert outcome[0] == outcome[1], seed
        if outcome[0] is None:
            for leaf in p.leaves:
                g1, g2 = ns[leaf.name].grad, env[leaf.name].grad
                assert (g1 is None and g2 is None) or np.array_equal(g1, g2), (seed, leaf.name)


def test_index_expressions_print_as_python_reads_them():
    x = np.arange(24.0).reshape(4, 6)
    for ix in [((1, 1),), ((3, 0, 3), slice(1, None)), (), (Ellipsis, None),
               (slice(None, None, -2), [0, 0]), np.array([[1, 1], [0, 3]]),
               (None, Ellipsis, -1), slice(-1, 0, -1)]:
        src = to_python(Program(0, [Leaf("x0", x)], [Stmt(("v0",), "getitem", (Ref("x0"),),
                                                          {"index": ix})], [("v0", x[ix])]),
                        tail=[])
        ns = {}
        exec(src, ns)
        assert np.array_equal(ns["v0"].data, x[ix]), src.splitlines()[-2]


# ---- the minimiser and the command line -----------------------------------------------

def test_the_minimiser_shrinks_a_failure_to_the_op_that_causes_it(monkeypatch):
    cls = REGISTRY["exp"]
    original = cls.backward
    monkeypatch.setattr(cls, "backward", staticmethod(lambda ctx, g: original(ctx, g * 1.01)))
    p = next(p for p in (generate(s, force="exp", length=12) for s in range(50))
             if "finite differences" in check(p).kinds and len(p.stmts) >= 10)
    small = minimize(p, "finite differences", seconds=600, max_checks=400)
    assert len(small.stmts) <= 3 < len(p.stmts)
    assert "finite differences" in check(small).kinds
    assert "exp" in _recorded(small)
    assert ".exp()" in to_python(small) or "mt.exp(" in to_python(small)


def test_the_command_line_runs_programs_and_summarises():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["--count", "3", "--seed", "5", "--examples", "0"])
    head = out.getvalue().splitlines()[0]
    assert head.startswith("3 programs (seeds 5–7)")
    failed = int(head.split(" failed")[0].rsplit(" ", 1)[1])
    assert status == (1 if failed else 0)


def test_the_command_line_runs_the_compiled_replay():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["--compiled", "--count", "3", "--seed", "5", "--examples", "0"])
    head = out.getvalue().splitlines()[0]
    assert head.startswith("3 programs (seeds 5–7)") and "through mt.compile" in head
    assert " 3 passed, 0 failed" in head and status == 0
