"""models.charlm: vocabulary, corpus, truncated-BPTT streams, CharLM and its checkpoints."""
import numpy as np
import pytest

import microtensor as mt
from models.charlm import (CELLS, CharLM, DataError, Vocab, batches, bptt_differences,
                           gradcheck_chunk, load_checkpoint, load_corpus, save_checkpoint)


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
