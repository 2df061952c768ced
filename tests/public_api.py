"""The public API, listed once for the tests that keep it annotated (test_typing), documented in
docstrings (test_typing) and in the API reference (test_docs).

Two tiers. The *reference* is what a user imports: the names the packages export (mt.*,
mt.nn, mt.viz, microtensor.models) and those the modules used by name define (F.softmax,
mt.optim.SGD, nn.init.uniform_, …), with the public methods of every class among them,
inherited ones included. The *typed* surface adds the public names of the modules behind them
(the engine's extension points autograd.Op, Gradient and register, mode.set_mode, the models'
helpers): annotated and with docstrings too, but not entries of the reference. INTERNAL lists
the modules left out, each with its reason; every module of the package is in one of the
lists, so a new module has to be placed.
"""
import importlib
import inspect
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# packages whose surface is what they export: their __all__, else their public attributes
PACKAGES = ["microtensor", "microtensor.nn", "microtensor.viz", "microtensor.models"]
# modules used by name (F.softmax, mt.optim.SGD, nn.init.uniform_): what they define
MODULES = ["microtensor.functional", "microtensor.autograd_functional", "microtensor.nn.init",
           "microtensor.nn.utils", "microtensor.optim", "microtensor.serialization",
           "microtensor.models.rnn_reference"]
# the modules that define what the packages export, and the engine's extension points
# (autograd.Op, Gradient, register): annotated and documented, but not pages of the reference
IMPLEMENTATION = ["microtensor.tensor", "microtensor.autograd", "microtensor.mode",
                  "microtensor.anomaly", "microtensor.inplace", "microtensor.errors",
                  "microtensor.creation", "microtensor.functions", "microtensor.testing",
                  "microtensor.nn.module", "microtensor.nn.layers", "microtensor.nn.recurrent",
                  "microtensor.viz.draw", "microtensor.viz.gradflow", "microtensor.viz.render",
                  "microtensor.models.chardata", "microtensor.models.charlm",
                  "microtensor.models.rnn", "microtensor.models.lstm", "microtensor.models.gru",
                  "microtensor.models.stacked"]
INTERNAL = {
    "microtensor._types": "the annotations' aliases, imported by type checkers only",
    "microtensor.broadcast": "the engine's one unbroadcast",
    "microtensor.checks": "the checks a backward walk runs",
    "microtensor.create_graph": "the create_graph=True engine behind backward() and mt.grad",
    "microtensor.files": "atomic writes for mt.save and mt.viz",
    "microtensor.versions": "version counters and memory locks, behind Tensor.data and the ops",
    "microtensor.viz.graph": "the graph mt.viz walks and collapses",
    "microtensor.ops": "the op registry: each op's forward and backward (tests/test_ops.py)",
    "microtensor.compiler": "mt.compile's tracer and emitter; mt.compile itself is exported by mt",
}
# public names of the typed surface not annotated yet, and why (annotate them, then drop the
# entry: test_typing fails on an entry that is no longer needed)
BRANCH = "edited on another branch ({}); {} after it merges"
NOT_ANNOTATED = {
    **{f"microtensor.compiler.Compiled.{n}": BRANCH.format("compiler/", "annotate")
       for n in ("__init__", "__call__", "last_source")},
}
NO_DOCSTRING: dict[str, str] = {}
NUMPY_ALIASES = {"float32", "float64", "int64", "bool_"}      # mt.float64 is np.float64


def lazy_names():
    """The names microtensor's __getattr__ loads on first use (mt.nn, mt.compile, mt.save)."""
    import microtensor
    source = inspect.getsource(microtensor.__getattr__)
    return [n for group in re.findall(r"if name in \(([^)]*)\)", source)
            for n in re.findall(r'"(\w+)"', group)]


def _exported(name):
    mod = importlib.import_module(name)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
        if name == "microtensor":
            names += lazy_names()
    return mod, names


def _surface(packages, modules):
    """(qualified name, object) of each public function, class and constant, each object once."""
    out, seen = [], set()
    for name in packages + modules:
        mod, names = _exported(name)
        for n in names:
            obj = getattr(mod, n)
            if inspect.ismodule(obj) or (name == "microtensor" and n in NUMPY_ALIASES):
                continue
            if name in modules and getattr(mod, "__all__", None) is None:
                if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                    continue                                    # module-level constants
                if getattr(obj, "__module__", None) != name:
                    continue                                    # imported, not defined here
            if id(obj) not in seen:
                seen.add(id(obj))
                out.append((f"{name}.{n}", obj))
    return out


def reference_names():
    """What the API reference must cover: the packages' exports and the used modules' names."""
    return _surface(PACKAGES, MODULES)


def typed_names():
    """What must be annotated and have docstrings: the reference and the implementation modules."""
    return _surface(PACKAGES, MODULES + IMPLEMENTATION)


def ours(cls):
    """The classes of cls's MRO that microtensor defines (not object, Exception, tuple, …)."""
    return [c for c in cls.__mro__ if c.__module__.startswith("microtensor")]


def methods(cls):
    """(key, function, kind) for each public method, property accessor and dunder that cls or
    one of its microtensor bases defines in source; key is the owner's module.qualname.name and
    kind one of "method", "static", "class", "getter", "setter"."""
    out = []
    for owner in ours(cls):
        for name, value in vars(owner).items():
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                continue
            key = f"{owner.__module__}.{owner.__qualname__}.{name}"
            if isinstance(value, property):
                accessors = ((value.fget, "getter"), (value.fset, "setter"))
                out += [(key, f, kind) for f, kind in accessors if f is not None]
            elif isinstance(value, staticmethod):
                out.append((key, value.__func__, "static"))
            elif isinstance(value, classmethod):
                out.append((key, value.__func__, "class"))
            elif inspect.isfunction(value):
                out.append((key, value, "method"))
    return [(k, f, kind) for k, f, kind in out if _in_source(f)]


def _in_source(fn):
    """Written in this repository (not made by NamedTuple or namedtuple at class creation)."""
    return inspect.unwrap(fn).__code__.co_filename.startswith(str(ROOT))


def all_modules():
    """Every module of the package, by walking its files (models/ through the symlink)."""
    base = ROOT / "microtensor"
    found = []
    for folder, _, files in os.walk(base, followlinks=True):
        rel = Path(folder).relative_to(base)
        if "__pycache__" in rel.parts:
            continue
        for f in files:
            if f.endswith(".py"):
                parts = ["microtensor", *rel.parts] + ([] if f == "__init__.py" else [f[:-3]])
                found.append(".".join(parts))
    return sorted(found)


def classification(module):
    """Which list places module (a submodule of an INTERNAL package is internal)."""
    for tier, names in (("package", PACKAGES), ("module", MODULES),
                        ("implementation", IMPLEMENTATION)):
        if module in names:
            return tier
    if any(module == m or module.startswith(m + ".") for m in INTERNAL):
        return "internal"
    return None
