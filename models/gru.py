"""The GRU cell and a torch.nn.GRU-compatible model, built from microtensor's public API."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor import nn

from .stacked import TorchLayoutRecurrent, uniform_weight

if TYPE_CHECKING:
    from microtensor._types import FloatDType


class GRUCell(nn.RecurrentCell):
    """One GRU step, with torch.nn.GRUCell's parameters, gate order (r, z, n) and semantics:

    r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr);   z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn));   h' = (1 − z) ⊙ n + z ⊙ h

    weight_ih (3H, I), weight_hh (3H, H), bias_ih and bias_hh (3H,), all drawn from
    U(−1/√H, 1/√H). b_hn sits inside r ⊙ (…), so bias_hh is added at each step, not
    folded into the input projection that precompute does for all steps at once.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: FloatDType = np.float64) -> None:
        super().__init__(input_size, hidden_size)
        H = hidden_size
        self.bias = bias
        self.weight_ih = uniform_weight((3 * H, input_size), H, dtype)
        self.weight_hh = uniform_weight((3 * H, H), H, dtype)
        self.bias_ih = uniform_weight((3 * H,), H, dtype) if bias else None
        self.bias_hh = uniform_weight((3 * H,), H, dtype) if bias else None

    def precompute(self, xs: mt.Tensor) -> mt.Tensor:
        """x W_ihᵀ + b_ih for every step of xs (T, B, I), in one matmul (b_hh stays per step)."""
        return F.linear(xs, self.weight_ih, self.bias_ih)

    def forward(self, xp_t: mt.Tensor, h: mt.Tensor) -> mt.Tensor:
        """h' from h and xp_t, this step's row of precompute(xs)."""
        x_r, x_z, x_n = mt.split(xp_t, 3, axis=1)
        h_r, h_z, h_n = mt.split(F.linear(h, self.weight_hh, self.bias_hh), 3, axis=1)
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + r * h_n).tanh()
        return n + z * (h - n)          # (1 − z) ⊙ n + z ⊙ h, one op fewer

    def extra_repr(self) -> str:
        """input_size, hidden_size (and bias=False when there is none)."""
        return super().extra_repr() + ("" if self.bias else ", bias=False")


class GRU(TorchLayoutRecurrent):
    """A stacked GRU as torch.nn.GRU: forward(xs (T, B, I), state=None, lengths=None) ->
    (outputs (T, B, D·H), h_n (L·D, B, H)); batch_first: xs (B, T, I) and outputs
    (B, T, D·H), the state as before.

    state is h_0 (L·D, B, H), zeros by default; lengths (B,) runs a padded batch as torch's
    pack_padded_sequence does (outputs past a sequence's end are 0). Dropout (training
    only) applies between layers. load_torch_state_dict(sd) takes torch.nn.GRU's.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, bias: bool = True,
                 dtype: FloatDType = np.float64, batch_first: bool = False) -> None:
        super().__init__(GRUCell(input_size, hidden_size, bias, dtype), num_layers,
                         bidirectional, dropout, batch_first)
