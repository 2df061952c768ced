"""What a failure prints: the seed, what disagreed, and the minimised program as a runnable script."""
from collections import Counter

from .check import check
from .minimize import minimize, phases_for, shapes_of
from .programs import Ref, default_tail, to_python


def signature(program):
    """What a program is made of: its calls, the generator's tags (index forms, "big
    linear", …), "0-d value reused" and "retained". A failure whose minimised program's
    signature is within another program's is likely that program's cause too."""
    sig = set(program.ops()) | {s.tag for s in program.stmts
                                if s.tag and not s.tag.startswith("shift")}
    shapes = shapes_of(program)
    uses = Counter(a.name for s in program.stmts for a in s.args if isinstance(a, Ref))
    uses.update(n for n, _ in program.loss)
    if any(shapes.get(n) == () and k >= 2 for n, k in uses.items()):
        sig.add("0-d value reused")
    if program.retain:
        sig.add("retained")
    return frozenset(sig)


def tail_for(program, kind):
    """Script lines that show a failure of this kind."""
    if kind.startswith("accumulation"):
        return default_tail(program, backwards=2)
    if "mt.grad" in kind:
        return default_tail(program, use_grad=True)
    return default_tail(program)


def explain(report, seconds=20.0, how_to_rerun=None, small=None):
    """The text for a failing report: every kind of disagreement, then a minimised script
    (shrunk for the first kind, unless `small` is that already) with what torch or the
    reference gives, as comments."""
    p, kind = report.program, report.kinds[0]
    lines = [f"FAIL seed {p.seed}{' (kink pass)' if p.kinks else ''}: {', '.join(report.kinds)}"]
    lines += [f"  {f.kind}: {f.detail}" for f in report.failures[:8]]
    if len(report.failures) > 8:
        lines.append(f"  … and {len(report.failures) - 8} more")
    small = small or minimize(p, kind, seconds=seconds)
    again = check(small, phases_for(kind))
    dtype = "float32" if "float32" in kind else "float64"
    lines.append(f"minimised for '{kind}' to {len(small.stmts)} statement(s) "
                 f"[{', '.join(sorted(signature(small)))}]"
                 + (f"; {how_to_rerun}" if how_to_rerun else "") + ":")
    lines.append(to_python(small, dtype, tail_for(small, kind),
                           [f"{f.kind}: {f.detail}" for f in again.failures
                            if f.kind == kind][:4] + again.expected))
    return "\n".join(lines)
