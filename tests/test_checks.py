"""The engine's checked path (microtensor/checks.py): one comparison per node when nothing was
written in place, and the warning for a graph that keeps growing across backward calls
(issue 13, case 4: pytorch/pytorch#2198)."""
import warnings

import numpy as np
import pytest

import microtensor as mt
from microtensor import checks, nn, versions
from microtensor.autograd import STATE


def test_nodes_made_after_the_latest_write_skip_the_check(monkeypatch):
    calls = []
    monkeypatch.setattr(versions, "check", lambda node: calls.append(node) or node.parents)
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    with mt.no_grad():
        x += 1                              # the latest write: older nodes are checked
    (x * x).tanh().sum().backward()
    assert calls == []
    y = (x * x).sum()
    with mt.no_grad():
        x.data                              # reading writes nothing
    y.backward()
    assert calls == []


def test_anomaly_mode_checks_every_node(monkeypatch):
    calls = []
    monkeypatch.setattr(versions, "check", lambda node: calls.append(node) or node.parents)
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    with mt.detect_anomaly():
        (x * x).tanh().sum().backward()
    assert [t.op.name for t in calls] == ["sum", "tanh", "mul"]


def carried_state_loop(steps, detach, retain=True):
    """An RNN-style loop whose state is (or is not) detached between steps (torch #2198)."""
    mt.manual_seed(0)
    lin = nn.Linear(4, 4)
    h = mt.zeros(1, 4)
    for _ in range(steps):
        if detach:
            h = h.detach()
        h = lin(h).tanh()
        h.sum().backward(retain_graph=retain)


def test_a_state_never_detached_with_retain_graph_warns_once(monkeypatch):
    monkeypatch.setattr(checks, "GROWTH_WARN", 200)
    with pytest.warns(mt.GraphGrowthWarning, match=r"detach it between steps") as record:
        carried_state_loop(120, detach=False)
    assert len([w for w in record if issubclass(w.category, mt.GraphGrowthWarning)]) == 1


def test_a_detached_state_or_a_re_walk_of_one_graph_does_not_warn(monkeypatch):
    monkeypatch.setattr(checks, "GROWTH_WARN", 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mt.GraphGrowthWarning)
        carried_state_loop(120, detach=True)
        x = mt.tensor(np.ones(3), requires_grad=True)
        y = x
        for _ in range(300):
            y = (y * 1.001).tanh()
        loss = y.sum()
        for _ in range(5):                  # the same graph, walked again: not growing
            loss.backward(retain_graph=True)


def test_the_careful_threshold_is_the_latest_write():
    before = STATE.last_write
    x = mt.tensor([1.0])
    with mt.no_grad():
        x.add_(1)
    assert checks.careful_below() > before
    mt.set_detect_anomaly(True)
    try:
        assert checks.careful_below() == float("inf")
    finally:
        mt.set_detect_anomaly(False)
