"""A character-level language model over any of the three cells, its checks and checkpoints."""
import numpy as np

import microtensor as mt
import microtensor.functional as F
from microtensor import nn

from .chardata import (DEFAULT_MAX_BYTES, DataError, Vocab, batches, check_length,  # noqa: F401
                       corpus_files, load_corpus, read_text, stdlib_files)
from .gru import GRU
from .lstm import LSTM
from .rnn import VanillaRNN
from .rnn_reference import bptt

CELLS = ("rnn", "lstm", "gru")
FORMAT = "microtensor-charlm"


class CharLM(nn.Module):
    """Next-character logits from one-hot characters, with a vanilla RNN, an LSTM or a GRU.

    cell="rnn" is models.VanillaRNN(V, H, V) unchanged (its Wxh, Whh, Why, bh, by, as
    min-char-rnn); "lstm" and "gru" are models.LSTM / models.GRU followed by an nn.Linear
    head (H → V). Inputs are integer indices (T, B), time-major; the state is what
    initial_state(B) returns: h (B, H) for "rnn", h (1, B, H) for "gru", (h, c) for "lstm".
    """

    def __init__(self, vocab_size, hidden_size, cell="rnn", dtype=np.float64):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"CharLM: cell must be one of {', '.join(CELLS)}, got {cell!r}")
        for name, v in (("vocab_size", vocab_size), ("hidden_size", hidden_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"CharLM: {name} must be a positive integer, got {v!r}")
        self.vocab_size, self.hidden_size, self.cell_type = int(vocab_size), int(hidden_size), cell
        self.dtype = np.dtype(dtype)
        V, H = self.vocab_size, self.hidden_size
        if cell == "rnn":
            self.rnn = VanillaRNN(V, H, V, dtype=self.dtype)
        else:
            self.rnn = (LSTM if cell == "lstm" else GRU)(V, H, dtype=self.dtype)
            self.head = nn.Linear(H, V, dtype=self.dtype)

    def config(self):
        """What defines this model's shape: CharLM(**config()) builds another like it."""
        return {"vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "cell": self.cell_type, "dtype": self.dtype.name}

    def initial_state(self, batch_size):
        H, dt = self.hidden_size, self.dtype
        if self.cell_type == "rnn":
            return mt.zeros(batch_size, H, dtype=dt)
        if self.cell_type == "lstm":
            return mt.zeros(1, batch_size, H, dtype=dt), mt.zeros(1, batch_size, H, dtype=dt)
        return mt.zeros(1, batch_size, H, dtype=dt)

    def state_to_arrays(self, state):
        """The state as a list of arrays (copies), for a checkpoint."""
        return [s.data.copy() for s in (state if isinstance(state, tuple) else (state,))]

    def state_from_arrays(self, arrays):
        parts = tuple(mt.tensor(np.asarray(a, dtype=self.dtype)) for a in arrays)
        return parts if self.cell_type == "lstm" else parts[0]

    def forward(self, xs, state=None):
        """xs (T, B) indices -> (logits (T, B, V), final state)."""
        x = self._one_hot(xs)
        if self.cell_type == "rnn":
            return self.rnn(x, state)
        out, state = self.rnn(x, state)
        return self.head(out), state

    def loss(self, xs, targets, state=None):
        """Mean cross-entropy over all T×B positions of next-character targets (T, B).

        Returns (loss, final state); the state is still in the graph (detach it to carry
        it into the next chunk, as truncated BPTT does).
        """
        xs, targets = np.asarray(xs), np.asarray(targets)
        if targets.shape != xs.shape:
            raise mt.ShapeError(f"CharLM.loss: targets must have the shape of xs (T, B) = "
                                f"{xs.shape}; got {targets.shape}")
        if self.cell_type == "rnn":
            return self.rnn.loss(self._one_hot(xs), targets, state)
        logits, state = self(xs, state)
        T, B, V = logits.shape
        return F.cross_entropy(logits.reshape(T * B, V), targets.reshape(T * B)), state

    @mt.no_grad()
    def generate(self, prime, length, temperature=1.0, rng=None, state=None):
        """Sample `length` characters after the indices `prime` (at least one): the prime
        runs through the model from `state` (zeros by default) and each sampled character
        is fed back, the state carried. Samples from softmax(logits / temperature) with
        rng (mt's generator by default). Returns the new indices, shape (length,)."""
        prime = np.asarray(prime).reshape(-1)
        if prime.size == 0 or prime.dtype.kind not in "iu":
            raise ValueError(f"CharLM.generate: prime must be at least one character index, "
                             f"got {prime!r}")
        if not temperature > 0:
            raise ValueError(f"CharLM.generate: temperature must be > 0, got {temperature}")
        rng = mt.generator() if rng is None else rng
        if prime.size > 1:
            _, state = self(prime[:-1, None], state)
        idx, out = prime[-1], np.empty(length, dtype=np.int64)
        for i in range(length):
            logits, state = self(np.array([[idx]]), state)
            z = logits.data[0, 0].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            idx = out[i] = rng.choice(self.vocab_size, p=p / p.sum())
        return out

    def _one_hot(self, xs):
        xs = np.asarray(xs)
        if xs.ndim != 2:
            raise mt.ShapeError(f"CharLM: expected character indices of shape (T, B), got "
                                f"{xs.shape}")
        return F.one_hot(xs, self.vocab_size, dtype=self.dtype)

    def extra_repr(self):
        return f"vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, " \
               f"cell={self.cell_type!r}, dtype={self.dtype.name}"


def float64_copy(model):
    """The same model in float64, without touching mt's random generator (for checks)."""
    rng_state = mt.get_rng_state()
    try:
        twin = CharLM(**{**model.config(), "dtype": np.float64})
    finally:
        mt.set_rng_state(rng_state)
    twin.load_state_dict(model.state_dict())
    return twin


def bptt_differences(model, xs, targets, h0=None):
    """Graph BPTT of an "rnn" CharLM against the hand-derived models.rnn_reference.bptt.

    Both run in float64 on a copy of the model (the model itself is left as it was) over
    one chunk xs, targets (T, B) from h0 (B, H) (zeros by default). Returns {name: max
    |graph − hand| / max |hand|} for Wxh, Whh, Why, bh, by and h0.
    """
    if model.cell_type != "rnn":
        raise ValueError(f"bptt_differences: the hand-derived BPTT is of the vanilla RNN; "
                         f"this model's cell is {model.cell_type!r} (use gradcheck_chunk)")
    twin = float64_copy(model)
    B = np.asarray(xs).shape[1]
    h0 = np.zeros((B, model.hidden_size)) if h0 is None else np.asarray(h0, np.float64)
    h0_t = mt.tensor(h0, requires_grad=True)
    loss, _ = twin.loss(xs, targets, h0_t)
    loss.backward()
    names = ("Wxh", "Whh", "Why", "bh", "by")
    ref = bptt({k: getattr(twin.rnn, k).data for k in names}, twin._one_hot(xs).data,
               targets, h0)
    pairs = [(k, getattr(twin.rnn, k).grad, ref["d" + k]) for k in names]
    pairs.append(("h0", h0_t.grad, ref["dh0"]))
    return {k: float(np.max(np.abs(g - r)) / max(np.max(np.abs(r)), np.finfo(float).tiny))
            for k, g, r in pairs}


def gradcheck_chunk(model, xs, targets, steps=4, seed=0):
    """mt.gradcheck of the loss on a tiny slice (the first `steps` steps of stream 0), in
    float64 on a copy of the model, with respect to a random initial state and every bias
    (weights are too many for finite differences). Returns the names checked; raises
    mt.GradcheckError on a mismatch."""
    twin = float64_copy(model)
    xs, targets = np.asarray(xs)[:steps, :1], np.asarray(targets)[:steps, :1]
    rng = np.random.default_rng(seed)
    state = [mt.tensor(rng.standard_normal(a.shape) * 0.5, requires_grad=True)
             for a in twin.state_to_arrays(twin.initial_state(1))]
    biases = [(n, p) for n, p in twin.named_parameters() if p.ndim == 1]

    lstm = twin.cell_type == "lstm"

    def loss(*inputs):
        h = tuple(inputs[:2]) if lstm else inputs[0]
        return twin.loss(xs, targets, h)[0]

    mt.gradcheck(loss, state + [p for _, p in biases])
    names = ["h0", "c0"] if lstm else ["h0"]
    return names + [n for n, _ in biases]


# ---- checkpoints ------------------------------------------------------------------------
def save_checkpoint(path, model, optimizer, step, rng_state, vocab, config, state=None,
                    history=None):
    """Everything needed to continue training exactly, written atomically by mt.save.

    model and optimizer: their state dicts (and the model's config(), the optimizer's
    class name); step: steps done (the data position follows from it, see batches());
    rng_state: any JSON-able dict of generator states; vocab: a Vocab; config: the run's
    settings (a flat dict); state: the carried recurrent state; history: {name: list of
    floats} such as the loss of every step.
    """
    mt.save({
        "format": FORMAT, "version": 1, "step": int(step),
        "model_config": model.config(), "model": model.state_dict(),
        "optimizer_name": type(optimizer).__name__, "optimizer": optimizer.state_dict(),
        "rng": rng_state, "vocab": vocab.chars, "config": dict(config),
        "state": None if state is None else model.state_to_arrays(state),
        "history": {k: np.asarray(v, dtype=np.float64) for k, v in (history or {}).items()},
    }, path)


def load_checkpoint(path, model=None, optimizer=None, vocab=None):
    """Read a checkpoint of save_checkpoint; if given, check that model, optimizer and vocab
    are those it was saved from and load it into them.

    Returns the checkpoint as a dict with 'vocab' as a Vocab. Raises mt.CheckpointError
    (one line) for a file that is not such a checkpoint, or saying everything that differs
    (cell, hidden size, dtype, vocabulary, optimizer); nothing is loaded then.
    """
    ck = mt.load(path)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise mt.CheckpointError(f"'{path}' is a microtensor checkpoint, but not one of a "
                                 f"CharLM (it was saved by something else)")
    ck["vocab"] = Vocab(ck["vocab"])
    diffs = []
    if model is not None:
        saved = ck["model_config"]
        for k, v in model.config().items():
            if saved.get(k) != v:
                diffs.append(f"{k} {saved.get(k)!r} in the checkpoint, {v!r} here")
    if vocab is not None and vocab != ck["vocab"]:
        diffs.append("vocabulary: " + ck["vocab"].difference(vocab, ("the checkpoint",
                                                                     "this text")))
    if optimizer is not None and type(optimizer).__name__ != ck["optimizer_name"]:
        diffs.append(f"optimizer {ck['optimizer_name']} in the checkpoint, "
                     f"{type(optimizer).__name__} here")
    if diffs:
        raise mt.CheckpointError(f"checkpoint '{path}' does not fit: " + "; ".join(diffs) +
                                 " (use the model settings and text it was saved with)")
    try:
        if model is not None:
            model.load_state_dict(ck["model"])
        if optimizer is not None:
            optimizer.load_state_dict(ck["optimizer"])
    except mt.CheckpointError as e:
        raise mt.CheckpointError(f"checkpoint '{path}' does not load: " +
                                 "; ".join(line.strip() for line in str(e).splitlines())) from None
    return ck


__all__ = ["CharLM", "CELLS", "Vocab", "DataError", "load_corpus", "corpus_files", "batches",
           "check_length", "save_checkpoint", "load_checkpoint", "bptt_differences",
           "gradcheck_chunk", "float64_copy"]
