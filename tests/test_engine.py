"""The backward engine: graph walking, accumulation, release, grad mode, hooks, mt.grad, errors."""
import gc
import sys
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import microtensor as mt
from microtensor.autograd import RELEASED, Gradient, Op
from microtensor.ops.linalg import Outer
from microtensor.ops.shape import Scatter
from microtensor.tensor import apply


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- walking the graph -----------------------------------------------------------------------

def test_backward_through_a_100000_op_chain_at_the_default_recursion_limit():
    limit = sys.getrecursionlimit()
    x = mt.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.000001
    y.backward()
    assert sys.getrecursionlimit() == limit
    assert x.grad == pytest.approx(1.000001 ** 100_000, rel=1e-9)
    del y            # freeing the chain must not recurse either
    gc.collect()


def test_a_tensor_is_walked_only_once_its_every_consumer_has_been():
    a = mt.tensor([1.0, 2.0], requires_grad=True)
    x = a * 2
    (x + x.tanh()).sum().backward()           # add's first input is older than its second
    np.testing.assert_allclose(a.grad, 2 * (2 - np.tanh(2 * a.data) ** 2), rtol=1e-14)
    b = mt.tensor([0.5, -1.0], requires_grad=True)
    y = b.exp()
    z = y.tanh()
    (z * y + y * z.exp() + y).sum().backward()
    e, t = np.exp(b.data), np.tanh(np.exp(b.data))
    dz = e + e * np.exp(t)
    np.testing.assert_allclose(b.grad, ((1 - t ** 2) * dz + t + np.exp(t) + 1) * e, rtol=1e-13)


class _ScatterSecond(Op):
    """a + b[0] as a test op whose second input's gradient comes back as a Scatter."""
    name = "scatter_second"

    @staticmethod
    def forward(a, b):
        return a + b[0], None

    @staticmethod
    def backward(ctx, g):
        return g, Scatter(0, g, ctx.parents[1].data.shape, False)


def test_a_scattered_gradient_for_the_newer_input_of_a_two_input_op():
    a = mt.tensor([1.0, 2.0], requires_grad=True)
    older = a * 3
    newer = (older * 2).reshape(1, 2)                   # made from older
    loss = apply(_ScatterSecond, older, newer) * apply(_ScatterSecond, older, newer)
    loss.sum().backward()
    s = 9 * a.data                                      # each of the two factors
    np.testing.assert_allclose(a.grad, 2 * s * 9, rtol=1e-14)
    b = mt.tensor([1.0, 2.0], requires_grad=True)
    older = b * 3
    apply(_ScatterSecond, older, (older * 2).reshape(1, 2)).sum().backward()
    np.testing.assert_allclose(b.grad, [9.0, 9.0], rtol=1e-14)


class _ScatterFirst(Op):
    """a[0] + b as a test op whose first input's gradient comes back as a Scatter."""
    name = "scatter_first"

    @staticmethod
    def forward(a, b):
        return a[0] + b, None

    @staticmethod
    def backward(ctx, g):
        return Scatter(0, g.sum(), ctx.parents[0].data.shape, False), g


def test_a_scattered_then_a_dense_gradient_for_one_tensor_from_one_op():
    a = mt.tensor([1.0, 2.0], requires_grad=True)
    x = a * 3
    apply(_ScatterFirst, x, x).sum().backward()       # both of x's gradients in one step
    np.testing.assert_allclose(a.grad, [3 * (1 + 2), 3 * 1], rtol=1e-14)


def test_parents_are_kept_in_argument_order():
    a, b = mt.tensor(2.0, requires_grad=True), mt.tensor(3.0, requires_grad=True)
    y = a - b
    assert y.parents[0] is a and y.parents[1] is b
    y.backward()
    assert (a.grad, b.grad) == (1.0, -1.0)


# ---- memory ------------------------------------------------------------------------------------

def test_backward_releases_saved_arrays_and_keeps_the_structure():
    a = mt.tensor(randn(3), requires_grad=True)
    b = mt.tensor(randn(3, seed=1), requires_grad=True)
    y = mt.where(np.array([True, False, True]), a, b)
    saved = weakref.ref(y.saved)         # where() saves its own copy of cond, nothing else
    h = (y * a).tanh()
    loss = h.sum()
    assert saved() is not None
    loss.backward()
    gc.collect()
    assert saved() is None
    for t in (y, h.parents[0], h, loss):
        assert t.saved is RELEASED
    assert y.op.name == "where" and y.parents[0] is a and y.parents[1] is b
    assert h.op.name == "tanh" and h.parents[0].parents[0] is y
    assert loss.parents[0] is h


def test_the_graph_is_reclaimed_after_backward_and_del():
    x = mt.tensor(randn(4), requires_grad=True)
    mid = (x * 2).exp()
    loss = (mid * x).sum()
    ref = weakref.ref(mid)
    loss.backward()
    del mid, loss
    gc.collect()
    assert ref() is None
    np.testing.assert_allclose(x.grad, np.exp(2 * x.data) * (2 * x.data + 1))


def test_retain_graph_keeps_saved_arrays_and_allows_a_second_backward():
    x = mt.tensor([1.0, -2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    assert y.parents[0].saved is not RELEASED
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * (2 * x.data))


# ---- accumulation --------------------------------------------------------------------------

def test_a_tensor_used_twice_gets_both_contributions():
    x = mt.tensor([1.5, -2.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_a_tensor_used_three_times():
    x = mt.tensor(randn(3), requires_grad=True)
    (x * 2 + x.exp() + x.tanh()).sum().backward()
    np.testing.assert_allclose(x.grad, 2 + np.exp(x.data) + 1 - np.tanh(x.data) ** 2)


def test_an_intermediate_used_twice_and_the_same_gradient_array_given_to_two_parents():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    a = x * 3.0
    (a + a).sum().backward()             # add hands the same g to both inputs
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    p, q = mt.tensor([1.0], requires_grad=True), mt.tensor([2.0], requires_grad=True)
    (p + q).sum().backward()
    assert p.grad is not q.grad
    p.grad += 10
    np.testing.assert_array_equal(q.grad, [1.0])


def test_gradients_accumulate_across_backward_calls_until_cleared():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_leaves_accumulate_in_their_own_dtype():
    x32 = mt.tensor([1.0, 2.0], dtype=mt.float32, requires_grad=True)
    w64 = mt.tensor([0.5, 0.25], requires_grad=True)
    y = (x32 * w64).sum()
    assert y.dtype == np.float64
    y.backward()
    assert x32.grad.dtype == np.float32 and w64.grad.dtype == np.float64
    np.testing.assert_array_equal(x32.grad, [0.5, 0.25])
    (x32 * w64).sum().backward()
    assert x32.grad.dtype == np.float32
    np.testing.assert_array_equal(x32.grad, [1.0, 0.5])


def test_broadcast_gradients_are_summed_back_to_each_shape():
    T, B, H = 3, 2, 4
    h = mt.tensor(randn(T, B, H), requires_grad=True)
    bias = mt.tensor(randn(H, seed=1), requires_grad=True)
    row = mt.tensor(randn(B, 1, seed=2), requires_grad=True)
    scale = mt.tensor(1.5, requires_grad=True)
    g = randn(T, B, H, seed=3)
    ((h + bias) * row * scale).backward(g)
    assert bias.grad.shape == (H,) and row.grad.shape == (B, 1) and scale.grad.shape == ()
    np.testing.assert_allclose(bias.grad, (g * row.data * 1.5).sum(axis=(0, 1)))
    np.testing.assert_allclose(row.grad, (g * (h.data + bias.data) * 1.5).sum(axis=(0, 2))[:, None])
    np.testing.assert_allclose(scale.grad, (g * (h.data + bias.data) * row.data).sum())
    np.testing.assert_allclose(h.grad, g * row.data * 1.5)


def test_a_bias_shared_by_every_step_accumulates_its_broadcast_gradients():
    bias = mt.tensor(np.zeros(3), requires_grad=True)
    xs = [mt.tensor(randn(2, 3, seed=t)) for t in range(4)]
    loss = sum(((x + bias) * (t + 1)).sum() for t, x in enumerate(xs))
    loss.backward()
    np.testing.assert_array_equal(bias.grad, np.full(3, 2 * (1 + 2 + 3 + 4)))



def _linear_steps(W, hs, gs):
    """Σ_t sum(linear(h_t, W) · g_t): its gradient w.r.t. W is Σ_t g_tᵀ h_t."""
    F = mt.functional
    return sum((F.linear(mt.tensor(h), W) * mt.tensor(g)).sum() for h, g in zip(hs, gs))


@pytest.mark.parametrize("steps, rows", [(5, 3), (3, 2000)])   # 6,000 rows fold at 4,096
def test_a_weight_shared_by_many_linear_steps_gets_the_summed_outer_products(steps, rows):
    W = mt.tensor(randn(4, 3), requires_grad=True)
    hs = [randn(rows, 3, seed=t) for t in range(steps)]
    gs = [randn(rows, 4, seed=100 + t) for t in range(steps)]
    _linear_steps(W, hs, gs).backward()
    np.testing.assert_allclose(W.grad, sum(g.T @ h for h, g in zip(hs, gs)), rtol=1e-12)


def test_factored_gradients_fold_into_a_dense_sum_so_their_memory_stays_bounded():
    a, b = randn(3000, 4), randn(3000, 3, seed=1)
    o = Outer(a[:1000], b[:1000])
    o.merge(Outer(a[1000:2000], b[1000:2000]))
    assert o.rows == 2000 and len(o.a) == 2 and o.acc is None      # still factors
    o.merge(Outer(a[2000:], b[2000:]))
    o.merge(Outer(a[:1500], b[:1500]))                              # 4,500 rows: folded
    assert o.rows == 0 and o.a == [] and o.acc.shape == (4, 3)
    np.testing.assert_allclose(o.dense(), a.T @ b + a[:1500].T @ b[:1500], rtol=1e-12)


def test_a_non_leaf_weight_used_by_linear_at_every_step_and_elsewhere():
    W = mt.tensor(randn(4, 3), requires_grad=True)
    Wn = W * 2.0                                     # not a leaf: its factored gradient is
    hs = [randn(2, 3, seed=t) for t in range(4)]     # densified when the walk reaches it
    gs = [randn(2, 4, seed=10 + t) for t in range(4)]
    loss = _linear_steps(Wn, hs, gs) + (Wn * Wn).sum() + _linear_steps(Wn.T.T, hs[:1], gs[:1])
    loss.backward()
    want = sum(g.T @ h for h, g in zip(hs, gs)) + 2 * Wn.data + gs[0].T @ hs[0]
    np.testing.assert_allclose(W.grad, 2.0 * want, rtol=1e-12)


def test_scattered_factored_and_dense_gradients_of_one_tensor_add_up():
    E = mt.tensor(randn(5, 3), requires_grad=True)
    x = mt.tensor(randn(2, 3, seed=1))
    g = randn(2, 5, seed=2)
    loss = (mt.functional.linear(x, E) * mt.tensor(g)).sum() + E[1].sum() * 3 + E[1].sum() \
        + (E * E).sum()
    loss.backward()
    want = g.T @ x.data + 2 * E.data
    want[1] += 4
    np.testing.assert_allclose(E.grad, want, rtol=1e-12)


def _random_program(ops, rows):
    """A loss built by `ops` (a list of (op, i, j) choices) from three (3, 4) leaves and a
    (4, 4) weight: tensors are reused, indexed (scattered gradients), put through linear
    (factored gradients) and broadcast, so the walk meets every kind of pending gradient."""
    F = mt.functional

    def loss(a, b, c, W):
        pool = [a, b, c]
        for op, i, j in ops:
            x, y = pool[i % len(pool)], pool[-1 - j % 3]    # y: one of the newest
            if op == "add":
                z = x + y
            elif op == "mul":
                z = x * y
            elif op == "tanh":
                z = x.tanh()
            elif op == "row":                       # an indexed row, broadcast back
                z = x * x[rows[j % len(rows)]]
            elif op == "linear":
                z = F.linear(x, W, y)
            else:                                   # "twice": the same tensor twice
                z = x * x + x
            pool.append(z)
        return sum((t * (k + 1.0)).sum() for k, t in enumerate(pool[-3:]))
    return loss


@settings(max_examples=60)
@given(st.lists(st.tuples(st.sampled_from(["add", "mul", "tanh", "row", "linear", "twice"]),
                          st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=12))
def test_random_graphs_give_the_finite_difference_gradient(ops):
    rng = np.random.default_rng(len(ops))
    arrays = [rng.standard_normal((3, 4)) * 0.5 for _ in range(3)] + [rng.standard_normal((4, 4)) * 0.3]
    loss = _random_program(ops, rows=[0, 2, 1])
    leaves = [mt.tensor(a, requires_grad=True) for a in arrays]
    loss(*leaves).backward()
    eps = 1e-6
    for k, arr in enumerate(arrays):
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            with mt.no_grad():
                numeric[idx] = (loss(*map(mt.tensor, plus)).item()
                                - loss(*map(mt.tensor, minus)).item()) / (2 * eps)
        got = leaves[k].grad if leaves[k].grad is not None else np.zeros_like(arr)
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-6)

# ---- released graphs ----------------------------------------------------------------------

def test_second_backward_through_a_released_graph_names_retain_graph():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(mt.GraphError, match=r"retain_graph=True"):
        loss.backward()


def test_a_carried_state_from_a_freed_step_suggests_detach_and_leaves_grads_untouched():
    W = mt.tensor(randn(2, 2), requires_grad=True)
    h = mt.tensor(np.zeros(2))
    h = (h @ W + 1.0).tanh()                       # step 1
    h.sum().backward()
    first = W.grad.copy()
    h2 = (h @ W).tanh()                           # step 2 reaches step 1's freed graph
    with pytest.raises(mt.GraphError, match=r"detach\(\)") as err:
        h2.sum().backward()
    assert "freed" in str(err.value)
    np.testing.assert_array_equal(W.grad, first)   # the failed backward changed nothing
    h3 = (h.detach() @ W).tanh()
    h3.sum().backward()
    np.testing.assert_allclose(W.grad - first, np.outer(h.data, 1 - h3.data ** 2))


def test_an_error_mid_backward_leaves_every_grad_untouched():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    w = mt.tensor([3.0, 4.0], requires_grad=True)
    (x * w).sum().backward()
    before = x.grad.copy(), w.grad.copy()
    mid = x * w
    mid.retain_grad()

    def boom(g):
        raise RuntimeError("hook failed")
    y = mid * 2
    y.register_hook(boom)
    with pytest.raises(RuntimeError, match="hook failed"):
        (y + x).sum().backward()
    np.testing.assert_array_equal(x.grad, before[0])
    np.testing.assert_array_equal(w.grad, before[1])
    assert mid.grad is None


# ---- hooks, retain_grad, keep_grads ---------------------------------------------------------

def test_a_hook_sees_the_gradient_and_a_returned_array_replaces_it():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.copy()))
    y.register_hook(lambda g: g * 10)
    (y * mt.tensor([3.0, 5.0])).sum().backward()
    np.testing.assert_array_equal(seen[0], [3.0, 5.0])
    np.testing.assert_array_equal(x.grad, [60.0, 100.0])


def test_a_hook_on_a_leaf_changes_what_is_accumulated():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: np.clip(g, -1, 1))
    (x * 5).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    with pytest.raises(mt.GraphError, match="register_hook"):
        mt.tensor([1.0]).register_hook(print)


def test_only_leaves_keep_grad_unless_retain_grad():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    a = x * 2
    b = (a * 3).retain_grad()
    c = b.tanh()
    c.sum().backward()
    assert a.grad is None and c.grad is None
    np.testing.assert_allclose(b.grad, 1 - np.tanh(b.data) ** 2)
    np.testing.assert_allclose(x.grad, 6 * (1 - np.tanh(6 * x.data) ** 2))
    with pytest.raises(mt.GraphError, match="retain_grad"):
        mt.tensor([1.0]).retain_grad()


def test_keep_grads_stores_every_intermediate_gradient():
    x = mt.tensor([0.5, -1.0], requires_grad=True)
    a = x * 3
    b = a.exp()
    c = b.sum()
    c.backward(keep_grads=True)
    assert c.grad == 1.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_allclose(a.grad, np.exp(a.data))
    np.testing.assert_allclose(x.grad, 3 * np.exp(a.data))


# ---- mt.grad ------------------------------------------------------------------------------

def test_grad_returns_arrays_and_leaves_dot_grad_untouched():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    w = mt.tensor([3.0, -1.0], requires_grad=True)
    unused = mt.tensor([7.0], requires_grad=True)
    x.grad = np.array([100.0, 100.0])
    y = (x * x * w).sum()
    gx, gw, gu = mt.grad(y, [x, w, unused])
    assert all(isinstance(g, np.ndarray) for g in (gx, gw, gu))
    np.testing.assert_array_equal(gx, 2 * x.data * w.data)
    np.testing.assert_array_equal(gw, x.data ** 2)
    np.testing.assert_array_equal(gu, [0.0])
    np.testing.assert_array_equal(x.grad, [100.0, 100.0])
    assert w.grad is None


def test_grad_with_grad_outputs_and_several_non_scalar_outputs():
    x = mt.tensor(randn(2, 3), requires_grad=True)
    W = mt.tensor(randn(3, 4, seed=1), requires_grad=True)
    y = x @ W
    z = x.exp()
    gy, gz = randn(2, 4, seed=2), randn(2, 3, seed=3)
    (gx,) = mt.grad([y, z], [x], grad_outputs=[gy, gz], retain_graph=True)
    np.testing.assert_allclose(gx, gy @ W.data.T + gz * np.exp(x.data))
    gW = mt.grad(y, W, grad_outputs=gy)
    assert isinstance(gW, tuple) and len(gW) == 1
    np.testing.assert_allclose(gW[0], x.data.T @ gy)
    with pytest.raises(mt.GraphError, match="retain_graph=True"):
        mt.grad(y, W, grad_outputs=gy)


def test_grad_runs_hooks_but_stores_no_retained_grad():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).retain_grad()
    y.register_hook(lambda g: g * 3)
    (gx,) = mt.grad((y * y).sum(), [x])
    np.testing.assert_array_equal(gx, 3 * 2 * y.data * 2)
    assert y.grad is None and x.grad is None


# ---- name scopes ----------------------------------------------------------------------------

def test_name_scope_marks_ops_and_nests_with_a_slash():
    x = mt.tensor([1.0], requires_grad=True)
    with mt.name_scope("rnn"):
        a = x * 2
        with mt.name_scope("t=3"):
            b = a.tanh()
        c = b + 1
    d = c * 2
    assert (a.scope, b.scope, c.scope, d.scope, x.scope) == ("rnn", "rnn/t=3", "rnn", None, None)


# ---- errors -------------------------------------------------------------------------------

def test_backward_on_a_non_scalar_needs_grad():
    y = mt.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(mt.GraphError, match=r"one element.*shape \(2,\).*grad="):
        y.backward()


def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(mt.GraphError, match="does not require grad"):
        mt.tensor([1.0, 2.0]).sum().backward()
    with mt.no_grad():
        y = (mt.tensor([1.0], requires_grad=True) * 2).sum()
    with pytest.raises(mt.GraphError, match="does not require grad"):
        y.backward()


def test_backward_with_a_grad_of_the_wrong_shape():
    y = mt.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(mt.ShapeError, match=r"grad has shape \(3,\).*tensor has shape \(2,\)"):
        y.backward(np.ones(3))


class _WrongShape(Op):
    """A deliberately broken op (not registered): its gradient cannot reduce to the input."""
    name = "wrong_shape"

    @staticmethod
    def forward(a):
        return a * 2, None

    @staticmethod
    def backward(ctx, g):
        return (np.ones(g.shape + (5,)),)


def test_a_gradient_that_cannot_reduce_to_its_input_names_op_input_and_shapes():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(mt.ShapeError, match=r"wrong_shape \(input 0\).*\(2, 5\).*\(2,\)"):
        apply(_WrongShape, x).sum().backward()


class _ShrunkGrad(Op):
    """A broken unary op: its gradient has a size-1 axis where the input has 3."""
    name = "shrunk_grad"

    @staticmethod
    def forward(a):
        return np.tanh(a), None

    @staticmethod
    def backward(ctx, g):
        return (g[:, :1],)


def test_every_edge_is_checked_not_only_broadcasting_ops_and_the_error_names_the_step():
    x = mt.tensor(np.ones((2, 3)), requires_grad=True)
    with mt.name_scope("t=4"):
        y = apply(_ShrunkGrad, x)
    with pytest.raises(mt.ShapeError, match=r"backward of shrunk_grad \(input 0, made in "
                                            r"t=4\).*\(2, 1\).*\(2, 3\)"):
        y.sum().backward()
    assert x.grad is None


class _BadBackward(Op):
    """A broken op whose backward makes NumPy raise."""
    name = "bad_backward"

    @staticmethod
    def forward(a):
        return a * 2, None

    @staticmethod
    def backward(ctx, g):
        return (g @ np.ones((5, 5)),)


def test_a_numpy_error_inside_a_backward_is_reraised_with_the_op_and_shapes():
    x = mt.tensor(np.ones(3), requires_grad=True)
    with mt.name_scope("t=2"):
        y = apply(_BadBackward, x)
    with pytest.raises(mt.ShapeError, match=r"^backward of bad_backward \(made in t=2\): "
                                            r".*input shapes \(3,\), output shape \(3,\)"):
        y.sum().backward()


class _Halves(Gradient):
    """A test Gradient: its dense form is `value` halved, so a lost call shows in the sum."""
    __slots__ = ("value", "shape", "dtype", "log")

    def __init__(self, value, log):
        self.value, self.shape, self.dtype, self.log = value, value.shape, value.dtype, log

    def dense(self):
        self.log.append("dense")
        return self.value / 2

    def add_into(self, buf):
        self.log.append("add_into")
        buf += self.value / 2
        return buf

    def merge(self, other):
        self.log.append("merge")
        if type(other) is not _Halves:
            return None
        self.value = self.value + other.value
        return self


class _Halved(Op):
    """y = a / 2 whose gradient comes back as a _Halves."""
    name = "halved"
    log = []

    @staticmethod
    def forward(a):
        return a / 2, None

    @staticmethod
    def backward(ctx, g):
        return (_Halves(np.array(g), _Halved.log),)


def test_the_gradient_protocol_merge_dense_and_add_into_for_leaves_and_non_leaves():
    _Halved.log.clear()
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    (apply(_Halved, x) + apply(_Halved, x)).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    assert _Halved.log == ["merge", "dense"]              # two merged, densified at the end
    _Halved.log.clear()
    x.grad = None
    (apply(_Halved, x) + apply(_Halved, x) + x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 4.0])     # x * 3, made last, arrives first:
    assert _Halved.log == ["add_into", "add_into"]        # each structured one is added in
    _Halved.log.clear()
    x.grad = None
    mid = x * 1.0                                          # a non-leaf: densified when popped
    (apply(_Halved, mid) * 4).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    assert _Halved.log == ["dense"]


def test_a_structured_gradient_of_the_wrong_shape_is_rejected():
    class Wrong(Op):
        name = "wrong_structured"

        @staticmethod
        def forward(a):
            return a * 1, None

        @staticmethod
        def backward(ctx, g):
            return (_Halves(np.ones(5), []),)
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(mt.ShapeError, match=r"wrong_structured \(input 0\).*\(5,\).*\(2,\)"):
        apply(Wrong, x).sum().backward()


def test_a_numpy_error_in_a_unary_forward_names_the_op():
    with pytest.raises(mt.ArgumentError, match=r"^tanh: .*input shapes \(2,\)"):
        mt.Tensor(np.array(["a", "b"])).tanh()
