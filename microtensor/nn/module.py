"""Parameter and Module, the base of every layer, with ModuleList and ModuleDict as containers."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, KeysView, ItemsView, Mapping, ValuesView
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .. import versions
from ..errors import ArgumentError, CheckpointError, DTypeError
from ..tensor import Tensor, _leaf

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from typing_extensions import Self

    from .._types import FloatDType


class Parameter(Tensor):
    """A tensor that a Module registers as learnable: float data, requires grad by default.

    The data is copied (a Tensor, ndarray or nested list); integer and bool data become float64.
    """
    __slots__ = ()

    def __init__(self, data: Tensor | ArrayLike, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            data = data._data
        data = np.array(data)
        if data.dtype.kind != "f":
            data = data.astype(np.float64)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What load_state_dict(strict=False) did not match: (missing_keys, unexpected_keys)."""
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers and models: assigned Parameters and Modules register themselves.

    Subclasses call super().__init__() first, assign parameters and submodules as attributes,
    and define forward(); calling the module runs forward.
    """
    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Tensor | None]
    _modules: dict[str, Module | None]

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_modules"] = {}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """What calling the module computes; every subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} defines no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- registration -------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, (Parameter, Module)):
            if params is None:
                raise AttributeError(f"cannot assign {type(value).__name__} '{name}' before "
                                     f"{type(self).__name__}.__init__() calls "
                                     f"super().__init__()")
            self._unregister(name)
            if isinstance(value, Parameter):
                params[name] = value
                if value.name is None:
                    value.name = name
            else:
                d["_modules"][name] = value
        elif params is not None:
            if name in params:
                if value is not None:
                    raise TypeError(f"cannot assign {type(value).__name__} as parameter "
                                    f"'{name}' (mt.nn.Parameter or None expected)")
                params[name] = None
            elif name in d["_modules"]:
                if value is not None:
                    raise TypeError(f"cannot assign {type(value).__name__} as child module "
                                    f"'{name}' (mt.nn.Module or None expected)")
                d["_modules"][name] = None
            elif name in d["_buffers"]:
                value = _as_buffer(value)
                d["_buffers"][name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._unregister(name)
        object.__delattr__(self, name)

    def _unregister(self, name):
        d = self.__dict__
        for registry in (d["_parameters"], d["_buffers"], d["_modules"]):
            registry.pop(name, None)

    def _check_new_name(self, kind, name):
        if not isinstance(name, str):
            raise ArgumentError(f"{kind} name must be a string, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{kind} name {name!r} must be non-empty and contain no '.'")
        if hasattr(self, name) and not any(name in r for r in (
                self._parameters, self._buffers, self._modules)):
            raise KeyError(f"attribute '{name}' already exists on {type(self).__name__}")

    def add_module(self, name: str, module: Module | None) -> None:
        """Register module (or None) under name, as `self.name = module` does."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_new_name("module", name)
        self._unregister(name)
        self._modules[name] = module
        object.__setattr__(self, name, module)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register param (a Parameter or None) under name."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter '{name}' "
                            f"(mt.nn.Parameter or None expected)")
        self._check_new_name("parameter", name)
        if param is None:
            self._unregister(name)
            self._parameters[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, value: Tensor | np.ndarray | None) -> None:
        """Register state that is not learnable (kept in state_dict, cast by to())."""
        self._check_new_name("buffer", name)
        self._unregister(name)
        buffer = _as_buffer(value)
        self._buffers[name] = buffer
        object.__setattr__(self, name, buffer)

    # ---- traversal ----------------------------------------------------------------------
    def named_modules(self, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every descendant, in pre-order."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if remove_duplicate:
                if id(m) in seen:
                    continue
                seen.add(id(m))
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()
                        if c is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, in pre-order (a shared one once)."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct submodule (a shared one once)."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        """Each direct submodule (a shared one once)."""
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry, prefix, recurse):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in modules:
            for name, t in getattr(m, registry).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mname}.{name}" if mname else name), t

    def named_parameters(self, prefix: str = "",
                         recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, e.g. ('encoder.cell.Whh', …); a shared one once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter of this module (and its descendants, with recurse), each once."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "",
                      recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, as named_parameters for the non-learnable state."""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer (registered state that is not learnable), each once."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], object]) -> Self:
        """Call fn on every submodule (children first) and then on self; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- training state -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Self:
        """Set .training on this module and every descendant (Dropout reads it); returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {mode!r}")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> Self:
        """Evaluation mode: train(False) (Dropout becomes the identity); returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's .grad to None."""
        for p in self.parameters():
            p.grad = None

    def to(self, dtype: FloatDType) -> Self:
        """Cast every floating-point parameter and buffer (and grad) to dtype, in place.

        The Parameter objects stay the same, so do this before building an optimizer.
        """
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise DTypeError(f"Module.to: expected a floating-point dtype, got {dtype}")
        for t in [*self.parameters(), *self.buffers()]:
            if t._data.dtype.kind == "f" and t._data.dtype != dtype:
                t.data = t._data.astype(dtype)
                if t.grad is not None:
                    t.grad = t.grad.astype(dtype)
        return self

    # ---- state --------------------------------------------------------------------------
    def _state_tensors(self):
        """Every (name, tensor) a state dict holds: shared tensors under each of their names."""
        out = OrderedDict()
        for mname, m in self.named_modules(remove_duplicate=False):
            pre = f"{mname}." if mname else ""
            for registry in (m._parameters, m._buffers):
                for name, t in registry.items():
                    if t is not None:
                        out[pre + name] = t
        return out

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """An OrderedDict of dotted name -> a copy of the parameter's or buffer's array."""
        return OrderedDict((k, t._data.copy()) for k, t in self._state_tensors().items())

    def load_state_dict(self, state_dict: Mapping[str, Tensor | ArrayLike],
                        strict: bool = True) -> IncompatibleKeys:
        """Copy arrays from state_dict into the parameters and buffers, in place.

        Every name, shape and dtype is checked before anything is written: on any problem
        nothing changes, and the CheckpointError lists all missing, unexpected and
        mismatched entries. strict=False tolerates missing and unexpected names (never a
        wrong shape). Returns (missing_keys, unexpected_keys).
        """
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched, values = [], []
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            v = np.asarray(v._data if isinstance(v, Tensor) else v)
            if v.shape != t._data.shape:
                mismatched.append(f"{k}: shape {v.shape} in the state dict, {t._data.shape} "
                                  f"in the model")
            elif not _castable(v.dtype, t._data.dtype):
                mismatched.append(f"{k}: dtype {v.dtype} in the state dict, {t._data.dtype} "
                                  f"in the model")
            else:
                values.append((t, v))
        if mismatched or (strict and (missing or unexpected)):
            problems = []
            if missing:
                problems.append("missing: " + ", ".join(missing))
            if strict and unexpected:
                problems.append("unexpected: " + ", ".join(str(k) for k in unexpected))
            if mismatched:
                problems.append("mismatched: " + "; ".join(mismatched))
            raise CheckpointError(f"load_state_dict for {type(self).__name__} failed, and the "
                                  f"model was left unchanged:\n  " + "\n  ".join(problems))
        for t, v in values:
            with versions.writing(t) as a:      # stamped: a graph built before refuses
                a[...] = v
        return IncompatibleKeys(missing, unexpected)

    # ---- repr ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in repr (its hyperparameters)."""
        return ""

    def _child_lines(self):
        return [f"({name}): {_indent(repr(m))}" for name, m in self._modules.items()]

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = self._child_lines()
        lines = extra_lines + child_lines
        if not lines:
            body = ""
        elif len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        else:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"


def _indent(text, spaces=2):
    """Indent every line but the first (a child's repr nested in its parent's)."""
    return text.replace("\n", "\n" + " " * spaces)


def _as_buffer(value):
    if value is None or isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return _leaf(value)
    raise TypeError(f"a buffer must be a Tensor, an ndarray or None, got {type(value).__name__}")


def _castable(src, dst):
    """A state-dict array fits a tensor of dtype dst if it is of the same kind (float widths
    may differ, as torch casts); floats never go into integer buffers nor strings anywhere."""
    if src.kind not in "biuf":
        return False
    return np.can_cast(src, dst, casting="same_kind")


class ModuleList(Module):
    """A list of modules, registered under the names '0', '1', …"""

    def __init__(self, modules: Iterable[Module | None] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, i):
        n = len(self._modules)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"ModuleList indices must be integers or slices, got "
                            f"{type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a ModuleList of length {n}")
        return str(int(i) % n)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return type(self)(list(self._modules.values())[i])
        return self._modules[self._index(i)]

    def __setitem__(self, i: int, module: Module | None) -> None:
        self.add_module(self._index(i), module)

    def __delitem__(self, i: int | slice) -> None:
        items = list(self._modules.values())
        if isinstance(i, slice):
            del items[i]
        else:
            del items[int(self._index(i))]
        for k in list(self._modules):
            delattr(self, k)
        self.extend(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._modules.values())

    def append(self, module: Module | None) -> Self:
        """Add module at the end (registered under the next index); returns self."""
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module | None]) -> Self:
        """Append each of modules in order; returns self."""
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module | None) -> None:
        """Insert module before index, renumbering the ones after it (as list.insert)."""
        items = list(self._modules.values())
        items.insert(index, module)
        for k in list(self._modules):
            delattr(self, k)
        self.extend(items)

    def _child_lines(self):
        """Runs of identical children print once, '(0-2): 3 x Linear(…)', as torch does."""
        runs = []          # [first, last, repr]
        for i, m in enumerate(self._modules.values()):
            r = repr(m)
            if runs and runs[-1][2] == r:
                runs[-1][1] = i
            else:
                runs.append([i, i, r])
        return [_indent(f"({a}): {r}" if a == b else f"({a}-{b}): {b - a + 1} x {r}")
                for a, b, r in runs]


class ModuleDict(Module):
    """A dict of modules, registered under their keys (in insertion order)."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
                 ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Any:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        if key not in self._modules:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> KeysView[str]:
        """The keys, in insertion order."""
        return self._modules.keys()

    def values(self) -> ValuesView[Any]:
        """The modules, in insertion order."""
        return self._modules.values()

    def items(self) -> ItemsView[str, Any]:
        """(key, module) pairs, in insertion order."""
        return self._modules.items()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace modules from a mapping or (key, module) pairs, as dict.update."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for k, m in pairs:
            self[k] = m

    def pop(self, key: str) -> Any:
        """Remove the module under key and return it."""
        m = self._modules[key]
        del self[key]
        return m

    def clear(self) -> None:
        """Remove every module."""
        for k in list(self._modules):
            del self[k]
