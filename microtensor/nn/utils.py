"""Gradient clipping, in place on the parameters' .grad (stamped writes), as torch.nn.utils."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .. import versions
from ..tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    # a Tensor .grad (left by backward(create_graph=True)) is clipped in its values, as torch
    return [p.grad if isinstance(p.grad, np.ndarray) else p.grad._data
            for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0) -> float:
    """Scale all gradients together so their joint norm is at most max_norm.

    The factor max_norm / (norm + 1e-6) is applied only when it is below 1. Returns the
    total norm before clipping, as a float (0.0 when no parameter has a gradient).
    """
    grads = _grads(parameters)
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    else:
        total = sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1 / norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            with versions.writing_array(g):
                g *= coef
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into [−clip_value, clip_value]."""
    for g in _grads(parameters):
        with versions.writing_array(g):
            np.clip(g, -clip_value, clip_value, out=g)
