"""The vanilla RNN of the classic tutorials, built from microtensor's public API only."""
import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor import nn


class VanillaRNNCell(nn.RecurrentCell):
    """h_t = tanh(x_t Wxhᵀ + h_{t−1} Whhᵀ + bh).

    The input projection x Wxhᵀ + bh of every step is one matmul before the loop
    (precompute), so a step is one linear op (h Whhᵀ plus that row) and a tanh.
    init="classic" draws weights from N(0, 0.01²) with zero biases, as min-char-rnn;
    init="torch" uses U(−1/√H, 1/√H) for all, as torch.nn.RNN.
    """

    def __init__(self, input_size, hidden_size, init="classic", dtype=np.float64):
        super().__init__(input_size, hidden_size)
        H, I = hidden_size, input_size
        self.init = init
        self.Wxh = nn.Parameter(_weight((H, I), H, init, dtype))
        self.Whh = nn.Parameter(_weight((H, H), H, init, dtype))
        self.bh = nn.Parameter(_bias(H, H, init, dtype))

    def precompute(self, xs):
        return F.linear(xs, self.Wxh, self.bh)

    def forward(self, xp_t, h):
        return F.linear(h, self.Whh, xp_t).tanh()     # tanh(h Whhᵀ + x Wxhᵀ + bh)

    def make(self, input_size):
        return type(self)(input_size, self.hidden_size, self.init, self.Whh.dtype)


def _weight(shape, fan, init, dtype):
    rng = mt.generator()
    if init == "classic":
        return (rng.standard_normal(shape) * 0.01).astype(dtype)
    if init == "torch":
        k = 1 / np.sqrt(fan)
        return rng.uniform(-k, k, shape).astype(dtype)
    raise ValueError(f"init must be 'classic' or 'torch', got {init!r}")


def _bias(n, fan, init, dtype):
    if init == "classic":
        return np.zeros(n, dtype=dtype)
    return _weight((n,), fan, init, dtype)


class VanillaRNN(nn.Module):
    """A vanilla RNN with a linear output: y_t = h_t Whyᵀ + by, softmax on top.

    Parameters as in the classic tutorials: Wxh (H, I), Whh (H, H), Why (O, H), bh (H,),
    by (O,). The recurrence is VanillaRNNCell, unrolled by mt.nn.unroll, so BPTT is just
    loss.backward(). forward(xs (T, B, I), h0 (B, H) = zeros) -> (logits (T, B, O), h_T).
    """

    def __init__(self, input_size, hidden_size, output_size, init="classic",
                 dtype=np.float64):
        super().__init__()
        cell = VanillaRNNCell(input_size, hidden_size, init, dtype)
        self.Wxh, self.Whh, self.bh = cell.Wxh, cell.Whh, cell.bh   # the classic names
        self.Why = nn.Parameter(_weight((output_size, hidden_size), hidden_size, init, dtype))
        self.by = nn.Parameter(_bias(output_size, hidden_size, init, dtype))
        object.__setattr__(self, "cell", cell)   # a view of the five: not registered twice
        self.input_size, self.hidden_size, self.output_size = \
            input_size, hidden_size, output_size

    def forward(self, xs, h0=None):
        xs = mt.as_tensor(xs)
        hs, h_T = nn.unroll(self.cell, xs, h0)
        return F.linear(hs, self.Why, self.by), h_T

    def loss(self, xs, targets, h0=None, many_to_one=False):
        """Mean softmax cross-entropy: over all T×B positions with targets (T, B), or over
        the B last-step positions with targets (B,) when many_to_one. Returns (loss, h_T)."""
        logits, h_T = self(xs, h0)
        T, B, O = logits.shape
        targets = np.asarray(targets)
        want = (B,) if many_to_one else (T, B)
        if targets.shape != want or targets.dtype.kind not in "iu":
            raise mt.ShapeError(f"VanillaRNN.loss: targets must be integers of shape "
                                f"{'(B,)' if many_to_one else '(T, B)'} = {want}; got "
                                f"shape {targets.shape}, dtype {targets.dtype}")
        if many_to_one:
            return F.cross_entropy(logits[T - 1], targets), h_T
        return F.cross_entropy(logits.reshape(T * B, O), targets.reshape(T * B)), h_T

    @mt.no_grad()
    def generate(self, first, length, h0=None, temperature=1.0, greedy=False, rng=None):
        """One-to-many: feed each step's output back as the next input (I = O, one-hot).

        first: the index (or B indices) to start from. Greedy takes the argmax; otherwise
        samples from softmax(logits / temperature) with rng (mt's generator by default).
        Returns (indices of shape (length, B), h).
        """
        if self.input_size != self.output_size:
            raise ValueError("generate: needs input_size == output_size (a vocabulary)")
        if temperature <= 0:
            raise ValueError(f"generate: temperature must be > 0, got {temperature}")
        rng = mt.generator() if rng is None else rng
        idx = np.atleast_1d(np.asarray(first))
        h = h0
        out = []
        dtype = self.Why.dtype
        for _ in range(length):
            x = F.one_hot(idx, self.input_size, dtype=dtype).reshape(1, len(idx), -1)
            logits, h = self(x, h)
            z = logits.data[0] / temperature
            if greedy:
                idx = z.argmax(axis=-1)
            else:
                p = np.exp(z - z.max(axis=-1, keepdims=True))
                p /= p.sum(axis=-1, keepdims=True)
                idx = np.array([rng.choice(len(row), p=row) for row in p])
            out.append(idx)
        return np.stack(out), h

    def extra_repr(self):
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, " \
               f"output_size={self.output_size}"
