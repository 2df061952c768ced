"""Every differentiable op, registered in autograd.REGISTRY for the gradient tests."""
from ..autograd import REGISTRY, Op, register
from .elementwise import (Abs, Add, Cast, Clip, Div, Exp, Log, Maximum, Minimum, Mul, Neg,
                          Pow, Relu, Sigmoid, Sqrt, Sub, Tanh, Where)
from .linalg import Linear, MatMul
from .reduce import CrossEntropy, LogSoftmax, Max, Mean, Min, Softmax, Sum, normalize_axis
from .shape import (BroadcastTo, Concat, ExpandDims, GetItem, Reshape, ScatterAdd, Squeeze,
                    Stack, Transpose, normalize_index)
from . import xp  # noqa: E402  (after linalg and shape, whose gradient forms it names)
