"""Each example runs as a user would run it, with tiny settings, and prints what it promises."""
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

# (script, tiny arguments, regular expressions its output must contain); add new examples here
CASES = [
    ("custom_cell.py", ["--steps", "20", "--length", "8"],
     [r"gradcheck MinimalGatedUnit\(2, 3\) over 4 steps: ok",
      r"MinimalGatedUnit: test accuracy \d\.\d{3}", r"VanillaRNN: test accuracy \d\.\d{3}"]),
    ("sequence_classification.py", ["--cell", "lstm", "--steps", "20", "--length", "5"],
     [r"step +20 +loss \d\.\d{3} +test accuracy", r"lstm: test accuracy \d\.\d{3}"]),
    ("sequence_classification.py", ["--cell", "gru", "--steps", "5", "--length", "4"],
     [r"gru: test accuracy \d\.\d{3}"]),
    ("sequence_classification.py", ["--cell", "rnn", "--steps", "5", "--length", "4"],
     [r"rnn: test accuracy \d\.\d{3}"]),
]


def run(script, args):
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=120, cwd=EXAMPLES.parent)


@pytest.mark.parametrize("script, args, expected", CASES,
                         ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_example_runs(script, args, expected):
    done = run(script, args)
    assert done.returncode == 0, done.stderr
    for pattern in expected:
        assert re.search(pattern, done.stdout), (pattern, done.stdout)


@pytest.mark.parametrize("script", sorted({c[0] for c in CASES}))
def test_example_help(script):
    done = run(script, ["--help"])
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr
