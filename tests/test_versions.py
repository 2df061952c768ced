"""Version counters and memory guards (microtensor/versions.py): backward never reads an array
that changed after its forward — it raises instead (issue 13, case 1)."""
import gc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import microtensor as mt
import microtensor.functional as F
from microtensor import nn
from microtensor.autograd import REGISTRY
from op_specs import SPECS, inputs, ops_used

READ_ONLY = "read-only"


def rng(seed=0):
    return np.random.default_rng(seed)


def leaf(*shape, seed=0):
    return mt.tensor(rng(seed).standard_normal(shape), requires_grad=True)


# ---- raw NumPy writes into what a live graph reads raise at the write ------------------------

WRITES = [
    lambda x: x.data.__setitem__(Ellipsis, 0),                  # x.data[...] = 0
    lambda x: x.data.__iadd__(1),                               # x.data += 1
    lambda x: np.add(x.data, 1, out=x.data),
    lambda x: x.numpy().__setitem__(0, 5.0),
    lambda x: x.detach().data.__setitem__(0, 5.0),
    lambda x: x[0:2].data.__setitem__(0, 5.0),                  # through a view
    lambda x: np.asarray(x).__setitem__(0, 5.0),
]


@pytest.mark.parametrize("write", WRITES,
                         ids=["setitem", "iadd", "ufunc-out", "numpy", "detach", "view", "asarray"])
def test_a_raw_write_into_a_leaf_a_live_graph_reads_raises(write):
    x = leaf(3)
    loss = (x * x).sum()
    before = x.data.copy()
    with pytest.raises(ValueError, match=READ_ONLY) as e:
        write(x)
    if write is not WRITES[-1]:            # np.asarray(x) is a plain ndarray: NumPy's message
        assert e.type is mt.GuardError
        assert "op 'mul'" in str(e.value) and "Call backward() first" in str(e.value)
    np.testing.assert_array_equal(x.data, before)
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * before)


def test_a_guard_error_names_the_op_its_time_step_and_the_tensor():
    w = leaf(3)
    w.name = "Whh"
    with mt.time_step(7):
        loss = (w * w).tanh().sum()
    with pytest.raises(mt.GuardError) as e:
        w.data[0] = 1.0
    msg = str(e.value)
    assert "'Whh'" in msg and "op 'mul' (made in t=7)" in msg and "shape (3,)" in msg
    assert "w -= lr * w.grad" in msg and "np.array(x.data)" in msg
    loss.backward()


def test_a_guarded_view_is_the_same_array_reads_as_one_and_reopens_after_backward():
    x = leaf(2, 3)
    loss = (x * x).sum()
    d = x.data
    assert isinstance(d, mt.versions.GuardedArray) and d is x.data and d.base is x._data
    assert type(d + 1) is np.ndarray and type(np.exp(d)) is np.ndarray
    assert type(d.copy()) is np.ndarray and d.copy().flags.writeable
    assert type(np.array(d)) is np.ndarray and type(mt.tensor(d)._data) is np.ndarray
    x.data = x.data                        # a no-op, as in NumPy: no copy, no new array
    assert x._data is d.base
    with pytest.raises(mt.GuardError):
        d.fill(0)
    with pytest.raises(mt.GuardError):
        np.copyto(d, 0)
    loss.backward()
    assert d.flags.writeable               # the view handed out reopens with its array
    d[0, 0] = 5.0
    assert x._data[0, 0] == 5.0 and type(x.data) is np.ndarray


def test_a_view_handed_out_earlier_is_locked_again_by_the_next_graph():
    """The view's write flag is its own: a graph that reads the array again locks the view
    too, else a write through it would change what backward reads (∂(x·x) came out 10, not
    2, from x = 1 written to 5)."""
    x = mt.tensor(np.ones(3), requires_grad=True)
    (x * x).sum().backward()                # a first graph, released
    d = x.data
    first = (x * x).sum()
    d = x.data                              # handed out while locked
    first.backward()
    assert d.flags.writeable
    x.grad = None
    loss = (x * x).sum()                    # reads the array again
    with pytest.raises(mt.GuardError, match=READ_ONLY):
        d[:] = 5.0
    with pytest.raises(mt.GuardError, match=READ_ONLY):
        d += 1
    loss.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    assert d.flags.writeable


def test_a_tensor_made_of_a_handed_out_view_shares_the_array_and_stays_writable():
    """x.data = y.data and mt.as_tensor(y.data) while y is locked give x y's own array, as
    they would unlocked; a part of it (y.data[1:]) reopens with y's memory after backward."""
    y = mt.tensor(np.ones(4), requires_grad=True)
    loss = (y * y).sum()
    x = mt.tensor(np.zeros(4))
    x.data = y.data
    z, part = mt.as_tensor(y.data), mt.as_tensor(y.data[1:])
    assert x._data is y._data and z._data is y._data and type(part._data) is np.ndarray
    loss.backward()
    assert part._data.flags.writeable
    with mt.no_grad():
        x += 1
        part.zero_()
    np.testing.assert_array_equal(y.data, [2.0, 0.0, 0.0, 0.0])
    opt = mt.optim.SGD([mt.nn.Parameter(np.ones(4))], lr=0.1)
    opt.params[0].data = y.data             # unlocked now: any tensor, and an optimizer on it
    opt.params[0].grad = np.ones(4)
    opt.step()
    np.testing.assert_allclose(y.data, [1.9, -0.1, -0.1, -0.1])


def test_numpy_errors_other_than_read_only_stay_numpys_own():
    x = leaf(2, 4)
    loss = (x * x).sum()
    d = x.data
    with pytest.raises(ValueError, match="cannot reshape") as e:
        np.reshape(d, (7,))
    assert not isinstance(e.value, mt.GuardError)
    with pytest.raises(ValueError, match="not aligned") as e:
        np.dot(d, d)
    assert not isinstance(e.value, mt.GuardError)
    with pytest.raises(mt.GuardError, match=READ_ONLY):
        np.copyto(d, 0)
    loss.backward()


@pytest.mark.parametrize("make", [
    lambda x: x.tanh(), lambda x: x.exp(), lambda x: x.sigmoid(), lambda x: F.softmax(x),
    lambda x: x.relu(), lambda x: x.exp().sqrt(),
], ids=["tanh", "exp", "sigmoid", "softmax", "relu", "sqrt"])
def test_editing_the_output_an_op_saved_raises(make):
    x = leaf(4)
    y = make(x)
    loss = (y * 2).sum()
    with pytest.raises(mt.GuardError, match=READ_ONLY):
        y.data[...] = 0
    with pytest.raises(mt.GuardError, match=READ_ONLY):
        y.numpy()[0] = 1
    loss.backward()
    assert np.all(np.isfinite(x.grad))


@pytest.mark.parametrize("use", [
    lambda a, w: a @ w, lambda a, w: F.linear(a, w.T), lambda a, w: a.max(axis=1) * w.sum(),
    lambda a, w: a.clip(-0.1, 0.1) * w.sum(), lambda a, w: mt.maximum(a, 0.0) * w.sum(),
    lambda a, w: F.cross_entropy(a, np.array([0, 2])) * w.sum(),
], ids=["matmul", "linear", "max", "clip", "maximum", "cross_entropy"])
def test_editing_an_intermediate_input_an_op_saved_raises(use):
    x, w = leaf(2, 3), leaf(3, 3, seed=1)
    a = x * 1.5                           # an op's output, saved (or read) by the next op
    loss = use(a, w).sum()
    with pytest.raises(mt.GuardError, match=READ_ONLY):
        a.data[0, 0] = 100.0
    loss.backward()


def test_the_guard_lifts_when_backward_releases_the_graph():
    x = leaf(3)
    h = x.tanh()
    loss = (h * x).sum()
    h.data                                 # handed out: locked while the graph is live
    loss.backward()
    x.data[...] = 0                        # micrograd's p.data -= lr * p.grad works again
    h.data[...] = 0
    x.data -= 0.1 * x.grad


def test_the_guard_lifts_when_a_graph_is_dropped_without_backward():
    x = leaf(3)
    loss = (x * x).sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        x.data[0] = 1.0
    del loss
    gc.collect()
    x.data[0] = 1.0


def test_retain_graph_keeps_the_guard_until_the_last_backward():
    x = leaf(3)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(ValueError, match=READ_ONLY):
        x.data[0] = 1.0
    loss.backward()
    x.data[0] = 1.0


def test_a_read_only_array_of_the_caller_stays_read_only():
    a = np.arange(3.0)
    a.setflags(write=False)
    x = mt.as_tensor(a)
    w = leaf(3)
    (x * w).sum().backward()
    assert not a.flags.writeable
    with mt.no_grad(), pytest.raises(mt.ArgumentError, match="read-only"):
        x += 1


def test_the_callers_array_behind_as_tensor_is_guarded():
    buf = np.ones(3)
    w = leaf(3)
    loss = (mt.as_tensor(buf) * w).sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        buf[:] = 2.0                       # a reused input buffer refilled too early
    loss.backward()
    np.testing.assert_array_equal(w.grad, 1.0)
    buf[:] = 2.0


def test_constants_made_from_numbers_are_not_locked():
    from microtensor.versions import PRIVATE
    x = leaf(3)
    y = x * 2.0                            # nobody else holds the 2.0: no lock to take
    assert y.parents[1].saved is PRIVATE and y.parents[1].data.flags.writeable


# ---- writes microtensor sees are stamped; backward then raises --------------------------

def test_reassigning_data_between_forward_and_backward_raises():
    x = leaf(3)
    loss = (x * x).sum()
    x.data = np.zeros(3)
    with pytest.raises(mt.VersionError, match=r"op 'mul'.*replaced"):
        loss.backward()
    assert x.grad is None


def test_reassigning_an_outputs_data_raises():
    x = leaf(3)
    y = x.tanh()
    loss = y.sum()
    y.data = np.zeros(3)
    with pytest.raises(mt.VersionError, match=r"op 'tanh'.*its output.*replaced"):
        loss.backward()


def test_an_in_place_write_under_no_grad_raises_at_backward_with_both_versions():
    x = leaf(3)
    x.name = "x"
    loss = (x * x).sum()
    with mt.no_grad():
        x += 1
    assert x._version == 1
    with pytest.raises(mt.VersionError,
                       match=r"op 'mul'.*input 0 \('x', shape \(3,\)\) is at version 1, but "
                             r"it was at version 0"):
        loss.backward()


def test_writing_through_a_view_tensor_counts_for_the_whole_buffer():
    x = leaf(4)
    loss = (x * x).sum()
    with mt.no_grad():
        v = x[1:3]
        v.zero_()
    assert x._version == v._version == 1
    with pytest.raises(mt.VersionError):
        loss.backward()


def test_a_write_into_something_backward_does_not_read_is_fine():
    x, b = leaf(3), mt.tensor(np.ones(3))
    loss = ((x * x) + b).sum()            # add reads neither input
    with mt.no_grad():
        b += 1
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_opt_step_between_forward_and_a_retained_backward_raises():
    mt.manual_seed(0)
    lin = nn.Linear(3, 2)
    opt = mt.optim.SGD(lin.parameters(), lr=0.1)
    loss = lin(mt.randn(4, 3)).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(mt.VersionError,
                       match=r"op 'linear'.*'weight'.*version 2.*version 1.*opt\.step\(\) "
                             r"after backward"):
        loss.backward()


def test_the_error_of_a_carried_state_names_step_and_detach():
    mt.manual_seed(0)
    lin = nn.Linear(3, 3)
    opt = mt.optim.SGD(lin.parameters(), lr=0.1)
    h = mt.zeros(1, 3)
    with mt.name_scope("t=0"):
        h = lin(h).tanh()
    h.sum().backward(retain_graph=True)
    opt.step()
    with mt.name_scope("t=1"):
        h = lin(h).tanh()
    with pytest.raises(mt.VersionError, match=r"made in t=0.*detach\(\)"):
        h.sum().backward()


@pytest.mark.parametrize("write", [
    lambda m: m.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(2)}),
    lambda m: nn.init.zeros_(m.weight),
    lambda m: m.to(np.float32),
], ids=["load_state_dict", "init", "to"])
def test_module_writes_are_stamped(write):
    mt.manual_seed(0)
    m = nn.Linear(3, 2)
    loss = m(mt.randn(4, 3)).sum()
    write(m)
    with pytest.raises(mt.VersionError):
        loss.backward()


def test_optimizers_bump_the_version_of_what_they_write():
    mt.manual_seed(0)
    for cls in (mt.optim.SGD, mt.optim.Adam, mt.optim.Adagrad, mt.optim.RMSprop):
        p = nn.Parameter(np.ones(3))
        opt = cls([p], lr=0.1)
        (p * p).sum().backward()
        v = p._version
        opt.step()
        assert p._version == v + 1


def test_clip_grad_stamps_the_gradients_it_scales():
    p = nn.Parameter(np.ones(3))
    (p * p * 10).sum().backward()
    g = mt.as_tensor(p.grad)                # a tensor sharing the gradient's memory
    v = g._version
    nn.utils.clip_grad_norm_([p], 1.0)
    nn.utils.clip_grad_value_([p], 0.1)
    assert g._version == v + 2


def test_gradcheck_perturbs_inputs_a_live_graph_has_locked():
    x = leaf(2, 3)
    assert mt.gradcheck(lambda t: (t * t).tanh().sum(), [x])
    x.data[0, 0] = 1.0                     # and leaves them writable afterwards


# ---- the caller's arrays the graph keeps are guarded (where's condition is copied) ----------

def test_getitem_guards_an_index_array_and_a_mask_until_backward():
    x = leaf(5, 2)
    idx = np.array([0, 0, 3])
    mask = np.array([True, False, True, False, False])
    loss = (x[idx] * 2).sum() + x[mask].sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        idx[:] = 4                         # reused before backward
    with pytest.raises(ValueError, match=READ_ONLY):
        mask[:] = False
    loss.backward()
    np.testing.assert_array_equal(x.grad[:, 0], [5, 0, 1, 2, 0])
    idx[:] = 4                             # free again once backward has run
    mask[:] = False


def test_embedding_indices_from_a_reused_batch_buffer_cannot_move_the_gradient():
    mt.manual_seed(0)
    emb = nn.Embedding(6, 2)
    batch = np.array([1, 2, 2])
    loss = emb(batch).sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        batch[:] = 5                       # the loader refills its buffer too early
    loss.backward()
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [0, 1, 2, 0, 0, 0])
    batch[:] = 5


@pytest.mark.parametrize("loss_fn", [F.cross_entropy,
                                     lambda z, t: F.nll_loss(F.log_softmax(z), t)])
def test_loss_targets_are_guarded_until_backward(loss_fn):
    z = leaf(3, 4)
    targets = np.array([0, 1, 2])
    loss = loss_fn(z, targets)
    want = mt.grad(loss, z, retain_graph=True)[0]
    with pytest.raises(ValueError, match=READ_ONLY):
        targets[:] = 3
    (got,) = mt.grad(loss, z)
    np.testing.assert_array_equal(got, want)
    targets[:] = 3


def test_where_keeps_its_own_condition():
    a, b = leaf(3), leaf(3, seed=1)
    cond = np.array([True, False, True])
    loss = mt.where(cond, a, b).sum()
    cond[:] = False
    loss.backward()
    np.testing.assert_array_equal(a.grad, [1, 0, 1])


# ---- every op's declaration of what its backward reads is right -----------------------------

def _grads(name, arrays, attrs, mutate=None):
    """Gradients of spec(name) for a fixed upstream gradient, after mutate(xs, out)."""
    spec = SPECS[name]
    xs = [mt.tensor(a, requires_grad=True) for a in arrays]
    out = spec.call(*xs, **attrs)
    node = next(t for t in _walk(out) if t.op is REGISTRY[name])
    if mutate is not None:
        mutate(xs, node)
    v = rng(3).standard_normal(out.shape)
    return mt.grad(out, xs, grad_outputs=v), node


def _walk(t):
    seen, stack = set(), [t]
    while stack:
        t = stack.pop()
        if id(t) in seen or t.op is None:
            continue
        seen.add(id(t))
        yield t
        stack.extend(t.parents)


def _scramble(a):
    """Overwrite a's memory with other values, behind every guard."""
    from microtensor import versions
    with versions.unlocked(a):
        a[...] = np.where(a == 0, 0.75, a * 1.37 + 0.5)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_what_backward_reads_is_declared(name, data):
    """Scrambling an input or the output an op declares it does not read changes no gradient;
    an output that shares an input's memory is declared a view."""
    op = REGISTRY[name]
    arrays, attrs = data.draw(inputs(SPECS[name]))
    want, node = _grads(name, arrays, attrs)
    assert name in ops_used(node)
    if not op.view:
        for p in node.parents:
            assert not np.shares_memory(node._data, p._data), f"{name} returns a view"
    reads = op.reads_inputs
    for i in range(len(node.parents)):
        if reads is None or i in reads:
            continue
        got, _ = _grads(name, arrays, attrs, lambda xs, n: _scramble(n.parents[i]._data))
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} reads input {i}")
    if not op.reads_output and not op.view:
        got, _ = _grads(name, arrays, attrs, lambda xs, n: _scramble(n._data))
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} reads its output")


# ---- every engine runs the same checks (checks.py) --------------------------------------------

def test_a_create_graph_backward_checks_versions_too():
    x = leaf(3)
    loss = (x * x * x).sum()
    with mt.no_grad():
        x += 1
    with pytest.raises(mt.VersionError, match="op 'mul'"):
        mt.grad(loss, x, create_graph=True)


def test_a_create_graph_backward_releases_the_locks_with_the_graph():
    x = leaf(3)
    (g,) = mt.grad((x * x).sum(), x, create_graph=True, retain_graph=False)
    x.data[0] = 1.0                        # the first-order graph was released


def test_create_graph_follows_a_tensor_detached_in_place_after_its_use():
    x = leaf(3)
    y = x * 2
    z = (y * y).sum()                      # took y before detach_
    y.detach_()
    (g,) = mt.grad(z, x, create_graph=True)
    np.testing.assert_allclose(g.data, 8 * x.data)


def test_compile_hands_a_graph_that_needs_checks_to_the_eager_engine():
    w = leaf(3)

    def step(x):
        loss = (x * w).sum()
        with mt.no_grad():
            w.add_(1.0)                    # an in-place write before this call's backward
        loss.backward()

    with pytest.raises(mt.VersionError):
        mt.compile(step)(mt.tensor(np.ones(3)))
