"""Every registered op: gradcheck on hypothesis-drawn float64 inputs, and float32 kept float32."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import microtensor as mt
from microtensor.autograd import REGISTRY
from op_specs import EDGES, SPECS, edge_inputs, inputs, ops_used

NAMES = sorted(REGISTRY)


def test_every_registered_op_has_a_spec():
    assert set(SPECS) == set(REGISTRY)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_gradcheck(name, data):
    spec = SPECS[name]
    arrays, attrs = data.draw(inputs(spec))
    # any non-empty subset of the inputs asks for a gradient (ops skip the others)
    wants = data.draw(st.lists(st.booleans(), min_size=len(arrays), max_size=len(arrays))
                      .filter(any))
    xs = [mt.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    assert name in ops_used(spec.call(*xs, **attrs))      # the spec exercises its own op
    assert mt.gradcheck(lambda *ts: spec.call(*ts, **attrs), xs, eps=spec.eps)


@pytest.mark.parametrize("name, shapes, attrs", EDGES, ids=[e[0] for e in EDGES])
def test_gradcheck_edge_cases(name, shapes, attrs):
    spec = SPECS[name]
    xs = [mt.tensor(a, requires_grad=True) for a in edge_inputs(name, shapes)]
    assert name in ops_used(spec.call(*xs, **attrs))
    assert mt.gradcheck(lambda *ts: spec.call(*ts, **attrs), xs, eps=spec.eps)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=8)       # each example differentiates twice, by finite differences
@given(data=st.data())
def test_gradgradcheck(name, data):
    """Double backward of every op: its create_graph gradient, as a function of the inputs
    and of the upstream gradient, against finite differences."""
    spec = SPECS[name]
    arrays, attrs = data.draw(inputs(spec))
    wants = data.draw(st.lists(st.booleans(), min_size=len(arrays), max_size=len(arrays))
                      .filter(any))
    xs = [mt.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    assert mt.gradgradcheck(lambda *ts: spec.call(*ts, **attrs), xs, eps=spec.eps)


@pytest.mark.parametrize("name, shapes, attrs", EDGES, ids=[e[0] for e in EDGES])
def test_gradgradcheck_edge_cases(name, shapes, attrs):
    spec = SPECS[name]
    xs = [mt.tensor(a, requires_grad=True) for a in edge_inputs(name, shapes)]
    assert mt.gradgradcheck(lambda *ts: spec.call(*ts, **attrs), xs, eps=spec.eps)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_float32_stays_float32_and_agrees_with_float64(name, data):
    spec = SPECS[name]
    arrays, attrs = data.draw(inputs(spec))
    arrays = [a.astype(np.float32) for a in arrays]
    runs = {}
    for dtype in (np.float32, np.float64):
        xs = [mt.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
        out = spec.call(*xs, **attrs)
        v = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
        out.backward(v)
        runs[dtype] = out, xs
    out32, xs32 = runs[np.float32]
    out64, xs64 = runs[np.float64]
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.data, out64.data, rtol=1e-4, atol=1e-5)
    for x32, x64 in zip(xs32, xs64):
        assert x32.grad.dtype == np.float32 and x32.grad.shape == x32.shape
        np.testing.assert_allclose(x32.grad, x64.grad, rtol=1e-4, atol=1e-5)


def test_cast_dtypes_forward_and_backward():
    x64 = mt.tensor([1.5, -2.0], requires_grad=True)
    y = x64.astype(mt.float32)
    assert y.dtype == np.float32 and y.op.name == "cast"
    (y * mt.tensor([2.0, 3.0], dtype=mt.float32)).sum().backward()
    assert x64.grad.dtype == np.float64
    np.testing.assert_array_equal(x64.grad, [2.0, 3.0])

    x32 = mt.tensor([1.5, -2.0], dtype=mt.float32, requires_grad=True)
    z = x32.astype(mt.float64)
    assert z.dtype == np.float64
    (z * z).sum().backward()
    assert x32.grad.dtype == np.float32
    np.testing.assert_array_equal(x32.grad, [3.0, -4.0])
    assert x32.astype(np.float32) is x32     # a cast to the same dtype is no op at all


def test_max_min_share_the_gradient_between_ties():
    x = mt.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    x.grad = None
    x.min().backward()
    np.testing.assert_allclose(x.grad, [[1, 0, 0], [0, 0, 0]])


def test_maximum_minimum_split_ties_evenly():
    a = mt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = mt.tensor([2.0, 2.0, 2.0], requires_grad=True)
    mt.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad, [0, 0.5, 1])
    np.testing.assert_allclose(b.grad, [1, 0.5, 0])
    a.grad = b.grad = None
    mt.minimum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad, [1, 0.5, 0])
    np.testing.assert_allclose(b.grad, [0, 0.5, 1])


def test_subgradients_at_kinks_are_zero_for_relu_and_abs_and_one_inside_clip_bounds():
    x = mt.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 1])
    x.grad = None
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad, [-1, 0, 1])
    x.grad = None
    x.clip(0.0, 2.0).sum().backward()        # bounds inclusive, as torch.clamp
    np.testing.assert_array_equal(x.grad, [0, 1, 1])


def test_getitem_repeated_indices_accumulate():
    x = mt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x[[0, 0, 2, 0]] * mt.tensor([1.0, 2.0, 3.0, 4.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0, 0.0, 3.0])


def test_pow_with_python_scalars_on_either_side():
    x = mt.tensor([0.5, 2.0], requires_grad=True)
    (x ** 3).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * np.array([0.5, 2.0]) ** 2)
    x.grad = None
    (2 ** x).sum().backward()
    np.testing.assert_allclose(x.grad, np.log(2) * 2 ** np.array([0.5, 2.0]))


# ---- errors: each names the op and the shapes ---------------------------------------------------

@pytest.mark.parametrize("sa, sb, message", [
    ((2, 3), (4, 5), r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned.*\(3\).*\(4\)"),
    ((3,), (4,), r"matmul: shapes \(3,\) and \(4,\) are not aligned"),
    ((2, 3, 4), (5, 4, 2), r"matmul: batch dimensions of shapes \(2, 3, 4\) and \(5, 4, 2\)"),
    ((), (2,), r"matmul: .*at least 1 dimension.*\(\) and \(2,\)"),
])
def test_matmul_mismatch_names_matmul_and_both_shapes(sa, sb, message):
    with pytest.raises(mt.ShapeError, match=message):
        mt.ones(sa) @ mt.ones(sb)
    with pytest.raises(ValueError, match=message):     # ShapeError is a ValueError too
        np.ones(sa) @ mt.ones(sb)


@pytest.mark.parametrize("name, call", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b),
    ("maximum", mt.maximum), ("minimum", mt.minimum),
    ("where", lambda a, b: mt.where(np.ones(1, bool), a, b)),
])
def test_broadcast_mismatch_names_the_op_and_both_shapes(name, call):
    a, b = mt.ones(2, 3, requires_grad=True), mt.ones(2)
    with pytest.raises(mt.ShapeError, match=rf"^{name}: cannot broadcast .*\(2, 3\) and \(2,\)"):
        call(a, b)
    with pytest.raises(mt.ShapeError, match=rf"^{name}: cannot broadcast .*\(2,\) and \(2, 3\)"):
        call(b.data, a)


def test_where_mismatch_names_the_condition_shape():
    with pytest.raises(mt.ShapeError, match=r"where: .*\(4,\), \(3,\) and \(3,\)"):
        mt.where(np.ones(4, bool), mt.ones(3), mt.ones(3))


@pytest.mark.parametrize("call, message", [
    (lambda: mt.ones(2, 3).reshape(4), r"reshape: .*size 6.*\(2, 3\), shape=\(4,\)"),
    (lambda: mt.ones(2, 3).broadcast_to(3, 3), r"broadcast_to: .*\(2, 3\), shape=\(3, 3\)"),
    (lambda: mt.ones(2, 3).squeeze(0), r"squeeze: .*\(2, 3\), axis=0"),
    (lambda: mt.ones(2, 3).transpose(0, 0), r"transpose: repeated axis"),
    (lambda: mt.concat([mt.ones(2, 3), mt.ones(3, 2)]), r"concat: .*\(2, 3\), \(3, 2\)"),
    (lambda: mt.stack([mt.ones(2), mt.ones(3)]), r"stack: .*\(2,\), \(3,\)"),
    (lambda: mt.ones(2, 3).max(axis=(1, -1)), r"max: repeated axis"),
])
def test_a_numpy_error_in_forward_is_raised_with_the_op_name(call, message):
    with pytest.raises(mt.ShapeError, match=message):
        call()
