"""The implementations bench_rnn.py times: one factory per baseline, each returning a Runner.

A Runner's `step()` does the timed work and returns what the implementation gives back;
`read(out)` turns that into (loss, {name: gradient as ndarray}) for the equality check, outside
the timed region. Factories take the same NumPy inputs, so every baseline starts from the same
weights and data. torch is imported lazily: its factories are only called when it is importable.
"""
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import microtensor as mt
from microtensor import models
from microtensor.models import rnn_reference

PARAMS = ("Wxh", "Whh", "Why", "bh", "by")


@dataclass
class Runner:
    step: Callable[[], Any]
    read: Callable[[Any], tuple]


# ---- per-op overhead: h = tanh(h · w + b), repeated, on shape (8,) ------------------------

def chain_numpy(h0, w, b, steps):
    """The chain in NumPy with a hand-written backward (the floor for per-op cost)."""
    def step():
        hs = [h0]
        h = h0
        for _ in range(steps):
            h = np.tanh(h * w + b)
            hs.append(h)
        loss = h.sum()
        dh, dw, db = np.ones_like(h), np.zeros_like(w), np.zeros_like(b)
        for t in range(steps, 0, -1):
            dz = dh * (1 - hs[t] * hs[t])                            # d tanh(z) = 1 − h²
            db += dz
            dw += dz * hs[t - 1]
            dh = dz * w
        return loss, {"w": dw, "b": db}
    return Runner(step, lambda out: (float(out[0]), out[1]))


def chain_microtensor(h0, w, b, steps):
    wt, bt = mt.tensor(w, requires_grad=True), mt.tensor(b, requires_grad=True)

    def step():
        wt.grad = bt.grad = None
        h = mt.tensor(h0)
        for _ in range(steps):
            h = (h * wt + bt).tanh()
        loss = h.sum()
        loss.backward()
        return loss
    return Runner(step, lambda loss: (loss.item(), {"w": wt.grad, "b": bt.grad}))


def chain_torch(h0, w, b, steps):
    import torch
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    ht = torch.tensor(h0)

    def step():
        wt.grad = bt.grad = None
        h = ht
        for _ in range(steps):
            h = torch.tanh(h * wt + bt)
        loss = h.sum()
        loss.backward()
        return loss
    return Runner(step, lambda loss: (loss.item(), {"w": wt.grad.numpy(), "b": bt.grad.numpy()}))


# ---- the same chain differentiated twice (benchmarks/bench_create_graph.py) -----------------
# Each step: forward, the gradients of h_T.sum() with respect to w and b with create_graph=True,
# and (hvp=True) the gradient of Σ ∂/∂w + Σ ∂/∂b, i.e. the Hessian times a vector of ones.

def chain_create_graph_microtensor(h0, w, b, steps, hvp=False):
    wt, bt = mt.tensor(w, requires_grad=True), mt.tensor(b, requires_grad=True)

    def step():
        h = mt.tensor(h0)
        for _ in range(steps):
            h = (h * wt + bt).tanh()
        loss = h.sum()
        gw, gb = mt.grad(loss, [wt, bt], create_graph=True)
        if hvp:
            gw, gb = mt.grad(gw.sum() + gb.sum(), [wt, bt])
            return loss, gw, gb
        return loss, gw.data, gb.data
    return Runner(step, lambda out: (out[0].item(), {"w": out[1], "b": out[2]}))


def chain_create_graph_torch(h0, w, b, steps, hvp=False):
    import torch
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    ht = torch.tensor(h0)

    def step():
        h = ht
        for _ in range(steps):
            h = torch.tanh(h * wt + bt)
        loss = h.sum()
        gw, gb = torch.autograd.grad(loss, [wt, bt], create_graph=True)
        if hvp:
            gw, gb = torch.autograd.grad(gw.sum() + gb.sum(), [wt, bt])
        return loss, gw, gb
    return Runner(step, lambda out: (out[0].item(), {"w": out[1].detach().numpy(),
                                                     "b": out[2].detach().numpy()}))


# ---- one training step of the vanilla RNN: forward, mean cross-entropy, backward -----------

def _read_hand(out):
    return out["loss"], {k: out["d" + k] for k in PARAMS}


def hand_tutorial(params, xs, ys):
    """min-char-rnn's per-step BPTT, batched (models/rnn_reference.bptt): the reference, 1.00."""
    return Runner(lambda: rnn_reference.bptt(params, xs, ys), _read_hand)


def hand_hoisted(params, xs, ys):
    """The same with every step-independent matmul hoisted out of the time loops."""
    return Runner(lambda: rnn_reference.bptt_hoisted(params, xs, ys), _read_hand)


def microtensor_rnn(params, xs, ys):
    """models.VanillaRNN as users get it; BPTT is loss.backward() through the graph."""
    H, V = params["Wxh"].shape
    model = models.VanillaRNN(V, H, params["Why"].shape[0], dtype=params["Wxh"].dtype)
    for k in PARAMS:
        getattr(model, k).data[...] = params[k]

    def step():
        model.zero_grad()
        loss, _ = model.loss(xs, ys)
        loss.backward()
        return loss
    return Runner(step, lambda loss: (loss.item(), {k: getattr(model, k).grad for k in PARAMS}))


def _torch_inputs(xs, ys):
    import torch
    return torch.from_numpy(xs), torch.from_numpy(ys.reshape(-1).astype(np.int64))


def _torch_problem(params, xs, ys):
    """The parameters as torch leaves, the inputs, T, B and the zero initial state."""
    import torch
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items() if k in PARAMS}
    x, y = _torch_inputs(xs, ys)
    T, B, _ = xs.shape
    return p, x, y, T, B, torch.zeros(B, p["Whh"].shape[0], dtype=p["Whh"].dtype)


def _read_torch(tensors):
    def read(loss):
        return loss.item(), {k: t.grad.numpy() for k, t in tensors.items()}
    return read


def torch_nn_rnn(params, xs, ys):
    """torch.nn.RNN (its fused kernel) + nn.Linear, loaded with the same weights."""
    import torch
    H, V = params["Wxh"].shape
    dtype = torch.float64 if params["Wxh"].dtype == np.float64 else torch.float32
    rnn = torch.nn.RNN(V, H, nonlinearity="tanh").to(dtype)
    out = torch.nn.Linear(H, params["Why"].shape[0]).to(dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(params["Wxh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(params["Whh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(params["bh"]))
        rnn.bias_hh_l0.zero_()                                       # bh is the sum of torch's two biases
        out.weight.copy_(torch.from_numpy(params["Why"]))
        out.bias.copy_(torch.from_numpy(params["by"]))
    x, y = _torch_inputs(xs, ys)
    T, B, _ = xs.shape
    h0 = torch.zeros(1, B, H, dtype=dtype)

    def step():
        rnn.zero_grad(set_to_none=True)
        out.zero_grad(set_to_none=True)
        hs, _ = rnn(x, h0)
        loss = torch.nn.functional.cross_entropy(out(hs).reshape(T * B, -1), y)
        loss.backward()
        return loss
    return Runner(step, _read_torch({"Wxh": rnn.weight_ih_l0, "Whh": rnn.weight_hh_l0,
                                     "Why": out.weight, "bh": rnn.bias_ih_l0, "by": out.bias}))


def _torch_step(p, x, y, T, B, h0, detach=False):
    """The training step of torch_composed (and, detached, of torch_compiled)."""
    import torch

    def step():
        for t in p.values():
            t.grad = None
        xp = x @ p["Wxh"].T + p["bh"]                                # input projection of every step
        # unbind rather than xp[t]: torch's backward of xp[t] fills a whole (T, B, H) tensor of
        # zeros per step, quadratic in T (6 min at T = 100,000); unbind's backward is one stack.
        h, hs = h0, []
        WhhT = p["Whh"].T
        for xp_t in xp.unbind(0):
            h = torch.tanh(xp_t + h @ WhhT)
            hs.append(h)
        logits = torch.stack(hs) @ p["Why"].T + p["by"]              # output projection, one matmul
        loss = torch.nn.functional.cross_entropy(logits.reshape(T * B, -1), y)
        loss.backward()
        return loss.detach() if detach else loss
    return step


def torch_composed(params, xs, ys):
    """The same per-step formulation as microtensor's model, written with torch tensors."""
    p, x, y, T, B, h0 = _torch_problem(params, xs, ys)
    return Runner(_torch_step(p, x, y, T, B, h0), _read_torch(p))


TRAINING_STEP = {
    "hand BPTT, tutorial style": hand_tutorial,
    "hand BPTT, hoisted": hand_hoisted,
    "microtensor (models.VanillaRNN)": microtensor_rnn,
    "torch.nn.RNN + nn.Linear": torch_nn_rnn,
    "torch composed ops": torch_composed,
}
TORCH_BASELINES = {"torch.nn.RNN + nn.Linear", "torch composed ops"}
CHAIN = {
    "NumPy, hand backward": chain_numpy,
    "torch eager": chain_torch,
    "microtensor": chain_microtensor,
}
CHAIN_CREATE_GRAPH = {
    "torch eager": chain_create_graph_torch,
    "microtensor": chain_create_graph_microtensor,
}


def rnn_problem(V, H, T, B, dtype, seed=0):
    """Classic-init weights (randn · 0.01, zero biases), one-hot inputs of a random index
    sequence and its next-index targets (many-to-many)."""
    rng = np.random.default_rng(seed)
    params = rnn_reference.init_params(V, H, V, rng, dtype=dtype)
    idx = rng.integers(0, V, size=(T + 1, B))
    xs = np.eye(V, dtype=dtype)[idx[:-1]]
    return params, xs, idx[1:]


def fresh_process_step(name, V, H, T, B, rounds):
    """(median seconds, minor page faults) per training step of `name` in this process, after
    one untimed step; run as a script in a new process, it sees an allocator nothing warmed."""
    import resource
    import statistics
    import time
    runner = TRAINING_STEP[name](*rnn_problem(V, H, T, B, np.float64))
    runner.step()
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        start = time.perf_counter()
        runner.step()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return statistics.median(times), faults / rounds


if __name__ == "__main__":      # python baselines.py NAME V H T B ROUNDS (bench_rnn.py's worker)
    import sys
    *sizes, rounds = map(int, sys.argv[2:])
    print(*fresh_process_step(sys.argv[1], *sizes, rounds))


# ---- issue 17: compiled steps, jax.jit, torch.compile -----------------------------------------

def _traced(runner):
    """runner with its step compiled; the first (tracing) call is made here and timed."""
    import time
    compiled = mt.compile(runner.step)
    start = time.perf_counter()
    out = compiled()
    runner.trace_seconds = time.perf_counter() - start
    runner.first = out
    runner.step = compiled
    return runner


def chain_compiled(h0, w, b, steps):
    """The per-op chain through mt.compile: the plan replays the same NumPy calls."""
    return _traced(chain_microtensor(h0, w, b, steps))


def microtensor_compiled(params, xs, ys):
    """models.VanillaRNN's training step through mt.compile."""
    return _traced(microtensor_rnn(params, xs, ys))


def jax_scan(params, xs, ys):
    """jax.jit(value_and_grad) of the vanilla RNN over lax.scan, x64 for float64 inputs."""
    import time
    import jax
    dtype = params["Wxh"].dtype
    jax.config.update("jax_enable_x64", dtype == np.float64)
    import jax.numpy as jnp
    T, B, V = xs.shape

    def loss_fn(p, xs, ys):
        xp = xs @ p["Wxh"].T + p["bh"]

        def cell(h, xp_t):
            h = jnp.tanh(xp_t + h @ p["Whh"].T)
            return h, h
        _, hs = jax.lax.scan(cell, jnp.zeros((B, p["Whh"].shape[0]), dtype), xp)
        logits = (hs @ p["Why"].T + p["by"]).reshape(T * B, -1)
        logp = logits - jax.scipy.special.logsumexp(logits, axis=1, keepdims=True)
        return -jnp.mean(logp[jnp.arange(T * B), ys.reshape(-1)])
    step = jax.jit(jax.value_and_grad(loss_fn))
    p = {k: jnp.asarray(params[k]) for k in PARAMS}
    x, y = jnp.asarray(xs), jnp.asarray(ys)
    start = time.perf_counter()
    jax.block_until_ready(step(p, x, y))
    trace = time.perf_counter() - start

    def run():
        return jax.block_until_ready(step(p, x, y))
    runner = Runner(run, lambda out: (float(out[0]), {k: np.asarray(out[1][k]) for k in PARAMS}))
    runner.trace_seconds = trace
    return runner


def torch_compiled(params, xs, ys):
    """torch.compile of the whole training step of torch_composed (forward over T steps,
    cross-entropy, backward): one graph, fullgraph=True, with dynamo tracing loss.backward()
    (torch._dynamo.config.trace_autograd_ops), static shapes, Inductor on CPU. Where dynamo
    cannot trace backward, plain torch.compile(step): dynamo stops at loss.backward(), the
    forward graph and its AOTAutograd backward are compiled. runner.mode says which;
    runner.trace_seconds is the first call (the compile, caches cold if the caller points
    TORCHINDUCTOR_CACHE_DIR at an empty folder), runner.recompiles() the graphs compiled since
    (normally 0)."""
    import time
    import torch
    import torch._dynamo
    p, x, y, T, B, h0 = _torch_problem(params, xs, ys)
    # detached: a returned loss whose graph backward consumed is refused
    step = _torch_step(p, x, y, T, B, h0, detach=True)
    torch._dynamo.reset()               # no compiled code or recompile count from other sizes
    whole = hasattr(torch._dynamo.config, "trace_autograd_ops")
    start = time.perf_counter()
    if whole:
        try:
            torch._dynamo.config.trace_autograd_ops = True
            compiled = torch.compile(step, fullgraph=True, dynamic=False)
            compiled()
            mode = "one graph: forward, loss and backward (fullgraph, trace_autograd_ops)"
        except Exception:
            torch._dynamo.config.trace_autograd_ops = False
            torch._dynamo.reset()
            whole = False
            start = time.perf_counter()
    if not whole:
        compiled = torch.compile(step, dynamic=False)
        compiled()
        mode = "graph break at loss.backward(): forward graph + its AOTAutograd backward"
    trace = time.perf_counter() - start
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    runner = Runner(compiled, _read_torch(p))
    runner.trace_seconds, runner.mode = trace, mode
    runner.recompiles = lambda: torch._dynamo.utils.counters["stats"]["unique_graphs"] - frames
    return runner


def _mgu_cell():
    from microtensor import nn
    import microtensor.functional as F

    class MGU(nn.RecurrentCell):                 # the README's cell
        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.gate = nn.Linear(input_size + hidden_size, hidden_size)
            self.cand = nn.Linear(input_size + hidden_size, hidden_size)

        def forward(self, x, h):
            f = self.gate(mt.concat([x, h], axis=1)).sigmoid()
            return (1 - f) * h + f * self.cand(mt.concat([x, f * h], axis=1)).tanh()
    return MGU, F


def cell_step(kind, H=64, T=50, B=16, I=8, compiled=False, seed=0):
    """One training step (forward, MSE loss, backward, Adam) of the README's MGU cell or
    models.LSTM, eager or through mt.compile."""
    from microtensor import nn
    MGU, F = _mgu_cell()
    mt.manual_seed(seed)
    if kind == "mgu":
        cell = MGU(I, H)
        model = nn.ModuleDict({"cell": cell, "head": nn.Linear(H, 1)})

        def features(xs):
            return nn.unroll(cell, xs)[1]
    else:
        rnn = models.LSTM(I, H)
        model = nn.ModuleDict({"rnn": rnn, "head": nn.Linear(H, 1)})

        def features(xs):
            return rnn(xs)[0][-1]
    head = model["head"]
    params = list(model.parameters())
    opt = mt.optim.Adam(params, lr=1e-3)
    rng = np.random.default_rng(seed)
    xs = mt.tensor(rng.standard_normal((T, B, I)))
    target = mt.tensor(rng.standard_normal((B, 1)))

    def step():
        opt.zero_grad()
        loss = F.mse_loss(head(features(xs)), target)
        loss.backward()
        opt.step()
        return loss
    runner = Runner(step, lambda loss: (loss.item(), {f"p{i}": p.grad
                                                      for i, p in enumerate(params)}))
    return _traced(runner) if compiled else runner
