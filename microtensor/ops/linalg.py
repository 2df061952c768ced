"""Matrix products with NumPy's matmul rules: vectors, matrices and batched stacks."""
import numpy as np

from ..autograd import Gradient, Op, register


@register
class MatMul(Op):
    """a @ b;  ∂a = g @ bᵀ, ∂b = aᵀ @ g (1-D operands promoted to matrices and back)"""
    name = "matmul"
    reads_output, reads_inputs = False, (0, 1)

    @staticmethod
    def forward(a, b):
        return a @ b, None

    @staticmethod
    def backward(ctx, g):
        pa, pb = ctx.parents
        a, b = pa._data, pb._data
        if a.ndim == 2 and b.ndim == 2:       # the hot path of every recurrent step
            return (g @ b.T if pa.requires_grad else None), (a.T @ g if pb.requires_grad else None)
        xp = ctx.xp
        a1 = a[None, :] if a.ndim == 1 else a
        b1 = b[:, None] if b.ndim == 1 else b
        g1 = g                                # restore the dropped axes: n first, then m
        if b.ndim == 1:
            g1 = xp.expand_dims(g1, -1)
        if a.ndim == 1:
            g1 = xp.expand_dims(g1, -2)
        ga = gb = None
        if pa.requires_grad:
            ga = g1 @ xp.swapaxes(b1, -1, -2)
            ga = ga[..., 0, :] if a.ndim == 1 else ga
        if pb.requires_grad:
            gb = xp.swapaxes(a1, -1, -2) @ g1
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


class Outer(Gradient):
    """linear's weight gradient Σᵢ aᵢᵀbᵢ, kept as its factors until it is needed.

    A weight shared by T time steps then gets its gradient from one (out × TB) @ (TB × in)
    matmul instead of T outer products added one by one: the hoisted hand-written BPTT's
    trick, done by the engine. Once the factors hold FOLD_ROWS rows they are folded into
    the dense sum `acc`, which bounds their memory.
    """
    __slots__ = ("a", "b", "rows", "acc", "shape", "dtype")
    FOLD_ROWS = 4096

    def __init__(self, a, b):
        self.a, self.b, self.rows, self.acc = [a], [b], len(a), None
        self.shape, self.dtype = (a.shape[1], b.shape[1]), a.dtype
        if self.rows >= self.FOLD_ROWS:
            self._fold()

    def _fold(self):
        self.acc = self.dense()
        self.a, self.b, self.rows = [], [], 0

    def dense(self):
        """Σ aᵢᵀbᵢ as a new array (acc is this Gradient's own, made by an earlier fold)."""
        if not self.a:
            return self.acc
        if len(self.a) == 1:
            d = self.a[0].T @ self.b[0]
        else:
            d = np.concatenate(self.a).T @ np.concatenate(self.b)
        if self.acc is not None:
            d += self.acc
        return d

    def add_into(self, buf):
        buf += self.dense()
        return buf

    def merge(self, other):
        if type(other) is not Outer:
            return None
        self.a += other.a
        self.b += other.b
        self.rows += other.rows
        if other.acc is not None:              # the other side's folded sum counts too
            self.acc = other.acc if self.acc is None else self.acc + other.acc
        if self.rows >= self.FOLD_ROWS:
            self._fold()
        return self


@register
class Linear(Op):
    """x @ Wᵀ (+ b) for W of shape (out, in);  ∂x = g @ W, ∂W = gᵀx over leading axes, ∂b = g.

    One node instead of transpose, matmul and add (as torch.addmm): a recurrent step's
    h Whhᵀ + (x Wxhᵀ + bh) draws Whh itself into every step, keeps one array instead of
    three, and costs two ops less. ∂W is returned as its factors (Outer) so the engine
    sums a weight shared by T steps in one matmul. b may be any shape that broadcasts to
    the product's; one that would make the output larger is rejected, as torch does.
    """
    name = "linear"
    reads_output, reads_inputs = False, (0, 1)

    @staticmethod
    def forward(x, w, b=None):
        if w.ndim != 2 or x.ndim == 0:
            raise ValueError("linear needs a 2-D weight and an input with a feature axis")
        if x.ndim > 2:      # one 2-D product: NumPy's batched matmul is ~2x slower here
            y = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(x.shape[:-1] + w.shape[:1])
        else:
            y = x @ w.T
        if b is not None:
            y += b          # y is ours; b must broadcast to y's shape (y += raises otherwise)
        return y, None

    @staticmethod
    def backward(ctx, g):
        px, pw = ctx.parents[:2]
        x, w = px._data, pw._data
        gx = gw = None
        if px.requires_grad:
            gx = g @ w if g.ndim <= 2 else (g.reshape(-1, g.shape[-1]) @ w).reshape(x.shape)
        if pw.requires_grad:                  # Σ gᵢᵀxᵢ: factored (Outer) on the NumPy path
            gw = ctx.xp.outer(g if g.ndim == 2 else g.reshape(-1, g.shape[-1]),  # rows: every
                              x if x.ndim == 2 else x.reshape(-1, x.shape[-1]))  # leading axis
        return (gx, gw) if len(ctx.parents) == 2 else (gx, gw, g)

    @staticmethod
    def shape_error(sx, sw, sb=None):
        if len(sx) == 0:
            return f"linear: the input must have a feature axis; got a scalar (shape {sx})"
        if len(sw) != 2:
            return f"linear: weight must be 2-D (out_features, in_features); got shape {sw}"
        if sx[-1] != sw[1]:
            return (f"linear: input of shape {sx} has {sx[-1]} features on its last axis but "
                    f"weight of shape {sw} expects {sw[1]} (in_features)")
        if sb is not None:
            out = sx[:-1] + sw[:1]
            return (f"linear: bias of shape {sb} does not broadcast to the output shape "
                    f"{out} (a bias that would make the output larger is rejected, as in "
                    f"torch; add it after the product instead)")
        return None


@register
class LinearAdd(Linear):
    """x @ Wᵀ + c for any c that broadcasts against the product, as torch.addmm(c, x, Wᵀ).

    Linear's forward and backward (∂c = g): a recurrent step's h Whhᵀ plus its precomputed
    input row is one node that draws Whh into every step, under a name that says so.
    """
    name = "linear_add"

    @staticmethod
    def shape_error(sx, sw, sc):
        return Linear.shape_error(sx, sw) or (
            f"linear_add: the addend of shape {sc} does not broadcast against x @ weightᵀ "
            f"of shape {sx[:-1] + sw[:1]}")
