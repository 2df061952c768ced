"""models.LSTM / models.GRU: torch parity (values and every gradient), gradcheck, loading, init."""
import numpy as np
import pytest

import microtensor as mt
from microtensor.models import GRU, LSTM, GRUCell, LSTMCell

KINDS = {"lstm": LSTM, "gru": GRU}


def max_rel(a, b):
    """Largest elementwise |a − b| relative to the largest magnitude of b (round-off scale)."""
    scale = max(np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale) if a.size else 0.0


def parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_matches_torch(kind, num_layers, bidirectional, packed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(num_layers * 10 + bidirectional * 2 + packed)
    T, B, I, H = 6, 4, 3, 5
    D = 2 if bidirectional else 1
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind.upper())(I, H, num_layers=num_layers,
                                             bidirectional=bidirectional).double()
    ours = KINDS[kind](I, H, num_layers=num_layers, bidirectional=bidirectional)
    ours.load_torch_state_dict(theirs.state_dict())
    xs = rng.standard_normal((T, B, I))
    state = tuple(rng.standard_normal((num_layers * D, B, H)) * 0.5
                  for _ in range(2 if kind == "lstm" else 1))
    lengths = np.array([4, 6, 1, 3]) if packed else None
    w_out = rng.standard_normal((T, B, D * H))
    w_state = rng.standard_normal((num_layers * D, B, H))

    xs_t = torch.tensor(xs, requires_grad=True)
    st_t = tuple(torch.tensor(s, requires_grad=True) for s in state)
    inp = xs_t
    if packed:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xs_t, torch.tensor(lengths),
                                                      enforce_sorted=False)
    out_t, fin_t = theirs(inp, st_t if kind == "lstm" else st_t[0])
    if packed:
        out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, total_length=T)
    loss_t = (out_t * torch.tensor(w_out)).sum() + sum(
        (f * torch.tensor(w_state * (i + 1))).sum() for i, f in enumerate(parts(fin_t)))
    loss_t.backward()

    xs_m = mt.tensor(xs, requires_grad=True)
    st_m = tuple(mt.tensor(s, requires_grad=True) for s in state)
    out, fin = ours(xs_m, st_m if kind == "lstm" else st_m[0], lengths=lengths)
    loss = (out * w_out).sum() + sum(
        (f * (w_state * (i + 1))).sum() for i, f in enumerate(parts(fin)))
    loss.backward()

    assert out.shape == (T, B, D * H)
    assert max_rel(out.data, out_t.detach().numpy()) < 1e-10
    for f, f_t in zip(parts(fin), parts(fin_t)):
        assert f.shape == (num_layers * D, B, H)
        assert max_rel(f.data, f_t.detach().numpy()) < 1e-10
    assert abs(loss.item() - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    torch_params = dict(theirs.named_parameters())
    names = ours.torch_names()
    assert sorted(names) == sorted(torch_params)
    ours_params = dict(ours.named_parameters())
    for tname, oname in names.items():
        assert max_rel(ours_params[oname].grad, torch_params[tname].grad.numpy()) < 1e-10, tname
    assert max_rel(xs_m.grad, xs_t.grad.numpy()) < 1e-10
    for s, s_t in zip(st_m, st_t):
        assert max_rel(s.grad, s_t.grad.numpy()) < 1e-10
    if packed:      # padding is neither read nor differentiated, as pack_padded_sequence
        pad = np.arange(T)[:, None] >= lengths[None, :]
        assert np.all(out.data[pad] == 0) and np.all(xs_m.grad[pad] == 0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_without_bias_matches_torch(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    theirs = getattr(torch.nn, kind.upper())(3, 4, bias=False).double()
    ours = KINDS[kind](3, 4, bias=False)
    ours.load_torch_state_dict(theirs.state_dict())
    assert sorted(ours.torch_names()) == ["weight_hh_l0", "weight_ih_l0"]
    xs = rng.standard_normal((5, 2, 3))
    out, _ = ours(mt.tensor(xs))
    out_t, _ = theirs(torch.tensor(xs))
    assert max_rel(out.data, out_t.detach().numpy()) < 1e-10


def test_torch_state_dict_loads_into_torch():
    torch = pytest.importorskip("torch")
    ours = LSTM(3, 4, num_layers=2, bidirectional=True)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.torch_state_dict().items()})
    xs = np.random.default_rng(0).standard_normal((4, 2, 3))
    out, (h, c) = ours(xs)
    out_t, (h_t, c_t) = theirs(torch.tensor(xs))
    assert max_rel(out.data, out_t.detach().numpy()) < 1e-10
    assert max_rel(c.data, c_t.detach().numpy()) < 1e-10


def test_load_torch_state_dict_checks_names_and_shapes():
    model = GRU(3, 4, num_layers=2)
    sd = GRU(3, 4, num_layers=2).torch_state_dict()
    before = model.torch_state_dict()
    bad = dict(sd, weight_hh_l1=np.zeros((12, 5)))
    with pytest.raises(mt.CheckpointError, match=r"cells\.1\.weight_hh: shape \(12, 5\)"):
        model.load_torch_state_dict(bad)
    del sd["bias_hh_l0"]
    with pytest.raises(mt.CheckpointError, match=r"missing: cells\.0\.bias_hh"):
        model.load_torch_state_dict(sd)
    for k, v in model.torch_state_dict().items():     # nothing changed on an error
        assert np.array_equal(v, before[k])
    names = GRU(3, 4, bidirectional=True).torch_names()
    assert names["weight_ih_l0_reverse"] == "cells.1.weight_ih"


@pytest.mark.parametrize("cell_cls, gates", [(LSTMCell, 4), (GRUCell, 3)])
def test_cell_layout_and_init(cell_cls, gates):
    mt.manual_seed(3)
    cell = cell_cls(5, 4)
    shapes = {k: p.shape for k, p in cell.named_parameters()}
    assert shapes == {"weight_ih": (gates * 4, 5), "weight_hh": (gates * 4, 4),
                      "bias_ih": (gates * 4,), "bias_hh": (gates * 4,)}
    for p in cell.parameters():
        assert p.dtype == np.float64 and np.all(np.abs(p.data) <= 0.5)   # U(−1/√H, 1/√H)
    mt.manual_seed(3)
    again = cell_cls(5, 4)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(cell.parameters(),
                                                               again.parameters()))
    other = cell.make(7)
    assert type(other) is cell_cls and other.weight_ih.shape == (gates * 4, 7)
    assert not np.array_equal(other.weight_hh.data, cell.weight_hh.data)
    assert cell_cls(2, 3, dtype=np.float32).weight_hh.dtype == np.float32


@pytest.mark.parametrize("cell_cls", [LSTMCell, GRUCell])
def test_cell_gradcheck(cell_cls):
    rng = np.random.default_rng(0)
    cell = cell_cls(3, 2)
    xs = mt.tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    state = tuple(mt.tensor(rng.standard_normal((2, 2)), requires_grad=True)
                  for _ in range(2 if cell_cls is LSTMCell else 1))

    def f(xs, *inputs):
        out, fin = mt.nn.unroll(cell, xs, state if cell_cls is LSTMCell else state[0])
        return mt.concat([out.reshape(-1), *(s.reshape(-1) for s in parts(fin))])

    assert mt.gradcheck(f, [xs, *state, *cell.parameters()])


def test_recurrent_two_layers_bidirectional_lengths_gradcheck():
    rng = np.random.default_rng(1)
    rnn = mt.nn.Recurrent(LSTMCell(2, 2), num_layers=2, bidirectional=True)
    xs = mt.tensor(rng.standard_normal((3, 3, 2)), requires_grad=True)
    h0 = mt.tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    c0 = mt.tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    lengths = [3, 1, 2]

    def f(xs, h0, c0, *params):
        out, (h, c) = rnn(xs, (h0, c0), lengths=lengths)
        return mt.concat([out.reshape(-1), h.reshape(-1), c.reshape(-1)])

    assert mt.gradcheck(f, [xs, h0, c0, *rnn.parameters()])


def test_dropout_between_layers_only_in_training():
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((4, 3, 2))
    mt.manual_seed(0)
    plain = GRU(2, 5, num_layers=2)
    mt.manual_seed(0)
    dropped = GRU(2, 5, num_layers=2, dropout=0.5)
    a, _ = plain(xs)
    b, _ = dropped(xs)
    assert not np.allclose(a.data, b.data)
    c, _ = dropped.eval()(xs)
    assert np.array_equal(a.data, c.data)


def test_repr():
    assert repr(LSTMCell(3, 4, bias=False)) == "LSTMCell(3, 4, bias=False)"
    text = repr(LSTM(3, 4, num_layers=2, bidirectional=True))
    assert "3, 4, num_layers=2, bidirectional=True, dropout=0.0" in text
    assert "(0-1): 2 x LSTMCell(3, 4)" in text and "(2-3): 2 x LSTMCell(8, 4)" in text


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_batch_first_matches_torch(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    theirs = getattr(torch.nn, kind.upper())(3, 4, num_layers=2, bidirectional=True,
                                             batch_first=True).double()
    ours = KINDS[kind](3, 4, num_layers=2, bidirectional=True, batch_first=True)
    ours.load_torch_state_dict(theirs.state_dict())
    xs = rng.standard_normal((2, 5, 3))                      # (B, T, I)
    xs_t = torch.tensor(xs, requires_grad=True)
    out_t, fin_t = theirs(xs_t)
    out_t.sum().backward()
    xs_m = mt.tensor(xs, requires_grad=True)
    out, fin = ours(xs_m)
    out.sum().backward()
    assert out.shape == (2, 5, 8) and max_rel(out.data, out_t.detach().numpy()) < 1e-10
    for f, f_t in zip(parts(fin), parts(fin_t)):             # states stay (L·D, B, H)
        assert f.shape == (4, 2, 4) and max_rel(f.data, f_t.detach().numpy()) < 1e-10
    assert max_rel(xs_m.grad, xs_t.grad.numpy()) < 1e-10


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_every_layer_and_direction_keeps_bias_and_dtype(kind):
    model = KINDS[kind](3, 4, num_layers=2, bidirectional=True, bias=False, dtype=np.float32)
    assert [c.bias for c in model.cells] == [False] * 4
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float32)}
    assert sorted(model.torch_names()) == sorted(
        f"weight_{w}_l{k}{d}" for w in ("ih", "hh") for k in (0, 1) for d in ("", "_reverse"))
    with pytest.raises(mt.DTypeError, match=r"xs is float64 but the parameters are float32"):
        model(mt.zeros(5, 2, 3))
    out, _ = model(mt.zeros(5, 2, 3, dtype=np.float32))
    assert out.dtype == np.float32
