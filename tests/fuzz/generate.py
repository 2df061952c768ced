"""Seeded random programs: float leaves, then statements drawing every registered op, then a loss.

Values stay away from kinks and poles by construction: each statement is evaluated as it is
drawn, and one whose inputs come within its call's gap of a kink is shifted by a constant
first (`x + c`) or drawn again. The kink pass (kinks=True) does the opposite: leaves on a
grid of halves, so zeros and ties are everywhere, and only ops whose float64 results are
exact, so microtensor and torch see the same ties.
"""
import numpy as np

import microtensor as mt

from . import forms
from .forms import MAX_SIZE
from .makers import big_linear, draw_statement, force_op
from .programs import Leaf, Program, Ref, Stmt
from .run import BACKENDS
from .vocab import CALLS, torch

MAX_ABS = 20.0           # |value| bound, so central differences stay accurate
REUSE_WEIGHT = {0: 1.0, 1: 3.0, 2: 5.0, 3: 2.0}     # uses so far → weight: 3+ uses common
GRID = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)


class Builder:
    """A program being drawn: its values so far (evaluated by microtensor) and their uses."""

    def __init__(self, seed, kinks=False):
        self.rng = np.random.default_rng(seed)
        self.seed, self.kinks = seed, kinks
        self.leaves, self.stmts = [], []
        self.vals, self.uses, self.is_float = {}, {}, {}
        self.weights = []        # 2-D leaves made as linear weights, to share

    # ---- values ---------------------------------------------------------------------
    def leaf(self, shape, weight=False):
        name = f"x{len(self.leaves)}"
        if self.kinks:
            v = self.rng.integers(-3, 4, shape) * 0.5
        else:
            v = np.round(self.rng.uniform(-2, 2, shape), 2)
        v = np.asarray(v, dtype=np.float64)
        self.leaves.append(Leaf(name, v))
        self.vals[name], self.uses[name], self.is_float[name] = v, 0, True
        if weight:
            self.weights.append(name)
        return name

    def shape(self, name):
        return self.vals[name].shape

    def emit(self, op, args, attrs=None, n_out=1, big=False, tag=None):
        """Append `outs = op(args)` if it evaluates, stays small and finite, and keeps off
        kinks; the output name(s), or None (nothing appended)."""
        attrs = attrs or {}
        c = CALLS[op]
        raw = [self.vals[a.name] if isinstance(a, Ref) else a for a in args]
        arrays = self._evaluate(c, args, raw, attrs)
        if arrays is None:
            return None
        for a in arrays:
            if a.dtype.kind == "f" and (not np.all(np.isfinite(a)) or
                                        (a.size and np.abs(a).max() > MAX_ABS)):
                return None
            if a.size > MAX_SIZE and not big or a.size == 0:
                return None
        if c.margin is not None and not self.kinks and c.margin(*raw, **attrs) < c.gap:
            return None
        if c.defined is not None and self.kinks and not c.defined(*raw, **attrs):
            return None
        start = sum(len(s.outs) for s in self.stmts)
        names = tuple(f"v{start + i}" for i in range(len(arrays)))
        self.stmts.append(Stmt(names, op, tuple(args), attrs, tag))
        for a in args:
            if isinstance(a, Ref):
                self.uses[a.name] += 1
        for n, a in zip(names, arrays):
            self.vals[n], self.uses[n], self.is_float[n] = a, 0, a.dtype.kind == "f"
        return names if n_out != 1 else names[0]

    def _evaluate(self, c, args, raw, attrs):
        """The call's output arrays, by microtensor; where microtensor raises but torch
        computes it (and microtensor may not refuse it), by torch, so that the program keeps
        the statement and shows the crash. None if neither computes it."""
        try:
            with mt.no_grad():
                out = c.mt(*[mt.tensor(r) if isinstance(a, Ref) else r
                             for a, r in zip(args, raw)], **attrs)
            return [np.array(o.data) for o in (out if isinstance(out, list) else [out])]
        except Exception:
            if torch is None or (c.may_reject and c.may_reject(*raw)):
                return None
        be = BACKENDS["torch"]
        try:
            out = c.torch(*[be.leaf(r, "float64", False) if isinstance(a, Ref) and
                            r.dtype.kind == "f" else torch.from_numpy(r) if isinstance(a, Ref)
                            else be.const(r, "float64") for a, r in zip(args, raw)], **attrs)
        except Exception:
            return None
        return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]

    def pick(self, pred=None, exclude=()):
        """A float value, weighted toward 0-d values and toward values used 1–2 times so far
        (so 3+ uses are common); None if none fits."""
        names = [n for n, f in self.is_float.items()
                 if f and n not in exclude and self.vals[n].size <= MAX_SIZE
                 and (pred is None or pred(self.vals[n].shape))]
        if not names:
            return None
        recent = set(list(self.vals)[-3:])
        w = np.array([REUSE_WEIGHT.get(self.uses[n], 0.3) * (2.5 if self.vals[n].ndim == 0
                      else 1.0) * (1.5 if n in recent else 1.0) for n in names])
        return names[int(self.rng.choice(len(names), p=w / w.sum()))]

    def number(self, lo=-2.0, hi=2.0, nonzero=True):
        if self.kinks:
            return float(self.rng.choice([g for g in GRID if g or not nonzero]))
        while True:
            c = round(float(self.rng.uniform(lo, hi)), 2)
            if not nonzero or abs(c) >= 0.2:
                return c

    def offset(self, points, gap, lo=None, hi=None):
        """A number at least `gap` from every point (a clip bound, a threshold, a shift),
        drawn within [lo, hi] (the points' range by default); None if there is none."""
        p = np.asarray(points, dtype=float).ravel()
        if self.kinks:
            return float(self.rng.choice(GRID))
        lo = float(p.min()) if lo is None else lo
        hi = float(p.max()) if hi is None else hi
        cands = np.round(self.rng.uniform(lo - 0.1, hi + 0.1, 64), 2)
        ok = [c for c in cands if np.min(np.abs(p - c)) >= gap]
        return float(ok[0]) if ok else None

    def away_from_zero(self, name, gap):
        """name, or `name + c` with every element at least gap from 0."""
        x = self.vals[name]
        if self.kinks or np.min(np.abs(x)) >= gap:
            return name
        c = self.offset(-x, gap, -1.0, 1.0)
        return None if c is None else self.emit("add", (Ref(name), c), tag="shift off a kink")

    def positive(self, name, lo=0.3):
        """name, or `name + c` with every element ≥ lo."""
        x = self.vals[name]
        if np.min(x) >= lo:
            return name
        c = round(lo + 0.2 - float(np.min(x)), 1)
        return self.emit("add", (Ref(name), c), tag="shift off a pole")

    def broadcasts_with(self, shape, max_size=MAX_SIZE):
        def pred(s):
            try:
                return np.prod(np.broadcast_shapes(s, shape)) <= max_size
            except ValueError:
                return False
        return pred

    def coin(self, p):
        return self.rng.random() < p

    def choose(self, options, p=None):
        p = None if p is None else np.asarray(p, dtype=float) / np.sum(p)
        return options[int(self.rng.choice(len(options), p=p))]

    # ---- the end of a program -------------------------------------------------------
    def finish(self):
        """The loss: Σ (v · w).sum() over every unused value (and maybe one more), with fixed
        random weights; and an intermediate to retain."""
        outs = [n for s in self.stmts for n in s.outs if self.is_float[n]]
        sinks = [n for n in outs if self.uses[n] == 0] or outs[-1:]
        terms = list(sinks)
        others = [n for n in self.vals if self.is_float[n] and n not in terms]
        if others and self.coin(0.5):
            terms.append(self.choose(others))
        loss = []
        for n in terms:
            shape = self.vals[n].shape
            if self.kinks:
                w = self.rng.choice([-1.5, -1.0, -0.5, 0.5, 1.0, 1.5], shape)
            else:
                w = np.round(self.rng.choice([-1, 1], shape) * self.rng.uniform(0.5, 1.5, shape), 1)
            loss.append((n, np.asarray(w, dtype=np.float64)))
        used = [n for n in outs if self.uses[n] > 0] or outs
        retain = self.choose(used) if used and self.coin(0.9) else None
        return Program(self.seed, self.leaves, self.stmts, loss, retain, self.kinks)


def generate(seed, kinks=False, force=None, length=None):
    """The program of this seed. force: a registered op the program must record; length:
    roughly how many statements (drawn from 4–15 by default)."""
    b = Builder(seed, kinks)
    for shape in forms.leaf_shapes(b.rng, int(b.rng.integers(2, 5))):
        b.leaf(shape)
    target = length if length is not None else int(b.rng.integers(4, 16))
    if force is not None:
        force_op(b, force)
    big = not kinks and b.coin(0.08)
    tries = 0
    while len(b.stmts) < target and tries < 300:
        tries += 1
        if big and len(b.stmts) >= target // 2:
            big = not big_linear(b)
        draw_statement(b)
    if not b.stmts:
        raise RuntimeError(f"seed {seed}: the generator drew no statement")
    return b.finish()
