"""python -m tests.fuzz: run random programs from a seed for a count or minutes, and explain failures."""
import argparse
import sys
import time
from collections import defaultdict

from .check import check
from .generate import generate
from .minimize import minimize
from .programs import to_python
from .report import explain
from .vocab import torch


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    ap.add_argument("--count", type=int, help="programs to run (default 1000 unless --minutes)")
    ap.add_argument("--minutes", type=float, help="stop after this long")
    ap.add_argument("--seed", type=int, default=0, help="the first seed (then seed+1, …)")
    ap.add_argument("--kinks", action="store_true",
                    help="the kink pass: values exactly at kinks and ties, against torch only")
    ap.add_argument("--force", metavar="OP", help="every program records this registered op")
    ap.add_argument("--length", type=int, help="statements per program (default 4-15)")
    ap.add_argument("--examples", type=int, default=3,
                    help="failures of each kind to minimise, to tell causes apart (default 2)")
    ap.add_argument("--print", action="store_true", help="print every program as Python")
    args = ap.parse_args(argv)
    if args.count is None and args.minutes is None:
        args.count = 1000
    return args


def _first(report, kind):
    """The report with failures of `kind` first, so the explanation leads with them."""
    fs = sorted(report.failures, key=lambda f: f.kind != kind)
    return type(report)(report.program, fs, report.rejected, report.expected)


def main(argv=None):
    args = parse(argv)
    start = time.monotonic()
    deadline = start + 60 * args.minutes if args.minutes else float("inf")
    by_kind, rejected, failed, n, seed = defaultdict(list), 0, 0, 0, args.seed
    last_note = start
    while (args.count is None or n < args.count) and time.monotonic() < deadline:
        p = generate(seed, kinks=args.kinks, force=args.force, length=args.length)
        if args.print:
            print(to_python(p))
        r = check(p)
        n, seed = n + 1, seed + 1
        if r.rejected:
            rejected += 1
        else:
            for kind in r.kinds:              # a program can show several causes at once
                by_kind[kind].append(r)
        failed += not r.ok and not r.rejected
        if time.monotonic() - last_note > 30:
            last_note = time.monotonic()
            print(f"… {n} programs, {failed} failing, {last_note - start:.0f} s", file=sys.stderr)
    which = "kink-pass programs" if args.kinks else "programs"
    ref = f"torch {torch.__version__} and " if torch is not None and not args.kinks else \
        f"torch {torch.__version__}" if torch is not None else ""
    print(f"{n} {which} (seeds {args.seed}–{seed - 1}) in {time.monotonic() - start:.0f} s "
          f"against {ref}{'' if args.kinks else 'central differences'}: "
          f"{n - failed - rejected} passed, {failed} failed, {rejected} not checked")
    for kind, reports in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        seeds = ", ".join(str(r.program.seed) for r in reports[:8])
        print(f"  {len(reports):6d}  {kind}  (seeds {seeds}{', …' if len(reports) > 8 else ''})")
    shown = set()
    for kind, reports in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        for r in reports[:args.examples]:
            small = minimize(r.program, kind, seconds=10)
            r = _first(r, kind)
            key = (kind, tuple(sorted(set(small.ops()))))
            if key in shown:
                continue
            shown.add(key)
            flags = " --kinks" if args.kinks else ""
            flags += f" --force {args.force}" if args.force else ""
            flags += f" --length {args.length}" if args.length else ""
            print()
            print(explain(r, small=small, how_to_rerun=f"python -m tests.fuzz --seed "
                                                        f"{r.program.seed} --count 1{flags}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
