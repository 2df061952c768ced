"""Loop rerolling: the recorded plan's repeated blocks written once, as a `for` loop.

An unrolled recurrent step records T near-identical bodies (forward, and backward in
reverse). This pass finds a block of statements that repeats with period P — the same
statement text once names and numbers are taken out — and writes it as one loop body run
n times. Each operand of the body is, for every iteration k, one of:
  - the same text every time (a parameter, a constant, a shape);
  - a name the same iteration defined (a local of the body);
  - a name the previous iteration defined, and before the loop a value from outside
    (the carried state);
  - the value of an earlier loop's iteration a + b·k (read from that loop's buffer);
  - an integer a + b·k (a time index, an offset);
  - anything else from outside the loop: a tuple of the n values, indexed by k.
Iterations that fit none of these end the loop there. A value a loop defines and later code
reads is kept in a per-iteration list (only the last iteration's: the local itself).

The loop makes the same NumPy calls on the same arrays in the same order as the statements
it stands for, so a replay stays bitwise eager's; only the Python around them changes
(fewer lines to compile, locals freed an iteration later instead of at the end of the plan).
"""
import re
import numpy as np

# Names the recorder gives (v12, g7, K3, ix4, ...), integer and float literals, and string
# literals (whole, so that nothing inside one is taken for a name). Written to start with a
# character set, which lets the regex engine skip the text between tokens quickly; a token
# starts a word ((?<!\w\w) after its first character) and ends one.
TOKEN = re.compile(r"([vgsruzodcaKi\d'\"](?<!\w\w)(?:(?<=i)x\d+\b|(?<=[vgsruzodcaK])\d+\b"
                   r"|(?<=\d)\d*(?:\.\d+)?(?:e[+-]?\d+)?\b|(?<=')(?:[^'\\]|\\.)*'"
                   r"|(?<=\")(?:[^\"\\]|\\.)*\"))")
MARK = "\x02"       # the recorder writes one before and after every name and number (record.M)
NAME = re.compile(r"(?:ix|[vgsruzodcaK])\d+\Z")
INT = re.compile(r"\d+\Z")

MIN_SAVED = 4          # a loop must stand for at least this many statements more than its body


class Loop:
    """A rerolled block: statements [start, start + period·n) as n iterations."""
    __slots__ = ("index", "start", "period", "n", "var_of", "varcol", "buffered", "kinds",
                 "slot_of_var")

    def __init__(self, index, start, period, n):
        self.index, self.start, self.period, self.n = index, start, period, n
        self.var_of = {}        # name defined in the loop -> (iteration, its iteration-0 name)
        self.varcol = {}        # iteration-0 name -> the names it has in every iteration
        self.buffered = set()   # iteration-0 names whose every value later code reads
        self.kinds = None       # [slot][operand] -> how the operand is written
        self.slot_of_var = None  # iteration-0 name -> its slot


def reroll(stmts, tail, ns):
    """(statements, the return expression) -> the plan's body lines, rerolled where they
    repeat. ns: the plan's globals (tuples of constants are added to it)."""
    n_stmts = len(stmts)
    if n_stmts < 2 * MIN_SAVED:
        return stmts, tail
    pieces = [s.split(MARK) if MARK in s else TOKEN.split(s) for s in stmts]
    keys = list(map("\0".join, [p[0::2] for p in pieces]))     # a statement without operands
    regions = _find(keys)
    if not regions:
        return stmts, tail
    toks = [p[1::2] for p in pieces]
    defs = {t[0]: i for i, (k, t) in enumerate(zip(keys, toks))
            if k[:4] == "\0 = " or k[:7] == "\0, \0 = "}       # name -> the statement making it
    defs.update({t[1]: i for i, (k, t) in enumerate(zip(keys, toks)) if k[:7] == "\0, \0 = "})
    loops, owner = [], {}               # owner: name -> the Loop that defines it
    for start, period, n in regions:
        loop = Loop(len(loops), start, period, n)
        if _analyse(loop, keys, toks, defs, owner):
            loops.append(loop)
            for name in loop.var_of:
                owner[name] = loop
    if not loops:
        return stmts, tail
    return _write(stmts, pieces, loops, owner, tail, ns)


# ---- finding repeated blocks ---------------------------------------------------------------

def _find(keys):
    """[(start, period, iterations)] in order of start: non-overlapping runs of a repeating
    statement pattern (statement text without its names and numbers), longest taken first."""
    ids = np.array(list(map({}.setdefault, keys, range(len(keys)))), dtype=np.int64)
    order = np.argsort(ids, kind="stable")      # each statement after the last like it:
    after = ids[order[1:]] == ids[order[:-1]]
    gaps = (order[1:] - order[:-1])[after]      # how far back that one is
    values, counts = np.unique(gaps, return_counts=True)
    best = np.argsort(-counts, kind="stable")[:8]
    found = []
    for period, count in zip(values[best].tolist(), counts[best].tolist()):
        if count < MIN_SAVED:
            break
        eq = np.concatenate(([0], (ids[:-period] == ids[period:]).view(np.int8), [0]))
        edges = np.flatnonzero(np.diff(eq))
        for a, b in zip(edges[0::2].tolist(), edges[1::2].tolist()):
            n = (b - a) // period + 1           # ids[a + k·period + j] agree for all k < n
            if (n - 1) * period >= MIN_SAVED:
                found.append((n * period, a, period))
    found.sort(key=lambda f: (-f[0], f[2], f[1]))     # longest, then the shortest body
    taken = []
    for size, lo, period in found:
        hi = lo + size
        for s, e, _ in taken:                   # clip to the larger free side
            if s < hi and lo < e:
                if s - lo >= hi - e:
                    hi = min(hi, s)
                else:
                    lo = max(lo, e)
        n = (hi - lo) // period
        hi = lo + n * period
        if n >= 2 and (n - 1) * period >= MIN_SAVED and \
                all(e <= lo or hi <= s for s, e, _ in taken):
            taken.append((lo, hi, period))
    return [(s, p, (e - s) // p) for s, e, p in sorted(taken)]


# ---- what each operand of a body is ------------------------------------------------------

def _lhs(key):
    """How many names a statement defines (`v1 = …` or `v1, s2 = …`), from its key."""
    return 1 if key[:4] == "\0 = " else 2 if key[:7] == "\0, \0 = " else 0


def _analyse(loop, keys, toks, defs, owner):
    """Classify every operand of the body from iterations 0 and 1, then check all of them
    (one column of n tokens at a time); the loop ends before the first iteration that does
    not fit. False if what is left saves too little."""
    s, P, n = loop.start, loop.period, loop.n
    end = s + P * n
    cols, varcol, slot_of_var = [], {}, {}
    for j in range(P):
        col = list(zip(*toks[s + j:end:P]))
        cols.append(col)
        names = col[:_lhs(keys[s + j])]
        for c in names:
            varcol[c[0]] = c
            slot_of_var[c[0]] = j
    var_of = {}
    for v0, c in varcol.items():
        var_of.update(zip(c, [(k, v0) for k in range(n)]))

    def inside(tok):
        d = defs.get(tok)
        return d is not None and s <= d < end

    kinds = []
    fit = n                                     # iterations 0 .. fit-1 fit every column
    for j in range(P):
        row = []
        for col in cols[j]:
            t0, t1 = col[0], col[1]
            if inside(t0):
                k0, v0 = var_of.get(t0, (None, None))
                if k0 != 0 or var_of.get(t1) != (1, v0):
                    return False
                kind, want = ("local", v0), varcol[v0]
            elif inside(t1):
                k1, v1 = var_of.get(t1, (None, None))
                if k1 != 0:
                    return False
                kind, want = ("carry", v1, t0), (t0,) + varcol[v1][:-1]
            elif t0 == t1:
                kind, want = ("same", t0), (t0,) * n
            elif INT.match(t0) and INT.match(t1):
                a, d = int(t0), int(t1) - int(t0)
                kind, want = ("int", a, d), tuple(str(a + d * k) for k in range(n))
            elif t0 in owner and t1 in owner and owner[t0] is owner[t1] and \
                    owner[t0].var_of[t0][1] == owner[t1].var_of[t1][1]:
                other = owner[t0]
                a, v = other.var_of[t0]
                d = other.var_of[t1][0] - a
                ref = other.varcol[v]
                want = tuple(ref[a + d * k] for k in range(n) if 0 <= a + d * k < other.n)
                kind = ("buf", other, v, a, d)
            else:
                kind = ("gather", col)
                want = None
                for k, tok in enumerate(col):
                    if inside(tok):
                        fit = min(fit, k)
                        break
            if want is not None and want != col:
                fit = min(fit, next(k for k, (x, y) in enumerate(zip(want, col)) if x != y)
                          if want[:len(col)] != col[:len(want)] else len(want))
            row.append(kind)
        kinds.append(row)
    n = fit
    if n < 2 or (n - 1) * P < MIN_SAVED:
        return False
    loop.n = n
    loop.var_of = {name: kv for name, kv in var_of.items() if kv[0] < n}
    loop.varcol = {v: c[:n] for v, c in varcol.items()}
    loop.kinds, loop.slot_of_var = kinds, slot_of_var
    for row in kinds:
        for q, kind in enumerate(row):
            if kind[0] == "gather":
                row[q] = ("gather", kind[1][:n])
    return True


# ---- writing -------------------------------------------------------------------------------

def _write(stmts, pieces, loops, owner, tail, ns):
    out = []                                # statements, and Loops written at the end

    def ref(tok):
        """tok as code outside its loop's body: the local of the last iteration, else the
        loop's buffer."""
        loop = owner.get(tok)
        if loop is None:
            return tok
        k, v = loop.var_of[tok]
        if k == loop.n - 1:
            return v
        loop.buffered.add(v)
        return f"_b{loop.index}_{v}[{k}]"

    def rewritten(p):
        toks = p[1::2]
        if not any(t in owner for t in toks):
            return "".join(p)
        p = list(p)
        q = 1
        while q < len(p):
            r = _run(p, q, owner)
            if r > q:                           # a loop's values in order: its buffer, starred
                loop = owner[p[q]]
                (a, v), (b, _) = loop.var_of[p[q]], loop.var_of[p[r]]
                loop.buffered.add(v)
                step = 1 if b > a else -1
                stop = b + step
                sl = (f"[{a or ''}:{'' if stop == loop.n else stop}]" if step == 1 else
                      f"[{a}:{'' if stop < 0 else stop}:-1]")
                p[q] = f"*_b{loop.index}_{v}{'' if sl == '[:]' else sl}"
                for x in range(q + 1, r + 1):
                    p[x] = ""
                q = r + 2
            else:
                p[q] = ref(p[q])
                q += 2
        return "".join(p)

    i, li = 0, 0
    while i < len(stmts):
        if li < len(loops) and loops[li].start == i:
            loop = loops[li]
            out.append(_body(loop, pieces, ref, ns))
            i += loop.period * loop.n
            li += 1
            continue
        out.append(rewritten(pieces[i]) if owner else stmts[i])
        i += 1
    tail = rewritten(tail.split(MARK) if MARK in tail else TOKEN.split(tail))
    lines = []
    for x in out:
        lines.extend(x() if callable(x) else (x,))
    return lines, tail


def _run(p, q, owner, least=4):
    """The index of the last token of a run p[q], p[q+2], … (joined by ', ') of one loop
    value's iterations in steps of +1 or -1, where a starred list may stand for it (an
    argument list, a list, or a tuple with another element); q if there is none."""
    loop = owner.get(p[q])
    if loop is None:
        return q
    k, v = loop.var_of[p[q]]
    r, step = q, 0
    while r + 2 < len(p) and p[r + 1] == ", ":
        o = owner.get(p[r + 2])
        if o is not loop:
            break
        k2, v2 = o.var_of[p[r + 2]]
        if v2 != v or abs(k2 - k) != 1 or (step and k2 - k != step):
            break
        step, k, r = k2 - k, k2, r + 2
    if (r - q) // 2 + 1 < least:
        return q
    before, after = p[q - 1], p[r + 1] if r + 1 < len(p) else ""
    if not (before.endswith(("(", "[", ", ")) and after.startswith((")", "]", ","))):
        return q
    if before.endswith("(") and after.startswith(")"):       # (x, y) alone: a call only
        head = before[:-1]
        if not (head and (head[-1].isalnum() or head[-1] in "_)]")) and not (
                head == "" and q > 1):
            return q
    return r


def _affine(a, b, k):
    if b == 0:
        return str(a)
    if a == 0 and b == 1:
        return k
    return f"({a} {'+' if b > 0 else '-'} {k if abs(b) == 1 else f'{abs(b)} * {k}'})"


def _body(loop, pieces, ref, ns):
    """The loop's code (a function: run once every buffer later code reads is known)."""
    k = f"_k{loop.index}"
    P, n = loop.period, loop.n
    before, after, body = [], [], []
    inits, started, prevs = {}, set(), {}
    gathers = 0
    for j in range(P):
        p = list(pieces[loop.start + j])
        for q, kind in zip(range(1, len(p), 2), loop.kinds[j]):
            what = kind[0]
            if what == "same":
                p[q] = ref(kind[1])
            elif what == "local":
                p[q] = kind[1]
            elif what == "carry":
                v, init = kind[1], kind[2]
                if loop.slot_of_var[v] >= j and inits.setdefault(v, init) == init:
                    if v not in started:            # the body's local still holds the
                        started.add(v)              # previous iteration's value here
                        before.append(f"{v} = {ref(init)}")
                    p[q] = v
                else:
                    prev = prevs.get((v, init))
                    if prev is None:
                        prev = prevs[(v, init)] = f"_p{loop.index}_{len(prevs)}"
                        before.append(f"{prev} = {ref(init)}")
                        after.append(f"{prev} = {v}")
                    p[q] = prev
            elif what == "int":
                p[q] = _affine(kind[1], kind[2], k)
            elif what == "buf":
                other, v = kind[1], kind[2]
                other.buffered.add(v)
                p[q] = f"_b{other.index}_{v}[{_affine(kind[3], kind[4], k)}]"
            else:
                vals = kind[1]
                name = f"_g{loop.index}_{gathers}"
                gathers += 1
                if all(NAME.match(t) and t[0] == "K" for t in vals):
                    ns[name] = [ns[t] for t in vals]        # a list: `x[k] += y` works
                else:
                    before.append(f"{name} = [{', '.join(ref(t) for t in vals)}]")
                p[q] = f"{name}[{k}]"
        body.append("".join(p))

    def write():
        stores = [f"_b{loop.index}_{v}[{k}] = {v}" for v in sorted(loop.buffered)]
        lines = [f"_b{loop.index}_{v} = [None] * {n}" for v in sorted(loop.buffered)]
        lines += before
        lines.append(f"for {k} in range({n}):")
        lines += ["    " + s.replace("\n", "\n    ") for s in body + after + stores]
        return lines
    return write
