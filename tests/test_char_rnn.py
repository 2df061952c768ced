"""examples/char_rnn.py and sample.py run as a user runs them: outputs, the BPTT check, exact
resumption (after --steps and after Ctrl-C), and one-line errors that leave checkpoints intact."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import microtensor as mt

ROOT = Path(__file__).resolve().parent.parent
CHAR_RNN, SAMPLE = ROOT / "examples" / "char_rnn.py", ROOT / "examples" / "sample.py"
TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog {i * 7 % 13}.\n"
               for i in range(40))
TINY = ["--hidden", "16", "--batch", "2", "--seq-len", "10", "--sample-every", "10",
        "--save-every", "10"]
N, K = 30, 12                                   # uninterrupted steps; steps before resuming


def run(script, *args, cwd, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env, **kwargs)


def losses(path):
    return mt.load(path)["history"]["loss"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    contents = {"text.txt": TEXT.encode(), "empty.txt": b"", "binary.txt": b"abc\0def" * 20,
                "latin1.txt": "café au lait, encore du café\n".encode("latin-1") * 5,
                "short.txt": b"too short", "other.txt": TEXT.upper().encode()}
    for name, data in contents.items():
        (d / name).write_bytes(data)
    return d


@pytest.fixture(scope="module")
def trained(files):
    """An uninterrupted run of N steps in float64; (folder, completed process)."""
    out = files / "run"
    done = run(CHAR_RNN, "--data", files / "text.txt", "--steps", N, *TINY, "--out", out,
               cwd=files)
    assert done.returncode == 0, done.stderr
    return out, done


def test_run_writes_every_output(trained):
    out, done = trained
    for name in ("checkpoint.npz", "loss.png", "grad_flow.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    svg = (out / "graph.svg").read_text()
    assert "<svg" in svg and "rnn.Whh" in svg and "collapsed" in svg
    assert len((out / "sample.txt").read_text()) == 1000
    assert mt.load(out / "checkpoint.npz")["step"] == N
    assert re.search(rf"done: {N} steps .* chars/s\); smoothed loss [\d.]+ at step 1 -> "
                     rf"[\d.]+ at step {N}", done.stdout)
    assert done.stdout.count("----- sample at step") == N // 10


def test_bptt_check_line_shows_round_off(trained):
    stdout = trained[1].stdout
    assert "graph BPTT vs hand-derived BPTT" in stdout
    found = dict(re.findall(r"\b(Wxh|Whh|Why|bh|by|h0) (\d\.\de[-+]\d+)", stdout))
    assert sorted(found) == sorted(["Wxh", "Whh", "Why", "bh", "by", "h0"])
    assert all(float(v) < 1e-9 for v in found.values()), found


def test_resume_continues_exactly(trained, files, tmp_path):
    first = run(CHAR_RNN, "--data", files / "text.txt", "--steps", K, *TINY, "--out", tmp_path,
                cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    resumed = run(CHAR_RNN, "--resume", tmp_path / "checkpoint.npz", "--steps", N,
                  cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {K}" in resumed.stdout
    whole, pieced = losses(trained[0] / "checkpoint.npz"), losses(tmp_path / "checkpoint.npz")
    assert len(whole) == len(pieced) == N
    assert np.max(np.abs(whole - pieced)) < 1e-12
    a, b = mt.load(trained[0] / "checkpoint.npz"), mt.load(tmp_path / "checkpoint.npz")
    assert all(np.max(np.abs(a["model"][k] - b["model"][k])) < 1e-12 for k in a["model"])


def test_ctrl_c_saves_and_resume_matches_an_uninterrupted_run(files, tmp_path):
    args = ["--data", files / "text.txt", *TINY[:6], "--sample-every", "20", "--save-every", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(CHAR_RNN), *map(str, args), "--steps",
                             "100000", "--out", str(tmp_path / "a")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("----- sample at step"):
                break
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "interrupted at step" in stdout and "--resume" in stdout
    k = mt.load(tmp_path / "a" / "checkpoint.npz")["step"]
    assert k >= 20
    resumed = run(CHAR_RNN, "--resume", tmp_path / "a" / "checkpoint.npz", "--steps", k + 10,
                  cwd=tmp_path)
    whole = run(CHAR_RNN, *args, "--steps", k + 10, "--out", tmp_path / "b", cwd=tmp_path)
    assert resumed.returncode == 0 and whole.returncode == 0, resumed.stderr + whole.stderr
    a, b = losses(tmp_path / "a" / "checkpoint.npz"), losses(tmp_path / "b" / "checkpoint.npz")
    assert len(a) == len(b) == k + 10 and np.max(np.abs(a - b)) < 1e-12


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_report_a_gradcheck(files, tmp_path, cell):
    done = run(CHAR_RNN, "--data", files / "text.txt", "--cell", cell, "--steps", 2,
               "--hidden", 8, "--batch", 2, "--sample-every", 0, "--out", tmp_path,
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"gradient check \({cell}: .*: ok", done.stdout)


def test_sample_generates_from_a_checkpoint(trained):
    out = trained[0]
    done = run(SAMPLE, "--checkpoint", out / "checkpoint.npz", "--length", 50, "--prime",
               "line", "--seed", 1, cwd=out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("line") and len(done.stdout.rstrip("\n")) >= 50
    again = run(SAMPLE, "--checkpoint", out / "checkpoint.npz", "--length", 50, "--prime",
                "line", "--seed", 1, cwd=out)
    assert again.stdout == done.stdout


@pytest.mark.parametrize("args, pattern", [
    (["--prime", "a€b"], r"not in the vocabulary.*'€'"),
    (["--length", "0"], r"--length: must be an integer from 1 to 10,000,000, got 0"),
    (["--length", str(10 ** 14)], r"--length: must be an integer from 1 to 10,000,000"),
    (["--seed", "-1"], r"--seed: must be an integer >= 0, got -1"),
    (["--temperature", "1e-320"], r"--temperature: must be a finite number >= 0.001 .*1e-320"),
    (["--temperature", "inf"], r"--temperature: must be a finite number"),
])
def test_sample_bad_input(trained, args, pattern):
    done = run(SAMPLE, "--checkpoint", trained[0] / "checkpoint.npz", *args, cwd=trained[0])
    assert done.returncode == 2 and re.fullmatch(rf"error: .*{pattern}.*\n", done.stderr)


# {ck}: the trained checkpoint, {run}: its folder, {d}: the folder of the data files
BAD = {
    "missing data": (["--data", "{d}/nope.txt", "--out", "{run}", "--force"], "does not exist"),
    "empty data": (["--data", "{d}/empty.txt", "--out", "{run}", "--force"], "is empty"),
    "binary data": (["--data", "{d}/binary.txt", "--out", "{run}", "--force"], "binary"),
    "non-UTF-8 data": (["--data", "{d}/latin1.txt", "--out", "{run}", "--force"],
                       "not UTF-8.*iconv"),
    "text shorter than a sequence": (["--data", "{d}/short.txt", "--out", "{run}", "--force"],
                                     "too few"),
    "seq-len 0": (["--seq-len", "0", "--out", "{run}", "--force"], "--seq-len: must be"),
    "negative hidden": (["--hidden", "-4", "--out", "{run}"], "--hidden: must be"),
    "zero batch": (["--batch", "0", "--out", "{run}"], "--batch: must be"),
    "negative steps": (["--steps", "-1", "--out", "{run}"], "--steps: must be"),
    "resume another model": (["--resume", "{ck}", "--cell", "lstm"], "another run.*--cell rnn"),
    "resume another vocabulary": (["--resume", "{ck}", "--data", "{d}/other.txt", "--steps",
                                   "60"], "vocabulary"),
    "resume a non-checkpoint": (["--resume", "{d}/text.txt"], "not a checkpoint"),
    "out not writable": (["--data", "{d}/text.txt", "--out", "{d}/text.txt/sub"],
                         "cannot write to the output folder"),
    "out holds another run": (["--data", "{d}/text.txt", "--out", "{run}"],
                              "already holds a checkpoint.*--force"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line_and_saves_nothing(trained, files, name):
    out = trained[0]
    args, pattern = BAD[name]
    args = [a.format(ck=out / "checkpoint.npz", run=out, d=files) for a in args]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    done = run(CHAR_RNN, *args, cwd=files)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert re.fullmatch(rf"error: [^\n]*{pattern}[^\n]*\n", done.stderr), done.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("script", [CHAR_RNN, SAMPLE], ids=["char_rnn", "sample"])
def test_help_explains_every_option(script, tmp_path):
    done = run(script, "--help", cwd=tmp_path)
    assert done.returncode == 0
    entries = re.split(r"\n  (?=-)", done.stdout.split("options:")[1])[1:]
    assert entries
    for entry in entries:                       # flags, then at least a few words of help
        assert re.match(r"-\S.*?(\s{2,}|\n\s+)\S+ \S+ \S+", entry, flags=re.S), entry
    if script == CHAR_RNN:
        options = [re.match(r"(?:-h, )?(--[\w-]+)", e).group(1) for e in entries]
        assert options == ["--help", "--data", "--cell", "--hidden", "--seq-len", "--batch",
                           "--optimizer", "--lr", "--clip", "--steps", "--seed", "--dtype",
                           "--sample-every", "--temperature", "--save-every", "--out",
                           "--resume", "--force"]
