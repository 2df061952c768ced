"""Recurrent cells: the RecurrentCell API, the unroller, stacked/bidirectional Recurrent, TBPTT."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import functions as fn
from ..creation import as_tensor
from ..errors import MicrotensorError, ShapeError
from ..mode import (StateRecord, Step, _new_step, child_scope, current_scope, is_grad_enabled,
                    set_mode)
from ..tensor import Tensor
from ..versions import PRIVATE
from .layers import check_dtype
from .module import Module, ModuleList

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from typing_extensions import Self

    from .._types import FloatDType, State
    from ..optim import Optimizer

__all__ = ["RecurrentCell", "Recurrent", "unroll", "detach_state", "truncated_bptt"]

class RecurrentCell(Module):
    """One step of a recurrence: subclasses define `forward(x_t, state) -> state`.

    state_names: the parts of the state, each (B, hidden_size). The default ("h",) makes the
        state one Tensor h; ("h", "c") makes it a tuple (h, c). The default initial_state,
        the unroller's checks and error messages, and mt.viz's labels (h[t=3], c[t=3])
        follow from it. output_index: the part that is the step's output (0: h of (h, c)).
        A cell that declares no state_names but overrides initial_state (as cells did
        before state_names) has the parts that returns, named s0, s1, ….
    precompute(xs): optional; maps the whole time-major input (T, B, I) once, before the
        loop (the input projection of every step in one matmul). forward then receives
        precompute(xs)[t] as x_t; without it, x_t is the input itself, (B, I).
    Replication: a cell records the arguments its constructor was called with, and
        make(input_size) calls the constructor again with the same arguments but the input
        size (the argument named input_size, else the first one). nn.Recurrent builds every
        other layer and direction this way, so a cell keeps its whole configuration.
    """
    state_names: tuple[str, ...] = ("h",)
    output_index: int = 0
    _declares_state = False             # set per subclass: does it (or a base) declare them?

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names, k = cls.state_names, cls.output_index
        cls._declares_state = any("state_names" in vars(c) for c in cls.__mro__[:-1]
                                  if c is not RecurrentCell)
        if not (isinstance(names, tuple) and names and all(isinstance(n, str) for n in names)
                and len(set(names)) == len(names)):
            raise TypeError(f"{cls.__name__}.state_names must be a non-empty tuple of distinct "
                            f"strings, such as ('h',) or ('h', 'c'); got {names!r}")
        if not (isinstance(k, int) and 0 <= k < (len(names) if cls._declares_state else 99)):
            raise TypeError(f"{cls.__name__}.output_index must index state_names {names}; "
                            f"got {k!r} (a tuple state declares its parts: state_names = "
                            f"('h', 'c'))")
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _recording(init)  # type: ignore[method-assign]  # records args for make

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size

    def forward(self, x_t: Tensor, state: Any) -> State:
        """One step: x_t is precompute(xs)[t] (the input (B, I) unless precompute is
        overridden); state is what state_names declares. Returns the new state."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(x_t, state)")

    def initial_state(self, batch_size: int, dtype: FloatDType = np.float64) -> State:
        """Zeros of shape (batch_size, hidden_size) for each part of the state."""
        parts = tuple(Tensor(np.zeros((batch_size, self.hidden_size), dtype=dtype))
                      for _ in self.state_names)
        return parts if len(parts) > 1 else parts[0]

    def precompute(self, xs: Tensor) -> Tensor:
        """xs (T, B, I), time-major, to what forward receives row by row (identity here)."""
        return xs

    def output(self, state: Any) -> Tensor:
        """The part of a state that is the step's output: state[output_index] of a tuple."""
        return state[self.output_index] if isinstance(state, tuple) else state

    def make(self, input_size: int) -> Self:
        """A new cell like this one, with fresh parameters, taking input_size features."""
        config = self.__dict__.get("_config")
        if config is None:
            raise TypeError(f"{type(self).__name__}.make: this cell was not built by its "
                            f"constructor, so its arguments are unknown; override make")
        args, kwargs = config
        sig = inspect.signature(type(self).__init__)
        bound = sig.bind(self, *args, **kwargs)
        params = list(sig.parameters.values())[1:]
        which = "input_size" if "input_size" in sig.parameters else (
            params[0].name if params and params[0].kind in (
                params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD) else None)
        if which is None:
            raise TypeError(f"{type(self).__name__}.make: cannot tell which constructor "
                            f"argument is the input size; name it input_size or override make")
        bound.arguments[which] = input_size
        return type(self)(*bound.args[1:], **bound.kwargs)

    def extra_repr(self) -> str:
        """input_size, hidden_size."""
        return f"{self.input_size}, {self.hidden_size}"


def _recording(init):
    """init, recording the arguments of the outermost call (the cell's own class) for make."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_config" not in self.__dict__:
            self.__dict__["_config"] = (args, kwargs)
        init(self, *args, **kwargs)
    return __init__


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


def _names(cell, state):
    """The names of the state's parts: state_names, or for a cell that declares none, its
    initial state's parts as s0, s1, … (cells that only override initial_state)."""
    if cell._declares_state or not isinstance(state, tuple):
        return cell.state_names
    return tuple(f"s{i}" for i in range(len(state)))


def _structure(names, H, B):
    """'a Tensor h of shape (B, H)' or 'a tuple (h, c) of shapes [...]', for messages."""
    if len(names) == 1:
        return f"a Tensor {names[0]} of shape (B, H) = ({B}, {H})"
    return f"a tuple ({', '.join(names)}) of {len(names)} Tensors, each (B, H) = ({B}, {H})"


def _check_dtype(cell, name, what, dtype):
    """An input's float dtype must be the cell's parameters' (nn.layers.check_dtype)."""
    for p in cell.parameters():
        check_dtype(name, what, dtype, p._data.dtype)
        return


def _check_state(cell, state, batch, where, name):
    """The state must have the parts state_names declares, each (B, H), as Tensors."""
    parts = _parts(state)
    want = cell.initial_state(batch)
    structure = _structure(_names(cell, want), cell.hidden_size, batch)
    for part in parts:
        if not isinstance(part, Tensor):
            raise TypeError(f"{name}: {where} must be {structure}; got a "
                            f"{type(part).__name__}")
    shapes = [p.shape for p in _parts(want)]
    got = [p.shape for p in parts]
    if isinstance(state, tuple) != isinstance(want, tuple) or got != shapes:
        got = f"a tuple of shapes {got}" if isinstance(state, tuple) else f"shape {got[0]}"
        raise ShapeError(f"{name}: {where} has {got}; expected {structure} "
                         f"(shapes {shapes if len(shapes) > 1 else shapes[0]}, as "
                         f"initial_state({batch}))")
    for part in parts:
        _check_dtype(cell, name, where, part._data.dtype)


def _check_initial(cell, state, name):
    """initial_state() itself must match the state_names a cell declares."""
    n = len(_parts(state))
    if not cell._declares_state:
        if cell.output_index >= n:
            raise TypeError(f"{name}: output_index is {cell.output_index} but initial_state "
                            f"returned {n} part(s); declare the parts, e.g. state_names = "
                            f"{('h', 'c') if n == 2 else ('h',)}")
        return
    if isinstance(state, tuple) != (len(cell.state_names) > 1) or n != len(cell.state_names):
        kind = f"a tuple of {n} tensors" if isinstance(state, tuple) else "one Tensor"
        example = ("h",) if n == 1 else ("h", "c") if n == 2 else tuple(f"s{i}" for i in range(n))
        raise TypeError(f"{name}.initial_state returned {kind}, but state_names is "
                        f"{cell.state_names}; declare the parts of the state as a class "
                        f"attribute, e.g. state_names = {example}")


def _check_lengths(cell: RecurrentCell, lengths: Tensor | ArrayLike, T: int,
                   B: int) -> np.ndarray:
    lengths = np.asarray(lengths._data if isinstance(lengths, Tensor) else lengths)
    if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
        raise ShapeError(f"{type(cell).__name__}: lengths must be {B} integers (one per "
                         f"sequence of the batch); got shape {lengths.shape}, dtype "
                         f"{lengths.dtype}")
    if lengths.min() < 1 or lengths.max() > T:
        raise ShapeError(f"{type(cell).__name__}: every length must be in 1..T = 1..{T}; got "
                         f"min {lengths.min()}, max {lengths.max()}")
    return lengths


def unroll(cell: RecurrentCell, xs: Tensor | np.ndarray, state: State | None = None,
           lengths: Tensor | ArrayLike | None = None, scope: str | None = None,
           batch_first: bool = False) -> tuple[Tensor, State]:
    """Run cell over xs (T, B, I) from state; return (outputs (T, B, H), final state).

    batch_first: xs is (B, T, I) and outputs (B, T, H), as torch's batch_first; the state
    keeps its layout. Every op made at step t carries the record mt.Step(path, t) in its
    .scope (path: `scope` inside the enclosing name scope), which mt.viz draws as one
    cluster per step; each step's state is recorded for mt.viz's labels. With lengths (B,),
    sequence b stops at step lengths[b]: later steps keep its state unchanged (and so give
    them exactly zero gradient), its outputs there are 0, and its final state is the one at
    its last step. xs and state must have the parameters' float dtype (DTypeError).
    """
    name = type(cell).__name__ + (f" ({scope})" if scope else "")
    if isinstance(xs, np.ndarray):
        xs = as_tensor(xs)                 # shared, not copied
    layout = "(B, T, I)" if batch_first else "(T, B, I)"
    if not isinstance(xs, Tensor) or xs.ndim != 3 or xs.shape[1 if batch_first else 0] == 0:
        shape = xs.shape if hasattr(xs, "shape") else type(xs).__name__
        how = "batch_first" if batch_first else \
            "time-major, as torch.nn.RNN; pass batch_first=True for (B, T, I)"
        raise ShapeError(f"{name}: expected xs of shape {layout} with T >= 1 ({how}); got {shape}")
    if batch_first:
        xs = xs.transpose(1, 0, 2)         # a view: the loop runs time-major
    T, B, I = xs.shape
    if I != cell.input_size:
        dims = (B, T, cell.input_size) if batch_first else (T, B, cell.input_size)
        raise ShapeError(f"{name}: xs has {I} features, expected I = {cell.input_size} "
                         f"(xs of shape {layout} = {dims})")
    _check_dtype(cell, name, "xs", xs._data.dtype)
    if state is None:
        state = cell.initial_state(B, dtype=xs.dtype)
        _check_initial(cell, state, type(cell).__name__)
        for part in _parts(state):              # made here, held by nobody else: no lock
            if part.op is None and part.saved is None:    # to take (versions.PRIVATE)
                part.saved = PRIVATE
    else:
        _check_state(cell, state, B, "the initial state", name)
    shapes = [p.shape for p in _parts(state)]
    masks = None
    if lengths is not None:
        lengths = _check_lengths(cell, lengths, T, B)
        steps = np.arange(T)[:, None] < lengths[None, :]            # (T, B)
        masks = [Tensor(m[:, None]) for m in steps]
    outer, enabled = current_scope(), is_grad_enabled()
    around = child_scope(outer, scope)     # the input projection belongs to no single step
    base = "" if around is None else str(around)
    names = _names(cell, state)
    handed: list[int] = []
    record = StateRecord(names, cell.output_index, handed)
    outputs = []
    single = not isinstance(state, tuple)
    t = None
    try:
        set_mode(enabled, around)
        xp = cell.precompute(xs)
        for t in range(T):
            set_mode(enabled, _new_step(Step, (base, t, "", record)))
            new = cell(xp[t], state)
            if not (single and isinstance(new, Tensor) and new._data.shape == shapes[0]):
                _check_step(names, name, new, state, t)
            if masks is not None and not steps[t].all():
                m = masks[t]
                parts = tuple(fn.where(m, n, s) for n, s in zip(_parts(new), _parts(state)))
                new = parts[0] if single else parts
                outputs.append(fn.where(m, cell.output(new), 0.0))
            else:
                outputs.append(cell.output(new))
            if single:
                handed.append(new.seq)
            else:
                handed.extend([p.seq for p in new])
            state = new
    except MicrotensorError as e:
        if t is None or str(e).startswith(name):    # before the loop, or ours: as it is
            raise
        err = type(e)(f"{name}, time step t={t}: {e}")
        err.__dict__.update(vars(e))            # what the error carries (AnomalyError.tensor)
        raise err from e
    finally:
        set_mode(enabled, outer)
    return fn.stack(outputs, axis=1 if batch_first else 0), state


def _check_step(names, name, new, state, t):
    """The state a step returned has the parts and shapes of the state it was given."""
    parts, given = _parts(new), _parts(state)
    shapes = [p.shape for p in given]
    want = (f"a tuple ({', '.join(names)}) of shapes {shapes}" if len(names) > 1
            else f"one Tensor {names[0]} of shape {shapes[0]}")
    if isinstance(new, tuple) != isinstance(state, tuple) or len(parts) != len(given):
        got = f"a tuple of {len(parts)}" if isinstance(new, tuple) else \
            f"a {type(new).__name__}"
        fix = (f"return ({', '.join(names)})" if len(names) > 1 else
               f"return one Tensor, or declare state_names with {len(parts)} names for a "
               f"tuple state")
        raise ShapeError(f"{name}.forward returned {got} at time step t={t}; its state is "
                         f"{want} (state_names = {names}): {fix}")
    if any(not isinstance(p, Tensor) or p.shape != s for p, s in zip(parts, shapes)):
        got = [getattr(p, "shape", type(p).__name__) for p in parts]
        raise ShapeError(f"{name}.forward returned a state of shapes {got} at time step "
                         f"t={t}; expected the same shapes as the state it was given, {shapes} "
                         f"({', '.join(names)})")


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
    state of shape (L·D, B, H), layer-major then direction. batch_first: xs (B, T, I) and
    outputs (B, T, D·H); the state keeps its layout. Every other layer and direction runs
    cell.make(...): a fresh cell built with the same arguments as `cell` but its input size.
    The reverse direction reads each sequence reversed within its own length. Dropout
    (training only) applies to each layer's outputs except the last.
    """

    def __init__(self, cell: RecurrentCell, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, batch_first: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"Recurrent: num_layers must be >= 1, got {num_layers}")
        if not 0 <= dropout < 1:
            raise ValueError(f"Recurrent: dropout must be in [0, 1), got {dropout}")
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.batch_first = batch_first
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

    def forward(self, xs: Tensor | np.ndarray, state: State | None = None,
                lengths: Tensor | ArrayLike | None = None) -> tuple[Tensor, State]:
        """Every layer and direction run over xs: (outputs, final state), as the class says."""
        D = 2 if self.bidirectional else 1
        first = self.cells[0]
        if isinstance(xs, np.ndarray):
            xs = Tensor(xs)
        states = [None] * len(self.cells)     # a malformed xs: the first unroll says how
        batch_first = self.batch_first
        if isinstance(xs, Tensor) and xs.ndim == 3:
            if batch_first:
                xs, batch_first = xs.transpose(1, 0, 2), False
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
                    out, fin = unroll(cell, layer_in, states[k], lengths, scope, batch_first)
                outs.append(out)
                finals.append(fin)
            layer_in = outs[0] if D == 1 else fn.concat(outs, axis=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                from ..functional import dropout
                layer_in = dropout(layer_in, self.dropout)
        if self.batch_first:
            layer_in = layer_in.transpose(1, 0, 2)
        return layer_in, self._join_state(finals)

    def _split_state(self, state, B):
        n = len(self.cells)
        if state is None:
            return [None] * n
        first = self.cells[0]
        want = first.initial_state(B)
        names = _names(first, want)
        shapes = [(n, *p.shape) for p in _parts(want)]
        parts = _parts(state)
        got = [getattr(p, "shape", type(p).__name__) for p in parts]
        if isinstance(state, tuple) != (len(names) > 1) or got != shapes or \
                not all(isinstance(p, Tensor) for p in parts):
            kind = (f"a tuple ({', '.join(names)}) of {len(names)} tensors" if len(names) > 1
                    else f"a Tensor {names[0]}")
            raise ShapeError(f"Recurrent({type(first).__name__}): the initial state "
                             f"must be {kind} of shape (L·D, B, H) = ({n}, {B}, "
                             f"{first.hidden_size}); got "
                             f"{got if isinstance(state, tuple) else got[0]}")
        per_cell = [tuple(p[k] for p in parts) for k in range(n)]
        return [s if isinstance(state, tuple) else s[0] for s in per_cell]

    def _join_state(self, finals):
        if isinstance(finals[0], tuple):
            return tuple(fn.stack([f[i] for f in finals]) for i in range(len(finals[0])))
        return fn.stack(finals)

    def extra_repr(self) -> str:
        """num_layers, bidirectional, dropout (and batch_first when set)."""
        return f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, " \
               f"dropout={self.dropout}" + (", batch_first=True" if self.batch_first else "")


def detach_state(state: State) -> State:
    """The state cut from the graph (a Tensor or a tuple of them)."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def truncated_bptt(step: Callable[[Any, Any, Any], tuple[Tensor, Any]], xs: Tensor | np.ndarray,
                   targets: Tensor | np.ndarray, chunk: int, state: Any = None,
                   optimizer: Optimizer | None = None,
                   clip: float | None = None) -> tuple[list[float], Any]:
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
