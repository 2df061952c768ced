"""draw_graph: a tensor graph as a graphviz.Digraph — records for tensors, ellipses for ops."""
from __future__ import annotations

import html
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import GraphError
from .graph import Graph, as_roots, param_names, step_label

if TYPE_CHECKING:
    import graphviz

    from ..nn.module import Module
    from ..tensor import Tensor

RANKDIRS = ("TB", "LR", "BT", "RL")

# kind -> (fill, border, border width, style); the fill gives way to the gradient colour
STYLES = {
    "parameter": ("#cfe2ff", "#1f4e9c", "2.5", "filled"),
    "input": ("#eeeeee", "#777777", "1", "filled,dashed"),
    "intermediate": ("#ffffff", "#555555", "1", "filled"),
    "output": ("#d4edda", "#1e7b34", "2.5", "filled"),
    "op": ("#fff3c4", "#b08900", "1", "filled"),
    "collapsed": ("#f2f2f2", "#777777", "1.5", "filled,dashed,rounded"),
}
NO_GRAD = "#ffffff"
ANOMALY = ("#ff4d4d", "#a30000")    # fill, border: where anomaly mode found a NaN or Inf
# small → large gradient norm, on a log scale: blue, pale yellow, red
SCALE = ["#4575b4", "#91bfdb", "#ffffbf", "#fc8d59", "#d73027"]


def draw_graph(root: Tensor | Sequence[Tensor], *,
               params: Module | Mapping[str, Tensor] | None = None, show_shapes: bool = True,
               show_values: bool = False, show_grads: bool = False,
               group_time_steps: bool = True, collapse: int | None = None,
               max_nodes: int | None = 500, max_steps: int | None = 6,
               rankdir: str = "TB") -> graphviz.Digraph:
    """Draw the graph that computed `root` and return it as a graphviz.Digraph.

    Each tensor is a record (name | shape dtype | ‖grad‖) and each op an ellipse with its
    name (matmul, add, tanh, …); edges follow the data, from inputs to the output.
    Colours (fill and border):

    - parameter: light blue, thick blue border, named from `params` (Whh, never an id)
    - input or constant (a leaf that is not a parameter): grey, dashed border
    - intermediate: white;  output (root): light green, thick green border
    - op: pale yellow ellipse;  collapsed time steps: grey dashed box
    - red, thick dark-red border: where anomaly mode found a NaN or an infinity
      (mt.detect_anomaly; draw the graph of the error's `.tensor`)

    Time reads along one axis (down with rankdir="TB", right with "LR"): the ops of each
    time step sit in a cluster labelled "t = k" ("layer0 · reverse · t = 3" inside
    nn.Recurrent), the clusters of a recurrence in time order — first steps, the collapsed
    node, last steps. Steps are those of nn.unroll, or of a loop of your own marked with
    mt.time_steps(n) or mt.time_step(t) (the record each tensor keeps in .scope; a plain
    mt.name_scope is a name, not a step). Parameters sit in one
    band at the start, each drawn once with an edge into every step that uses it; an input
    or constant used by one step only (x_t, h₀) sits in that step.

    Names: parameters are named from `params` (Whh, never an id); each step's state tensors
    by the cell's state_names and the step (h[t=3], c[t=3]); any other tensor by its own
    name, set with `tensor.name = "gate"` (which wins over a state label).

    root: a Tensor or a list of Tensors (all drawn as outputs).
    params: a Module (named_parameters()) or a dict name -> tensor; these are the
        parameters. Without it every leaf that requires grad is one, named by its .name.
    show_shapes / show_values: add each tensor's shape and dtype / values (a few, or the
        range) to its record.
    show_grads: after `loss.backward(keep_grads=True)` — which keeps the gradient of every
        intermediate tensor, the hidden states h_t above all — label each tensor with
        ‖grad‖ and fill it by that norm on a log scale from blue (small) to red (large),
        with a legend giving the range; a tensor whose gradient was not kept is white
        with "‖grad‖ —". Raises GraphError if no tensor in the graph has a gradient.
    group_time_steps: one cluster per time step (False: no clusters).
    collapse: k ≥ 1 keeps the first and last k time steps of each recurrence and draws
        the rest as one node saying how many steps it stands for; edges into and out of
        them meet that node, labelled ×n when they stand for n edges. A graph without time
        steps is drawn whole.
    max_nodes: a graph with more nodes is collapsed (with the largest k that fits) rather
        than truncated; GraphError if even k = 1 doesn't fit. None: no limit.
    max_steps: without collapse=k, at most this many time steps are drawn in all (the
        largest k that keeps to it, at least 1): Graphviz's layout time grows steeply
        with the number of step clusters. None: no limit. A collapse that max_nodes or
        max_steps imposes is said in a line at the top of the picture and by a warning.
    rankdir: "TB" (inputs at the top), "LR", "BT" or "RL".

    The Digraph displays inline in Jupyter; save_graph renders it to a file. Drawing needs
    the graphviz Python package, rendering also Graphviz's `dot` program.
    """
    roots = as_roots(root, "draw_graph")
    if collapse is not None and (not _is_int(collapse) or collapse < 1):
        raise ValueError(f"draw_graph: collapse must be an int k ≥ 1 (keep the first and "
                         f"last k time steps) or None; got {collapse!r}")
    for name, v in (("max_nodes", max_nodes), ("max_steps", max_steps)):
        if v is not None and (not _is_int(v) or v < 1):
            raise ValueError(f"draw_graph: {name} must be a positive int or None; got {v!r}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"draw_graph: rankdir must be one of {', '.join(RANKDIRS)}; got "
                         f"{rankdir!r}")
    names = param_names(params, "draw_graph")
    graph = Graph(roots, names)
    norms = _grad_norms(graph.tensors) if show_grads else None
    if show_grads and not norms:
        raise GraphError("draw_graph(show_grads=True): no tensor in this graph has a "
                         "gradient; call loss.backward(keep_grads=True) first (it keeps the "
                         "gradient of every intermediate tensor for drawing)")
    k = graph.fit(collapse, max_nodes, None if collapse is not None else max_steps)
    note = None
    if k != collapse:
        why = " and ".join(w for w, on in (
            (f"max_nodes={max_nodes}", max_nodes is not None and graph.size() > max_nodes),
            (f"max_steps={max_steps}", collapse is None and max_steps is not None
             and graph.drawn_steps(None) > max_steps)) if on)
        note = (f"collapsed to the first and last {k} time steps of each recurrence to fit "
                f"{why} (the whole graph has {graph.size():,} nodes in "
                f"{graph.drawn_steps(None):,} steps)")
        warnings.warn(f"draw_graph: {note}; pass collapse=k to choose k, or max_nodes=None "
                      f"and max_steps=None to draw every step", stacklevel=2)
    nodes, edges, hidden, order = graph.view(k)
    scale = _log_range(norms.values()) if norms else None
    label = _Labels(names or {}, graph.label, show_shapes, show_values, norms, scale, rankdir)

    gv = import_graphviz()
    g = gv.Digraph("microtensor", graph_attr={
        "rankdir": rankdir, "fontname": "Helvetica", "nodesep": "0.25", "ranksep": "0.3",
        "newrank": "true"},     # rank constraints hold across clusters: time order is kept
        node_attr={"fontname": "Helvetica", "fontsize": "10", "height": "0.3"},
        edge_attr={"color": "#555555", "arrowsize": "0.6", "fontname": "Helvetica",
                   "fontsize": "9"})
    if note:
        g.graph_attr.update(label=f"… {note} …", labelloc="t", fontsize="12", fontcolor="#555555")
    clusters: dict[tuple[str, int], Any] = {}      # step -> its cluster, a Digraph
    group: dict[str, object] = {}
    if group_time_steps:
        for steps in order.values():
            for s in steps:
                if s not in hidden:
                    clusters[s] = gv.Digraph(f"cluster_{len(clusters)}", graph_attr={
                        "label": step_label(s), "style": "rounded,filled",
                        "fillcolor": "#f7f7fb", "color": "#9999bb", "fontsize": "12",
                        "labeljust": "l"})
    band = gv.Digraph("parameters", graph_attr={"rank": "min"})
    for n in nodes:
        target = g
        if n.kind == "collapsed":
            group[n.id] = n.id
        elif group_time_steps and n.step is not None:
            target = clusters[n.step]
            group[n.id] = n.step
        elif n.kind == "parameter":
            target = band
        target.node(n.id, **label.node(n, hidden.get(n.id)))
    g.subgraph(band)
    for sub in clusters.values():
        g.subgraph(sub)
    for a, b, count in edges:
        g.edge(a, b, **({"label": f"×{count}"} if count > 1 else {}))
    if group_time_steps:
        for a, b in _time_order(order, group, edges):
            g.edge(a, b, style="invis", weight="0")
    if show_grads:
        g.node("legend", label=_legend(scale), shape="plaintext")
    return g


def _time_order(order, group, edges):
    """Invisible edges from each step's last nodes to the next step's first ones (through a
    collapsed node), so a recurrence's clusters follow one another along the rank axis."""
    inner_in, inner_out = set(), set()
    for a, b, _ in edges:
        ga = group.get(a)
        if ga is not None and ga == group.get(b):
            inner_out.add(a)
            inner_in.add(b)
    firsts, lasts = {}, {}
    for node, s in group.items():
        if node not in inner_in:
            firsts.setdefault(s, []).append(node)
        if node not in inner_out:
            lasts.setdefault(s, []).append(node)
    for steps in order.values():
        for prev, nxt in zip(steps, steps[1:]):
            for a in lasts.get(prev, ()):
                for b in firsts.get(nxt, ()):
                    yield a, b


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def import_graphviz() -> Any:
    """The graphviz Python package, imported only when a drawing is made."""
    try:
        import graphviz
    except ImportError as e:
        raise ImportError("mt.viz needs the graphviz Python package: pip install graphviz "
                          "(and the Graphviz program `dot` to render: apt-get install "
                          "graphviz, brew install graphviz, or "
                          "https://graphviz.org/download/)") from e
    return graphviz


def _grad_norms(tensors):
    return {t.seq: float(np.linalg.norm(t.grad)) for t in tensors if t.grad is not None}


def _log_range(norms):
    """(lo, hi) of log10 over the positive finite norms, or None if there are none."""
    logs = [math.log10(v) for v in norms if 0 < v < math.inf]
    return (min(logs), max(logs)) if logs else None


def grad_colour(norm: float, scale: tuple[float, float] | None) -> str:
    """The fill for a gradient norm: its place on the log scale, blue → yellow → red."""
    if math.isnan(norm) or norm == math.inf:
        u = 1.0
    elif norm <= 0 or scale is None:
        u = 0.0
    else:
        lo, hi = scale
        u = (math.log10(norm) - lo) / (hi - lo) if hi > lo else 0.5
    x = min(max(u, 0.0), 1.0) * (len(SCALE) - 1)
    i = min(int(x), len(SCALE) - 2)
    a, b = _rgb(SCALE[i]), _rgb(SCALE[i + 1])
    return "#" + "".join(f"{round(p + (q - p) * (x - i)):02x}" for p, q in zip(a, b))


def _rgb(hex_colour):
    return [int(hex_colour[j:j + 2], 16) for j in (1, 3, 5)]


def _ink(fill):
    """Black text on light fills, white on dark ones."""
    r, g, b = _rgb(fill)
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "black"


def fmt_norm(v: float) -> str:
    """A gradient norm with 4 significant digits."""
    return f"{v:.4g}"


class _Labels:
    """Labels and attributes of the nodes of one drawing."""

    def __init__(self, names, states, show_shapes, show_values, norms, scale, rankdir):
        self.names, self.states = names, states
        self.shapes, self.values = show_shapes, show_values
        self.norms, self.scale = norms, scale
        self.vertical = rankdir in ("TB", "BT")    # stack a record's fields top to bottom

    def node(self, n, hidden):
        fill, border, width, style = STYLES[n.kind]
        attrs = {"color": border, "penwidth": width, "style": style}
        if n.kind == "op":
            attrs.update(label=n.tensor.op.name, shape="ellipse", fillcolor=fill,
                         fontsize="9", margin="0.05,0.02")
        elif n.kind == "collapsed":
            attrs.update(label=self._collapsed(*hidden), shape="box", fillcolor=fill,
                         fontsize="11")
        else:
            t = n.tensor
            if self.norms is not None and t.requires_grad:
                v = self.norms.get(t.seq)
                fill = NO_GRAD if v is None else grad_colour(v, self.scale)
            anomaly = t._meta.anomaly if t._meta is not None else None
            if anomaly:
                fill, attrs["color"], attrs["penwidth"] = ANOMALY[0], ANOMALY[1], "3"
            attrs.update(label=self._record(t, anomaly), shape="record", fillcolor=fill,
                         fontcolor=_ink(fill))
        return attrs

    def _record(self, t, anomaly=None):
        name = self.names.get(id(t)) or t.name
        if name is None:
            name = self.states(t)
        fields = [] if name is None else [str(name)]
        if anomaly:
            fields.append(f"anomaly: {anomaly}")
        if self.shapes:
            shape = "scalar" if t._data.ndim == 0 else str(t._data.shape)
            fields.append(f"{shape} {t._data.dtype}")
        if self.values:
            fields.append(_values(t._data))
        if self.norms is not None and t.requires_grad:
            v = self.norms.get(t.seq)
            fields.append("‖grad‖ —" if v is None else f"‖grad‖ = {fmt_norm(v)}")
        text = "|".join(_escape(f) for f in fields) or " "
        return "{" + text + "}" if self.vertical else text

    def _collapsed(self, path, ts, tensors):
        where = f"{' · '.join(path.split('/'))}: " if path else ""
        text = f"… {where}{len(ts)} steps (t = {ts[0]} … {ts[-1]}) collapsed …"
        if self.norms is not None:
            inside = [self.norms[t.seq] for t in tensors if t.seq in self.norms]
            if inside:
                text += f"\\n‖grad‖ from {fmt_norm(min(inside))} to {fmt_norm(max(inside))}"
        return text


def _values(a):
    if a.size <= 4:
        return np.array2string(a.ravel() if a.ndim > 1 else a, precision=4, separator=", ")
    if a.dtype.kind in "fiu":
        return f"min {a.min():.4g}  max {a.max():.4g}"
    return f"{a.size} values"


def _escape(text):
    """Escape what a record label reads as structure: braces, bars, angle brackets."""
    out = text.replace("\\", "\\\\")
    for ch in '{}|<>"':
        out = out.replace(ch, "\\" + ch)
    return out


def _legend(scale):
    """An HTML-table node: the colour scale with its range, and what borders mean."""
    if scale is None:                    # every kept gradient is zero
        stops = [(SCALE[0], "0")]
    else:
        lo, hi = scale
        us = [0.0, 0.25, 0.5, 0.75, 1.0] if hi > lo else [0.5]
        stops = [(grad_colour(10 ** (lo + u * (hi - lo)), scale),
                  f"{10 ** (lo + u * (hi - lo)):.2g}") for u in us]
    swatches = "".join(f'<td bgcolor="{c}" width="52"><font color="{_ink(c)}">'
                       f'{html.escape(v)}</font></td>' for c, v in stops)
    span = len(stops)

    def row(kind, text):
        fill, border, width, style = STYLES[kind]
        dashed = ' style="dashed"' if "dashed" in style else ""
        return (f'<tr><td colspan="{span}" border="{2 if float(width) > 2 else 1}" '
                f'color="{border}"{dashed} bgcolor="white">{html.escape(text)}</td></tr>')

    return ('<<table border="0" cellspacing="3" cellpadding="4">'
            f'<tr><td colspan="{span}"><b>‖grad‖ of each tensor, log scale</b></td></tr>'
            f'<tr>{swatches}</tr>'
            f'<tr><td colspan="{span}" bgcolor="{NO_GRAD}" border="1" color="#555555">'
            'white, ‖grad‖ —: gradient not kept (backward(keep_grads=True))</td></tr>'
            + row("parameter", "thick blue border: parameter")
            + row("output", "thick green border: output")
            + row("input", "dashed border: input or constant")
            + '</table>>')
