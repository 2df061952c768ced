"""Many-to-one sequence classification: the parity of a variable-length bit sequence.

Each sequence is 1 to --length bits (±1 inputs), padded to a common length and run with
lengths=, so each sequence's final state is the one at its own last bit; a linear layer
reads the last layer's final h and says whether the number of 1s is odd. Parity needs
every bit, so a model that forgets any of them stays at chance.

    python examples/sequence_classification.py --cell gru --steps 400
"""
import argparse
import time

import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor import nn
from microtensor.models import GRU, LSTM, VanillaRNNCell

RECURRENCES = {
    "rnn": lambda H: nn.Recurrent(VanillaRNNCell(1, H, init="torch")),
    "lstm": lambda H: LSTM(1, H),
    "gru": lambda H: GRU(1, H),
}


class Classifier(nn.Module):
    """A recurrence read at each sequence's own last step by a linear layer."""

    def __init__(self, rnn, num_classes):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.cells[0].hidden_size, num_classes)

    def forward(self, xs, lengths):
        _, state = self.rnn(xs, lengths=lengths)
        h = self.rnn.cells[0].output(state)          # (layers, B, H); h of an LSTM's (h, c)
        return self.head(h[h.shape[0] - 1])


def parity_batch(rng, batch, max_length):
    """Padded bits (T, B, 1) as ±1, lengths (B,), and labels (B,): is the count of 1s odd?"""
    lengths = rng.integers(1, max_length + 1, batch)
    bits = rng.integers(0, 2, (max_length, batch))
    bits[np.arange(max_length)[:, None] >= lengths[None, :]] = 0      # padding
    xs = mt.tensor((bits * 2.0 - 1)[..., None])
    return xs, lengths, bits.sum(axis=0) % 2


@mt.no_grad()
def accuracy(model, xs, lengths, labels):
    return float((model(xs, lengths).data.argmax(axis=1) == labels).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=sorted(RECURRENCES), default="gru")
    parser.add_argument("--steps", type=int, default=400, help="training steps")
    parser.add_argument("--length", type=int, default=12, help="longest sequence")
    parser.add_argument("--hidden", type=int, default=16, help="hidden size H")
    parser.add_argument("--batch", type=int, default=32, help="sequences per step")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    mt.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = Classifier(RECURRENCES[args.cell](args.hidden), 2)
    opt = mt.optim.Adam(model.parameters(), lr=args.lr)
    test = parity_batch(np.random.default_rng(args.seed + 1), 1000, args.length)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        xs, lengths, labels = parity_batch(rng, args.batch, args.length)
        loss = F.cross_entropy(model(xs, lengths), labels)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % max(1, args.steps // 5) == 0 or step == args.steps:
            print(f"step {step:5d}  loss {loss.item():.3f}  "
                  f"test accuracy {accuracy(model, *test):.3f}")
    print(f"{args.cell}: test accuracy {accuracy(model, *test):.3f} on parity of 1 to "
          f"{args.length} bits ({args.steps} steps, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
