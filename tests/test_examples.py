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
    ("bptt_check.py", [],
     [r"Whh +\(100, 100\) +\d\.\d{3}e-\d\d", r"graph BPTT and hand BPTT are equal to round-off"]),
]
# char_rnn.py and sample.py have their own subprocess tests in test_char_rnn.py
ELSEWHERE = {"char_rnn.py", "sample.py", "render_graph.py", "rnn_jacobians.py"}


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


def test_render_graph_example_writes_its_pictures(tmp_path):
    done = run("render_graph.py", ["--out", str(tmp_path)])
    assert done.returncode == 0, done.stderr
    for name in ("rnn_graph.svg", "rnn_graph_grads.svg", "lstm_graph.svg", "grad_flow.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "t = 3" in (tmp_path / "rnn_graph_grads.svg").read_text()
    assert "h[t=3]" in (tmp_path / "rnn_graph.svg").read_text()
    lstm = (tmp_path / "lstm_graph.svg").read_text()
    assert "h[t=2]" in lstm and "c[t=2]" in lstm


def test_rnn_jacobians_example_checks_the_product_and_writes_its_picture(tmp_path):
    done = run("rnn_jacobians.py", ["--out", str(tmp_path), "--steps", "12"])
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^ +(0\.9|1\.5|2\.5) .* (\d\.\de-\d\d)$", done.stdout, re.M)
    assert [r[0] for r in rows] == ["0.9", "1.5", "2.5"], done.stdout
    assert all(float(err) < 1e-12 for _, err in rows)     # ∂h_T/∂h_0: product = direct
    assert (tmp_path / "rnn_jacobians.png").stat().st_size > 1000


def test_every_example_is_exercised():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == {c[0] for c in CASES} | ELSEWHERE
