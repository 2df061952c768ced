"""The base of models.LSTM and models.GRU: mt.nn.Recurrent with torch.nn.LSTM's parameter names."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

import microtensor as mt
from microtensor import nn

if TYPE_CHECKING:
    from microtensor._types import FloatDType, Shape
    from microtensor.nn.module import IncompatibleKeys

WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class TorchLayoutRecurrent(nn.Recurrent):
    """A stacked, optionally bidirectional recurrence whose parameters map one-to-one onto
    torch.nn.RNN/LSTM/GRU's: cell k (layer k // D, direction k % D) holds weight_ih, …,
    which torch calls weight_ih_l{layer} (and weight_ih_l{layer}_reverse backwards).

    forward(xs (T, B, I), state=None, lengths=None) -> (outputs (T, B, D·H), final state),
    each part of a state of shape (L·D, B, H); time-major as torch's default, or xs
    (B, T, I) and outputs (B, T, D·H) with batch_first.
    """

    def __init__(self, cell: nn.RecurrentCell, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, batch_first: bool = False) -> None:
        super().__init__(cell, num_layers, bidirectional, dropout, batch_first)
        self.input_size, self.hidden_size = cell.input_size, cell.hidden_size

    def torch_names(self) -> OrderedDict[str, str]:
        """torch's parameter name -> ours ('weight_ih_l1_reverse' -> 'cells.3.weight_ih')."""
        D = 2 if self.bidirectional else 1
        names = OrderedDict()
        for k, cell in enumerate(self.cells):
            suffix = f"_l{k // D}" + ("_reverse" if k % D else "")
            for w in WEIGHTS:
                if getattr(cell, w, None) is not None:
                    names[w + suffix] = f"cells.{k}.{w}"
        return names

    def torch_state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Our parameters as a copy under torch's names, ready for torch's load_state_dict
        (after torch.from_numpy)."""
        ours = self.state_dict()
        return OrderedDict((t, ours[o]) for t, o in self.torch_names().items())

    def load_torch_state_dict(self, state_dict: Mapping[str, Any],
                              strict: bool = True) -> IncompatibleKeys:
        """Load torch.nn.LSTM/GRU(...).state_dict() (torch tensors or arrays), checked as
        load_state_dict checks: every name and shape, and nothing changes on an error."""
        names = self.torch_names()
        mapped = {names.get(k, k): np.asarray(v) for k, v in state_dict.items()}
        return self.load_state_dict(mapped, strict=strict)

    def extra_repr(self) -> str:
        """input_size, hidden_size and Recurrent's settings."""
        return f"{self.input_size}, {self.hidden_size}, " + super().extra_repr()


def uniform_weight(shape: Shape, hidden_size: int, dtype: FloatDType) -> nn.Parameter:
    """U(−1/√H, 1/√H) from mt's generator, as torch initialises every recurrent weight."""
    k = 1 / np.sqrt(hidden_size)
    return nn.Parameter(mt.generator().uniform(-k, k, shape).astype(dtype))
