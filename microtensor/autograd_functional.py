"""torch.autograd.functional's API: jacobian, hessian, vjp, jvp, hvp, vhp (mt.autograd.functional).

Same signatures and results as torch's: `inputs` is a Tensor or a tuple of them and each
result has the matching structure; results are Tensors, cut from the graph unless
create_graph=True (then they can be differentiated again); an input the outputs do not
depend on gets zeros, or an error with strict=True. jvp and hvp use the double-backward
trick, as torch does: a vjp taken with create_graph=True is linear in its upstream
gradient u, and differentiating it with respect to u gives the forward-mode product.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import ArgumentError, GraphError, ShapeError
from .mode import enable_grad
from .tensor import Tensor, _grads, _leaf

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Union

    from ._types import TensorOrTensors

    Func = Callable[..., TensorOrTensors]     # called with the inputs, as func(*inputs)
    Result = Union[Tensor, tuple[Tensor, ...]]
    Nested = Union[Tensor, tuple[Tensor, ...], tuple[tuple[Tensor, ...], ...]]

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]


def vjp(func: Func, inputs: TensorOrTensors, v: TensorOrTensors | None = None,
        create_graph: bool = False, strict: bool = False) -> tuple[Result, Result]:
    """vᵀ ∂func/∂inputs: returns (func(*inputs), vjp), vjp shaped as inputs.

    v: of func's output structure; may be None only for a one-element output."""
    with enable_grad():
        in_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided "
                                       "function", "vjp")
        _check_outputs(outputs, strict)
        v = _vector(v, outputs, out_tuple, create_graph, "vjp", _ONE_OUTPUT)
    res = _grad(outputs, inputs, v, create_graph)
    res = _zeros_for_none(res, inputs, strict, create_graph, "back")
    return _unpack(_finish(outputs, create_graph), out_tuple), \
        _unpack(_finish(res, create_graph), in_tuple)


def jvp(func: Func, inputs: TensorOrTensors, v: TensorOrTensors | None = None,
        create_graph: bool = False, strict: bool = False) -> tuple[Result, Result]:
    """∂func/∂inputs · v: returns (func(*inputs), jvp), jvp shaped as func's outputs.

    v: of the inputs' structure; may be None only for a one-element input."""
    with enable_grad():
        in_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        v = _vector(v, inputs, in_tuple, create_graph, "jvp", _ONE_INPUT)
        out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided "
                                       "function", "jvp")
        _check_outputs(outputs, strict)
        u = tuple(_leaf(np.zeros_like(o._data)).requires_grad_() for o in outputs)
        grad_inputs = _grad(outputs, inputs, u, create_graph=True)
        if strict:
            for i, g in enumerate(grad_inputs):
                if g is None or not g.requires_grad:
                    raise GraphError(f"jvp: the gradient with respect to input {i} is "
                                     f"independent of the inputs of the user-provided "
                                     f"function. This is not allowed in strict mode.")
    res = _grad(grad_inputs, u, v, create_graph)
    res = _zeros_for_none(res, outputs, strict, create_graph, "back_trick")
    return _unpack(_finish(outputs, create_graph), out_tuple), \
        _unpack(_finish(res, create_graph), out_tuple)


def jacobian(func: Func, inputs: TensorOrTensors, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode") -> Nested:
    """∂func/∂inputs: for one output and one input a Tensor of shape out.shape + in.shape;
    a tuple over inputs, nested in a tuple over outputs, when either is a tuple.

    vectorize and strategy are torch's; microtensor computes row by row in reverse mode
    whatever they say, which gives the same values."""
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ArgumentError(f"jacobian: strategy must be 'forward-mode' or 'reverse-mode', "
                            f"got {strategy!r}")
    if vectorize and strict:
        raise ArgumentError("jacobian: strict=True and vectorize=True are not supported "
                            "together (as in torch); set one of them to False")
    with enable_grad():
        in_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided "
                                       "function", "jacobian")
        _check_outputs(outputs, strict)
        jac = []
        for i, out in enumerate(outputs):
            rows: list[list[Tensor]] = [[] for _ in inputs]
            for j in range(out._data.size):
                e = np.zeros(out.shape, dtype=out.dtype)
                e.flat[j] = 1                        # row j: the gradient of out.flat[j]
                vj = _grad((out,), inputs, (e,), create_graph, retain_graph=True)
                for k, (g, x) in enumerate(zip(vj, inputs)):
                    if g is None:
                        if strict:
                            raise GraphError(f"jacobian: output {i} of the user-provided "
                                             f"function is independent of input {k}. This "
                                             f"is not allowed in strict mode.")
                        g = _leaf(np.zeros_like(x._data))
                    elif strict and create_graph and not g.requires_grad:
                        raise GraphError(f"jacobian: the jacobian of the user-provided "
                                         f"function is independent of input {k}. This is "
                                         f"not allowed in strict mode when "
                                         f"create_graph=True.")
                    rows[k].append(g)
            jac.append(tuple(_stack(r, out.shape + x.shape, x) for r, x in zip(rows, inputs)))
    return _unpack(_finish(tuple(jac), create_graph), (out_tuple, in_tuple))


def hessian(func: Func, inputs: TensorOrTensors, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode") -> Nested:
    """∂²func/∂inputs² of a function with one-element output: for one input a Tensor of
    shape in.shape + in.shape; for a tuple, a tuple of tuples, `H[i][j]`."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")

    def scalar(*xs):
        out = func(*xs)
        if not isinstance(out, Tensor):
            raise ArgumentError("hessian: the function given to hessian should return a "
                                "single Tensor")
        _check_outputs((out,), strict)
        if out._data.size != 1:
            raise ShapeError(f"hessian: the Tensor returned by the function given to "
                             f"hessian should contain a single element; it has shape "
                             f"{out.shape}")
        return out.reshape(())

    def gradient(*xs):
        jac = jacobian(scalar, xs, create_graph=True)
        if strict:
            for i, g in enumerate(jac):
                if not g.requires_grad:
                    raise GraphError(f"hessian: while computing the hessian, found that "
                                     f"the jacobian of the user-provided function with "
                                     f"respect to input {i} is independent of the input. "
                                     f"This is not allowed in strict mode.")
        return jac

    res = jacobian(gradient, inputs, create_graph=create_graph, strict=strict,
                   vectorize=vectorize, strategy=outer_jacobian_strategy)
    return _unpack(res, (in_tuple, in_tuple))


def vhp(func: Func, inputs: TensorOrTensors, v: TensorOrTensors | None = None,
        create_graph: bool = False, strict: bool = False) -> tuple[Tensor, Result]:
    """vᵀ H of a function with one-element output: returns (func(*inputs), vhp), vhp shaped
    as inputs. v: of the inputs' structure; may be None only for a one-element input."""
    with enable_grad():
        in_tuple, inputs, v, outputs, jac = _hessian_start(func, inputs, v, create_graph,
                                                           strict, "vhp")
    res = _grad(jac, inputs, v, create_graph)
    res = _zeros_for_none(res, inputs, strict, create_graph, "double_back")
    return _unpack(_finish(outputs, create_graph), False), \
        _unpack(_finish(res, create_graph), in_tuple)


def hvp(func: Func, inputs: TensorOrTensors, v: TensorOrTensors | None = None,
        create_graph: bool = False, strict: bool = False) -> tuple[Tensor, Result]:
    """H v of a function with one-element output: returns (func(*inputs), hvp), hvp shaped
    as inputs. Computed as torch does, by the double-backward trick on vᵀ H."""
    with enable_grad():
        in_tuple, inputs, v, outputs, jac = _hessian_start(func, inputs, v, create_graph,
                                                           strict, "hvp")
        u = tuple(_leaf(np.zeros_like(x._data)).requires_grad_() for x in inputs)
        double_back = _grad(jac, inputs, u, create_graph=True)
    res = _grad(double_back, u, v, create_graph)
    res = _zeros_for_none(res, inputs, strict, create_graph, "double_back_trick")
    return _unpack(_finish(outputs, create_graph), False), \
        _unpack(_finish(res, create_graph), in_tuple)


# ---- shared steps ----------------------------------------------------------------------

_ONE_OUTPUT = "the user-provided function returns a single Tensor with a single element"
_ONE_INPUT = "the input to the user-provided function is a single Tensor with a single element"


def _hessian_start(func, inputs, v, create_graph, strict, name):
    """vhp's and hvp's first steps: inputs, v, the output and its gradient (with a graph)."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", name)
    inputs = _prepare(inputs, create_graph, need_graph=True)
    v = _vector(v, inputs, in_tuple, create_graph, name, _ONE_INPUT)
    out = func(*inputs)
    if not isinstance(out, Tensor):
        raise ArgumentError(f"{name}: the function given to {name} should return a single "
                            f"Tensor, got {type(out).__name__}")
    _check_outputs((out,), strict)
    if out._data.size != 1:
        raise ShapeError(f"{name}: the Tensor returned by the function given to {name} "
                         f"should contain a single element; it has shape {out.shape}")
    jac = _grad((out,), inputs, None, create_graph=True)
    if strict:
        for i, g in enumerate(jac):
            if g is None or not g.requires_grad:
                raise GraphError(f"{name}: the jacobian of the user-provided function with "
                                 f"respect to input {i} is independent of the input. This "
                                 f"is not allowed in strict mode.")
    return in_tuple, inputs, v, (out,), jac


def _as_tuple(x, what, name):
    """(whether x was a tuple, x as a tuple of Tensors)."""
    is_tuple = isinstance(x, (tuple, list))
    xs = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(xs):
        if not isinstance(t, Tensor):
            where = f"the value at index {i}" if is_tuple else f"the given {what}"
            raise ArgumentError(f"{name}: the {what} must be a Tensor or a tuple of Tensors, "
                                f"but {where} has type {type(t).__name__}")
    return is_tuple, xs


def _prepare(xs, create_graph, need_graph):
    """The tensors func is called with: the inputs themselves when create_graph and they
    require grad (so the results keep their graph), else cut from the graph."""
    return tuple(x if create_graph and x.requires_grad else
                 _leaf(x._data).requires_grad_(need_graph and x._data.dtype.kind == "f")
                 for x in xs)


def _vector(v, like, like_tuple, create_graph, name, when):
    """v checked against `like` (one Tensor per entry, same shapes); None only where `like`
    is a single one-element Tensor (the gradient then starts from 1)."""
    if v is None:
        if len(like) != 1 or like[0]._data.size != 1:
            raise ArgumentError(f"{name}: the vector v can only be None if {when}")
        return None
    _, v = _as_tuple(v, "v", name)
    v = _prepare(v, create_graph, need_graph=False)
    if len(v) != len(like):
        raise ShapeError(f"{name}: v is a tuple of invalid length: should be {len(like)} "
                         f"but got {len(v)}" if like_tuple else
                         f"{name}: the given v should contain a single Tensor")
    for i, (a, b) in enumerate(zip(v, like)):
        if a.shape != b.shape:
            raise ShapeError(f"{name}: {f'entry {i} in ' if like_tuple else ''}v has invalid "
                             f"size: should be {b.shape} but got {a.shape}")
    return v


def _check_outputs(outputs, strict):
    if strict:
        for i, o in enumerate(outputs):
            if not o.requires_grad:
                raise GraphError(f"output {i} of the user-provided function does not require "
                                 f"gradients. The outputs must be computed in a "
                                 f"differentiable manner from the input when running in "
                                 f"strict mode.")


def _grad(outputs, inputs, grad_outputs, create_graph, retain_graph=None):
    """mt.grad over the outputs that require grad, with None for an input none of them
    reaches; Tensors (cut from the graph unless create_graph)."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o is not None and o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    found = _grads([o for o, _ in pairs], list(inputs), [g for _, g in pairs],
                   retain_graph, create_graph)
    return tuple(g if g is None or create_graph else _leaf(g) for _, g in found)


def _zeros_for_none(grads, like, strict, create_graph, stage):
    out = []
    for i, (g, x) in enumerate(zip(grads, like)):
        if g is None:
            if strict:
                raise GraphError(_STRICT_NONE[stage].format(i=i))
            g = _leaf(np.zeros_like(x._data))
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if "double" in stage else "jacobian"
            raise GraphError(f"the {what} of the user-provided function is independent of "
                             f"input {i}. This is not allowed in strict mode when "
                             f"create_graph=True.")
        out.append(g)
    return tuple(out)


_STRICT_NONE = {
    "back": "the output of the user-provided function is independent of input {i}. This is "
            "not allowed in strict mode.",
    "back_trick": "the gradient with respect to the input is independent of entry {i} in the "
                  "grad_outputs when using the double backward trick to compute forward mode "
                  "gradients. This is not allowed in strict mode.",
    "double_back": "the jacobian of the user-provided function is independent of input {i}. "
                   "This is not allowed in strict mode.",
    "double_back_trick": "the hessian of the user-provided function is independent of entry "
                         "{i} in the grad_jacobian. This is not allowed in strict mode as it "
                         "prevents from using the double backward trick to replace forward "
                         "mode AD.",
}


def _stack(rows, shape, like):
    """The rows of one Jacobian block as a Tensor of `shape` (out.shape + in.shape)."""
    if not rows:                                    # an output with no elements
        return _leaf(np.zeros(shape, dtype=like.dtype))
    from .functions import stack
    return stack(rows).reshape(shape)


def _finish(xs, create_graph):
    """Results cut from the graph unless create_graph (nested tuples kept)."""
    if create_graph:
        return xs
    return tuple(_finish(x, False) if isinstance(x, tuple) else _leaf(x._data) for x in xs)


def _unpack(res, was_tuple):
    """Undo _as_tuple: was_tuple is a bool, or (outputs, inputs) for a nested result."""
    if isinstance(was_tuple, tuple):
        outer, inner = was_tuple
        if not inner:
            res = tuple(r[0] for r in res)
        return res if outer else res[0]
    return res if was_tuple else res[0]
