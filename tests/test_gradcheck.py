"""mt.gradcheck: passes correct gradients, catches broken ops (defined here, never registered)."""
import re

import numpy as np
import pytest

import microtensor as mt
from microtensor.autograd import REGISTRY, Op
from microtensor.tensor import apply


class WrongTanh(Op):
    """tanh with a wrong derivative: g·(1 − y) instead of g·(1 − y²)."""
    name = "wrong_tanh"

    @staticmethod
    def forward(a):
        return np.tanh(a), None

    @staticmethod
    def backward(ctx, g):
        return (g * (1 - ctx.data),)


class WrongMulB(Op):
    """a · b with the gradient of b doubled."""
    name = "wrong_mul_b"

    @staticmethod
    def forward(a, b):
        return a * b, (a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return g * b, 2 * g * a


class TransposedGrad(Op):
    """2a, with the gradient handed back transposed."""
    name = "transposed_grad"

    @staticmethod
    def forward(a):
        return 2 * a, None

    @staticmethod
    def backward(ctx, g):
        return (2 * g.T,)


class NoisyGrad(Op):
    """2a, with a gradient that changes from one backward to the next (by 1e-9)."""
    name = "noisy_grad"
    rng = np.random.default_rng(0)

    @classmethod
    def forward(cls, a):
        return 2 * a, None

    @classmethod
    def backward(cls, ctx, g):
        return (2 * g + 1e-9 * cls.rng.standard_normal(g.shape),)


class OffsetGrad(Op):
    """2a, with a constant 1e-9 added to the gradient: invisible to finite differences."""
    name = "offset_grad"

    @staticmethod
    def forward(a):
        return 2 * a, None

    @staticmethod
    def backward(ctx, g):
        return (2 * g + 1e-9,)


def test_the_broken_ops_are_not_registered():
    assert not {"wrong_tanh", "wrong_mul_b", "transposed_grad", "noisy_grad",
                "offset_grad"} & set(REGISTRY)


def test_a_wrong_derivative_is_caught_naming_input_element_and_both_values():
    xd = np.array([0.1, 1.5, -0.7, 0.4])
    x = mt.tensor(xd, requires_grad=True)
    with pytest.raises(mt.GradcheckError) as err:
        mt.gradcheck(lambda t: apply(WrongTanh, t), [x])
    y = np.tanh(xd)
    analytic, numeric = 1 - y, 1 - y ** 2
    k = int(np.argmax(np.abs(analytic - numeric) - 1e-3 * np.abs(numeric)))
    msg = str(err.value)
    assert f"input 0 disagrees at element ({k},)" in msg
    a, n = map(float, re.search(r"analytic (\S+) vs numeric (\S+)", msg).groups())
    assert a == pytest.approx(analytic[k], rel=1e-12)
    assert n == pytest.approx(numeric[k], rel=1e-6)
    np.testing.assert_array_equal(x.data, xd)        # perturbed in place, then restored


def test_the_wrong_input_is_named_by_position_and_name():
    a = mt.tensor([[1.0], [2.0]], requires_grad=True)
    b = mt.tensor([[0.5], [3.0]], requires_grad=True)
    b.name = "W"
    with pytest.raises(mt.GradcheckError, match=r"input 1 \(W\) disagrees at element \(1, 0\)"):
        mt.gradcheck(lambda p, q: apply(WrongMulB, p, q).sum(), [a, b])
    b.requires_grad = False                            # only a is checked, and a is right
    assert mt.gradcheck(lambda p, q: apply(WrongMulB, p, q), [a, b]) is True


def test_a_large_output_is_checked_through_random_projections():
    x = mt.tensor(np.random.default_rng(0).uniform(-1, 1, (5, 5)), requires_grad=True)
    with pytest.raises(mt.GradcheckError, match=r"input 0 disagrees at element \(\d, \d\)"):
        mt.gradcheck(lambda t: apply(WrongTanh, t), [x])
    assert mt.gradcheck(lambda t: t.tanh(), [x])


def test_a_gradient_of_the_wrong_shape_is_caught_by_the_engine_on_its_edge():
    x = mt.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(mt.ShapeError, match=r"transposed_grad \(input 0\).*\(3, 2\).*\(2, 3\)"):
        mt.gradcheck(lambda t: apply(TransposedGrad, t), [x])


def test_a_non_deterministic_gradient_is_caught():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(mt.GradcheckError, match="two backward passes disagree for input 0"):
        mt.gradcheck(lambda t: apply(NoisyGrad, t), [x])


def test_a_zero_upstream_gradient_must_give_zero_gradients():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(mt.GradcheckError, match="zero upstream gradient.*input 0"):
        mt.gradcheck(lambda t: apply(OffsetGrad, t), [x])


def test_float32_inputs_are_rejected():
    x = mt.tensor([1.0, 2.0], dtype=mt.float32, requires_grad=True)
    with pytest.raises(mt.DTypeError, match=r"input 0 is float32.*float64"):
        mt.gradcheck(lambda t: t.tanh(), [x])


def test_nothing_to_check_or_no_tensor_returned():
    with pytest.raises(mt.GradcheckError, match="no input requires grad"):
        mt.gradcheck(lambda t: t * 2, [mt.tensor([1.0])])
    with pytest.raises(mt.GradcheckError, match="must return a Tensor"):
        mt.gradcheck(lambda t: 3.0, [mt.tensor([1.0], requires_grad=True)])


def test_correct_functions_pass():
    rng = np.random.default_rng(0)
    x = mt.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    W = mt.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    b = mt.tensor(rng.standard_normal(2))                       # a constant input

    def f(x, W, b):
        return ((x @ W + b).tanh() * x[:, :2]).sum(axis=0)

    assert mt.gradcheck(f, [x, W, b]) is True
    assert mt.gradcheck(lambda x: mt.functional.cross_entropy(x, [0, 3, 1]), x) is True
    assert mt.gradcheck(lambda x: (x * x).mean(), [x], eps=1e-4) is True
