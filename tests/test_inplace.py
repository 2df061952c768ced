"""In-place Tensor operators with torch's rules (microtensor/inplace.py; issue 13, case 2)."""
import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor import nn


def leaf(*shape, seed=0, requires_grad=True):
    return mt.tensor(np.random.default_rng(seed).standard_normal(shape),
                     requires_grad=requires_grad)


OPS = [
    ("+=", lambda t, o: t.__iadd__(o), lambda a, b: a + b),
    ("-=", lambda t, o: t.__isub__(o), lambda a, b: a - b),
    ("*=", lambda t, o: t.__imul__(o), lambda a, b: a * b),
    ("/=", lambda t, o: t.__itruediv__(o), lambda a, b: a / b),
    ("**=", lambda t, o: t.__ipow__(o), lambda a, b: a ** b),
    ("add_", lambda t, o: t.add_(o, alpha=2), lambda a, b: a + 2 * b),
    ("sub_", lambda t, o: t.sub_(o, alpha=0.5), lambda a, b: a - 0.5 * b),
    ("mul_", lambda t, o: t.mul_(o), lambda a, b: a * b),
    ("div_", lambda t, o: t.div_(o), lambda a, b: a / b),
    ("clamp_", lambda t, o: t.clamp_(0.9, 1.4), lambda a, b: a.clip(0.9, 1.4)),
    ("fill_", lambda t, o: t.fill_(0.25), lambda a, b: a * 0 + 0.25),
    ("zero_", lambda t, o: t.zero_(), lambda a, b: a * 0),
    ("copy_", lambda t, o: t.copy_(o), lambda a, b: a * 0 + b),
]


def positive(*shape, seed=0, requires_grad=True):
    a = np.random.default_rng(seed).uniform(0.5, 2.0, shape)
    return mt.tensor(a, requires_grad=requires_grad)


@pytest.mark.parametrize("name, inplace, outofplace", OPS, ids=[o[0] for o in OPS])
def test_without_a_graph_the_op_writes_into_the_tensors_memory(name, inplace, outofplace):
    t, o = positive(2, 3, requires_grad=False), positive(3, seed=1, requires_grad=False)
    want = outofplace(t.data.copy(), o.data)
    view = t.data                          # the same memory, seen from outside
    out = inplace(t, o)
    assert out is t and t.data is view
    np.testing.assert_allclose(view, want, rtol=1e-15)
    assert t._version == 1


@pytest.mark.parametrize("name, inplace, outofplace", OPS, ids=[o[0] for o in OPS])
def test_under_no_grad_a_leaf_that_requires_grad_is_updated_and_stays_a_leaf(name, inplace,
                                                                             outofplace):
    t, o = positive(2, 3), positive(3, seed=1, requires_grad=False)
    want = outofplace(t.data.copy(), o.data)
    with mt.no_grad():
        inplace(t, o)
    np.testing.assert_allclose(t.data, want, rtol=1e-15)
    assert t.is_leaf and t.requires_grad


@pytest.mark.parametrize("name, inplace, outofplace", OPS, ids=[o[0] for o in OPS])
def test_a_leaf_that_requires_grad_in_grad_mode_gets_torchs_error(name, inplace, outofplace):
    t, o = positive(2, 3), positive(3, seed=1, requires_grad=False)
    before = t.data.copy()
    with pytest.raises(mt.GraphError, match="a leaf Variable that requires grad is being "
                                            "used in an in-place operation"):
        inplace(t, o)
    np.testing.assert_array_equal(t.data, before)


@pytest.mark.parametrize("name, inplace, outofplace", OPS, ids=[o[0] for o in OPS])
def test_on_a_non_leaf_it_is_recorded_with_the_out_of_place_gradient(name, inplace, outofplace):
    """y = x·1.5; y op= w; loss = Σ y·c — against the same program written out of place."""
    def run(in_place):
        x, w = positive(2, 3), positive(3, seed=1)
        c = np.random.default_rng(2).standard_normal((2, 3))
        y = x * 1.5
        if in_place:
            y = inplace(y, w)
        else:
            y = outofplace(y, w)
        (y * c).sum().backward()
        return y.data, x.grad, w.grad
    got, want = run(True), run(False)
    for a, b in zip(got, want):
        if b is None:
            assert a is None or not np.any(a)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)


def test_a_constant_updated_with_something_that_requires_grad_joins_the_graph():
    w = leaf(3)
    buf = mt.zeros(3)
    buf += w * 2                           # torch: buf gets grad_fn=AddBackward
    assert not buf.is_leaf and buf.requires_grad
    (buf * buf).sum().backward()
    np.testing.assert_allclose(w.grad, 8 * w.data)


def test_consumers_made_before_the_write_keep_their_own_gradient_path():
    x, w = leaf(3), leaf(3, seed=1)
    y = x * 2
    z = y + 3                              # took y before the write: add reads nothing
    y *= w                                 # mul_ keeps a copy of y's old values
    (z + y * y).sum().backward()
    y0 = 2 * x.data
    np.testing.assert_allclose(x.grad, 2 + 2 * (y0 * w.data) * w.data * 2)
    np.testing.assert_allclose(w.grad, 2 * (y0 * w.data) * y0)


def test_an_op_that_saved_the_overwritten_array_raises_as_in_torch():
    x = leaf(3)
    y = x.tanh()                           # tanh's backward reads y
    y += 1
    with pytest.raises(mt.VersionError, match=r"op 'tanh'.*its output.*version 1"):
        y.sum().backward()
    x2 = leaf(3)
    y2 = x2 * 2                            # mul saved x2, not y2: fine, as in torch
    y2 += 1
    y2.sum().backward()
    np.testing.assert_array_equal(x2.grad, 2.0)


def test_matches_torch_for_a_program_mixing_in_place_and_out_of_place_ops():
    torch = pytest.importorskip("torch")
    a0 = np.random.default_rng(0).uniform(0.5, 2, (2, 3))
    b0 = np.random.default_rng(1).uniform(0.5, 2, 3)

    def program(a, b, square):
        h = a * 1.0
        u = (h + b) * b                    # takes h before it changes (add saves nothing)
        h += b
        h.mul_(b)
        v = u.sum() + ((h * h) if square else (h + h)).sum()
        h.sub_(b, alpha=2)                 # h * h saved h: both refuse to backward
        h.clamp_(0.0, 3.0)
        return v + (h / b).sum()

    for square in (False, True):
        a, b = mt.tensor(a0, requires_grad=True), mt.tensor(b0, requires_grad=True)
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a0, b0))
        if square:
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                program(ta, tb, square).backward()
            with pytest.raises(mt.VersionError, match="modified by an in-place operation"):
                program(a, b, square).backward()
            continue
        program(a, b, square).backward()
        program(ta, tb, square).backward()
        np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-13)
        np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-13)


def test_copy_and_fill_pass_gradients_as_torch():
    x, s = leaf(2, 3), leaf(3, seed=1)
    y = x * 1.0
    y[0:1]                                 # unrelated read
    y.copy_(s)                             # the gradient goes to s (broadcast), none to x
    (y * 3).sum().backward()
    np.testing.assert_array_equal(s.grad, 6.0)
    assert x.grad is None or not np.any(x.grad)
    x2 = leaf(2)
    y2 = x2 * 1.0
    y2.fill_(4.0)
    assert y2.requires_grad and np.all(y2.data == 4.0)


def test_detach_in_place_cuts_later_uses_and_keeps_earlier_ones():
    x = leaf(3)
    h = x * 2
    before = h * 3                         # made before detach_: its gradient still flows
    h.detach_()
    assert h.is_leaf and not h.requires_grad
    after = h * x                          # h is a constant now
    (before + after).sum().backward()
    np.testing.assert_allclose(x.grad, 6 + 2 * x.data)


def test_the_manual_sgd_loop_trains_exactly_like_optim_sgd():
    """issue 13: `with mt.no_grad(): for p in model.parameters(): p -= lr * p.grad` used to
    rebind p and train nothing; the trajectories must now be equal bit for bit."""
    def train(manual):
        mt.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        opt = None if manual else mt.optim.SGD(model.parameters(), lr=0.05)
        x, y = mt.randn(16, 3), mt.randn(16, 1)
        losses = []
        for _ in range(25):
            model.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            if manual:
                with mt.no_grad():
                    for p in model.parameters():
                        p -= 0.05 * p.grad
            else:
                opt.step()
            losses.append(loss.item())
        return losses, [p.data.copy() for p in model.parameters()]
    (l1, p1), (l2, p2) = train(True), train(False)
    assert l1 == l2 and l1[-1] < l1[0]
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)


def test_a_bare_leaf_update_in_grad_mode_says_what_to_do():
    w = leaf(3)
    (w * w).sum().backward()
    with pytest.raises(mt.GraphError, match=r"mt\.no_grad\(\)"):
        w -= 0.1 * w.grad
    assert w.requires_grad                 # not silently turned into a constant


def test_dtype_and_shape_rules():
    i = mt.tensor([1, 2, 3])
    with pytest.raises(mt.DTypeError, match="int64"):
        i += 0.5
    with pytest.raises(mt.DTypeError):
        i /= 2
    i += 2
    np.testing.assert_array_equal(i.data, [3, 4, 5])
    f = mt.tensor([1.0, 2.0])
    with pytest.raises(mt.ShapeError, match="keeps the shape"):
        f += np.ones((3, 2))
    with pytest.raises(mt.ShapeError, match="broadcast"):
        f += np.ones(3)
    f32 = mt.tensor([1.0, 2.0], dtype=np.float32)
    f32 += np.array([0.5, 0.5])            # float64 into float32, as torch
    assert f32.dtype == np.float32 and f32.data.tolist() == [1.5, 2.5]
    with pytest.raises(mt.ShapeError, match="one element"):
        f.fill_(np.ones(2))


def test_a_python_number_on_the_right_of_an_in_place_op():
    t = mt.tensor([1.0, 2.0], dtype=np.float32)
    t *= 2
    t -= 1
    assert t.dtype == np.float32 and t.data.tolist() == [1.0, 3.0]
