"""The LSTM cell and a torch.nn.LSTM-compatible model, built from microtensor's public API."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor import nn

from .stacked import TorchLayoutRecurrent, uniform_weight

if TYPE_CHECKING:
    from microtensor._types import FloatDType


class LSTMCell(nn.RecurrentCell):
    """One LSTM step, with torch.nn.LSTMCell's parameters and gate order (i, f, g, o):

    i, f, g, o = σ, σ, tanh, σ of the four quarters of  x W_ihᵀ + b_ih + h W_hhᵀ + b_hh
    c' = f ⊙ c + i ⊙ g;   h' = o ⊙ tanh(c')

    weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,), all drawn from
    U(−1/√H, 1/√H) as torch does. The state is (h, c), each (B, H); the output is h.
    The input projection of every step, both biases included, is one matmul before the
    loop (precompute); a step is one linear_add and the gates.
    """
    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: FloatDType = np.float64) -> None:
        super().__init__(input_size, hidden_size)
        H = hidden_size
        self.bias = bias
        self.weight_ih = uniform_weight((4 * H, input_size), H, dtype)
        self.weight_hh = uniform_weight((4 * H, H), H, dtype)
        self.bias_ih = uniform_weight((4 * H,), H, dtype) if bias else None
        self.bias_hh = uniform_weight((4 * H,), H, dtype) if bias else None

    def precompute(self, xs: mt.Tensor) -> mt.Tensor:
        """x W_ihᵀ + b_ih + b_hh for every step of xs (T, B, I), in one matmul."""
        if not self.bias:
            return F.linear(xs, self.weight_ih)
        assert self.bias_ih is not None and self.bias_hh is not None
        return F.linear(xs, self.weight_ih, self.bias_ih + self.bias_hh)   # two (4H,) added once

    def forward(self, xp_t: mt.Tensor,
                state: tuple[mt.Tensor, mt.Tensor]) -> tuple[mt.Tensor, mt.Tensor]:
        """(h', c') from the state (h, c) and xp_t, this step's row of precompute(xs)."""
        h, c = state
        gates = F.linear_add(h, self.weight_hh, xp_t)  # h W_hhᵀ + x W_ihᵀ + b_ih + b_hh
        i, f, g, o = mt.split(gates, 4, axis=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c

    def extra_repr(self) -> str:
        """input_size, hidden_size (and bias=False when there is none)."""
        return super().extra_repr() + ("" if self.bias else ", bias=False")


class LSTM(TorchLayoutRecurrent):
    """A stacked LSTM as torch.nn.LSTM: forward(xs (T, B, I), state=None, lengths=None) ->
    (outputs (T, B, D·H), (h_n, c_n) each (L·D, B, H)); batch_first: xs (B, T, I) and
    outputs (B, T, D·H), the state as before.

    state is (h_0, c_0), each (L·D, B, H), zeros by default; lengths (B,) runs a padded
    batch as torch's pack_padded_sequence does (outputs past a sequence's end are 0).
    Dropout (training only) applies between layers. load_torch_state_dict(sd) takes
    torch.nn.LSTM(...).state_dict() directly.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, bias: bool = True,
                 dtype: FloatDType = np.float64, batch_first: bool = False) -> None:
        super().__init__(LSTMCell(input_size, hidden_size, bias, dtype), num_layers,
                         bidirectional, dropout, batch_first)
