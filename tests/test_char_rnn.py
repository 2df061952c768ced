"""examples/char_rnn.py and sample.py run as a user runs them: outputs, the BPTT check, exact
resumption (after --steps and after Ctrl-C, also during the final save), run folders of their
own, logs, and one-line errors for bad input and crafted checkpoints that leave files intact."""
import copy
import fcntl
import importlib.util
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
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
    (d / "fifo_out").mkdir()
    os.mkfifo(d / "fifo_out" / "checkpoint.npz")
    return d


@pytest.fixture(scope="module")
def trained(files):
    """An uninterrupted run of N steps in float64; (folder, completed process)."""
    out = files / "run"
    done = run(CHAR_RNN, "--data", files / "text.txt", "--steps", N, *TINY, "--out", out,
               cwd=files)
    assert done.returncode == 0, done.stderr
    return out, done


def test_a_log_gets_plain_progress_lines_not_a_bar(trained):
    """stdout and stderr are pipes here: no tqdm redraws, a line every 5% of the steps."""
    done = trained[1]
    assert "\r" not in done.stdout + done.stderr and done.stderr == ""
    assert re.findall(r"^step (\d+)/30: loss \d\.\d{3}, smoothed \d\.\d{3}, [\d,]+ chars/s$",
                      done.stdout, re.M) == [str(k) for k in range(2, 31, 2)]


def test_a_terminal_gets_the_tqdm_bar(files, tmp_path):
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # 100 columns
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(CHAR_RNN), "--data", str(files / "text.txt"),
                             "--steps", "12", *TINY, "--out", str(tmp_path)], cwd=tmp_path,
                            env=env, stdin=subprocess.DEVNULL, stdout=child, stderr=child)
    os.close(child)
    seen, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([main], [], [], 1)[0]:
            try:
                chunk = os.read(main, 1 << 16)
            except OSError:                     # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert re.search(r"\r.*12/12 \[.*step/s, loss \d\.\d{3}, smoothed", text), text
    assert not re.search(r"^step \d+/12:", text, re.M)


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


def _bitwise_tree(a, b, where="checkpoint"):
    """a and b equal all the way down, arrays by shape, dtype and bytes; a list of where not."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} vs {list(b)}"]
        return [d for k in a for d in _bitwise_tree(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _bitwise_tree(x, y, f"{where}[{i}]")]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        same = a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
        return [] if same else [f"{where}: arrays differ"]
    return [] if type(a) is type(b) and a == b else [f"{where}: {a!r} vs {b!r}"]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_compile_trains_bitwise_as_eager(files, tmp_path, cell):
    """--compile runs the first 50 steps eagerly, then replays the traced step; the
    checkpoint (weights, Adam's state, the carried state, the RNG states, every loss) is an
    eager run's, byte for byte (LSTM: a tuple state carried through the replays)."""
    steps = 50 + 12                             # char_rnn.EAGER_STEPS, then 12 compiled
    args = ["--data", files / "text.txt", "--cell", cell, "--steps", steps, *TINY[:6],
            "--sample-every", "0", "--save-every", "0"]
    eager = run(CHAR_RNN, *args, "--out", tmp_path / "eager", cwd=tmp_path)
    comp = run(CHAR_RNN, *args, "--compile", "--out", tmp_path / "compiled", cwd=tmp_path)
    assert eager.returncode == 0 and comp.returncode == 0, eager.stderr + comp.stderr
    assert re.search(r"speed: eager [\d,]+ chars/s over 50 steps, compiled [\d,]+ chars/s "
                     r"over 12 steps \(11 replayed, 1 traced\)", comp.stdout), comp.stdout
    a = mt.load(tmp_path / "eager" / "checkpoint.npz")
    b = mt.load(tmp_path / "compiled" / "checkpoint.npz")
    assert a["config"].pop("run_id") != b["config"].pop("run_id")
    assert a["step"] == steps and _bitwise_tree(a, b) == []


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
    "checkpoint path is a FIFO": (["--data", "{d}/text.txt", "--out", "{d}/fifo_out", "--force"],
                                  "fifo_out/checkpoint.npz' exists and is not a regular file"),
    "data from /dev/zero": (["--data", "/dev/zero", "--out", "{run}", "--force"],
                            r"'/dev/zero' contains NUL bytes \(the first at byte 0\)"),
    "hidden 10**7": (["--data", "{d}/text.txt", "--hidden", str(10 ** 7), "--out", "{run}"],
                     r"this run needs about [\d.]+ PiB of memory \(rnn H=10,000,000: "
                     r"[\d,]{19} parameters in float64, adam, T=25, B=32\), more than this "
                     r"machine's [\d.]+ [MGT]iB: use a smaller --hidden"),
    "lstm hidden 10**8": (["--data", "{d}/text.txt", "--cell", "lstm", "--hidden",
                           str(10 ** 8), "--out", "{run}"], r"needs about [\d.]+ EiB"),
    "temperature 1e-320": (["--temperature", "1e-320", "--out", "{run}"],
                           r"--temperature: must be a finite number >= 0.001"),
    "resume a finished run": (["--resume", "{ck}"], r"the run in checkpoint '.*' is finished: "
                              r"it has done all 30 of its 30 steps \(pass a larger --steps, "
                              r"e.g. --steps 60, to train it further\)"),
    "resume with --steps of the checkpoint": (["--resume", "{ck}", "--steps", "30"],
                                              r"is finished: it has done all 30 of its 30"),
    "resume with --steps below it": (["--resume", "{ck}", "--steps", "12"],
                                     r"--steps 12 is below the 30 steps checkpoint '.*' has "
                                     r"already done .*pass --steps above 30"),
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
                           "--resume", "--compile", "--force"]


# ---- run folders ------------------------------------------------------------------------------
def test_runs_started_together_get_folders_of_their_own(files, tmp_path):
    """Two runs at once without --out, while runs/ already holds a folder for every second of
    the next minute: each gets a new folder, and no existing one is touched."""
    now = time.time()
    taken = {time.strftime("char_rnn-%Y%m%d-%H%M%S", time.localtime(now + i)) for i in range(60)}
    for name in taken:
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "checkpoint.npz").write_bytes(b"someone else's")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, str(CHAR_RNN), "--data", str(files / "text.txt"),
                               "--steps", "1", "--hidden", "4", "--batch", "1", "--seq-len", "5",
                               "--sample-every", "0", "--seed", str(seed)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        outs.append(re.search(r"output in (\S+)", stdout).group(1).rstrip(";"))
    assert len(set(outs)) == 2
    for out, seed in zip(outs, (1, 2)):
        name = Path(out).name
        assert Path(out).parent == Path("runs") and name not in taken
        if name.rsplit("-", 1)[0] in taken:                 # its second was taken: a suffix
            assert re.fullmatch(r"char_rnn-\d{8}-\d{6}-\d+", name), name
        assert mt.load(tmp_path / out / "checkpoint.npz")["config"]["seed"] == seed
    for name in taken:
        assert [p.read_bytes() for p in (tmp_path / "runs" / name).iterdir()] == \
            [b"someone else's"]


# ---- Ctrl-C during the final save -------------------------------------------------------------
# Runs char_rnn.main with save_checkpoint wrapped: at the final step's save it sends this
# process SIGINT (Ctrl-C) once, or once more while the checkpoint is being written.
DRIVER = """
import importlib.util, signal, sys
import numpy as np
spec = importlib.util.spec_from_file_location("char_rnn", sys.argv[1])
char_rnn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(char_rnn)
target, twice, real = int(sys.argv[2]), sys.argv[3] == "twice", char_rnn.save_checkpoint
write_array = np.lib.format.write_array

def save_checkpoint(path, model, optimizer, step, *args, **kwargs):
    if step == target:
        signal.raise_signal(signal.SIGINT)
        if twice:
            def interrupted(*a, **k):
                signal.raise_signal(signal.SIGINT)
                return write_array(*a, **k)
            np.lib.format.write_array = interrupted
    return real(path, model, optimizer, step, *args, **kwargs)

char_rnn.save_checkpoint = save_checkpoint
sys.exit(char_rnn.main(sys.argv[4:]))
"""


@pytest.mark.parametrize("presses", ["once", "twice"])
def test_ctrl_c_during_the_final_save(files, tmp_path, presses):
    """Once: the save completes, the run's outputs are all written, and it says why it went
    on. Twice: the save stops at once and the checkpoint keeps the last completed save."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(CHAR_RNN), str(N), presses,
                           "--data", str(files / "text.txt"), "--steps", str(N), *TINY,
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    ck = mt.load(tmp_path / "checkpoint.npz")
    names = sorted(p.name for p in tmp_path.iterdir())
    if presses == "once":
        assert done.returncode == 0, done.stderr
        assert f"Ctrl-C after the last step: training is complete and saved (step {N}); " \
               f"writing the remaining outputs" in done.stdout
        assert re.search(rf"^done: {N} steps", done.stdout, re.M)
        assert ck["step"] == N and len(ck["history"]["loss"]) == N
        assert names == ["checkpoint.npz", "grad_flow.png", "graph.svg", "loss.png",
                         "sample.txt"]
        assert len((tmp_path / "sample.txt").read_text()) == 1000
    else:
        assert done.returncode == 130, done.stderr
        assert re.fullmatch(rf"stopped at once by a second Ctrl-C at step {N}: .*checkpoint.npz "
                            rf"holds its last completed save, of step 20\n", done.stderr)
        assert "interrupted at step" not in done.stdout and "done:" not in done.stdout
        assert ck["step"] == 20 and len(ck["history"]["loss"]) == 20
        assert names == ["checkpoint.npz", "loss.png"]            # no temporary file left


# ---- crafted checkpoints through the command lines --------------------------------------------
def crafted(source, dest, *where, value=None, drop=False):
    """dest: the checkpoint at source with the entry at keys `where` set to value (or gone)."""
    ck = copy.deepcopy(mt.load(source))
    node = ck
    for k in where[:-1]:
        node = node[k]
    if drop:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    mt.save(ck, dest)
    return dest


# tools (sample.py: s, --resume: r), where, value or drop, message pattern; the checks
# behind --resume are all tried in-process below (test_resuming_a_crafted_checkpoint_…)
CRAFTED = {
    "missing vocabulary": ("s", ("vocab",), dict(drop=True), r"it has no 'vocab'"),
    "bad vocabulary": ("s", ("vocab",), dict(value="zyx"), r"vocabulary is not usable"),
    "config not a dict": ("s", ("config",), dict(value=[1]), r"'config' is a list, not a dict"),
    "negative step": ("sr", ("step",), dict(value=-3), r"its step is -3, below 0"),
    "weights NaN": ("s", ("model", "rnn.by"), dict(value=np.full(40, np.nan)), r"NaN or infin"),
    "bad RNG state": ("r", ("rng", "mt"), dict(value={"bit_generator": "MT19937"}),
                      r"bad state for the 'mt' random generator"),
    "history of another length": ("r", ("history", "loss"), dict(value=np.zeros(7)),
                                  r"is at step 30 but holds the loss of 7 steps"),
}


@pytest.mark.parametrize("name, tool", [(n, t) for n, c in CRAFTED.items() for t in c[0]])
def test_crafted_checkpoint_is_one_line_exit_2(trained, tmp_path, name, tool):
    _, where, how, pattern = CRAFTED[name]
    path = crafted(trained[0] / "checkpoint.npz", tmp_path / "crafted.npz", *where, **how)
    before = path.read_bytes()
    if tool == "s":
        done = run(SAMPLE, "--checkpoint", path, "--length", 5, cwd=tmp_path)
    else:
        done = run(CHAR_RNN, "--resume", path, "--steps", 60, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert re.fullmatch(rf"error: [^\n]*{pattern}[^\n]*\n", done.stderr), done.stderr
    assert path.read_bytes() == before and done.stdout == ""


@pytest.fixture(scope="module")
def char_rnn():
    """examples/char_rnn.py as a module, to run main() in this process."""
    spec = importlib.util.spec_from_file_location("char_rnn_example", CHAR_RNN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# where, value (None with drop), what main() must raise
RESUME = [
    (("config",), [1], r"'config' is a list, not a dict"),
    (("vocab",), None, r"it has no 'vocab'"),                       # dropped
    (("config", "hidden"), "16", r"run settings char_rnn.py never writes: hidden '16'"),
    (("config", "lr"), -0.1, r"never writes: lr -0.1"),
    (("config", "temperature"), 1e-320, r"never writes: temperature 1e-320"),
    (("config", "cell"), "lstm", r"never writes: cell and hidden size unlike its model's"),
    (("config", "run_id"), 5, r"never writes: run_id 5"),
    (("config", "seed"), True, r"never writes: seed True"),
    (("config", "seed"), None, r"not saved by char_rnn.py"),        # dropped
    (("rng", "sampler"), {"state": "x"}, r"bad state for the 'sampler' random generator"),
    (("rng",), {"mt": 1}, r"bad state for the 'mt' random generator"),
    (("state",), [np.zeros((3, 16))], r"recurrent state of shapes \[\(3, 16\)\], not \[\(2, 16\)"),
    (("optimizer", "param_groups", 0, "lr"), "x", r"optimizer hyperparameter 'lr' is 'x'"),
    (("optimizer", "state", 0, "step"), -1, r"optimizer state of parameter 0 is not what Adam"),
    (("optimizer_name",), "SGD", r"optimizer SGD in the checkpoint, Adam here"),
]


@pytest.mark.parametrize("where, value, pattern", RESUME, ids=[
    f"{'/'.join(map(str, w))}={v!r:.20}" for w, v, _ in RESUME])
def test_resuming_a_crafted_checkpoint_raises_what_is_wrong(char_rnn, trained, tmp_path, where,
                                                            value, pattern):
    path = crafted(trained[0] / "checkpoint.npz", tmp_path / "crafted.npz", *where,
                   value=value, drop=value is None)
    with pytest.raises((char_rnn.UsageError, mt.CheckpointError), match=pattern):
        char_rnn.main(["--resume", str(path), "--steps", "60"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.npz"]
