"""mt.nn.RecurrentCell / unroll / Recurrent: custom cells, replication, state parts, masking,
batch_first, dtypes, errors, time-step records, TBPTT."""
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
    (c, h), so output_index = 1 says the output is h; the zero initial state follows."""
    state_names = ("c", "h")
    output_index = 1

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        rng, H = mt.generator(), hidden_size
        self.W = Parameter(rng.normal(0, 0.4, (4 * H, input_size + H)))   # acts on [x, h]
        self.b = Parameter(np.zeros(4 * H))
        self.peep = Parameter(rng.normal(0, 0.4, (3, H)))

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
    assert other.W is not cell.W and not np.array_equal(other.U_f.data, cell.U_f.data)
    assert cell.initial_state(2).shape == (2, 4)
    assert repr(cell) == "MinimalGatedUnit(3, 4)"
    out, h = unroll(cell, np.zeros((2, 3, 3)))               # ndarray input is accepted
    assert out.shape == (2, 3, 4) and h.shape == (3, 4)


# ---- replication: every layer and direction keeps the cell's configuration ------------
class LeakyCell(RecurrentCell):
    """h' = (1 − leak)·h + leak·squash(x W + h U), with a positional, a keyword and two
    keyword-only extra arguments, all of which change what a step computes."""

    def __init__(self, input_size, hidden_size, leak=0.5, *, squash="tanh", scale=1.0):
        super().__init__(input_size, hidden_size)
        self.leak, self.squash, self.scale = leak, squash, scale
        rng = mt.generator()
        self.W = Parameter(rng.normal(0, 0.5, (hidden_size, input_size)))
        self.U = Parameter(rng.normal(0, 0.5, (hidden_size, hidden_size)))

    def forward(self, x, h):
        z = (F.linear(x, self.W) + F.linear(h, self.U)) * self.scale
        z = z.tanh() if self.squash == "tanh" else z.sigmoid()
        return h + self.leak * (z - h)


@pytest.mark.parametrize("build", [
    lambda: LeakyCell(2, 3, 0.05, squash="sigmoid", scale=2.0),
    lambda: LeakyCell(2, 3, leak=0.05, squash="sigmoid", scale=2.0),
    lambda: LeakyCell(input_size=2, hidden_size=3, scale=2.0, squash="sigmoid", leak=0.05),
], ids=["positional", "keyword", "all-keyword"])
def test_recurrent_replicates_the_whole_configuration(build):
    mt.manual_seed(0)
    rnn = Recurrent(build(), num_layers=2, bidirectional=True)
    assert [(c.input_size, c.leak, c.squash, c.scale) for c in rnn.cells] == \
        [(2, 0.05, "sigmoid", 2.0), (2, 0.05, "sigmoid", 2.0),
         (6, 0.05, "sigmoid", 2.0), (6, 0.05, "sigmoid", 2.0)]
    assert len({id(c.W) for c in rnn.cells}) == 4           # fresh parameters for each
    # each copy computes with that configuration: the same as a cell built by hand
    xs = mt.tensor(np.random.default_rng(0).standard_normal((4, 2, 6)))
    twin = LeakyCell(6, 3, 0.05, squash="sigmoid", scale=2.0)
    twin.load_state_dict(rnn.cells[3].state_dict())
    got, want = unroll(rnn.cells[3], xs)[0].data, unroll(twin, xs)[0].data
    assert np.array_equal(got, want)
    default = LeakyCell(6, 3)
    default.load_state_dict(rnn.cells[3].state_dict())
    assert not np.allclose(unroll(default, xs)[0].data, want)


def test_make_finds_the_input_size_by_name_or_first_position():
    class Named(RecurrentCell):
        def __init__(self, hidden_size, input_size, k):
            super().__init__(input_size, hidden_size)
            self.k = k

    class Unnamed(RecurrentCell):
        def __init__(self, n_in, n_hidden, *, k):
            super().__init__(n_in, n_hidden)
            self.k = k

    class Subclass(Unnamed):                       # inherits the constructor
        pass

    a = Named(4, 3, k=7).make(9)
    assert (a.input_size, a.hidden_size, a.k) == (9, 4, 7)
    for cls in (Unnamed, Subclass):
        b = cls(3, 4, k=7).make(9)
        assert type(b) is cls and (b.input_size, b.hidden_size, b.k) == (9, 4, 7)

    class Variadic(RecurrentCell):
        def __init__(self, *sizes):
            super().__init__(*sizes)

    with pytest.raises(TypeError, match=r"Variadic.make: cannot tell which constructor "
                                        r"argument is the input size"):
        Variadic(3, 4).make(5)


# ---- state parts ----------------------------------------------------------------------
def test_state_names_give_the_initial_state_and_its_dtype():
    cell = PeepholeLSTM(3, 4)
    c, h = cell.initial_state(2, dtype=np.float32)
    assert c.shape == h.shape == (2, 4) and c.dtype == np.float32 and c is not h
    assert not c.data.any() and not h.data.any()
    out, (c, h) = unroll(cell, mt.zeros(5, 2, 3))
    assert out.shape == (5, 2, 4) and np.array_equal(out.data[-1], h.data)   # output is h


@pytest.mark.parametrize("names, index, match", [
    ("h", 0, r"state_names must be a non-empty tuple of distinct strings"),
    (("h", "h"), 0, r"distinct"),
    ((), 0, r"non-empty"),
    (("h", "c"), 2, r"output_index must index state_names \('h', 'c'\); got 2"),
    (("h",), 1, r"got 1 \(a tuple state declares its parts: state_names"),
])
def test_bad_state_declarations_fail_when_the_class_is_made(names, index, match):
    with pytest.raises(TypeError, match=match):
        type("Bad", (RecurrentCell,), {"state_names": names, "output_index": index})


class OldStyleLSTM(RecurrentCell):
    """A tuple state the way cells were written before state_names: initial_state only."""
    output_index = 1

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.W = Parameter(mt.generator().normal(0, 0.4, (4 * hidden_size, input_size + hidden_size)))

    def forward(self, x, state):
        c, h = state
        i, f, g, o = mt.split(F.linear(mt.concat([x, h], axis=1), self.W), 4, axis=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return c, o.sigmoid() * c.tanh()

    def initial_state(self, batch_size, dtype=np.float64):
        return mt.zeros(batch_size, 4, dtype=dtype), mt.zeros(batch_size, 4, dtype=dtype)


class DeclaredOne(MinimalGatedUnit):
    state_names = ("h",)

    def initial_state(self, batch_size, dtype=np.float64):
        return mt.zeros(batch_size, 4, dtype=dtype), mt.zeros(batch_size, 4, dtype=dtype)


def test_initial_state_must_match_declared_state_names_and_gives_them_otherwise():
    cell = OldStyleLSTM(3, 4)                     # undeclared: the parts initial_state returns
    out, (c, h) = unroll(cell, mt.zeros(2, 2, 3))
    assert out.shape == (2, 2, 4) and h.scope.states.names == ("s0", "s1")
    with pytest.raises(mt.ShapeError, match=r"OldStyleLSTM: the initial state has shape "
                                            r"\(2, 4\); expected a tuple \(s0, s1\)"):
        unroll(cell, mt.zeros(2, 2, 3), mt.zeros(2, 4))
    with pytest.raises(TypeError, match=r"DeclaredOne.initial_state returned a tuple of 2 "
                                        r"tensors, but state_names is \('h',\); declare .* "
                                        r"state_names = \('h', 'c'\)"):
        unroll(DeclaredOne(3, 4), mt.zeros(2, 2, 3))


class TupleForSingle(MinimalGatedUnit):
    def forward(self, xp, h):
        h = super().forward(xp, h)
        return h, h


def test_a_step_returning_another_structure_names_the_fix():
    with pytest.raises(mt.ShapeError, match=r"ForgetfulPeephole.forward returned a Tensor at "
                                            r"time step t=0; its state is a tuple \(c, h\) of "
                                            r"shapes \[\(2, 4\), \(2, 4\)\] \(state_names = "
                                            r"\('c', 'h'\)\): return \(c, h\)"):
        unroll(ForgetfulPeephole(3, 4), mt.zeros(4, 2, 3))
    with pytest.raises(mt.ShapeError, match=r"TupleForSingle.forward returned a tuple of 2 at "
                                            r"time step t=0; its state is one Tensor h of shape "
                                            r"\(2, 4\) .*declare state_names with 2 names"):
        unroll(TupleForSingle(3, 4), mt.zeros(4, 2, 3))


def test_unroll_records_each_steps_state():
    cell = PeepholeLSTM(2, 3)
    xs = mt.tensor(np.random.default_rng(0).standard_normal((4, 2, 2)))
    out, (c, h) = unroll(cell, xs, lengths=[4, 2])
    step = out.parents[-1].scope                    # the last step's output: made in t=3
    assert isinstance(step, mt.Step) and step.t == 3 and step.path == ""
    rec = step.states
    assert rec.names == ("c", "h") and rec.output_index == 1
    assert rec.handed[-2:] == [c.seq, h.seq] and len(rec.handed) == 4 * 2


# ---- batch_first ------------------------------------------------------------------------
@pytest.mark.parametrize("cell_cls", CELLS)
def test_unroll_batch_first_equals_time_major(cell_cls):
    rng = np.random.default_rng(5)
    mt.manual_seed(5)
    cell = cell_cls(3, 4)
    xs = rng.standard_normal((6, 2, 3))
    runs = []
    for batch_first in (False, True):
        x = mt.tensor(xs.transpose(1, 0, 2) if batch_first else xs, requires_grad=True)
        out, fin = unroll(cell, x, lengths=[6, 3], batch_first=batch_first)
        cell.zero_grad()
        (out.sum() + sum(p.sum() for p in parts(fin))).backward()
        runs.append((out.data, [p.data for p in parts(fin)], x.grad,
                     [p.grad.copy() for p in cell.parameters()]))
    (o1, f1, g1, p1), (o2, f2, g2, p2) = runs
    assert o2.shape == (2, 6, 4) and np.array_equal(o1, o2.transpose(1, 0, 2))
    assert all(np.array_equal(a, b) for a, b in zip(f1, f2))       # states keep their layout
    assert np.array_equal(g1, g2.transpose(1, 0, 2))
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2))


def test_recurrent_batch_first_stacked_bidirectional():
    rng = np.random.default_rng(6)
    mt.manual_seed(6)
    tm = Recurrent(PeepholeLSTM(3, 4), num_layers=2, bidirectional=True)
    bf = Recurrent(PeepholeLSTM(3, 4), num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(tm.state_dict())
    xs = rng.standard_normal((5, 3, 3))
    state = tuple(mt.tensor(rng.standard_normal((4, 3, 4))) for _ in range(2))
    a, (c1, h1) = tm(mt.tensor(xs), state, lengths=[5, 2, 4])
    b, (c2, h2) = bf(mt.tensor(xs.transpose(1, 0, 2)), state, lengths=[5, 2, 4])
    assert b.shape == (3, 5, 8) and np.array_equal(a.data, b.data.transpose(1, 0, 2))
    assert np.array_equal(c1.data, c2.data) and np.array_equal(h1.data, h2.data)
    assert "batch_first=True" in repr(bf)
    with pytest.raises(mt.ShapeError, match=r"expected xs of shape \(B, T, I\)"):
        bf(mt.zeros(3, 5))


# ---- dtypes ------------------------------------------------------------------------------
def test_a_float_input_of_another_dtype_is_a_clear_error():
    cell = MinimalGatedUnit(3, 4).to(np.float32)
    with pytest.raises(mt.DTypeError, match=r"MinimalGatedUnit: xs is float64 but the "
                                            r"parameters are float32; cast the input "
                                            r"\(xs.astype\(np.float32\).*model.to\(np.float64\)"):
        unroll(cell, mt.zeros(2, 2, 3))
    with pytest.raises(mt.DTypeError, match=r"the initial state is float64 but the "
                                            r"parameters are float32"):
        unroll(cell, mt.zeros(2, 2, 3, dtype=np.float32), mt.zeros(2, 4))
    with pytest.raises(mt.DTypeError, match=r"PeepholeLSTM \(layer0\): xs is float32 but the "
                                            r"parameters are float64"):
        Recurrent(PeepholeLSTM(3, 4), num_layers=2)(mt.zeros(2, 2, 3, dtype=np.float32))
    out, h = unroll(cell, mt.zeros(2, 2, 3, dtype=np.float32))
    assert out.dtype == h.dtype == np.float32


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
     r"MinimalGatedUnit: the initial state has shape \(2, 5\); expected a Tensor h of shape "
     r"\(B, H\) = \(2, 4\)"),
    (lambda: unroll(MinimalGatedUnit(3, 4), mt.zeros(5, 2, 3), mt.zeros(3, 4)),
     r"has shape \(3, 4\); expected a Tensor h of shape \(B, H\) = \(2, 4\)"),
    (lambda: unroll(PeepholeLSTM(3, 4), mt.zeros(5, 2, 3), mt.zeros(2, 4)),
     r"PeepholeLSTM: the initial state has shape \(2, 4\); expected a tuple \(c, h\) of 2 "
     r"Tensors, each \(B, H\) = \(2, 4\) \(shapes \[\(2, 4\), \(2, 4\)\]"),
    (lambda: Recurrent(PeepholeLSTM(3, 4), num_layers=2)(
        mt.zeros(5, 2, 3), (mt.zeros(2, 2, 4), mt.zeros(2, 2, 5))),
     r"Recurrent\(PeepholeLSTM\): the initial state must be a tuple \(c, h\) of 2 tensors of "
     r"shape "
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
])
def test_bad_input_errors(call, match):
    with pytest.raises(mt.ShapeError, match=match):
        call()


def test_bad_state_type():
    with pytest.raises(TypeError, match=r"MinimalGatedUnit: the initial state must be a "
                                        r"Tensor h of shape \(B, H\) = \(2, 4\); got a ndarray"):
        unroll(MinimalGatedUnit(3, 4), mt.zeros(5, 2, 3), np.zeros((2, 4)))


def test_recurrent_arguments():
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        Recurrent(MinimalGatedUnit(3, 4), num_layers=0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        Recurrent(MinimalGatedUnit(3, 4), dropout=1.0)
    with pytest.raises(NotImplementedError, match="RecurrentCell must define forward"):
        unroll(RecurrentCell(3, 4), mt.zeros(2, 1, 3))


# ---- time-step records ------------------------------------------------------------------
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


def test_each_step_is_a_step_record():
    cell = MinimalGatedUnit(2, 3)
    out, h = unroll(cell, mt.zeros(4, 2, 2))
    counts = graph_scopes(mt.stack([out.sum(), h.sum()]))
    steps = {s: n for s, n in counts.items() if isinstance(s, mt.Step)}
    assert sorted((s.path, s.t, s.inner) for s in steps) == [("", t, "") for t in range(4)]
    assert sorted(str(s) for s in steps) == [f"t={t}" for t in range(4)]
    assert len(set(steps.values())) == 1               # every step made the same ops
    assert set(counts) - set(steps) == {None}          # precompute and stack: no scope


def test_stacked_bidirectional_records_nest():
    rnn = Recurrent(MinimalGatedUnit(2, 3), num_layers=2, bidirectional=True)
    with mt.name_scope("encoder"):
        out, h = rnn(mt.zeros(3, 2, 2), lengths=[3, 2])
    counts = graph_scopes(mt.stack([out.sum(), h.sum()]))
    steps = {(s.path, s.t) for s in counts if isinstance(s, mt.Step)}
    paths = [f"encoder/layer{k}{d}" for k in range(2) for d in ("", "/reverse")]
    assert steps == {(p, t) for p in paths for t in range(3)}
    # the input projection of each layer and direction is marked with its path, outside any step
    plain = {s for s in counts if not isinstance(s, mt.Step)}
    assert set(paths) <= plain <= {None, "encoder", *paths}
    assert mt.mode.current_scope() is None


def test_an_op_error_inside_a_step_names_the_cell_and_the_step():
    class Broken(MinimalGatedUnit):
        def forward(self, xp, h):
            return h @ mt.ones(3, 4)                 # (2, 4) @ (3, 4): no match

    with pytest.raises(mt.ShapeError, match=r"^Broken, time step t=0: matmul: shapes "
                                            r"\(2, 4\) and \(3, 4\) are not aligned"):
        unroll(Broken(3, 4), mt.zeros(5, 2, 3))
    assert mt.mode.current_scope() is None


def test_scope_is_restored_after_an_error():
    with pytest.raises(mt.ShapeError):
        unroll(growing(1), mt.zeros(4, 2, 3))
    assert mt.mode.current_scope() is None


def test_a_users_own_loop_marks_its_steps():
    x = mt.tensor([1.0], requires_grad=True)
    h = x
    with mt.name_scope("decoder"):
        for t in range(3):
            with mt.time_step(t, state_names="h"):
                with mt.name_scope("gate"):
                    g = h.sigmoid()
                h = h * g
            assert mt.mode.current_scope() == "decoder"
    assert isinstance(h.scope, mt.Step) and (h.scope.path, h.scope.t) == ("decoder", 2)
    assert str(g.scope) == "decoder/t=2/gate" and g.scope.inner == "gate"
    assert h.scope.states.names == ("h",) and h.scope.states.handed is None
    with pytest.raises(KeyError):
        with mt.time_step(5):
            raise KeyError
    assert mt.mode.current_scope() is None
    with pytest.raises(TypeError, match="time_step: t must be an int"):
        mt.time_step(1.0)


def test_time_steps_marks_each_iteration_and_restores_the_scope():
    x = mt.tensor([1.0], requires_grad=True)
    made = []
    with mt.name_scope("enc"):
        for t in mt.time_steps(3, state_names=("h",)):
            assert isinstance(mt.mode.current_scope(), mt.Step)
            x = x * 2.0
            made.append(x)
        assert mt.mode.current_scope() == "enc"
    assert [(m.scope.path, m.scope.t) for m in made] == [("enc", 0), ("enc", 1), ("enc", 2)]
    assert made[0].scope.states is mt.time_step(0, state_names="h").states   # one record
    for t in mt.time_steps(5):                        # a break gives the scope back
        if t == 1:
            break
    assert mt.mode.current_scope() is None
    with pytest.raises(KeyError):
        for t in mt.time_steps(5):
            raise KeyError
    assert mt.mode.current_scope() is None
    with mt.no_grad():                                # and records nothing without grad
        for t in mt.time_steps(2):
            y = x * 3.0
    assert y.scope is None and mt.is_grad_enabled()
    with pytest.raises(TypeError, match="state_names must be a name or a tuple of names"):
        mt.time_steps(2, state_names=[1])


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
