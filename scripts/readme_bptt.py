"""Rewrite the README's bptt_check block from a real run of examples/bptt_check.py
(tests/test_readme.py fails when the block and the run disagree)."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- bptt_check:.*?-->\n```\n)(.*?)(```)", re.S)


def run_bptt_check():
    """What `python examples/bptt_check.py` prints, single-threaded as make runs it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "bptt_check.py")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
                          check=True)
    return done.stdout.strip() + "\n"


def readme_block(text):
    m = BLOCK.search(text)
    if not m:
        raise SystemExit("README.md has no <!-- bptt_check: ... --> block")
    return m.group(2)


if __name__ == "__main__":
    text = README.read_text(encoding="utf-8")
    readme_block(text)
    out = run_bptt_check()
    README.write_text(BLOCK.sub(lambda m: m.group(1) + out + m.group(3), text, count=1),
                      encoding="utf-8")
    print(out, end="")
