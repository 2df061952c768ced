"""models.VanillaRNN: graph BPTT equals the hand-derived BPTT, gradcheck, torch parity, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import microtensor as mt
import microtensor.functional as F
from microtensor.models import VanillaRNN
from microtensor.models.rnn_reference import bptt, truncated_bptt

NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def make(I, H, O, seed, dtype=np.float64, init="torch"):
    mt.manual_seed(seed)
    return VanillaRNN(I, H, O, init=init, dtype=dtype)


def params_of(model):
    return {k: getattr(model, k).data for k in NAMES}


def max_rel(a, b):
    """Largest elementwise |a − b| relative to the largest magnitude of b (round-off scale)."""
    scale = max(np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale) if a.size else 0.0


def graph_grads(model, xs, targets, h0, many_to_one):
    h0t = None if h0 is None else mt.tensor(h0, requires_grad=True)
    model.zero_grad()
    loss, h_T = model.loss(mt.tensor(xs), targets, h0t, many_to_one=many_to_one)
    loss.backward()
    grads = {f"d{k}": getattr(model, k).grad for k in NAMES}
    if h0t is not None:
        grads["dh0"] = h0t.grad
    return loss.item(), grads, h_T.data


def draw_case(data):
    T = data.draw(st.integers(1, 60), label="T")
    B = data.draw(st.integers(1, 8), label="B")
    I, H, O = (data.draw(st.integers(1, 40), label=n) for n in "IHO")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H)) * 0.5 if data.draw(st.booleans(), label="h0") else None
    return T, B, I, H, O, seed, rng, xs, h0


@settings(max_examples=50)
@given(st.data())
def test_graph_bptt_equals_hand_bptt_many_to_many(data):
    T, B, I, H, O, seed, rng, xs, h0 = draw_case(data)
    targets = rng.integers(0, O, (T, B))
    model = make(I, H, O, seed)
    loss, grads, h_T = graph_grads(model, xs, targets, h0, False)
    ref = bptt(params_of(model), xs, targets, h0)
    assert abs(loss - ref["loss"]) <= 1e-12 * abs(ref["loss"])
    assert max_rel(h_T, ref["hT"]) < 1e-12
    for k, g in grads.items():
        assert max_rel(g, ref[k]) < 1e-10, k


@settings(max_examples=50)
@given(st.data())
def test_graph_bptt_equals_hand_bptt_many_to_one(data):
    T, B, I, H, O, seed, rng, xs, h0 = draw_case(data)
    targets = rng.integers(0, O, (B,))
    model = make(I, H, O, seed)
    loss, grads, _ = graph_grads(model, xs, targets, h0, True)
    ref = bptt(params_of(model), xs, targets, h0, many_to_one=True)
    assert abs(loss - ref["loss"]) <= 1e-12 * abs(ref["loss"])
    for k, g in grads.items():
        assert max_rel(g, ref[k]) < 1e-10, k


@settings(max_examples=50)
@given(st.data(), st.integers(1, 20))
def test_truncated_bptt_equals_hand_truncated_bptt(data, chunk):
    T, B, I, H, O, seed, rng, xs, h0 = draw_case(data)
    targets = rng.integers(0, O, (T, B))
    model = make(I, H, O, seed)
    h0t = None if h0 is None else mt.tensor(h0, requires_grad=True)

    def step(x, y, h):
        return model.loss(mt.tensor(x), y, h)

    model.zero_grad()
    losses, h_T = mt.nn.truncated_bptt(step, xs, targets, chunk, state=h0t)
    ref = truncated_bptt(params_of(model), xs, targets, h0, chunk=chunk)
    np.testing.assert_allclose(losses, ref["losses"], rtol=1e-12)
    assert max_rel(h_T.data, ref["hT"]) < 1e-12
    for k in NAMES:
        assert max_rel(getattr(model, k).grad, ref[f"d{k}"]) < 1e-10, k
    if h0t is not None:
        assert max_rel(h0t.grad, ref["dh0"]) < 1e-10


def test_float32_agrees_with_float64():
    rng = np.random.default_rng(3)
    T, B, I, H, O = 20, 4, 10, 16, 10
    xs = rng.standard_normal((T, B, I))
    targets = rng.integers(0, O, (T, B))
    m64 = make(I, H, O, 1)
    m32 = make(I, H, O, 1, dtype=np.float32)
    m32.load_state_dict({k: v.astype(np.float32) for k, v in m64.state_dict().items()})
    l64, g64, _ = graph_grads(m64, xs, targets, None, False)
    l32, g32, _ = graph_grads(m32, xs.astype(np.float32), targets, None, False)
    assert abs(l32 - l64) < 1e-5 * abs(l64)
    for k in g64:
        assert g32[k].dtype == np.float32, k
        assert max_rel(g32[k].astype(np.float64), g64[k]) < 1e-4, k


def test_gradcheck_small():
    rng = np.random.default_rng(0)
    model = make(3, 4, 3, 0)
    xs = mt.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    h0 = mt.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    targets = rng.integers(0, 3, (4, 2))

    def f(xs, h0, *params):
        return model.loss(xs, targets, h0)[0]

    assert mt.gradcheck(f, [xs, h0, *model.parameters()])


def test_matches_torch_rnn():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    T, B, I, H, O = 7, 3, 5, 6, 4
    model = make(I, H, O, 2)
    xs = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    targets = rng.integers(0, O, (T, B))
    rnn = torch.nn.RNN(I, H, nonlinearity="tanh").double()
    lin = torch.nn.Linear(H, O).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(model.Wxh.data))
        rnn.weight_hh_l0.copy_(torch.from_numpy(model.Whh.data))
        rnn.bias_ih_l0.copy_(torch.from_numpy(model.bh.data))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(model.Why.data))
        lin.bias.copy_(torch.from_numpy(model.by.data))
    h0_t = torch.tensor(h0, requires_grad=True)
    out, hn = rnn(torch.tensor(xs), h0_t[None])
    logits_t = lin(out)
    loss_t = torch.nn.functional.cross_entropy(logits_t.reshape(T * B, O),
                                               torch.tensor(targets.reshape(-1)))
    loss_t.backward()

    h0m = mt.tensor(h0, requires_grad=True)
    logits, h_T = model(mt.tensor(xs), h0m)
    loss = F.cross_entropy(logits.reshape(T * B, O), targets.reshape(-1))
    loss.backward()
    np.testing.assert_allclose(logits.data, logits_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_T.data, hn[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    assert abs(loss.item() - loss_t.item()) < 1e-12
    pairs = [(model.Wxh, rnn.weight_ih_l0), (model.Whh, rnn.weight_hh_l0),
             (model.bh, rnn.bias_ih_l0), (model.Why, lin.weight), (model.by, lin.bias),
             (h0m, h0_t)]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_long_sequence_trains_one_step():
    rng = np.random.default_rng(0)
    T, V, H = 10_000, 8, 16
    model = make(V, H, V, 0, init="classic")
    idx = rng.integers(0, V, T + 1)
    xs = F.one_hot(idx[:-1], V).reshape(T, 1, V)
    opt = mt.optim.Adagrad(model.parameters(), lr=0.1)
    loss, _ = model.loss(xs, idx[1:].reshape(T, 1))
    loss.backward()
    before = model.Whh.data.copy()
    opt.step()
    assert np.isfinite(loss.item()) and abs(loss.item() - np.log(V)) < 0.05
    assert np.all(np.isfinite(model.Whh.grad)) and np.any(model.Whh.data != before)


def test_generate_greedy_and_sampled():
    model = make(5, 8, 5, 0)
    idx, h = model.generate(2, 10, greedy=True)
    assert idx.shape == (10, 1) and h.shape == (1, 8)
    # greedy is the argmax of the model's own step-by-step forward
    x, hh, expect = 2, None, []
    for _ in range(10):
        logits, hh = model(F.one_hot(np.array([x]), 5).reshape(1, 1, 5), hh)
        x = int(logits.data[0, 0].argmax())
        expect.append(x)
    assert idx[:, 0].tolist() == expect
    mt.manual_seed(5)
    a, _ = model.generate([0, 1, 2], 20, temperature=0.7)
    mt.manual_seed(5)
    b, _ = model.generate([0, 1, 2], 20, temperature=0.7)
    assert a.shape == (20, 3) and (a == b).all() and a.max() < 5
    with pytest.raises(ValueError, match="temperature"):
        model.generate(0, 3, temperature=0)


@pytest.mark.parametrize("bad, match", [
    (lambda m: m(mt.zeros(3, 4)), r"\(T, B, I\)"),
    (lambda m: m(mt.zeros(3, 2, 7)), r"VanillaRNN: expected xs of shape \(T, B, I\) .*I = 4; "
                                     r"got \(3, 2, 7\)"),
    (lambda m: m(mt.zeros(0, 2, 4)), r"T, B >= 1"),
    (lambda m: m(mt.zeros(3, 2, 4), mt.zeros(3, 5)), r"\(B, H\) = \(2, 5\)"),
    (lambda m: m.loss(mt.zeros(3, 2, 4), np.zeros((3, 3), dtype=int)), r"\(T, B\)"),
    (lambda m: m.loss(mt.zeros(3, 2, 4), np.zeros((2,), dtype=int), many_to_one=False),
     r"\(T, B\)"),
    (lambda m: m.loss(mt.zeros(3, 2, 4), np.full((3, 2), 9)), r"out of range"),
])
def test_bad_input_errors(bad, match):
    model = make(4, 5, 3, 0)
    with pytest.raises(mt.ShapeError, match=match):
        bad(model)


def test_one_owner_per_parameter_with_the_classic_names():
    model = make(4, 5, 3, 0)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["Wxh", "Whh", "bh", "Why", "by"] == list(model.state_dict())
    assert [n for n, _ in model.named_modules()] == [""]      # nothing hidden beside them


def test_each_step_is_marked_and_labelled_by_time_step():
    model = make(4, 5, 3, 0)
    logits, h = model(mt.zeros(3, 2, 4))
    assert isinstance(h.scope, mt.Step) and (h.scope.path, h.scope.t) == ("", 2)
    assert h.scope.states.names == ("h",)
    assert h.op.name == "tanh" and h.parents[0].op.name == "linear_add"


def test_batch_first_equals_time_major():
    rng = np.random.default_rng(3)
    tm, bf = make(4, 5, 3, 0), make(4, 5, 3, 0)
    bf.batch_first = True
    xs, targets = rng.standard_normal((6, 2, 4)), rng.integers(0, 3, (6, 2))
    h0 = rng.standard_normal((2, 5))
    for many_to_one, y in ((False, targets), (True, targets[-1])):
        a, ha = tm.loss(xs, y, mt.tensor(h0), many_to_one=many_to_one)
        yb = y if many_to_one else y.T
        b, hb = bf.loss(xs.transpose(1, 0, 2), yb, mt.tensor(h0), many_to_one=many_to_one)
        assert a.item() == b.item() and np.array_equal(ha.data, hb.data)
    logits, _ = bf(xs.transpose(1, 0, 2))
    assert logits.shape == (2, 6, 3)
    assert np.array_equal(logits.data.transpose(1, 0, 2), tm(xs)[0].data)
    assert "batch_first=True" in repr(bf)
    tm, bf = make(4, 5, 4, 0), make(4, 5, 4, 0)
    bf.batch_first = True
    mt.manual_seed(1)
    ga, _ = tm.generate([0, 1], 5)
    mt.manual_seed(1)
    gb, _ = bf.generate([0, 1], 5)
    assert np.array_equal(ga, gb) and ga.shape == (5, 2)


def test_an_input_of_another_float_dtype_is_a_clear_error():
    model = make(4, 5, 3, 0, dtype=np.float32)
    with pytest.raises(mt.DTypeError, match=r"VanillaRNN: xs is float64 but the parameters are "
                                            r"float32; cast the input \(xs.astype\(np.float32\)\)"):
        model(mt.zeros(3, 2, 4))
    assert model(mt.zeros(3, 2, 4, dtype=np.float32))[0].dtype == np.float32
