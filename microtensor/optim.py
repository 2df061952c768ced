"""Optimizers with torch.optim's update rules: SGD, Adam, Adagrad, RMSprop.

Each step updates every parameter's .data in place with plain NumPy (no graph), skipping
parameters whose .grad is None, and stamps the write (versions.py): a graph built before the
step then refuses to backward instead of using the new weights. Hyperparameters live in
`param_groups[0]` (so a schedule can change `lr` between steps) and per-parameter buffers in
`state[i]`, i the parameter's index.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from . import versions
from .autograd import enable_grad
from .errors import ArgumentError, CheckpointError
from .tensor import Tensor


def _check_hyperparameter(owner, k, v):
    """Every number a finite value >= 0 (as torch rejects NaN, inf and negatives), and
    each tuple's numbers too (Adam's betas); NaN would silently turn every parameter NaN."""
    values = v if isinstance(v, tuple) else (v,)
    for x in values:
        if isinstance(x, bool) or not isinstance(x, (int, float, np.number)):
            continue
        if not math.isfinite(x) or x < 0:
            raise ValueError(f"{owner}: invalid {k}: {v!r} (must be a finite number >= 0)")


class Optimizer:
    """Base class: holds the parameters, their per-parameter state, and the hyperparameters."""

    def __init__(self, params: Iterable[Tensor], defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise ArgumentError(f"{type(self).__name__}: params must be an iterable of tensors "
                                f"(e.g. model.parameters()), got a single Tensor")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        seen = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise ArgumentError(f"{type(self).__name__}: parameter {i} is a "
                                    f"{type(p).__name__}, not a Tensor")
            if not p.requires_grad:
                raise ArgumentError(f"{type(self).__name__}: parameter {i}"
                                    f"{_label(p)} does not require grad")
            if id(p) in seen:
                raise ArgumentError(f"{type(self).__name__}: parameter {i}{_label(p)} "
                                    f"appears twice in the parameter list")
            seen.add(id(p))
        for k, v in defaults.items():
            _check_hyperparameter(type(self).__name__, k, v)
        self.params = params
        self.param_groups: list[dict[str, Any]] = [dict(defaults, params=params)]
        self.state: dict[int, dict[str, Any]] = {}

    def zero_grad(self) -> None:
        """Set every parameter's .grad to None."""
        for p in self.params:
            p.grad = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient, in place.

        closure: optional, re-evaluates the model and returns the loss (returned by step).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        group = self.param_groups[0]
        state = self.state
        for i, p in enumerate(self.params):
            if p.grad is not None:
                st = state.get(i)
                if st is None:
                    st = state[i] = {}
                g = p.grad          # a Tensor after backward(create_graph=True): its values
                with versions.writing(p) as x:
                    self._update(x, g if isinstance(g, np.ndarray) else g._data, st, group)
        return loss

    def _update(self, x, g, st, group):
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """{'state': {i: {name: array or number}}, 'param_groups': [hyperparameters]} (copies),
        ready for mt.save."""
        state = {i: {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in st.items()}
                 for i, st in self.state.items()}
        groups = [{k: (list(range(len(self.params))) if k == "params" else v)
                   for k, v in g.items()} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore state and hyperparameters saved by state_dict(); checks everything first
        and changes nothing if the state does not fit these parameters."""
        name = type(self).__name__
        problems = []
        try:
            saved_state = state_dict["state"]
            (group,) = state_dict["param_groups"]
            saved_ids = list(group["params"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{name}.load_state_dict: expected {{'state': …, "
                                  f"'param_groups': [one group]}}, as state_dict() returns "
                                  f"({e!r})") from None
        if len(saved_ids) != len(self.params):
            problems.append(f"the state is for {len(saved_ids)} parameters, this optimizer "
                            f"has {len(self.params)}")
        new_state: dict[int, dict[str, Any]] = {}
        for key, st in saved_state.items():
            i = int(key) if isinstance(key, (int, str)) and str(key).isdigit() else -1
            if not 0 <= i < len(self.params):
                problems.append(f"state for parameter {key}, which does not exist")
                continue
            if not isinstance(st, dict):
                problems.append(f"state[{i}] is a {type(st).__name__}, not a dict")
                continue
            x = self.params[i]._data
            new_state[i] = {}
            for k, v in st.items():
                if isinstance(v, np.ndarray):
                    if v.shape != x.shape:
                        problems.append(f"state[{i}][{k!r}] has shape {v.shape} but parameter "
                                        f"{i}{_label(self.params[i])} has shape {x.shape}")
                        continue
                    v = v.astype(x.dtype, copy=True)
                new_state[i][k] = v
        unknown = set(group) - set(self.param_groups[0])
        if unknown:
            problems.append(f"unknown hyperparameters {sorted(unknown)} (saved from another "
                            f"optimizer?)")
        if problems:
            raise CheckpointError(f"{name}.load_state_dict failed, and the optimizer was left "
                                  f"unchanged:\n  " + "\n  ".join(problems))
        hyper = {k: (tuple(v) if isinstance(v, list) else v)
                 for k, v in group.items() if k != "params"}
        self.param_groups[0].update(hyper)
        self.state = new_state

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.param_groups[0].items() if k != "params")
        return f"{type(self).__name__}({hyper})"


def _label(p):
    return f" ('{p.name}')" if p.name else ""


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (heavy-ball or Nesterov).

    g ← ∇ + λx;  b ← g on the first step, else μb + (1 − τ)g;  g ← g + μb (Nesterov) or b;
    x ← x − lr·g.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, x, g, st, group):
        wd, mu = group["weight_decay"], group["momentum"]
        if wd:
            g = g + wd * x
        if mu:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                damp = 1 - group["dampening"]
                buf += g if damp == 1 else damp * g
            g = g + mu * buf if group["nesterov"] else buf
        x -= group["lr"] * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with weight decay added to the gradient (L2, not AdamW).

    m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
    x ← x − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=(b1, b2), eps=eps,
                                      weight_decay=weight_decay))

    def _update(self, x, g, st, group):
        b1, b2 = group["betas"]
        wd = group["weight_decay"]
        if wd:
            g = g + wd * x
        if not st:
            st["step"] = 0
            st["exp_avg"] = np.zeros_like(x)
            st["exp_avg_sq"] = np.zeros_like(x)
        m, v = st["exp_avg"], st["exp_avg_sq"]
        t = st["step"] = st["step"] + 1
        tmp = np.multiply(g, 1 - b1, out=np.empty_like(x))    # an array also for a 0-d x
        m *= b1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v *= b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp /= math.sqrt(1 - b2 ** t)
        tmp += group["eps"]
        np.divide(m, tmp, out=tmp)
        tmp *= group["lr"] / (1 - b1 ** t)
        x -= tmp


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), the optimizer of min-char-rnn.

    s ← s + g²;  x ← x − lr/(1 + (t − 1)·decay) · g / (√s + ε).
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def _update(self, x, g, st, group):
        wd = group["weight_decay"]
        if wd:
            g = g + wd * x
        if not st:
            st["step"] = 0
            st["sum"] = np.full_like(x, group["initial_accumulator_value"])
        s = st["sum"]
        t = st["step"] = st["step"] + 1
        clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        tmp = np.multiply(g, g, out=np.empty_like(x))         # an array also for a 0-d x
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += group["eps"]
        np.divide(g, tmp, out=tmp)
        tmp *= clr
        x -= tmp


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), optionally centered and with momentum.

    a ← αa + (1 − α)g²;  d ← √(a − ḡ²) + ε if centered (ḡ ← αḡ + (1 − α)g) else √a + ε;
    x ← x − lr·g/d, or with momentum b ← μb + g/d, x ← x − lr·b.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, x, g, st, group):
        alpha, wd, mu = group["alpha"], group["weight_decay"], group["momentum"]
        if wd:
            g = g + wd * x
        if not st:
            st["step"] = 0
            st["square_avg"] = np.zeros_like(x)
        st["step"] += 1
        a = st["square_avg"]
        tmp = np.multiply(g, g, out=np.empty_like(x))         # an array also for a 0-d x
        tmp *= 1 - alpha
        a *= alpha
        a += tmp
        if group["centered"]:
            gavg = st.get("grad_avg")
            if gavg is None:
                gavg = st["grad_avg"] = np.zeros_like(x)
            gavg *= alpha
            gavg += (1 - alpha) * g
            np.multiply(gavg, gavg, out=tmp)
            np.subtract(a, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(a, out=tmp)
        tmp += group["eps"]
        np.divide(g, tmp, out=tmp)
        if mu:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = np.zeros_like(x)
            buf *= mu
            buf += tmp
            tmp = buf
        x -= group["lr"] * tmp
