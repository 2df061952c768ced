"""nn.init: the distributions' statistics, orthogonality, in-place-ness and seeding."""
import math

import numpy as np
import pytest

import microtensor as mt
from microtensor.errors import ShapeError
from microtensor.nn import Parameter, init


def param(*shape, dtype=np.float64):
    return Parameter(np.full(shape, np.nan, dtype=dtype))


def test_uniform_and_normal_statistics():
    mt.manual_seed(0)
    u = init.uniform_(param(300, 300), -2.0, 4.0).data
    assert u.min() >= -2.0 and u.max() < 4.0
    assert abs(u.mean() - 1.0) < 0.02 and abs(u.var() - 36 / 12) < 0.03
    n = init.normal_(param(300, 300), mean=1.5, std=0.5).data
    assert abs(n.mean() - 1.5) < 0.005 and abs(n.std() - 0.5) < 0.005


def test_constant_fills():
    np.testing.assert_array_equal(init.zeros_(param(2, 3)).data, np.zeros((2, 3)))
    np.testing.assert_array_equal(init.ones_(param(2)).data, np.ones(2))
    np.testing.assert_array_equal(init.constant_(param(2), 0.25).data, [0.25, 0.25])


def test_in_place_same_object_dtype_and_no_graph():
    p = param(4, 5, dtype=np.float32)
    data = p.data
    for fn in (init.uniform_, init.normal_, init.zeros_, init.xavier_uniform_,
               init.orthogonal_, init.kaiming_uniform_):
        assert fn(p) is p
        assert p.data is data and p.dtype == np.float32
        assert p.is_leaf and p.grad is None and p.requires_grad


def test_works_on_plain_arrays():
    a = np.zeros((3, 3))
    assert init.orthogonal_(a) is a
    np.testing.assert_allclose(a @ a.T, np.eye(3), atol=1e-14)


def test_seeded():
    mt.manual_seed(7)
    a = [init.uniform_(param(3)).data.copy(), init.orthogonal_(param(3, 3)).data.copy()]
    mt.manual_seed(7)
    b = [init.uniform_(param(3)).data, init.orthogonal_(param(3, 3)).data]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_xavier_uniform_bound_and_variance():
    mt.manual_seed(1)
    w = init.xavier_uniform_(param(400, 200), gain=2.0).data
    bound = 2.0 * math.sqrt(6 / 600)
    assert np.all(np.abs(w) <= bound) and w.max() > 0.99 * bound
    assert abs(w.var() - bound ** 2 / 3) < 0.02 * bound ** 2 / 3
    # fans of a (out, in, k) weight include the receptive field
    w3 = init.xavier_uniform_(param(10, 4, 5)).data
    assert np.all(np.abs(w3) <= math.sqrt(6 / (20 + 50)))


def test_xavier_normal_std():
    mt.manual_seed(2)
    w = init.xavier_normal_(param(300, 500)).data
    assert abs(w.std() - math.sqrt(2 / 800)) < 0.01 * math.sqrt(2 / 800)


def test_kaiming_uniform_default_of_linear():
    mt.manual_seed(3)
    w = init.kaiming_uniform_(param(500, 50), a=math.sqrt(5)).data
    assert np.all(np.abs(w) <= 1 / math.sqrt(50)) and w.max() > 0.99 / math.sqrt(50)
    w = init.kaiming_uniform_(param(50, 500), mode="fan_out", nonlinearity="relu").data
    bound = math.sqrt(2) * math.sqrt(3 / 50)
    assert np.all(np.abs(w) <= bound) and w.max() > 0.99 * bound


def test_calculate_gain():
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(1 / 3)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")


@pytest.mark.parametrize("shape", [(5, 5), (8, 3), (3, 8), (4, 2, 3)])
def test_orthogonal(shape):
    mt.manual_seed(4)
    w = init.orthogonal_(param(*shape), gain=1.5).data
    flat = w.reshape(shape[0], -1) / 1.5
    rows, cols = flat.shape
    if rows <= cols:
        np.testing.assert_allclose(flat @ flat.T, np.eye(rows), atol=1e-13)
    if rows >= cols:
        np.testing.assert_allclose(flat.T @ flat, np.eye(cols), atol=1e-13)


def test_orthogonal_is_sign_fixed_qr_of_a_normal_draw():
    mt.manual_seed(5)
    w = init.orthogonal_(param(4, 4)).data
    a = np.random.default_rng(5).standard_normal((4, 4))
    q, r = np.linalg.qr(a)
    np.testing.assert_allclose(w, q * np.sign(np.diag(r)), rtol=1e-14)
    mt.manual_seed(6)                    # uniform over orthogonal matrices: no sign bias
    draws = [init.orthogonal_(param(3, 3)).data[0, 0] for _ in range(200)]
    assert 0.35 < np.mean(np.array(draws) > 0) < 0.65


def test_fans_need_two_dimensions():
    with pytest.raises(ShapeError, match=r"xavier_uniform_: .* at least 2 dimensions, got "
                                         r"shape \(3,\)"):
        init.xavier_uniform_(param(3))
    with pytest.raises(ShapeError, match="orthogonal_"):
        init.orthogonal_(param(3))
