"""Train a character-level language model with truncated BPTT: verified, visible, resumable.

    python examples/char_rnn.py                          # about a minute on Python's own source
    python examples/char_rnn.py --data input.txt --cell lstm --steps 20000
    python examples/char_rnn.py --resume runs/char_rnn-<time>/checkpoint.npz --steps 8000

Before training, graph BPTT is checked against the hand-derived BPTT on the first batch.
Written into --out: checkpoint.npz (every --save-every steps, at the end and on Ctrl-C),
loss.png, graph.svg (one truncated-BPTT chunk coloured by gradient norm, drawn after
loss.backward(keep_grads=True)), grad_flow.png (‖∂L/∂h_t‖ through a chunk) and sample.txt.
Bad input (options, data, a checkpoint, a run too big for this machine's memory) exits with
status 2 and a one-line "error: …" on stderr, and saves nothing. On a terminal progress is a
tqdm bar; in a log or a pipe, a plain line every 5% of the steps.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")    # tiny matmuls: BLAS threads only contend (≈10× slower)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

import microtensor as mt  # noqa: E402
from microtensor.files import atomic_write, new_folder  # noqa: E402
from microtensor.models.charlm import (CharLM, DataError, Vocab, batches, bptt_differences,  # noqa: E402
                                       check_length, corpus_files, gradcheck_chunk, load_checkpoint,
                                       load_corpus, memory_estimate, parameter_count, save_checkpoint)

CHECKPOINT = "checkpoint.npz"
EAGER_STEPS = 50                        # --compile: steps run eagerly first, to print both speeds
OPTIMIZERS = {"adam": (mt.optim.Adam, 2e-3), "adagrad": (mt.optim.Adagrad, 0.1),
              "sgd": (mt.optim.SGD, 0.3)}
DEFAULTS = dict(cell="rnn", hidden=128, seq_len=25, batch=32, optimizer="adam", lr=None,
                clip=5.0, steps=6000, seed=0, dtype="float64", sample_every=1000,
                temperature=0.8, save_every=1000)
RUN_KEYS = ("cell", "hidden", "seq_len", "batch", "optimizer", "lr", "clip", "seed", "dtype")
SAVED_KEYS = {"run_id": str, "data_sha256": str, "data": (str, type(None)), "chars": int}


class UsageError(Exception):
    """Bad input found after argument parsing: reported as "error: …", exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):           # one line, not argparse's usage + error
        self.exit(2, f"error: {message} (see --help)\n")


def _checked(kind, ok, what):
    """An argparse type: kind(s) if ok(it), else a message saying what was expected."""
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {what}, got {s}")
        return v
    return parse


POS_INT = _checked(int, lambda v: v >= 1, "a positive integer")
NONNEG_INT = _checked(int, lambda v: v >= 0, "an integer >= 0")
POS_FLOAT = _checked(float, lambda v: 0 < v < math.inf, "a positive number")
NONNEG_FLOAT = _checked(float, lambda v: 0 <= v < math.inf, "a number >= 0")
MIN_TEMPERATURE = 1e-3       # below it sampling is greedy anyway: the likeliest character
TEMPERATURE = _checked(float, lambda v: MIN_TEMPERATURE <= v < math.inf,
                       f"a finite number >= {MIN_TEMPERATURE:g} (lower samples the likeliest "
                       f"character anyway)")
# what each setting may be, on the command line and in a checkpoint to resume
TYPES = dict(hidden=POS_INT, seq_len=POS_INT, batch=POS_INT, lr=POS_FLOAT, clip=NONNEG_FLOAT,
             steps=NONNEG_INT, seed=NONNEG_INT, sample_every=NONNEG_INT,
             temperature=TEMPERATURE, save_every=NONNEG_INT)
CHOICES = dict(cell=("rnn", "lstm", "gru"), optimizer=tuple(OPTIMIZERS),
               dtype=("float32", "float64"))


def parse_args(argv=None):
    p = Parser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS
    p.add_argument("--data", metavar="PATH", help="UTF-8 text file to train on (default: "
                   "the first 300 KB of Python's standard library source, read at run time)")
    p.add_argument("--cell", choices=CHOICES["cell"],
                   help=f"recurrent cell: rnn is models.VanillaRNN (default {d['cell']})")
    p.add_argument("--hidden", type=POS_INT, metavar="H",
                   help=f"hidden size (default {d['hidden']})")
    p.add_argument("--seq-len", type=POS_INT, metavar="T", help=f"truncated-BPTT chunk "
                   f"length; the state is carried, detached, between chunks "
                   f"(default {d['seq_len']})")
    p.add_argument("--batch", type=POS_INT, metavar="B", help=f"parallel contiguous streams "
                   f"through the text (default {d['batch']})")
    p.add_argument("--optimizer", choices=CHOICES["optimizer"],
                   help=f"optimizer (default {d['optimizer']})")
    p.add_argument("--lr", type=POS_FLOAT, help="learning rate (default: " + ", ".join(
        f"{k} {v[1]:g}" for k, v in OPTIMIZERS.items()) + ")")
    p.add_argument("--clip", type=NONNEG_FLOAT, help=f"clip the gradient norm of each step "
                   f"to this; 0 turns clipping off (default {d['clip']:g})")
    p.add_argument("--steps", type=NONNEG_INT, help=f"total training steps, counting those "
                   f"of a resumed run (default {d['steps']}, or the checkpoint's target)")
    p.add_argument("--seed", type=NONNEG_INT, help=f"seed for the weights, the data order and "
                   f"the samples (default {d['seed']})")
    p.add_argument("--dtype", choices=CHOICES["dtype"],
                   help=f"floating-point type of the model (default {d['dtype']})")
    p.add_argument("--sample-every", type=NONNEG_INT, metavar="N", help=f"print a generated "
                   f"sample every N steps; 0 never (default {d['sample_every']})")
    p.add_argument("--temperature", type=TEMPERATURE, help=f"sampling temperature: lower "
                   f"is more conservative (default {d['temperature']})")
    p.add_argument("--save-every", type=NONNEG_INT, metavar="N", help=f"save a checkpoint "
                   f"every N steps; 0 only at the end and on Ctrl-C (default {d['save_every']})")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: a new "
                   "runs/char_rnn-<date-time>, made for this run alone, or the resumed "
                   "checkpoint's folder)")
    p.add_argument("--resume", type=Path, metavar="PATH", help="continue the run saved in "
                   "this checkpoint exactly where it stopped; options left out are taken "
                   "from it, and options that define the run must match it")
    p.add_argument("--compile", action="store_true", help="train with mt.compile: the first "
                   "50 steps run eagerly, the rest replay a traced step (bitwise the same "
                   "training); both speeds are printed")
    p.add_argument("--force", action="store_true", help="let a fresh run overwrite a "
                   "checkpoint already in --out")
    return p.parse_args(argv)


def check_resumable(ck, path):
    """CheckpointError unless ck (a CharLM checkpoint) holds a run this script saved: every
    setting one the command line could give, the RNG states, a loss for every step."""
    cfg, history = ck["config"], ck["history"]
    if not ({*RUN_KEYS, "run_id", "data_sha256"} <= cfg.keys() and "loss" in history):
        raise UsageError(f"checkpoint '{path}' was not saved by char_rnn.py, so it cannot be "
                         f"resumed here (use examples/sample.py to sample from it)")
    bad = []
    for key, v in cfg.items():
        if key in CHOICES:
            ok = isinstance(v, str) and v in CHOICES[key]
        elif key in TYPES:
            try:
                parsed = TYPES[key](str(v))
                ok = parsed == v and type(parsed) is type(v)
            except argparse.ArgumentTypeError:
                ok = False
        else:                               # keys a later version may add are left alone
            ok = key not in SAVED_KEYS or (isinstance(v, SAVED_KEYS[key])
                                           and not isinstance(v, bool))
        if not ok:
            bad.append(f"{key} {v!r:.40}")
    if cfg.get("hidden") != ck["model_config"]["hidden_size"] or \
            cfg.get("cell") != ck["model_config"]["cell"]:
        bad.append("cell and hidden size unlike its model's")
    if bad:
        raise mt.CheckpointError(f"checkpoint '{path}' holds run settings char_rnn.py never "
                                 f"writes: {', '.join(bad)}")
    for name in ("mt", "sampler"):
        try:
            np.random.default_rng().bit_generator.state = ck["rng"][name]
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise mt.CheckpointError(f"checkpoint '{path}' has a bad state for the '{name}' "
                                     f"random generator ({type(e).__name__}: {e})") from None
    if len(history["loss"]) != ck["step"]:
        raise mt.CheckpointError(f"checkpoint '{path}' is at step {ck['step']} but holds the "
                                 f"loss of {len(history['loss'])} steps")


def resolve(args, ck):
    """The run's settings: the command line, else the checkpoint's, else the defaults."""
    saved = ck["config"] if ck else {}
    cfg, clash = {}, []
    for key, default in DEFAULTS.items():
        given = getattr(args, key)
        if ck and key in RUN_KEYS and given is not None and given != saved[key]:
            clash.append(f"--{key.replace('_', '-')} {saved[key]} (not {given})")
        cfg[key] = given if given is not None else saved.get(key, default)
    if clash:
        raise UsageError(f"checkpoint '{args.resume}' is of another run, trained with "
                         f"{', '.join(clash)}: leave these options out to continue it, or "
                         f"start a fresh run without --resume")
    if ck and ck["step"] >= cfg["steps"]:
        done = ck["step"]
        if args.steps is not None and args.steps < done:
            raise UsageError(f"--steps {args.steps} is below the {done} steps checkpoint "
                             f"'{args.resume}' has already done (--steps counts every step of "
                             f"the run): pass --steps above {done} to train it further")
        raise UsageError(f"the run in checkpoint '{args.resume}' is finished: it has done all "
                         f"{done} of its {cfg['steps']} steps (pass a larger --steps, e.g. "
                         f"--steps {2 * done or 1000}, to train it further)")
    if cfg["lr"] is None:
        cfg["lr"] = OPTIMIZERS[cfg["optimizer"]][1]
    cfg["data"] = str(Path(args.data).resolve()) if args.data else saved.get("data")
    cfg["run_id"] = saved.get("run_id") or uuid.uuid4().hex
    return cfg


def machine_memory():
    """Bytes of memory this machine has, or a cgroup (container) limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            total = min(total, int(Path(limit).read_text()))
        except (OSError, ValueError):       # absent, or "max"
            pass
    return total


def size(n):
    """Bytes as a short figure in binary units: 23.5 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024


def check_memory(cfg, vocab_size, chars):
    """UsageError, with the figures, when the run would need more memory than there is."""
    need = memory_estimate(vocab_size, cfg["hidden"], cfg["cell"], cfg["dtype"], cfg["batch"],
                           cfg["seq_len"], OPTIMIZERS[cfg["optimizer"]][0].__name__, chars)
    have = machine_memory()
    if need > have:
        params = parameter_count(vocab_size, cfg["hidden"], cfg["cell"])
        raise UsageError(f"this run needs about {size(need)} of memory ({cfg['cell']} "
                         f"H={cfg['hidden']:,}: {params:,} parameters in {cfg['dtype']}, "
                         f"{cfg['optimizer']}, T={cfg['seq_len']:,}, B={cfg['batch']:,}), more "
                         f"than this machine's {size(have)}: use a smaller --hidden, --batch "
                         f"or --seq-len")


def prepare_out(out, args, ck):
    """Create --out and check that it is writable and holds no other run's checkpoint."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to the output folder '{out}': {e.strerror or e} "
                         f"(choose another --out)") from None
    existing = out / CHECKPOINT
    if existing.exists() and not existing.is_file():
        raise UsageError(f"'{existing}' exists and is not a regular file, so no checkpoint "
                         f"can be saved there (choose another --out)")
    if args.force or not existing.exists():
        return
    if args.resume and existing.samefile(args.resume):
        return
    try:
        other = mt.load(existing)
        other_id, other_step = other["config"]["run_id"], other["step"]
    except (mt.CheckpointError, KeyError, TypeError):
        other_id, other_step = None, "?"
    if ck and other_id == ck["config"]["run_id"] and other_step <= ck["step"]:
        return                              # an older checkpoint of this very run
    raise UsageError(f"'{out}' already holds a checkpoint (step {other_step}) of another run: "
                     f"continue it with --resume {existing}, choose another --out, or pass "
                     f"--force to overwrite it")


class Progress:
    """A tqdm bar when stdout and stderr are both a terminal; otherwise (a log file, a pipe)
    a plain line every 5% of the steps, so a log holds lines, not thousands of redraws."""

    def __init__(self, total, initial):
        interactive = sys.stdout.isatty() and sys.stderr.isatty()
        self.total = total
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True) \
            if interactive else None
        rough = max(1, math.ceil(total / 20))  # 1, 2 or 5 times a power of ten, at least that
        self.every = min(m * 10 ** e for e in range(len(str(rough)) + 1) for m in (1, 2, 5)
                         if m * 10 ** e >= rough)

    def update(self, step, text):
        if self.bar is not None:
            self.bar.update()
            self.bar.set_postfix_str(text, refresh=False)
        elif step % self.every == 0 or step == self.total:
            print(f"step {step:,}/{self.total:,}: {text}", flush=True)

    def write(self, text):
        (self.bar.write if self.bar is not None else print)(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


class Interrupt:
    """Ctrl-C asks the loop to stop after the step under way (so the checkpoint is
    consistent); a second Ctrl-C raises KeyboardInterrupt at once."""

    def __enter__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def smoothed(losses, decay, start):
    """min-char-rnn's running average, per character: s ← decay·s + (1 − decay)·loss."""
    out, s = [], start
    for x in losses:
        s = decay * s + (1 - decay) * x
        out.append(s)
    return out


def plot_losses(losses, smooth, path, title):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.6, alpha=0.4, label="loss of each step")
    ax.plot(steps, smooth, lw=2, label="smoothed")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per character (nats)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")


def check_gradients(model, xs, ys, state):
    """The headline: graph BPTT against the hand-derived one (rnn), else gradcheck."""
    T, B = xs.shape
    if model.cell_type == "rnn":
        h0 = None if state is None else state.data
        diffs = bptt_differences(model, xs, ys, h0)
        worst = max(diffs.values())
        print(f"BPTT check on the first batch (T={T}, B={B}, float64): max relative "
              f"difference, graph BPTT vs hand-derived BPTT (models/rnn_reference.py)")
        print("  " + "  ".join(f"{k} {v:.1e}" for k, v in diffs.items()) +
              f"  -> worst {worst:.1e}: " + ("equal to round-off" if worst < 1e-9 else
                                             "DIFFERENT"))
        if worst >= 1e-9:
            sys.exit("error: graph BPTT differs from the hand-derived BPTT (a bug: please "
                     "report it with this command line)")
        return
    names = gradcheck_chunk(model, xs, ys)
    print(f"gradient check ({model.cell_type}: the hand-derived BPTT covers only the vanilla "
          f"RNN, so mt.gradcheck instead): finite differences, float64, 4 steps of stream 0 "
          f"of the first batch, w.r.t. {', '.join(names)}: ok")


def render(model, xs, ys, out, written):
    """graph.svg: one 8-step chunk of stream 0 coloured by ‖grad‖; grad_flow.png:
    ‖∂L/∂h_t‖ through a whole chunk. Both need the hidden states' gradients: keep_grads.
    The names of the files written are appended to `written`."""
    model.zero_grad()
    loss, _ = model.loss(xs[:8, :1], ys[:8, :1])
    loss.backward(keep_grads=True)
    try:
        mt.viz.save_graph(loss, out / "graph.svg", params=model, show_grads=True,
                          collapse=2, rankdir="LR")
        written.append("graph.svg")
    except mt.viz.GraphvizNotFound as e:
        print(f"warning: graph.svg not written: {e}")
    loss, _ = model.loss(xs[:, :1], ys[:, :1])
    loss.backward(keep_grads=True)
    mt.viz.plot_grad_flow(mt.viz.step_states(loss), out / "grad_flow.png",
                          title=rf"$\|\partial L/\partial h_t\|$ through one {xs.shape[0]}-step "
                                f"chunk ({model.cell_type}, loss at every step)")
    written.append("grad_flow.png")
    model.zero_grad()


def main(argv=None):
    args = parse_args(argv)
    ck = load_checkpoint(args.resume) if args.resume else None
    if ck:
        check_resumable(ck, args.resume)
    cfg = resolve(args, ck)
    text = load_corpus(cfg["data"])
    check_length(len(text), cfg["batch"], cfg["seq_len"])
    vocab = Vocab.from_text(text)
    check_memory(cfg, len(vocab), len(text))
    data = vocab.encode(text)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if ck and vocab == ck["vocab"] and sha != ck["config"]["data_sha256"]:
        raise UsageError(f"the text differs from the one checkpoint '{args.resume}' was "
                         f"trained on ({ck['config']['data'] or 'the default corpus'}), "
                         f"though its characters are the same: resume with that very text")
    cfg.update(data_sha256=sha, chars=len(data))

    mt.manual_seed(cfg["seed"])
    model = CharLM(len(vocab), cfg["hidden"], cfg["cell"], cfg["dtype"])
    opt_class = OPTIMIZERS[cfg["optimizer"]][0]
    opt = opt_class(model.parameters(), lr=cfg["lr"])
    sampler = np.random.default_rng(cfg["seed"])
    B, T, steps = cfg["batch"], cfg["seq_len"], cfg["steps"]
    step, losses, state = 0, [], None
    if ck:
        shapes = [a.shape for a in model.state_to_arrays(model.initial_state(B))]
        if ck["state"] is not None and [a.shape for a in ck["state"]] != shapes:
            raise mt.CheckpointError(f"checkpoint '{args.resume}' holds a recurrent state of "
                                     f"shapes {[a.shape for a in ck['state']]}, not {shapes}")
        load_checkpoint(args.resume, model, opt, vocab)
        step, losses = ck["step"], [float(x) for x in ck["history"]["loss"]]
        state = None if ck["state"] is None else model.state_from_arrays(ck["state"])
        mt.set_rng_state(ck["rng"]["mt"])
        sampler.bit_generator.state = ck["rng"]["sampler"]
    out = args.out or (args.resume.parent if args.resume else None)
    if out is None:
        try:
            out = new_folder("runs", time.strftime("char_rnn-%Y%m%d-%H%M%S"))
        except OSError as e:
            raise UsageError(f"cannot create a run folder in 'runs': {e.strerror or e} "
                             f"(choose a folder with --out)") from None
    else:
        prepare_out(out, args, ck)

    files = [Path(f).name for f in corpus_files()]
    where = cfg["data"] or f"Python {sys.version.split()[0]}'s standard library " \
                           f"({len(files)} files, {files[0]} … {files[-1]})"
    print(f"data: {len(data):,} characters of {where}; vocabulary {len(vocab)}, "
          f"ln V = {math.log(len(vocab)):.3f}")
    print(f"model: {cfg['cell']} H={cfg['hidden']} {cfg['dtype']}, "
          f"{sum(p.size for p in model.parameters()):,} parameters; {cfg['optimizer']} "
          f"lr {cfg['lr']:g}, clip {cfg['clip']:g}; T={T}, B={B}; output in {out}"
          + (f"; resuming at step {step}" if ck else ""))
    stream = batches(data, B, T, seed=cfg["seed"], start=step)
    xs, ys, fresh = next(stream)
    check_gradients(model, xs, ys, None if fresh else state)

    decay = 0.999 ** (B * T / 25)        # min-char-rnn's 0.999 per 25 characters
    smooth = smoothed(losses, decay, math.log(len(vocab)))
    params = list(model.parameters())
    saved_step = None                    # the step of this run's last completed save

    def save():
        nonlocal saved_step
        try:
            save_checkpoint(out / CHECKPOINT, model, opt, step,
                            {"mt": mt.get_rng_state(), "sampler": sampler.bit_generator.state},
                            vocab, cfg, state, {"loss": losses})
            saved_step = step
            plot_losses(losses, smooth, out / "loss.png", f"{cfg['cell']} H={cfg['hidden']}, "
                        f"T={T}, B={B}, {cfg['optimizer']} lr {cfg['lr']:g}")
        except OSError as e:
            raise UsageError(f"cannot save into '{out}': {e} (any checkpoint saved there "
                             f"before is intact)") from None

    def train_step(xs, ys, state):
        opt.zero_grad()
        loss, state = model.loss(xs, ys, state)
        loss.backward()
        if cfg["clip"]:
            mt.nn.utils.clip_grad_norm_(params, cfg["clip"])
        opt.step()
        return loss, mt.nn.detach_state(state)
    compiled_step = mt.compile(train_step)      # --compile (issue 17): the same step, replayed
    times = {True: [0.0, 0], False: [0.0, 0]}   # eager?: [seconds, steps]

    first_step, start, train_time = step, time.perf_counter(), 0.0
    try:
        with Interrupt() as interrupt, Progress(steps, step) as progress:
            while step < steps and not interrupt.requested:
                if step > first_step:
                    xs, ys, fresh = next(stream)
                tick = time.perf_counter()
                if fresh:
                    state = model.initial_state(B)
                eager = not args.compile or step - first_step < EAGER_STEPS
                loss, state = (train_step if eager else compiled_step)(xs, ys, state)
                step += 1
                losses.append(loss.item())
                smooth.append(decay * (smooth[-1] if smooth else math.log(len(vocab)))
                              + (1 - decay) * losses[-1])
                train_time += time.perf_counter() - tick
                times[eager][0] += time.perf_counter() - tick
                times[eager][1] += 1
                rate = (step - first_step) * B * T / train_time
                progress.update(step, f"loss {losses[-1]:.3f}, smoothed {smooth[-1]:.3f}, "
                                      f"{rate:,.0f} chars/s")
                if cfg["sample_every"] and step % cfg["sample_every"] == 0:
                    s = vocab.decode(model.generate(xs[:, 0], 200, cfg["temperature"],
                                                    sampler))
                    progress.write(f"----- sample at step {step}, smoothed loss "
                                   f"{smooth[-1]:.3f} -----\n{s}\n-----")
                if cfg["save_every"] and step % cfg["save_every"] == 0 and step < steps:
                    save()
            save()          # a Ctrl-C now only asks; a second one stops it, keeping the old
    except KeyboardInterrupt:
        held = f"{out / CHECKPOINT} holds its last completed save, of step {saved_step}" \
            if saved_step is not None else "this run saved no checkpoint (an older one is " \
                                           "unchanged)"
        print(f"stopped at once by a second Ctrl-C at step {step}: {held}", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - start
    if step < steps:
        print(f"interrupted at step {step}: saved {out / CHECKPOINT}; continue with\n"
              f"  python examples/char_rnn.py --resume {out / CHECKPOINT}")
        return 130
    if interrupt.requested:
        print(f"Ctrl-C after the last step: training is complete and saved (step {step}); "
              f"writing the remaining outputs (Ctrl-C again to skip them)")

    written = [CHECKPOINT, "loss.png"]
    try:
        render(model, xs, ys, out, written)
        prime = vocab.encode("\n" if "\n" in vocab.chars else text[0])
        sample = vocab.decode(model.generate(prime, 1000, cfg["temperature"], sampler))
        with atomic_write(out / "sample.txt") as f:
            f.write(sample.encode("utf-8"))
        written.append("sample.txt")
    except (KeyboardInterrupt, OSError) as e:
        missing = [f for f in ("graph.svg", "grad_flow.png", "sample.txt") if f not in written]
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else f"error: {e};"
        print(f"{why} after training finished: {out / CHECKPOINT} holds all {step} steps; "
              f"not written: {', '.join(missing)} (generate text with python "
              f"examples/sample.py --checkpoint {out / CHECKPOINT})", file=sys.stderr)
        return 130 if isinstance(e, KeyboardInterrupt) else 2
    print(f"----- final sample (temperature {cfg['temperature']:g}) -----\n{sample}\n-----")
    print("wrote " + ", ".join(str(out / f) for f in written))
    done, nan = step - first_step, float("nan")
    print(f"done: {done} steps in {elapsed:.1f} s ({train_time:.1f} s of them training, "
          f"{done * B * T / max(train_time, 1e-9):,.0f} chars/s); smoothed loss "
          f"{smooth[0] if smooth else nan:.3f} at step 1 -> {smooth[-1] if smooth else nan:.3f} "
          f"at step {step} (ln V = {math.log(len(vocab)):.3f})")
    if args.compile:
        print("speed: " + ", ".join(f"{'eager' if k else 'compiled'} {n * B * T / max(sec, 1e-9):,.0f} "
                                    f"chars/s over {n} steps" for k, (sec, n) in times.items() if n)
              + f" ({compiled_step.counts['replayed']} replayed, {compiled_step.counts['traced']} traced)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (UsageError, DataError, mt.CheckpointError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted (checkpoints already saved are intact)", file=sys.stderr)
        sys.exit(130)
