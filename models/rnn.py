"""The vanilla RNN of the classic tutorials, built from microtensor's public API only."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor import nn

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from microtensor._types import FloatDType


class VanillaRNNCell(nn.RecurrentCell):
    """h_t = tanh(x_t Wxhᵀ + h_{t−1} Whhᵀ + bh), for nn.unroll and nn.Recurrent.

    precompute projects every step's input, x Wxhᵀ + bh, in one matmul before the loop, so a
    step is one linear_add (h Whhᵀ plus its row) and a tanh. init="classic" draws weights
    from N(0, 0.01²) with zero biases, as min-char-rnn; init="torch" uses U(−1/√H, 1/√H)
    for all, as torch.nn.RNN.
    """

    def __init__(self, input_size: int, hidden_size: int, init: str = "classic",
                 dtype: FloatDType = np.float64) -> None:
        super().__init__(input_size, hidden_size)
        H, I = hidden_size, input_size
        self.Wxh = nn.Parameter(_weight((H, I), H, init, dtype))
        self.Whh = nn.Parameter(_weight((H, H), H, init, dtype))
        self.bh = nn.Parameter(_bias(H, H, init, dtype))

    def precompute(self, xs: mt.Tensor) -> mt.Tensor:
        """x_t Wxhᵀ + bh for every t of xs (T, B, I), in one matmul."""
        return F.linear(xs, self.Wxh, self.bh)

    def forward(self, xp_t: mt.Tensor, h: mt.Tensor) -> mt.Tensor:
        """h_t = tanh(h_{t−1} Whhᵀ + xp_t), xp_t being this step's row of precompute(xs)."""
        return F.linear_add(h, self.Whh, xp_t).tanh()


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
    """min-char-rnn's model: h_t = tanh(x_t Wxhᵀ + h_{t−1} Whhᵀ + bh), y_t = h_t Whyᵀ + by,
    softmax on top, with its parameters and names: Wxh (H, I), Whh (H, H), Why (O, H),
    bh (H,), by (O,). The loop over time is written out, each step marked with
    mt.time_steps (so mt.viz clusters and labels it); BPTT is loss.backward().

    forward(xs (T, B, I), h0 (B, H) = zeros) -> (logits (T, B, O), h_T (B, H));
    batch_first=True: xs (B, T, I) and logits (B, T, O), as torch's batch_first.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, init: str = "classic",
                 dtype: FloatDType = np.float64, batch_first: bool = False) -> None:
        super().__init__()
        H = hidden_size
        self.Wxh = nn.Parameter(_weight((H, input_size), H, init, dtype))
        self.Whh = nn.Parameter(_weight((H, H), H, init, dtype))
        self.bh = nn.Parameter(_bias(H, H, init, dtype))
        self.Why = nn.Parameter(_weight((output_size, H), H, init, dtype))
        self.by = nn.Parameter(_bias(output_size, H, init, dtype))
        self.input_size, self.hidden_size, self.output_size = \
            input_size, hidden_size, output_size
        self.batch_first = batch_first

    def forward(self, xs: mt.Tensor | ArrayLike,
                h0: mt.Tensor | None = None) -> tuple[mt.Tensor, mt.Tensor]:
        """(logits (T, B, O), h_T (B, H)) for xs (T, B, I) from h0 (zeros by default)."""
        xs, h = self._checked(mt.as_tensor(xs), h0)
        xp = self.precompute(xs)
        hs = []
        for t in mt.time_steps(len(xp), state_names="h"):   # each iteration is step t
            h = self.step(xp[t], h)
            hs.append(h)
        states = mt.stack(hs, axis=1 if self.batch_first else 0)
        return F.linear(states, self.Why, self.by), h

    def precompute(self, xs: mt.Tensor) -> mt.Tensor:
        """x_t Wxhᵀ + bh for every t of xs (T, B, I): the input projection in one matmul."""
        return F.linear(xs, self.Wxh, self.bh)

    def step(self, xp_t: mt.Tensor, h: mt.Tensor) -> mt.Tensor:
        """h_t = tanh(h_{t−1} Whhᵀ + xp_t), xp_t being step t's row of precompute(xs)."""
        return F.linear_add(h, self.Whh, xp_t).tanh()

    def _checked(self, xs: mt.Tensor, h0: mt.Tensor | None) -> tuple[mt.Tensor, mt.Tensor]:
        """xs time-major and h0 (zeros by default), or an error saying what was expected."""
        layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
        if xs.ndim != 3 or xs.shape[-1] != self.input_size or 0 in xs.shape[:2]:
            raise mt.ShapeError(f"VanillaRNN: expected xs of shape {layout} with T, B >= 1 "
                                f"and I = {self.input_size}; got {xs.shape}")
        dtype = self.Whh.dtype
        if xs.dtype != dtype and xs.dtype.kind == "f":
            raise mt.DTypeError(f"VanillaRNN: xs is {xs.dtype} but the parameters are {dtype}; "
                                f"cast the input (xs.astype(np.{dtype})) or the model "
                                f"(model.to(np.{xs.dtype}))")
        if self.batch_first:
            xs = xs.transpose(1, 0, 2)
        B, H = xs.shape[1], self.hidden_size
        if h0 is None:
            return xs, mt.zeros(B, H, dtype=dtype)
        if getattr(h0, "shape", None) != (B, H):
            raise mt.ShapeError(f"VanillaRNN: h0 has shape {getattr(h0, 'shape', None)}; "
                                f"expected (B, H) = ({B}, {H})")
        return xs, h0

    def loss(self, xs: mt.Tensor | ArrayLike, targets: ArrayLike, h0: mt.Tensor | None = None,
             many_to_one: bool = False) -> tuple[mt.Tensor, mt.Tensor]:
        """Mean softmax cross-entropy: over all T×B positions with targets (T, B) (or
        (B, T) when batch_first), or over the B last-step positions with targets (B,) when
        many_to_one. Returns (loss, h_T)."""
        logits, h_T = self(xs, h0)
        lead, O = logits.shape[:2], logits.shape[2]     # (T, B), or (B, T) if batch_first
        targets = np.asarray(targets)
        want = (h_T.shape[0],) if many_to_one else lead
        if targets.shape != want or targets.dtype.kind not in "iu":
            layout = "(B,)" if many_to_one else "(B, T)" if self.batch_first else "(T, B)"
            raise mt.ShapeError(f"VanillaRNN.loss: targets must be integers of shape "
                                f"{layout} = {want}; got shape {targets.shape}, dtype "
                                f"{targets.dtype}")
        if many_to_one:
            last = logits[:, lead[1] - 1] if self.batch_first else logits[lead[0] - 1]
            return F.cross_entropy(last, targets), h_T
        return F.cross_entropy(logits.reshape(-1, O), targets.reshape(-1)), h_T

    @mt.no_grad()
    def generate(self, first: int | ArrayLike, length: int, h0: mt.Tensor | None = None,
                 temperature: float = 1.0, greedy: bool = False,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, mt.Tensor | None]:
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
            x = F.one_hot(idx, self.input_size, dtype=dtype)[None]        # one step, (1, B, V)
            logits, h = self(x.transpose(1, 0, 2) if self.batch_first else x, h)
            z = (logits.data[:, 0] if self.batch_first else logits.data[0]) / temperature
            if greedy:
                idx = z.argmax(axis=-1)
            else:
                p = np.exp(z - z.max(axis=-1, keepdims=True))
                p /= p.sum(axis=-1, keepdims=True)
                idx = np.array([rng.choice(len(row), p=row) for row in p])
            out.append(idx)
        return np.stack(out), h

    def extra_repr(self) -> str:
        """input_size, hidden_size, output_size (and batch_first when set)."""
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, " \
               f"output_size={self.output_size}" + (", batch_first=True" if self.batch_first else "")
