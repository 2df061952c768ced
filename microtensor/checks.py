"""The checks a backward walk runs besides the gradients, in one place for every engine to call.

A node is *checked* when it was made before the latest in-place write microtensor saw (what
it reads may have changed since), and every node is in anomaly mode; any other node costs
the walk one comparison, `node.seq < careful_below()`. Checking a node is:
  before(node)          -> versions.check: VersionError if an array it reads changed;
                           node.parents rebased since resolved to the tensors it took;
  node.op.backward(...)
  after(node, g, out)   -> anomaly mode: NaN or Inf in a gradient it returned.
`backward(node, g)` does the three; `needs_checks` tells an engine without them to hand the
graph to run_backward. After a walk, `walk_ended` releases the memory locks of the nodes it
released, and (run_backward's) `after_walk` does that and warns of a graph that keeps
growing across backward(retain_graph=True) calls (pytorch/pytorch#2198).
"""
import math
import warnings

from . import anomaly, versions
from .autograd import STATE, _backward_error
from .errors import GraphGrowthWarning, MicrotensorError

GROWTH_WARN = 100_000    # tensors a re-walked, still-growing graph may span before a warning


def careful_below():
    """Nodes made before this seq take the checked path."""
    return math.inf if STATE.anomaly else STATE.last_write


def before(node):
    return versions.check(node)


def after(node, g, out):
    if STATE.anomaly:
        anomaly.check_backward(node, g, out)


def backward(node, g):
    """node's gradients, checked before and after its backward (node.parents resolved)."""
    versions.check(node)
    try:
        out = node.op.backward(node, g)
    except (ValueError, TypeError, IndexError, ArithmeticError) as e:
        if isinstance(e, MicrotensorError):
            raise
        raise _backward_error(node, e) from e
    if STATE.anomaly:
        anomaly.check_backward(node, g, out)
    return out


def walk_ended(retain_graph):
    """After a walk: the memory locks of the nodes it released (retain_graph=False) go too."""
    if not retain_graph:
        versions.sweep()


def needs_checks(node):
    """Whether node must take the checked path: for an engine without one (compile's
    recording walk) to hand the graph to run_backward instead."""
    return node.seq < careful_below()


class _Growth:
    """The last walk that kept its graph (lo, hi: the oldest node walked, the newest root),
    and how many walks in a row re-walked a graph that had grown since."""
    last = None
    streak = 0
    warned = False


def after_walk(roots, lo, retain_graph):
    """Warn once per streak when a walk goes back into the graph the previous walk kept and
    walked (retain_graph=True), the graph has grown since, and it now spans GROWTH_WARN
    tensors: a state carried across steps and never detached keeps the whole history, and
    each step's backward walks all of it again. lo: the seq of the oldest node walked."""
    if not retain_graph:
        versions.sweep()
    hi = roots[0].seq if len(roots) == 1 else max(r.seq for r in roots)
    last = _Growth.last
    if last is not None and lo <= last[1] < hi:
        _Growth.streak += 1
        if hi - lo > GROWTH_WARN and not _Growth.warned:
            _Growth.warned = True
            warnings.warn(GraphGrowthWarning(
                f"backward walked a graph spanning {hi - lo:,} tensors, back into parts that "
                f"{_Growth.streak} earlier backward(retain_graph=True) calls already walked, "
                f"and it has grown at each: its memory is never freed and every backward is "
                f"slower than the last (pytorch/pytorch#2198). A state carried from step to "
                f"step (an RNN's hidden state) holds the whole history: detach it between "
                f"steps (h = h.detach(), or nn.detach_state) and drop retain_graph=True."),
                stacklevel=5)
    else:
        _Growth.streak, _Growth.warned = 0, False
    _Growth.last = (lo, hi) if retain_graph else None
