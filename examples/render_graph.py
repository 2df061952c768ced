"""Draw a vanilla RNN's unrolled graph, plain and coloured by gradient norm, and plot BPTT's
gradient flow through 100 steps.

    python examples/render_graph.py [--out docs]

Writes rnn_graph.svg (4 steps of models.VanillaRNN: one cluster per time step, in order
down the page, the parameters in one band, Whh drawn once with an edge into every step,
each h_t labelled h[t=k]), rnn_graph_grads.svg (the same after
loss.backward(keep_grads=True): every tensor labelled with ‖grad‖ and coloured on a log
scale), lstm_graph.svg (3 steps of models.LSTM: the tuple state's parts h[t=k] and c[t=k])
and grad_flow.png (‖∂L/∂h_t‖ against t for a 100-step RNN, for three scales of Whh).

keep_grads=True is what makes the gradient picture possible: backward() normally keeps
only the parameters' gradients; with it, every intermediate tensor (the hidden states h_t
above all) keeps its gradient in .grad for drawing.
"""
import argparse
from pathlib import Path

import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor.models import LSTM, VanillaRNN


def rnn_loss(model, T, B, seed=0):
    """models.VanillaRNN on random one-hot inputs, scored at the last step (many-to-one)."""
    rng = np.random.default_rng(seed)
    V = model.input_size
    xs = F.one_hot(rng.integers(0, V, (T, B)), V)
    loss, _ = model.loss(xs, rng.integers(0, V, B), many_to_one=True)
    return loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs",
                        help="folder for the four pictures (default: docs/)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)

    mt.manual_seed(0)
    model = VanillaRNN(5, 8, 5, init="torch")
    loss = rnn_loss(model, T=4, B=2)
    mt.viz.save_graph(loss, out / "rnn_graph.svg", params=model)
    loss.backward(keep_grads=True)
    mt.viz.save_graph(loss, out / "rnn_graph_grads.svg", params=model, show_grads=True)

    curves = {}
    for radius in (0.9, 1.5, 2.5):
        model = VanillaRNN(5, 16, 5, init="torch")
        eig = np.abs(np.linalg.eigvals(model.Whh.data)).max()
        model.Whh.data *= radius / eig             # set Whh's spectral radius
        loss = rnn_loss(model, T=100, B=4)
        loss.backward(keep_grads=True)
        (hs,) = mt.viz.step_states(loss).values()     # h_0 … h_99, found in the graph
        curves[f"ρ(Whh) = {radius}"] = hs
    mt.viz.plot_grad_flow(curves, out / "grad_flow.png",
                          title="BPTT through 100 steps, loss at the last step")

    lstm = LSTM(2, 3)                              # a tuple state: h[t=k] and c[t=k]
    outputs, (h, c) = lstm(mt.randn(3, 2, 2))
    mt.viz.save_graph(outputs.sum() + c.sum(), out / "lstm_graph.svg", params=lstm)

    for name in ("rnn_graph.svg", "rnn_graph_grads.svg", "lstm_graph.svg", "grad_flow.png"):
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
