"""Speed of graph BPTT (models.VanillaRNN), eager and compiled, against hand-written NumPy,
PyTorch and JAX (issues 7 and 17).

Prints five Markdown tables, with the issues' targets beside microtensor's rows:
  1. per-op overhead: h = tanh(h·w + b) repeated (2,001 ops on shape (8,)), forward + backward,
     in µs/op for NumPy with a hand-written backward, torch eager and microtensor; the target
     (2.5 µs/op where the NumPy loop took 1.1) is judged as the ratio to the NumPy loop;
  2. one training step (forward, mean cross-entropy, backward) of a vanilla RNN at
     (V, H, T, B) = (65, 100, 25, 1), (65, 256, 50, 32), (65, 1024, 50, 64), float64 and float32,
     in ms/step and as a ratio to the tutorial-style hand BPTT of the same dtype;
  3. one step at T = 10,000 and T = 100,000 (H = 32, B = 1): time and peak memory above the
     baseline, each implementation in a fresh subprocess;
  4. the two larger training steps again, each implementation in a fresh process whose memory
     allocator nothing has warmed (see settle_allocator);
  5. issue 17's table: the same training steps through mt.compile against microtensor eager,
     the hoisted hand BPTT, jax.jit (value_and_grad over lax.scan), torch.compile (the whole
     step in one graph, Inductor on CPU) and torch.nn.RNN, with trace / compile times apart;
     the per-op chain replayed; the README's MGU cell and models.LSTM (H=64 T=50 B=16, Adam)
     compiled against eager. torch.compile takes 20–45 s to compile each size and dtype here:
     --no-torch-compile leaves it out; --compiled prints only this table.

Method: single-threaded BLAS (OMP/MKL/OPENBLAS_NUM_THREADS=1, torch.set_num_threads(1)); table 5
runs pinned to one CPU, since XLA's thread flags alone do not keep jax.jit on one core. Every
implementation is first checked equal to the reference (loss and all five gradients, max relative
error ≤ 1e-10 in float64, ≤ 1e-4 in float32); one that is not is reported and not timed. Timed
implementations run interleaved, one call each per round in a rotating order, after a warm-up
round; times are medians over rounds, and a ratio is the median of the per-round ratios (its
quartiles in brackets). Python's garbage collector stays enabled, as users have it. Tables 1 and 2
run after settle_allocator(), so they do not depend on what ran before them; table 4 shows the
case it removes. torch rows are skipped when torch is not importable. This is a benchmark: it
never asserts a time.

Run from the repository root: python benchmarks/bench_rnn.py [--quick] [--compiled]
[--no-torch-compile] [--markdown PATH]. jax rows need jax (pip install -e '.[bench]').
"""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"                  # before NumPy or torch load their BLAS

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None

import baselines  # noqa: E402
from baselines import PARAMS, TORCH_BASELINES, TRAINING_STEP  # noqa: E402

REFERENCE = "hand BPTT, tutorial style"
MICROTENSOR = "microtensor (models.VanillaRNN)"
CHAIN_STEPS = 667                                   # 3 ops each: 2,001 ops
PER_OP_TARGET = 2.5 / 1.1     # issue 7: ≤ 2.5 µs/op on a machine where the NumPy loop took 1.1.
                              # This shared machine runs the same loop at 1.0 to 2.1 µs/op from one
                              # run to the next, so the target is judged as that ratio.
STEP_SIZES = [                                      # (V, H, T, B), issue 7's target ratio, time budget (s)
    ((65, 100, 25, 1), 0.5, 6),
    ((65, 256, 50, 32), 1.0, 15),
    ((65, 1024, 50, 64), 0.95, 45),
]
LONG = {"V": 65, "H": 32, "B": 1, "T": (10_000, 100_000)}
LONG_IMPLS = [REFERENCE, "hand BPTT, hoisted", MICROTENSOR, "torch composed ops"]
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


# ---- timing and checking ---------------------------------------------------------------

def interleaved(runners, rounds, warmup=1):
    """Call each runner's step once per round, rotating the order; return {name: [seconds]}."""
    names = list(runners)
    times = {name: [] for name in names}
    for r in range(warmup + rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            runners[name].step()
            elapsed = time.perf_counter() - start
            if r >= warmup:
                times[name].append(elapsed)
    return times


def ratio_stats(times, ref):
    """Median and quartiles of the per-round ratios times / ref."""
    ratios = [t / r for t, r in zip(times, ref)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, med, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return med, q1, q3


def rounds_for(budget, seconds_per_round, quick):
    """As many rounds as fit the budget, at least 7 (3 with --quick), at most 300."""
    if quick:
        budget, least = budget / 5, 3
    else:
        least = 7
    return int(min(300, max(least, budget / max(seconds_per_round, 1e-9))))


def max_rel_error(got, want):
    """Largest relative error over the loss and each gradient (relative to the gradient's max)."""
    (loss, grads), (ref_loss, ref_grads) = got, want
    errors = {"loss": abs(loss - ref_loss) / max(abs(ref_loss), 1e-300)}
    for k, ref in ref_grads.items():
        g = np.asarray(grads[k], dtype=np.float64)
        errors["d" + k] = float(np.abs(g - ref).max() / max(np.abs(ref).max(), 1e-300))
    worst = max(errors, key=errors.get)
    return errors[worst], worst


def checked(runners, tolerance):
    """Run each runner once and compare it with the first; return (runners that agree, errors,
    failures, seconds one round took)."""
    results, seconds, errors, failures = {}, 0.0, {}, {}
    for name, runner in runners.items():
        start = time.perf_counter()
        out = runner.step()
        seconds += time.perf_counter() - start
        results[name] = runner.read(out)
    ref = results[next(iter(runners))]
    ok = {}
    for name, runner in runners.items():
        err, where = max_rel_error(results[name], ref)
        errors[name] = err
        if err <= tolerance:
            ok[name] = runner
        else:
            failures[name] = f"not verified: rel. error {err:.1e} in {where}"
    return ok, errors, failures, seconds


# ---- 1. per-op overhead ----------------------------------------------------------------

def bench_per_op(quick):
    rng = np.random.default_rng(0)
    h0, w, b = rng.standard_normal(8) * 0.5, rng.standard_normal(8) * 0.5, rng.standard_normal(8) * 0.1
    names = [n for n in baselines.CHAIN if torch is not None or n != "torch eager"]
    runners = {n: baselines.CHAIN[n](h0, w, b, CHAIN_STEPS) for n in names}
    ok, _, failures, seconds = checked(runners, 1e-12)
    times = interleaved(ok, rounds_for(6, seconds, quick))
    ops = 3 * CHAIN_STEPS
    ref = times["NumPy, hand backward"]
    rows = []
    for name in names:
        row = {"implementation": name, "target": "", "met": ""}
        if name in failures:
            row.update(time=failures[name], ratio="")
        else:
            us = statistics.median(times[name]) / ops * 1e6
            stats = ratio_stats(times[name], ref)
            row.update(time=f"{us:.2f}", ratio=_ratio_text(stats))
            if name == "microtensor":
                row.update(target=f"≤ 2.5 µs/op where NumPy takes 1.1: ≤ {PER_OP_TARGET:.2f}×",
                           met=_met(stats[0] <= PER_OP_TARGET))
        rows.append(row)
    if torch is None:
        rows.append({"implementation": "torch eager", "time": "skipped: torch not importable",
                     "ratio": "", "target": "", "met": ""})
    return rows, len(ref)


# ---- 2. training step ------------------------------------------------------------------

def bench_training_step(size, dtype, target, budget, quick):
    V, H, T, B = size
    params, xs, ys = baselines.rnn_problem(V, H, T, B, dtype)
    names = [n for n in TRAINING_STEP if torch is not None or n not in TORCH_BASELINES]
    runners = {n: TRAINING_STEP[n](params, xs, ys) for n in names}
    ok, errors, failures, seconds = checked(runners, TOLERANCE[dtype])
    rounds = rounds_for(budget, seconds, quick)
    times = interleaved(ok, rounds)
    label = f"V={V} H={H} T={T} B={B}"
    rows = []
    for name in TRAINING_STEP:
        row = {"size": label, "dtype": np.dtype(dtype).name, "implementation": name,
               "rounds": rounds, "target": "", "met": "", "verified": ""}
        if name not in names:
            row.update(time="skipped: torch not importable", ratio="")
        elif name in failures:
            row.update(time=failures[name], ratio="")
        else:
            ms = statistics.median(times[name]) * 1e3
            med, q1, q3 = ratio_stats(times[name], times[REFERENCE])
            row.update(time=f"{ms:.3g}" if ms < 100 else f"{ms:.0f}",
                       ratio="1.00" if name == REFERENCE else _ratio_text((med, q1, q3)),
                       verified="reference" if name == REFERENCE else f"{errors[name]:.0e}")
            if name == MICROTENSOR:
                row.update(target=f"≤ {target:.2f}", met=_met(med <= target))
        rows.append(row)
    return rows


def settle_allocator():
    """Allocate and free one 32 MB block, as any process that has held a large array has.

    glibc's malloc raises its mmap and trim thresholds to the largest block it has freed (up
    to 32 MiB), and after that keeps freed memory for reuse. Until then it returns a graph's
    memory to the OS after every step, and the next step page-faults it back in: ~8,000 faults
    a step for microtensor at H=256, B=32 (about 30 MB of graph). The hand-written baselines
    allocate little per step and barely notice. Settling first makes tables 1 and 2 the same
    whether or not the torch rows (which free large blocks) ran before microtensor's.
    """
    block = np.ones(4_000_000)          # 32,000,000 bytes: under glibc's 32 MiB cap
    del block


# ---- 4. training steps in fresh processes ---------------------------------------------

FRESH_IMPLS = [REFERENCE, "hand BPTT, hoisted", MICROTENSOR]


def bench_fresh(quick):
    """Each implementation's median step and page faults per step in its own new process (no
    torch import, allocator untouched), at the two larger training-step sizes, float64.
    The processes run one after another, so compare faults (exact) rather than times."""
    rows = []
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "baselines.py")
    for size, _, _ in STEP_SIZES[1:]:
        rounds = 3 if quick else (20 if size[1] <= 256 else 7)
        for name in FRESH_IMPLS:
            _progress(f"  fresh process {size}: {name}")
            cmd = [sys.executable, worker, name, *map(str, size), str(rounds)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            row = {"size": "V={} H={} T={} B={}".format(*size), "implementation": name,
                   "rounds": rounds}
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                row.update(time=f"failed (exit {proc.returncode}): {last}", faults="")
            else:
                seconds, faults = map(float, proc.stdout.split())
                row.update(time=f"{seconds * 1e3:.3g}", faults=f"{faults:,.0f}")
            rows.append(row)
    return rows


# ---- 3. long sequences, each in a fresh process ----------------------------------------

def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False when the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def long_worker(name, T, out_path):
    """Entry point of the subprocess: one step of `name` at length T; prints JSON, saves grads."""
    V, H, B = LONG["V"], LONG["H"], LONG["B"]
    make = TRAINING_STEP[name]
    warm = make(*baselines.rnn_problem(V, H, 10, B, np.float64))
    warm.read(warm.step())                          # first-call costs: lazy imports, BLAS setup
    runner = make(*baselines.rnn_problem(V, H, T, B, np.float64))
    del warm
    gc.collect()
    reset = _reset_peak_rss()
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    out = runner.step()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    loss, grads = runner.read(out)
    np.savez(out_path, loss=loss, **grads)
    print(json.dumps({"seconds": seconds, "peak_mib": (peak - before) / 1024, "reset": reset}))


def run_long(name, T, out_path):
    cmd = [sys.executable, os.path.abspath(__file__), "--long-worker", name, str(T), out_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"failed (exit {proc.returncode}): {last}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out_path) as f:
        result["read"] = float(f["loss"]), {k: f[k] for k in PARAMS}
    return result, None


def bench_long(T):
    names = [n for n in LONG_IMPLS if torch is not None or n not in TORCH_BASELINES]
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            _progress(f"  T={T:,}: {name}")
            results[name], error = run_long(name, T, os.path.join(tmp, f"{i}.npz"))
            if error:
                results[name] = error
    ref = results.get(REFERENCE)
    for name in LONG_IMPLS:
        row = {"T": f"{T:,}", "implementation": name, "target": "", "met": "", "ratio": "",
               "memory": "", "verified": ""}
        r = results.get(name, "skipped: torch not importable")
        if isinstance(r, str):
            row["time"] = r
            rows.append(row)
            continue
        err, where = max_rel_error(r["read"], ref["read"]) if isinstance(ref, dict) else (np.nan, "")
        ratio = r["seconds"] / ref["seconds"] if isinstance(ref, dict) else np.nan
        row.update(time=f"{r['seconds']:.2f}", ratio=f"{ratio:.2f}",
                   memory=f"{r['peak_mib']:.0f}" + ("" if r["reset"] else " (upper bound)"),
                   verified="reference" if name == REFERENCE else f"{err:.0e}")
        if err > TOLERANCE[np.float64]:
            row["verified"] = f"NOT verified: {err:.1e} in {where}"
        if name == MICROTENSOR and T == 100_000:
            row.update(target="≤ 2× and ≤ 400 MiB",
                       met=_met(ratio <= 2 and r["peak_mib"] <= 400,
                                [what for what, bad in (("time", ratio > 2),
                                                        ("memory", r["peak_mib"] > 400)) if bad]))
        rows.append(row)
    return rows


# ---- 5. issue 17: compiled steps (mt.compile), jax.jit, torch.compile -------------------

COMPILE_TARGETS = {(65, 100, 25, 1): "≤ 0.8× jax.jit and ≤ 1.3× hoisted",
                   (65, 256, 50, 32): "≤ 0.95× jax.jit and ≤ 1.02× hoisted",
                   (65, 1024, 50, 64): "≤ 1.02× hoisted, ahead of jax.jit"}


def _jax_single_threaded():
    """XLA flags for one CPU thread (before jax is imported); False if jax is missing."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1")
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def _cpu_wall(step, n=5):
    """CPU time / wall time over n calls (≈ 1 when single-threaded)."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        step()
    return (time.process_time() - c0) / max(time.perf_counter() - w0, 1e-9)


def _seconds(t):
    return f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.1f} s"


def _one_core():
    """Pin this process, every thread of it, to one CPU; the CPU set before (None where the
    OS cannot pin). XLA's flags alone leave jax.jit using both cores of this machine (CPU/wall
    1.2 at H=100, 1.9 at H=1024 in one run): pinned, every row is single-threaded."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(before)})
    return before


def bench_compiled(quick, with_torch_compile=True):
    """Rows of issue 17's table, each implementation verified against the hand BPTT first,
    the process pinned to one CPU."""
    has_jax = _jax_single_threaded()
    with_torch_compile = with_torch_compile and torch is not None
    cold = None
    if with_torch_compile:          # Inductor's on-disk caches empty: compile times are cold
        cold = tempfile.TemporaryDirectory(prefix="bench-inductor-", ignore_cleanup_errors=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cold.name
    cpus = _one_core()
    try:
        rows, notes = _bench_compiled(quick, has_jax, with_torch_compile)
        notes.insert(0, f"pinned to CPU {max(cpus)} of {sorted(cpus)}" if cpus else
                        "not pinned to one CPU (no os.sched_setaffinity here)")
        return rows, notes
    finally:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if cold is not None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            cold.cleanup()


def _bench_compiled(quick, has_jax, with_torch_compile):
    rows, notes = [], []
    if not has_jax:
        notes.append("jax.jit: skipped, jax is not importable (pip install -e '.[bench]')")
    if torch is None:
        notes.append("torch.compile, torch.nn.RNN: skipped, torch is not importable")
    elif not with_torch_compile:
        notes.append("torch.compile: left out of this run (--no-torch-compile)")
    # per-op replay of the 2,001-op chain
    rng = np.random.default_rng(0)
    h0, w, b = rng.standard_normal(8) * 0.5, rng.standard_normal(8) * 0.5, rng.standard_normal(8) * 0.1
    runners = {"NumPy, hand backward": baselines.chain_numpy(h0, w, b, CHAIN_STEPS),
               "microtensor eager": baselines.chain_microtensor(h0, w, b, CHAIN_STEPS),
               "microtensor compiled": baselines.chain_compiled(h0, w, b, CHAIN_STEPS)}
    trace = runners["microtensor compiled"].trace_seconds
    ok, errors, failures, seconds = checked(runners, 0.0)       # bitwise: error exactly 0
    times = interleaved(ok, rounds_for(6, seconds, quick))
    ref = times["NumPy, hand backward"]
    row = {"what": f"per-op chain, {3 * CHAIN_STEPS:,} ops on shape (8,): µs/op "
                   f"(× the NumPy loop with a hand backward"
                   + (f", {statistics.median(ref) / (3 * CHAIN_STEPS) * 1e6:.2f} µs/op)" if ref else ")"),
           "target": "compiled ≤ 1.2× the NumPy loop; trace ≤ 3 eager steps"}
    for name, key in (("microtensor eager", "eager"), ("microtensor compiled", "compiled")):
        if name in failures:
            row[key] = failures[name]
        elif name in times:
            us = statistics.median(times[name]) / (3 * CHAIN_STEPS) * 1e6
            row[key] = f"{us:.2f} ({ratio_stats(times[name], ref)[0]:.2f}×)"
    if "microtensor compiled" in times and "microtensor eager" in times:
        med = ratio_stats(times["microtensor compiled"], ref)[0]
        steps = trace / statistics.median(times["microtensor eager"])
        row.update(compiled=f"**{row['compiled']}**",
                   trace=f"{_seconds(trace)} = {steps:.1f} eager steps",
                   met=_met(med <= 1.2 and steps <= 3,
                            [w for w, bad in (("speed", med > 1.2), ("trace", steps > 3)) if bad]))
    rows.append(row)
    # training steps
    for dtype in (np.float64, np.float32):
        for size, _, budget in STEP_SIZES:
            V, H, T, B = size
            _progress(f"compiled training step {size} {np.dtype(dtype).name} ...")
            params, xs, ys = baselines.rnn_problem(V, H, T, B, dtype)
            makers = {REFERENCE: baselines.hand_tutorial, "hoisted": baselines.hand_hoisted,
                      "eager": baselines.microtensor_rnn, "compiled": baselines.microtensor_compiled}
            if has_jax:
                makers["jax.jit"] = baselines.jax_scan
            if with_torch_compile:
                makers["torch.compile"] = baselines.torch_compiled
            if torch is not None:
                makers["torch.nn.RNN"] = baselines.torch_nn_rnn
            runners, traces = {}, {}
            for name, make in makers.items():
                if name == "torch.compile":
                    _progress("  torch.compile: compiling (20-45 s here) ...")
                try:
                    runners[name] = make(params, xs, ys)
                    traces[name] = getattr(runners[name], "trace_seconds", None)
                except Exception as e:                       # an optional baseline that fails
                    notes.append(f"{name} at {size} {np.dtype(dtype).name}: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0][:120]}")
            ok, errors, failures, seconds = checked(runners, TOLERANCE[dtype])
            if "jax.jit" in ok:
                notes.append(f"jax.jit at {size} {np.dtype(dtype).name}: CPU/wall "
                             f"{_cpu_wall(ok['jax.jit'].step):.2f}")
            times = interleaved(ok, rounds_for(budget, seconds, quick))
            if "torch.compile" in ok:
                tc = ok["torch.compile"]
                notes.append(f"torch.compile at {size} {np.dtype(dtype).name}: {tc.mode}; "
                             f"CPU/wall {_cpu_wall(tc.step):.2f}; graphs compiled after the "
                             f"first call: {tc.recompiles()}")
            ref = times[REFERENCE]
            stats = {n: ratio_stats(times[n], ref)[0] for n in ok}
            row = {"what": f"training step V={V} H={H} T={T} B={B}, {np.dtype(dtype).name}"}
            for name in makers:
                key = name.replace(".", "_").replace(" ", "_")
                if name in failures:
                    row[key] = failures[name]
                elif name in stats:
                    row[key] = f"{stats[name]:.2f}"
            row["compiled"] = f"**{stats['compiled']:.2f}**" if "compiled" in stats else row.get("compiled")
            step = statistics.median(times["eager"]) if "eager" in times else float("nan")
            row["trace"] = "; ".join(
                f"{n}: {_seconds(t)}" + (f" = {t / step:.1f} eager steps" if n == "compiled" else "")
                for n, t in traces.items() if t)
            target = COMPILE_TARGETS[size]
            met = None
            if "compiled" in stats:
                c, ho = stats["compiled"], stats["hoisted"]
                jx = stats.get("jax.jit")
                if size[1] == 100:
                    met = c <= 1.3 * ho and (jx is None or c <= 0.8 * jx)
                elif size[1] == 256:
                    met = c <= 1.02 * ho and (jx is None or c <= 0.95 * jx)
                else:
                    met = c <= 1.02 * ho and (jx is None or c < jx)
            how = "" if met is None else f" ({c / ho:.2f}× hoisted" + (
                "" if jx is None else f", {c / jx:.2f}× jax.jit") + ")"
            row.update(target=target, met=_met(bool(met)) + how if met is not None else "")
            rows.append(row)
    # the README's MGU cell and models.LSTM
    for kind in ("mgu", "lstm"):
        _progress(f"compiled {kind} H=64 T=50 B=16 ...")
        eager = baselines.cell_step(kind)
        compiled = baselines.cell_step(kind, compiled=True)
        e1 = eager.read(eager.step())                       # the call the trace stands for
        first = compiled.read(compiled.first)
        e2, c2 = eager.read(eager.step()), compiled.read(compiled.step())
        same = all(e[0] == c[0] and all(np.array_equal(e[1][k], c[1][k]) for k in e[1])
                   for e, c in ((e1, first), (e2, c2)))
        times = interleaved({"eager": eager, "compiled": compiled}, rounds_for(6, 0.05, quick))
        speed = statistics.median([a / b for a, b in zip(times["eager"], times["compiled"])])
        e_ms = statistics.median(times["eager"]) * 1e3
        name = "the README's MGU cell" if kind == "mgu" else "models.LSTM"
        rows.append({"what": f"{name}, H=64 T=50 B=16, training step (Adam)",
                     "eager": f"{e_ms:.2f} ms",
                     "compiled": f"**{statistics.median(times['compiled']) * 1e3:.2f} ms: "
                                 f"{speed:.1f}× faster**" + ("" if same else " NOT bitwise equal"),
                     "trace": f"{compiled.trace_seconds * 1e3:.0f} ms = "
                              f"{compiled.trace_seconds * 1e3 / e_ms:.1f} eager steps",
                     "target": "compiled ≥ 3× faster", "met": _met(speed >= 3 and same)})
    return rows, notes


# ---- profile ---------------------------------------------------------------------------

def profile(steps):
    """cProfile (top 25 by tottime) and, if installed, pyinstrument, on the classic-size step."""
    import cProfile
    import pstats
    runner = baselines.microtensor_rnn(*baselines.rnn_problem(65, 100, 25, 1, np.float64))
    runner.step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        runner.step()
    prof.disable()
    print(f"## cProfile: {steps} microtensor training steps, V=65 H=100 T=25 B=1, float64\n")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("pyinstrument is not installed (pip install pyinstrument) — its profile is skipped.")
        return
    p = Profiler(interval=1e-4)
    p.start()
    for _ in range(steps):
        runner.step()
    p.stop()
    print(f"## pyinstrument: the same {steps} steps\n")
    print(p.output_text(unicode=True, color=False))


# ---- report ----------------------------------------------------------------------------

def _met(ok, why=()):
    return "met" if ok else "**not met**" + (f" ({', '.join(why)})" if why else "")


def _ratio_text(stats):
    med, q1, q3 = stats
    return f"{med:.2f} [{q1:.2f}, {q3:.2f}]"


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


def markdown_table(columns, rows):
    """columns: [(heading, key)]; rows: dicts."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(k, "")) for _, k in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_header():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or cpu
    from importlib.metadata import PackageNotFoundError, version
    try:
        mt_version = version("microtensor")
    except PackageNotFoundError:
        mt_version = "(source tree)"
    torch_version = torch.__version__ if torch is not None else "not importable (torch rows skipped)"
    return (f"Run {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {cpu} "
            f"({os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f} at the start), "
            f"single-threaded BLAS; Python "
            f"{platform.python_version()}, NumPy {np.__version__}, torch {torch_version}, "
            f"microtensor {mt_version}.")


def report(args):
    sections = [f"# microtensor RNN benchmark\n\n{machine_header()}"]
    settle_allocator()
    _progress("per-op overhead ...")
    rows, rounds = bench_per_op(args.quick)
    sections.append(f"## Per-op overhead: {3 * CHAIN_STEPS:,} ops (h = tanh(h·w + b)) on shape (8,), "
                    f"forward + backward, median of {rounds} rounds\n\n" + markdown_table(
                        [("implementation", "implementation"), ("µs/op", "time"),
                         ("× NumPy hand backward", "ratio"), ("target", "target"), ("", "met")], rows))

    rows = []
    for dtype in (np.float64, np.float32):
        for size, target, budget in STEP_SIZES:
            _progress(f"training step {size} {np.dtype(dtype).name} ...")
            rows += bench_training_step(size, dtype, target, budget, args.quick)
    sections.append("## Training step (forward, loss, backward), one-hot inputs, many-to-many\n\n"
                    + markdown_table(
                        [("size", "size"), ("dtype", "dtype"), ("implementation", "implementation"),
                         ("ms/step", "time"), ("× tutorial hand BPTT [quartiles]", "ratio"),
                         ("rounds", "rounds"),
                         ("max rel. error", "verified"), ("target", "target"), ("", "met")], rows))

    rows = []
    for T in LONG["T"]:
        _progress(f"long sequence T={T:,} ...")
        rows += bench_long(T)
    sections.append(f"## One step on a long sequence: V={LONG['V']} H={LONG['H']} B={LONG['B']}, "
                    "float64, each in a fresh process (one run each)\n\n" + markdown_table(
                        [("T", "T"), ("implementation", "implementation"), ("s", "time"),
                         ("× tutorial hand BPTT", "ratio"), ("peak MiB above baseline", "memory"),
                         ("max rel. error", "verified"), ("target", "target"), ("", "met")], rows))

    _progress("training steps in fresh processes ...")
    rows = bench_fresh(args.quick)
    sections.append("## Training step in a fresh process, allocator not settled (float64; no "
                    "target: what a new process sees before it has freed a large block)\n\n"
                    + markdown_table(
                        [("size", "size"), ("implementation", "implementation"),
                         ("ms/step", "time"), ("page faults per step", "faults"),
                         ("rounds", "rounds")], rows))

    _progress("compiled steps (issue 17) ...")
    settle_allocator()
    sections.append("## Compiled steps (issue 17): mt.compile against eager, the hand BPTT, "
                    "jax.jit, torch.compile and torch.nn.RNN\n\n" + compiled_section(args).rstrip())
    return "\n\n".join(sections) + "\n"


def compiled_section(args):
    """Issue 17's table and its notes (Markdown)."""
    rows, notes = bench_compiled(args.quick, not args.no_torch_compile)
    table = markdown_table(
        [("what", "what"), ("hoisted hand BPTT", "hoisted"), ("jax.jit", "jax_jit"),
         ("torch.compile", "torch_compile"), ("torch.nn.RNN", "torch_nn_RNN"),
         ("microtensor eager", "eager"), ("**microtensor compiled**", "compiled"),
         ("trace / compile time", "trace"), ("target", "target"), ("", "met")], rows)
    return ("Training steps: ratios to the tutorial-style hand BPTT of the same size and dtype "
            "(median of per-round ratios; lower is faster), every implementation verified "
            "against it first (max rel. error ≤ 1e-10 in float64, ≤ 1e-4 in float32; the "
            "per-op chain and the cells bitwise). Trace / compile time is the first call, "
            f"apart from the step times.\n\n{table}\n\n" + "".join(f"- {n}\n" for n in notes))


def compiled_report(args):
    settle_allocator()
    return f"# microtensor compiled steps (issue 17)\n\n{machine_header()}\n\n" + \
        compiled_section(args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (a fifth of the time budget, at least 3 rounds)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables to PATH")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the tables, profile microtensor's training step at "
                             "V=65 H=100 T=25 B=1 (cProfile, and pyinstrument if installed)")
    parser.add_argument("--profile-steps", type=int, default=200, metavar="N",
                        help="training steps to profile (default 200)")
    parser.add_argument("--compiled", action="store_true",
                        help="only issue 17's table: mt.compile against eager, the hand BPTT, "
                             "jax.jit and torch.compile")
    parser.add_argument("--no-torch-compile", action="store_true",
                        help="leave torch.compile out of the compiled table")
    parser.add_argument("--long-worker", nargs=3, metavar=("NAME", "T", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.long_worker:
        name, T, out = args.long_worker
        return long_worker(name, int(T), out)
    if args.profile:
        return profile(args.profile_steps)
    start = time.perf_counter()
    text = compiled_report(args) if args.compiled else report(args)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    _progress(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
