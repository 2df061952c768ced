"""Elementwise ops; NumPy broadcasts them, and the engine sums gradients back to each shape."""
import numpy as np

from ..autograd import Op, register


def _broadcast_error(name):
    def message(*shapes, **attrs):
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            shown = " and ".join(str(s) for s in shapes)
            return f"{name}: cannot broadcast shapes {shown} (NumPy broadcasting rules)"
        return None
    return staticmethod(message)


@register
class Add(Op):
    """a + b;  ∂a = g, ∂b = g"""
    name = "add"
    reads_output, reads_inputs = False, ()
    ufunc = np.add
    shape_error = _broadcast_error("add")

    @staticmethod
    def backward(ctx, g):
        return g, g


@register
class Sub(Op):
    """a − b;  ∂a = g, ∂b = −g"""
    name = "sub"
    reads_output, reads_inputs = False, ()
    ufunc = np.subtract
    shape_error = _broadcast_error("sub")

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.parents[1].requires_grad else None)


@register
class Mul(Op):
    """a · b;  ∂a = g·b, ∂b = g·a"""
    name = "mul"
    reads_output, reads_inputs = False, (0, 1)
    ufunc = np.multiply
    shape_error = _broadcast_error("mul")

    @staticmethod
    def backward(ctx, g):
        pa, pb = ctx.parents
        return (g * pb._data if pa.requires_grad else None), \
               (g * pa._data if pb.requires_grad else None)


@register
class Div(Op):
    """a / b;  ∂a = g/b, ∂b = −g·y/b"""
    name = "div"
    reads_output, reads_inputs = True, (1,)
    ufunc = np.true_divide
    shape_error = _broadcast_error("div")

    @staticmethod
    def backward(ctx, g):
        pb = ctx.parents[1]
        ga = g / pb._data
        return ga, (-ga * ctx._data if pb.requires_grad else None)


@register
class Pow(Op):
    """a ** b;  ∂a = g·b·a^(b−1), ∂b = g·y·ln a.

    At the points where those formulas give nan or ±inf for a value with a limit, torch's
    choices: ∂a = 0 where b = 0 (x⁰ is constant, even at x = 0), and ∂b = 0 where a = 0
    and b ≥ 0 (0^b is constant there).
    """
    name = "pow"
    reads_output, reads_inputs = True, (0, 1)
    ufunc = np.power
    shape_error = _broadcast_error("pow")

    @staticmethod
    def backward(ctx, g):
        pa, pb = ctx.parents
        a, b, xp = pa._data, pb._data, ctx.xp
        av, bv = xp.constant(a), xp.constant(b)          # their values, for the masks
        ga = gb = None
        # Where a mask applies, a 1 is put in for a before the formula too ("double where"):
        # the formula's inf there (0⁻¹, log 0) is masked out of the gradient, but not out of
        # its own derivative, where 0 · inf = nan would reach a second derivative.
        with np.errstate(divide="ignore", invalid="ignore"):
            if pa.requires_grad:
                if np.all(bv):
                    ga = g * b * a ** (b - 1)
                else:                                    # a Python 0 takes ga's dtype
                    zero = bv == 0
                    ga = xp.where(zero, 0, g * b * xp.where(zero, 1, a) ** (b - 1))
            if pb.requires_grad:
                if np.all(av):
                    gb = g * ctx._data * xp.log(a)
                else:
                    flat = (av == 0) & (bv >= 0)
                    gb = xp.where(flat, 0, g * ctx._data * xp.log(xp.where(flat, 1, a)))
        return ga, gb


@register
class Maximum(Op):
    """max(a, b) elementwise; at ties each input gets half the gradient (as torch.maximum)."""
    name = "maximum"
    reads_output, reads_inputs = False, (0, 1)
    shape_error = _broadcast_error("maximum")

    @staticmethod
    def forward(a, b):
        return np.maximum(a, b), (a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        share = (a > b) + 0.5 * (a == b)
        return g * share.astype(g.dtype), g * (1 - share).astype(g.dtype)


@register
class Minimum(Op):
    """min(a, b) elementwise; at ties each input gets half the gradient (as torch.minimum)."""
    name = "minimum"
    reads_output, reads_inputs = False, (0, 1)
    shape_error = _broadcast_error("minimum")

    @staticmethod
    def forward(a, b):
        return np.minimum(a, b), (a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        share = (a < b) + 0.5 * (a == b)
        return g * share.astype(g.dtype), g * (1 - share).astype(g.dtype)


@register
class Where(Op):
    """where(cond, a, b);  ∂a = g where cond, ∂b = g elsewhere (cond is not differentiable)"""
    name = "where"
    reads_output, reads_inputs = False, ()

    @staticmethod
    def forward(a, b, cond):
        return np.where(cond, a, b), cond

    @staticmethod
    def backward(ctx, g):
        cond, xp = ctx.saved, ctx.xp
        zero = np.zeros((), dtype=g.dtype)
        return xp.where(cond, g, zero), xp.where(cond, zero, g)

    @staticmethod
    def shape_error(sa, sb, cond):
        try:
            np.broadcast_shapes(cond.shape, sa, sb)
        except ValueError:
            return (f"where: cannot broadcast cond, a and b of shapes {cond.shape}, {sa} and "
                    f"{sb} (NumPy broadcasting rules)")
        return None


@register
class Neg(Op):
    """−a;  ∂a = −g"""
    name = "neg"
    reads_output, reads_inputs = False, ()
    ufunc = np.negative

    @staticmethod
    def backward(ctx, g):
        return (-g,)


@register
class Exp(Op):
    """eᵃ;  ∂a = g·y"""
    name = "exp"
    reads_output, reads_inputs = True, ()
    ufunc = np.exp

    @staticmethod
    def backward(ctx, g):
        return (g * ctx._data,)


@register
class Log(Op):
    """ln a;  ∂a = g/a"""
    name = "log"
    reads_output, reads_inputs = False, (0,)
    ufunc = np.log

    @staticmethod
    def backward(ctx, g):
        return (g / ctx.parents[0]._data,)


@register
class Tanh(Op):
    """tanh a;  ∂a = g·(1 − y²)"""
    name = "tanh"
    reads_output, reads_inputs = True, ()
    ufunc = np.tanh

    @staticmethod
    def backward(ctx, g):
        y = ctx._data
        return (g * (1 - y * y),)


@register
class Sigmoid(Op):
    """σ(a) = 1/(1 + e⁻ᵃ);  ∂a = g·y·(1 − y)"""
    name = "sigmoid"
    reads_output, reads_inputs = True, ()

    @staticmethod
    def forward(a):
        # e^−|a| never overflows; σ is 1/(1 + e) for a ≥ 0 and e/(1 + e) below, the same
        # function: one division of the chosen numerator (each element's bits are those of
        # its branch's division), 7 NumPy calls instead of 9
        e = np.exp(-np.abs(a))
        return np.where(a >= 0, np.ones((), e.dtype), e) / (1 + e), None

    @staticmethod
    def backward(ctx, g):
        y = ctx._data
        return (g * y * (1 - y),)


@register
class Relu(Op):
    """max(a, 0);  ∂a = g where a > 0 (the subgradient at 0 is 0, as in PyTorch)"""
    name = "relu"
    reads_output, reads_inputs = True, ()

    @staticmethod
    def forward(a):
        return np.maximum(a, 0), None

    @staticmethod
    def backward(ctx, g):
        return (g * (ctx._data > 0),)


@register
class Sqrt(Op):
    """√a;  ∂a = g/(2y)"""
    name = "sqrt"
    reads_output, reads_inputs = True, ()
    ufunc = np.sqrt

    @staticmethod
    def backward(ctx, g):
        return (g / (2 * ctx._data),)


@register
class Abs(Op):
    """|a|;  ∂a = g·sign(a) (0 at a = 0, as in PyTorch)"""
    name = "abs"
    reads_output, reads_inputs = False, (0,)
    ufunc = np.abs

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        return (g * xp.sign(xp.constant(ctx.parents[0]._data)),)


@register
class Clip(Op):
    """clip(a, lo, hi);  ∂a = g where lo ≤ a ≤ hi (bounds inclusive, as torch.clamp)"""
    name = "clip"
    reads_output, reads_inputs = True, (0,)

    @staticmethod
    def forward(a, lo=None, hi=None):
        return np.clip(a, lo, hi), a

    @staticmethod
    def backward(ctx, g):
        return (g * (ctx.saved == ctx.xp.constant(ctx._data)),)   # a, where clip kept it


@register
class Cast(Op):
    """a as another float dtype;  ∂a = g cast back to a's dtype"""
    name = "cast"
    reads_output, reads_inputs = False, ()

    @staticmethod
    def forward(a, dtype):
        return a.astype(dtype), a.dtype

    @staticmethod
    def backward(ctx, g):
        return (g.astype(ctx.saved),)
