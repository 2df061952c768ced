"""Graph BPTT (models.VanillaRNN + loss.backward()) against the hand-derived NumPy BPTT.

Prints, for each parameter and h0, the largest absolute and relative difference between
the two, at the classic char-RNN size and at a batched size, in float64.
"""
import argparse

import numpy as np

import microtensor as mt
from microtensor.models import VanillaRNN
from microtensor.models.rnn_reference import bptt

NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def compare(V, H, T, B, seed):
    mt.manual_seed(seed)
    model = VanillaRNN(V, H, V, init="torch")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (T + 1, B))
    xs = np.eye(V)[idx[:-1]]
    h0 = rng.standard_normal((B, H)) * 0.1
    h0_t = mt.tensor(h0, requires_grad=True)
    loss, _ = model.loss(xs, idx[1:], h0_t)
    loss.backward()
    ref = bptt({k: getattr(model, k).data for k in NAMES}, xs, idx[1:], h0)
    rows = [(k, getattr(model, k).grad, ref["d" + k]) for k in NAMES]
    rows.append(("h0", h0_t.grad, ref["dh0"]))
    print(f"\nV={V} H={H} T={T} B={B}: loss graph {loss.item():.15f}  hand {ref['loss']:.15f}")
    print(f"  {'param':6} {'shape':>11} {'max |graph − hand|':>20} {'max relative':>14}")
    worst = 0.0
    for name, g, r in rows:
        diff = np.max(np.abs(g - r))
        rel = diff / np.max(np.abs(r))
        worst = max(worst, rel)
        print(f"  {name:6} {str(g.shape):>11} {diff:20.3e} {rel:14.3e}")
    return worst


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="seed for weights and data")
    args = p.parse_args()
    worst = max(compare(65, 100, 25, 1, args.seed), compare(65, 64, 40, 8, args.seed))
    verdict = "equal to round-off" if worst < 1e-10 else "DIFFERENT"
    print(f"\nworst relative difference {worst:.2e}: graph BPTT and hand BPTT are {verdict}")
    raise SystemExit(0 if worst < 1e-10 else 1)


if __name__ == "__main__":
    main()
