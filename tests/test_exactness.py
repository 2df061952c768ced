"""Gradients that outside test suites found wrong, each against torch's value or the math."""
import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor import models
from microtensor.models.rnn_reference import bptt


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- 0-d tensors ---------------------------------------------------------------------------

def test_a_0d_tensor_used_three_times():
    x = mt.tensor(2.0, requires_grad=True)
    (x + x * x + x * x * x).backward()
    assert type(x.grad) is np.ndarray and x.grad.shape == () and x.grad.dtype == np.float64
    assert x.grad == 1 + 2 * 2 + 3 * 4            # 17


def test_a_learnable_scalar_in_a_five_step_recurrence():
    a = mt.tensor(0.5, requires_grad=True)
    h = mt.ones((2, 3))
    for _ in range(5):
        h = a * h + 0.1
    h.sum().backward()
    # h5 = a⁵ + 0.1(1 + a + a² + a³ + a⁴) per element; d/da summed over 6 elements
    want = 6 * (5 * 0.5 ** 4 + 0.1 * (1 + 2 * 0.5 + 3 * 0.25 + 4 * 0.125))
    assert a.grad == pytest.approx(want, rel=1e-14)             # 3.825


def test_a_reused_0d_mean():
    s = mt.tensor([1.0, 2.0, 4.0], requires_grad=True)
    m = s.mean()
    (m + m * m + m * m * m).backward()
    mv = 7 / 3
    np.testing.assert_allclose(s.grad, np.full(3, (1 + 2 * mv + 3 * mv * mv) / 3), rtol=1e-14)


def test_a_0d_tensor_indexed_and_used_directly():
    for index in ((), None, Ellipsis):
        x = mt.tensor(0.3, requires_grad=True)
        (x * -0.35 + x[index] * -1.2).backward()
        assert x.grad.shape == () and x.grad == pytest.approx(-1.55, rel=1e-14)


def test_op_results_and_gradients_of_0d_tensors_are_arrays():
    x = mt.tensor(1.5, requires_grad=True)
    y = (x * x).tanh()
    assert type(y._data) is np.ndarray and type(x.sum()._data) is np.ndarray
    # .data hands out a read-only GuardedArray view while the graph is live (versions.py):
    # still a 0-d ndarray, not a NumPy scalar
    assert isinstance(y.data, np.ndarray) and y.data.shape == () and y.data == y._data
    for c in (x > 0, x < 0, x >= 1, x <= 1, x == 1.5, x != 1.5):     # comparisons too
        assert type(c._data) is np.ndarray and c.shape == () and c.dtype == np.bool_
    (g,) = mt.grad(y, x)
    assert type(g) is np.ndarray and g.shape == ()


# ---- indexing -------------------------------------------------------------------------------

@pytest.mark.parametrize("index, counts", [
    (((1, 1),), [0, 2, 0, 0]),
    (((3, 0, 3), slice(1, None)), [1, 0, 0, 2]),
    (([1, 1, 2],), [0, 2, 1, 0]),
])
def test_repeated_entries_of_an_index_tuple_add_up(index, counts):
    x = mt.tensor(randn(4, 3), requires_grad=True)
    x[index].sum().backward()
    cols = 3 if len(index) == 1 else 2
    want = np.zeros((4, 3))
    want[:, 3 - cols:] = np.array(counts)[:, None]
    np.testing.assert_array_equal(x.grad, want)


# ---- linear ---------------------------------------------------------------------------------

def test_a_weight_shared_by_a_folded_linear_and_another_linear():
    W = mt.tensor(randn(2, 3), requires_grad=True)
    v = mt.tensor(randn(3, seed=1))
    x = mt.tensor(randn(5, 3, seed=2))
    big = F.linear(v.broadcast_to((4100, 3)), W)          # ≥ FOLD_ROWS rows: folded at once
    (big.sum() + (F.linear(x, W) * mt.tensor(randn(5, 2, seed=3))).sum()).backward()
    want = np.ones((4100, 2)).T @ np.broadcast_to(v.data, (4100, 3)) + randn(5, 2, seed=3).T @ x.data
    np.testing.assert_allclose(W.grad, want, rtol=1e-12)


def test_the_recurrent_weight_at_a_batch_of_4100_equals_hand_bptt():
    mt.manual_seed(0)
    model = models.VanillaRNN(3, 4, 3, init="torch")
    rng = np.random.default_rng(0)
    xs, targets = rng.standard_normal((3, 4100, 3)), rng.integers(0, 3, (3, 4100))
    loss, _ = model.loss(mt.tensor(xs), targets)
    loss.backward()
    ref = bptt({k: getattr(model, k).data for k in ("Wxh", "Whh", "Why", "bh", "by")},
               xs, targets)
    for k in ("Wxh", "Whh", "Why", "bh", "by"):
        want = ref[f"d{k}"]
        err = np.max(np.abs(getattr(model, k).grad - want)) / np.max(np.abs(want))
        assert err < 1e-12, k


def test_linear_with_a_bias_that_would_make_the_output_larger_is_rejected_at_forward():
    x, W = mt.tensor(randn(1, 1), requires_grad=True), mt.tensor(randn(3, 1), requires_grad=True)
    with pytest.raises(mt.ShapeError, match=r"linear: bias of shape \(2, 1, 1\).*\(1, 3\)"):
        F.linear(x, W, mt.tensor(randn(2, 1, 1), requires_grad=True))
    y = F.linear(x, W, mt.tensor(randn(1, 3)))            # one that fits still works
    assert y.shape == (1, 3)


# ---- accumulation, hooks, dtypes -------------------------------------------------------------

def test_a_retained_gradient_accumulates_over_two_backward_calls():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    loss = (y * y).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(y.grad, 2 * 2 * y.data, rtol=1e-15)
    np.testing.assert_allclose(x.grad, 2 * 2 * 3 * y.data, rtol=1e-15)


def test_a_hook_that_edits_its_gradient_in_place_does_not_leak_into_a_sibling():
    a = mt.tensor([1.0], requires_grad=True)
    b = mt.tensor([1.0], requires_grad=True)
    y = a * 1

    def hook(g):
        g *= 10
        return g
    y.register_hook(hook)
    (y + b).sum().backward()
    assert b.grad[0] == 1.0 and a.grad[0] == 10.0


def test_float32_stays_float32_with_a_number_on_either_side():
    x = mt.tensor(np.array([0.2, 0.7], dtype=np.float32), requires_grad=True)
    for out in (mt.maximum(0.5, x), mt.minimum(0.5, x), mt.maximum(x, 0.5),
                mt.where([True, False], 0.5, x), mt.where([True, False], x, 0.5)):
        assert out.dtype == np.float32


def test_retained_and_mt_grad_gradients_of_float32_tensors_are_float32():
    x = mt.tensor(np.array([0.2, 0.7], dtype=np.float32), requires_grad=True)
    y = x * 2.5
    y.retain_grad()
    loss = (y.tanh() * mt.tensor(np.array([1.0, 2.0]))).sum()   # a float64 constant mixes in
    gx, gy = mt.grad(loss, [x, y], retain_graph=True)
    loss.backward()
    assert gx.dtype == gy.dtype == y.grad.dtype == x.grad.dtype == np.float32


def test_an_integer_tensor_marked_requires_grad_gets_a_clear_error_not_an_int_gradient():
    t = mt.tensor([1, 2, 3])
    t.requires_grad = True
    with pytest.raises(mt.DTypeError, match="int64"):
        (t * 2.5).sum().backward()
    w = mt.tensor([1.0, 2.0], requires_grad=True)
    w.data = np.array([1, 2])
    with pytest.raises(mt.DTypeError, match="floating-point"):
        (w * 2.5).sum().backward()
    with pytest.raises(mt.DTypeError):
        mt.grad((t * 2.5).sum(), t)


# ---- pow at zero, following torch's masks ----------------------------------------------------

@pytest.mark.parametrize("a, b, da, db", [
    (0.0, 0.0, 0.0, 0.0), (0.0, 2.0, 0.0, 0.0), (0.0, 0.5, np.inf, 0.0),
    (0.0, -1.0, -np.inf, -np.inf), (2.0, 0.0, 0.0, np.log(2.0)),
])
def test_pow_at_zero_follows_torch(a, b, da, db):
    x, w = mt.tensor(a, requires_grad=True), mt.tensor(b, requires_grad=True)
    with np.errstate(divide="ignore"):              # 0 ** −1 = inf, as NumPy says
        (x ** w).backward()
    assert x.grad == da and w.grad == db


def test_x_to_the_zero_at_zero_has_zero_gradient_elementwise():
    x = mt.tensor([0.0, 1.0, 0.0], requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


# ---- mt.grad's arguments ---------------------------------------------------------------------

def test_mt_grad_with_fewer_grad_outputs_than_outputs_raises():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    y1, y2 = x * 2, x * 3
    with pytest.raises(mt.ArgumentError, match="1 grad_outputs for 2 outputs"):
        mt.grad([y1, y2], x, grad_outputs=2.0)
    g, = mt.grad([y1, y2], [x], grad_outputs=[np.ones(2), np.ones(2)])
    np.testing.assert_array_equal(g, [5.0, 5.0])


# ---- gradcheck ------------------------------------------------------------------------------

def test_gradcheck_restores_its_input_when_fn_raises_part_way():
    x = mt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    calls = []

    def fn(t):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return (t * t).sum()
    with pytest.raises(KeyboardInterrupt):
        mt.gradcheck(fn, [x])
    np.testing.assert_array_equal(x.data, [1.0, 2.0, 3.0])


def test_gradcheck_of_a_non_contiguous_input():
    W = randn(3, 4)
    x = mt.tensor(W.T, requires_grad=True)
    x.data = W.T                                  # a transposed view, not contiguous
    assert not x.data.flags.c_contiguous
    assert mt.gradcheck(lambda t: (t * t).sum() * 5, [x])


def test_gradcheck_of_a_function_that_draws_randomness_says_so():
    x = mt.tensor(randn(4), requires_grad=True)
    with pytest.raises(mt.GradcheckError, match="random"):
        mt.gradcheck(lambda t: F.dropout(t, 0.5).sum(), [x])


# ---- optimizers reject what torch rejects ----------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda p, v: mt.optim.SGD(p, lr=v), lambda p, v: mt.optim.SGD(p, lr=0.1, momentum=v),
    lambda p, v: mt.optim.SGD(p, lr=0.1, weight_decay=v), lambda p, v: mt.optim.Adam(p, lr=v),
    lambda p, v: mt.optim.Adam(p, eps=v), lambda p, v: mt.optim.Adam(p, betas=(v, 0.9)),
    lambda p, v: mt.optim.RMSprop(p, alpha=v), lambda p, v: mt.optim.RMSprop(p, momentum=v),
    lambda p, v: mt.optim.Adagrad(p, lr_decay=v), lambda p, v: mt.optim.Adagrad(p, eps=v),
])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_optimizers_reject_nan_inf_and_negative_hyperparameters(make, value):
    p = mt.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError):
        make([p], value)
