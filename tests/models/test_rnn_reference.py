"""Checks of the hand-derived NumPy BPTT against finite differences, against itself, and on bad input."""

import numpy as np
import pytest

from microtensor.models.rnn_reference import bptt, bptt_hoisted, init_params, truncated_bptt

GRADS = ("dWxh", "dWhh", "dWhy", "dbh", "dby", "dh0")
PARAMS = ("Wxh", "Whh", "Why", "bh", "by")


def make_case(seed, T, B, I, H, O, random_h0=True, many_to_one=False, dtype=np.float64, one_hot=False):
    """Random params (scale 0.5, so gradients are not tiny), inputs, targets and h0."""
    rng = np.random.default_rng(seed)
    params = init_params(I, H, O, rng, dtype=dtype, scale=0.5)
    params["bh"] = (rng.standard_normal(H) * 0.5).astype(dtype)
    params["by"] = (rng.standard_normal(O) * 0.5).astype(dtype)
    if one_hot:
        xs = np.eye(I, dtype=dtype)[rng.integers(0, I, (T, B))]
    else:
        xs = rng.standard_normal((T, B, I)).astype(dtype)
    targets = rng.integers(0, O, (B,) if many_to_one else (T, B))
    h0 = (rng.standard_normal((B, H)) * 0.5).astype(dtype) if random_h0 else None
    return params, xs, targets, h0


def forward_loss(params, xs, targets, h0, many_to_one):
    """An independent plain forward: loss, h_T and logits."""
    h = np.zeros((xs.shape[1], params["Whh"].shape[0])) if h0 is None else h0
    logits = []
    for x in xs:
        h = np.tanh(x @ params["Wxh"].T + h @ params["Whh"].T + params["bh"])
        logits.append(h @ params["Why"].T + params["by"])
    logits = np.stack(logits)
    scored, tg = (logits[-1:], targets[None]) if many_to_one else (logits, targets)
    logp = scored - np.log(np.exp(scored).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(logp, tg[..., None], axis=-1).mean(), h, logits


def numeric_grads(params, xs, targets, h0, many_to_one, eps=1e-6):
    """Central differences of forward_loss for every parameter and h0."""
    h0 = np.zeros((xs.shape[1], params["Whh"].shape[0])) if h0 is None else h0.copy()
    arrays = dict(params, h0=h0)
    grads = {}
    for name, a in arrays.items():
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + eps
            up = forward_loss(params, xs, targets, h0, many_to_one)[0]
            a[i] = old - eps
            down = forward_loss(params, xs, targets, h0, many_to_one)[0]
            a[i] = old
            g[i] = (up - down) / (2 * eps)
        grads["d" + name] = g
    return grads


def assert_close_rel(a, b, rel):
    """‖a − b‖ ≤ rel · ‖b‖ (elementwise relative error is meaningless where sums cancel)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.linalg.norm(a - b) <= rel * max(np.linalg.norm(b), 1e-300)


SMALL = [  # (seed, T, B, I, H, O, random_h0, many_to_one)
    (0, 1, 1, 1, 1, 1, False, False),
    (1, 1, 2, 3, 2, 4, True, False),
    (2, 3, 1, 2, 5, 3, True, True),
    (3, 6, 3, 5, 4, 5, False, False),
    (4, 5, 2, 4, 3, 2, True, False),
    (5, 6, 3, 3, 5, 4, False, True),
    (6, 4, 2, 1, 2, 5, True, True),
]


@pytest.mark.parametrize("case", SMALL)
def test_bptt_matches_finite_differences(case):
    seed, T, B, I, H, O, random_h0, m2o = case
    params, xs, targets, h0 = make_case(seed, T, B, I, H, O, random_h0, m2o)
    out = bptt(params, xs, targets, h0, many_to_one=m2o)
    loss, hT, logits = forward_loss(params, xs, targets, h0, m2o)
    assert isinstance(out["loss"], float)
    np.testing.assert_allclose(out["loss"], loss, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out["hT"], hT, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-12, atol=1e-14)
    num = numeric_grads(params, xs, targets, h0, m2o)
    for k in GRADS:
        assert out[k].shape == num[k].shape and out[k].dtype == np.float64, k
        np.testing.assert_allclose(out[k], num[k], rtol=1e-6, atol=1e-8, err_msg=k)


@pytest.mark.parametrize("m2o", [False, True])
@pytest.mark.parametrize("seed,T,B,I,H,O,one_hot", [
    (10, 1, 1, 3, 4, 3, False),
    (11, 7, 3, 5, 6, 4, False),
    (12, 25, 8, 10, 16, 10, True),
    (13, 40, 5, 7, 12, 9, False),
    (14, 40, 8, 12, 20, 12, True),
])
def test_hoisted_equals_tutorial(seed, T, B, I, H, O, one_hot, m2o):
    params, xs, targets, h0 = make_case(seed, T, B, I, H, O, seed % 2 == 0, m2o, one_hot=one_hot)
    ref = bptt(params, xs, targets, h0, many_to_one=m2o)
    got = bptt_hoisted(params, xs, targets, h0, many_to_one=m2o)
    assert set(got) == set(ref)
    assert isinstance(got["loss"], float)
    assert abs(got["loss"] - ref["loss"]) <= 1e-12 * abs(ref["loss"])
    for k in GRADS + ("hT", "logits"):
        assert got[k].dtype == ref[k].dtype, k
        assert_close_rel(got[k], ref[k], 1e-12)


def test_inputs_are_not_modified():
    params, xs, targets, h0 = make_case(20, 5, 2, 3, 4, 3)
    copies = ({k: v.copy() for k, v in params.items()}, xs.copy(), targets.copy(), h0.copy())
    for fn in (bptt, bptt_hoisted):
        fn(params, xs, targets, h0)
    truncated_bptt(params, xs, targets, h0, chunk=2)
    truncated_bptt(params, xs, targets, h0, chunk=2, hoisted=True)
    for k in PARAMS:
        np.testing.assert_array_equal(params[k], copies[0][k])
    for a, b in zip((xs, targets, h0), copies[1:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("hoisted", [False, True])
@pytest.mark.parametrize("chunk", [7, 8, 100])
def test_truncated_single_chunk_equals_bptt(chunk, hoisted):
    params, xs, targets, h0 = make_case(30, 7, 2, 3, 5, 4)
    ref = bptt(params, xs, targets, h0)
    got = truncated_bptt(params, xs, targets, h0, chunk=chunk, hoisted=hoisted)
    assert len(got["losses"]) == 1
    np.testing.assert_allclose(got["losses"][0], ref["loss"], rtol=1e-12)
    for k in GRADS + ("hT",):
        assert_close_rel(got[k], ref[k], 1e-12)


@pytest.mark.parametrize("hoisted", [False, True])
@pytest.mark.parametrize("T,chunk", [(7, 3), (9, 3), (10, 1), (6, 5)])
def test_truncated_chunks(T, chunk, hoisted):
    params, xs, targets, h0 = make_case(40 + T, T, 3, 4, 5, 3)
    got = truncated_bptt(params, xs, targets, h0, chunk=chunk, hoisted=hoisted)
    assert len(got["losses"]) == -(-T // chunk)

    first = bptt(params, xs[:chunk], targets[:chunk], h0)
    np.testing.assert_allclose(got["losses"][0], first["loss"], rtol=1e-12)
    assert_close_rel(got["dh0"], first["dh0"], 1e-12)
    assert_close_rel(got["hT"], bptt(params, xs, targets, h0)["hT"], 1e-12)

    # the sum over chunks, each run on its own from the carried (constant) hidden state
    h, total, losses = h0, None, []
    for s in range(0, T, chunk):
        g = bptt(params, xs[s:s + chunk], targets[s:s + chunk], h)
        losses.append(g["loss"])
        total = {k: g[k] for k in GRADS[:5]} if total is None else {k: total[k] + g[k] for k in total}
        h = g["hT"]
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-12)
    for k in GRADS[:5]:
        assert_close_rel(got[k], total[k], 1e-12)


@pytest.mark.parametrize("fn", [bptt, bptt_hoisted])
@pytest.mark.parametrize("m2o", [False, True])
def test_float32_stays_float32(fn, m2o):
    p64, xs64, targets, h064 = make_case(50, 12, 4, 6, 8, 5, many_to_one=m2o)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    ref = fn(p64, xs64, targets, h064, many_to_one=m2o)
    got = fn(p32, xs64, targets, h064.astype(np.float32), many_to_one=m2o)  # float64 xs is cast down
    assert isinstance(got["loss"], float)
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-5)
    for k in GRADS + ("hT", "logits"):
        assert got[k].dtype == np.float32, k
        assert_close_rel(got[k], ref[k], 1e-4)


def test_float32_truncated_and_init_params():
    params = init_params(5, 6, 4, np.random.default_rng(0), dtype=np.float32)
    assert {k: v.shape for k, v in params.items()} == {
        "Wxh": (6, 5), "Whh": (6, 6), "Why": (4, 6), "bh": (6,), "by": (4,)}
    assert all(v.dtype == np.float32 for v in params.values())
    assert not params["bh"].any() and not params["by"].any()
    assert np.abs(params["Whh"]).max() < 0.1
    xs = np.eye(5, dtype=np.float32)[np.random.default_rng(1).integers(0, 5, (9, 2))]
    out = truncated_bptt(params, xs, np.zeros((9, 2), dtype=np.int64), chunk=4)
    assert all(out[k].dtype == np.float32 for k in GRADS + ("hT",))


def _valid():
    return make_case(60, 3, 2, 4, 5, 3)


@pytest.mark.parametrize("fn", [bptt, bptt_hoisted])
def test_bad_input(fn):
    params, xs, targets, h0 = _valid()
    with pytest.raises(ValueError, match=r"xs must have layout \(T, B, I\).*got shape \(3, 4\)"):
        fn(params, xs[:, 0], targets, h0)
    with pytest.raises(ValueError, match=r"\(T, B, I\) with T, B ≥ 1 and I = 4.*got shape \(3, 2, 5\)"):
        fn(params, np.zeros((3, 2, 5)), targets, h0)
    with pytest.raises(ValueError, match=r"\(T, B, I\).*got shape \(0, 2, 4\)"):
        fn(params, xs[:0], targets[:0], h0)
    with pytest.raises(ValueError, match=r"h0 must have layout \(B, H\) = \(2, 5\); got shape \(5,\)"):
        fn(params, xs, targets, h0[0])
    with pytest.raises(ValueError, match=r"h0 must have layout \(B, H\) = \(2, 5\); got shape \(2, 4\)"):
        fn(params, xs, targets, h0[:, :4])
    with pytest.raises(ValueError, match=r"targets must have layout \(T, B\) = \(3, 2\) for many-to-many"):
        fn(params, xs, targets[0], h0)
    with pytest.raises(ValueError, match=r"targets must have layout \(B,\) = \(2,\) for many-to-one"):
        fn(params, xs, targets, h0, many_to_one=True)
    with pytest.raises(ValueError, match=r"targets out of range.*\[0, 3\)"):
        fn(params, xs, np.full((3, 2), 3), h0)
    with pytest.raises(ValueError, match=r"targets out of range"):
        fn(params, xs, np.full((3, 2), -1), h0)
    with pytest.raises(ValueError, match=r"targets must be integer"):
        fn(params, xs, targets.astype(np.float64), h0)


def test_bad_params():
    params, xs, targets, h0 = _valid()
    with pytest.raises(ValueError, match=r"missing \['by'\]"):
        bptt({k: v for k, v in params.items() if k != "by"}, xs, targets, h0)
    with pytest.raises(ValueError, match=r"Whh must have layout \(H, H\) = \(5, 5\); got shape \(5, 4\)"):
        bptt(dict(params, Whh=params["Whh"][:, :4]), xs, targets, h0)
    with pytest.raises(ValueError, match=r"Why must have layout \(O, H\) with H = 5"):
        bptt(dict(params, Why=params["Why"][:, :4]), xs, targets, h0)
    with pytest.raises(ValueError, match=r"one dtype.*bh is float32"):
        bptt(dict(params, bh=params["bh"].astype(np.float32)), xs, targets, h0)


def test_truncated_bad_input():
    params, xs, targets, h0 = _valid()
    for chunk in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="chunk must be a positive int"):
            truncated_bptt(params, xs, targets, h0, chunk=chunk)
    with pytest.raises(ValueError, match=r"targets must have layout \(T, B\)"):
        truncated_bptt(params, xs, targets[-1], h0)
    with pytest.raises(ValueError, match=r"xs must have layout \(T, B, I\)"):
        truncated_bptt(params, xs[0], targets, h0)
