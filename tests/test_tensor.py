"""The public Tensor API: construction, dtypes, attributes, repr, operators, indexing, factories."""
import operator

import numpy as np
import pytest

import microtensor as mt
from microtensor.errors import IndexOutOfRange


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- construction and dtypes ----------------------------------------------------------------

def test_python_floats_default_to_float64_and_other_dtypes_are_kept():
    assert mt.tensor(1.0).dtype == np.float64
    assert mt.tensor([1.0, 2.0]).dtype == np.float64
    assert mt.tensor([1, 2]).dtype.kind == "i"
    assert mt.tensor([True, False]).dtype == np.bool_
    assert mt.tensor(np.ones(2, np.float32)).dtype == np.float32
    assert mt.tensor([1, 2], dtype=mt.float32).dtype == np.float32
    assert mt.Tensor([1.0]).dtype == np.float64


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = mt.tensor(a)
    a[0] = 5.0
    assert t.data[0] == 1.0


@pytest.mark.parametrize("make", [
    lambda: mt.tensor([1, 2], requires_grad=True),
    lambda: mt.zeros(2, dtype=mt.int64, requires_grad=True),
    lambda: mt.arange(3, requires_grad=True),
    lambda: mt.tensor([True]).requires_grad_(),
])
def test_requires_grad_on_a_non_float_tensor_is_an_error(make):
    with pytest.raises(mt.DTypeError, match=r"floating-point.*dtype (int64|bool)"):
        make()


def test_attributes():
    t = mt.tensor(randn(2, 3), requires_grad=True)
    assert (t.shape, t.ndim, t.size, t.dtype) == ((2, 3), 2, 6, np.float64)
    assert t.requires_grad and t.grad is None and t.is_leaf
    assert t.numpy() is t.data
    assert np.asarray(t) is t.data
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float32), t.data.astype(np.float32))
    assert len(t) == 2
    rows = list(t)
    np.testing.assert_array_equal(rows[1].data, t.data[1])
    assert mt.tensor([[2.5]]).item() == 2.5 and isinstance(mt.tensor([[2.5]]).item(), float)
    assert mt.tensor([[1.0, 2.0]]).tolist() == [[1.0, 2.0]]
    assert bool(mt.tensor(1.0)) and not bool(mt.tensor(0.0))


def test_detach_shares_data_and_leaves_the_graph():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.data is y.data
    assert not d.requires_grad and d.op is None
    assert not (d * 3).requires_grad


def test_repr_shows_data_dtype_and_the_op_that_made_it():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], dtype=float64, requires_grad=True)"
    assert repr(x * 2) == "tensor([2., 4.], dtype=float64, grad_fn=<mul>)"
    assert repr(mt.tensor([1, 2])) == "tensor([1, 2], dtype=int64)"
    assert "grad_fn=<tanh>" in repr(x.tanh())


# ---- operators --------------------------------------------------------------------------------

BINARY = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]
# d op(x, c)/dx and d op(c, x)/dx
D_LEFT = {operator.add: lambda x, c: 1 + 0 * x, operator.sub: lambda x, c: 1 + 0 * x,
          operator.mul: lambda x, c: c + 0 * x, operator.truediv: lambda x, c: 1 / c + 0 * x,
          operator.pow: lambda x, c: c * x ** (c - 1)}
D_RIGHT = {operator.add: lambda x, c: 1 + 0 * x, operator.sub: lambda x, c: -1 + 0 * x,
           operator.mul: lambda x, c: c + 0 * x, operator.truediv: lambda x, c: -c / x ** 2,
           operator.pow: lambda x, c: np.log(c) * c ** x}


@pytest.mark.parametrize("op", BINARY, ids=lambda f: f.__name__)
@pytest.mark.parametrize("other", [1.5, 2, np.array([0.5, 1.5, 2.5])],
                         ids=["float", "int", "ndarray"])
def test_operators_take_numbers_and_ndarrays_on_either_side(op, other):
    xd = np.array([0.75, 1.25, 2.0])
    x = mt.tensor(xd, requires_grad=True)
    left = op(x, other)
    assert isinstance(left, mt.Tensor)
    np.testing.assert_allclose(left.data, op(xd, other))
    left.sum().backward()
    np.testing.assert_allclose(x.grad, D_LEFT[op](xd, np.asarray(other, float)))
    x.grad = None
    right = op(other, x)
    assert isinstance(right, mt.Tensor)
    np.testing.assert_allclose(right.data, op(other, xd))
    right.sum().backward()
    np.testing.assert_allclose(x.grad, D_RIGHT[op](xd, np.asarray(other, float)))


@pytest.mark.parametrize("op", BINARY, ids=lambda f: f.__name__)
def test_python_numbers_do_not_upcast_float32(op):
    x = mt.tensor([1.0, 2.0], dtype=mt.float32, requires_grad=True)
    for y in (op(x, 2.5), op(x, 3), op(1.5, x)):
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32


def test_unary_minus_and_plus():
    x = mt.tensor([1.0, -2.0], requires_grad=True)
    assert +x is x
    (-x).sum().backward()
    np.testing.assert_array_equal((-x).data, [-1.0, 2.0])
    np.testing.assert_array_equal(x.grad, [-1.0, -1.0])


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge,
                                operator.eq, operator.ne], ids=lambda f: f.__name__)
def test_comparisons_give_bool_tensors_outside_the_graph(op):
    x = mt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    other = np.array([2.0, 2.0, 2.0])
    cases = ((op(x, 2.0), op(x.data, 2.0)), (op(x, mt.tensor(other)), op(x.data, other)))
    for r, expected in cases:
        assert isinstance(r, mt.Tensor) and r.dtype == np.bool_ and not r.requires_grad
        np.testing.assert_array_equal(r.data, expected)


def test_matmul_follows_numpy_rules():
    for sa, sb in [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((5, 2, 3), (3, 4)),
                   ((5, 1, 2, 3), (4, 3, 2))]:
        a, b = randn(*sa), randn(*sb, seed=1)
        np.testing.assert_allclose((mt.tensor(a) @ mt.tensor(b)).data, a @ b)
        np.testing.assert_allclose((a @ mt.tensor(b)).data, a @ b)
        np.testing.assert_allclose(mt.matmul(a, b).data, a @ b)


# ---- indexing ----------------------------------------------------------------------------------

INDICES = [2, -1, slice(1, 3), (slice(None), 0), (None, 1), (Ellipsis, 1), (0, Ellipsis, None),
           [0, 0, 3], np.array([[1, 1], [0, 3]]), (slice(None), [2, 2]),
           np.array([True, False, True, True]), randn(4, 3) > 0]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_indexing_matches_numpy_and_scatters_the_gradient_back(index):
    xd = randn(4, 3)
    x = mt.tensor(xd, requires_grad=True)
    y = x[index]
    np.testing.assert_array_equal(y.data, xd[index])
    g = randn(*y.shape, seed=1)
    y.backward(g)
    expected = np.zeros_like(xd)
    np.add.at(expected, index if not isinstance(index, list) else np.array(index), g)
    np.testing.assert_allclose(x.grad, expected)


def test_tensors_as_indices():
    x = mt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    np.testing.assert_array_equal(x[mt.tensor([2, 2])].data, [3.0, 3.0])
    np.testing.assert_array_equal(x[x > 1.5].data, [2.0, 3.0])
    x[mt.tensor([2, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 2.0])


def test_an_index_out_of_range_names_getitem():
    with pytest.raises(IndexOutOfRange, match=r"getitem: index 5 .*size 2"):
        mt.tensor([1.0, 2.0])[5]
    with pytest.raises(IndexError, match="getitem"):
        mt.tensor([1.0, 2.0])[[0, 7]]


# ---- methods, functions and shape ops --------------------------------------------------------

UNARY = ["exp", "tanh", "sigmoid", "relu", "abs"]
NUMPY = {"exp": np.exp, "tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
         "relu": lambda a: np.maximum(a, 0), "abs": np.abs, "log": np.log, "sqrt": np.sqrt}


@pytest.mark.parametrize("name", UNARY + ["log", "sqrt"])
def test_methods_and_functions_agree_with_numpy(name):
    xd = randn(3, 2) if name not in ("log", "sqrt") else np.abs(randn(3, 2)) + 0.5
    x = mt.tensor(xd)
    np.testing.assert_allclose(getattr(x, name)().data, NUMPY[name](xd))
    np.testing.assert_allclose(getattr(mt, name)(x).data, NUMPY[name](xd))
    np.testing.assert_allclose(getattr(mt, name)(xd).data, NUMPY[name](xd))


def test_sigmoid_is_finite_for_large_inputs():
    x = mt.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    y = x.sigmoid()
    np.testing.assert_array_equal(y.data, [0.0, 0.5, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.25, 0.0])


def test_reductions_as_methods_and_functions():
    xd = randn(2, 3, 4)
    x = mt.tensor(xd)
    for name in ("sum", "mean", "max", "min"):
        for axis in (None, 1, -1, (0, 2)):
            for keepdims in (False, True):
                expected = getattr(np, name)(xd, axis=axis, keepdims=keepdims)
                np.testing.assert_allclose(getattr(x, name)(axis=axis, keepdims=keepdims).data,
                                           expected)
                np.testing.assert_allclose(getattr(mt, name)(x, axis, keepdims).data, expected)
    with pytest.raises(mt.ShapeError, match=r"sum: axis 3 is out of range.*3 dimension"):
        x.sum(axis=3)


def test_shape_methods():
    xd = randn(2, 3)
    x = mt.tensor(xd)
    assert x.reshape(3, 2).shape == x.reshape((3, 2)).shape == mt.reshape(x, 3, 2).shape == (3, 2)
    np.testing.assert_array_equal(x.T.data, xd.T)
    np.testing.assert_array_equal(x.transpose(1, 0).data, xd.T)
    np.testing.assert_array_equal(mt.transpose(x).data, xd.T)
    assert x.flatten().shape == mt.flatten(x).shape == (6,)
    assert x.expand_dims(0).shape == (1, 2, 3) and mt.expand_dims(x, -1).shape == (2, 3, 1)
    assert mt.tensor(randn(1, 3, 1)).squeeze().shape == (3,)
    assert mt.squeeze(mt.tensor(randn(1, 3, 1)), 0).shape == (3, 1)
    assert x.broadcast_to(4, 2, 3).shape == mt.broadcast_to(x, (4, 2, 3)).shape == (4, 2, 3)
    with pytest.raises(mt.ShapeError, match=r"reshape.*\(2, 3\)"):
        x.reshape(4)


@pytest.mark.parametrize("shapes, dtypes, axis", [
    ([(2, 3)] * 5, ["float64"] * 5, 0),                 # the fast path: one concatenate
    ([(4,)] * 3, ["float32"] * 3, 0),
    ([(2, 3)] * 3, ["float64"] * 3, -1),                # np.stack
    ([()] * 4, ["float64"] * 4, 0),                     # 0-d: np.stack
    ([(2, 3)] * 3, ["float32", "float64", "float32"], 0),    # mixed dtypes: np.stack's
])
def test_stack_is_np_stack_bit_for_bit(shapes, dtypes, axis):
    arrays = [randn(*s, seed=i).astype(d) for i, (s, d) in enumerate(zip(shapes, dtypes))]
    got = mt.stack([mt.tensor(a) for a in arrays], axis=axis).data
    want = np.stack(arrays, axis=axis)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.tobytes() == want.tobytes() and got.flags.c_contiguous


def test_stack_of_shapes_whose_sizes_add_up_is_still_refused():
    """(2, 3), (1, 3), (3, 3): 18 elements, as three (2, 3) would be; one concatenate and a
    reshape would accept them."""
    with pytest.raises(mt.ShapeError, match=r"stack: all tensors need the same shape"):
        mt.stack([mt.tensor(np.ones(s)) for s in [(2, 3), (1, 3), (3, 3)]])


def test_stack_concat_split_where_maximum_minimum():
    a, b = mt.tensor(randn(2, 3), requires_grad=True), mt.tensor(randn(2, 3, seed=1))
    np.testing.assert_array_equal(mt.stack([a, b], axis=1).data, np.stack([a.data, b.data], 1))
    np.testing.assert_array_equal(mt.concat([a, b], axis=-1).data,
                                  np.concatenate([a.data, b.data], -1))
    np.testing.assert_array_equal(mt.where(a > 0, a, 0.0).data, np.where(a.data > 0, a.data, 0))
    np.testing.assert_array_equal(mt.maximum(a, 0.0).data, np.maximum(a.data, 0))
    np.testing.assert_array_equal(mt.minimum(a, b).data, np.minimum(a.data, b.data))
    parts = mt.split(a, 3, axis=1)
    assert [p.shape for p in parts] == [(2, 1)] * 3
    first, rest = mt.split(a, [1], axis=-1)
    assert first.shape == (2, 1) and rest.shape == (2, 2)
    (parts[0] * 1 + parts[2] * 3).sum().backward()
    np.testing.assert_array_equal(a.grad, [[1, 0, 3], [1, 0, 3]])
    with pytest.raises(mt.ShapeError, match="split"):
        mt.split(a, 2, axis=1)
    with pytest.raises(mt.ShapeError, match=r"stack: .*\(2, 3\), \(3,\)"):
        mt.stack([a, mt.ones(3)])
    with pytest.raises(mt.MicrotensorError, match="concat: expected a non-empty sequence"):
        mt.concat([])


# ---- factories --------------------------------------------------------------------------------

def test_factories_take_a_shape_as_a_tuple_or_ints_and_dtype_and_requires_grad():
    np.testing.assert_array_equal(mt.zeros(2, 3).data, np.zeros((2, 3)))
    np.testing.assert_array_equal(mt.zeros((2, 3)).data, np.zeros((2, 3)))
    np.testing.assert_array_equal(mt.ones(4).data, np.ones(4))
    np.testing.assert_array_equal(mt.full((2, 2), 7.5).data, np.full((2, 2), 7.5))
    assert mt.zeros(2, dtype=mt.float32).dtype == np.float32
    assert mt.ones((1, 2), dtype=mt.float32, requires_grad=True).requires_grad
    for f in (mt.zeros, mt.ones, mt.randn, mt.rand):
        t = f(2, 3, dtype=mt.float32, requires_grad=True)
        assert t.shape == (2, 3) and t.dtype == np.float32 and t.requires_grad
        assert f((2, 3)).dtype == np.float64 and not f((2, 3)).requires_grad
    like = mt.tensor(randn(2, 2), dtype=mt.float32)
    z, o = mt.zeros_like(like, requires_grad=True), mt.ones_like(like)
    assert z.dtype == o.dtype == np.float32 and z.requires_grad
    np.testing.assert_array_equal(o.data, np.ones((2, 2)))
    assert mt.zeros_like(like, dtype=mt.float64).dtype == np.float64
    np.testing.assert_array_equal(mt.arange(4).data, [0, 1, 2, 3])
    np.testing.assert_array_equal(mt.arange(1, 2, 0.5, dtype=mt.float64).data, [1.0, 1.5])


def test_manual_seed_makes_random_factories_reproducible():
    mt.manual_seed(123)
    a, u = mt.randn(3, 4), mt.rand(100)
    mt.manual_seed(123)
    b, v = mt.randn(3, 4), mt.rand(100)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(u.data, v.data)
    assert 0 <= u.data.min() and u.data.max() < 1
    mt.manual_seed(124)
    assert not np.array_equal(mt.randn(3, 4).data, a.data)
