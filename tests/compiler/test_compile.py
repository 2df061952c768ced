"""mt.compile: replays are bitwise equal to eager for every model, and fall back or retrace
whenever they could not be."""
import warnings

import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor import models
from microtensor import nn

from .helpers import run_both, same

rng = np.random.default_rng(0)


class MGU(nn.RecurrentCell):                     # the README's cell
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.cand = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x, h):
        f = self.gate(mt.concat([x, h], axis=1)).sigmoid()
        return (1 - f) * h + f * self.cand(mt.concat([x, f * h], axis=1)).tanh()


class UserLSTM(nn.RecurrentCell):                # a tuple-state LSTM written as a user cell
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.x2h = nn.Linear(input_size, 4 * hidden_size)
        self.h2h = nn.Linear(hidden_size, 4 * hidden_size, bias=False)

    def initial_state(self, batch_size, dtype=np.float64):
        return (mt.zeros(batch_size, self.hidden_size, dtype=dtype),
                mt.zeros(batch_size, self.hidden_size, dtype=dtype))

    def forward(self, x, state):
        h, c = state
        i, f, g, o = mt.split(self.x2h(x) + self.h2h(h), 4, axis=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c


def _cell_setup(cell_class, optimizer=mt.optim.Adam):
    def setup():
        model = nn.ModuleDict({"cell": cell_class(2, 8), "head": nn.Linear(8, 1)})
        cell, head = model["cell"], model["head"]
        opt = optimizer(model.parameters(), lr=0.02)

        def step(xs):
            hs, h = nn.unroll(cell, xs)
            out = cell.output(h)
            loss = F.mse_loss(head(out), xs.sum(axis=0)[:, :1])
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss, h
        return step, list(model.parameters())
    return setup


@pytest.mark.parametrize("cell", [MGU, UserLSTM, models.GRUCell, models.LSTMCell,
                                  models.VanillaRNNCell])
def test_user_cells_bitwise(cell):
    run_both(_cell_setup(cell), [(mt.tensor(rng.standard_normal((7, 3, 2))),)
                                 for _ in range(4)])


def _onehot(T, B, V, dtype=np.float64):
    idx = rng.integers(0, V, size=(T + 1, B))
    return np.eye(V, dtype=dtype)[idx[:-1]], idx[1:]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vanilla_rnn_with_clipping_and_momentum(dtype):
    def setup():
        model = models.VanillaRNN(7, 12, 7, dtype=dtype)
        opt = mt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(xs, ys):
            model.zero_grad()
            loss, h = model.loss(xs, ys)
            loss.backward()
            total = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            return loss, h, total
        return step, list(model.parameters())
    run_both(setup, [_onehot(6, 3, 7, dtype) for _ in range(4)])


def classifier_setup(make_model, width, classes=3):
    """A run_both setup: make_model()'s outputs (T, B, width) through a Linear head into
    cross-entropy at every step, an Adam step over both."""
    def setup():
        model = make_model()
        head = nn.Linear(width, classes)
        params = list(model.parameters()) + list(head.parameters())
        opt = mt.optim.Adam(params, lr=0.01)

        def step(xs, ys, lengths):
            opt.zero_grad()
            out, _ = model(xs, lengths=lengths)
            T, B, _ = out.shape
            loss = F.cross_entropy(head(out).reshape(T * B, classes), ys.reshape(T * B))
            loss.backward()
            opt.step()
            return loss
        return step, params
    return setup


@pytest.mark.parametrize("cls", [models.LSTM, models.GRU])
@pytest.mark.parametrize("kw", [{}, {"num_layers": 2}, {"num_layers": 2, "bidirectional": True}])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_recurrent_layers_directions_lengths(cls, kw, with_lengths):
    D = 2 if kw.get("bidirectional") else 1
    setup = classifier_setup(lambda: cls(5, 8, **kw), 8 * D)
    lengths = np.array([6, 3, 5]) if with_lengths else None
    run_both(setup, [(mt.tensor(rng.standard_normal((6, 3, 5))), rng.integers(0, 3, (6, 3)),
                      lengths) for _ in range(4)])


@pytest.mark.parametrize("cell", [MGU, UserLSTM])
@pytest.mark.parametrize("kw", [{"num_layers": 2}, {"num_layers": 2, "bidirectional": True},
                                {"bidirectional": True, "batch_first": True}])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_user_cells_in_nn_recurrent_layers_directions_lengths(cell, kw, with_lengths):
    """nn.Recurrent around a user cell (the README's MGU, a tuple-state LSTM): stacked,
    both directions, batch-first, with lengths; the loss reads the outputs and the final
    state, so the plan holds every layer's unroll, the reversal and the state's stacking."""
    D = 2 if kw.get("bidirectional") else 1
    batch_first = kw.get("batch_first", False)

    def setup():
        rnn = nn.Recurrent(cell(5, 8), **kw)
        head = nn.Linear(8 * D, 3)
        params = list(rnn.parameters()) + list(head.parameters())
        opt = mt.optim.Adam(params, lr=0.01)

        def step(xs, ys, lengths):
            opt.zero_grad()
            out, final = rnn(xs, lengths=lengths)
            if batch_first:
                out = out.transpose(1, 0, 2)
            T, B, _ = out.shape
            h = final[0] if isinstance(final, tuple) else final
            loss = F.cross_entropy(head(out).reshape(T * B, 3), ys.reshape(T * B)) + \
                (h * h).mean()
            loss.backward()
            opt.step()
            return loss, nn.detach_state(final)    # c of (h, c) is still live
        return step, params
    lengths = np.array([6, 3, 5]) if with_lengths else None
    shape = (3, 6, 5) if batch_first else (6, 3, 5)
    run_both(setup, [(mt.tensor(rng.standard_normal(shape)), rng.integers(0, 3, (6, 3)),
                      lengths) for _ in range(4)])


def test_lengths_are_guarded_by_value():
    """nn.unroll builds masks from lengths with NumPy: new lengths must trace again."""
    def setup():
        model = models.GRU(3, 4)
        opt = mt.optim.SGD(model.parameters(), lr=0.1)

        def step(xs, lengths):
            opt.zero_grad()
            out, h = model(xs, lengths=lengths)
            loss = (out * out).sum()
            loss.backward()
            opt.step()
            return loss
        return step, list(model.parameters())
    xs = mt.tensor(rng.standard_normal((5, 2, 3)))
    calls = [(xs, np.array([5, 2])), (xs, np.array([5, 2])), (xs, np.array([3, 4])),
             (xs, np.array([3, 4])), (xs, np.array([5, 2]))]
    compiled = run_both(setup, calls)
    assert compiled.counts["traced"] == 2 and compiled.counts["replayed"] == 3


def test_integer_targets_are_read_from_the_argument():
    """Targets reach cross_entropy directly: bound to the argument, no retrace, and their
    check runs at every replay as in eager."""
    model = models.VanillaRNN(4, 5, 4)

    def step(xs, ys):
        model.zero_grad()
        loss, _ = model.loss(xs, ys)
        loss.backward()
        return loss
    compiled = mt.compile(step)
    for _ in range(3):
        xs, ys = _onehot(3, 2, 4)
        want = step(xs, ys).data
        g_want = model.Whh.grad.copy()
        got = compiled(xs, ys).data
        assert same(want, got) and same(g_want, model.Whh.grad)
    assert compiled.counts["traced"] == 1
    xs, ys = _onehot(3, 2, 4)
    ys[0, 0] = 9
    with pytest.raises(mt.ShapeError, match="out of range"):
        compiled(xs, ys)


def test_embedding_indices_checked_at_replay():
    emb = nn.Embedding(6, 3)
    head = nn.Linear(3, 6)

    def step(idx, ys):
        emb.zero_grad()
        head.zero_grad()
        loss = F.cross_entropy(head(emb(idx)), ys)
        loss.backward()
        return loss
    compiled = mt.compile(step)
    for _ in range(3):
        idx, ys = rng.integers(0, 6, 5), rng.integers(0, 6, 5)
        want = step(idx, ys).data
        gw = emb.weight.grad.copy()
        assert same(compiled(idx, ys), want) and same(emb.weight.grad, gw)
    assert compiled.counts["traced"] == 1
    with pytest.raises(mt.IndexOutOfRange):
        compiled(np.array([0, 1, 2, 3, -1]), ys)


def test_dropout_draws_again_in_the_same_order():
    def setup():
        model = models.LSTM(3, 6, num_layers=2, dropout=0.3)
        opt = mt.optim.SGD(model.parameters(), lr=0.1)
        drop = nn.Dropout(0.2)

        def step(xs):
            opt.zero_grad()
            out, _ = model(drop(xs))
            loss = (out * out).mean()
            loss.backward()
            opt.step()
            return loss
        return step, list(model.parameters())
    run_both(setup, [(mt.tensor(rng.standard_normal((4, 2, 3))),) for _ in range(4)])


def test_eval_mode_retraces():
    """A module's training flag is guarded: eval() traces again (no dropout)."""
    model = models.LSTM(3, 4, num_layers=2, dropout=0.5)

    def step(xs):
        out, _ = model(xs)
        return out.sum()
    compiled = mt.compile(step)
    xs = mt.tensor(rng.standard_normal((3, 2, 3)))
    with mt.no_grad():
        compiled(xs)
        model.eval()
        mt.manual_seed(5)
        a = compiled(xs)
        b = step(xs)
    assert same(a, b) and compiled.counts["traced"] == 2


@pytest.mark.parametrize("read", [lambda t: t.item(), lambda t: bool(t > 0),
                                  lambda t: t.numpy().copy(), lambda t: t.tolist(),
                                  lambda t: np.asarray(t)])
def test_reading_a_value_falls_back_with_one_warning(read):
    w = mt.tensor(rng.standard_normal(3), requires_grad=True)

    def step(x):
        w.grad = None
        loss = (x * w).sum()
        if read(loss.sum()) is None:
            loss = loss * 2
        loss.backward()
        return loss
    compiled = mt.compile(step)
    x = mt.tensor(rng.standard_normal(3))
    with pytest.warns(mt.CompileWarning, match="reads a tensor's value"):
        out = compiled(x)
    g = w.grad.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out2 = compiled(x)                  # eager from now on, no second warning
    assert same(out, out2) and same(g, w.grad) and compiled.counts["replayed"] == 0


def test_fallbacks_for_what_a_plan_cannot_hold():
    w = mt.tensor(rng.standard_normal(3), requires_grad=True)

    def hook_step(x):
        y = x * w
        y.register_hook(lambda g: g * 2)
        y.sum().backward()
        return w.grad

    def sgd_by_hand(x):
        w.grad = None
        (x * w).sum().backward()
        w.data -= 0.1 * w.grad               # raw NumPy write: not recorded
        return None

    def live_graph(x):
        return (x * w).sum()

    def random_number(x):
        return (x * float(mt.generator().random())).sum()

    for fn, why in [(hook_step, "hook"), (sgd_by_hand, "writes into"),
                    (live_graph, "still live"), (random_number, "draws a number")]:
        compiled = mt.compile(fn)
        x = mt.tensor(rng.standard_normal(3))
        with pytest.warns(mt.CompileWarning, match=why):
            compiled(x)
        compiled(x)
        assert compiled.counts["replayed"] == 0, fn


def test_guards_retrace_on_shape_dtype_grad_mode_and_parameters():
    model = models.VanillaRNN(3, 4, 3)

    def step(xs):
        out, _ = model(xs)
        return out.sum()
    compiled = mt.compile(step)
    with mt.no_grad():
        compiled(rng.standard_normal((2, 1, 3)))
        compiled(rng.standard_normal((2, 1, 3)))
        compiled(rng.standard_normal((4, 1, 3)))             # shape
        model.to(np.float32)                                 # dtype (a float32 input to a
        compiled(rng.standard_normal((4, 1, 3)).astype(np.float32))   # float64 model raises)
        model.to(np.float64)
    assert compiled.counts == {"replayed": 1, "traced": 3, "eager": 0}
    model.Why = nn.Parameter(np.zeros((3, 4)))               # a new parameter object
    with mt.no_grad():
        out = compiled(rng.standard_normal((2, 1, 3)))
    assert compiled.counts["traced"] == 4
    assert same(out, step(rng.standard_normal((2, 1, 3))) * 0 + out)


def test_zero_grad_of_a_guarded_module_clears_the_parameters_it_has_now():
    """model.zero_grad() replays as a fixed list of the parameters (the module guards hold
    them); a parameter swapped in retraces, and its .grad is cleared, not accumulated."""
    model = nn.Linear(3, 2)

    def step(x):
        model.zero_grad()
        loss = model(x).sum()
        loss.backward()
        return loss
    compiled = mt.compile(step)
    x = mt.tensor(rng.standard_normal((4, 3)))
    for _ in range(3):
        compiled(x)
    np.testing.assert_array_equal(model.weight.grad, np.tile(x.data.sum(0), (2, 1)))
    model.weight = nn.Parameter(np.ones((2, 3)))
    model.weight.grad = np.full((2, 3), 100.0)
    compiled(x)
    compiled(x)
    assert compiled.counts == {"replayed": 3, "traced": 2, "eager": 0}
    np.testing.assert_array_equal(model.weight.grad, np.tile(x.data.sum(0), (2, 1)))


def test_bounded_cache_and_retrace_limit():
    w = mt.tensor(rng.standard_normal(1))

    def f(x):
        return x * w
    compiled = mt.compile(f, cache_size=2)
    for n in range(1, 6):
        compiled(mt.tensor(np.ones(n)))
    assert sum(len(p) for p in compiled.plans.values()) == 2

    def g(x, m):                     # m reaches no op (NumPy turns it into a mask): by value
        return x * mt.tensor((m > 1).astype(float))
    compiled = mt.compile(g, cache_size=2)
    for k in range(2):               # two values alternating: two plans, both replayed
        for m in (np.array([0, 2]), np.array([2, 0])):
            assert same(compiled(mt.tensor(np.ones(2)), m), g(mt.tensor(np.ones(2)), m))
    assert compiled.counts["traced"] == 2 and compiled.counts["replayed"] == 2
    with pytest.warns(mt.CompileWarning, match="traced 2 times"):
        for k in range(5):           # a new value every call: eager after the limit
            m = np.array([k, 1.5 * k])
            assert same(compiled(mt.tensor(np.ones(2)), m), g(mt.tensor(np.ones(2)), m))


def test_parameter_data_replaced_between_calls_is_read_again():
    """A parameter is bound by identity and its .data read at every call (load_state_dict,
    an optimizer outside fn, or a new array assigned to .data all show)."""
    lin = nn.Linear(3, 2)

    def f(x):
        return lin(x)
    compiled = mt.compile(f)
    x = mt.tensor(rng.standard_normal((4, 3)))
    with mt.no_grad():
        compiled(x)
        lin.weight.data = lin.weight.data * 3
        lin.bias.data += 1
        assert same(compiled(x), f(x))
    assert compiled.counts["replayed"] == 1


def test_eager_entry_points_are_restored_after_a_trace():
    from microtensor.tensor import Tensor
    before = {k: v for k, v in vars(Tensor).items()}
    w = mt.tensor(np.ones(2), requires_grad=True)
    compiled = mt.compile(lambda x: (x * w).sum().backward())
    compiled(mt.tensor(np.ones(2)))
    assert {k: v for k, v in vars(Tensor).items()} == before
    import sys
    from microtensor.autograd import run_backward
    tm = sys.modules["microtensor.tensor"]
    assert tm.run_backward is run_backward and type(mt.generator()).__name__ == "Generator"


def test_chain_of_2001_ops_bitwise():
    import sys
    import os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
    import baselines
    h0, w, b = rng.standard_normal(8) * 0.5, rng.standard_normal(8) * 0.5, \
        rng.standard_normal(8) * 0.1
    runner = baselines.chain_microtensor(h0, w, b, 667)
    loss_e, grads_e = runner.read(runner.step())
    grads_e = {k: v.copy() for k, v in grads_e.items()}
    compiled = mt.compile(runner.step)
    for _ in range(2):
        loss_c, grads_c = runner.read(compiled())
        assert loss_c == loss_e and all(same(grads_e[k], grads_c[k]) for k in grads_e)
    assert compiled.counts["replayed"] == 1
