"""python -m tests.fuzz: run random programs from a seed for a count or minutes, and explain failures."""
import argparse
import sys
import time
from collections import defaultdict

from . import compiled
from .check import check
from .generate import generate
from .minimize import minimize
from .programs import to_python
from .report import explain, signature
from .vocab import torch


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    ap.add_argument("--count", type=int, help="programs to run (default 1000 unless --minutes)")
    ap.add_argument("--minutes", type=float, help="stop after this long")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (then seed+1, …)")
    ap.add_argument("--kinks", action="store_true",
                    help="only the kink pass: values exactly at kinks and ties, against torch")
    ap.add_argument("--with-kinks", action="store_true",
                    help="after the programs, a kink pass a fifth as long (what `make fuzz` runs)")
    ap.add_argument("--compiled", action="store_true",
                    help="instead of torch and finite differences, run each program as a "
                         "training step eagerly and through mt.compile and compare bit for bit "
                         "(tests/fuzz/compiled.py)")
    ap.add_argument("--force", metavar="OP", help="every program records this registered op")
    ap.add_argument("--length", type=int, help="statements per program (default 4-15)")
    ap.add_argument("--examples", type=int, default=3,
                    help="failures of each kind to minimise and print (default 3): after the "
                         "first, only programs that do not contain an earlier one's minimised "
                         "signature, so each shows another cause where there is one")
    ap.add_argument("--print", action="store_true", help="print every program as Python")
    args = ap.parse_args(argv)
    if args.count is None and args.minutes is None:
        args.count = 1000
    return args


def _first(report, kind):
    """The report with failures of `kind` first, so the explanation leads with them."""
    fs = sorted(report.failures, key=lambda f: f.kind != kind)
    return type(report)(report.program, fs, report.rejected, report.expected)


def run(args, kinks, count, minutes):
    """One pass: count programs (or minutes) from args.seed; the number that failed."""
    start = time.monotonic()
    deadline = start + 60 * minutes if minutes else float("inf")
    by_kind, rejected, failed, n, seed = defaultdict(list), 0, 0, 0, args.seed
    last_note = start
    while (count is None or n < count) and time.monotonic() < deadline:
        p = generate(seed, kinks=kinks, force=args.force, length=args.length)
        if args.print:
            print(to_python(p))
        r = compiled.check_compiled(p) if args.compiled else check(p)
        n, seed = n + 1, seed + 1
        if r.rejected:
            rejected += 1
        for kind in r.kinds:              # a program can show several causes at once
            by_kind[kind].append(r)
        failed += not r.ok
        if time.monotonic() - last_note > 30:
            last_note = time.monotonic()
            print(f"… {n} programs, {failed} failing, {last_note - start:.0f} s", file=sys.stderr)
    which = "kink-pass programs" if kinks else "programs"
    ref = [f"torch {torch.__version__}"] if torch is not None else []
    ref += [] if kinks else ["central differences"]
    if args.compiled:
        ref = ["eager, bit for bit, through mt.compile"]
    print(f"{n} {which} (seeds {args.seed}–{seed - 1}) in {time.monotonic() - start:.0f} s "
          f"against {' and '.join(ref) or 'nothing (no torch)'}: "
          f"{n - failed - rejected} passed, {failed} failed, {rejected} not checked", flush=True)
    ranked = sorted(by_kind.items(), key=lambda kv: -len(kv[1]))
    for kind, reports in ranked:
        seeds = ", ".join(str(r.program.seed) for r in reports[:8])
        print(f"  {len(reports):6d}  {kind}  (seeds {seeds}{', …' if len(reports) > 8 else ''})")
    flags = (" --kinks" if kinks else "") + (f" --force {args.force}" if args.force else "") \
        + (f" --length {args.length}" if args.length else "") \
        + (" --compiled" if args.compiled else "")
    for kind, reports in ranked:
        causes = []                   # signatures of the minimised failures of this kind
        for r in reports:
            if len(causes) >= args.examples:
                break
            if any(c <= signature(r.program) for c in causes):
                continue              # likely a cause already shown: look further on
            fails = (lambda c, k=kind: compiled.still_fails(c, k)) if args.compiled else None
            small = minimize(r.program, kind, seconds=10, fails=fails)
            causes.append(signature(small))
            rerun = f"python -m tests.fuzz --seed {r.program.seed} --count 1{flags}"
            text = (compiled.explain if args.compiled else explain)(
                _first(r, kind), small=small, how_to_rerun=rerun)
            print("\n" + text, flush=True)
    return failed


def main(argv=None):
    args = parse(argv)
    failed = run(args, args.kinks, args.count, args.minutes)
    if args.with_kinks and not args.kinks:
        print()
        failed += run(args, True, args.count and max(1, args.count // 5),
                      args.minutes and args.minutes / 5)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
