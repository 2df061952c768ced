"""models.charlm: vocabulary, corpus, truncated-BPTT streams, CharLM, its sizes and its
checkpoints (crafted ones too)."""
import re
import tracemalloc

import numpy as np
import pytest

import microtensor as mt
from microtensor.models.charlm import (CELLS, CharLM, DataError, Vocab, batches, bptt_differences,
                                       gradcheck_chunk, load_checkpoint, load_corpus, memory_estimate,
                                       parameter_count, read_text, save_checkpoint)


def test_vocab_round_trips_and_names_unknown_characters():
    v = Vocab.from_text("hello, wörld\n")
    assert v.chars == "".join(sorted(set("hello, wörld\n"))) and Vocab(v.chars) == v
    assert v.decode(v.encode("wörld")) == "wörld"
    assert v.encode("lo").dtype == np.int64
    with pytest.raises(DataError, match=r"not in the vocabulary.*'€'"):
        v.encode("hé€")
    assert "only in the other: 'z'" in v.difference(Vocab.from_text("hello, wörld\nz"))


def test_default_corpus_is_the_stdlib_read_deterministically():
    text = load_corpus()
    assert 250_000 < len(text.encode()) <= 300_000 and "def " in text
    assert load_corpus() == text
    assert load_corpus(max_bytes=1000) == text.encode()[:1000].decode("utf-8", "ignore")


@pytest.mark.parametrize("data, pattern", [
    (None, "does not exist"), (b"", "is empty"), (b"a\0b", "binary"),
    (b"caf\xe9", "not UTF-8"),
])
def test_load_corpus_errors_are_one_line(tmp_path, data, pattern):
    path = tmp_path / "t.txt"
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(DataError, match=pattern) as e:
        load_corpus(path)
    assert "\n" not in str(e.value)


def test_batches_are_contiguous_streams_resumable_at_any_step():
    data = np.arange(1000) % 97
    B, T = 4, 10
    stream = batches(data, B, T, seed=3)
    first = [next(stream) for _ in range(60)]
    xs, ys, fresh = first[0]
    assert xs.shape == ys.shape == (T, B) and fresh
    assert np.array_equal(ys[:-1], xs[1:])                       # targets: one character on
    x1 = first[1][0]
    assert np.array_equal(x1[0], xs[-1] + 1) or first[1][2]       # stream b goes on where it left
    assert sum(f for _, _, f in first) >= 2                       # epochs restart fresh
    for k in (0, 7, 24, 59):
        again = next(batches(data, B, T, seed=3, start=k))
        assert all(np.array_equal(a, b) for a, b in zip(again, first[k]))
    with pytest.raises(DataError, match="too few"):
        batches(data[:40], B, T)


@pytest.mark.parametrize("cell", CELLS)
def test_charlm_loss_state_and_generate(cell):
    mt.manual_seed(0)
    model = CharLM(7, 5, cell)
    xs = np.random.default_rng(0).integers(0, 7, (6, 3))
    loss, state = model.loss(xs, xs, model.initial_state(3))
    assert abs(loss.item() - np.log(7)) < 0.5
    parts = model.state_to_arrays(state)
    assert [p.shape[-2:] for p in parts] == [(3, 5)] * len(parts)
    again = model.state_from_arrays(parts)
    assert model.state_to_arrays(again)[0].tolist() == parts[0].tolist()
    out = model.generate([1, 2], 20, 0.9, np.random.default_rng(1))
    assert out.shape == (20,) and out.max() < 7
    assert np.array_equal(out, model.generate([1, 2], 20, 0.9, np.random.default_rng(1)))


def test_graph_bptt_equals_the_hand_derived_one_and_gradcheck_passes():
    mt.manual_seed(1)
    xs = np.random.default_rng(1).integers(0, 9, (12, 2))
    model = CharLM(9, 6, "rnn", dtype=np.float32)
    rng_state = mt.get_rng_state()
    diffs = bptt_differences(model, xs, np.roll(xs, -1, 0), np.full((2, 6), 0.1))
    assert max(diffs.values()) < 1e-12 and model.rnn.Whh.grad is None
    assert mt.get_rng_state() == rng_state
    for cell in ("lstm", "gru"):
        names = gradcheck_chunk(CharLM(9, 4, cell), xs, xs)
        assert "h0" in names and any("bias" in n for n in names)


def test_checkpoint_round_trip_and_mismatch_messages(tmp_path):
    mt.manual_seed(0)
    vocab = Vocab.from_text("abcdef")
    model = CharLM(len(vocab), 4, "gru")
    opt = mt.optim.Adagrad(model.parameters(), lr=0.1)
    loss, state = model.loss([[0, 1]], [[1, 2]], None)
    loss.backward()
    opt.step()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt, 7, {"mt": mt.get_rng_state()}, vocab, {"seed": 0},
                    state, {"loss": [1.5, 1.25]})
    twin = CharLM(len(vocab), 4, "gru")
    twin_opt = mt.optim.Adagrad(twin.parameters(), lr=0.1)
    ck = load_checkpoint(path, twin, twin_opt, vocab)
    assert ck["step"] == 7 and ck["vocab"] == vocab and list(ck["history"]["loss"]) == [1.5, 1.25]
    assert all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(),
                                                    twin.state_dict().values()))
    assert np.array_equal(twin_opt.state[0]["sum"], opt.state[0]["sum"])
    other = CharLM(len(vocab), 8, "lstm")
    before = other.state_dict()
    with pytest.raises(mt.CheckpointError, match=r"hidden_size 4 .* 8 here.*cell 'gru'") as e:
        load_checkpoint(path, other)
    assert "\n" not in str(e.value)
    assert all(np.array_equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(mt.CheckpointError, match=r"vocabulary: .*only in this text: 'g'"):
        load_checkpoint(path, twin, vocab=Vocab.from_text("abcdefg"))


# ---- sizes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_parameter_count_is_the_models(cell):
    for V, H in ((1, 1), (7, 5), (65, 128)):
        assert parameter_count(V, H, cell) == sum(p.size for p in CharLM(V, H, cell).parameters())


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("V, H, T, B, dtype, optimizer", [
    (65, 160, 5, 2, "float64", "Adam"), (30, 24, 30, 16, "float32", "Adagrad"),
    (90, 48, 20, 12, "float64", "SGD")])
def test_memory_estimate_bounds_a_training_step(cell, V, H, T, B, dtype, optimizer):
    """Peak memory of two truncated-BPTT steps as char_rnn.py takes them (tracemalloc sees
    NumPy's allocations): under the estimate, and the estimate within 4× of it."""
    mt.manual_seed(0)
    tracemalloc.start()
    try:
        model = CharLM(V, H, cell, dtype)
        params = list(model.parameters())
        opt = getattr(mt.optim, optimizer)(params, lr=1e-3)
        xs = np.random.default_rng(0).integers(0, V, (T, B))
        state = model.initial_state(B)
        for _ in range(2):
            opt.zero_grad()
            loss, state = model.loss(xs, xs, state)
            loss.backward()
            mt.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            state = mt.nn.detach_state(state)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = memory_estimate(V, H, cell, dtype, B, T, optimizer)
    assert peak <= estimate <= 4 * peak, (peak, estimate)


def test_memory_estimate_bounds_reading_and_encoding_a_text(tmp_path):
    text = "line: the quick brown fox é ✓ 🦊\n" * 20_000          # 1-, 2-, 3- and 4-byte UTF-8
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    tracemalloc.start()
    try:
        got = read_text(path)
        data = Vocab.from_text(got).encode(got)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data) == len(text)
    assert peak <= memory_estimate(1, 1, "rnn", "float64", 1, 1, chars=len(text)) <= 4 * peak


# ---- text files that are not texts -----------------------------------------------------------
def test_read_text_stops_at_the_first_nul_and_at_its_limit(tmp_path):
    with pytest.raises(DataError, match=r"'/dev/zero' contains NUL bytes \(the first at byte 0\)"):
        read_text("/dev/zero")                            # not read until memory runs out
    path = tmp_path / "t.txt"
    path.write_bytes(b"a" * 3_000_000 + b"\0")
    with pytest.raises(DataError, match=r"the first at byte 3,000,000\)"):
        read_text(path)
    path.write_bytes("é".encode() * 1000)                  # 2,000 bytes
    with pytest.raises(DataError, match=r"holds more than 1,999 bytes, the most a training text "
                                        r"may have .*head -c 1999 FILE"):
        read_text(path, max_bytes=1999)
    assert read_text(path, max_bytes=2000) == "é" * 1000
    assert read_text(path, max_bytes=1999, cut=True) == "é" * 999   # the split one dropped
    path.write_bytes(b"ok \xff" + b"a" * 10)
    with pytest.raises(DataError, match="not UTF-8"):
        read_text(path, max_bytes=6, cut=True)            # a bad byte is not a cut character


def test_vocab_refuses_lone_surrogates():
    with pytest.raises(ValueError, match="a lone surrogate"):
        Vocab("a\ud800")


# ---- sampling at the edges --------------------------------------------------------------------
def test_generate_at_a_tiny_temperature_picks_the_likeliest_character():
    mt.manual_seed(3)
    model = CharLM(6, 8, "gru")
    out = model.generate([1], 12, 1e-300, np.random.default_rng(0))
    state, idx = None, 1
    for got in out:                                       # greedy decoding, by hand
        logits, state = model(np.array([[idx]]), state)
        idx = int(np.argmax(logits.data[0, 0]))
        assert got == idx
    model.head.bias.data[:] = np.nan
    with pytest.raises(ValueError, match="logits of character 0 are not finite"):
        model.generate([1], 3)


# ---- crafted CharLM checkpoints ---------------------------------------------------------------
@pytest.fixture(scope="module")
def charlm_checkpoint(tmp_path_factory):
    """A valid checkpoint (rnn, 6 characters, H=4, Adam after one step) as a dict."""
    mt.manual_seed(0)
    vocab = Vocab.from_text("abcdef")
    model = CharLM(len(vocab), 4, "rnn")
    opt = mt.optim.Adam(model.parameters(), lr=0.01)
    loss, state = model.loss([[0, 1]], [[1, 2]], None)
    loss.backward()
    opt.step()
    path = tmp_path_factory.mktemp("ck") / "ck.npz"
    save_checkpoint(path, model, opt, 1, {"mt": mt.get_rng_state()}, vocab, {"seed": 0}, state,
                    {"loss": [1.5]})
    return mt.load(path)


def edit(ck, *where, value=None, drop=False):
    """A deep copy of ck with the entry at keys `where` set to value (or removed)."""
    import copy
    ck = copy.deepcopy(ck)
    node = ck
    for k in where[:-1]:
        node = node[k]
    if drop:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    return ck


W = "rnn.Whh"
CRAFTED_CHARLM = {
    "missing vocab": (("vocab",), dict(drop=True), r"it has no 'vocab'"),
    "missing state": (("state",), dict(drop=True), r"it has no 'state'"),
    "missing model": (("model",), dict(drop=True), r"it has no 'model'"),
    "config not a dict": (("config",), dict(value=[1, 2]), r"'config' is a list, not a dict"),
    "model_config not a dict": (("model_config",), dict(value="rnn"), r"'model_config' is a str"),
    "negative step": (("step",), dict(value=-5), r"its step is -5, below 0"),
    "step a bool": (("step",), dict(value=True), r"'step' is a bool, not a int"),
    "step a float": (("step",), dict(value=3.0), r"'step' is a float"),
    "version 2": (("version",), dict(value=2), r"CharLM checkpoint version 2"),
    "vocabulary not sorted": (("vocab",), dict(value="fedcba"), r"vocabulary is not usable "
                                                                 r"\(Vocab: chars must be sorted"),
    "vocabulary empty": (("vocab",), dict(value=""), r"vocabulary is not usable"),
    "vocabulary of a surrogate": (("vocab",), dict(value="abcde\ud800"), r"lone surrogate"),
    "vocabulary not a string": (("vocab",), dict(value=5), r"'vocab' is a int, not a str"),
    "vocabulary one short": (("vocab",), dict(value="abcde"), r"says 6 characters but its "
                                                              r"vocabulary has 5"),
    "cell unknown": (("model_config", "cell"), dict(value="transformer"), r"not one of a CharLM"),
    "dtype float16": (("model_config", "dtype"), dict(value="float16"), r"not one of a CharLM"),
    "hidden size 0": (("model_config", "hidden_size"), dict(value=0), r"not one of a CharLM"),
    "hidden size 10**7": (("model_config", "hidden_size"), dict(value=10 ** 7),
                          r"hold 74 numbers, but a rnn with 6 characters and hidden size "
                          r"10,000,000 has 100,000,130,000,006"),
    "model_config extra key": (("model_config", "layers"), dict(value=2), r"has keys"),
    "a weight missing": (("model", W), dict(drop=True), r"hold 58 numbers, but .* has 74"),
    "a weight of ints": (("model", W), dict(value=np.zeros((4, 4), np.int64)),
                         r"not all arrays of floats"),
    "a weight NaN": (("model", W), dict(value=np.full((4, 4), np.nan)), r"NaN or infinity"),
    "state not a list": (("state",), dict(value={"h": 1}), r"state is not a list of float"),
    "history of strings": (("history", "loss"), dict(value=np.array(["x"])), r"1-D float"),
}


@pytest.mark.parametrize("name", list(CRAFTED_CHARLM))
def test_crafted_charlm_checkpoint_is_one_line_checkpoint_error(charlm_checkpoint, tmp_path,
                                                                name):
    where, how, pattern = CRAFTED_CHARLM[name]
    path = tmp_path / "crafted.npz"
    mt.save(edit(charlm_checkpoint, *where, **how), path)
    with pytest.raises(mt.CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert message.startswith(f"checkpoint '{path}' is not a valid CharLM checkpoint: ")
    assert "\n" not in message and re.search(pattern, message), message


@pytest.mark.parametrize("where, value, pattern", [
    (("optimizer", "param_groups", 0, "lr"), "fast", r"hyperparameter 'lr' is 'fast'"),
    (("optimizer", "param_groups", 0, "betas"), (0.9,), r"hyperparameter 'betas'"),
    (("optimizer", "param_groups", 0, "eps"), float("nan"), r"hyperparameter 'eps' is nan"),
    (("optimizer", "state", 0, "step"), -1, r"state of parameter 0 is not what Adam keeps"),
    (("optimizer", "state", 0, "exp_avg"), None, r"state of parameter 0"),
    (("optimizer", "state"), [], r"not \{'state': …, 'param_groups': \[one group\]\}"),
])
def test_crafted_optimizer_state_is_refused_before_loading(charlm_checkpoint, tmp_path, where,
                                                           value, pattern):
    path = tmp_path / "crafted.npz"
    mt.save(edit(charlm_checkpoint, *where, value=value), path)
    mt.manual_seed(1)
    model = CharLM(6, 4, "rnn")
    opt = mt.optim.Adam(model.parameters(), lr=0.01)
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(mt.CheckpointError, match=rf"does not fit: .*{pattern}"):
        load_checkpoint(path, model, opt, Vocab("abcdef"))
    assert opt.state == {} and all(np.array_equal(a, p.data)
                                   for a, p in zip(before, model.parameters()))
