"""The annotated part of the public API stays annotated (mypy checks those bodies and calls),
and `import microtensor` stays NumPy-only: the annotations' aliases load only for type checkers."""
import importlib
import inspect
import subprocess
import sys

import pytest

# modules whose every public function is fully annotated (README, "Types and lint")
ANNOTATED = ["microtensor.functions", "microtensor.creation", "microtensor.testing"]


def public_functions(module):
    mod = importlib.import_module(module)
    for name, obj in vars(mod).items():
        if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module:
            yield name, obj


@pytest.mark.parametrize("module", ANNOTATED)
def test_every_public_function_is_annotated(module):
    missing = []
    for name, fn in public_functions(module):
        sig = inspect.signature(fn)
        if sig.return_annotation is inspect.Signature.empty:
            missing.append(f"{name} -> ?")
        missing += [f"{name}({p})" for p in sig.parameters.values()
                    if p.annotation is inspect.Parameter.empty]
    assert not missing, f"{module}: annotate {missing}"


def test_import_microtensor_loads_no_typing_aliases():
    code = "import sys, microtensor; print('numpy.typing' in sys.modules, 'microtensor._types' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stdout + done.stderr
