"""The install touches nothing else: make uses the project's .venv unless an env is active, and
the distribution ships no top-level package but microtensor. (CI checks the system Python's
site-packages before and after a fresh clone's set-up and `make test`.)"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV_VARS = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHON", "MAKEFLAGS", "MAKELEVEL")


def dry_run(target, **env):
    """The commands `make -n target` would run, in an environment with no env active."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    base = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    done = subprocess.run(["make", "-n", target], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_test_uses_the_project_venv_when_no_env_is_active():
    out = dry_run("test")
    assert "PYTHON=.venv/bin/python EXTRAS=dev bash scripts/setup.sh" in out
    assert ".venv/bin/python -m pytest" in out


@pytest.mark.parametrize("var", ["VIRTUAL_ENV", "CONDA_PREFIX"])
def test_an_active_env_is_kept(var):
    out = dry_run("main", **{var: "/somewhere/env"})
    assert ".venv" not in out
    assert "python examples/bptt_check.py" in out and "python examples/char_rnn.py" in out


def test_setup_creates_the_venv_only_for_the_project_python():
    script = (ROOT / "scripts" / "setup.sh").read_text()
    assert '"$PY" = "$PWD/.venv/bin/python"' in script and "-m venv .venv" in script
    assert "pip install" in script and "--user" not in script


def test_py_typed_ships_with_the_package():
    assert (ROOT / "microtensor" / "py.typed").exists()
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["microtensor"]


def test_the_distribution_has_no_top_level_package_but_microtensor():
    setuptools = pytest.importorskip("setuptools")
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(str(ROOT), include=find["include"])
    assert {p.split(".")[0] for p in packages} == {"microtensor"}, packages
    assert "microtensor.models" in packages


def test_models_has_one_module_identity():
    """models/ is importable only as microtensor.models, even with the repo root on sys.path."""
    code = ("import sys, microtensor.models as m, microtensor.models.rnn as r\n"
            "assert m.VanillaRNN is r.VanillaRNN and 'models' not in sys.modules\n"
            "try:\n    import models\nexcept ImportError as e:\n    print(e)\n"
            "else:\n    raise SystemExit('import models worked')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "import microtensor.models, not models" in done.stdout
