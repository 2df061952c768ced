"""mt.nn.RecurrentCell / unroll / Recurrent: custom cells, masking, errors, name scopes, TBPTT."""
import re

import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor.nn import Parameter, Recurrent, RecurrentCell, unroll


class MinimalGatedUnit(RecurrentCell):
    """The minimal gated unit (Zhou et al., 2016), one forget gate f:
    h̃ = tanh(x W_hᵀ + (f ⊙ h) U_hᵀ + b_h),  h' = (1 − f) ⊙ h + f ⊙ h̃,
    with f = σ(x W_fᵀ + h U_fᵀ + b_f). Written as a user would, on the public API only."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        H, k, rng = hidden_size, 1 / np.sqrt(hidden_size), mt.generator()
        self.W = Parameter(rng.uniform(-k, k, (2 * H, input_size)))     # [W_f; W_h]
        self.b = Parameter(np.zeros(2 * H))
        self.U_f = Parameter(rng.uniform(-k, k, (H, H)))
        self.U_h = Parameter(rng.uniform(-k, k, (H, H)))

    def precompute(self, xs):
        return F.linear(xs, self.W, self.b)

    def forward(self, xp, h):
        x_f, x_h = mt.split(xp, 2, axis=1)
        f = (x_f + F.linear(h, self.U_f)).sigmoid()
        h_new = (x_h + F.linear(f * h, self.U_h)).tanh()
        return h + f * (h_new - h)


class PeepholeLSTM(RecurrentCell):
    """An LSTM whose gates also see the cell (Gers & Schmidhuber, 2000). Its state is
    (c, h), so output_index = 1 says the output is h."""
    output_index = 1

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        rng, H = mt.generator(), hidden_size
        self.W = Parameter(rng.normal(0, 0.4, (4 * H, input_size + H)))   # acts on [x, h]
        self.b = Parameter(np.zeros(4 * H))
        self.peep = Parameter(rng.normal(0, 0.4, (3, H)))

    def initial_state(self, batch_size, dtype=np.float64):
        zeros = mt.zeros(batch_size, self.hidden_size, dtype=dtype)
        return zeros, zeros

    def forward(self, x, state):
        c, h = state
        i, f, g, o = mt.split(F.linear(mt.concat([x, h], axis=1), self.W, self.b), 4, axis=1)
        c = (f + self.peep[1] * c).sigmoid() * c + (i + self.peep[0] * c).sigmoid() * g.tanh()
        return c, (o + self.peep[2] * c).sigmoid() * c.tanh()


CELLS = [MinimalGatedUnit, PeepholeLSTM]


def parts(state):
    return state if isinstance(state, tuple) else (state,)


def max_rel(a, b):
    scale = max(np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale) if a.size else 0.0


def random_state(cell, shape, rng):
    n = len(parts(cell.initial_state(1)))
    state = tuple(mt.tensor(rng.standard_normal(shape) * 0.5, requires_grad=True)
                  for _ in range(n))
    return state if n > 1 else state[0]


# ---- custom cells ----------------------------------------------------------------------
@pytest.mark.parametrize("cell_cls", CELLS)
def test_custom_cell_gradcheck_stacked_bidirectional_with_lengths(cell_cls):
    rng = np.random.default_rng(0)
    mt.manual_seed(0)
    rnn = Recurrent(cell_cls(2, 2), num_layers=2, bidirectional=True)
    xs = mt.tensor(rng.standard_normal((3, 3, 2)), requires_grad=True)
    state = random_state(rnn.cells[0], (4, 3, 2), rng)

    def f(xs, *inputs):
        out, fin = rnn(xs, state, lengths=np.array([2, 3, 1]))
        return mt.concat([out.reshape(-1), *(s.reshape(-1) for s in parts(fin))])

    assert mt.gradcheck(f, [xs, *parts(state), *rnn.parameters()])


@pytest.mark.parametrize("cell_cls", CELLS)
def test_custom_cell_trains_on_a_memory_task(cell_cls):
    """Many-to-one: the class is the first of T random bits, so the cell must remember it."""
    rng = np.random.default_rng(1)
    mt.manual_seed(1)
    T, B, H = 6, 32, 8
    rnn = Recurrent(cell_cls(1, H))
    head = mt.nn.Linear(H, 2)
    opt = mt.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.05)
    losses = []
    for _ in range(60):
        bits = rng.integers(0, 2, (T, B))
        out, _ = rnn(mt.tensor(bits[..., None] * 2.0 - 1))
        loss = F.cross_entropy(head(out[T - 1]), bits[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[:5]) > 0.6 and np.mean(losses[-5:]) < 0.2


def test_default_make_and_initial_state():
    cell = MinimalGatedUnit(3, 4)
    other = cell.make(5)
    assert type(other) is MinimalGatedUnit and other.W.shape == (8, 5)
    assert cell.initial_state(2).shape == (2, 4)
    assert repr(cell) == "MinimalGatedUnit(3, 4)"
    out, h = unroll(cell, np.zeros((2, 3, 3)))               # ndarray input is accepted
    assert out.shape == (2, 3, 4) and h.shape == (3, 4)


# ---- masking ---------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell_cls", CELLS)
def test_padded_batch_equals_each_sequence_alone(cell_cls, bidirectional):
    rng = np.random.default_rng(2)
    mt.manual_seed(2)
    T, B, I, H, L = 5, 4, 3, 4, 2
    D = 2 if bidirectional else 1
    rnn = Recurrent(cell_cls(I, H), num_layers=L, bidirectional=bidirectional)
    lengths = np.array([3, 5, 1, 4])
    xs_np = rng.standard_normal((T, B, I))
    s0_np = [rng.standard_normal((L * D, B, H)) for _ in parts(rnn.cells[0].initial_state(1))]
    w_out = rng.standard_normal((T, B, D * H))
    w_fin = rng.standard_normal((L * D, B, H))

    def run(xs, s0, w_out, w_fin, lengths=None):
        xs = mt.tensor(xs, requires_grad=True)
        s0 = tuple(mt.tensor(s, requires_grad=True) for s in s0)
        out, fin = rnn(xs, s0 if len(s0) > 1 else s0[0], lengths=lengths)
        loss = (out * w_out).sum() + sum((f * w_fin).sum() for f in parts(fin))
        loss.backward()
        return xs, s0, out, fin

    rnn.zero_grad()
    xs, s0, out, fin = run(xs_np, s0_np, w_out, w_fin, lengths)
    batch_grads = [p.grad.copy() for p in rnn.parameters()]
    rnn.zero_grad()
    for b, n in enumerate(lengths):                      # gradients accumulate over b
        xs_b, s0_b, out_b, fin_b = run(xs_np[:n, b:b + 1], [s[:, b:b + 1] for s in s0_np],
                                       w_out[:n, b:b + 1], w_fin[:, b:b + 1])
        assert max_rel(out.data[:n, b], out_b.data[:, 0]) < 1e-12
        assert np.all(out.data[n:, b] == 0)
        for f, f_b in zip(parts(fin), parts(fin_b)):    # the state at its own last step
            assert max_rel(f.data[:, b], f_b.data[:, 0]) < 1e-12
        assert max_rel(xs.grad[:n, b], xs_b.grad[:, 0]) < 1e-12
        assert np.all(xs.grad[n:, b] == 0)               # padding gets exactly zero gradient
        for s, s_b in zip(s0, s0_b):
            assert max_rel(s.grad[:, b], s_b.grad[:, 0]) < 1e-12
    for g, p in zip(batch_grads, rnn.parameters()):
        assert max_rel(g, p.grad) < 1e-12


def test_full_lengths_change_nothing():
    rng = np.random.default_rng(3)
    rnn = Recurrent(PeepholeLSTM(2, 3), bidirectional=True)
    xs = mt.tensor(rng.standard_normal((4, 2, 2)))
    a, (c, h) = rnn(xs)
    b, (c2, h2) = rnn(xs, lengths=[4, 4])
    assert np.array_equal(a.data, b.data) and np.array_equal(h.data, h2.data)


# ---- errors ----------------------------------------------------------------------------
class GrowingCell(RecurrentCell):
    """Returns a state one column too wide on its `bad_step`-th call."""
    bad_step = None

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.calls = 0

    def forward(self, x, h):
        self.calls += 1
        if self.calls - 1 == self.bad_step:
            return mt.concat([h, h[:, :1]], axis=1)
        return h + x.sum(axis=1, keepdims=True)


class ForgetfulPeephole(PeepholeLSTM):
    def forward(self, x, state):
        return super().forward(x, state)[1]


def growing(bad_step):
    cell = GrowingCell(3, 3)
    cell.bad_step = bad_step
    return cell


def growing_in_layer1(rnn):
    rnn.cells[1].bad_step = 2
    return rnn(mt.zeros(4, 2, 3))


@pytest.mark.parametrize("call, match", [
    (lambda: unroll(MinimalGatedUnit(3, 4), mt.zeros(5, 3)),
     r"MinimalGatedUnit: expected xs of shape \(T, B, I\) .*got \(5, 3\)"),
    (lambda: unroll(MinimalGatedUnit(3, 4), mt.zeros(0, 2, 3)),
     r"T >= 1 .*got \(0, 2, 3\)"),
    (lambda: Recurrent(MinimalGatedUnit(3, 4))(mt.zeros(5, 2, 7)),
     r"MinimalGatedUnit: xs has 7 features, expected I = 3 .*\(5, 2, 3\)"),
    (lambda: unroll(MinimalGatedUnit(3, 4), mt.zeros(5, 2, 3), mt.zeros(2, 5)),
     r"MinimalGatedUnit: the initial state has shape \(2, 5\); expected \(B, H\) = \(2, 4\)"),
    (lambda: unroll(MinimalGatedUnit(3, 4), mt.zeros(5, 2, 3), mt.zeros(3, 4)),
     r"has shape \(3, 4\); expected \(B, H\) = \(2, 4\)"),
    (lambda: unroll(PeepholeLSTM(3, 4), mt.zeros(5, 2, 3), mt.zeros(2, 4)),
     r"PeepholeLSTM: the initial state has shape \(2, 4\); .*a tuple of shapes "
     r"\[\(2, 4\), \(2, 4\)\]"),
    (lambda: Recurrent(PeepholeLSTM(3, 4), num_layers=2)(
        mt.zeros(5, 2, 3), (mt.zeros(2, 2, 4), mt.zeros(2, 2, 5))),
     r"Recurrent\(PeepholeLSTM\): the initial state must be a tuple of 2 tensors of shape "
     r"\(L·D, B, H\) = \(2, 2, 4\); got \[\(2, 2, 4\), \(2, 2, 5\)\]"),
    (lambda: Recurrent(MinimalGatedUnit(3, 4), bidirectional=True)(
        mt.zeros(5, 2, 3), mt.zeros(1, 2, 4)),
     r"Recurrent\(MinimalGatedUnit\): .*\(L·D, B, H\) = \(2, 2, 4\); got \(1, 2, 4\)"),
    (lambda: Recurrent(MinimalGatedUnit(3, 4))(mt.zeros(5, 2, 3), lengths=[6, 2]),
     r"MinimalGatedUnit: every length must be in 1..T = 1..5; got min 2, max 6"),
    (lambda: Recurrent(MinimalGatedUnit(3, 4))(mt.zeros(5, 2, 3), lengths=[0, 2]),
     r"in 1..T = 1..5; got min 0"),
    (lambda: unroll(MinimalGatedUnit(3, 4), mt.zeros(5, 2, 3), lengths=[-1, 2]),
     r"in 1..T = 1..5; got min -1"),
    (lambda: Recurrent(MinimalGatedUnit(3, 4))(mt.zeros(5, 2, 3), lengths=[1, 2, 3]),
     r"MinimalGatedUnit: lengths must be 2 integers .*got shape \(3,\)"),
    (lambda: Recurrent(MinimalGatedUnit(3, 4))(mt.zeros(5, 2, 3), lengths=[1.0, 2.0]),
     r"lengths must be 2 integers .*dtype float64"),
    (lambda: unroll(growing(2), mt.zeros(4, 2, 3)),
     r"GrowingCell.forward returned a state of shapes \[\(2, 4\)\] at time step t=2; expected the "
     r"same shapes as the state it was given, \[\(2, 3\)\]"),
    (lambda: growing_in_layer1(Recurrent(GrowingCell(3, 3), num_layers=2)),
     r"GrowingCell \(layer1\).forward returned a state of shapes \[\(2, 4\)\] at time step "
     r"t=2"),
    (lambda: unroll(ForgetfulPeephole(3, 4), mt.zeros(4, 2, 3)),
     r"ForgetfulPeephole.forward returned a state of shapes \[\(2, 4\)\] at time step t=0; "
     r"expected .* \[\(2, 4\), \(2, 4\)\]"),
])
def test_bad_input_errors(call, match):
    with pytest.raises(mt.ShapeError, match=match):
        call()


def test_bad_state_type():
    with pytest.raises(TypeError, match=r"MinimalGatedUnit: the initial state must be a "
                                        r"Tensor or a tuple of Tensors, got ndarray"):
        unroll(MinimalGatedUnit(3, 4), mt.zeros(5, 2, 3), np.zeros((2, 4)))


def test_recurrent_arguments():
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        Recurrent(MinimalGatedUnit(3, 4), num_layers=0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        Recurrent(MinimalGatedUnit(3, 4), dropout=1.0)
    with pytest.raises(NotImplementedError, match="RecurrentCell must define forward"):
        unroll(RecurrentCell(3, 4), mt.zeros(2, 1, 3))


# ---- name scopes -----------------------------------------------------------------------
def graph_scopes(root):
    """scope -> number of ops made in it, over the graph that made root."""
    counts, seen, stack = {}, set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen or t.op is None:
            continue
        seen.add(id(t))
        counts[t.scope] = counts.get(t.scope, 0) + 1
        stack.extend(t.parents)
    return counts


def test_each_step_has_its_scope():
    cell = MinimalGatedUnit(2, 3)
    out, h = unroll(cell, mt.zeros(4, 2, 2))
    counts = graph_scopes(mt.stack([out.sum(), h.sum()]))
    steps = {s: n for s, n in counts.items() if s is not None}
    assert sorted(steps) == [f"t={t}" for t in range(4)]
    assert len(set(steps.values())) == 1               # every step made the same ops


def test_stacked_bidirectional_scopes_nest():
    rnn = Recurrent(MinimalGatedUnit(2, 3), num_layers=2, bidirectional=True)
    with mt.name_scope("encoder"):
        out, h = rnn(mt.zeros(3, 2, 2), lengths=[3, 2])
    counts = graph_scopes(mt.stack([out.sum(), h.sum()]))
    steps = {s for s in counts if s and re.search(r"t=\d+$", s)}
    want = {f"encoder/layer{k}{d}/t={t}" for k in range(2) for d in ("", "/reverse")
            for t in range(3)}
    assert steps == want
    # the input projection of each layer and direction is marked with it, outside any step
    assert {"encoder/layer0", "encoder/layer1/reverse"} <= set(counts)
    assert set(counts) - want - {None} <= {"encoder", "encoder/layer0", "encoder/layer0/reverse",
                                  "encoder/layer1", "encoder/layer1/reverse"}
    assert mt.autograd.current_scope() is None


def test_scope_is_restored_after_an_error():
    with pytest.raises(mt.ShapeError):
        unroll(growing(1), mt.zeros(4, 2, 3))
    assert mt.autograd.current_scope() is None


# ---- truncated BPTT with a tuple state -------------------------------------------------
def test_truncated_bptt_tuple_state():
    rng = np.random.default_rng(4)
    mt.manual_seed(4)
    rnn = Recurrent(PeepholeLSTM(2, 3))
    xs = rng.standard_normal((8, 2, 2))
    w = rng.standard_normal((8, 2, 3))

    def step(x, y, state):
        out, fin = rnn(mt.tensor(x), state)
        return (out * y).sum(), fin

    rnn.zero_grad()
    losses, (c, h) = mt.nn.truncated_bptt(step, xs, w, chunk=8)
    full = [p.grad.copy() for p in rnn.parameters()]
    rnn.zero_grad()
    chunked, (c2, h2) = mt.nn.truncated_bptt(step, xs, w, chunk=3)
    assert len(chunked) == 3 and abs(sum(chunked) - losses[0]) < 1e-12 * abs(losses[0]) + 1e-12
    assert np.allclose(h.data, h2.data, rtol=0, atol=1e-14) and not h2.requires_grad
    assert any(not np.allclose(a, p.grad) for a, p in zip(full, rnn.parameters()))
