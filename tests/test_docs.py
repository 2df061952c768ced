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

from public_api import methods, reference_names

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def directives():
    """(page, path, the directive's option lines) of every `::: path` of the API pages."""
    out = []
    for page in sorted((DOCS / "api").glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^::: (\S+)\s*$", line)
            if m:
                opts = []
                for nxt in lines[i + 1:]:
                    if not nxt.startswith(" ") or not nxt.strip():
                        break
                    opts.append(nxt.strip())
                out.append((page.name, m.group(1), opts))
    return out


def resolve(path):
    """The object a `::: a.b.c` directive names: the longest importable module, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            continue
    for p in parts[i:]:
        obj = getattr(obj, p)
    return obj


def documented():
    """{id(object): path} of the objects the API pages' directives name."""
    return {id(resolve(path)): path for _, path, _ in directives()}


def test_every_public_name_is_in_the_api_reference():
    found = documented()
    missing = [name for name, obj in reference_names() if id(obj) not in found]
    assert not missing, f"add these to a page in docs/api/: {missing}"


def test_every_public_method_is_in_the_api_reference():
    """A class's page lists the public methods it defines (mkdocstrings renders a class's own
    members), so each method of a public class, inherited ones too, needs its owner on a page."""
    found = documented()
    missing = sorted({key for _, obj in reference_names() if inspect.isclass(obj)
                      for key, fn, _ in methods(obj)
                      if not key.rsplit(".", 1)[1].startswith("_")
                      and id(resolve_owner(key)) not in found})
    assert not missing, f"add the classes that define these to a page in docs/api/: {missing}"


def resolve_owner(key):
    """The class that defines the method `module.Class.method`."""
    return resolve(key.rsplit(".", 1)[0])


def test_no_directive_hides_members():
    """A `members:` or `filters:` option would render only some of a class's methods, which the
    two tests above cannot see; the site's defaults (every public member) hold everywhere."""
    narrowed = [(page, path) for page, path, opts in directives()
                if any(o.startswith(("members:", "filters:")) for o in opts)]
    assert not narrowed, f"drop the member options of {narrowed}"


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
