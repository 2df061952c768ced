"""Anomaly mode (microtensor/anomaly.py; issue 13, case 3): the op, time step and line where a
NaN or an infinity was born."""
import numpy as np
import pytest

import microtensor as mt
from microtensor import nn
from microtensor.autograd import STATE


class LogCell(nn.RecurrentCell):
    """h ← log(h + x·w): finite until x turns very negative."""

    def __init__(self):
        super().__init__(1, 2)
        self.w = nn.Parameter(np.array([[1.0, 0.5]]))

    def forward(self, x, h):
        return (h + x @ self.w).log()        # the line the error must show


def xs_with_a_bad_step(t_bad=3, T=6):
    xs = np.ones((T, 1, 1))
    xs[t_bad] = -9.0
    return mt.tensor(xs)


@pytest.fixture(autouse=True)
def anomaly_off_after():
    yield
    mt.set_detect_anomaly(False)


def test_a_nan_made_at_step_t_of_an_unrolled_cell_names_the_op_the_step_and_the_line():
    cell = LogCell()
    with mt.detect_anomaly(), pytest.raises(mt.AnomalyError) as info, \
            np.errstate(invalid="ignore"):
        nn.unroll(cell, xs_with_a_bad_step(3), state=mt.ones(1, 2))
    msg = str(info.value)
    assert "op 'log' (made in t=3) produced nan" in msg
    assert "shape (1, 2)" in msg and "first at element (0, 0)" in msg
    assert "input 0 there: -8." in msg
    assert "return (h + x @ self.w).log()" in msg and __file__ in msg
    t = info.value.tensor
    assert str(t.scope) == "t=3" and t.scope.t == 3 and t.op.name == "log" and "nan" in t._meta.anomaly


def test_without_anomaly_mode_the_nan_passes_and_nothing_is_kept():
    cell = LogCell()
    with np.errstate(invalid="ignore"):
        hs, h = nn.unroll(cell, xs_with_a_bad_step(3), state=mt.ones(1, 2))
    assert np.isnan(h.data).all()
    assert all(t._meta is None or t._meta.trace is None for t in (h, hs))


def test_a_gradient_that_turns_infinite_in_backward_names_the_op_and_its_forward_line():
    x = mt.tensor([0.0, 4.0], requires_grad=True)
    x.name = "x"
    with mt.detect_anomaly():
        y = x.sqrt()                         # finite forward, d√x = ∞ at 0
        with pytest.raises(mt.AnomalyError) as info, np.errstate(divide="ignore"):
            y.sum().backward()
    msg = str(info.value)
    assert "backward of op 'sqrt'" in msg and "returned inf" in msg
    assert "input 0 ('x', shape (2,))" in msg and "first at element (0,)" in msg
    assert "y = x.sqrt()" in msg
    assert x.grad is None                    # nothing accumulated


def test_a_backward_nan_inside_an_unroll_names_the_time_step():
    class SqrtCell(nn.RecurrentCell):
        def __init__(self):
            super().__init__(1, 1)
            self.w = nn.Parameter(np.ones((1, 1)))

        def forward(self, x, h):
            return (h * 0.0 + x @ self.w).abs().sqrt()

    xs = np.ones((5, 1, 1))
    xs[2] = 0.0                              # √0 = 0, but its derivative is infinite
    cell = SqrtCell()
    with mt.detect_anomaly():
        hs, h = nn.unroll(cell, mt.tensor(xs))
        with pytest.raises(mt.AnomalyError, match=r"op 'sqrt' \(made in t=2\)"), \
                np.errstate(divide="ignore", invalid="ignore"):
            hs.sum().backward()


def test_an_infinite_upstream_gradient_is_reported_where_it_enters():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    with mt.detect_anomaly(), pytest.raises(mt.AnomalyError, match="gradient reaching"):
        (x * 2).backward(np.array([np.inf, 1.0]))


def test_set_detect_anomaly_and_the_context_manager_restore_the_mode():
    assert not mt.is_anomaly_enabled()
    mt.set_detect_anomaly(True)
    assert mt.is_anomaly_enabled()
    with mt.detect_anomaly(False):
        assert not mt.is_anomaly_enabled()
    assert mt.is_anomaly_enabled()
    mt.set_detect_anomaly(False)
    guard = mt.detect_anomaly()
    with guard:
        with guard:                          # the same object entered twice
            assert STATE.anomaly
        assert STATE.anomaly
    assert not STATE.anomaly

    @mt.detect_anomaly()
    def f():
        return mt.is_anomaly_enabled()
    assert f() and not mt.is_anomaly_enabled()


def test_anomaly_mode_changes_no_result():
    mt.manual_seed(0)
    cell = nn.Linear(3, 3)
    x = mt.randn(2, 3)
    grads = []
    for on in (False, True):
        cell.zero_grad()
        with mt.detect_anomaly(on):
            cell(x).tanh().sum().backward()
        grads.append(cell.weight.grad.copy())
    np.testing.assert_array_equal(*grads)


def test_viz_draws_the_anomalous_tensor_red():
    pytest.importorskip("graphviz")
    from microtensor.viz.draw import ANOMALY
    cell = LogCell()
    with mt.detect_anomaly(), pytest.raises(mt.AnomalyError) as info, \
            np.errstate(invalid="ignore"):
        nn.unroll(cell, xs_with_a_bad_step(2), state=mt.ones(1, 2))
    src = mt.viz.draw_graph(info.value.tensor, params=cell).source
    assert src.count(ANOMALY[0]) == 1 and "anomaly: nan in its value" in src
