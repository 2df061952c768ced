"""Gradient flow through time: ‖∂L/∂h_t‖ for each step of an unrolled recurrence, and its plot."""
from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ArgumentError, GraphError
from ..tensor import Tensor
from .graph import Graph, as_roots
from .render import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .._types import StrPath


def step_states(root: Tensor | Sequence[Tensor]) -> dict[str, list[Tensor]]:
    """The state each time step hands on, per recurrence: {path: [h_0, h_1, …]}.

    In the graph of root, the output part of each step's state: as nn.unroll recorded it
    (h_t for an RNN or GRU, h_t of (h_t, c_t) for an LSTM), or for a loop of your own
    marked with mt.time_steps(n, state_names=...), the last tensor a step makes that is used
    after it. The path is '' at the top and e.g. 'layer0' inside nn.Recurrent.
    """
    states = Graph(as_roots(root, "step_states"), None).states()
    return {path: [by_t[t] for t in sorted(by_t)] for path, by_t in sorted(states.items())}


def grad_norms(tensors: Sequence[Tensor]) -> np.ndarray:
    """‖t.grad‖ (Frobenius) of each tensor, as an array; every .grad must be set."""
    if isinstance(tensors, Tensor) or not all(isinstance(t, Tensor) for t in tensors):
        raise ArgumentError("grad_norms: expected a list of Tensors (the hidden states h_t)")
    norms = []
    for i, t in enumerate(tensors):
        if t.grad is None:
            raise GraphError(f"grad_norms: tensor {i} of {len(tensors)} has no gradient; call "
                             f"loss.backward(keep_grads=True) (or h.retain_grad() on each "
                             f"hidden state before backward)")
        norms.append(np.linalg.norm(t.grad))
    return np.array(norms, dtype=np.float64)


def plot_grad_flow(hidden_states: Sequence[Tensor] | dict[str, Sequence[Tensor]],
                   path: StrPath | None = None, *, title: str = "Gradient flow through time",
                   log_scale: bool = True) -> Figure:
    """Plot ‖∂L/∂h_t‖ against t — flat is healthy, falling towards t = 0 is vanishing.

    hidden_states: a list of tensors h_0 … h_T whose .grad is set (loss.backward(
    keep_grads=True) keeps them), or a dict label -> such a list for several curves
    (step_states(loss) gives one). path: where to save the PNG (written whole or not at
    all); None to only return it. Returns the matplotlib Figure. Needs matplotlib.
    """
    if isinstance(hidden_states, Tensor):
        raise ArgumentError("plot_grad_flow: expected a list of hidden states h_0 … h_T (or "
                            "a dict label -> list), not one Tensor; step_states(loss) finds "
                            "them in the graph")
    curves = hidden_states if isinstance(hidden_states, dict) else {"": hidden_states}
    if not curves:
        raise ArgumentError("plot_grad_flow: no hidden states given")
    norms = {label: grad_norms(list(hs)) for label, hs in curves.items()}
    if any(len(v) == 0 for v in norms.values()):
        raise ArgumentError("plot_grad_flow: an empty list of hidden states")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("plot_grad_flow needs matplotlib: pip install matplotlib") from e
    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, v in norms.items():
        ratio = (rf"$\|\partial L/\partial h_0\| \,/\, \|\partial L/\partial h_{{{len(v) - 1}}}\|$"
                 f" = {v[0] / v[-1]:.2g}") if v[-1] else ""
        name = f"{label}: {ratio}" if label else ratio
        ax.plot(np.arange(len(v)), v, marker="o" if len(v) <= 30 else None, ms=3, lw=1.5,
                label=name or None)
    if log_scale and all((v > 0).all() for v in norms.values()):
        ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel(r"$\|\partial L/\partial h_t\|$")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if any(ax.get_legend_handles_labels()[1]):
        ax.legend(loc="best", fontsize=9)
    if path is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        write_atomic(path, buf.getvalue())
    return fig
