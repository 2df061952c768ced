"""Jacobians through time of a vanilla RNN, beside BPTT's gradient flow, for three spectral
radii of Whh: ‖∂h_t/∂h_0‖ and the singular values of each step's ∂h_t/∂h_{t−1}.

    python examples/rnn_jacobians.py [--out docs] [--steps 100]

For h_t = tanh(x_t Wxhᵀ + h_{t−1} Whhᵀ + bh) a step's Jacobian is diag(1 − h_t²) Whh, and
∂h_t/∂h_0 is the product of t of them; BPTT carries ∂L/∂h_0 = ∂L/∂h_Tᵀ ∂h_T/∂h_0 back. Here
mt.autograd.functional.jacobian takes every step's Jacobian from the model's step itself, and
∂h_T/∂h_0 once directly from the whole unroll, which must equal the product. Writes
rnn_jacobians.png: three panels sharing the time axis.
"""
import argparse
from pathlib import Path

import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor.models import VanillaRNN

jacobian = mt.autograd.functional.jacobian
RADII = (0.9, 1.5, 2.5)


def through_time(radius, T, seed=0):
    """One 1-sequence RNN with ρ(Whh) = radius: ‖∂L/∂h_t‖, ‖∂h_t/∂h_0‖ and the singular
    values of ∂h_t/∂h_{t−1} for t = 0 … T (the loss is read at the last step)."""
    mt.manual_seed(seed)
    model = VanillaRNN(5, 16, 5, init="torch")
    model.Whh.data *= radius / np.abs(np.linalg.eigvals(model.Whh.data)).max()
    rng = np.random.default_rng(seed)
    xp = model.precompute(F.one_hot(rng.integers(0, 5, (T, 1)), 5)).detach()
    h0 = mt.zeros(1, 16, requires_grad=True)
    states = [h0]
    for t in range(T):                                   # h_t = step(x_t, h_{t−1})
        states.append(model.step(xp[t], states[-1]).retain_grad())
    loss = F.cross_entropy(F.linear(states[-1], model.Why, model.by), rng.integers(0, 5, 1))
    loss.backward()
    flow = [np.linalg.norm(h.grad) for h in states]

    steps = [jacobian(lambda h: model.step(xp[t], h), states[t].detach()).data.reshape(16, 16)
             for t in range(T)]                          # ∂h_{t+1}/∂h_t, from the step
    product, norms = np.eye(16), [1.0]
    for J in steps:
        product = J @ product                            # ∂h_t/∂h_0
        norms.append(np.linalg.norm(product, 2))

    def unrolled(h):
        for t in range(T):
            h = model.step(xp[t], h)
        return h
    direct = jacobian(unrolled, h0.detach()).data.reshape(16, 16)
    err = np.abs(direct - product).max() / np.abs(direct).max()
    sv = np.array([np.linalg.svd(J, compute_uv=False) for J in steps])
    return np.array(flow), np.array(norms), sv, err


def plot(results, T, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(15, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, sharex=True)
    t = np.arange(T + 1)
    for (radius, (flow, norms, sv, _)), colour in zip(results.items(), ("C0", "C1", "C3")):
        label = f"ρ(Whh) = {radius}"
        axes[0].plot(t, flow, color=colour, label=label)
        axes[1].plot(t, norms, color=colour, label=label)
        axes[2].plot(t[1:], sv[:, 0], color=colour, label=label)
        axes[2].plot(t[1:], sv[:, -1], color=colour, ls="--")
    axes[2].axhline(1, color="grey", lw=0.8)
    titles = (r"BPTT: $\|\partial L/\partial h_t\|$ (loss at $t = T$)",
              r"$\|\partial h_t/\partial h_0\|_2$",
              r"$\sigma_{max}$ (solid), $\sigma_{min}$ (dashed) of $\partial h_t/\partial h_{t-1}$")
    for ax, title in zip(axes, titles):
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.savefig(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs",
                        help="folder for rnn_jacobians.png (default: docs/)")
    parser.add_argument("--steps", type=int, default=100, help="time steps T (default 100)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {r: through_time(r, args.steps) for r in RADII}
    print(f"T = {args.steps}, H = 16: each step's Jacobian from mt.autograd.functional.jacobian")
    print("  ρ(Whh)   ‖∂h_T/∂h_0‖   ‖∂L/∂h_0‖/‖∂L/∂h_T‖   σ_max, σ_min (median over t)   "
          "product vs direct")
    for radius, (flow, norms, sv, err) in results.items():
        print(f"  {radius:6}   {norms[-1]:11.3e}   {flow[0] / flow[-1]:19.3e}   "
              f"{np.median(sv[:, 0]):6.3f}, {np.median(sv[:, -1]):.2e}"
              f"{'':15}{err:.1e}")
    plot(results, args.steps, args.out / "rnn_jacobians.png")
    print(f"wrote {args.out / 'rnn_jacobians.png'}")


if __name__ == "__main__":
    main()
