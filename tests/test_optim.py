"""Optimizers: 20-step trajectories against a NumPy reference and torch.optim, XOR, state."""
import copy

import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor.errors import ArgumentError, CheckpointError
from microtensor.nn import Linear, Parameter, Sequential, Tanh
from microtensor.optim import SGD, Adagrad, Adam, RMSprop

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.2,
                     eps=1e-8)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.5,
                     centered=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.9)),
]
IDS = [f"{name}-{'-'.join(cfg)}" for name, cfg in CONFIGS]
STEPS = 20


# ---- the problem: a small tanh network fitting random targets ---------------------------------
def problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4) * 0.1,
              "W2": rng.standard_normal((4, 2))}
    return params, rng.standard_normal((5, 3)), rng.standard_normal((5, 2))


def numpy_grads(p, X, Y):
    """Hand-derived gradients of mean((tanh(X W1 + b1) W2 − Y)²)."""
    h = np.tanh(X @ p["W1"] + p["b1"])
    dout = 2 * (h @ p["W2"] - Y) / Y.size
    dz = dout @ p["W2"].T * (1 - h * h)
    return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ dout}


def numpy_step(name, cfg, p, g, s, t):
    """One step of torch.optim's documented algorithm, written out plainly (t counts from 1)."""
    lr, wd = cfg["lr"], cfg.get("weight_decay", 0.0)
    g = g + wd * p
    if name == "SGD":
        mu, damp = cfg.get("momentum", 0.0), cfg.get("dampening", 0.0)
        if mu:
            s["b"] = g.copy() if t == 1 else mu * s["b"] + (1 - damp) * g
            g = g + mu * s["b"] if cfg.get("nesterov") else s["b"]
        return p - lr * g
    if name == "Adam":
        b1, b2 = cfg.get("betas", (0.9, 0.999))
        eps = cfg.get("eps", 1e-8)
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1 ** t)
        v_hat = s["v"] / (1 - b2 ** t)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps)
    if name == "Adagrad":
        clr = lr / (1 + (t - 1) * cfg.get("lr_decay", 0.0))
        s["sum"] = s.get("sum", cfg.get("initial_accumulator_value", 0.0)) + g * g
        return p - clr * g / (np.sqrt(s["sum"]) + cfg.get("eps", 1e-10))
    if name == "RMSprop":
        alpha, eps, mu = cfg.get("alpha", 0.99), cfg.get("eps", 1e-8), cfg.get("momentum", 0.0)
        s["a"] = alpha * s.get("a", 0.0) + (1 - alpha) * g * g
        if cfg.get("centered"):
            s["gbar"] = alpha * s.get("gbar", 0.0) + (1 - alpha) * g
            denom = np.sqrt(s["a"] - s["gbar"] ** 2) + eps
        else:
            denom = np.sqrt(s["a"]) + eps
        if mu:
            s["b"] = mu * s.get("b", 0.0) + g / denom
            return p - lr * s["b"]
        return p - lr * g / denom
    raise ValueError(name)


def numpy_trajectory(name, cfg):
    p, X, Y = problem()
    states = {k: {} for k in p}
    out = []
    for t in range(1, STEPS + 1):
        g = numpy_grads(p, X, Y)
        p = {k: numpy_step(name, cfg, p[k], g[k], states[k], t) for k in p}
        out.append(p)
    return out


def mt_trajectory(name, cfg):
    init, X, Y = problem()
    p = {k: Parameter(v) for k, v in init.items()}
    unused = Parameter(np.ones(3))                          # never gets a gradient
    opt = getattr(mt.optim, name)([*p.values(), unused], **cfg)
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.mse_loss((X @ p["W1"] + p["b1"]).tanh() @ p["W2"], Y)
        loss.backward()
        opt.step()
        out.append({k: v.data.copy() for k, v in p.items()})
    np.testing.assert_array_equal(unused.data, np.ones(3))
    assert 3 not in opt.state                               # skipped: no state either
    return out


def torch_trajectory(torch, name, cfg):
    init, X, Y = problem()
    p = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    unused = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = getattr(torch.optim, name)([*p.values(), unused], **cfg)
    X, Y = torch.from_numpy(X), torch.from_numpy(Y)
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(torch.tanh(X @ p["W1"] + p["b1"]) @ p["W2"], Y)
        loss.backward()
        opt.step()
        out.append({k: v.detach().numpy().copy() for k, v in p.items()})
    return out


def assert_same_trajectory(ours, ref):
    for t, (a, b) in enumerate(zip(ours, ref), 1):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12,
                                       err_msg=f"{k} after step {t}")


def test_numpy_reference_gradients_match_autodiff():
    init, X, Y = problem()
    p = {k: Parameter(v) for k, v in init.items()}
    F.mse_loss((X @ p["W1"] + p["b1"]).tanh() @ p["W2"], Y).backward()
    for k, g in numpy_grads(init, X, Y).items():
        np.testing.assert_allclose(p[k].grad, g, rtol=1e-13)


@pytest.mark.parametrize("name, cfg", CONFIGS, ids=IDS)
def test_trajectory_matches_numpy_reference(name, cfg):
    ours = mt_trajectory(name, cfg)
    assert_same_trajectory(ours, numpy_trajectory(name, cfg))
    assert not np.allclose(ours[-1]["W1"], problem()[0]["W1"])      # it did move


@pytest.mark.parametrize("name, cfg", CONFIGS, ids=IDS)
def test_trajectory_matches_torch(name, cfg):
    torch = pytest.importorskip("torch")
    assert_same_trajectory(mt_trajectory(name, cfg), torch_trajectory(torch, name, cfg))


# ---- behaviour ------------------------------------------------------------------------------
XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0, 1, 1, 0])


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.5, momentum=0.9),
    lambda ps: Adam(ps, lr=0.05),
    lambda ps: Adagrad(ps, lr=0.3),
    lambda ps: RMSprop(ps, lr=0.01),
], ids=["SGD", "Adam", "Adagrad", "RMSprop"])
def test_mlp_learns_xor(make):
    mt.manual_seed(0)
    model = Sequential(Linear(2, 8), Tanh(), Linear(8, 2))
    opt = make(model.parameters())
    for _ in range(100):
        opt.zero_grad()
        loss = F.cross_entropy(model(XOR_X), XOR_Y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    np.testing.assert_array_equal(model(XOR_X).data.argmax(axis=1), XOR_Y)


def test_step_records_no_graph_and_updates_in_place():
    p = Parameter([1.0, 2.0])
    data = p.data
    opt = Adam([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert p.data is data and p.is_leaf and p.op is None
    np.testing.assert_allclose(p.data, [0.9, 1.9], rtol=1e-9)


def test_step_with_closure_returns_the_loss():
    p = Parameter([3.0])
    opt = SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with mt.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 9.0 and p.data[0] == 3.0 - 0.25 * 6.0


def test_zero_grad_sets_none():
    p = Parameter([1.0])
    p.grad = np.array([3.0])
    opt = SGD([p], lr=0.1)
    opt.zero_grad()
    assert p.grad is None
    opt.step()                                          # nothing to do
    np.testing.assert_array_equal(p.data, [1.0])


def test_learning_rate_can_change_between_steps():
    p = Parameter([1.0])
    opt = SGD([p], lr=0.1)
    p.grad = np.array([1.0])
    opt.step()
    for group in opt.param_groups:
        group["lr"] = 0.01
    opt.step()
    assert p.data[0] == pytest.approx(1.0 - 0.1 - 0.01, abs=1e-15)


def test_float32_parameters_stay_float32():
    p = Parameter(np.ones(3, dtype=np.float32))
    for opt in (SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), Adam([p]), Adagrad([p]),
                RMSprop([p], momentum=0.5, centered=True)):
        p.grad = np.full(3, 0.5, dtype=np.float32)
        opt.step()
        opt.step()
        assert p.dtype == np.float32
        assert all(v.dtype == np.float32 for st in opt.state.values() for v in st.values()
                   if isinstance(v, np.ndarray))


def test_bad_arguments():
    p = Parameter([1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ArgumentError, match="single Tensor"):
        SGD(p, lr=0.1)
    with pytest.raises(ArgumentError, match="parameter 1 .*appears twice"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ArgumentError, match="does not require grad"):
        SGD([mt.tensor([1.0])], lr=0.1)
    with pytest.raises(ArgumentError, match="parameter 0 is a ndarray"):
        SGD([np.zeros(1)], lr=0.1)
    with pytest.raises(ValueError, match="invalid lr: -1"):
        Adam([p], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([p], lr=0.1, nesterov=True)


def test_params_may_be_a_generator():
    model = Linear(2, 2)
    opt = SGD(model.parameters(), lr=0.1)
    assert len(opt.params) == 2
    assert repr(opt) == ("SGD(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, "
                         "nesterov=False)")


# ---- state dicts ----------------------------------------------------------------------------
def train_steps(model, opt, n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: Adagrad(ps, lr=0.1),
    lambda ps: RMSprop(ps, lr=0.01, momentum=0.3, centered=True),
], ids=["SGD", "Adam", "Adagrad", "RMSprop"])
def test_state_dict_round_trip_resumes_exactly(make):
    mt.manual_seed(0)
    a = Linear(3, 2)
    opt_a = make(a.parameters())
    train_steps(a, opt_a, 5, seed=1)
    model_sd, opt_sd = a.state_dict(), copy.deepcopy(opt_a.state_dict())
    train_steps(a, opt_a, 3, seed=2)

    b = Linear(3, 2)
    opt_b = make(b.parameters())
    b.load_state_dict(model_sd)
    opt_b.load_state_dict(opt_sd)
    train_steps(b, opt_b, 3, seed=2)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


def test_state_dict_is_a_copy_with_numbered_state():
    p = Parameter([1.0, 2.0])
    opt = Adam([p], lr=0.1, betas=(0.8, 0.9))
    p.grad = np.array([1.0, -1.0])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sd["state"][0]["step"] == 1
    np.testing.assert_allclose(sd["state"][0]["exp_avg"], [0.2, -0.2], rtol=1e-15)
    assert sd["param_groups"] == [dict(lr=0.1, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.0,
                                       params=[0])]
    sd["state"][0]["exp_avg"][...] = 99.0
    assert not np.any(opt.state[0]["exp_avg"] == 99.0)


def test_load_state_dict_restores_hyperparameters_and_copies():
    p = Parameter([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0])
    opt.step()
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.5
    fresh = SGD([Parameter([1.0])], lr=0.1, momentum=0.9)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == 0.5
    sd["state"][0]["momentum_buffer"][...] = 7.0
    np.testing.assert_array_equal(fresh.state[0]["momentum_buffer"], [1.0])


def test_load_state_dict_mismatch_changes_nothing():
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(3))
    opt = Adam([p, q], lr=0.1)
    p.grad, q.grad = np.ones(2), np.ones(3)
    opt.step()
    sd = opt.state_dict()
    other = Adam([Parameter(np.zeros(2)), Parameter(np.zeros(4))], lr=0.3)
    with pytest.raises(CheckpointError, match=r"state\[1\]\['exp_avg'\] has shape \(3,\) but "
                                              r"parameter 1 has shape \(4,\)"):
        other.load_state_dict(sd)
    assert other.state == {} and other.param_groups[0]["lr"] == 0.3
    with pytest.raises(CheckpointError, match="state is for 2 parameters, this optimizer has 1"):
        Adam([Parameter(np.zeros(2))]).load_state_dict(sd)
    with pytest.raises(CheckpointError, match="unknown hyperparameters"):
        SGD([p, q], lr=0.1).load_state_dict(sd)
    with pytest.raises(CheckpointError, match="expected"):
        SGD([p], lr=0.1).load_state_dict({"weights": 1})


@pytest.mark.parametrize("make", [
    lambda p: mt.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: mt.optim.Adam(p, weight_decay=0.1),
    lambda p: mt.optim.Adagrad(p, weight_decay=0.1),
    lambda p: mt.optim.RMSprop(p, centered=True, momentum=0.5, weight_decay=0.1),
], ids=["sgd", "adam", "adagrad", "rmsprop"])
def test_a_0d_parameter_steps_as_a_1_element_one_does(make):
    """Adam's first buffer was a NumPy scalar for a 0-d parameter (`out=` then raised)."""
    x, y = mt.tensor(0.5, requires_grad=True), mt.tensor([0.5], requires_grad=True)
    opts = make([x]), make([y])
    for _ in range(3):
        for opt, t in zip(opts, (x, y)):
            opt.zero_grad()
            (t * t).sum().backward()
            opt.step()
    assert x.shape == () and type(x._data) is np.ndarray
    assert x._data.tobytes() == y._data.tobytes()
