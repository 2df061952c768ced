"""The documentation site covers the code: every public name has a page entry, the tutorials
are notebooks stored without outputs (so every output on the site comes from running them),
and the code blocks of the guide run. `make docs` builds the site, executing the notebooks."""
import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# packages re-export their public surface; plain modules own what they define
PACKAGES = ["microtensor", "microtensor.nn", "microtensor.viz", "microtensor.models"]
MODULES = ["microtensor.functional", "microtensor.autograd_functional", "microtensor.nn.init", "microtensor.nn.utils",
           "microtensor.optim", "microtensor.serialization", "microtensor.models.rnn_reference"]
NUMPY_ALIASES = {"float32", "float64", "int64", "bool_"}      # mt.float64 is np.float64


def public_names():
    """(qualified name, object) of every public function, class and constant."""
    out = []
    for name in PACKAGES + MODULES:
        mod = importlib.import_module(name)
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for n in names:
            obj = getattr(mod, n)
            if inspect.ismodule(obj) or (name == "microtensor" and n in NUMPY_ALIASES):
                continue
            owner = getattr(obj, "__module__", None)
            if name in MODULES and (inspect.isfunction(obj) or inspect.isclass(obj)) \
                    and owner != name:
                continue                                        # imported, not defined here
            if name in MODULES and not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue                                        # module-level constants
            out.append((f"{name}.{n}", obj))
    for n in ("save", "load"):                                  # mt.save/mt.load load lazily
        out.append((f"microtensor.{n}", getattr(importlib.import_module("microtensor"), n)))
    return out


def documented():
    """The objects named by the `::: path` directives of the API pages."""
    found = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for path in re.findall(r"^::: (\S+)", page.read_text(encoding="utf-8"), re.M):
            parts = path.split(".")
            for i in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                    break
                except ImportError:
                    continue
            for p in parts[i:]:
                obj = getattr(obj, p)
            found[id(obj)] = path
    return found


def test_every_public_name_is_in_the_api_reference():
    found = documented()
    missing = [name for name, obj in public_names() if id(obj) not in found]
    assert not missing, f"add these to a page in docs/api/: {missing}"


def nav_pages():
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    return set(re.findall(r":\s+(\S+\.(?:md|ipynb))\s*$", text, re.M))


def test_every_page_and_notebook_is_in_the_nav():
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*") if p.suffix in (".md", ".ipynb")}
    assert pages == nav_pages()


NOTEBOOKS = sorted((DOCS / "tutorials").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorials_are_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                f"{path.name}: clear the outputs; `make docs` executes the notebook"


def test_there_are_five_tutorials():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01-", "02-", "03-", "04-", "05-"]


def test_the_getting_started_code_runs_and_prints_what_it_says(tmp_path):
    text = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        (tmp_path / "block.py").write_text(block, encoding="utf-8")
        done = subprocess.run([sys.executable, "block.py"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        promised = [c.strip() for c in re.findall(r"print\(.*?\)\s*#\s*(.+)$", block, re.M)]
        assert done.stdout.split("\n")[:len(promised)] == promised


def test_numpy_aliases_are_numpy_types():
    import microtensor as mt
    assert (mt.float32, mt.float64, mt.int64, mt.bool_) == (np.float32, np.float64, np.int64,
                                                            np.bool_)
