"""The benchmark's implementations compute the same thing (it times only those that agree);
nothing here measures time."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import baselines  # noqa: E402
import bench_rnn  # noqa: E402

try:
    import torch  # noqa: F401
except ImportError:
    torch = None


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_every_training_step_baseline_agrees_with_the_tutorial_bptt(dtype, tol):
    names = [n for n in baselines.TRAINING_STEP
             if torch is not None or n not in baselines.TORCH_BASELINES]
    runners = {n: baselines.TRAINING_STEP[n](*baselines.rnn_problem(7, 5, 6, 3, dtype))
               for n in names}
    ok, errors, failures, _ = bench_rnn.checked(runners, tol)
    assert failures == {} and set(ok) == set(names)
    assert max(errors.values()) < tol and errors[bench_rnn.REFERENCE] == 0


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_the_compiled_tables_baselines_agree_with_the_tutorial_bptt(dtype, tol):
    """Issue 17's table: mt.compile (the trace and a replay), and jax.jit where jax is
    installed; torch.compile takes a minute to compile, so it is checked only with
    MT_TEST_TORCH_COMPILE=1 (the benchmark verifies it before timing it)."""
    makers = {"tutorial": baselines.hand_tutorial, "compiled": baselines.microtensor_compiled}
    try:
        import jax  # noqa: F401
        makers["jax.jit"] = baselines.jax_scan
    except ImportError:
        pass
    if torch is not None and os.environ.get("MT_TEST_TORCH_COMPILE") == "1":
        makers["torch.compile"] = baselines.torch_compiled
    problem = baselines.rnn_problem(7, 5, 6, 3, dtype)
    runners = {n: make(*problem) for n, make in makers.items()}
    for _ in range(2):                       # the compiled runner's step() replays
        ok, errors, failures, _ = bench_rnn.checked(runners, tol)
        assert failures == {} and set(ok) == set(makers), failures
    assert runners["compiled"].step.counts["replayed"] == 2


def test_the_chain_baselines_agree():
    rng = np.random.default_rng(1)
    h0, w, b = (rng.standard_normal(8) * 0.5 for _ in range(3))
    names = [n for n in baselines.CHAIN if torch is not None or n != "torch eager"]
    runners = {n: baselines.CHAIN[n](h0, w, b, 30) for n in names}
    ok, errors, failures, _ = bench_rnn.checked(runners, 1e-12)
    assert failures == {} and set(ok) == set(names)


@pytest.mark.skipif(torch is None, reason="the create_graph chain is compared with torch")
@pytest.mark.parametrize("hvp", [False, True])
def test_the_create_graph_chain_agrees_with_torch(hvp):
    rng = np.random.default_rng(1)
    h0, w, b = (rng.standard_normal(8) * 0.5 for _ in range(3))
    runners = {n: make(h0, w, b, 30, hvp=hvp) for n, make in baselines.CHAIN_CREATE_GRAPH.items()}
    ok, errors, failures, _ = bench_rnn.checked(runners, 1e-12)
    assert failures == {} and set(ok) == set(runners)


def test_a_baseline_that_disagrees_is_reported_and_not_timed():
    good = baselines.Runner(lambda: 1.0, lambda out: (out, {"W": np.ones(3)}))
    bad = baselines.Runner(lambda: 1.0, lambda out: (out, {"W": np.ones(3) * (1 + 1e-6)}))
    ok, errors, failures, _ = bench_rnn.checked({"ref": good, "bad": bad}, 1e-10)
    assert list(ok) == ["ref"]
    assert failures["bad"].startswith("not verified: rel. error 1.0e-06 in dW")


def test_the_fresh_process_worker_prints_a_step_time():
    out = subprocess.run([sys.executable, str(BENCH / "baselines.py"),
                          "microtensor (models.VanillaRNN)", "7", "5", "6", "3", "2"],
                         capture_output=True, text=True, timeout=120, check=True)
    seconds, faults = map(float, out.stdout.split())
    assert seconds > 0 and faults >= 0


def test_markdown_table_has_a_row_per_dict():
    text = bench_rnn.markdown_table([("a", "x"), ("b", "y")], [{"x": 1, "y": 2}, {"x": 3}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 |  |"]
