"""create_graph=True: gradients as Tensors, differentiated again to any order; what .grad holds."""
import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor.autograd import Op
from microtensor.tensor import apply
from microtensor.models import VanillaRNN
from op_specs import ops_used


def test_grad_with_create_graph_returns_tensors_that_differentiate_to_any_order():
    x = mt.tensor([0.3, -1.2, 2.0], requires_grad=True)
    y = (x ** 4).sum()
    derivatives = [y]
    for _ in range(4):
        (d,) = mt.grad(derivatives[-1].sum(), x, create_graph=True)
        assert isinstance(d, mt.Tensor) and d.requires_grad
        derivatives.append(d)
    a = x.data
    for d, want in zip(derivatives[1:], [4 * a ** 3, 12 * a ** 2, 24 * a, 24 + 0 * a]):
        np.testing.assert_allclose(d.data, want, rtol=1e-13)
    (fifth,) = mt.grad(derivatives[-1].sum(), x)         # constant: the graph ends in zeros
    np.testing.assert_array_equal(fifth, 0)


def test_third_derivative_of_tanh_through_every_order_of_its_own_backward():
    x = mt.tensor(np.linspace(-2, 2, 7), requires_grad=True)
    (d1,) = mt.grad(x.tanh().sum(), x, create_graph=True)
    (d2,) = mt.grad(d1.sum(), x, create_graph=True)
    (d3,) = mt.grad(d2.sum(), x)
    t = np.tanh(x.data)
    np.testing.assert_allclose(d1.data, 1 - t ** 2, rtol=1e-14)
    np.testing.assert_allclose(d2.data, -2 * t * (1 - t ** 2), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d3, -2 * (1 - t ** 2) * (1 - 3 * t ** 2), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("base", [[0.0, -0.0, 1.5], [-0.0, 0.0, 0.0]])
def test_second_derivatives_of_pow_are_finite_where_its_masks_apply(base):
    """x ** 0 at x = 0 and 0 ** b (fuzzer seeds 1345, 4903): the masked formula's inf
    (0⁻¹, log 0) must not reach the second derivative as 0 · inf = nan."""
    x = mt.tensor(base, requires_grad=True)
    b = mt.tensor([0.0, 0.0, 2.0], requires_grad=True)
    (gx, gb) = mt.grad((x ** b).sum(), [x, b], create_graph=True)
    hx, hb = mt.grad((gx * 3 + gb * 5).sum(), [x, b])
    a, e = np.array(base), np.array([0.0, 0.0, 2.0])
    # d/dx (3·∂x + 5·∂b) and d/db, where 0^b is constant (b ≥ 0 at a = 0) and x⁰ is 1
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(gx.data, np.where(e == 0, 0, e * a ** (e - 1)))
        logs = np.where(a == 0, 0, np.log(np.abs(a) + (a == 0)))
        want_hx = np.where(e == 0, 0, 3 * e * (e - 1) * a ** (e - 2)) + \
            np.where(a == 0, 0, 5 * (a ** (e - 1) * (1 + e * logs)))
        want_hb = np.where(e == 0, 0, 3 * a ** (e - 1) * (1 + e * logs)) + \
            np.where(a == 0, 0, 5 * a ** e * logs ** 2)
    assert np.all(np.isfinite(hx)) and np.all(np.isfinite(hb)), (hx, hb)
    np.testing.assert_allclose(hx, want_hx, rtol=1e-14)
    np.testing.assert_allclose(hb, want_hb, rtol=1e-14)
    y = mt.tensor(-1.08, requires_grad=True)
    (g1,) = mt.grad((y.relu() ** 0 + y.relu().exp()).sum(), y, create_graph=True)
    (g2,) = mt.grad(g1, y)
    assert g1.item() == 0 and g2.item() == 0


def test_create_graph_gives_the_first_order_values():
    mt.manual_seed(0)
    model = VanillaRNN(4, 6, 4, init="torch")
    rng = np.random.default_rng(0)
    xs = F.one_hot(rng.integers(0, 4, (7, 3)), 4)
    ys = rng.integers(0, 4, (7, 3))
    params = list(model.parameters())
    loss, _ = model.loss(xs, ys)
    plain = mt.grad(loss, params, retain_graph=True)
    graph = mt.grad(loss, params, create_graph=True)
    for a, g in zip(plain, graph):
        assert isinstance(a, np.ndarray) and isinstance(g, mt.Tensor)
        np.testing.assert_allclose(g.data, a, rtol=1e-12, atol=1e-16)


def test_backward_with_create_graph_stores_tensors_in_dot_grad_and_accumulates():
    x = mt.tensor([0.5, -1.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert isinstance(x.grad, mt.Tensor) and x.grad.requires_grad
    np.testing.assert_allclose(x.grad.data, 3 * x.data ** 2)
    first = x.grad
    (x ** 2).sum().backward(create_graph=True)          # adds, keeping both graphs
    np.testing.assert_allclose(x.grad.data, 3 * x.data ** 2 + 2 * x.data)
    (d,) = mt.grad(x.grad.sum(), x, retain_graph=True)
    np.testing.assert_allclose(d, 6 * x.data + 2)
    assert first.data is not x.grad.data                # the first Tensor is left as it was

    x.grad.sum().backward()      # first-order into a Tensor .grad: its values plus g, an array
    assert type(x.grad) is np.ndarray and x.grad.dtype == x.dtype
    np.testing.assert_allclose(x.grad, 3 * x.data ** 2 + 2 * x.data + 6 * x.data + 2)


def test_an_array_grad_plus_a_create_graph_backward_gives_a_tensor():
    x = mt.tensor([0.5, -1.0], dtype=mt.float32, requires_grad=True)
    (x * x).sum().backward()
    (x * x * x).sum().backward(create_graph=True)
    assert isinstance(x.grad, mt.Tensor) and x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 3 * x.data ** 2, rtol=1e-6)


def test_optimizers_and_clipping_use_the_values_of_a_tensor_grad():
    w = mt.nn.Parameter(np.array([1.0, -2.0]))
    (w ** 2).sum().backward(create_graph=True)
    mt.nn.utils.clip_grad_norm_([w], 1.0)
    np.testing.assert_allclose(np.linalg.norm(w.grad.data), 1.0, rtol=1e-5)
    before = w.data.copy()
    mt.optim.SGD([w], lr=0.1).step()
    np.testing.assert_allclose(w.data, before - 0.1 * w.grad.data)


def test_a_gradient_penalty_trains_through_the_second_derivative():
    """loss + ‖∂loss/∂x‖², differentiated with respect to the weights (a WGAN-GP term)."""
    rng = np.random.default_rng(1)
    w = mt.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x = mt.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    out = F.linear(x, w).tanh().sum()
    (gx,) = mt.grad(out, x, create_graph=True)
    total = out + (gx * gx).sum()
    total.backward()
    torch = pytest.importorskip("torch")
    tw = torch.tensor(w.data, requires_grad=True)
    tx = torch.tensor(x.data, requires_grad=True)
    tout = torch.tanh(tx @ tw.T).sum()
    (tgx,) = torch.autograd.grad(tout, tx, create_graph=True)
    (tout + (tgx * tgx).sum()).backward()
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_retain_graph_defaults_to_create_graph():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    mt.grad(y, x, create_graph=True)
    mt.grad(y, x)                                         # the graph was kept
    with pytest.raises(mt.GraphError, match="already been freed"):
        mt.grad(y, x)
    z = (x.exp() * x).sum()
    (g,) = mt.grad(z, x, create_graph=True, retain_graph=False)
    with pytest.raises(mt.GraphError, match="already been freed"):
        mt.grad(g.sum(), x)                               # g's graph runs through z's


def test_grad_outputs_that_require_grad_keep_their_graph():
    """vᵀJ is linear in v: its gradient with respect to v is J applied to the next vector."""
    rng = np.random.default_rng(2)
    A = rng.standard_normal((3, 4))
    x = mt.tensor(rng.standard_normal(4), requires_grad=True)
    v = mt.tensor(rng.standard_normal(3), requires_grad=True)
    (g,) = mt.grad(mt.tensor(A) @ x, x, grad_outputs=v, create_graph=True)
    np.testing.assert_allclose(g.data, A.T @ v.data)
    u = rng.standard_normal(4)
    (dv,) = mt.grad(g, v, grad_outputs=u)
    np.testing.assert_allclose(dv, A @ u)


def test_unreached_inputs_get_constant_zeros():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    z = mt.tensor([3.0], requires_grad=True)
    gx, gz = mt.grad((x * x).sum(), [x, z], create_graph=True)
    assert gx.requires_grad and not gz.requires_grad
    np.testing.assert_array_equal(gz.data, [0.0])


def test_hooks_see_tensors_and_keep_grads_stores_tensors():
    x = mt.tensor([1.0, -1.0], requires_grad=True)
    h = x * 3
    seen = []
    h.register_hook(lambda g: seen.append(g) or g * 2)
    y = (h * h).sum()
    y.backward(create_graph=True, keep_grads=True)
    assert isinstance(seen[0], mt.Tensor) and seen[0].requires_grad
    assert isinstance(h.grad, mt.Tensor)
    np.testing.assert_allclose(x.grad.data, 2 * 2 * 3 * h.data)   # the hook doubled it


def test_a_gradient_graph_carries_the_time_step_of_the_node_it_came_from():
    mt.manual_seed(0)
    model = VanillaRNN(3, 4, 3, init="torch")
    xs = F.one_hot(np.array([[0], [1], [2]]), 3)
    h0 = mt.zeros(1, 4, requires_grad=True)
    loss, _ = model.loss(xs, np.array([[0], [1], [2]]), h0)
    (g,) = mt.grad(loss, h0, create_graph=True)
    scopes, stack, seen = set(), [g], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or t.op is None:
            continue
        seen.add(id(t))
        scopes.add(t.scope)
        stack.extend(t.parents)
    assert {("", 0), ("", 1), ("", 2)} <= {(s.path, s.t) for s in scopes if isinstance(s, mt.Step)}


class _NumpyOnly(Op):
    """A test op whose backward calls NumPy on what it is given (not written for ctx.xp)."""
    name = "numpy_only"

    @staticmethod
    def forward(a):
        return np.sin(a), None

    @staticmethod
    def backward(ctx, g):
        return (g * np.cos(ctx.parents[0].data),)


class _ReturnsArrays(Op):
    """A test op whose backward builds its gradient as a fresh ndarray."""
    name = "returns_arrays"

    @staticmethod
    def forward(a):
        return 2 * a, None

    @staticmethod
    def backward(ctx, g):
        return (np.full(ctx.parents[0].data.shape, 2.0) * np.asarray(g),)


@pytest.mark.parametrize("op", [_NumpyOnly, _ReturnsArrays])
def test_an_op_that_cannot_be_differentiated_twice_is_named(op):
    x = mt.tensor([0.5, 1.0], requires_grad=True)
    y = apply(op, x).sum()
    mt.grad(y, x, retain_graph=True)                      # first order works
    with pytest.raises(mt.GraphError, match=rf"'{op.name}' cannot be differentiated twice"):
        mt.grad(y, x, create_graph=True)


def test_getitem_and_scatter_add_are_each_others_gradient():
    x = mt.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    (g,) = mt.grad((x[[0, 0, 1], 1:] ** 2).sum(), x, create_graph=True)
    assert "scatter_add" in ops_used(g)
    np.testing.assert_allclose(g.data, [[0, 4 * 1, 4 * 2], [0, 2 * 4, 2 * 5]])
    (gg,) = mt.grad(g.sum(), x)
    np.testing.assert_allclose(gg, [[0, 4, 4], [0, 2, 2]])


def test_gradgradcheck_finds_a_wrong_second_derivative():
    class Wrong(Op):
        """x³ with the derivative 3x² written as 3·x·(constant x): the second is half of 6x."""
        name = "wrong"

        @staticmethod
        def forward(a):
            return a ** 3, None

        @staticmethod
        def backward(ctx, g):
            a = ctx.parents[0].data
            return (g * 3 * a * ctx.xp.constant(a),)

    x = mt.tensor([0.5, -1.5], requires_grad=True)
    assert mt.gradcheck(lambda t: apply(Wrong, t), [x])
    with pytest.raises(mt.GradcheckError, match="disagrees"):
        mt.gradgradcheck(lambda t: apply(Wrong, t), [x])
    assert mt.gradgradcheck(lambda t: t * t * t, [x])


def test_gradgradcheck_checks_its_arguments():
    with pytest.raises(mt.GradcheckError, match="no input requires grad"):
        mt.gradgradcheck(lambda t: t * t, [mt.tensor([1.0])])
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(mt.GradcheckError, match="grad_outputs has shape"):
        mt.gradgradcheck(lambda t: t * t, [x], grad_outputs=np.ones(3))
    assert mt.gradgradcheck(lambda t: (t * t).sum(), [x], grad_outputs=np.array(2.0))


def test_a_compiled_function_that_uses_create_graph_runs_eagerly():
    """Its formulas read values (abs's sign, max's mask), which a replay would keep from the
    trace: compile falls back, with one warning, and every call gives eager's result."""
    w = mt.tensor([0.5, -1.0, 2.0], requires_grad=True)

    def penalised(x):
        out = ((x * w).abs() * x).sum() + (x * w).max()
        (gx,) = mt.grad(out, x, create_graph=True)
        return mt.grad(out + (gx * gx).sum(), w)[0]

    step = mt.compile(penalised)
    with pytest.warns(mt.CompileWarning, match="create_graph=True"):
        step(mt.tensor([1.0, 2.0, -3.0], requires_grad=True))
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal(3)
        np.testing.assert_array_equal(step(mt.tensor(x, requires_grad=True)),
                                      penalised(mt.tensor(x, requires_grad=True)))
