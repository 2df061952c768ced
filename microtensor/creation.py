"""Tensor factories and microtensor's own seeded random generator."""
import numpy as np

from .tensor import Tensor, _leaf

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed the generator behind randn, rand, nn.init and Dropout, for reproducible runs."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def generator():
    """The numpy.random.Generator microtensor draws from."""
    return _rng


def get_rng_state():
    """The generator's state as a JSON-able dict (for checkpoints)."""
    return _rng.bit_generator.state


def set_rng_state(state):
    _rng.bit_generator.state = state


def tensor(data, requires_grad=False, dtype=None):
    """A new leaf tensor holding a copy of data; Python floats default to float64."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(data, dtype=None):
    """data as a Tensor without copying where possible (as torch.as_tensor): a Tensor is
    returned as is, an ndarray of the right dtype is shared, not copied."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtype):
        return data
    return _leaf(np.asarray(data.data if isinstance(data, Tensor) else data, dtype=dtype))


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def zeros(*shape, dtype=np.float64, requires_grad=False):
    return _leaf(np.zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape, dtype=np.float64, requires_grad=False):
    return _leaf(np.ones(_shape(shape), dtype=dtype), requires_grad)


def full(shape, fill_value, dtype=np.float64, requires_grad=False):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _leaf(np.full(shape, fill_value, dtype=dtype), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return _leaf(np.zeros_like(np.asarray(t), dtype=dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return _leaf(np.ones_like(np.asarray(t), dtype=dtype), requires_grad)


def randn(*shape, dtype=np.float64, requires_grad=False):
    """Standard normal samples from microtensor's seeded generator."""
    return _leaf(_rng.standard_normal(_shape(shape), dtype=dtype), requires_grad)


def rand(*shape, dtype=np.float64, requires_grad=False):
    """Uniform samples in [0, 1) from microtensor's seeded generator."""
    return _leaf(_rng.random(_shape(shape), dtype=dtype), requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False):
    """Evenly spaced values as numpy.arange (integers stay integers unless dtype says)."""
    data = np.arange(start, stop, step, dtype=dtype) if stop is not None else \
        np.arange(start, dtype=dtype)
    return _leaf(data, requires_grad)
