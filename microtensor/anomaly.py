"""Anomaly mode, as torch.autograd.detect_anomaly: where a NaN or an infinity was born.

With it on, every op's output is checked as it is made, and every gradient a backward
returns as the walk computes it. The first non-finite value raises AnomalyError naming the
op, its time step (the unroller's scope "t=k"), the tensor's name and shape, the first bad
element, and the user's lines that made it: the forward stack of every recorded node is kept
(in this mode only) so that a NaN found in backward points at its forward line too. The
tensor is marked, and mt.viz draws it red (`err.tensor` is the one to draw). Off, it costs
one flag test per op and nothing per backward node (checks.careful_below).
"""
from __future__ import annotations

import functools
import linecache
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .autograd import STATE, Gradient
from .errors import AnomalyError
from .mode import current_scope

if TYPE_CHECKING:
    from numpy import ndarray
    from typing_extensions import Self

    from ._types import F, Frame, TensorLike
    from .autograd import Op
    from .tensor import Tensor

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
TRACE_DEPTH = 40      # frames kept per node
SHOWN = 6             # the user's innermost frames shown in a message


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly mode on or off for the whole process (as torch.autograd)."""
    STATE.anomaly = bool(mode)


def is_anomaly_enabled() -> bool:
    """Whether anomaly mode is on (set_detect_anomaly, or inside detect_anomaly())."""
    return STATE.anomaly


class detect_anomaly:
    """Anomaly mode inside a `with` block (or a decorated function); the mode before is
    restored after."""

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self._before: list[bool] = []

    def __enter__(self) -> Self:
        self._before.append(STATE.anomaly)
        STATE.anomaly = self.mode
        return self

    def __exit__(self, *exc: object) -> None:
        STATE.anomaly = self._before.pop()

    def __call__(self, fn: F) -> F:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(mode):
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]  # functools.wraps keeps fn's signature


def _stack():
    """(file, line, function) from the op's caller outwards."""
    f, out = sys._getframe(2), []
    while f is not None and len(out) < TRACE_DEPTH:
        out.append((f.f_code.co_filename, f.f_lineno, f.f_code.co_name))
        f = f.f_back
    return out


def format_trace(trace: list[Frame], title: str) -> str:
    """The user's innermost frames of a kept stack, as a traceback prints them."""
    user = [fr for fr in trace if not fr[0].startswith(_PACKAGE)] or trace
    lines = [f"{title} (most recent call last):"]
    for file, line, name in reversed(user[:SHOWN]):
        lines.append(f'  File "{file}", line {line}, in {name}')
        src = linecache.getline(file, line).strip()
        if src:
            lines.append(f"    {src}")
    return "\n".join(lines)


def _first_bad(a):
    """(index, value) of the first NaN or infinity of a float array, or None."""
    if a.dtype.kind not in "fc" or np.isfinite(a).all():
        return None
    idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    return idx, a[idx].item()


def _label(t):
    name = t.name
    return (f"'{name}', " if name else "") + f"shape {t._data.shape}"


def _mark(t, what):
    t._get_meta().anomaly = what


def check_forward(t: Tensor, op: type[Op], parents: tuple[Tensor, ...]) -> None:
    """After op made t: keep where (for backward's messages), and raise on NaN or Inf."""
    if t.op is not None:
        t._get_meta().trace = _stack()
    bad = _first_bad(t._data)
    if bad is None:
        return
    idx, value = bad
    scope = t.scope if t.op is not None else current_scope()
    where = f"op '{op.name}'" + (f" (made in {scope})" if scope else "")
    inputs = []
    for i, p in enumerate(parents):
        pb = _first_bad(p._data)
        if pb is not None:
            inputs.append(f"its input {i} ({_label(p)}) already holds {pb[1]} at {pb[0]}: "
                          f"it was made outside anomaly mode, or is data you passed in")
            continue
        try:
            there = np.broadcast_to(p._data, t._data.shape)[idx].item()
            inputs.append(f"input {i} there: {there!r}")
        except ValueError:
            inputs.append(f"input {i} ({_label(p)}) is finite")
    _mark(t, f"{value} in its value")
    raise AnomalyError(
        f"anomaly: {where} produced {value} in its output ({_label(t)}), first at element "
        f"{idx}; {'; '.join(inputs)}.\n"
        + format_trace(_stack(), "Traceback of the forward line that made it"), t)


def check_backward(node: Tensor, g: TensorLike,
                   out: Sequence[ndarray | Gradient | Tensor | None]) -> None:
    """After node's backward returned out for incoming gradient g: raise on NaN or Inf."""
    assert node.op is not None and node.parents is not None     # a node, never a leaf
    where = f"op '{node.op.name}'" + (f" (made in {node.scope})" if node.scope else "")
    trace = node._meta.trace if node._meta is not None else None
    tail = ("\n" + format_trace(trace, "Traceback of the forward line that made the op")
            if trace else "\n(the op was made before anomaly mode was turned on: no forward "
                          "line was kept)")
    bad = _first_bad(np.asarray(g))
    if bad is not None:
        _mark(node, f"{bad[1]} in its gradient")
        raise AnomalyError(f"anomaly: the gradient reaching the output of {where} "
                           f"({_label(node)}) holds {bad[1]}, first at element {bad[0]}: it "
                           f"was passed to backward() so, or made by an op outside anomaly "
                           f"mode." + tail, node)
    for i, (p, gp) in enumerate(zip(node.parents, out)):
        if gp is None:
            continue
        arr = gp.dense() if isinstance(gp, Gradient) else np.asarray(gp)
        bad = _first_bad(arr)
        if bad is not None:
            _mark(node, f"its backward made {bad[1]} (input {i})")
            raise AnomalyError(
                f"anomaly: the backward of {where} returned {bad[1]} in the gradient of its "
                f"input {i} ({_label(p)}), first at element {bad[0]}, from a finite "
                f"incoming gradient (output {_label(node)})." + tail, node)
