"""Shrinking a failing program: drop loss terms, statements and leaves, bypass statements, round numbers."""
import time
from dataclasses import replace

import numpy as np

import microtensor as mt

from .check import check
from .programs import Leaf, Ref, Stmt
from .run import StmtError, execute


def phases_for(kind):
    """The checks a failure of this kind needs (fewer checks, faster shrinking)."""
    if "torch" in kind:
        return ("mt", "torch")
    if "float32" in kind:
        return ("mt", "float32")
    if kind == "finite differences":
        return ("mt", "fd")
    return ("mt",)


def still_fails(program, kind):
    try:
        r = check(program, phases_for(kind))
    except Exception:          # a candidate the interpreter cannot even run
        return False
    return not r.rejected and kind in r.kinds


def minimize(program, kind, seconds=20.0, max_checks=600, fails=None):
    """A smaller program that still fails with `kind` (greedy: the first smaller candidate
    that fails is kept, until none does or the time is up), renumbered. fails(candidate):
    whether it still fails, for checks other than check() (the compiled replay's)."""
    fails = fails or (lambda p: still_fails(p, kind))
    best, deadline, checks = program, time.monotonic() + seconds, 0
    progress = True
    while progress and time.monotonic() < deadline and checks < max_checks:
        progress = False
        for cand in candidates(best, shapes_of(best)):
            checks += 1
            if fails(cand):
                best, progress = cand, True
                break
            if time.monotonic() > deadline or checks >= max_checks:
                break
    return renumber(best)


def shapes_of(program):
    """name → shape of every value microtensor (or, past a crash, nothing) computes."""
    shapes = {leaf.name: leaf.value.shape for leaf in program.leaves}

    def watch(s, args, out):
        outs = out if isinstance(out, (list, tuple)) else [out]
        for n, o in zip(s.outs, outs):
            shapes[n] = o.shape if o.dtype.kind == "f" else None

    try:
        with mt.no_grad(), np.errstate(all="ignore"):
            execute(program, requires_grad=False, on_stmt=watch)
    except StmtError:
        pass
    return shapes


def candidates(p, shapes):
    """Smaller or simpler versions of p, the boldest first."""
    for i in range(len(p.loss)):
        if len(p.loss) > 1:
            yield replace(p, loss=p.loss[:i] + p.loss[i + 1:])
    for i in reversed(range(len(p.stmts))):
        c = _delete(p, i, shapes)
        if c is not None:
            yield c
    for i, s in enumerate(p.stmts):
        for a in s.args:
            if len(s.outs) == 1 and isinstance(a, Ref) and shapes.get(a.name) is not None \
                    and shapes.get(a.name) == shapes.get(s.outs[0]):
                yield _bypass(p, i, a.name)
    if p.retain:
        yield replace(p, retain=None)
    used = {a.name for s in p.stmts for a in s.args if isinstance(a, Ref)}
    used |= {n for n, _ in p.loss}
    if any(leaf.name not in used for leaf in p.leaves):
        yield replace(p, leaves=[leaf for leaf in p.leaves if leaf.name in used])
    for digits in (1, 0):
        rounded = [Leaf(leaf.name, np.round(leaf.value, digits) + 0.0) for leaf in p.leaves]
        if any(not np.array_equal(a.value, b.value) for a, b in zip(rounded, p.leaves)):
            yield replace(p, leaves=rounded)
    if any(np.any(w != 1) for _, w in p.loss):
        yield replace(p, loss=[(n, np.ones_like(w)) for n, w in p.loss])
    for i, s in enumerate(p.stmts):
        args = tuple(round(a, 1) if type(a) is float else a for a in s.args)
        if args != s.args:
            yield replace(p, stmts=p.stmts[:i] + [replace(s, args=args)] + p.stmts[i + 1:])


def _delete(p, i, shapes):
    """p without statement i and whatever depends on it; the loss takes the deleted
    statement's float inputs instead, if nothing else is left of it."""
    gone = set(p.stmts[i].outs)
    stmts = []
    for j, s in enumerate(p.stmts):
        if j == i or any(isinstance(a, Ref) and a.name in gone for a in s.args):
            gone |= set(s.outs)
        else:
            stmts.append(s)
    loss = [(n, w) for n, w in p.loss if n not in gone]
    if not loss:
        ins = [a.name for a in p.stmts[i].args if isinstance(a, Ref)
               and shapes.get(a.name) is not None]
        loss = [(n, np.ones(shapes[n])) for n in dict.fromkeys(ins)]
        if not loss:
            return None
    return replace(p, stmts=stmts, loss=loss, retain=None if p.retain in gone else p.retain)


def _bypass(p, i, name):
    """p with statement i's output replaced by its argument `name` (of the same shape)."""
    out = p.stmts[i].outs[0]

    def swap(a):
        return Ref(name) if isinstance(a, Ref) and a.name == out else a

    stmts = [replace(s, args=tuple(swap(a) for a in s.args))
             for j, s in enumerate(p.stmts) if j != i]
    loss = [(name if n == out else n, w) for n, w in p.loss]
    return replace(p, stmts=stmts, loss=loss, retain=None if p.retain == out else p.retain)


def renumber(p):
    """Names x0, x1, … and v0, v1, … in order of appearance."""
    names = {leaf.name: f"x{i}" for i, leaf in enumerate(p.leaves)}
    k = 0
    for s in p.stmts:
        for o in s.outs:
            names[o], k = f"v{k}", k + 1

    def ren(a):
        return Ref(names[a.name]) if isinstance(a, Ref) else a

    return replace(p, leaves=[Leaf(names[leaf.name], leaf.value) for leaf in p.leaves],
                   stmts=[Stmt(tuple(names[o] for o in s.outs), s.op,
                               tuple(ren(a) for a in s.args), s.attrs, s.tag) for s in p.stmts],
                   loss=[(names[n], w) for n, w in p.loss],
                   retain=names.get(p.retain) if p.retain else None)
