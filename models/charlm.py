"""A character-level language model over any of the three cells, its checks and checkpoints."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

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

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from microtensor._types import FloatDType, State, StrPath

CELLS = ("rnn", "lstm", "gru")
FORMAT = "microtensor-charlm"


class CharLM(nn.Module):
    """Next-character logits from one-hot characters, with a vanilla RNN, an LSTM or a GRU.

    cell="rnn" is models.VanillaRNN(V, H, V) unchanged (its Wxh, Whh, Why, bh, by, as
    min-char-rnn); "lstm" and "gru" are models.LSTM / models.GRU followed by an nn.Linear
    head (H → V). Inputs are integer indices (T, B), time-major; the state is what
    initial_state(B) returns: h (B, H) for "rnn", h (1, B, H) for "gru", (h, c) for "lstm".
    """

    def __init__(self, vocab_size: int, hidden_size: int, cell: str = "rnn",
                 dtype: FloatDType = np.float64) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"CharLM: cell must be one of {', '.join(CELLS)}, got {cell!r}")
        for name, v in (("vocab_size", vocab_size), ("hidden_size", hidden_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"CharLM: {name} must be a positive integer, got {v!r}")
        self.vocab_size, self.hidden_size, self.cell_type = int(vocab_size), int(hidden_size), cell
        self.dtype = np.dtype(dtype)
        V, H = self.vocab_size, self.hidden_size
        self.rnn: VanillaRNN | LSTM | GRU           # as cell_type says
        if cell == "rnn":
            self.rnn = VanillaRNN(V, H, V, dtype=self.dtype)
        else:
            self.rnn = (LSTM if cell == "lstm" else GRU)(V, H, dtype=self.dtype)
            self.head = nn.Linear(H, V, dtype=self.dtype)

    def config(self) -> dict[str, Any]:
        """What defines this model's shape: CharLM(**config()) builds another like it."""
        return {"vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "cell": self.cell_type, "dtype": self.dtype.name}

    def initial_state(self, batch_size: int) -> State:
        """Zeros for a batch: h (B, H) for "rnn", h (1, B, H) for "gru", (h, c) for "lstm"."""
        H, dt = self.hidden_size, self.dtype
        if self.cell_type == "rnn":
            return mt.zeros(batch_size, H, dtype=dt)
        if self.cell_type == "lstm":
            return mt.zeros(1, batch_size, H, dtype=dt), mt.zeros(1, batch_size, H, dtype=dt)
        return mt.zeros(1, batch_size, H, dtype=dt)

    def state_to_arrays(self, state: State) -> list[np.ndarray]:
        """The state as a list of arrays (copies), for a checkpoint."""
        return [s.data.copy() for s in (state if isinstance(state, tuple) else (state,))]

    def state_from_arrays(self, arrays: Sequence[ArrayLike]) -> State:
        """The state back from state_to_arrays' list (as this model's dtype)."""
        parts = tuple(mt.tensor(np.asarray(a, dtype=self.dtype)) for a in arrays)
        return parts if self.cell_type == "lstm" else parts[0]

    def forward(self, xs: ArrayLike, state: State | None = None) -> tuple[mt.Tensor, State]:
        """xs (T, B) indices -> (logits (T, B, V), final state)."""
        x = self._one_hot(xs)
        if self.cell_type == "rnn":
            return self.rnn(x, state)
        out, state = self.rnn(x, state)
        return self.head(out), state

    def loss(self, xs: ArrayLike, targets: ArrayLike,
             state: State | None = None) -> tuple[mt.Tensor, State]:
        """Mean cross-entropy over all T×B positions of next-character targets (T, B).

        Returns (loss, final state); the state is still in the graph (detach it to carry
        it into the next chunk, as truncated BPTT does).
        """
        xs, targets = np.asarray(xs), np.asarray(targets)
        if targets.shape != xs.shape:
            raise mt.ShapeError(f"CharLM.loss: targets must have the shape of xs (T, B) = "
                                f"{xs.shape}; got {targets.shape}")
        if self.cell_type == "rnn":                 # a VanillaRNN, whose state is one h
            rnn = cast(VanillaRNN, self.rnn)
            return rnn.loss(self._one_hot(xs), targets, cast("mt.Tensor | None", state))
        logits, state = self(xs, state)
        T, B, V = logits.shape
        return F.cross_entropy(logits.reshape(T * B, V), targets.reshape(T * B)), state

    @mt.no_grad()
    def generate(self, prime: ArrayLike, length: int, temperature: float = 1.0,
                 rng: np.random.Generator | None = None, state: State | None = None) -> np.ndarray:
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
            z = logits.data[0, 0].astype(np.float64)
            if not np.isfinite(z).all():
                raise ValueError(f"CharLM.generate: the logits of character {i} are not finite "
                                 f"(the weights hold NaN or overflow)")
            with np.errstate(over="ignore", under="ignore"):   # a tiny temperature: argmax
                p = np.exp((z - z.max()) / temperature)
            idx = out[i] = rng.choice(self.vocab_size, p=p / p.sum())
        return out

    def _one_hot(self, xs):
        xs = np.asarray(xs)
        if xs.ndim != 2:
            raise mt.ShapeError(f"CharLM: expected character indices of shape (T, B), got "
                                f"{xs.shape}")
        return F.one_hot(xs, self.vocab_size, dtype=self.dtype)

    def extra_repr(self) -> str:
        """vocab_size, hidden_size, cell and dtype."""
        return f"vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, " \
               f"cell={self.cell_type!r}, dtype={self.dtype.name}"


def parameter_count(vocab_size: int, hidden_size: int, cell: str) -> int:
    """How many numbers CharLM(vocab_size, hidden_size, cell) holds, without building it."""
    V, H = vocab_size, hidden_size
    if cell == "rnn":                                   # Wxh, Whh, bh; Why, by
        return H * (V + H + 1) + V * (H + 1)
    g = {"lstm": 4, "gru": 3}[cell]                     # weight_ih, weight_hh, two biases; head
    return g * H * (V + H + 2) + V * (H + 1)


# Bytes per number of a training step, measured with tracemalloc (tests/models/test_charlm.py
# holds the estimate between the measured peak and 4× it): the parameters, their gradients,
# the optimizer's buffers and an update's temporaries; every time step's states, gates and
# their gradients, per hidden unit; the one-hot inputs, logits, probabilities and gradients.
PER_STATE = {"rnn": 12, "lstm": 50, "gru": 45}
PER_LOGIT = 12
OPTIMIZER_BUFFERS = {"Adam": 2, "Adagrad": 1, "SGD": 0}


def memory_estimate(vocab_size: int, hidden_size: int, cell: str, dtype: FloatDType, batch: int,
                    seq_len: int, optimizer: str = "Adam", chars: int = 0) -> int:
    """An upper bound, in bytes, of the memory training a CharLM takes: one truncated-BPTT
    step (seq_len × batch) with `optimizer` (a class name), plus a text of `chars`
    characters read, encoded and held as indices. Computed without allocating anything."""
    itemsize = np.dtype(dtype).itemsize
    P = parameter_count(vocab_size, hidden_size, cell)
    per_step = (4 + OPTIMIZER_BUFFERS.get(optimizer, 2)) * P + seq_len * batch * (
        PER_STATE[cell] * hidden_size + PER_LOGIT * vocab_size)
    return itemsize * per_step + 40 * chars


def float64_copy(model: CharLM) -> CharLM:
    """The same model in float64, without touching mt's random generator (for checks)."""
    rng_state = mt.get_rng_state()
    try:
        twin = CharLM(**{**model.config(), "dtype": np.float64})
    finally:
        mt.set_rng_state(rng_state)
    twin.load_state_dict(model.state_dict())
    return twin


def bptt_differences(model: CharLM, xs: ArrayLike, targets: ArrayLike,
                     h0: ArrayLike | None = None) -> dict[str, float]:
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


def gradcheck_chunk(model: CharLM, xs: ArrayLike, targets: ArrayLike, steps: int = 4,
                    seed: int = 0) -> list[str]:
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
def save_checkpoint(path: StrPath, model: CharLM, optimizer: mt.optim.Optimizer, step: int,
                    rng_state: Mapping[str, Any], vocab: Vocab, config: Mapping[str, Any],
                    state: State | None = None,
                    history: Mapping[str, Sequence[float]] | None = None) -> None:
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


FIELDS = {"format": str, "version": int, "step": int, "model_config": dict, "model": dict,
          "optimizer_name": str, "optimizer": dict, "rng": dict, "vocab": str, "config": dict,
          "history": dict}


def load_checkpoint(path: StrPath, model: CharLM | None = None,
                    optimizer: mt.optim.Optimizer | None = None,
                    vocab: Vocab | None = None) -> dict[str, Any]:
    """Read a checkpoint of save_checkpoint; if given, check that model, optimizer and vocab
    are those it was saved from and load it into them.

    Returns the checkpoint as a dict with 'vocab' as a Vocab. Raises mt.CheckpointError
    (one line) for a file that is not such a checkpoint, for one whose contents are not what
    save_checkpoint writes (a missing entry, a bad vocabulary or configuration, weights that
    do not fit it or are not finite, a negative step, …), or saying everything that differs
    from model, optimizer and vocab (cell, hidden size, dtype, vocabulary, optimizer);
    nothing is loaded then.
    """
    ck = mt.load(path)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise mt.CheckpointError(f"'{path}' is a microtensor checkpoint, but not one of a "
                                 f"CharLM (it was saved by something else)")
    problem = _contents_problem(ck)
    if problem:
        raise mt.CheckpointError(f"checkpoint '{path}' is not a valid CharLM checkpoint: "
                                 f"{problem}")
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
    if optimizer is not None and not diffs:
        diffs += _optimizer_problems(optimizer, ck["optimizer"])
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


def _is(v, kind):
    return isinstance(v, kind) and not (isinstance(v, bool) and kind is int)


def _contents_problem(ck):
    """What in a loaded checkpoint dict is not as save_checkpoint writes it, or None."""
    missing = [k for k in FIELDS if k not in ck] + ([] if "state" in ck else ["state"])
    if missing:
        return "it has no " + ", ".join(repr(k) for k in missing)
    wrong = [f"{k!r} is a {type(ck[k]).__name__}, not a {kind.__name__}"
             for k, kind in FIELDS.items() if not _is(ck[k], kind)]
    if wrong:
        return "; ".join(wrong)
    if ck["version"] != 1:
        return f"it is CharLM checkpoint version {ck['version']}; this code reads version 1"
    if ck["step"] < 0:
        return f"its step is {ck['step']}, below 0"
    try:
        vocab = Vocab(ck["vocab"])
    except ValueError as e:
        return f"its vocabulary is not usable ({e})"
    cfg = ck["model_config"]
    if set(cfg) != {"vocab_size", "hidden_size", "cell", "dtype"}:
        return f"its model_config has keys {sorted(map(str, cfg))}, not cell, dtype, " \
               f"hidden_size and vocab_size"
    if cfg["cell"] not in CELLS or cfg["dtype"] not in ("float32", "float64") or not (
            _is(cfg["hidden_size"], int) and cfg["hidden_size"] >= 1):
        return f"its model_config {cfg!r:.200} is not one of a CharLM (cell one of " \
               f"{', '.join(CELLS)}, dtype float32 or float64, a positive hidden_size)"
    if cfg["vocab_size"] != len(vocab):
        return f"its model_config says {cfg['vocab_size']!r} characters but its vocabulary " \
               f"has {len(vocab)}"
    weights = ck["model"].values()
    if not all(isinstance(w, np.ndarray) and w.dtype.kind == "f" for w in weights):
        return "its model weights are not all arrays of floats"
    need = parameter_count(len(vocab), cfg["hidden_size"], cfg["cell"])
    have = sum(w.size for w in weights)
    if have != need:
        return f"its model weights hold {have:,} numbers, but a {cfg['cell']} with " \
               f"{len(vocab)} characters and hidden size {cfg['hidden_size']:,} has {need:,}"
    if not all(np.isfinite(w).all() for w in weights):
        return "its model weights contain NaN or infinity (did the run diverge?)"
    if not (ck["state"] is None or isinstance(ck["state"], list) and all(
            isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in ck["state"])):
        return "its recurrent state is not a list of float arrays"
    if not all(isinstance(h, np.ndarray) and h.ndim == 1 and h.dtype.kind == "f"
               for h in ck["history"].values()):
        return "its history is not a set of 1-D float arrays"
    return None


def _optimizer_problems(optimizer, saved):
    """What in a saved optimizer state differs in kind from what `optimizer` keeps: each
    hyperparameter and per-parameter buffer is compared with those of a twin that took one
    step (arrays by shape, numbers as numbers), so a crafted state cannot break step()."""
    twin_params = [mt.tensor(np.zeros(p.shape, p.dtype), requires_grad=True)
                   for p in optimizer.params]
    twin = type(optimizer)(twin_params)
    twin.param_groups[0].update({k: v for k, v in optimizer.param_groups[0].items()
                                 if k != "params"})
    for p in twin_params:
        p.grad = np.zeros(p.shape, p.dtype)
    twin.step()
    ref = twin.state_dict()
    state, groups = saved.get("state"), saved.get("param_groups")
    if not (isinstance(state, dict) and isinstance(groups, list) and len(groups) == 1
            and isinstance(groups[0], dict)):
        return ["the optimizer state is not {'state': …, 'param_groups': [one group]}"]
    group, problems = groups[0], []

    def same_kind(v, r):
        if isinstance(r, np.ndarray):
            return isinstance(v, np.ndarray) and v.shape == r.shape and v.dtype.kind == "f"
        if isinstance(r, bool):
            return isinstance(v, bool)
        if isinstance(r, int):
            return _is(v, int) and v >= 0
        if isinstance(r, float):
            return not isinstance(v, bool) and isinstance(v, (int, float)) and \
                0 <= v < float("inf")
        if isinstance(r, (tuple, list)):
            return isinstance(v, (tuple, list)) and len(v) == len(r) and all(
                same_kind(a, b) for a, b in zip(v, r))
        return isinstance(v, type(r))

    for k, r in ref["param_groups"][0].items():
        if k != "params" and not same_kind(group.get(k), r):
            problems.append(f"optimizer hyperparameter {k!r} is {group.get(k)!r:.60}")
    for i, st in state.items():
        r = ref["state"].get(int(i) if str(i).isdigit() else -1)
        if r is None or not isinstance(st, dict) or set(st) != set(r) or not all(
                same_kind(st[k], r[k]) for k in r):
            problems.append(f"optimizer state of parameter {i!r} is not what "
                            f"{type(optimizer).__name__} keeps")
            break
    return problems


__all__ = ["CharLM", "CELLS", "Vocab", "DataError", "load_corpus", "corpus_files", "batches",
           "check_length", "save_checkpoint", "load_checkpoint", "bptt_differences",
           "gradcheck_chunk", "float64_copy", "parameter_count", "memory_estimate"]
