#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: Graphviz's `dot`, then microtensor with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! command -v dot >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing Graphviz (apt-get install graphviz)"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz >/dev/null
  elif command -v brew >/dev/null 2>&1; then
    echo "setup: installing Graphviz (brew install graphviz)"
    brew install graphviz
  else
    echo "setup: Graphviz's 'dot' is missing and no apt-get or brew was found;" >&2
    echo "       install it from https://graphviz.org/download/ and run this again." >&2
    exit 1
  fi
fi

# Checked from / so that the repo itself (the current directory) doesn't count as installed.
installed=$(cd / && "$PY" -c "import microtensor, models, pytest, hypothesis, tqdm, matplotlib, graphviz, os
print(os.path.dirname(os.path.dirname(microtensor.__file__)))" 2>/dev/null || true)
if [ "$installed" != "$PWD" ]; then
  echo "setup: pip install -e '.[dev]'"
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --disable-pip-version-check -e '.[dev]'
fi
