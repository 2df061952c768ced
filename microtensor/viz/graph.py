"""The graph to draw: tensors and ops reachable from the roots, their time steps, and collapsing."""
import re
from collections import namedtuple

from ..errors import ArgumentError, GraphError
from ..tensor import Tensor

_STEP = re.compile(r"t=(-?\d+)")

# kind: "op", "parameter", "input", "intermediate", "output" or "collapsed";
# step: (prefix, t) for a node made in time step t of the recurrence `prefix`, else None
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


def step_of(scope):
    """(prefix, t) of a scope with a 't=k' part: 'layer0/t=3/gate' -> ('layer0', 3); else None."""
    if scope is None:
        return None
    parts = scope.split("/")
    for i, part in enumerate(parts):
        m = _STEP.fullmatch(part)
        if m:
            return "/".join(parts[:i]), int(m.group(1))
    return None


def step_label(step):
    """'t = 3', or 'layer0 · reverse · t = 3' for a prefixed step."""
    prefix, t = step
    return " · ".join([*prefix.split("/"), f"t = {t}"]) if prefix else f"t = {t}"


class Graph:
    """The nodes (each tensor, and each op beside the tensor it made) and edges to draw.

    An op node sits in the time step its output was made in. A leaf that is not a
    parameter (x_t, h₀, a constant) sits in a step when every op using it is in that step;
    parameters always sit outside, so a shared weight is drawn once with an edge per use.
    """

    def __init__(self, roots, names):
        self.tensors = collect(roots)
        outputs = {r.seq for r in roots}
        steps, leaf_uses, memo = {}, {}, {}
        for t in self.tensors:
            if t.op is None:
                continue
            if t.scope not in memo:
                memo[t.scope] = step_of(t.scope)
            s = steps[t.seq] = memo[t.scope]
            for p in t.parents:
                if p.op is None:
                    leaf_uses.setdefault(p.seq, set()).add(s)
        self.nodes, self.edges = [], []
        for t in self.tensors:
            if t.op is not None:
                kind = "intermediate"
                s = steps[t.seq]
                oid = f"o{t.seq}"
                self.nodes.append(Node(oid, "op", t, s))
                self.edges.extend((f"t{p.seq}", oid) for p in t.parents)
                self.edges.append((oid, f"t{t.seq}"))
            else:
                param = id(t) in names if names is not None else t.requires_grad
                kind = "parameter" if param else "input"
                uses = leaf_uses.get(t.seq, ())
                s = next(iter(uses)) if kind == "input" and len(uses) == 1 else None
            if t.seq in outputs:
                kind = "output"
            self.nodes.append(Node(f"t{t.seq}", kind, t, s))
        self.steps = {}             # prefix -> {t: number of nodes in that step}
        for n in self.nodes:
            if n.step is not None:
                counts = self.steps.setdefault(n.step[0], {})
                counts[n.step[1]] = counts.get(n.step[1], 0) + 1

    def size(self, k=None):
        """The number of nodes drawn when only the first and last k steps are kept."""
        total = len(self.nodes)
        if k is None:
            return total
        for counts in self.steps.values():
            ts = sorted(counts)
            if len(ts) > 2 * k:
                total += 1 - sum(counts[t] for t in ts[k:len(ts) - k])
        return total

    def fit(self, collapse, max_nodes):
        """k, the steps kept at each end (None: keep all), so at most max_nodes are drawn."""
        if max_nodes is None or self.size(collapse) <= max_nodes:
            return collapse
        longest = max((len(c) for c in self.steps.values()), default=0)
        start = collapse if collapse is not None else (longest - 1) // 2
        for k in range(start, 0, -1):
            if self.size(k) <= max_nodes:
                return k
        n = self.size()
        if longest:
            why = (f"even with only the first and last time step kept it has "
                   f"{self.size(1)}; pass a larger max_nodes (or max_nodes=None)")
        else:
            why = ("it has no time steps to collapse (mark each step's ops with "
                   "mt.name_scope(f't={t}') so draw_graph can collapse the middle ones); pass "
                   "a larger max_nodes (or max_nodes=None)")
        raise GraphError(f"draw_graph: the graph has {n} nodes, more than max_nodes="
                         f"{max_nodes}, and {why}, or draw a smaller part of it by passing "
                         f"an intermediate tensor as root")

    def view(self, k):
        """(nodes, edges, hidden) to draw with the middle steps of each recurrence collapsed.

        edges are (src, dst, count): edges into or out of a collapsed range are merged into
        one per pair of endpoints, count saying how many they stand for. hidden maps each
        collapsed node's id to (prefix, [t…], [tensors]) for its label.
        """
        if k is None:
            return self.nodes, [(a, b, 1) for a, b in self.edges], {}
        where, hidden = {}, {}
        for i, (prefix, counts) in enumerate(self.steps.items()):
            ts = sorted(counts)
            if len(ts) > 2 * k:
                cid = f"c{i}"
                hidden[cid] = (prefix, ts[k:len(ts) - k], [])
                for t in ts[k:len(ts) - k]:
                    where[prefix, t] = cid
        nodes, rep = [], {}
        for n in self.nodes:
            cid = where.get(n.step)
            if cid is None:
                nodes.append(n)
                continue
            rep[n.id] = cid
            members = hidden[cid][2]
            if not members:
                nodes.append(Node(cid, "collapsed", None, None))
            if n.kind != "op":
                members.append(n.tensor)
        edges, merged = [], {}
        for a, b in self.edges:
            ra, rb = rep.get(a, a), rep.get(b, b)
            if ra == a and rb == b:
                edges.append((a, b, 1))
            elif ra != rb:
                merged[ra, rb] = merged.get((ra, rb), 0) + 1
        edges.extend((a, b, c) for (a, b), c in merged.items())
        return nodes, edges, hidden
