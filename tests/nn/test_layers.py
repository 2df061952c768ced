"""Layers against NumPy formulas always, and against torch.nn where torch is importable."""
import numpy as np
import pytest

import microtensor as mt
from microtensor.errors import DTypeError, IndexOutOfRange
from microtensor.nn import Dropout, Embedding, Linear, ReLU, Sequential, Sigmoid, Tanh


# ---- Linear ---------------------------------------------------------------------------------
def test_linear_shapes_init_bounds_and_names():
    mt.manual_seed(0)
    m = Linear(16, 200)
    assert m.weight.shape == (200, 16) and m.bias.shape == (200,)
    assert (m.weight.name, m.bias.name) == ("weight", "bias")
    bound = 1 / np.sqrt(16)
    for p in (m.weight, m.bias):
        assert np.all(np.abs(p.data) <= bound)
    # U(−b, b): the extremes come close to ±b and the variance is b²/3
    assert m.weight.data.max() > 0.98 * bound and m.weight.data.min() < -0.98 * bound
    assert abs(m.weight.data.var() - bound ** 2 / 3) < 0.1 * bound ** 2 / 3
    assert Linear(3, 2, bias=False).bias is None
    assert [n for n, _ in Linear(3, 2, bias=False).named_parameters()] == ["weight"]


def test_linear_init_is_seeded():
    mt.manual_seed(5)
    a = Linear(3, 4)
    mt.manual_seed(5)
    b = Linear(3, 4)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, Linear(3, 4).weight.data)


def test_linear_forward_and_gradients_match_numpy():
    rng = np.random.default_rng(1)
    m = Linear(3, 4)
    x = rng.standard_normal((5, 3))
    g = rng.standard_normal((5, 4))
    xt = mt.tensor(x, requires_grad=True)
    y = m(xt)
    np.testing.assert_allclose(y.data, x @ m.weight.data.T + m.bias.data, rtol=1e-14)
    (y * mt.tensor(g)).sum().backward()
    np.testing.assert_allclose(m.weight.grad, g.T @ x, rtol=1e-13)
    np.testing.assert_allclose(m.bias.grad, g.sum(0), rtol=1e-13)
    np.testing.assert_allclose(xt.grad, g @ m.weight.data, rtol=1e-13)


def test_linear_on_a_sequence_and_float32():
    m = Linear(3, 2, dtype=np.float32)
    assert m.weight.dtype == np.float32
    y = m(np.ones((7, 4, 3), dtype=np.float32))
    assert y.shape == (7, 4, 2) and y.dtype == np.float32
    mismatch = Linear(3, 2)
    with pytest.raises(mt.ShapeError):
        mismatch(np.ones((2, 4)))


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    m = Linear(3, 4)
    tm = torch.nn.Linear(3, 4).double()
    with torch.no_grad():
        tm.weight.copy_(torch.from_numpy(m.weight.data))
        tm.bias.copy_(torch.from_numpy(m.bias.data))
    x = rng.standard_normal((6, 3))
    y, ty = m(x), tm(torch.from_numpy(x))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-14, atol=1e-15)
    (y.tanh().sum()).backward()
    ty.tanh().sum().backward()
    np.testing.assert_allclose(m.weight.grad, tm.weight.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(m.bias.grad, tm.bias.grad.numpy(), rtol=1e-13)


# ---- Embedding ------------------------------------------------------------------------------
def test_embedding_lookup_and_repeated_index_gradients():
    mt.manual_seed(0)
    e = Embedding(5, 3)
    assert e.weight.shape == (5, 3) and repr(e) == "Embedding(5, 3)"
    idx = np.array([[0, 2], [2, 2]])
    y = e(idx)
    assert y.shape == (2, 2, 3)
    np.testing.assert_array_equal(y.data, e.weight.data[idx])
    g = np.arange(12.0).reshape(2, 2, 3)
    (y * mt.tensor(g)).sum().backward()
    expected = np.zeros((5, 3))
    np.add.at(expected, idx, g)
    np.testing.assert_array_equal(e.weight.grad, expected)
    np.testing.assert_array_equal(e.weight.grad[2], g[0, 1] + g[1, 0] + g[1, 1])
    np.testing.assert_array_equal(e(mt.tensor([4])).data, e.weight.data[[4]])


def test_embedding_init_is_standard_normal():
    mt.manual_seed(1)
    w = Embedding(2000, 10).weight.data
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02


def test_embedding_bad_indices():
    e = Embedding(4, 2)
    with pytest.raises(IndexOutOfRange, match=r"Embedding: index 4 is out of range for 4 "
                                              r"embeddings \(valid: 0 to 3\)"):
        e(np.array([1, 4]))
    with pytest.raises(IndexOutOfRange, match="index -1"):
        e(np.array([-1]))
    with pytest.raises(DTypeError, match="indices must be integers, got dtype float64"):
        e(np.array([1.0]))


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    e = Embedding(6, 3)
    te = torch.nn.Embedding(6, 3).double()
    with torch.no_grad():
        te.weight.copy_(torch.from_numpy(e.weight.data))
    idx = np.array([[1, 5, 1], [0, 1, 3]])
    g = np.random.default_rng(3).standard_normal((2, 3, 3))
    (e(idx) * mt.tensor(g)).sum().backward()
    (te(torch.from_numpy(idx)) * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(e.weight.grad, te.weight.grad.numpy(), rtol=1e-15)


# ---- Dropout --------------------------------------------------------------------------------
def test_dropout_is_identity_in_eval():
    d = Dropout(0.5).eval()
    x = mt.randn(4, 5)
    assert d(x) is x


def test_dropout_train_zeroes_and_rescales():
    mt.manual_seed(0)
    d = Dropout(0.25)
    x = mt.ones(200, 100, requires_grad=True)
    y = d(x)
    kept = y.data != 0
    np.testing.assert_array_equal(y.data[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.01
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, kept / 0.75)


def test_dropout_is_seeded_and_checks_p():
    mt.manual_seed(3)
    a = Dropout(0.5)(mt.ones(10, 10)).data
    mt.manual_seed(3)
    np.testing.assert_array_equal(Dropout(0.5)(mt.ones(10, 10)).data, a)
    np.testing.assert_array_equal(Dropout(0.0)(mt.ones(3)).data, np.ones(3))
    assert repr(Dropout(0.1)) == "Dropout(p=0.1)"
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        Dropout(1.0)


def test_dropout_follows_parent_train_eval():
    mt.manual_seed(0)
    s = Sequential(Dropout(0.9))
    x = mt.ones(100)
    assert np.any(s(x).data == 0)
    s.eval()
    np.testing.assert_array_equal(s(x).data, np.ones(100))


# ---- activations ----------------------------------------------------------------------------
@pytest.mark.parametrize("layer, fn, dfn", [
    (Tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    (ReLU, lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    (Sigmoid, lambda x: 1 / (1 + np.exp(-x)),
     lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
])
def test_activation_modules(layer, fn, dfn):
    x = np.array([-2.0, -0.5, 0.3, 1.7])
    xt = mt.tensor(x, requires_grad=True)
    y = layer()(xt)
    np.testing.assert_allclose(y.data, fn(x), rtol=1e-14)
    y.sum().backward()
    np.testing.assert_allclose(xt.grad, dfn(x), rtol=1e-13)
    assert repr(layer()) == f"{layer.__name__}()"
    assert list(layer().parameters()) == []


def test_mlp_matches_torch():
    torch = pytest.importorskip("torch")
    tn = torch.nn
    ours = Sequential(Linear(4, 8), Tanh(), Linear(8, 8), ReLU(), Linear(8, 3), Sigmoid())
    theirs = tn.Sequential(tn.Linear(4, 8), tn.Tanh(), tn.Linear(8, 8), tn.ReLU(),
                           tn.Linear(8, 3), tn.Sigmoid()).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((10, 4))
    y, ty = ours(x), theirs(torch.from_numpy(x))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-13)
    y.sum().backward()
    ty.sum().backward()
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=n)


def test_linear_rejects_an_input_of_another_float_dtype():
    layer = Linear(3, 2, dtype=np.float32)
    with pytest.raises(mt.DTypeError, match=r"Linear: the input is float64 but the parameters "
                                            r"are float32; cast the input \(x.astype\(np.float32\)"
                                            r".*model.to\(np.float64\)"):
        layer(mt.ones(4, 3))
    assert layer(np.ones((4, 3), np.float32)).dtype == np.float32
    assert layer(mt.ones(4, 3).astype(np.float32)).dtype == np.float32
