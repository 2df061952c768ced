"""microtensor: exact reverse-mode autodiff on NumPy, and the recurrent models built on it."""
import typing as _typing

import numpy as np

from .mode import Step, enable_grad, is_grad_enabled, name_scope, no_grad, time_step, time_steps
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .creation import (arange, as_tensor, full, generator, get_rng_state, manual_seed, ones,
                       ones_like, rand, randn, set_rng_state, tensor, zeros, zeros_like)
from .errors import (AnomalyError, ArgumentError, CheckpointError, DTypeError, GradcheckError,
                     GraphError, GraphGrowthWarning, GuardError, IndexOutOfRange,
                     MicrotensorError, ShapeError, VersionError)
from .functions import (abs, broadcast_to, clip, concat, exp, expand_dims, flatten, log,
                        matmul, max, maximum, mean, min, minimum, relu, reshape, sigmoid, split,
                        sqrt, squeeze, stack, sum, tanh, transpose, where)
from .tensor import Tensor, grad
from .testing import gradcheck, gradgradcheck
from . import functional  # noqa: E402

float32, float64, int64, bool_ = np.float32, np.float64, np.int64, np.bool_

if _typing.TYPE_CHECKING:       # loaded lazily by __getattr__ below; type checkers see them here
    from . import nn, optim, viz
    from .compiler import CompileWarning, Compiled, compile
    from .serialization import load, save


def __getattr__(name: str) -> object:
    """nn, optim and viz load on first use, so `import microtensor` needs only NumPy."""
    import importlib
    if name in ("nn", "optim", "viz"):
        return importlib.import_module(f".{name}", __name__)
    if name in ("compile", "CompileWarning", "Compiled"):     # issue 17: mt.compile
        return getattr(importlib.import_module(".compiler", __name__), name)
    if name in ("save", "load"):
        return getattr(importlib.import_module(".serialization", __name__), name)
    raise AttributeError(f"module 'microtensor' has no attribute {name!r}")
