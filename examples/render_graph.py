"""Draw a vanilla RNN's unrolled graph, plain and coloured by gradient norm, and plot BPTT's
gradient flow through 100 steps.

    python examples/render_graph.py [--out docs]

Writes rnn_graph.svg (4 steps: one cluster per time step, Whh drawn once with an edge
into every step), rnn_graph_grads.svg (the same after loss.backward(keep_grads=True):
every tensor labelled with ‖grad‖ and coloured on a log scale) and grad_flow.png
(‖∂L/∂h_t‖ against t for a 100-step RNN, for three scales of Whh).

keep_grads=True is what makes the gradient picture possible: backward() normally keeps
only the parameters' gradients; with it, every intermediate tensor (the hidden states h_t
above all) keeps its gradient in .grad for drawing.
"""
import argparse
from pathlib import Path

import numpy as np

import microtensor as mt
import microtensor.functional as F


def vanilla_rnn(T, B, vocab, H, whh_radius=None, seed=0, loss_at="every step"):
    """A vanilla RNN unrolled by hand, each step in mt.name_scope(f"t={t}"); returns the loss
    and the parameters by name. loss_at="last step" scores only the final output."""
    rng = np.random.default_rng(seed)
    Whh = rng.standard_normal((H, H)) * 0.3
    if whh_radius is not None:        # scale Whh to this spectral radius
        Whh *= whh_radius / np.abs(np.linalg.eigvals(Whh)).max()
    arrays = {"Wxh": rng.standard_normal((H, vocab)) * 0.5, "Whh": Whh,
              "Why": rng.standard_normal((vocab, H)) * 0.5, "bh": np.zeros(H),
              "by": np.zeros(vocab)}
    params = {name: mt.tensor(a, requires_grad=True) for name, a in arrays.items()}
    Wxh, Whh, Why, bh, by = params.values()
    xs = F.one_hot(rng.integers(0, vocab, (T, B)), vocab)
    targets = rng.integers(0, vocab, (T, B))
    h = mt.zeros((B, H))
    hs = []
    for t in range(T):
        with mt.name_scope(f"t={t}"):
            h = mt.tanh(xs[t] @ Wxh.T + h @ Whh.T + bh)
        hs.append(h)
    if loss_at == "last step":
        loss = F.cross_entropy(hs[-1] @ Why.T + by, targets[-1])
    else:
        logits = mt.stack(hs) @ Why.T + by
        loss = F.cross_entropy(logits.reshape(T * B, vocab), targets.reshape(T * B))
    return loss, params


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)

    loss, params = vanilla_rnn(T=4, B=2, vocab=5, H=8, loss_at="last step")
    mt.viz.save_graph(loss, out / "rnn_graph.svg", params=params)
    loss.backward(keep_grads=True)
    mt.viz.save_graph(loss, out / "rnn_graph_grads.svg", params=params, show_grads=True)

    curves = {}
    for radius in (0.9, 1.5, 2.5):
        loss, _ = vanilla_rnn(T=100, B=4, vocab=5, H=16, whh_radius=radius,
                              loss_at="last step")
        loss.backward(keep_grads=True)
        (hs,) = mt.viz.step_states(loss).values()     # h_0 … h_99, found in the graph
        curves[f"ρ(Whh) = {radius}"] = hs
    mt.viz.plot_grad_flow(curves, out / "grad_flow.png",
                          title="BPTT through 100 steps, loss at the last step")
    for name in ("rnn_graph.svg", "rnn_graph_grads.svg", "grad_flow.png"):
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
