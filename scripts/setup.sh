#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: Graphviz's `dot`, the project virtualenv .venv (unless
# PYTHON names another interpreter: an active virtualenv or conda env), then microtensor with
# the extras in EXTRAS (comma-separated; default dev) installed into it, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
EXTRAS=${EXTRAS:-dev}
case $PY in /*) ;; */*) PY="$PWD/$PY" ;; esac      # checked from / below, so make it absolute

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_install() {
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! command -v dot >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Graphviz (apt-get install graphviz)"
    apt_install graphviz
  elif command -v brew >/dev/null 2>&1; then
    echo "setup: installing Graphviz (brew install graphviz)"
    brew install graphviz
  else
    echo "setup: Graphviz's 'dot' is missing and no apt-get or brew was found;" >&2
    echo "       install it from https://graphviz.org/download/ and run this again." >&2
    exit 1
  fi
fi

if [ "$PY" = "$PWD/.venv/bin/python" ] && ! "$PY" -c "" 2>/dev/null; then
  BASE=${BASE_PYTHON:-python3}
  echo "setup: creating the project virtualenv .venv ($BASE -m venv .venv)"
  rm -rf .venv
  if ! "$BASE" -m venv .venv 2>/dev/null; then
    # Debian and Ubuntu ship venv's pip separately, as python3-venv (or python3.X-venv)
    command -v apt-get >/dev/null 2>&1 || { echo "setup: '$BASE -m venv' failed" >&2; exit 1; }
    ver=$("$BASE" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    echo "setup: installing python$ver-venv (apt-get) for '$BASE -m venv'"
    apt_install "python$ver-venv" || apt_install python3-venv
    rm -rf .venv
    "$BASE" -m venv .venv
  fi
fi

# What each extra must make importable; checked from / so that the repo itself (the current
# directory) doesn't count as installed.
modules="microtensor microtensor.models graphviz"
for extra in ${EXTRAS//,/ }; do
  case $extra in
    dev) modules+=" pytest hypothesis tqdm matplotlib" ;;
    test) modules+=" pytest hypothesis tqdm matplotlib torch" ;;
    bench) modules+=" jax torch" ;;
    lint) modules+=" mypy ruff" ;;
    docs) modules+=" mkdocs material mkdocstrings_handlers.python mkdocs_jupyter nbclient ipykernel matplotlib" ;;
    *) echo "setup: unknown extra '$extra' (dev, test, bench, lint, docs)" >&2; exit 1 ;;
  esac
done
installed=$(cd / && "$PY" -c "import importlib, os
for m in '$modules'.split(): importlib.import_module(m)
import microtensor
print(os.path.dirname(os.path.dirname(microtensor.__file__)))" 2>/dev/null || true)
if [ "$installed" != "$PWD" ]; then
  echo "setup: $PY -m pip install -e '.[$EXTRAS]'"
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
fi
