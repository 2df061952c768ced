"""Hand-derived NumPy BPTT for a vanilla tanh RNN: the reference that graph-derived gradients are checked against."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

_PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def init_params(input_size: int, hidden_size: int, output_size: int, rng: np.random.Generator,
                dtype: DTypeLike = np.float64, scale: float = 0.01) -> dict[str, np.ndarray]:
    """min-char-rnn's initialisation: small Gaussian weights (randn · scale) and zero biases."""
    I, H, O = input_size, hidden_size, output_size
    return {
        "Wxh": (rng.standard_normal((H, I)) * scale).astype(dtype),
        "Whh": (rng.standard_normal((H, H)) * scale).astype(dtype),
        "Why": (rng.standard_normal((O, H)) * scale).astype(dtype),
        "bh": np.zeros(H, dtype=dtype),
        "by": np.zeros(O, dtype=dtype),
    }


def _prepare(params: Mapping[str, ArrayLike], xs: ArrayLike, targets: ArrayLike, h0: ArrayLike | None,
             many_to_one: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                         np.ndarray, np.ndarray, np.ndarray]:
    """Check every shape against its layout, cast inputs to the params' dtype; return the loops' arguments."""
    missing = [k for k in _PARAM_NAMES if k not in params]
    if missing:
        raise ValueError(f"params is missing {missing}; expected keys {list(_PARAM_NAMES)}")
    Wxh, Whh, Why, bh, by = (np.asarray(params[k]) for k in _PARAM_NAMES)
    dtype = Wxh.dtype
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"params must be floating point; Wxh has dtype {dtype}")
    for name, p in zip(_PARAM_NAMES, (Wxh, Whh, Why, bh, by)):
        if p.dtype != dtype:
            raise ValueError(f"params must share one dtype; Wxh is {dtype} but {name} is {p.dtype}")
    if Wxh.ndim != 2:
        raise ValueError(f"Wxh must have layout (H, I); got shape {Wxh.shape}")
    H, I = Wxh.shape
    if Why.ndim != 2 or Why.shape[1] != H:
        raise ValueError(f"Why must have layout (O, H) with H = {H}; got shape {Why.shape}")
    O = Why.shape[0]
    for name, p, shape, layout in (("Whh", Whh, (H, H), "(H, H)"), ("bh", bh, (H,), "(H,)"),
                                   ("by", by, (O,), "(O,)")):
        if p.shape != shape:
            raise ValueError(f"{name} must have layout {layout} = {shape}; got shape {p.shape}")

    xs = np.asarray(xs)
    if xs.ndim != 3 or xs.shape[2] != I or xs.shape[0] == 0 or xs.shape[1] == 0:
        raise ValueError(f"xs must have layout (T, B, I) with T, B ≥ 1 and I = {I} (Wxh is (H, I) = {Wxh.shape}); "
                         f"got shape {xs.shape}")
    T, B, _ = xs.shape
    xs = np.ascontiguousarray(xs, dtype=dtype)

    if h0 is None:
        h0 = np.zeros((B, H), dtype=dtype)
    else:
        h0 = np.asarray(h0)
        if h0.shape != (B, H):
            raise ValueError(f"h0 must have layout (B, H) = {(B, H)}; got shape {h0.shape}")
        h0 = h0.astype(dtype, copy=False)

    targets = np.asarray(targets)
    shape, layout = ((B,), "(B,)") if many_to_one else ((T, B), "(T, B)")
    if targets.shape != shape:
        kind = "many-to-one" if many_to_one else "many-to-many"
        raise ValueError(f"targets must have layout {layout} = {shape} for {kind}; got shape {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integer class indices; got dtype {targets.dtype}")
    if targets.size and (targets.min() < 0 or targets.max() >= O):
        raise ValueError(f"targets out of range: class indices must lie in [0, O) = [0, {O}); "
                         f"got min {targets.min()}, max {targets.max()}")
    return Wxh, Whh, Why, bh, by, xs, targets, h0


def _bptt_loop(Wxh, Whh, Why, bh, by, xs, targets, h0, many_to_one):
    """The tutorial form, on checked inputs."""
    T, B, _ = xs.shape
    rows = np.arange(B)
    scored = {T - 1: targets} if many_to_one else dict(enumerate(targets))  # steps carrying a loss
    inv_n = 1.0 / (len(scored) * B)                                  # mean over all scored positions

    hs, ys, ps = {-1: h0}, {}, {}
    loss = 0.0
    for t in range(T):
        hs[t] = np.tanh(xs[t] @ Wxh.T + hs[t - 1] @ Whh.T + bh)     # hidden state
        ys[t] = hs[t] @ Why.T + by                                   # unnormalised log-probabilities
        if t in scored:
            z = ys[t] - ys[t].max(axis=1, keepdims=True)             # shift for a stable softmax
            e = np.exp(z)
            s = e.sum(axis=1, keepdims=True)
            ps[t] = e / s                                            # probabilities
            loss += (np.log(s[:, 0]) - z[rows, scored[t]]).sum()     # −log p[target] = log Σ eᶻ − z[target]

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dhnext                                                  # from h_{t+1} = tanh(… + h_t Whhᵀ …)
        if t in scored:
            dy = ps[t].copy()
            dy[rows, scored[t]] -= 1                                 # softmax + CE: ∂L/∂y = p − onehot(target)
            dy *= inv_n                                              # mean over positions
            dWhy += dy.T @ hs[t]                                     # y = h Whyᵀ + by ⇒ ∂L/∂Why = dyᵀ h
            dby += dy.sum(axis=0)                                    # ∂L/∂by = Σ_b dy
            dh = dy @ Why + dhnext                                   # into h from the output and the next step
        dhraw = (1 - hs[t] * hs[t]) * dh                             # through tanh: d tanh(a) = 1 − h²
        dbh += dhraw.sum(axis=0)                                     # ∂L/∂bh = Σ_b dhraw
        dWxh += dhraw.T @ xs[t]                                      # a = x Wxhᵀ + … ⇒ ∂L/∂Wxh = dhrawᵀ x
        dWhh += dhraw.T @ hs[t - 1]                                  # h_{t−1} Whhᵀ ⇒ ∂L/∂Whh = dhrawᵀ h_{t−1}
        dhnext = dhraw @ Whh                                         # ∂L/∂h_{t−1} = dhraw Whh
    return {"loss": float(loss) * inv_n, "dWxh": dWxh, "dWhh": dWhh, "dWhy": dWhy, "dbh": dbh, "dby": dby,
            "dh0": dhnext, "hT": hs[T - 1], "logits": np.stack([ys[t] for t in range(T)])}


def _bptt_hoisted(Wxh, Whh, Why, bh, by, xs, targets, h0, many_to_one):
    """The hoisted form, on checked inputs: only h_{t−1} → h_t and dhnext → dhraw stay in the loops."""
    T, B, I = xs.shape
    H, O = Whh.shape[0], Why.shape[0]
    x2 = xs.reshape(T * B, I)

    hs = np.empty((T + 1, B, H), dtype=Wxh.dtype)                    # hs[0] = h0, hs[t + 1] = state after step t
    hs[0] = h0
    pre = (x2 @ Wxh.T).reshape(T, B, H)                              # input projection of every step at once
    pre += bh
    h, p, WhhT = list(hs), list(pre), Whh.T                          # per-step views, made once
    for t in range(T):
        np.matmul(h[t], WhhT, out=h[t + 1])                          # h_{t−1} Whhᵀ
        h[t + 1] += p[t]                                             # + x_t Wxhᵀ + bh
        np.tanh(h[t + 1], out=h[t + 1])
    h2 = hs[1:].reshape(T * B, H)                                    # the states after every step, as rows
    logits = h2 @ Why.T                                              # output projection of every step at once
    logits += by

    if many_to_one:
        ys, hy, tg = logits[(T - 1) * B:], hs[T], targets            # only the last step is scored
    else:
        ys, hy, tg = logits, h2, targets.reshape(-1)
    n = ys.shape[0]
    rows = np.arange(n)
    dy = ys - ys.max(axis=1, keepdims=True)                          # shift for a stable softmax
    picked = dy[rows, tg]                                            # z[target] (a copy)
    np.exp(dy, out=dy)
    s = dy.sum(axis=1, keepdims=True)
    loss = float(np.log(s).sum() - picked.sum()) / n                 # mean of log Σ eᶻ − z[target]
    dy /= s                                                          # p
    dy[rows, tg] -= 1                                                # ∂L/∂y = p − onehot(target)
    dy *= 1.0 / n                                                    # mean over positions

    dWhy = dy.T @ hy                                                 # ∂L/∂Why = Σ dyᵀ h, one matmul
    dby = dy.sum(axis=0)
    dtanh = np.square(hs[1:], out=pre)                               # pre is spent: reuse its memory
    np.subtract(1, dtanh, out=dtanh)                                 # d tanh(a) = 1 − h², every step at once
    if many_to_one:
        dhraw = np.zeros((T, B, H), dtype=Wxh.dtype)
        np.matmul(dy, Why, out=dhraw[T - 1])
    else:
        dhraw = (dy @ Why).reshape(T, B, H)                          # ∂L/∂h_t from the outputs, every step at once
    dhraw *= dtanh                                                   # dhraw = (1 − h²) ⊙ (dh_out + dhnext), first term

    # Whh's values in Fortran order: BLAS treats it as a transposed operand, which OpenBLAS multiplies
    # about 25% faster than the C-ordered Whh at B = 32, H = 256 (and within a few percent at B = 1).
    Whh_f = np.asfortranarray(Whh)
    r, d = list(dhraw), list(dtanh)
    dhnext = np.matmul(r[T - 1], Whh_f)                              # ∂L/∂h_{T−2}
    for t in range(T - 2, -1, -1):
        np.multiply(dhnext, d[t], out=dhnext)                        # dhnext's share through tanh
        r[t] += dhnext                                               # dhraw_t complete
        np.matmul(r[t], Whh_f, out=dhnext)                           # ∂L/∂h_{t−1} = dhraw_t Whh

    r2 = dhraw.reshape(T * B, H)
    return {"loss": loss, "dWxh": r2.T @ x2, "dWhh": r2.T @ hs[:-1].reshape(T * B, H), "dWhy": dWhy,
            "dbh": r2.sum(axis=0), "dby": dby, "dh0": dhnext, "hT": hs[T].copy(),
            "logits": logits.reshape(T, B, O)}


def bptt(params: Mapping[str, ArrayLike], xs: ArrayLike, targets: ArrayLike, h0: ArrayLike | None = None,
         many_to_one: bool = False) -> dict[str, Any]:
    """Loss and gradients of a tanh RNN by backpropagation through time, written like min-char-rnn.

    h_t = tanh(x_t Wxhᵀ + h_{t−1} Whhᵀ + bh), y_t = h_t Whyᵀ + by, loss = mean softmax cross-entropy.

    params: dict with Wxh (H, I), Whh (H, H), Why (O, H), bh (H,), by (O,); their dtype is used throughout.
    xs: (T, B, I) inputs, time-major. targets: int (T, B), or (B,) with many_to_one (only the last
    step's logits are scored). h0: (B, H) or None for zeros.
    Returns a dict: 'loss' (float), 'dWxh', 'dWhh', 'dWhy', 'dbh', 'dby', 'dh0' (B, H), 'hT' (B, H),
    'logits' (T, B, O). Gradients are not clipped.
    """
    return _bptt_loop(*_prepare(params, xs, targets, h0, many_to_one), many_to_one)


def bptt_hoisted(params: Mapping[str, ArrayLike], xs: ArrayLike, targets: ArrayLike,
                 h0: ArrayLike | None = None, many_to_one: bool = False) -> dict[str, Any]:
    """Same as `bptt`, with every step-independent matmul hoisted out of the time loops (the NumPy optimum).

    Parameters and the returned dict are those of `bptt`.
    """
    return _bptt_hoisted(*_prepare(params, xs, targets, h0, many_to_one), many_to_one)


def truncated_bptt(params: Mapping[str, ArrayLike], xs: ArrayLike, targets: ArrayLike,
                   h0: ArrayLike | None = None, chunk: int = 25, hoisted: bool = False) -> dict[str, Any]:
    """Truncated BPTT: chunks of `chunk` steps, each with its own mean loss, the hidden state carried across.

    No gradient crosses a chunk boundary. params, xs, targets (T, B) and h0 are those of `bptt`
    (many-to-many only); hoisted selects `bptt_hoisted`'s algorithm for each chunk.
    Returns a dict: 'losses' (one float per chunk), 'dWxh', 'dWhh', 'dWhy', 'dbh', 'dby' summed over
    chunks, 'dh0' (the first chunk's gradient w.r.t. h0) and 'hT'.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int; got {chunk!r}")
    Wxh, Whh, Why, bh, by, xs, targets, h = _prepare(params, xs, targets, h0, False)
    run = _bptt_hoisted if hoisted else _bptt_loop
    out: dict[str, Any] = {"losses": []}
    for start in range(0, xs.shape[0], chunk):
        stop = start + chunk
        g = run(Wxh, Whh, Why, bh, by, xs[start:stop], targets[start:stop], h, False)
        out["losses"].append(g["loss"])
        for k in ("dWxh", "dWhh", "dWhy", "dbh", "dby"):
            if start == 0:
                out[k] = g[k]
            else:
                out[k] += g[k]
        if start == 0:
            out["dh0"] = g["dh0"]
        h = g["hT"]                                                  # carried forward as a constant
    out["hT"] = h
    return out
