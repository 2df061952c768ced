"""The graph to draw: tensors and ops reachable from the roots, their time steps, and collapsing."""
from collections import namedtuple

from ..errors import ArgumentError, GraphError
from ..mode import Step
from ..tensor import Tensor

# kind: "op", "parameter", "input", "intermediate", "output" or "collapsed";
# step: (path, t) for a node made in time step t of the recurrence at `path`, else None
Node = namedtuple("Node", "id kind tensor step")


def as_roots(root, where):
    """root as a non-empty list of Tensors, or a clear error."""
    if isinstance(root, Tensor):
        return [root]
    if isinstance(root, (list, tuple)) and root and all(isinstance(r, Tensor) for r in root):
        return list(root)
    got = f"a {type(root).__name__}"
    if isinstance(root, (list, tuple)):
        bad = [type(r).__name__ for r in root if not isinstance(r, Tensor)]
        got = "an empty list" if not root else f"a list holding a {bad[0]}"
    raise ArgumentError(f"{where}: root must be a Tensor or a non-empty list of Tensors "
                        f"(the output or loss to draw the graph of); got {got}")


def param_names(params, where):
    """{id(tensor): name} from a Module (named_parameters()) or a dict name -> tensor."""
    if params is None:
        return None
    if hasattr(params, "named_parameters"):
        items = params.named_parameters()
    elif isinstance(params, dict):
        items = params.items()
    else:
        raise ArgumentError(f"{where}: params must be a Module (with named_parameters()) or a "
                            f"dict name -> tensor; got a {type(params).__name__}")
    names = {}
    for name, p in items:
        if not isinstance(p, Tensor):
            raise ArgumentError(f"{where}: params[{name!r}] is a {type(p).__name__}, not a "
                                f"Tensor")
        names.setdefault(id(p), str(name))
    return names


def collect(roots):
    """Every tensor reachable from roots, in creation order (an explicit stack, no recursion)."""
    seen = {}
    stack = list(roots)
    while stack:
        t = stack.pop()
        if t.seq in seen:
            continue
        seen[t.seq] = t
        if t.parents:
            stack.extend(t.parents)
    return [seen[s] for s in sorted(seen)]


def step_label(step):
    """'t = 3', or 'layer0 · reverse · t = 3' for a step of the recurrence at 'layer0/reverse'."""
    path, t = step
    return " · ".join([*path.split("/"), f"t = {t}"]) if path else f"t = {t}"


class Graph:
    """The nodes (each tensor, and each op beside the tensor it made) and edges to draw.

    An op node sits in the time step its output was made in (the mt.Step in its .scope). A
    leaf that is not a parameter (x_t, h₀, a constant) sits in a step when every op using it
    is in that step; parameters always sit outside, so a shared weight is drawn once with
    an edge per use. `counts` holds the nodes of each step, per recurrence path; label(t)
    names a step's state tensors (h[t=3]).
    """

    def __init__(self, roots, names):
        self.tensors = tensors = collect(roots)
        self.outputs = {r.seq for r in roots}
        self.names = names
        # One pass over the ops, then one over the leaves: at T = 100,000 every step counts.
        self.keys, index, sids = [], {}, {}     # step number -> (path, t); scope -> number
        self.sid_of = sid_of = {}               # seq -> number of the step it sits in
        counts = []                             # step number -> nodes drawn in it
        records, inferred, last_used = {}, set(), {}
        leaves, leaf_uses = [], {}
        for t in tensors:
            if t.op is None:
                leaves.append(t)
                continue
            scope = t.scope
            sid = sids.get(id(scope))
            if sid is None:
                sid = -1
                if type(scope) is Step:
                    key = (scope.path, scope.t)
                    sid = index.get(key)
                    if sid is None:
                        sid = index[key] = len(self.keys)
                        self.keys.append(key)
                        counts.append(0)
                    rec = scope.states
                    if rec is not None and sid not in records:
                        records[sid] = rec
                    if rec is None or rec.handed is None:
                        inferred.add(sid)       # a user's loop: what a step hands on is found
                sids[id(scope)] = sid
            if sid >= 0:
                sid_of[t.seq] = sid
                counts[sid] += 2                # the op and the tensor it made
            for p in t.parents:
                if p.op is None:
                    uses = leaf_uses.get(p.seq)
                    if uses is None:
                        leaf_uses[p.seq] = {sid}
                    else:
                        uses.add(sid)
                elif inferred:                  # a user's loop: what a step hands on
                    ps = sid_of.get(p.seq, -1)
                    if ps != sid and ps in inferred and last_used.get(ps, -1) < p.seq:
                        last_used[ps] = p.seq
        for r in roots:
            sid = sid_of.get(r.seq, -1)
            if sid in inferred and last_used.get(sid, -1) < r.seq:
                last_used[sid] = r.seq
        for t in leaves:                        # an input used by one step only sits there
            uses = leaf_uses.get(t.seq)
            if uses is not None and len(uses) == 1 and not self.is_parameter(t):
                (sid,) = uses
                if sid >= 0:
                    sid_of[t.seq] = sid
                    counts[sid] += 1
        self.records = records                  # step number -> its StateRecord
        self.handed_on = {seq: sid for sid, seq in last_used.items()}   # inferred states
        self.counts = {}                        # path -> {t: number of nodes in that step}
        for (path, t), n in zip(self.keys, counts):
            self.counts.setdefault(path, {})[t] = n
        self._ends = {}                         # path -> (sorted ts, prefix sums of counts)
        for path, by_t in self.counts.items():
            ts = sorted(by_t)
            sums = [0]
            for t in ts:
                sums.append(sums[-1] + by_t[t])
            self._ends[path] = (ts, sums)
        self.total = 2 * (len(tensors) - len(leaves)) + len(leaves)

    def is_parameter(self, t):
        """A leaf named by params (or, without params, any leaf that requires grad)."""
        return id(t) in self.names if self.names is not None else t.requires_grad

    def size(self, k=None):
        """The number of nodes drawn when only the first and last k steps are kept (O(paths))."""
        total = self.total
        if k is None:
            return total
        for ts, sums in self._ends.values():
            n = len(ts)
            if n > 2 * k:
                total += 1 - (sums[n - k] - sums[k])
        return total

    def drawn_steps(self, k=None):
        """The number of time steps drawn when only the first and last k are kept."""
        return sum(len(ts) if k is None else min(len(ts), 2 * k) for ts, _ in self._ends.values())

    def fit(self, collapse, max_nodes, max_steps=None):
        """k, the steps kept at each end (None: keep all), so at most max_nodes nodes and
        (without collapse) max_steps steps are drawn: `collapse` if that fits, else the
        largest k that does, found by a binary search (fewer kept steps never draw more).
        max_steps alone never collapses below k = 1; max_nodes raises GraphError instead."""
        def fits(k):
            return (max_nodes is None or self.size(k) <= max_nodes) and (
                max_steps is None or self.drawn_steps(k) <= max_steps)

        if fits(collapse):
            return collapse
        longest = max((len(ts) for ts, _ in self._ends.values()), default=0)
        hi = collapse if collapse is not None else (longest - 1) // 2
        if hi >= 1 and (max_nodes is None or self.size(1) <= max_nodes):
            lo = 1                       # fits(lo), or only max_steps is broken at k = 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid - 1
            return lo
        if max_nodes is None or self.size() <= max_nodes:
            return collapse              # nothing to collapse: max_steps alone is no error
        if longest:
            why = (f"even with only the first and last time step kept it has "
                   f"{self.size(1)}; pass a larger max_nodes (or max_nodes=None)")
        else:
            why = ("it has no time steps to collapse (mark each step of a loop of your own "
                   "with `with mt.time_step(t):` so draw_graph can collapse the middle ones); "
                   "pass a larger max_nodes (or max_nodes=None)")
        raise GraphError(f"draw_graph: the graph has {self.size()} nodes, more than max_nodes="
                         f"{max_nodes}, and {why}, or draw a smaller part of it by passing "
                         f"an intermediate tensor as root")

    def view(self, k):
        """What to draw with the middle steps of each recurrence collapsed (k None: all).

        Returns (nodes, edges, hidden, order): edges are (src, dst, count), those into or out
        of a collapsed range merged into one per pair of endpoints, count saying how many
        they stand for; hidden maps each collapsed node's id to (path, [t…], [tensors]);
        order maps each path to its kept steps in time order, the collapsed node's id in
        their middle.
        """
        hidden, order = {}, {}
        cid_of = [None] * len(self.keys)              # step number -> its collapsed node
        index = {key: sid for sid, key in enumerate(self.keys)}
        for i, (path, (ts, _)) in enumerate(self._ends.items()):
            if k is not None and len(ts) > 2 * k:
                cid = f"c{i}"
                hidden[cid] = (path, ts[k:len(ts) - k], [])
                for t in ts[k:len(ts) - k]:
                    cid_of[index[path, t]] = cid
                order[path] = [(path, t) for t in ts[:k]] + [cid] + \
                    [(path, t) for t in ts[len(ts) - k:]]
            else:
                order[path] = [(path, t) for t in ts]
        nodes, edges, merged = [], [], {}
        rep = {}                                       # seq of a hidden tensor -> its cid
        keys, sid_of, outputs = self.keys, self.sid_of, self.outputs
        for t in self.tensors:
            seq = t.seq
            sid = sid_of.get(seq, -1)
            cid = cid_of[sid] if sid >= 0 else None
            if cid is not None:
                rep[seq] = cid
                members = hidden[cid][2]
                if not members:
                    nodes.append(Node(cid, "collapsed", None, None))
                members.append(t)
                if t.op is not None:
                    for p in t.parents:
                        src = rep.get(p.seq)
                        if src != cid:
                            src = src or f"t{p.seq}"
                            merged[src, cid] = merged.get((src, cid), 0) + 1
                continue
            step = keys[sid] if sid >= 0 else None
            tid = f"t{seq}"
            if t.op is not None:
                kind = "output" if seq in outputs else "intermediate"
                oid = f"o{seq}"
                nodes.append(Node(oid, "op", t, step))
                for p in t.parents:
                    src = rep.get(p.seq)
                    if src is None:
                        edges.append((f"t{p.seq}", oid, 1))
                    else:
                        merged[src, oid] = merged.get((src, oid), 0) + 1
                edges.append((oid, tid, 1))
            else:
                kind = "output" if seq in outputs else \
                    "parameter" if self.is_parameter(t) else "input"
            nodes.append(Node(tid, kind, t, step))
        edges.extend((a, b, c) for (a, b), c in merged.items())
        return nodes, edges, hidden, order

    def state_part(self, t):
        """(name, path, step t, is the output part) if t is part of a step's state, else None:
        as the unroller recorded it, or for a loop of the user's own, the last tensor a step
        makes that is used after it (named when the loop gave one state name, else None)."""
        seq = t.seq
        sid = self.handed_on.get(seq)
        if sid is not None:                     # a user's loop: named if it has one name
            rec = self.records.get(sid)
            path, step = self.keys[sid]
            name = rec.names[0] if rec is not None and len(rec.names) == 1 else None
            return name, path, step, True
        scope = t.scope
        if type(scope) is not Step or scope.states is None or scope.states.handed is None:
            return None
        rec, step = scope.states, scope.t
        n = len(rec.names)
        parts = rec.handed[step * n:(step + 1) * n]
        if seq not in parts:
            return None
        i = parts.index(seq)
        return rec.names[i], scope.path, step, i == rec.output_index

    def label(self, t):
        """'h[t=3]' for a state tensor, else None."""
        part = self.state_part(t)
        return None if part is None or part[0] is None else f"{part[0]}[t={part[2]}]"

    def states(self):
        """{path: {t: tensor}}: the output part of the state each step hands on."""
        out = {}
        for t in self.tensors:
            if t.op is not None and self.sid_of.get(t.seq, -1) >= 0:
                part = self.state_part(t)
                if part is not None and part[3]:
                    out.setdefault(part[1], {})[part[2]] = t
        return out
