"""The README's quickstart runs exactly as written and prints what the README says."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def block(marker):
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"<!-- {marker}.*?-->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README has no {marker} block"
    return m.group(1)


def quickstart():
    return block("quickstart")


def test_quickstart_is_short():
    assert len(quickstart().strip().splitlines()) < 30      # issue 8: under 30 lines


def test_quickstart_runs_as_written(tmp_path):
    (tmp_path / "quickstart.py").write_text(quickstart(), encoding="utf-8")
    r = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    loss = float(re.search(r"loss after 150 steps: ([0-9.]+)", r.stdout).group(1))
    assert loss < 0.1
    assert "gradcheck: True" in r.stdout
    svg = (tmp_path / "mgu.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "t = 3" in svg and "cell.gate.weight" in svg
    # the README quotes the printed loss; keep it true
    assert f"loss after 150 steps: {loss:.4f}" in README.read_text(encoding="utf-8")


def test_the_bptt_check_block_is_what_the_script_prints():
    sys.path.insert(0, str(README.parent / "scripts"))
    import readme_bptt
    block = readme_bptt.readme_block(README.read_text(encoding="utf-8"))
    assert block == readme_bptt.run_bptt_check(), \
        "the README's bptt_check block is stale: run python scripts/readme_bptt.py"


def test_lstm_cell_section_runs_as_written(tmp_path):
    """The user's LSTM cell: a tuple state, replicated with its forget_bias, batch_first."""
    code = block("lstm-cell")
    cell = code[code.index("class LSTM"):code.index("mt.manual_seed")].strip().splitlines()
    assert len(cell) <= 20                                   # "an LSTM in about 20 lines"
    (tmp_path / "lstm.py").write_text(code, encoding="utf-8")
    r = subprocess.run([sys.executable, "lstm.py"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    m = re.search(r"loss after 150 steps: ([0-9.]+) \[2\.0, 2\.0\]", r.stdout)
    assert m and float(m.group(1)) < 0.01
    assert "gradcheck: True" in r.stdout
    svg = (tmp_path / "lstm.svg").read_text()
    assert "h[t=2]" in svg and "c[t=2]" in svg and "layer1 · t = 2" in svg
    assert f"loss after 150 steps: {m.group(1)} [2.0, 2.0]" in README.read_text(encoding="utf-8")


def anomaly_blocks():
    text = README.read_text(encoding="utf-8")
    code = re.search(r"<!-- anomaly:.*?-->\s*```python\n(.*?)```", text, re.S)
    out = re.search(r"<!-- anomaly-output -->\s*```\n(.*?)```", text, re.S)
    assert code and out, "README has no anomaly example"
    return code.group(1), out.group(1)


def test_the_anomaly_example_prints_what_the_readme_says(tmp_path):
    code, printed = anomaly_blocks()
    (tmp_path / "nan_at_step.py").write_text(code, encoding="utf-8")
    r = subprocess.run([sys.executable, "nan_at_step.py"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.replace(f"{tmp_path}/", "") == printed
