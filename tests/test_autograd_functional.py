"""mt.autograd.functional against torch.autograd.functional: same structures, same values."""
import contextlib

import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor.models import VanillaRNN

AF = mt.autograd.functional


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def close(ours, theirs, tol=1e-10):
    """Every Tensor in two results of the same structure agrees to tol."""
    if isinstance(ours, tuple):
        assert isinstance(theirs, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            close(a, b, tol)
        return
    assert isinstance(ours, mt.Tensor)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=tol, atol=tol)


def both(arrays, torch):
    return tuple(mt.tensor(a) for a in arrays), tuple(torch.tensor(a) for a in arrays)


# ---- a small MLP: x → tanh(x W1ᵀ + b1) W2ᵀ + b2 → cross-entropy ----------------------------

def mlp(lib_F, x, targets):
    def loss(W1, b1, W2, b2):
        return lib_F.cross_entropy(lib_F.linear(lib_F.linear(x, W1, b1).tanh(), W2, b2),
                                   targets)
    return loss


@pytest.fixture
def mlp_case(torch):
    rng = np.random.default_rng(0)
    x, targets = rng.standard_normal((6, 3)), np.array([0, 1, 2, 1, 0, 2])
    params = (rng.standard_normal((4, 3)), rng.standard_normal(4),
              rng.standard_normal((3, 4)), rng.standard_normal(3))
    ours = mlp(F, mt.tensor(x), targets)
    theirs = mlp(torch.nn.functional, torch.tensor(x), torch.tensor(targets))
    return ours, theirs, params, tuple(rng.standard_normal(p.shape) for p in params)


def test_hessian_and_hvp_of_a_small_mlp_equal_torch(torch, mlp_case):
    ours, theirs, params, v = mlp_case
    ps, tps = both(params, torch)
    vs, tvs = both(v, torch)
    TF = torch.autograd.functional
    close(AF.hessian(ours, ps), TF.hessian(theirs, tps))
    for name in ("hvp", "vhp", "jvp"):
        close(getattr(AF, name)(ours, ps, vs), getattr(TF, name)(theirs, tps, tvs))
    close(AF.vjp(ours, ps), TF.vjp(theirs, tps))
    close(AF.jacobian(ours, ps), TF.jacobian(theirs, tps))


# ---- a 10-step vanilla RNN: models.VanillaRNN, its parameters and h0 as the inputs ----------

@contextlib.contextmanager
def parameters_replaced(model, tensors):
    """Run models.VanillaRNN with the given tensors in place of its five parameters."""
    saved = {k: getattr(model, k) for k in ("Wxh", "Whh", "bh", "Why", "by")}
    try:
        for k, t in tensors.items():
            object.__setattr__(model, k, t)
        yield
    finally:
        for k, p in saved.items():
            object.__setattr__(model, k, p)


NAMES = ("Wxh", "Whh", "bh", "Why", "by")


@pytest.fixture
def rnn_case(torch):
    T, B, V, H = 10, 2, 3, 3
    mt.manual_seed(3)
    model = VanillaRNN(V, H, V, init="torch")
    with mt.no_grad():
        model.Whh.data *= 1.5
    rng = np.random.default_rng(3)
    xs = F.one_hot(rng.integers(0, V, (T, B)), V)
    ys = rng.integers(0, V, (T, B))

    def ours(*inputs):
        with parameters_replaced(model, dict(zip(NAMES, inputs))):
            return model.loss(xs, ys, inputs[-1])[0]

    txs, tys = torch.tensor(xs.data), torch.tensor(ys.reshape(-1))

    def theirs(Wxh, Whh, bh, Why, by, h0):
        h, logits = h0, []
        for t in range(T):
            h = torch.tanh(txs[t] @ Wxh.T + bh + h @ Whh.T)
            logits.append(h @ Why.T + by)
        return torch.nn.functional.cross_entropy(torch.stack(logits).reshape(T * B, V), tys)

    inputs = tuple(getattr(model, k).data.copy() for k in NAMES) + \
        (rng.standard_normal((B, H)) * 0.5,)
    return ours, theirs, inputs, tuple(rng.standard_normal(a.shape) for a in inputs)


def test_hessian_and_hvp_of_a_10_step_vanilla_rnn_equal_torch(torch, rnn_case):
    ours, theirs, inputs, v = rnn_case
    xs, txs = both(inputs, torch)
    vs, tvs = both(v, torch)
    TF = torch.autograd.functional
    assert abs(ours(*xs).item() - theirs(*txs).item()) < 1e-12
    close(AF.hessian(ours, xs), TF.hessian(theirs, txs))
    close(AF.hvp(ours, xs, vs), TF.hvp(theirs, txs, tvs))
    close(AF.vhp(ours, xs, vs), TF.vhp(theirs, txs, tvs))


def test_create_graph_results_differentiate_again_as_torchs(torch, rnn_case):
    ours, theirs, inputs, v = rnn_case
    xs, txs = both(inputs, torch)
    vs, tvs = both(v, torch)
    xs = tuple(x.requires_grad_() for x in xs)
    txs = tuple(x.requires_grad_() for x in txs)
    _, hv = AF.hvp(ours, xs, vs, create_graph=True)
    _, thv = torch.autograd.functional.hvp(theirs, txs, tvs, create_graph=True)
    assert all(h.requires_grad for h in hv)
    w = [np.random.default_rng(4).standard_normal(x.shape) for x in xs]
    third = mt.grad(mt.stack([(h * wi).sum() for h, wi in zip(hv, w)]).sum(), list(xs))
    tthird = torch.autograd.grad(sum((h * torch.tensor(wi)).sum() for h, wi in zip(thv, w)),
                                 txs)
    for a, b in zip(third, tthird):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-10)


# ---- structures, defaults and errors, as torch's -------------------------------------------

def test_results_have_the_structure_of_inputs_and_outputs():
    x, y = mt.tensor([1.0, 2.0, 3.0]), mt.tensor([[0.5, -1.0]])
    j = AF.jacobian(lambda a: a.tanh(), x)
    assert isinstance(j, mt.Tensor) and j.shape == (3, 3) and not j.requires_grad
    j = AF.jacobian(lambda a, b: a.sum() * b, (x, y))
    assert isinstance(j, tuple) and [t.shape for t in j] == [(1, 2, 3), (1, 2, 1, 2)]
    j = AF.jacobian(lambda a: (a.exp(), a.sum()), x)
    assert isinstance(j, tuple) and [t.shape for t in j] == [(3, 3), (3,)]
    h = AF.hessian(lambda a, b: (a * a).sum() * b.sum(), (x, y))
    assert [[t.shape for t in row] for row in h] == [[(3, 3), (3, 1, 2)],
                                                     [(1, 2, 3), (1, 2, 1, 2)]]
    out, g = AF.vjp(lambda a: (a * a).sum(), x)           # v may be omitted: one element
    assert out.item() == 14.0 and g.shape == (3,)
    np.testing.assert_array_equal(g.data, [2.0, 4.0, 6.0])
    out, jv = AF.jvp(lambda a: a * 3, mt.tensor([2.0]))
    np.testing.assert_array_equal(jv.data, [3.0])


def test_an_input_the_output_does_not_depend_on_gets_zeros_or_a_strict_error():
    x, y = mt.tensor([1.0, 2.0]), mt.tensor([3.0])
    g = AF.vjp(lambda a, b: (a * a).sum(), (x, y))[1]
    np.testing.assert_array_equal(g[1].data, [0.0])
    with pytest.raises(mt.GraphError, match="independent of input 1"):
        AF.vjp(lambda a, b: (a * a).sum(), (x, y), strict=True)
    np.testing.assert_array_equal(AF.hessian(lambda a: a.sum(), x).data, np.zeros((2, 2)))
    with pytest.raises(mt.GraphError, match="jacobian .* independent of the input"):
        AF.hessian(lambda a: a.sum(), x, strict=True)
    with pytest.raises(mt.GraphError, match="does not require gradients"):
        AF.jacobian(lambda a: mt.tensor([1.0]), x, strict=True)


@pytest.mark.parametrize("call, message", [
    (lambda: AF.vjp(lambda a: a * 2, mt.tensor([1.0, 2.0])), "v can only be None"),
    (lambda: AF.jvp(lambda a: a * 2, mt.tensor([1.0, 2.0])), "v can only be None"),
    (lambda: AF.hvp(lambda a: a.sum(), mt.tensor([1.0, 2.0]), mt.tensor([1.0])),
     r"v has invalid size: should be \(2,\) but got \(1,\)"),
    (lambda: AF.vhp(lambda a, b: a.sum(), (mt.tensor([1.0]), mt.tensor([1.0])),
                    (mt.tensor([1.0]),)), "v is a tuple of invalid length"),
    (lambda: AF.hessian(lambda a: a * a, mt.tensor([1.0, 2.0])), "single element"),
    (lambda: AF.jacobian(lambda a: a, [1.0]), "must be a Tensor or a tuple of Tensors"),
    (lambda: AF.jacobian(lambda a: a, mt.tensor([1.0]), strategy="sideways"), "strategy"),
])
def test_bad_arguments_get_torchs_messages(call, message):
    with pytest.raises(mt.MicrotensorError, match=message):
        call()


def test_the_callers_tensors_are_not_touched_unless_create_graph():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    AF.hessian(lambda a: (a ** 3).sum(), x)
    assert x.grad is None
    h = AF.hessian(lambda a: (a ** 3).sum(), x, create_graph=True)
    (d,) = mt.grad(h.sum(), x)                  # the result's graph reaches the caller's x
    np.testing.assert_allclose(d, [6.0, 6.0])


def test_jacobian_of_one_rnn_step_is_diag_one_minus_h_squared_times_whh():
    mt.manual_seed(1)
    model = VanillaRNN(2, 4, 2, init="torch")
    xp = F.linear(mt.randn(1, 2), model.Wxh, model.bh).detach()
    h = mt.randn(1, 4)
    J = AF.jacobian(lambda h: model.step(xp, h), h).reshape(4, 4)
    h1 = model.step(xp, h).data[0]
    np.testing.assert_allclose(J.data, (1 - h1 ** 2)[:, None] * model.Whh.data, rtol=1e-13)
