"""Recurrent cells: the RecurrentCell API, the unroller, stacked/bidirectional Recurrent, TBPTT."""
import numpy as np

from .. import functions as fn
from ..mode import current_scope, is_grad_enabled, set_mode
from ..creation import as_tensor
from ..errors import ShapeError
from ..tensor import Tensor
from .module import Module, ModuleList

__all__ = ["RecurrentCell", "Recurrent", "unroll", "detach_state", "truncated_bptt"]


class RecurrentCell(Module):
    """One step of a recurrence. Subclasses define `forward(x_t, state) -> state`.

    state is a Tensor of shape (B, hidden_size) or a tuple of them; `output_index` says
    which element of a tuple state is the output (LSTM: 0, the h of (h, c)). Optional:
    `precompute(xs)` maps the whole (T, B, I) input once before the loop (one matmul for
    the input projection of every step); the step then receives its row of the result.
    `make(input_size)` builds a fresh cell of the same kind for another layer or direction.
    """
    output_index = 0

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size

    def forward(self, x_t, state):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x_t, state)")

    def initial_state(self, batch_size, dtype=np.float64):
        """Zeros of shape (batch_size, hidden_size); override for tuple states."""
        return Tensor(np.zeros((batch_size, self.hidden_size), dtype=dtype))

    def precompute(self, xs):
        return xs

    def output(self, state):
        return state[self.output_index] if isinstance(state, tuple) else state

    def make(self, input_size):
        """A new cell like this one, with fresh parameters, taking input_size features."""
        return type(self)(input_size, self.hidden_size)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


def _check_state(cell, state, batch, where, name):
    """The state must have initial_state(batch)'s structure and shapes (and be Tensors)."""
    want = cell.initial_state(batch)
    shapes = [p.shape for p in _parts(want)]
    parts = _parts(state)
    for part in parts:
        if not isinstance(part, Tensor):
            raise TypeError(f"{name}: {where} must be a Tensor or a tuple of Tensors, got "
                            f"{type(part).__name__}")
    got = [p.shape for p in parts]
    if isinstance(state, tuple) != isinstance(want, tuple) or got != shapes:
        got = f"a tuple of shapes {got}" if isinstance(state, tuple) else f"shape {got[0]}"
        want = f"a tuple of shapes {shapes}" if isinstance(want, tuple) else f"shape {shapes[0]}"
        raise ShapeError(f"{name}: {where} has {got}; expected (B, H) = ({batch}, "
                         f"{cell.hidden_size}), that is {want} as initial_state({batch})")


def _check_lengths(cell, lengths, T, B):
    lengths = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
    if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
        raise ShapeError(f"{type(cell).__name__}: lengths must be {B} integers (one per "
                         f"sequence of the batch); got shape {lengths.shape}, dtype "
                         f"{lengths.dtype}")
    if lengths.min() < 1 or lengths.max() > T:
        raise ShapeError(f"{type(cell).__name__}: every length must be in 1..T = 1..{T}; got "
                         f"min {lengths.min()}, max {lengths.max()}")
    return lengths


def unroll(cell, xs, state=None, lengths=None, scope=None):
    """Run cell over xs (T, B, I) from state; return (outputs (T, B, H), final state).

    Every op made at step t carries the name scope "t=t" (prefixed by `scope`), which
    mt.viz draws as one cluster per step. With lengths (B,), sequence b stops at step
    lengths[b]: later steps keep its state unchanged (and so give them exactly zero
    gradient), its outputs there are 0, and its final state is the one at its last step.
    """
    name = type(cell).__name__ + (f" ({scope})" if scope else "")
    if isinstance(xs, np.ndarray):
        xs = as_tensor(xs)                 # shared, not copied
    if not isinstance(xs, Tensor) or xs.ndim != 3 or xs.shape[0] == 0:
        shape = xs.shape if hasattr(xs, "shape") else type(xs).__name__
        raise ShapeError(f"{name}: expected xs of shape (T, B, I) with T >= 1 (time-major, "
                         f"as torch.nn.RNN); got {shape}")
    T, B, I = xs.shape
    if I != cell.input_size:
        raise ShapeError(f"{name}: xs has {I} features, expected I = {cell.input_size} "
                         f"(xs of shape (T, B, I) = ({T}, {B}, {cell.input_size}))")
    if state is None:
        state = cell.initial_state(B, dtype=xs.dtype)
    else:
        _check_state(cell, state, B, "the initial state", name)
    shapes = [p.shape for p in _parts(state)]
    masks = None
    if lengths is not None:
        lengths = _check_lengths(cell, lengths, T, B)
        steps = np.arange(T)[:, None] < lengths[None, :]            # (T, B)
        masks = [Tensor(m[:, None]) for m in steps]
    outer, enabled = current_scope(), is_grad_enabled()
    base = "/".join(s for s in (outer, scope) if s) or None
    prefix = f"{base}/" if base else ""
    outputs = []
    single = not isinstance(state, tuple)
    try:
        set_mode(enabled, base)         # the input projection belongs to no single step
        xp = cell.precompute(xs)
        for t in range(T):
            set_mode(enabled, f"{prefix}t={t}")
            new = cell(xp[t], state)
            if not (single and isinstance(new, Tensor) and new.data.shape == shapes[0]):
                _check_step(name, new, shapes, t)
            if masks is not None and not steps[t].all():
                m = masks[t]
                parts = tuple(fn.where(m, n, s) for n, s in zip(_parts(new), _parts(state)))
                new = parts[0] if single else parts
                outputs.append(fn.where(m, cell.output(new), 0.0))
            else:
                outputs.append(cell.output(new))
            state = new
    finally:
        set_mode(enabled, outer)
    return fn.stack(outputs), state


def _check_step(name, new, shapes, t):
    """The state a step returned has the parts and shapes of the state it was given."""
    parts = _parts(new)
    if len(parts) != len(shapes) or any(
            not isinstance(p, Tensor) or p.shape != s for p, s in zip(parts, shapes)):
        got = [getattr(p, "shape", type(p).__name__) for p in parts]
        raise ShapeError(f"{name}.forward returned a state of shapes {got} at time step "
                         f"t={t}; expected the same shapes as the state it was given, {shapes}")


def _reverse_in_length(xs, lengths):
    """xs with each sequence's first lengths[b] steps reversed in place (padding stays)."""
    T, B = xs.shape[0], xs.shape[1]
    if lengths is None:
        return xs[::-1]
    t = np.arange(T)[:, None]
    src = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)      # (T, B)
    return xs[src, np.arange(B)[None, :]]


class Recurrent(Module):
    """Runs any RecurrentCell over a sequence, stacked num_layers deep, optionally both ways.

    forward(xs (T, B, I), state=None, lengths=None) -> (outputs, final_state), as
    torch.nn.RNN/LSTM: outputs (T, B, D·H) (D = 2 if bidirectional), and each part of the
    state of shape (L·D, B, H), layer-major then direction. The reverse direction runs a
    fresh copy of the cell (cell.make) over each sequence reversed within its own length.
    Dropout (training only) applies to each layer's outputs except the last.
    """

    def __init__(self, cell, num_layers=1, bidirectional=False, dropout=0.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"Recurrent: num_layers must be >= 1, got {num_layers}")
        if not 0 <= dropout < 1:
            raise ValueError(f"Recurrent: dropout must be in [0, 1), got {dropout}")
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        D = 2 if bidirectional else 1
        H = cell.hidden_size
        cells = []
        for layer in range(num_layers):
            for d in range(D):
                if layer == 0 and d == 0:
                    cells.append(cell)
                else:
                    cells.append(cell.make(cell.input_size if layer == 0 else D * H))
        self.cells = ModuleList(cells)

    def forward(self, xs, state=None, lengths=None):
        D = 2 if self.bidirectional else 1
        first = self.cells[0]
        if isinstance(xs, np.ndarray):
            xs = Tensor(xs)
        states = [None] * len(self.cells)     # a malformed xs: the first unroll says how
        if isinstance(xs, Tensor) and xs.ndim == 3:
            if lengths is not None:
                lengths = _check_lengths(first, lengths, xs.shape[0], xs.shape[1])
            states = self._split_state(state, xs.shape[1])
        finals = []
        layer_in = xs
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                cell = self.cells[k]
                scope = f"layer{layer}" if self.num_layers > 1 else None
                if d == 1:
                    scope = f"{scope}/reverse" if scope else "reverse"
                    rev = _reverse_in_length(layer_in, lengths)
                    out, fin = unroll(cell, rev, states[k], lengths, scope)
                    out = _reverse_in_length(out, lengths)
                else:
                    out, fin = unroll(cell, layer_in, states[k], lengths, scope)
                outs.append(out)
                finals.append(fin)
            layer_in = outs[0] if D == 1 else fn.concat(outs, axis=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                from ..functional import dropout
                layer_in = dropout(layer_in, self.dropout)
        return layer_in, self._join_state(finals)

    def _split_state(self, state, B):
        n = len(self.cells)
        if state is None:
            return [None] * n
        want = self.cells[0].initial_state(B)
        shapes = [(n, *p.shape) for p in _parts(want)]
        parts = _parts(state)
        got = [getattr(p, "shape", type(p).__name__) for p in parts]
        if isinstance(state, tuple) != isinstance(want, tuple) or got != shapes or \
                not all(isinstance(p, Tensor) for p in parts):
            kind = f"a tuple of {len(shapes)} tensors" if isinstance(want, tuple) else "a Tensor"
            raise ShapeError(f"Recurrent({type(self.cells[0]).__name__}): the initial state "
                             f"must be {kind} of shape (L·D, B, H) = ({n}, {B}, "
                             f"{self.cells[0].hidden_size}); got "
                             f"{got if isinstance(state, tuple) else got[0]}")
        per_cell = [tuple(p[k] for p in parts) for k in range(n)]
        return [s if isinstance(state, tuple) else s[0] for s in per_cell]

    def _join_state(self, finals):
        if isinstance(finals[0], tuple):
            return tuple(fn.stack([f[i] for f in finals]) for i in range(len(finals[0])))
        return fn.stack(finals)

    def extra_repr(self):
        return f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, " \
               f"dropout={self.dropout}"


def detach_state(state):
    """The state cut from the graph (a Tensor or a tuple of them)."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def truncated_bptt(step, xs, targets, chunk, state=None, optimizer=None, clip=None):
    """Walk a long sequence in chunks of `chunk` steps, carrying the state detached between.

    step(xs_chunk, targets_chunk, state) -> (loss, new_state) builds one chunk's graph;
    each chunk's loss.backward() runs before the next. With an optimizer, each chunk is
    one update (zero_grad, backward, optional clip_grad_norm_, step), as the classic
    char-RNN; without, gradients accumulate over all chunks. What this drops: the part of
    every gradient that flows across a chunk boundary — a loss at step t sees only the
    steps back to its chunk's start, so dependencies longer than `chunk` get no gradient.
    Returns (list of chunk losses as floats, final state detached).
    """
    if chunk < 1:
        raise ValueError(f"truncated_bptt: chunk must be >= 1, got {chunk}")
    losses = []
    T = xs.shape[0]
    for t0 in range(0, T, chunk):
        if optimizer is not None:
            optimizer.zero_grad()
        loss, state = step(xs[t0:t0 + chunk], targets[t0:t0 + chunk], state)
        loss.backward()
        if optimizer is not None:
            if clip is not None:
                from .utils import clip_grad_norm_
                clip_grad_norm_(optimizer.params, clip)
            optimizer.step()
        losses.append(loss.item())
        state = detach_state(state)
    return losses, state

