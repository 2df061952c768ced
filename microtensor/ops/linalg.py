"""Matrix products with NumPy's matmul rules: vectors, matrices and batched stacks."""
import numpy as np

from ..autograd import Op, register


def _swap(x):
    return np.swapaxes(x, -1, -2)


@register
class MatMul(Op):
    """a @ b;  ∂a = g @ bᵀ, ∂b = aᵀ @ g (1-D operands promoted to matrices and back)"""
    name = "matmul"
    broadcasts = True

    @staticmethod
    def forward(a, b):
        return a @ b, (a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        pa, pb = ctx.parents
        if a.ndim == 2 and b.ndim == 2:       # the hot path of every recurrent step
            return (g @ b.T if pa.requires_grad else None), (a.T @ g if pb.requires_grad else None)
        a1 = a[None, :] if a.ndim == 1 else a
        b1 = b[:, None] if b.ndim == 1 else b
        g1 = g
        if a.ndim == 1:
            g1 = np.expand_dims(g1, -2)
        if b.ndim == 1:
            g1 = np.expand_dims(g1, -1)
        ga = gb = None
        if pa.requires_grad:
            ga = g1 @ _swap(b1)
            ga = ga[..., 0, :] if a.ndim == 1 else ga
        if pb.requires_grad:
            gb = _swap(a1) @ g1
            gb = gb[..., 0] if b.ndim == 1 else gb
        return ga, gb

    @staticmethod
    def shape_error(sa, sb):
        if len(sa) == 0 or len(sb) == 0:
            return f"matmul: both operands need at least 1 dimension; got shapes {sa} and {sb}"
        ka = sa[-1]
        kb = sb[0] if len(sb) == 1 else sb[-2]
        if ka != kb:
            return (f"matmul: shapes {sa} and {sb} are not aligned: the last axis of the "
                    f"first ({ka}) must equal the {'only' if len(sb) == 1 else 'second-to-last'}"
                    f" axis of the second ({kb})")
        try:
            np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            return (f"matmul: batch dimensions of shapes {sa} and {sb} do not broadcast: "
                    f"{sa[:-2]} vs {sb[:-2]}")
        return None
