"""The Recorder: what one traced call of fn did, as the source of a flat NumPy plan.

Every array the plan computes gets a local name (v12 for an op's output, g7 for a gradient,
…); every object it reads from outside (a constant, a parameter, an optimizer) gets a global
name (K3). `bind(array)` says how an array met during the trace is found again at replay:
  - a name the plan computes (an op's output, a gradient, a random draw, a copy), or a view
    of one (rebuilt from its offset and strides);
  - fn's argument i, or a view of it (the argument is then "received": bound, not guarded);
  - the .data of a tensor that existed before the call (a parameter: read again every call);
  - otherwise an object held by the plan (a constant fn made, or an array fn reached through
    its closure): the same object, read again at replay.
Anything the plan cannot reproduce "poisons" the trace: fn finishes eagerly (its results are
eager's, recording never changes them), and compile falls back to eager for that signature.
"""
import numpy as np

from ..autograd import next_seq
from ..nn.module import Module
from .reroll import reroll as rerolled

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:                     # NumPy < 2
    from numpy import byte_bounds  # type: ignore[attr-defined,no-redef]

ndarray = np.ndarray
M = "\x02"          # around every name and number in a statement: the rerolling pass splits there


class Poison(Exception):
    """Raised inside the recorder when the trace cannot be replayed (caught by the patches)."""


def _plain(v):
    """v is an int, None, ..., or a slice of ints and None, or a tuple of those."""
    if isinstance(v, tuple):
        return all(_plain(x) for x in v)
    if isinstance(v, slice):
        return all(x is None or type(x) is int for x in (v.start, v.stop, v.step))
    return v is None or v is Ellipsis or type(v) is int


class NodeInfo:
    """A recorded op output: the names of its data and saved values, its inputs' names."""
    __slots__ = ("name", "saved", "ins", "attrs", "tensor")

    def __init__(self, name, saved, ins, attrs, tensor):
        self.name, self.saved, self.ins, self.attrs, self.tensor = name, saved, ins, attrs, tensor


class Recorder:
    def __init__(self, flat_args):
        self.seq0 = next_seq()              # tensors made before the call have smaller seqs
        self.lines = []
        self.ns = {"np": np, "ndarray": ndarray, "asarray": np.asarray}
        self.const_names = {}               # id(object) -> global name
        self.plain_consts = {}              # repr of an index of slices -> global name
        self.names = {}                     # id(array) -> local name, for arrays the plan has
        self.owners = {}                    # id(memory owner) -> [(name, contiguous array)]
        self.named = []                     # (name, array) for every array named, in order:
        self.indexed = 0                    # those before this index are in owners
        self.keep = []                      # what else has its id as a key above (ids stay unique)
        self.node = {}                      # id(tensor) -> NodeInfo
        self.arg_tensor = {}                # id(tensor) -> argument index
        self.arg_of_name = {}               # local name -> argument index
        self.received = set()               # argument indices the plan reads
        self.captured = {}                  # id(tensor) -> (name, tensor): pre-existing tensors read
        self.preamble = []
        self.preamble_names = {}            # a name the preamble defines -> its .T's, once made
        self.draws = {}                     # local name of a random draw -> still unbound?
        self.counter = 0
        self.poisoned = None
        self.depth = 0                      # > 0 inside a call recorded as a whole (opt.step, ...)
        self.flat_args = flat_args
        self.seen = {}                      # id(tensor) -> tensor, for every input an op read
        self.snapshots = {}                 # id(tensor) -> (its data, a copy) when first read
        self.mutable = set()                # ids of tensors a recorded optimizer step updates
        self.rows = {}                      # id(array) -> (it, name of a stack of it, row, stack)
        self.derived = {}                   # (stack name, expr) -> name of expr of the stack
        self.row_lists = {}                 # buffer name -> name of the list of its rows
        self.guarded = set()                # ids of the modules the plan's guards check
        self.ce_rows = {}                   # saved name of a written cross_entropy -> its rows
        self.over = []                      # (line, its inputs' names, arrays, result): may_write_over
        for i, a in enumerate(flat_args):
            from ..tensor import Tensor
            if isinstance(a, Tensor):
                self.seen[id(a)] = a
                name = f"{M}a{i}{M}"
                self.preamble.append(f"{name} = ARGS[{i}]._data")
                self.preamble_names[name] = None
                self.arg_tensor[id(a)] = i
                self._name_array(a._data, name)
                self.arg_of_name[name] = i
            elif isinstance(a, ndarray):
                name = f"{M}a{i}{M}"
                self.preamble.append(f"{name} = ARGS[{i}]")
                self.preamble_names[name] = None
                self._name_array(a, name)
                self.arg_of_name[name] = i

    # ---- names ----------------------------------------------------------------------------
    def new(self, prefix):
        self.counter += 1
        return f"{M}{prefix}{self.counter}{M}"

    def emit(self, line):
        self.lines.append(line)

    def _name_array(self, a, name):
        self.names[id(a)] = name
        self.named.append((name, a))        # indexed by memory owner when a view needs it

    def _index_owners(self):
        named, owners = self.named, self.owners
        for i in range(self.indexed, len(named)):
            name, a = named[i]
            if isinstance(a, ndarray) and a.flags.c_contiguous and a.size:
                owner = a if a.base is None else a.base
                owners.setdefault(id(owner), []).append((name, a))
        self.indexed = len(named)

    def transposed(self, name):
        """Source for name.T; a parameter's or an argument's transpose is taken once, in the
        preamble (the same view every time: NumPy sees the same operand)."""
        if name not in self.preamble_names:
            return f"{name}.T"
        t = self.preamble_names[name]
        if t is None:
            t = self.preamble_names[name] = f"{M}{name.strip(M)}_T{M}"     # one token
            self.preamble.append(f"{t} = {name}.T")
        return t

    def rowwise(self, a, name, expr, whole):
        """Source for the elementwise expr (of "{x}") of array a, named name. Where a is row k
        of an array S the plan stacked (Stack's copy: the same bits), `D[k]` of D computed
        once for every row by the statements whole (of "{x}" and "{d}": the same ufuncs in the
        same order as expr, into D in place): an elementwise op gives each element the bits
        it gives that element alone. A backward that reads T rows of one stack (tanh's 1 − y²
        in an unrolled RNN) then makes one call instead of T."""
        row = self._row(a)
        if row is None:                             # (or written since: not a row any more)
            return expr.format(x=name)
        whole_name, k, _ = row
        key = (whole_name, expr)
        d = self.derived.get(key)
        if d is None:
            d = self.derived[key] = self.new("d")
            self.emit(whole.format(x=whole_name, d=d))
        return f"{d}[{M}{k}{M}]"

    def _row(self, a):
        """(stack name, row k, stack) if array a is still row k of an array the plan
        stacked (Stack's copy: the same bits), else None."""
        row = self.rows.get(id(a))
        if row is None or a.ndim == 0 or row[3][row[2]].tobytes() != a.tobytes():
            return None
        return row[1:]

    def concatenated(self, vals):
        """Source for np.concatenate of vals (Vals of 2-D arrays along axis 0). A run of
        four or more that are consecutive rows of one stack S, in either direction, is read
        as a slice of S reshaped: the same elements in the same order, one copy (or none)
        instead of an array per row (an RNN's Whh gradient pairs every step's ∂h with the
        previous state)."""
        rows = [self._row(v.real) for v in vals]
        parts, i = [], 0
        while i < len(vals):
            first, j, step = rows[i], i + 1, 0
            if first is not None and j < len(vals) and rows[j] is not None and \
                    rows[j][0] == first[0]:
                step = rows[j][1] - first[1]
            if step in (1, -1):                     # extend the run while rows follow on
                while j < len(vals) and rows[j] is not None and rows[j][0] == first[0] and \
                        rows[j][1] == first[1] + step * (j - i):
                    j += 1
            if j - i >= 4:
                a, b = first[1], first[1] + step * (j - i)
                stop = "" if b < 0 else b
                sl = f"{a}:{stop}" if step == 1 else f"{a}:{stop}:-1"
                parts.append(f"{first[0]}[{sl}].reshape(-1, {vals[i].real.shape[-1]})")
            else:
                parts.extend(v.name for v in vals[i:j])
            i = j
        if len(parts) == 1 and len(vals) > 1:
            return parts[0]
        return f"np.concatenate([{', '.join(parts)}])"

    def may_write_over(self, name, ins, parents):
        """The last line, `name = ufunc(*ins)`, may write its result over one of its inputs
        (finish_source decides: see _write_over). Not for a result under OVER_BYTES: NumPy
        hands out so small a block from its own cache, and checking costs more than that."""
        result = self.named[-1][1]
        if isinstance(result, ndarray) and result.nbytes >= OVER_BYTES:
            self.over.append((len(self.lines) - 1, ins, [p._data for p in parents], result))

    def _write_over(self, tail):
        """FAST PATH: `x = ufunc(y)` written as `x = ufunc(y, out=y)`, saving an allocation
        and a pass over cold memory (an RNN step's pre-activation, at H=256 a 64 KB array a
        step). Invariant, checked here on the whole plan: y is a local the plan computed that
        owns its memory (no base), C-contiguous, of the result's shape and dtype, no named
        array is a view of it, and no statement but its own, in-place updates of it before
        (`y += b`) and this one mentions it, nor does the tail: nothing reads y after, so
        an elementwise ufunc writing over it gives every other statement the same arrays."""
        in_tail = set(tail.split(M)[1::2])
        found = []                                  # (line, [(y, plain name, array)]) to check
        for c, ins, arrays, result in self.over:
            ys = [(y, y.strip(M), a) for y, a in zip(ins, arrays)
                  if y[1:2] in ("v", "g") and isinstance(a, ndarray) and a.base is None and
                  a is not result and a.shape == result.shape and a.dtype == result.dtype and
                  a.flags.c_contiguous and self.names.get(id(a)) == y]
            ys = [(y, p, a) for y, p, a in ys if p[1:].isdigit() and p not in in_tail]
            if ys:
                found.append((c, ys))
        if not found:
            return
        wanted = {plain for _, ys in found for _, plain, _ in ys}
        uses = {}                                   # name -> the lines mentioning it
        for i, line in enumerate(self.lines):
            for tok in wanted.intersection(line.split(M)[1::2]):
                uses.setdefault(tok, set()).add(i)
        viewed = {id(a.base) for _, a in self.named if isinstance(a, ndarray) and
                  a.base is not None}
        for c, ys in found:
            for y, plain, a in ys:
                if id(a) in viewed:
                    continue
                lines = sorted(uses.get(plain, ()))
                if len(lines) < 2 or lines[-1] != c or not self.lines[c].endswith(")"):
                    continue
                d, *between = lines[:-1]
                if not self.lines[d].startswith(f"{y} = ") or any(
                        not self.lines[i].startswith((f"{y} += ", f"{y} -= ", f"{y} *= "))
                        for i in between):
                    continue
                self.lines[c] = f"{self.lines[c][:-1]}, out={y})"
                break

    def plain_const(self, v):
        """A global name for an index of ints, slices, None and ... (one per value: no slice
        objects built at every replay)."""
        key = repr(v)
        name = self.plain_consts.get(key)
        if name is None:
            name = self.plain_consts[key] = self.const(v)
        return name

    def const(self, obj):
        """A global name for obj (held by the plan, read again at every replay)."""
        name = self.const_names.get(id(obj))
        if name is None:
            plain = f"K{len(self.const_names)}"
            name = self.const_names[id(obj)] = f"{M}{plain}{M}"
            self.ns[plain] = obj
            self.keep.append(obj)
        return name

    def computed(self, a, prefix="v"):
        """A new local name for an array the plan computes (the caller emits its line)."""
        name = self.new(prefix)
        self._name_array(a, name)
        return name

    def lookup(self, a):
        """The plan's expression for array a if a is (a view into) one it has, else None."""
        name = self.names.get(id(a))
        if name is None and isinstance(a, ndarray) and a.base is not None and a.size:
            name = self._view(a)
        if name is not None:
            i = self.arg_of_name.get(name)
            if i is not None:
                self.received.add(i)
            if name in self.draws:
                self.draws[name] = False
        return name

    def _view(self, a):
        """a shares memory with a contiguous array r the plan has (an argument's, a slice
        of an op's output, ...): a rebuilt at replay from r's buffer, offset and strides."""
        lo, hi = byte_bounds(a)
        if self.indexed < len(self.named):
            self._index_owners()
        for owner_name, r in self.owners.get(id(a.base), ()):
            start = r.__array_interface__["data"][0]
            if start <= lo and hi <= start + r.nbytes and a.dtype.itemsize:
                name = self.computed(a)
                self.emit(f"{name} = ndarray({a.shape!r}, {self.const(a.dtype)}, "
                          f"buffer={owner_name}, offset={M}{a.__array_interface__['data'][0] - start}{M}"
                          f", strides={a.strides!r})")
                i = self.arg_of_name.get(owner_name)
                if i is not None:
                    self.received.add(i)
                return name
        return None

    def bind(self, a):
        """The plan's expression for array a: one it has, or a held object."""
        if not isinstance(a, ndarray):
            return self.value(a)
        name = self.lookup(a)
        return name if name is not None else self.const(a)

    def tensor_data(self, t):
        """The plan's expression for tensor t's data where an op reads it."""
        self.seen[id(t)] = t
        info = self.node.get(id(t))
        if info is not None:
            return info.name
        i = self.arg_tensor.get(id(t))
        if i is not None:
            self.received.add(i)
            return f"{M}a{i}{M}"
        if t.seq < self.seq0:                       # a parameter, a buffer, a closure's tensor
            got = self.captured.get(id(t))
            if got is None:
                name = f"{M}c{len(self.captured)}{M}"
                self.captured[id(t)] = (name, t)
                self.snapshots[id(t)] = (t._data, t._data.copy())
                self.preamble.append(f"{name} = {self.const(t)}._data")
                self.preamble_names[name] = None
                self._name_array(t._data, name)
                return name
            return got[0]
        if t.op is not None:
            raise Poison(f"a tensor made by an op compile did not record ({t.op.name})")
        return self.bind(t._data)                   # a leaf made inside fn

    def value(self, v):
        """Source text for an attribute or argument value (arrays bound, the rest literal)."""
        if isinstance(v, ndarray):
            return self.bind(v)
        if type(v) is int or isinstance(v, float) and np.isfinite(v):
            return f"{M}{v!r}{M}"
        if isinstance(v, str) and M in v:
            return self.const(v)                    # the marker itself: held, not written
        if v is None or v is Ellipsis or isinstance(v, (bool, int, str)):
            return "..." if v is Ellipsis else repr(v)
        if (isinstance(v, slice) or isinstance(v, tuple) and any(
                isinstance(x, slice) for x in v)) and _plain(v):
            return self.plain_const(v)
        if isinstance(v, tuple):
            return "(" + "".join(self.value(x) + ", " for x in v) + ")"
        if isinstance(v, list):
            return "[" + ", ".join(self.value(x) for x in v) + "]"
        if isinstance(v, slice):
            return f"slice({self.value(v.start)}, {self.value(v.stop)}, {self.value(v.step)})"
        from ..tensor import Tensor
        if isinstance(v, Tensor):
            return self.tensor_data(v)
        return self.const(v)

    def poison(self, reason):
        if self.poisoned is None:
            self.poisoned = reason.replace(M, "")

    # ---- recording ------------------------------------------------------------------------
    def record_op(self, op, parents, attrs, t):
        """t = op(*parents, **attrs) was just computed eagerly; emit its forward."""
        ins = [self.tensor_data(p) for p in parents]
        attr_src = {k: self.value(v) for k, v in attrs.items()}
        name = self.computed(t._data)
        saved = emit.forward(self, op, parents, ins, attrs, attr_src, name)
        if t._data.ndim == 0:                    # one statement with the op's last line
            self.lines[-1] += f"\nif type({name}) is not ndarray: {name} = asarray({name})"
        self.node[id(t)] = NodeInfo(name, saved, ins, attr_src, t)
        self.keep.append(t)

    def record_array(self, a, expr):
        """a (a new array, no Tensor) is `expr` of names the plan has: emit it, name a."""
        name = self.computed(a)
        self.emit(f"{name} = {expr}")
        return name

    def call_value(self, v):
        """Source for an argument of a call recorded as a whole: objects by identity."""
        for i, a in enumerate(self.flat_args):
            if a is v:
                return f"ARGS[{i}]"
        if v is None or isinstance(v, (bool, int, str)) or \
                (isinstance(v, float) and np.isfinite(v)):
            return repr(v)
        if isinstance(v, (list, tuple)) and any(x is a for x in v for a in self.flat_args):
            inner = ", ".join(self.call_value(x) for x in v)
            return f"[{inner}]" if isinstance(v, list) else f"({inner},)"
        return self.const(v)

    def record_call(self, fn, args, kwargs, result):
        """A call the plan makes as a whole (optimizer step, zero_grad, clipping)."""
        if fn is _ZERO_GRAD and len(args) == 1 and not kwargs and \
                id(args[0]) in self.guarded:      # its parameters are guarded: a fixed list
            self.emit(f"{self.const(_none_grads)}({self.const(list(args[0].parameters()))})")
            return
        src = ", ".join([self.call_value(a) for a in args] +
                        [f"{k}={self.call_value(v)}" for k, v in kwargs.items()])
        if isinstance(result, (ndarray, float, int)) and not isinstance(result, bool):
            name = self.new("r")
            self.names[id(result)] = name
            self.keep.append(result)
            self.emit(f"{name} = {self.const(fn)}({src})")
        else:
            self.emit(f"{self.const(fn)}({src})")

    def record_draw(self, method, args, kwargs, result):
        """A draw from mt's generator: the replay draws again, in the same order."""
        if not isinstance(result, ndarray):
            raise Poison(f"fn draws a number with generator().{method} (not an array an "
                         f"op can read)")
        from ..creation import generator
        src = ", ".join([self.value(a) for a in args] +
                        [f"{k}={self.value(v)}" for k, v in kwargs.items()])
        name = self.computed(result, "d")
        self.emit(f"{name} = {self.const(generator)}().{method}({src})")
        self.draws[name] = True

    def finish_source(self, out_src, reroll=True):
        """The plan's source; its repeated blocks written as loops unless reroll is False."""
        self._write_over(out_src)
        lines = self.lines
        if reroll:
            lines, out_src = rerolled(lines, out_src, self.ns)
        body = self.preamble + lines + [f"return {out_src}"]
        return "def plan(ARGS):\n" + "".join(
            "    " + line.replace("\n", "\n    ") + "\n" for line in body).replace(M, "")


_ZERO_GRAD = Module.zero_grad          # before a trace patches it
OVER_BYTES = 256                       # results smaller than this are not written over an input


def _none_grads(params):
    """Module.zero_grad on a module whose parameters the plan guards (not its generator)."""
    for p in params:
        p.grad = None


from . import emit  # noqa: E402  (emit imports Poison from here)
