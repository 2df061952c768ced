"""Every registered op against PyTorch: same float64 inputs, same values and gradients."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import microtensor as mt
from microtensor.autograd import REGISTRY
from op_specs import EDGES, SPECS, edge_inputs, inputs

torch = pytest.importorskip("torch")


def _dims(a, axis):
    return tuple(range(a.ndim)) if axis is None else axis


def _index(index):
    """The same index for torch: arrays become tensors (lists of ints stay lists)."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index.copy())
    return index


def _has_negative_step(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, slice) and i.step is not None and i.step < 0 for i in items)


def _getitem(a, index):
    """torch indexing; torch has no negative-step slices, so those take the same elements
    through a flat index of positions that NumPy picks out."""
    if _has_negative_step(index):
        where = np.arange(a.numel()).reshape(tuple(a.shape))[index]
        return a.reshape(-1)[torch.from_numpy(where.copy())]
    return a[_index(index)]


def _scatter_add(v, index, shape):
    """zeros(shape) with v added at index: index_add at the flat positions NumPy picks out."""
    n = int(np.prod(shape))
    where = torch.from_numpy(np.arange(n).reshape(shape)[index].reshape(-1).copy())
    return torch.zeros(n, dtype=v.dtype).index_add(0, where, v.reshape(-1)).reshape(shape)


TORCH = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "where": lambda a, b, cond: torch.where(torch.from_numpy(cond), a, b),
    "matmul": torch.matmul,
    "linear": lambda x, w, b=None: torch.nn.functional.linear(x, w) + (0 if b is None else b),
    "linear_add": lambda x, w, c: torch.nn.functional.linear(x, w) + c,
    "cross_entropy": lambda z, targets, reduction: torch.nn.functional.cross_entropy(
        z, torch.from_numpy(targets), reduction=reduction),
    "neg": torch.neg,
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "clip": lambda a, lo, hi: torch.clamp(a, lo, hi),
    "cast": lambda a: a.to(torch.float32).to(torch.float64),
    "sum": lambda a, axis, keepdims: torch.sum(a, dim=_dims(a, axis), keepdim=keepdims),
    "mean": lambda a, axis, keepdims: torch.mean(a, dim=_dims(a, axis), keepdim=keepdims),
    # amax/amin split the gradient evenly between ties, as ours do (torch.max(dim) does not)
    "max": lambda a, axis, keepdims: torch.amax(a, dim=_dims(a, axis), keepdim=keepdims),
    "min": lambda a, axis, keepdims: torch.amin(a, dim=_dims(a, axis), keepdim=keepdims),
    "softmax": lambda a, axis: torch.softmax(a, dim=axis),
    "log_softmax": lambda a, axis: torch.log_softmax(a, dim=axis),
    "reshape": lambda a, shape: a.reshape(shape),
    "transpose": lambda a, axes: a.permute(axes if axes is not None else
                                           tuple(reversed(range(a.ndim)))),
    "squeeze": lambda a, axis: a.squeeze() if axis is None else a.squeeze(axis),
    "expand_dims": lambda a, axis: a.unsqueeze(axis),
    "broadcast_to": lambda a, shape: a.broadcast_to(shape),
    "getitem": _getitem,
    "scatter_add": _scatter_add,
    "stack": lambda a, b, c, axis: torch.stack([a, b, c], dim=axis),
    "concat": lambda a, b, c, axis: torch.cat([a, b, c], dim=axis),
}


def test_every_registered_op_has_a_torch_counterpart():
    assert set(TORCH) == set(REGISTRY)


def close(ours, theirs):
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@given(data=st.data())
def test_values_and_gradients_equal_torch(name, data):
    arrays, attrs = data.draw(inputs(SPECS[name]))
    check_against_torch(name, arrays, attrs)


@pytest.mark.parametrize("name, shapes, attrs", EDGES, ids=[e[0] for e in EDGES])
def test_edge_cases_equal_torch(name, shapes, attrs):
    check_against_torch(name, edge_inputs(name, shapes), attrs)


def check_against_torch(name, arrays, attrs):
    spec = SPECS[name]
    xs = [mt.tensor(a, requires_grad=True) for a in arrays]
    txs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = spec.call(*xs, **attrs)
    tout = TORCH[name](*txs, **attrs)
    assert out.shape == tuple(tout.shape)
    close(out.data, tout.detach().numpy())

    v = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(v)
    tout.backward(torch.from_numpy(v))
    for x, tx in zip(xs, txs):
        close(x.grad, tx.grad.numpy())


@pytest.mark.parametrize("name", sorted(REGISTRY))
@settings(max_examples=10)
@given(data=st.data())
def test_second_derivatives_equal_torch(name, data):
    arrays, attrs = data.draw(inputs(SPECS[name]))
    check_second_derivatives_against_torch(name, arrays, attrs)


@pytest.mark.parametrize("name, shapes, attrs", EDGES, ids=[e[0] for e in EDGES])
def test_second_derivatives_of_edge_cases_equal_torch(name, shapes, attrs):
    check_second_derivatives_against_torch(name, edge_inputs(name, shapes), attrs)


def check_second_derivatives_against_torch(name, arrays, attrs):
    """vᵀJ with create_graph=True, then the gradient of wᵀ(vᵀJ) with respect to the inputs
    and to v itself (v requires grad), in both libraries."""
    rng = np.random.default_rng(0)
    xs = [mt.tensor(a, requires_grad=True) for a in arrays]
    txs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = SPECS[name].call(*xs, **attrs)
    tout = TORCH[name](*txs, **attrs)
    v = rng.standard_normal(out.shape)
    mv, tv = mt.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    gs = mt.grad(out, xs, grad_outputs=mv, create_graph=True)
    tgs = torch.autograd.grad(tout, txs, tv, create_graph=True)
    ws = [rng.standard_normal(x.shape) for x in xs]
    for g, tg in zip(gs, tgs):
        assert isinstance(g, mt.Tensor)
        close(g.data, tg.detach().numpy())
    s = mt.stack([(g * w).sum() for g, w in zip(gs, ws)]).sum()
    ts = sum((tg * torch.from_numpy(w)).sum() for tg, w in zip(tgs, ws))
    second = mt.grad(s, [*xs, mv])
    tsecond = torch.autograd.grad(ts, [*txs, tv], allow_unused=True, materialize_grads=True)
    for h, th in zip(second, tsecond):
        close(h, th.numpy(force=True))     # torch gives a ZeroTensor for some


def test_ties_in_max_and_maximum_match_torch():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x, tx = mt.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    x.max(axis=1).sum().backward()
    torch.amax(tx, dim=1).sum().backward()
    close(x.grad, tx.grad.numpy())

    b = np.array([[3.0, 1.0, 2.0]])
    y, ty = mt.tensor(b, requires_grad=True), torch.tensor(b, requires_grad=True)
    x.grad = tx.grad = None
    mt.maximum(x, y).sum().backward()
    torch.maximum(tx, ty).sum().backward()
    close(x.grad, tx.grad.numpy())
    close(y.grad, ty.grad.numpy())

