"""microtensor.functional against NumPy formulas: softmax family, losses, linear, dropout."""
import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def np_log_softmax(x, axis=-1):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


# ---- softmax and log_softmax ---------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax_match_numpy(axis):
    xd = randn(3, 4)
    np.testing.assert_allclose(F.softmax(mt.tensor(xd), axis=axis).data,
                               np.exp(xd) / np.exp(xd).sum(axis=axis, keepdims=True))
    np.testing.assert_allclose(F.log_softmax(xd, axis=axis).data,
                               np.log(np.exp(xd) / np.exp(xd).sum(axis=axis, keepdims=True)))
    np.testing.assert_allclose(F.softmax(xd, axis=axis).data.sum(axis=axis), 1.0)


def test_log_softmax_and_softmax_are_stable_for_logits_of_1e4():
    xd = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4 - 1.0]])
    x = mt.tensor(xd, requires_grad=True)
    y = F.log_softmax(x)
    assert np.all(np.isfinite(y.data))
    np.testing.assert_allclose(y.data, np_log_softmax(xd))
    assert y.data[0, 0] == 0.0 and y.data[0, 2] == -2e4
    g = randn(2, 3)
    y.backward(g)
    assert np.all(np.isfinite(x.grad))
    sm = np.exp(np_log_softmax(xd))
    np.testing.assert_allclose(x.grad, g - sm * g.sum(axis=-1, keepdims=True))
    x.grad = None
    s = F.softmax(x)
    np.testing.assert_allclose(s.data, sm)
    s.backward(g)
    np.testing.assert_allclose(x.grad, sm * (g - (g * sm).sum(axis=-1, keepdims=True)),
                               atol=1e-15)
    assert np.all(np.isfinite(F.cross_entropy(x, [0, 2]).data))


# ---- cross_entropy and nll_loss -------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_values_and_gradients(reduction):
    logits, targets = randn(5, 3), np.array([0, 2, 1, 2, 2])
    x = mt.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, targets, reduction=reduction)
    per = -np_log_softmax(logits)[np.arange(5), targets]
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(loss.data, expected)
    assert loss.shape == np.shape(expected)
    g = np.ones(loss.shape) if reduction != "none" else randn(5, seed=1)
    loss.backward(g)
    scale = {"mean": np.full(5, 1 / 5), "sum": np.ones(5), "none": g}[reduction]
    onehot = np.eye(3)[targets]
    np.testing.assert_allclose(x.grad, (np.exp(np_log_softmax(logits)) - onehot) * scale[:, None])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_picks_minus_the_target_log_probability(reduction):
    logp, targets = np_log_softmax(randn(4, 3)), mt.tensor([1, 0, 0, 2])
    x = mt.tensor(logp, requires_grad=True)
    loss = F.nll_loss(x, targets, reduction=reduction)
    per = -logp[np.arange(4), targets.data]
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(loss.data, expected)
    loss.sum().backward()
    expected = -np.eye(3)[targets.data] * (0.25 if reduction == "mean" else 1.0)
    np.testing.assert_allclose(x.grad, expected)


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss], ids=["cross_entropy", "nll_loss"])
def test_bad_targets_are_named(loss):
    name = loss.__name__
    x = mt.tensor(randn(3, 4))
    with pytest.raises(mt.ShapeError, match=rf"{name}: target 4 is out of range for 4 classes"):
        loss(x, [0, 4, 1])
    with pytest.raises(mt.ShapeError, match=rf"{name}: target -1 is out of range"):
        loss(x, [0, -1, 1])
    with pytest.raises(mt.ShapeError, match=rf"{name}: .*\(3, 4\).*shape \(3,\); got \(2,\)"):
        loss(x, [0, 1])
    with pytest.raises(mt.ShapeError, match=rf"{name}: targets must be integer"):
        loss(x, [0.0, 1.0, 2.0])
    with pytest.raises(mt.ShapeError, match=name):
        loss(mt.tensor(randn(2, 3, 4)), [0, 1])
    with pytest.raises(ValueError, match=rf"{name}: reduction must be"):
        loss(x, [0, 1, 2], reduction="avg")


# ---- mse_loss, linear, one_hot ---------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    p, t = randn(3, 2), randn(3, 2, seed=1)
    x = mt.tensor(p, requires_grad=True)
    loss = F.mse_loss(x, t, reduction=reduction)
    sq = (p - t) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(loss.data, expected)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * (p - t) / (6 if reduction == "mean" else 1))
    with pytest.raises(mt.ShapeError, match=r"mse_loss: .*\(3, 2\).*\(2, 3\)"):
        F.mse_loss(x, t.T)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xshape", [(4,), (2, 4), (3, 2, 4)])
def test_linear_is_x_at_weight_transposed_plus_bias(bias, xshape):
    xd, wd, bd = randn(*xshape), randn(3, 4, seed=1), randn(3, seed=2)
    x, w = mt.tensor(xd, requires_grad=True), mt.tensor(wd, requires_grad=True)
    b = mt.tensor(bd, requires_grad=True) if bias else None
    y = F.linear(x, w, b)
    np.testing.assert_allclose(y.data, xd @ wd.T + (bd if bias else 0))
    g = randn(*y.shape, seed=3)
    y.backward(g)
    np.testing.assert_allclose(x.grad, g @ wd)
    np.testing.assert_allclose(w.grad, g.reshape(-1, 3).T @ xd.reshape(-1, 4))
    if bias:
        np.testing.assert_allclose(b.grad, g.reshape(-1, 3).sum(axis=0))
    args = [mt.tensor(xd, requires_grad=True), mt.tensor(wd, requires_grad=True)]
    assert mt.gradcheck(F.linear, args + ([mt.tensor(bd, requires_grad=True)] if bias else []))


def test_linear_takes_ndarrays():
    xd, wd, bd = randn(2, 3), randn(4, 3, seed=1), randn(4, seed=2)
    np.testing.assert_allclose(F.linear(xd, wd, bd).data, xd @ wd.T + bd)
    np.testing.assert_allclose(F.linear(xd, wd).data, xd @ wd.T)


def test_linear_shape_mismatch_names_both_shapes():
    with pytest.raises(mt.ShapeError, match=r"linear: .*\(2, 5\).*\(3, 4\)"):
        F.linear(mt.ones(2, 5), mt.ones(3, 4))


def test_one_hot():
    y = F.one_hot([2, 0, 2], 4)
    np.testing.assert_array_equal(y.data, np.eye(4)[[2, 0, 2]])
    assert y.dtype == np.float64 and not y.requires_grad
    z = F.one_hot(mt.tensor([[1], [3]]), 4, dtype=mt.float32)
    assert z.shape == (2, 1, 4) and z.dtype == np.float32
    np.testing.assert_array_equal(z.data[:, 0], np.eye(4)[[1, 3]])
    with pytest.raises(mt.ShapeError, match=r"one_hot: indices must be integers in \[0, 4\)"):
        F.one_hot([0, 4], 4)


# ---- dropout ---------------------------------------------------------------------------------

def test_dropout_zeroes_with_probability_p_and_scales_the_rest():
    mt.manual_seed(0)
    x = mt.tensor(np.full(10_000, 2.0), requires_grad=True)
    y = F.dropout(x, p=0.25)
    kept = y.data != 0
    np.testing.assert_array_equal(y.data[kept], 2.0 / 0.75)
    assert abs(1 - kept.mean() - 0.25) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, kept / 0.75)
    mt.manual_seed(0)
    np.testing.assert_array_equal(F.dropout(x, p=0.25).data, y.data)


def test_dropout_is_the_identity_when_not_training_or_p_is_zero():
    x = mt.tensor(randn(5))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\)"):
        F.dropout(x, 1.0)
