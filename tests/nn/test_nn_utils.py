"""nn.utils: gradient clipping by total norm and by value, against formulas and torch."""
import math

import numpy as np
import pytest

import microtensor as mt
from microtensor.nn import Parameter
from microtensor.nn.utils import clip_grad_norm_, clip_grad_value_


def params_with_grads(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    ps = [Parameter(np.zeros(s)) for s in [(3, 4), (4,), (2, 2, 2)]]
    for p in ps:
        p.grad = rng.standard_normal(p.shape) * scale
    return ps


def test_clip_grad_norm_scales_when_above():
    ps = params_with_grads(scale=10.0)
    before = [p.grad.copy() for p in ps]
    norm = math.sqrt(sum((g ** 2).sum() for g in before))
    grad_arrays = [p.grad for p in ps]
    total = clip_grad_norm_(ps, 1.0)
    assert isinstance(total, float) and total == pytest.approx(norm, rel=1e-14)
    for p, g, arr in zip(ps, before, grad_arrays):
        assert p.grad is arr                                    # in place
        np.testing.assert_allclose(p.grad, g * (1.0 / (norm + 1e-6)), rtol=1e-14)
    clipped = math.sqrt(sum((p.grad ** 2).sum() for p in ps))
    assert clipped == pytest.approx(1.0, abs=1e-6) and clipped < 1.0


def test_clip_grad_norm_leaves_small_gradients_alone():
    ps = params_with_grads(scale=0.01)
    before = [p.grad.copy() for p in ps]
    total = clip_grad_norm_(ps, 5.0)
    assert total < 5.0
    for p, g in zip(ps, before):
        np.testing.assert_array_equal(p.grad, g)


def test_clip_grad_norm_skips_none_and_accepts_generators_and_one_tensor():
    ps = params_with_grads()
    ps.append(Parameter(np.zeros(3)))               # no grad: ignored
    norm = math.sqrt(sum((p.grad ** 2).sum() for p in ps[:3]))
    assert clip_grad_norm_((p for p in ps), 1e9) == pytest.approx(norm, rel=1e-14)
    assert ps[3].grad is None
    one = Parameter([0.0, 0.0])
    one.grad = np.array([3.0, 4.0])
    assert clip_grad_norm_(one, 1.0) == 5.0
    np.testing.assert_allclose(one.grad, [3 / (5 + 1e-6), 4 / (5 + 1e-6)], rtol=1e-15)
    assert clip_grad_norm_([Parameter([1.0])], 1.0) == 0.0


def test_clip_grad_norm_other_norms():
    ps = params_with_grads(seed=1)
    grads = [p.grad.copy() for p in ps]
    inf = max(np.abs(g).max() for g in grads)
    assert clip_grad_norm_(ps, 1e9, norm_type=math.inf) == inf
    l1 = sum(np.abs(g).sum() for g in grads)
    assert clip_grad_norm_(ps, 1e9, norm_type=1) == pytest.approx(l1, rel=1e-14)


def test_clip_grad_value():
    ps = params_with_grads(scale=2.0)
    before = [p.grad.copy() for p in ps]
    clip_grad_value_(ps, 0.5)
    for p, g in zip(ps, before):
        np.testing.assert_array_equal(p.grad, np.clip(g, -0.5, 0.5))


def test_clipping_a_real_backward():
    w = Parameter(np.array([[1.0, -2.0], [0.5, 3.0]]))
    (w * w).sum().backward()                        # grad 2w, norm 2‖w‖
    total = clip_grad_norm_([w], 1.0)
    assert total == pytest.approx(2 * np.linalg.norm(w.data), rel=1e-15)
    np.testing.assert_allclose(w.grad, 2 * w.data / (total + 1e-6), rtol=1e-14)


@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, math.inf),
                                                 (2.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    torch = pytest.importorskip("torch")
    ps = params_with_grads(seed=2, scale=3.0)
    tps = [torch.nn.Parameter(torch.zeros(p.shape, dtype=torch.float64)) for p in ps]
    for p, tp in zip(ps, tps):
        tp.grad = torch.from_numpy(p.grad.copy())
    total = clip_grad_norm_(ps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert total == pytest.approx(ttotal.item(), rel=1e-14)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-14, atol=1e-300)
    ts = params_with_grads(seed=3, scale=3.0)
    tts = [torch.nn.Parameter(torch.zeros(p.shape, dtype=torch.float64)) for p in ts]
    for p, tp in zip(ts, tts):
        tp.grad = torch.from_numpy(p.grad.copy())
    clip_grad_value_(ts, 0.7)
    torch.nn.utils.clip_grad_value_(tts, 0.7)
    for p, tp in zip(ts, tts):
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())


def test_reachable_as_mt_nn_utils():
    assert mt.nn.utils.clip_grad_norm_ is clip_grad_norm_
