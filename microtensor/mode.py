"""Grad mode, name scopes and time steps: per thread and asyncio task (ContextVars), as in torch."""
from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import inspect
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Literal, NamedTuple

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._types import F


class _Off(enum.Enum):
    """The type of OFF: one member, so that `mode is not OFF` narrows the mode to a scope."""
    OFF = 0


OFF: Final = _Off.OFF   # current_mode() when no graph is recorded

# Ops read one value, current_mode(): OFF, or the current scope when grad is enabled: None
# outside any scope, a str inside name scopes, a Step inside a time step. Each tensor keeps it
# in .scope. set_mode keeps the three in step.
_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("microtensor_grad_enabled",
                                                               default=True)
_scope: contextvars.ContextVar[str | Step | None] = contextvars.ContextVar("microtensor_name_scope",
                                                                          default=None)
_mode: contextvars.ContextVar[str | Step | None | Literal[_Off.OFF]] = contextvars.ContextVar(
    "microtensor_mode", default=None)
# The modes that enclosing `with no_grad()/enable_grad()` blocks will restore. `with` blocks
# nest in LIFO order within a thread or task, so one stack per context serves every guard
# object, even one entered twice or shared by threads (state on the object would be mixed).
_saved: contextvars.ContextVar[tuple[bool, ...]] = contextvars.ContextVar("microtensor_saved_modes",
                                                                         default=())
current_mode = _mode.get


def current_scope() -> str | Step | None:
    """The name scope or time step ops made now are marked with (None outside any)."""
    return _scope.get()


def set_mode(enabled: bool, scope: str | Step | None) -> None:
    """Set grad mode and the scope together, and the one value ops read (current_mode)."""
    _enabled.set(enabled)
    _scope.set(scope)
    _mode.set(scope if enabled else OFF)


class _GradMode:
    """Sets grad mode for a `with` block; also a decorator, of generator functions too."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        _saved.set(_saved.get() + (_enabled.get(),))
        set_mode(self.enabled, _scope.get())

    def __exit__(self, *exc: object) -> None:
        stack = _saved.get()
        _saved.set(stack[:-1])
        set_mode(stack[-1], _scope.get())

    def __call__(self, fn: F) -> F:
        enabled = self.enabled
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                return (yield from _in_mode(enabled, fn(*args, **kwargs)))
            return generator  # type: ignore[return-value]  # functools.wraps keeps fn's signature

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(enabled):
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]


def _in_mode(enabled, gen):
    """Drive gen with the grad mode set while it runs and restored while it is suspended
    (torch wraps generators the same way): `yield from` alone would leak the mode."""
    value = None
    method = gen.send
    while True:
        try:
            with _GradMode(enabled):
                out = method(value)
        except StopIteration as stop:
            return stop.value
        try:
            value, method = (yield out), gen.send
        except GeneratorExit:
            with _GradMode(enabled):
                gen.close()
            raise
        except BaseException as e:      # thrown into us: pass it on inside the mode
            value, method = e, gen.throw


def no_grad() -> _GradMode:
    """Record no graph inside the block (context manager or decorator), as torch.no_grad."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Record the graph inside the block even within no_grad()."""
    return _GradMode(True)


def is_grad_enabled() -> bool:
    """Whether ops record the graph here (False inside mt.no_grad()), in this thread or task."""
    return _enabled.get()


@contextlib.contextmanager
def name_scope(name: str) -> Iterator[None]:
    """Mark every op made inside the block with `name` (nested scopes join with '/').

    Inside a time step the scope stays a Step, with `name` added to its `inner` part.
    """
    prev = _scope.get()
    set_mode(_enabled.get(), child_scope(prev, name))
    try:
        yield
    finally:
        set_mode(_enabled.get(), prev)


def child_scope(scope: str | Step | None, name: str | None) -> str | Step | None:
    """The scope `name` opened inside `scope` (None, a str or a Step keeps being a Step)."""
    if not name:
        return scope
    if isinstance(scope, Step):
        return scope._replace(inner=f"{scope.inner}/{name}" if scope.inner else name)
    return name if scope is None else f"{scope}/{name}"


class StateRecord:
    """What the steps of one recurrence hand on: its state's part names, which part is the
    output, and — when the unroller records them — the seq of every part after each step
    (`handed`, flat: step t's parts are handed[t·n : (t+1)·n]). None: mt.viz infers them."""
    __slots__ = ("names", "output_index", "handed")

    def __init__(self, names: tuple[str, ...], output_index: int = 0,
                 handed: list[int] | None = None) -> None:
        self.names, self.output_index, self.handed = names, output_index, handed

    def __repr__(self) -> str:
        return f"StateRecord({self.names!r}, output_index={self.output_index})"


class Step(NamedTuple):
    """The time step an op was made in, kept in its tensor's .scope: step `t` of the
    recurrence at `path` ('' at the top, 'layer0/reverse' inside Recurrent), with `inner`
    the name scopes opened inside the step and `states` its StateRecord (or None).

    A record rather than a string, so the unroller, mt.viz and error messages share one
    meaning and nothing parses a name back; str() reads as the path, 'layer0/t=3/gate'.
    """
    path: str
    t: int
    inner: str = ""
    states: StateRecord | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.path, f"t={self.t}", self.inner) if p)

    def __repr__(self) -> str:
        return f"Step({str(self)!r})"


_INFERRED: dict[object, StateRecord] = {}    # state names -> the record user loops share


class time_step:
    """Mark every op made inside the block as time step t (a context manager).

    For a loop of your own, as the unroller marks each step of nn.unroll: mt.viz then draws
    one cluster per step, in time order, and collapses long runs of them; errors name the
    step. The recurrence is the enclosing name scope (mt.name_scope("decoder")). With
    state_names, mt.viz labels what each step hands on: for one name, the last tensor the
    step makes that is used after it (h[t=3]); name other tensors with `tensor.name = …`.
    """
    __slots__ = ("t", "states", "prev")
    prev: str | Step | None

    def __init__(self, t: int, state_names: str | Sequence[str] | None = None) -> None:
        if type(t) is not int and not (isinstance(t, int) and not isinstance(t, bool)):
            raise TypeError(f"time_step: t must be an int, got {type(t).__name__}")
        self.t = t
        self.states = None if state_names is None else _record_for(state_names)

    # Grad mode cannot change on entering or leaving, so only the scope and the mode that
    # ops read are set (what set_mode does, two ContextVar writes instead of three).
    def __enter__(self) -> Self:
        prev = self.prev = _scope.get()
        step = _new_step(Step, ("" if prev is None else str(prev), self.t, "", self.states))
        _scope.set(step)
        _mode.set(step if _enabled.get() else OFF)
        return self

    def __exit__(self, *exc: object) -> None:
        prev = self.prev
        _scope.set(prev)
        _mode.set(prev if _enabled.get() else OFF)


def time_steps(n: int,
               state_names: str | Sequence[str] | None = None) -> Generator[int, None, None]:
    """range(n), with the ops made in iteration t marked as time step t: time_step for a
    `for` loop, at the unroller's cost per step (one generator resume, two ContextVar writes).

        for t in mt.time_steps(len(xs), state_names="h"):
            h = step(xs[t], h)

    The enclosing scope comes back when the loop ends (a break and an exception included:
    CPython closes the generator as the loop lets go of it).
    """
    if type(n) is not int and not (isinstance(n, int) and not isinstance(n, bool)):
        raise TypeError(f"time_steps: n must be an int, got {type(n).__name__}")
    return _steps(n, None if state_names is None else _record_for(state_names))


def _steps(n, states):
    prev = _scope.get()
    path = "" if prev is None else str(prev)
    enabled = _enabled.get()        # with blocks in the body restore it, so it holds throughout
    try:
        for t in range(n):
            step = _new_step(Step, (path, t, "", states))
            _scope.set(step)
            _mode.set(step if enabled else OFF)
            yield t
    finally:
        _scope.set(prev)
        _mode.set(prev if _enabled.get() else OFF)


_new_step = tuple.__new__       # Step(path, t, inner, states) without NamedTuple's Python-level
                                # __new__, a quarter of its cost: one is made every step


def _record_for(state_names):
    """The StateRecord user loops with these state names share (nothing is recorded in it)."""
    try:
        rec = _INFERRED.get(state_names)        # "h" and ("h",) name the same record
    except TypeError:                           # a list: normalised below
        rec = None
    if rec is not None:
        return rec
    names = (state_names,) if isinstance(state_names, str) else tuple(state_names)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"time_step: state_names must be a name or a tuple of names, got "
                        f"{state_names!r}")
    rec = _INFERRED.setdefault(names, StateRecord(names))
    if isinstance(state_names, str):
        _INFERRED[state_names] = rec
    return rec
