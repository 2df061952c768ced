"""The public API stays annotated (so mypy checks those bodies and every call into them) and
documented, and `import microtensor` stays NumPy-only: the annotations' aliases load only for
type checkers. What counts as public is listed once, in tests/public_api.py."""
import inspect
import subprocess
import sys

import pytest

from public_api import (INTERNAL, NO_DOCSTRING, NOT_ANNOTATED, all_modules, classification,
                        methods, typed_names)


def test_every_module_is_public_or_listed_as_internal():
    modules = all_modules()
    unplaced = [m for m in modules if classification(m) is None]
    assert not unplaced, (f"place these modules in tests/public_api.py (PACKAGES, MODULES, "
                          f"IMPLEMENTATION, or INTERNAL with a reason): {unplaced}")
    gone = [i for i in INTERNAL if not any(m == i or m.startswith(i + ".") for m in modules)]
    assert not gone, f"public_api.INTERNAL names modules that do not exist: {gone}"


def _callables():
    """(key, function, kind) of every public function ("function") and method of the typed
    surface, each once (a method inherited by several public classes is its owner's)."""
    out, seen = [], set()
    for _, obj in typed_names():
        if inspect.isfunction(obj):
            out.append((f"{obj.__module__}.{obj.__qualname__}", obj, "function"))
        elif inspect.isclass(obj):
            for key, fn, kind in methods(obj):
                if (key, kind) not in seen:
                    seen.add((key, kind))
                    out.append((key, fn, kind))
    return out


CALLABLES = _callables()


def _unannotated(key, fn, kind):
    """What fn's signature leaves unannotated: its return, and each parameter but self/cls."""
    sig = inspect.signature(fn)         # follows functools.wraps (RecurrentCell records __init__)
    params = list(sig.parameters.values())[0 if kind in ("function", "static") else 1:]
    missing = [] if sig.return_annotation is not inspect.Signature.empty else [f"{key} -> ?"]
    return missing + [f"{key}({p.name})" for p in params if p.annotation is inspect.Parameter.empty]


def _undocumented(key, fn, kind):
    """A public function, method or property without a docstring of its own (dunders and
    property setters need none: the getter documents the property)."""
    name = key.rsplit(".", 1)[1]
    return kind != "setter" and not name.startswith("__") and not (fn.__doc__ or "").strip()


def test_the_surface_holds_what_a_user_reaches_first():
    keys = {k for k, _, _ in CALLABLES}
    for k in ("microtensor.tensor.Tensor.backward", "microtensor.tensor.Tensor.exp",
              "microtensor.tensor.Tensor.__add__", "microtensor.tensor.Tensor.shape",
              "microtensor.nn.module.Module.parameters", "microtensor.optim.Adam.__init__",
              "microtensor.functional.cross_entropy", "microtensor.compiler.compile",
              "microtensor.serialization.load", "microtensor.autograd.register",
              "microtensor.models.stacked.TorchLayoutRecurrent.load_torch_state_dict",
              "microtensor.nn.init.orthogonal_", "microtensor.viz.draw.draw_graph"):
        assert k in keys, k


def test_every_public_function_and_method_is_annotated():
    missing = [m for key, fn, kind in CALLABLES if key not in NOT_ANNOTATED
               for m in _unannotated(key, fn, kind)]
    assert not missing, (f"annotate these (or list them in public_api.NOT_ANNOTATED with the "
                         f"reason): {missing}")


def test_every_public_name_has_a_docstring():
    missing = [q for q, obj in typed_names() if (inspect.isfunction(obj) or inspect.isclass(obj))
               and not (obj.__doc__ or "").strip()]
    missing += [key for key, fn, kind in CALLABLES
                if key not in NO_DOCSTRING and _undocumented(key, fn, kind)]
    assert not missing, f"give these a one- or two-line docstring (what and why): {missing}"


@pytest.mark.parametrize("table", ["NOT_ANNOTATED", "NO_DOCSTRING"])
def test_each_exemption_is_still_needed(table):
    exempt, check = ((NOT_ANNOTATED, _unannotated) if table == "NOT_ANNOTATED" else
                     (NO_DOCSTRING, _undocumented))
    found = {}
    for key, fn, kind in CALLABLES:
        found.setdefault(key, []).append((fn, kind))
    unknown = [k for k in exempt if k not in found]
    assert not unknown, f"public_api.{table} names no public function or method: {unknown}"
    stale = [k for k in exempt if not any(check(k, fn, kind) for fn, kind in found[k])]
    assert not stale, f"remove these from public_api.{table}, they are done: {stale}"


def test_import_microtensor_loads_no_typing_aliases():
    code = "import sys, microtensor; print('numpy.typing' in sys.modules, 'microtensor._types' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stdout + done.stderr
