"""Grad mode and name scopes: per thread and asyncio task (ContextVars), as in torch."""
import contextlib
import contextvars
import functools
import inspect

OFF = object()   # current_mode() when no graph is recorded

# Ops read one value, current_mode(): OFF, or the current name scope (a str, or None outside
# any scope) when grad is enabled; set_mode keeps the three in step.
_enabled = contextvars.ContextVar("microtensor_grad_enabled", default=True)
_scope = contextvars.ContextVar("microtensor_name_scope", default=None)
_mode = contextvars.ContextVar("microtensor_mode", default=None)
# The modes that enclosing `with no_grad()/enable_grad()` blocks will restore. `with` blocks
# nest in LIFO order within a thread or task, so one stack per context serves every guard
# object, even one entered twice or shared by threads (state on the object would be mixed).
_saved = contextvars.ContextVar("microtensor_saved_modes", default=())
current_mode = _mode.get


def current_scope():
    return _scope.get()


def set_mode(enabled, scope):
    _enabled.set(enabled)
    _scope.set(scope)
    _mode.set(scope if enabled else OFF)


class _GradMode:
    """Sets grad mode for a `with` block; also a decorator, of generator functions too."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        _saved.set(_saved.get() + (_enabled.get(),))
        set_mode(self.enabled, _scope.get())

    def __exit__(self, *exc):
        stack = _saved.get()
        _saved.set(stack[:-1])
        set_mode(stack[-1], _scope.get())

    def __call__(self, fn):
        enabled = self.enabled
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                return (yield from _in_mode(enabled, fn(*args, **kwargs)))
            return generator

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(enabled):
                return fn(*args, **kwargs)
        return wrapper


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


def no_grad():
    """Record no graph inside the block (context manager or decorator), as torch.no_grad."""
    return _GradMode(False)


def enable_grad():
    """Record the graph inside the block even within no_grad()."""
    return _GradMode(True)


def is_grad_enabled():
    return _enabled.get()


@contextlib.contextmanager
def name_scope(name):
    """Mark every op made inside the block with `name` (nested scopes join with '/').

    The recurrent unroller marks time step t with "t=3"; the renderer clusters by these marks.
    """
    prev = _scope.get()
    set_mode(_enabled.get(), name if prev is None else f"{prev}/{name}")
    try:
        yield
    finally:
        set_mode(_enabled.get(), prev)
