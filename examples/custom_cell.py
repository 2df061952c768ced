"""Define a new recurrent cell in about 20 lines, check its gradients, and race it against the
vanilla RNN on a task that needs memory.

The task (many-to-one): each step brings a value in (−1, 1) and a marker bit; two steps are
marked, and the class is whether the two marked values sum to more than 0 — the adding
problem as a classification. The first mark can come early, so the model must hold that
value across many steps of noise. Both cells are wrapped the same way: nn.Recurrent, then a
linear layer on the last step's output.

    python examples/custom_cell.py --steps 300 --length 20
"""
import argparse
import time

import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor import nn
from microtensor.models import VanillaRNNCell


class MinimalGatedUnit(nn.RecurrentCell):
    """The minimal gated unit (Zhou et al., 2016): a GRU with one gate, f.

    f = σ(x W_fᵀ + h U_fᵀ + b_f);  h̃ = tanh(x W_hᵀ + (f ⊙ h) U_hᵀ + b_h);  h' = h + f ⊙ (h̃ − h)
    """

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        H, k, rng = hidden_size, 1 / np.sqrt(hidden_size), mt.generator()
        self.W = nn.Parameter(rng.uniform(-k, k, (2 * H, input_size)))     # [W_f; W_h]
        self.b = nn.Parameter(np.zeros(2 * H))
        self.U_f = nn.Parameter(rng.uniform(-k, k, (H, H)))
        self.U_h = nn.Parameter(rng.uniform(-k, k, (H, H)))

    def precompute(self, xs):               # the input projection of all steps, one matmul
        return F.linear(xs, self.W, self.b)

    def forward(self, xp, h):               # one step: xp is this step's row of precompute
        x_f, x_h = mt.split(xp, 2, axis=1)
        f = F.linear_add(h, self.U_f, x_f).sigmoid()            # h U_fᵀ + x_f in one op
        h_new = F.linear_add(f * h, self.U_h, x_h).tanh()
        return h + f * (h_new - h)


class Classifier(nn.Module):
    """Any cell, unrolled by nn.Recurrent, read at the last step by a linear layer."""

    def __init__(self, cell, num_classes):
        super().__init__()
        self.rnn = nn.Recurrent(cell)
        self.head = nn.Linear(cell.hidden_size, num_classes)

    def forward(self, xs):
        outputs, _ = self.rnn(xs)
        return self.head(outputs[xs.shape[0] - 1])


def marked_sum_batch(rng, batch, length):
    """Inputs (T, B, 2) of (value, marker) and labels (B,): do the marked values sum > 0?"""
    values = rng.uniform(-1, 1, (length, batch))
    first = rng.integers(0, length // 2, batch)
    second = rng.integers(length // 2, length, batch)
    markers = np.zeros((length, batch))
    markers[first, np.arange(batch)] = markers[second, np.arange(batch)] = 1
    labels = ((values * markers).sum(axis=0) > 0).astype(np.int64)
    return mt.tensor(np.stack([values, markers], axis=-1)), labels


def train(model, args, rng):
    opt = mt.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.steps):
        xs, labels = marked_sum_batch(rng, args.batch, args.length)
        loss = F.cross_entropy(model(xs), labels)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return loss.item()


@mt.no_grad()
def accuracy(model, xs, labels):
    return float((model(xs).data.argmax(axis=1) == labels).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--length", type=int, default=20, help="sequence length T")
    parser.add_argument("--hidden", type=int, default=16, help="hidden size H")
    parser.add_argument("--batch", type=int, default=32, help="sequences per step")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    mt.manual_seed(args.seed)
    cell = MinimalGatedUnit(2, 3)
    xs = mt.tensor(np.random.default_rng(args.seed).standard_normal((4, 2, 2)))
    mt.gradcheck(lambda *params: nn.unroll(cell, xs)[0].sum(), list(cell.parameters()))
    print("gradcheck MinimalGatedUnit(2, 3) over 4 steps: ok")

    test_xs, test_labels = marked_sum_batch(np.random.default_rng(args.seed + 1), 500,
                                            args.length)
    cells = {"MinimalGatedUnit": MinimalGatedUnit(2, args.hidden),
             "VanillaRNN": VanillaRNNCell(2, args.hidden, init="torch")}
    for name, cell in cells.items():
        model = Classifier(cell, 2)
        start = time.perf_counter()
        loss = train(model, args, np.random.default_rng(args.seed))
        print(f"{name:>16}: test accuracy {accuracy(model, test_xs, test_labels):.3f} "
              f"(final training loss {loss:.3f}, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
