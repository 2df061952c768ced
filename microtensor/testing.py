"""gradcheck and gradgradcheck: analytic gradients against central finite differences, in float64."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import versions
from .autograd import enable_grad, no_grad
from .errors import DTypeError, GradcheckError
from .tensor import Tensor, grad

FULL_JACOBIAN_MAX = 16     # outputs up to this size are checked row by row


def gradcheck(fn: Callable[..., Tensor], inputs: Tensor | Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Check fn's gradients for every input that requires grad; True, or GradcheckError.

    Finite differences give the full Jacobian column by column. Small outputs compare it
    row by row against backward; larger ones through two random projections vᵀJ. Also
    checked (as torch.autograd.gradcheck): gradient shapes and dtypes, that a zero upstream
    gradient gives zero gradients, and that two backward passes agree exactly.
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise GradcheckError("gradcheck: no input requires grad, so there is nothing to check")
    for i in wrt:
        if inputs[i].dtype != np.float64:
            raise DTypeError(f"gradcheck: input {_label(inputs, i)} is {inputs[i].dtype}; finite "
                             f"differences need float64 inputs (cast with .astype('float64'))")
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise GradcheckError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    _check_deterministic(fn, inputs, out)
    rng = np.random.default_rng(0)
    if out.size <= FULL_JACOBIAN_MAX:
        projections = [row.reshape(out.shape) for row in np.eye(out.size)]
    else:
        projections = [rng.standard_normal(out.shape) for _ in range(2)]
    wrt_tensors = [inputs[i] for i in wrt]
    numeric = [_numeric_jacobian(fn, inputs, t, eps) for t in wrt_tensors]
    rows: dict[int, tuple[list, list]] = {i: ([], []) for i in wrt}   # vᵀJ of each projection: analytic, numeric
    for v in projections:
        analytic = grad(out, wrt_tensors, grad_outputs=v, retain_graph=True)
        again = grad(out, wrt_tensors, grad_outputs=v, retain_graph=True)
        for i, t, a, b, jac in zip(wrt, wrt_tensors, analytic, again, numeric):
            _check_meta(inputs, i, t, a)
            if not np.array_equal(a, b):
                raise GradcheckError(f"gradcheck: two backward passes disagree for input "
                                     f"{_label(inputs, i)}: the gradient is not deterministic")
            rows[i][0].append(a)
            rows[i][1].append(np.tensordot(v, jac, axes=v.ndim).reshape(t.shape))
    for i, (a_rows, n_rows) in rows.items():   # report the worst element over all rows
        if a_rows:
            _compare(inputs, i, np.stack(a_rows), np.stack(n_rows), atol, rtol,
                     out.shape if out.size <= FULL_JACOBIAN_MAX else None)
    zero = grad(out, wrt_tensors, grad_outputs=np.zeros(out.shape), retain_graph=True)
    for i, z in zip(wrt, zero):
        if np.any(z != 0):
            raise GradcheckError(f"gradcheck: a zero upstream gradient gave a non-zero "
                                 f"gradient for input {_label(inputs, i)}")
    return True


def gradgradcheck(fn: Callable[..., Tensor], inputs: Tensor | Sequence[Any],
                  grad_outputs: Any = None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3) -> bool:
    """Check fn's second derivatives; True, or GradcheckError (as torch.autograd.gradgradcheck).

    The gradient vᵀ ∂fn/∂inputs, taken with create_graph=True, is itself gradchecked as a
    function of the inputs and of v: finite differences of the analytic gradient against its
    own backward. grad_outputs: v, of fn's output shape (standard normal, seeded, when None).
    """
    from .functions import concat
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise GradcheckError("gradgradcheck: no input requires grad, so there is nothing to "
                             "check")
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise GradcheckError(f"gradgradcheck: fn must return a Tensor, got "
                             f"{type(out).__name__}")
    if grad_outputs is None:
        grad_outputs = np.random.default_rng(0).standard_normal(out.shape)
    v = Tensor(np.array(grad_outputs._data if isinstance(grad_outputs, Tensor) else grad_outputs,
                        dtype=np.float64), requires_grad=True)
    if v.shape != out.shape:
        raise GradcheckError(f"gradgradcheck: grad_outputs has shape {v.shape}, fn's output "
                             f"has shape {out.shape}")

    def first_derivative(*args):
        xs, u = args[:-1], args[-1]
        with enable_grad():
            gs = grad(fn(*xs), [xs[i] for i in wrt], grad_outputs=u, create_graph=True)
        return concat([g.reshape(-1) for g in gs])

    return gradcheck(first_derivative, (*inputs, v), eps=eps, atol=atol, rtol=rtol)


def _label(inputs, i):
    name = inputs[i].name
    return f"{i} ({name})" if name else str(i)


def _numeric_jacobian(fn, inputs, t, eps):
    """Array of shape out.shape + t.shape: ∂out/∂t by central differences.

    Each element of t.data is perturbed in place (by index, so a non-contiguous array is
    perturbed too) and restored even when fn raises or the user presses Ctrl-C; the graph
    of `out` has locked it, and the write is undone before that graph is used again.
    """
    data = t._data
    cols = []
    with no_grad(), versions.unlocked(data):
        for j in np.ndindex(data.shape):
            orig = data[j]
            try:
                data[j] = orig + eps
                plus = np.array(fn(*inputs)._data, dtype=np.float64)
                data[j] = orig - eps
                minus = np.array(fn(*inputs)._data, dtype=np.float64)
            finally:
                data[j] = orig
            cols.append((plus - minus) / (2 * eps))
    jac = np.stack(cols, axis=-1)
    return jac.reshape(jac.shape[:-1] + t.shape)


def _check_deterministic(fn, inputs, out):
    """fn must give the same output for the same inputs, or finite differences mean nothing."""
    with no_grad():
        again = fn(*inputs)._data
    if not np.array_equal(np.asarray(out._data), np.asarray(again), equal_nan=True):
        raise GradcheckError("gradcheck: fn gave different outputs for the same inputs, so "
                             "its finite differences are meaningless. Does it draw random "
                             "numbers (dropout, mt.randn) on each call? Draw them once outside "
                             "fn, or seed inside it (mt.manual_seed).")


def _check_meta(inputs, i, t, g):
    if g.shape != t.shape or g.dtype != t.dtype:
        raise GradcheckError(f"gradcheck: the gradient of input {_label(inputs, i)} has shape "
                             f"{g.shape} and dtype {g.dtype}; expected {t.shape} and {t.dtype}")


def _compare(inputs, i, a, n, atol, rtol, out_shape):
    """a, n: one row per projection. out_shape is given when the rows are the full Jacobian's."""
    err = np.abs(a - n) - (atol + rtol * np.abs(n))
    if not err.size:
        return
    err = np.where(np.isfinite(err), err, np.inf)
    row, *k = np.unravel_index(np.argmax(err), a.shape)
    if err[(row, *k)] <= 0:
        return
    k = tuple(map(int, k))
    at = (f"∂output[{tuple(map(int, np.unravel_index(row, out_shape)))}]" if out_shape is not None
          else f"random projection {row}")
    raise GradcheckError(
        f"gradcheck: input {_label(inputs, i)} disagrees at element {k}: analytic "
        f"{a[(row, *k)].item()!r} vs numeric {n[(row, *k)].item()!r} ({at}; atol={atol}, "
        f"rtol={rtol})")
