"""Cost of create_graph=True on the per-op chain (issue 16), against torch's.

The 2,001-op chain of bench_rnn.py's first table (h = tanh(h·w + b) on shape (8,)), three ways,
each in µs per forward op and as a ratio to torch eager in the same rounds:
  first order    forward + backward (the first table's row, for scale);
  create_graph   forward + mt.grad(h_T.sum(), [w, b], create_graph=True): gradients as Tensors;
  + hvp          the same, then the gradient of Σ∂w + Σ∂b: a Hessian-vector product.
Each pair is first checked equal (1e-12). Single-threaded, interleaved rounds, medians, as
bench_rnn.py, but timed in CPU time of the thread (time.thread_time): this shared machine's
load changes wall times by 2-5x from one minute to the next. Never asserts a time.

Run from the repository root: python benchmarks/bench_create_graph.py [--quick]
"""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

import baselines  # noqa: E402
from bench_rnn import (CHAIN_STEPS, _ratio_text, checked, machine_header,  # noqa: E402
                       markdown_table, ratio_stats, settle_allocator)

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None

KINDS = {
    "first order": (baselines.chain_torch, baselines.chain_microtensor),
    "create_graph": (baselines.chain_create_graph_torch,
                     baselines.chain_create_graph_microtensor),
    "create_graph + hvp": (partial(baselines.chain_create_graph_torch, hvp=True),
                           partial(baselines.chain_create_graph_microtensor, hvp=True)),
}


def interleaved_cpu(runners, rounds, warmup=1):
    """bench_rnn.interleaved, in CPU seconds of this thread."""
    names = list(runners)
    times = {name: [] for name in names}
    for r in range(warmup + rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.thread_time()
            runners[name].step()
            if r >= warmup:
                times[name].append(time.thread_time() - start)
    return times


def bench(quick):
    rng = np.random.default_rng(0)
    h0, w, b = rng.standard_normal(8) * 0.5, rng.standard_normal(8) * 0.5, rng.standard_normal(8) * 0.1
    ops = 3 * CHAIN_STEPS
    rows = []
    for kind, (theirs, ours) in KINDS.items():
        runners = {"torch eager": theirs(h0, w, b, CHAIN_STEPS),
                   "microtensor": ours(h0, w, b, CHAIN_STEPS)}
        ok, errors, failures, seconds = checked(runners, 1e-12)
        if failures:
            rows.append({"kind": kind, "mt": failures.get("microtensor", ""), "torch": "",
                         "ratio": ""})
            continue
        times = interleaved_cpu(ok, 3 if quick else max(7, int(6 / max(seconds, 1e-9))))
        mt_us = statistics.median(times["microtensor"]) / ops * 1e6
        torch_us = statistics.median(times["torch eager"]) / ops * 1e6
        rows.append({"kind": kind, "mt": f"{mt_us:.2f}", "torch": f"{torch_us:.2f}",
                     "ratio": _ratio_text(ratio_stats(times["microtensor"], times["torch eager"])),
                     "rounds": len(times["microtensor"]), "err": f"{errors['microtensor']:.0e}"})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds per row")
    args = parser.parse_args(argv)
    if torch is None:
        raise SystemExit("bench_create_graph.py compares with torch, which is not importable")
    settle_allocator()
    print(machine_header())
    print()
    print(f"## create_graph=True on the per-op chain: {3 * CHAIN_STEPS:,} ops on shape (8,)")
    print()
    print(markdown_table([("what", "kind"), ("microtensor µs/op", "mt"),
                          ("torch eager µs/op", "torch"), ("× torch [quartiles]", "ratio"),
                          ("rounds", "rounds"), ("max rel. difference", "err")], bench(args.quick)))


if __name__ == "__main__":
    main()
