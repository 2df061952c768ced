"""The README's quickstart runs exactly as written and prints what the README says."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart():
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- quickstart.*?-->\s*```python\n(.*?)```", text, re.S)
    assert m, "README has no quickstart block"
    return m.group(1)


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
