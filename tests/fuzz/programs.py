"""The fuzzer's programs as plain data (leaves, statements, loss terms) and their printing as Python."""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Ref:
    """An argument that names an earlier value (a leaf or a statement's output)."""
    name: str


@dataclass
class Leaf:
    """A float leaf that requires grad; `value` is float64 (cast to the run's dtype)."""
    name: str
    value: np.ndarray


@dataclass
class Stmt:
    """outs = vocab.CALLS[op](*args, **attrs); args are Refs or constants (numbers, arrays).
    tag says what the generator meant (an index form, "shared weight"); nothing reads it back."""
    outs: tuple
    op: str
    args: tuple
    attrs: dict = field(default_factory=dict)
    tag: str = None


@dataclass
class Program:
    """leaves, then stmts in order; loss = Σ (value · weights).sum() over `loss`; `retain`
    names the intermediate whose gradient is retained. kinks: values may sit on kinks."""
    seed: int
    leaves: list
    stmts: list
    loss: list                 # [(value name, float64 weights of its shape)]
    retain: str = None
    kinks: bool = False

    def ops(self):
        return [s.op for s in self.stmts]


# ---- printing -------------------------------------------------------------------------------

def number(x):
    """A Python literal for a constant number; negatives in parentheses (`x ** (-1.0)`)."""
    s = repr(float(x)) if isinstance(x, float) else repr(int(x)) if not isinstance(x, bool) \
        else repr(x)
    return f"({s})" if s.startswith("-") else s


def array(a, float_dtype="DT"):
    """A NumPy literal: float arrays take the run's dtype DT, ints and bools their own."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        if a.size > 1 and np.all(a == a.flat[0]):
            return f"np.full({a.shape}, {a.flat[0].item()!r}, dtype={float_dtype})"
        return f"np.array({a.tolist()!r}, dtype={float_dtype})"
    return f"np.array({a.tolist()!r})"


def const(x):
    return array(x) if isinstance(x, np.ndarray) else number(x)


def index_part(i):
    """One component of an index as written between brackets."""
    if isinstance(i, slice):
        parts = ["" if v is None else number(v).strip("()") for v in (i.start, i.stop, i.step)]
        s = f"{parts[0]}:{parts[1]}"
        return s + (f":{parts[2]}" if i.step is not None else "")
    if i is None:
        return "None"
    if i is Ellipsis:
        return "..."
    if isinstance(i, np.ndarray):
        return array(i)
    if isinstance(i, (list, tuple)):
        return repr(i)
    return repr(i)


def index(ix):
    """x[ix] exactly as Python parses it back: x[()], x[((1, 1),)], x[(3, 0, 3), 1:]."""
    if isinstance(ix, tuple):
        if not ix:
            return "()"
        body = ", ".join(index_part(i) for i in ix)
        return body + "," if len(ix) == 1 else body
    return index_part(ix)


def to_python(program, dtype="float64", tail=None, expected=()):
    """The program as a script: `import microtensor as mt`, the leaves, one line per statement,
    the loss, then `tail` (lines that run backward and print; default: one backward)."""
    from .vocab import CALLS
    other = "float32" if dtype == "float64" else "float64"
    kind = "kink-pass " if program.kinks else ""
    lines = [f"# microtensor fuzz {kind}program, seed {program.seed}, {dtype}",
             "import numpy as np",
             "import microtensor as mt",
             "import microtensor.functional as F",
             "",
             f"DT, OTHER = mt.{dtype}, mt.{other}"]
    for leaf in program.leaves:
        v = leaf.value.tolist()
        lines.append(f"{leaf.name} = mt.tensor({v!r}, dtype=DT, requires_grad=True)")
    for s in program.stmts:
        srcs = [a.name if isinstance(a, Ref) else const(a) for a in s.args]
        lines.append(f"{', '.join(s.outs)} = {CALLS[s.op].py(srcs, **s.attrs)}")
        if program.retain in s.outs:
            lines.append(f"{program.retain}.retain_grad()")
    terms = [f"({name} * {array(w)}).sum()" for name, w in program.loss]
    lines.append("loss = " + " + ".join(terms))
    if tail is None:
        tail = default_tail(program)
    lines += tail
    for line in expected:
        lines.append(f"# expected: {line}")
    return "\n".join(lines) + "\n"


def watched(program):
    """Names whose gradients a script prints: the leaves, then the retained value."""
    names = [leaf.name for leaf in program.leaves]
    return names + ([program.retain] if program.retain else [])


def default_tail(program, backwards=1, use_grad=False):
    """Lines that run backward (`backwards` times) or mt.grad, and print what they give."""
    names = watched(program)
    out = ["print('loss =', loss.item())"]
    if use_grad:
        out.append(f"grads = mt.grad(loss, [{', '.join(names)}], retain_graph=True)")
        for i, n in enumerate(names):
            out.append(f"print('d loss/d {n} =', repr(grads[{i}]))")
        return out
    for _ in range(backwards):
        out.append("loss.backward(retain_graph=True)")
    for n in names:
        out.append(f"print('{n}.grad =', repr({n}.grad))")
    return out
