"""Version counters and memory guards: backward never reads an array that changed after its forward.

Every write microtensor makes or sees — an in-place Tensor op, `x.data = …`, an optimizer
step, nn.init, load_state_dict, clip_grad_* — is *stamped*: it takes a fresh creation-order
number (autograd.next_seq) and records it on the memory it wrote, and STATE.last_write
remembers the latest. Counters are per storage, the ndarray that owns the memory, so views
of one buffer share one counter (as torch's views share theirs): writing x[0:2] in place is a
write of x. A node made after the latest write cannot have seen one, so backward checks only
nodes older than it (one comparison per node, nothing per op: `check`).

Writes microtensor cannot see — NumPy writing into `.data`, `.numpy()`, `.detach().data` or a
view of them — are refused instead: an array a live graph will read is made read-only
("memory guarding", as MyGrad), so the write raises at the line that makes it. While it is
locked, `.data` and `.numpy()` hand out a `GuardedArray` view, whose writes raise GuardError
naming the op that will read the memory and what to do; an array the caller already held
(or got from np.asarray) is a plain read-only ndarray, and NumPy's own "assignment
destination is read-only" is what its writes get. Guarding every array at every op would
cost several hundred ns per op, so it is lazy:
  - a leaf's memory (a parameter, an input, the caller's array behind mt.as_tensor) is locked
    by the first recorded op that reads it, which holds the lock (`lease_leaf`);
  - an op's output is locked when its array is first handed out (`.data`, `.numpy()`,
    `.detach()`, `np.asarray`) while its node is live (`expose`): before that, nobody but
    microtensor holds it.
A lock lasts until backward releases the node that holds it (or the node is collected).
Microtensor's own writers lift the lock for their write and stamp it (`writing`). Not
covered: a raw view taken before the graph locked its base, and a second graph reading
an array whose lock the first graph's backward released; counters still cover both.
"""
import collections
import contextlib
import functools
import weakref

import numpy as np

from .autograd import RELEASED, STATE, next_seq
from .errors import ArgumentError, GuardError, VersionError

ndarray = np.ndarray
HISTORY = 64          # write seqs kept per storage, to say which version a node saw
PRIVATE = object()    # a leaf's `saved` when nobody else can hold its array (a constant
                      # made from a Python number): it is never locked


# ---- stamps ------------------------------------------------------------------------------

_storages: dict = {}    # id(base array) -> _Storage


class _Storage:
    """The writes microtensor saw into one ndarray's memory."""
    __slots__ = ("ref", "key", "version", "seqs")

    def __init__(self, base, key):
        self.ref = weakref.ref(base, self._forget)
        self.key = key
        self.version = 0
        self.seqs = collections.deque(maxlen=HISTORY)

    def saw(self, seq):
        """The version a node made at seq saw, and whether that number is exact."""
        later = sum(1 for s in self.seqs if s > seq)
        exact = later < len(self.seqs) or len(self.seqs) < HISTORY
        return self.version - later, exact

    def _forget(self, _, table=_storages):     # bound early: it may run at shutdown
        if table.get(self.key) is self:
            del table[self.key]


def base_of(arr):
    """The ndarray that owns arr's memory (arr itself when it owns it)."""
    b = arr.base
    while isinstance(b, ndarray):
        arr, b = b, b.base
    return arr


def _record(arr):
    base = base_of(arr)
    key = id(base)
    rec = _storages.get(key)
    if rec is None or rec.ref() is not base:
        rec = _storages[key] = _Storage(base, key)
    return rec


def note_write(t):
    """Stamp a write microtensor made into t's memory, once the write is done."""
    note_array_write(t._data)


def note_array_write(arr):
    s = next_seq()
    rec = _record(arr)
    rec.version += 1
    rec.seqs.append(s)
    STATE.last_write = s


def note_replace(t):
    """Stamp `t.data = new`: what t's consumers will read is no longer what they saw."""
    s = next_seq()
    t._get_meta().replaced = s
    if t.op is None and type(t.saved) is list:
        t.saved = None                          # the new array is not locked yet
    STATE.last_write = s


def note_rebase():
    """A tensor took a new node (an in-place op, detach_): its older consumers are checked."""
    STATE.last_write = next_seq()


def version(t):
    """How many in-place writes microtensor saw into t's memory (as torch's x._version)."""
    base = base_of(t._data)
    rec = _storages.get(id(base))
    return rec.version if rec is not None and rec.ref() is base else 0


# ---- the check ---------------------------------------------------------------------------

def check(node):
    """node's parents as its backward must see them, after checking that nothing it reads
    changed since it was made (VersionError otherwise). A parent rebased by an in-place op
    since then is replaced, in node.parents, by the tensor it was when node took it
    (meta.before): its old node, its old requires_grad."""
    s = node.seq
    parents = node.parents
    if s >= STATE.last_write:
        return parents
    op = node.op
    if op.reads_output:
        _check_one(node, node, None)
    reads = op.reads_inputs
    for i, p in enumerate(parents):
        if reads is None or i in reads:
            _check_one(node, p, i)
    if any(p.seq > s for p in parents):     # for good: the op's backward reads them too
        parents = node.parents = tuple(_as_seen(p, s) for p in parents)
    return parents


def _as_seen(p, s):
    while p.seq > s:
        p = p._meta.before
    return p


def _check_one(node, r, index):
    s = node.seq
    m = r._meta
    if m is not None and m.replaced > s:
        raise VersionError(_message(node, r, index, None))
    base = base_of(r._data)
    rec = _storages.get(id(base))
    if rec is not None and rec.seqs and rec.seqs[-1] > s and rec.ref() is base:
        raise VersionError(_message(node, r, index, rec))


def _message(node, r, index, rec):
    what = "its output" if index is None else f"its input {index}"
    label = f"'{r.name}', " if r.name else ""
    where = f"op '{node.op.name}'" + (f" (made in {node.scope})" if node.scope else "")
    if rec is None:
        change = "had its .data replaced (x.data = …) after the op saved it"
    else:
        saw, exact = rec.saw(node.seq)
        change = (f"is at version {rec.version}, but it was at version "
                  f"{'' if exact else '≤ '}{saw} when the op saved it")
    return (f"backward of {where}: one of the arrays needed for gradient computation has "
            f"been modified by an in-place operation: {what} ({label}shape "
            f"{r._data.shape}) {change}. {_hint(r)}")


def _hint(r):
    if r.op is None and r.requires_grad:
        return ("It is a leaf that requires grad (a parameter?): an optimizer step or another "
                "update of it ran between this forward and this backward. Call opt.step() "
                "after backward(); if this part of the graph was built in an earlier step "
                "(an RNN state carried across steps), detach() that state between steps "
                "(nn.detach_state) so that backward stops there.")
    return ("Clone it before editing it in place (y = x.clone()), write the update out of "
            "place (x = x + 1 instead of x += 1), or detach() a state carried across steps.")


# ---- memory guards -----------------------------------------------------------------------

_locked: dict = {}      # id(array) -> [array, count]: arrays this module made read-only
_waiting: dict = {}     # id(view) -> view: released, but its base is still locked


def _lock_memory(arr, into):
    """Lock arr and the array owning its memory (counted); append to `into` what this
    locked. An array read-only for another reason is left alone."""
    base = arr.base
    for a in ((arr,) if base is None else (arr, base_of(arr))):
        key = id(a)
        e = _locked.get(key)
        if e is not None:
            e[1] += 1
        elif a.flags.writeable or _waiting.pop(key, None) is not None:
            a.setflags(write=False)
            _locked[key] = [a, 1]
            ref = _views.get(key)           # the view .data handed out of it earlier: its
            v = ref() if ref is not None else None      # write flag is its own, not a's
            if v is not None:
                v.setflags(write=False)
                _waiting.pop(id(v), None)
        else:
            continue
        into.append(a)


def _unlock_all(arrays):
    freed = False
    for a in reversed(arrays):              # a base before its views
        key = id(a)
        e = _locked[key]
        e[1] -= 1
        if e[1]:
            continue
        del _locked[key]
        try:
            a.setflags(write=True)
            freed = True
        except ValueError:                  # a view whose base is still locked: later
            _waiting[key] = a
            continue
        _reopen_view(key)
    if freed and _waiting:
        for k, v in list(_waiting.items()):
            try:
                v.setflags(write=True)
            except ValueError:
                continue
            del _waiting[k]
            _reopen_view(k)


# The locks a node holds: id(node) -> [weak reference to it, locked arrays, leaves whose
# `saved` names this entry (they need no new lock while it holds), exposed]. Released all at
# once after a walk that released the node (`sweep`), or when the node is collected.
_held: dict = {}


def _entry(node):
    key = id(node)
    e = _held.get(key)
    if e is None or e[0]() is not node:
        e = _held[key] = [weakref.ref(node, functools.partial(_collected, key)), [], [], False]
    return e


def _release(e):
    for leaf in e[2]:
        if leaf.saved is e:
            leaf.saved = None
    arrays = e[1]
    e[1], e[2] = [], []
    if arrays:
        _unlock_all(arrays)


def _collected(key, ref):
    try:
        e = _held.get(key)
        if e is not None and e[0] is ref:
            del _held[key]
            _release(e)
    except TypeError:                   # at interpreter shutdown, with module globals gone
        pass


def sweep():
    """After a walk that released nodes (retain_graph=False): every released node's locks."""
    for key, e in list(_held.items()):
        node = e[0]()
        if node is None or node.saved is RELEASED:
            del _held[key]
            _release(e)


def move_locks(src, dst):
    """dst holds the locks src took (an in-place op's node becomes the rebased tensor's)."""
    e = _held.pop(id(src), None)
    if e is not None and e[0]() is src:
        d = _entry(dst)
        d[1] += e[1]
        d[2] += e[2]
        for leaf in e[2]:
            if leaf.saved is e:
                leaf.saved = d


def lease_leaf(leaf, node):
    """node, just recorded, reads leaf's memory: lock it until node is released."""
    e = _entry(node)
    leaf.saved = e
    e[2].append(leaf)
    _lock_memory(leaf._data, e[1])


def lease_arrays(node, arrays):
    """node, just recorded, keeps arrays of the caller's (getitem's index, cross_entropy's
    targets): locked until node is released, so a reused batch buffer raises at the write
    instead of sending the gradient to other rows."""
    e = _entry(node)
    for a in arrays:
        if isinstance(a, ndarray):
            _lock_memory(a, e[1])


def expose(t):
    """t's array, handed out to the caller: locked while t's node is live."""
    if t.saved is not RELEASED and not STATE.walking:
        e = _entry(t)
        if not e[3]:
            e[3] = True
            _lock_memory(t._data, e[1])
    return t._data


def _lift(arr):
    """Make arr writable for a write of microtensor's own; the arrays to lock again after.
    Only locks of ours are lifted: an array read-only for another reason (a broadcast
    view, one the caller locked) raises ArgumentError."""
    if arr.flags.writeable:
        return ()
    base = base_of(arr)
    ours = id(base) in _locked or id(base) in _waiting
    if not (ours or id(arr) in _locked or id(arr) in _waiting):
        raise ArgumentError("cannot write in place into a read-only array (a broadcast "
                            "view, or an array made read-only outside microtensor); write "
                            "out of place instead")
    flipped = []
    for a in ((base, arr) if base is not arr else (arr,)):
        if not a.flags.writeable:
            try:
                a.setflags(write=True)
            except ValueError:
                _relock(flipped)
                raise ArgumentError("cannot write in place into a read-only view (a "
                                    "broadcast one?); write out of place instead") from None
            flipped.append(a)
    return flipped


def _relock(flipped):
    for a in reversed(flipped):
        a.setflags(write=False)


@contextlib.contextmanager
def unlocked(arr):
    """Write into arr although a live graph has locked it, without stamping a version:
    only for a write undone before the graph is used again (gradcheck's perturbations)."""
    flipped = _lift(arr)
    try:
        yield arr
    finally:
        _relock(flipped)


@contextlib.contextmanager
def writing(t):
    """t's array, writable for an in-place update of microtensor's own (an optimizer step,
    nn.init, load_state_dict), stamped as a new version afterwards."""
    arr = t._data
    flipped = _lift(arr)
    try:
        yield arr
    finally:
        _relock(flipped)
        note_write(t)


@contextlib.contextmanager
def writing_array(arr):
    """The same for a bare array that a tensor may share (a .grad clip_grad_* scales)."""
    flipped = _lift(arr)
    try:
        yield arr
    finally:
        _relock(flipped)
        note_array_write(arr)


# ---- what the caller is handed ----------------------------------------------------------

def hand_out(t):
    """t's array as the caller gets it (.data, .numpy(), .detach()): t's own array, locked
    first while t's node is live (`expose`); a GuardedArray view of it while it is locked."""
    if t.op is not None:
        d = expose(t)
    else:
        d = t._data
    if d.flags.writeable or STATE.walking:
        return d
    if not _is_locked(d):
        return d                            # read-only for another reason: as it was
    ref = _views.get(id(d))
    v = ref() if ref is not None else None
    if v is None or v.base is not d:        # one view per array, so x.data is x.data
        v = d.view(GuardedArray)
        v._mt_name, v._mt_source = t.name, d
        _views[id(d)] = weakref.ref(v, functools.partial(_view_gone, id(d)))
    return v


def _view_gone(key, ref):
    if _views.get(key) is ref:
        del _views[key]


def unwrap(v: ndarray) -> ndarray:
    """The plain array for GuardedArray v, wherever it becomes a tensor's (x.data = y.data,
    mt.as_tensor(y.data)): the array it was handed out of, when v is all of it, so the tensor
    shares it as it would have unlocked; else a plain view, registered to be made writable
    again with its memory (a plain view of read-only memory would stay read-only for good)."""
    d = getattr(v, "_mt_source", None)
    if d is not None and v.shape == d.shape and v.strides == d.strides and \
            v.__array_interface__["data"] == d.__array_interface__["data"]:
        return d
    p = v.view(ndarray)
    if not p.flags.writeable and _is_locked(p):
        _waiting[id(p)] = p                 # reopened by _unlock_all, as a released view
    return p


# id(array) -> a weak reference to the GuardedArray view handed out of it while it was
# locked: made writable again when the array is unlocked (_reopen_view), read-only again
# whenever it is locked again (_lock_memory), for as long as the view lives.
_views: dict = {}


def _reopen_view(key):
    """The array with this id was just unlocked: so is the view handed out of it, or, while
    the memory it views is still locked, it waits with the views that are (_waiting)."""
    ref = _views.get(key)
    v = ref() if ref is not None else None
    if v is not None and not v.flags.writeable:
        try:
            v.setflags(write=True)
        except ValueError:
            _waiting[id(v)] = v


def _readers(arr):
    """"op 'tanh' (made in t=3)", … : the live nodes whose locks cover arr's memory."""
    mine = {id(arr), id(arr.base), id(base_of(arr))}
    found = []
    for e in list(_held.values()):
        node = e[0]()
        if node is not None and node.op is not None and any(id(a) in mine for a in e[1]):
            found.append(f"op '{node.op.name}'" + (f" (made in {node.scope})" if node.scope
                                                    else ""))
    return found


def _is_locked(a):
    """Whether this module locked a or the array that owns its memory."""
    return id(a) in _locked or id(base_of(a)) in _locked


def _refuse(v, what):
    """The GuardError for a write into GuardedArray v, whose memory is locked."""
    name = getattr(v, "_mt_name", None)
    readers = _readers(v)
    by = f", saved for backward by {', '.join(readers[:3])}" if readers else ""
    label = f"'{name}', " if name else ""
    return GuardError(
        f"{what}: this array ({label}shape {v.shape}) is read-only while a live graph will "
        f"read it in backward{by}, so writing it would make the gradients wrong. Call "
        f"backward() first (it releases the memory), edit a copy (np.array(x.data), "
        f"x.clone()), or update it with microtensor's in-place ops (with mt.no_grad(): "
        f"w -= lr * w.grad; x.zero_()), which count versions.")


def _translate(e, arrays, what):
    """A NumPy read-only ValueError as GuardError, when one of arrays is a locked view
    (any other ValueError, a shape mismatch say, stays NumPy's own)."""
    if "read-only" not in str(e):
        return e
    for a in arrays:
        if isinstance(a, GuardedArray) and not a.flags.writeable and _is_locked(a.base):
            return _refuse(a, what)
    return e


def _plain(x):
    return x.view(ndarray) if isinstance(x, GuardedArray) else x


class GuardedArray(ndarray):
    """The ndarray view `.data` and `.numpy()` hand out while a live graph reads its memory.

    It is read-only until backward releases the memory; a write into it (item assignment,
    an in-place operator, a ufunc's out=, fill, copyto, …) raises GuardError, which says
    what to do instead of NumPy's bare "assignment destination is read-only". Arithmetic on
    it returns plain ndarrays.
    """

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        args = tuple(_plain(x) for x in inputs)
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        try:
            result = getattr(ufunc, method)(*args, **kwargs)
        except ValueError as e:
            raise _translate(e, out or (), f"np.{ufunc.__name__}(…, out=…)") from None
        if out is None:
            return result
        return out[0] if len(out) == 1 else out     # the views themselves, for `v += 1`

    def __array_function__(self, func, types, args, kwargs):
        try:
            return ndarray.__array_function__(self, func, types, args, kwargs)
        except ValueError as e:
            raise _translate(e, args[:1], f"np.{func.__name__}") from None

    def __reduce__(self):                   # pickles and copies as the plain array it is
        return _plain(self).copy().__reduce__()

    def copy(self, order="C"):
        """A plain writable copy (as ndarray.copy)."""
        return ndarray.copy(_plain(self), order)


def _refusing(name, what):
    """ndarray's method `name`, its read-only error translated (the writes that are methods)."""
    method = getattr(ndarray, name)

    def refusing(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ValueError as e:
            raise _translate(e, (self,), what) from None

    refusing.__name__, refusing.__doc__ = name, method.__doc__
    return refusing


GuardedArray.__setitem__ = _refusing("__setitem__", "x.data[...] = …")   # type: ignore[method-assign]
for _name in ("fill", "sort", "put", "partition", "byteswap", "setfield", "resize"):
    setattr(GuardedArray, _name, _refusing(_name, f"x.data.{_name}(…)"))
