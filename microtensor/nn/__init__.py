"""Neural-network building blocks with PyTorch's names: Module, Parameter, layers, init, utils."""
from .. import functional
from . import init, utils
from .layers import Dropout, Embedding, Linear, ReLU, Sequential, Sigmoid, Tanh
from .module import Module, ModuleDict, ModuleList, Parameter

__all__ = ["Module", "ModuleList", "ModuleDict", "Parameter", "Linear", "Embedding", "Dropout",
           "Sequential", "Tanh", "ReLU", "Sigmoid", "init", "utils", "functional"]

from .recurrent import Recurrent, RecurrentCell, detach_state, truncated_bptt, unroll

__all__ += ["RecurrentCell", "Recurrent", "unroll", "detach_state", "truncated_bptt"]
