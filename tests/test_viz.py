"""mt.viz: exact node and edge counts, time-step clusters, gradient labels, real rendering."""
import re
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor import viz
from microtensor.errors import ArgumentError, GraphError

PARAMS = ("Wxh", "Whh", "Why", "bh", "by")
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')


def parse(g):
    """Nodes {id: attrs}, edges [(src, dst, attrs)] and clusters {label: [node ids]} of g."""
    nodes, edges, clusters, current, label = {}, [], {}, None, None
    for line in g.source.splitlines():
        line = line.strip()
        if line.startswith("subgraph cluster_"):
            current = []
        elif line == "}" and current is not None:
            clusters[label] = current
            current = None
        elif line.startswith("graph [") and current is not None:
            label = _attrs(line)["label"]
        elif m := re.match(r"(\w+) -> (\w+)", line):
            edges.append((m.group(1), m.group(2), _attrs(line)))
        elif (m := re.match(r"(\w+) \[", line)) and m.group(1) not in ("graph", "node", "edge"):
            nodes[m.group(1)] = _attrs(line) if m.group(1) != "legend" else {}
            if current is not None:
                current.append(m.group(1))
    return nodes, edges, clusters


def _attrs(line):
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _ATTR.findall(line)}


def node_named(nodes, name):
    found = [i for i, a in nodes.items() if a.get("label", "").startswith("{" + name + "|")]
    assert len(found) == 1, (name, found)
    return found[0]


def grad_in(label):
    m = re.search(r"‖grad‖ = ([^|}]+)", label)
    return float(m.group(1)) if m else None


def build_rnn(T=5, B=2, I=3, H=4, O=3, seed=0, scale=0.5):
    """A vanilla RNN unrolled by hand with h @ Whh.T, each step marked by mt.time_step(t)."""
    rng = np.random.default_rng(seed)
    P = {}
    for name, shape in [("Wxh", (H, I)), ("Whh", (H, H)), ("Why", (O, H)), ("bh", (H,)),
                        ("by", (O,))]:
        P[name] = mt.tensor(rng.standard_normal(shape) * scale, requires_grad=True)
        P[name].name = name
    xs = mt.tensor(rng.standard_normal((T, B, I)))
    h = mt.zeros((B, H))
    hs = []
    for t in range(T):
        with mt.time_step(t, state_names="h"):
            h = mt.tanh(xs[t] @ P["Wxh"].T + h @ P["Whh"].T + P["bh"])
        hs.append(h)
    logits = mt.stack(hs) @ P["Why"].T + P["by"]
    targets = rng.integers(0, O, (T * B,))
    return F.cross_entropy(logits.reshape(T * B, O), targets), hs, P


# nodes per step: x_t, then 2 transposes, 2 matmuls, 2 adds and tanh (ops and outputs);
# step 0 also holds h₀
PER_STEP = 1 + 2 * 7


# ---- known small graphs -----------------------------------------------------------------
def test_small_graph_exact_counts_and_kinds():
    a = mt.tensor([1.0, 2.0], requires_grad=True)
    b = mt.tensor([3.0, 4.0], requires_grad=True)
    c = a * b + a
    nodes, edges, clusters = parse(viz.draw_graph(c, params={"a": a, "b": b}))
    assert len(nodes) == 6 and len(edges) == 6 and clusters == {}
    ops = sorted(n["label"] for n in nodes.values() if n["shape"] == "ellipse")
    assert ops == ["add", "mul"]
    assert nodes[f"t{a.seq}"]["label"] == "{a|(2,) float64}"
    assert nodes[f"t{a.seq}"]["fillcolor"] == viz.draw.STYLES["parameter"][0]
    assert nodes[f"t{c.seq}"]["fillcolor"] == viz.draw.STYLES["output"][0]
    assert nodes[f"t{c.parents[0].seq}"]["label"] == "{(2,) float64}"
    assert nodes[f"t{c.parents[0].seq}"]["fillcolor"] == viz.draw.STYLES["intermediate"][0]
    ab = c.parents[0]                             # edges follow the data, in argument order
    assert [(s, d) for s, d, _ in edges] == [
        (f"t{a.seq}", f"o{ab.seq}"), (f"t{b.seq}", f"o{ab.seq}"), (f"o{ab.seq}", f"t{ab.seq}"),
        (f"t{ab.seq}", f"o{c.seq}"), (f"t{a.seq}", f"o{c.seq}"), (f"o{c.seq}", f"t{c.seq}")]


def test_square_keeps_both_edges_and_constant_is_an_input():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    y = x * x + 1.0
    nodes, edges, _ = parse(viz.draw_graph(y))
    # x, x*x op and tensor, the constant 1.0, add op and tensor
    assert len(nodes) == 6 and len(edges) == 6
    assert [(s, d) for s, d, _ in edges].count((f"t{x.seq}", f"o{(y.parents[0]).seq}")) == 2
    const = y.parents[1]
    assert nodes[f"t{const.seq}"]["style"] == "filled,dashed"
    assert nodes[f"t{const.seq}"]["label"] == "{scalar float64}"


def test_unnamed_parameter_shows_no_id_and_options_change_records():
    w = mt.tensor(np.arange(3.0), requires_grad=True)
    y = (w * 2.0).sum()
    nodes, _, _ = parse(viz.draw_graph(y, show_values=True))
    assert nodes[f"t{w.seq}"]["label"] == "{(3,) float64|[0., 1., 2.]}"
    nodes, _, _ = parse(viz.draw_graph(y, show_shapes=False, rankdir="LR"))
    assert nodes[f"t{w.seq}"]["label"] == " "
    w.name = "w"
    nodes, _, _ = parse(viz.draw_graph(y, rankdir="LR"))
    assert nodes[f"t{w.seq}"]["label"] == "w|(3,) float64"


def test_drawing_is_deterministic_and_iterative():
    x = mt.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(3000):                         # deeper than Python's recursion limit
        y = y + 1.0
    g1, g2 = viz.draw_graph(y, max_nodes=None), viz.draw_graph(y, max_nodes=None)
    assert g1.source == g2.source
    nodes, edges, _ = parse(g1)
    assert len(nodes) == 1 + 3 * 3000 and len(edges) == 3 * 3000


def test_several_roots_are_all_outputs():
    x = mt.tensor([1.0, -1.0], requires_grad=True)
    y, z = x.tanh(), x.exp()
    nodes, edges, _ = parse(viz.draw_graph([y, z]))
    assert len(nodes) == 5 and len(edges) == 4
    for t in (y, z):
        assert nodes[f"t{t.seq}"]["fillcolor"] == viz.draw.STYLES["output"][0]


# ---- the unrolled RNN -------------------------------------------------------------------
def test_rnn_clusters_parameters_and_shared_weight():
    loss, hs, P = build_rnn(T=5)
    nodes, edges, clusters = parse(viz.draw_graph(loss))
    assert sorted(clusters) == [f"t = {t}" for t in range(5)]
    assert [len(clusters[f"t = {t}"]) for t in range(5)] == [PER_STEP + 1] + [PER_STEP] * 4
    ids = {name: node_named(nodes, name) for name in PARAMS}
    assert not any(i in c for c in clusters.values() for i in ids.values())
    out = [d for s, d, _ in edges if s == ids["Whh"]]
    assert len(out) == 5
    assert {nodes[d]["label"] for d in out} == {"transpose"}
    assert sorted(label for label, c in clusters.items() for d in out if d in c) == \
        [f"t = {t}" for t in range(5)]
    for t, h in enumerate(hs):                    # h_t made in step t, x_t placed there too
        assert f"t{h.seq}" in clusters[f"t = {t}"]


def test_params_from_a_module_like_object():
    loss, _, P = build_rnn(T=2)
    for p in P.values():
        p.name = None

    class Model:
        def named_parameters(self):
            yield from (("cell." + k, v) for k, v in P.items())

    nodes, _, _ = parse(viz.draw_graph(loss, params=Model()))
    assert node_named(nodes, "cell.Whh") == f"t{P['Whh'].seq}"


def test_gradient_labels_equal_the_norms_after_backward():
    loss, hs, P = build_rnn(T=5)
    loss.backward(keep_grads=True)
    g = viz.draw_graph(loss, params=P, show_grads=True)
    nodes, _, _ = parse(g)
    for name, p in P.items():
        got = grad_in(nodes[node_named(nodes, name)]["label"])
        assert got == pytest.approx(np.linalg.norm(p.grad), rel=1e-3)
    for h in hs:
        assert grad_in(nodes[f"t{h.seq}"]["label"]) == pytest.approx(
            np.linalg.norm(h.grad), rel=1e-3)
    assert grad_in(nodes[f"t{loss.seq}"]["label"]) == 1.0
    fills = {grad_in(a["label"]): a["fillcolor"] for a in nodes.values()
             if grad_in(a.get("label", "")) is not None and grad_in(a["label"]) > 0}
    assert fills[max(fills)] == viz.draw.SCALE[-1] and fills[min(fills)] == viz.draw.SCALE[0]
    assert "legend" in nodes and "log scale" in g.source


def test_grads_need_a_backward_and_unkept_ones_are_marked():
    loss, hs, P = build_rnn(T=3)
    with pytest.raises(GraphError, match=r"keep_grads=True"):
        viz.draw_graph(loss, show_grads=True)
    loss.backward()                               # keeps only the parameters' gradients
    nodes, _, _ = parse(viz.draw_graph(loss, show_grads=True))
    assert nodes[f"t{hs[0].seq}"]["label"].endswith("|‖grad‖ —}")
    assert nodes[f"t{hs[0].seq}"]["fillcolor"] == viz.draw.NO_GRAD
    assert grad_in(nodes[node_named(nodes, "Whh")]["label"]) == pytest.approx(
        np.linalg.norm(P["Whh"].grad), rel=1e-3)


def test_colour_scale_is_logarithmic():
    scale = (-3.0, 1.0)
    assert viz.draw.grad_colour(1e-3, scale) == viz.draw.SCALE[0]
    assert viz.draw.grad_colour(10.0, scale) == viz.draw.SCALE[-1]
    assert viz.draw.grad_colour(1e-1, scale) == viz.draw.SCALE[2]      # the middle, in logs
    assert viz.draw.grad_colour(0.0, scale) == viz.draw.SCALE[0]


def test_nested_scopes_cluster_on_the_time_step():
    x = mt.tensor([1.0], requires_grad=True)
    with mt.name_scope("layer0"):
        for t in range(2):
            with mt.time_step(t), mt.name_scope("gate"):
                x = x.sigmoid() * 2.0
    _, _, clusters = parse(viz.draw_graph(x))
    assert sorted(clusters) == ["layer0 · t = 0", "layer0 · t = 1"]
    assert all(len(c) == 5 for c in clusters.values())     # sigmoid, 2.0, mul
    _, _, clusters = parse(viz.draw_graph(x, group_time_steps=False))
    assert clusters == {}


# ---- collapsing -------------------------------------------------------------------------
def test_collapse_keeps_first_and_last_steps():
    loss, _, _ = build_rnn(T=8)
    full, _, _ = parse(viz.draw_graph(loss, max_steps=None))
    nodes, edges, clusters = parse(viz.draw_graph(loss, collapse=2))
    assert sorted(clusters) == [f"t = {t}" for t in (0, 1, 6, 7)]
    assert len(nodes) == len(full) - 4 * PER_STEP + 1
    (cid,) = [i for i, a in nodes.items() if a.get("shape") == "box"]
    assert nodes[cid]["label"] == "… 4 steps (t = 2 … 5) collapsed …"
    whh = node_named(nodes, "Whh")
    out = [(d, a.get("label")) for s, d, a in edges if s == whh]
    assert len(out) == 5 and (cid, "×4") in out
    assert any(s == cid for s, _, _ in edges) and any(d == cid for _, d, _ in edges)


def test_collapse_shows_gradient_range_inside():
    loss, hs, _ = build_rnn(T=6)
    loss.backward(keep_grads=True)
    nodes, _, _ = parse(viz.draw_graph(loss, collapse=1, show_grads=True))
    (label,) = [a["label"] for a in nodes.values() if a.get("shape") == "box"]
    assert label.startswith("… 4 steps (t = 1 … 4) collapsed …\\n‖grad‖ from ")


def test_max_nodes_collapses_automatically_and_never_truncates():
    loss, _, _ = build_rnn(T=30)
    with pytest.warns(UserWarning, match=r"collapsed to the first and last \d+ time steps .* "
                                         r"max_nodes=150 \(the whole graph has 468 nodes"):
        g = viz.draw_graph(loss, max_nodes=150, max_steps=None)
    nodes, _, clusters = parse(g)
    assert len(nodes) <= 150
    k = len(clusters) // 2
    assert sorted(clusters) == sorted(f"t = {t}" for t in [*range(k), *range(30 - k, 30)])
    assert len(nodes) + 2 * PER_STEP > 150         # the largest k that fits
    x = mt.tensor(1.0, requires_grad=True)
    for _ in range(40):
        x = x * 1.5
    with pytest.raises(GraphError, match=r"max_nodes=50.*no time steps .*mt.time_step"):
        viz.draw_graph(x, max_nodes=50)
    with pytest.raises(GraphError, match=r"first and last time step"):
        viz.draw_graph(loss, max_nodes=20)


def test_thousand_step_rnn_renders_to_svg(tmp_path):
    loss, _, _ = build_rnn(T=1000, H=8)
    loss.backward(keep_grads=True)
    with pytest.warns(UserWarning, match="max_nodes=500 and max_steps=6"):
        path = viz.save_graph(loss, tmp_path / "long.svg", show_grads=True)
    text = path.read_text()
    k = len(re.findall(r">t = \d+<", text)) // 2
    assert 1 <= k < 20 and f">t = {999 - k + 1}<" in text and f">t = {k - 1}<" in text
    assert f"{1000 - 2 * k} steps (t = {k} … {999 - k}) collapsed" in text


# ---- rendering and files ----------------------------------------------------------------
def test_svg_png_pdf_and_dot(tmp_path):
    loss, _, P = build_rnn(T=5)
    loss.backward(keep_grads=True)
    svg = viz.save_graph(loss, tmp_path / "rnn.svg", params=P, show_grads=True)
    texts = {"".join(e.itertext()) for e in ET.parse(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert {f"t = {t}" for t in range(5)} <= texts and {"Whh", "matmul", "tanh"} <= texts
    assert viz.save_graph(loss, tmp_path / "rnn.png").read_bytes()[:4] == b"\x89PNG"
    assert viz.save_graph(loss, tmp_path / "rnn.pdf").read_bytes()[:4] == b"%PDF"
    g = viz.draw_graph(loss)
    assert viz.save_graph(g, tmp_path / "rnn.dot").read_text() == g.source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rnn.dot", "rnn.pdf", "rnn.png",
                                                          "rnn.svg"]


def test_missing_dot_gives_install_advice_and_no_file(tmp_path, monkeypatch):
    loss, _, _ = build_rnn(T=2)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    g = viz.draw_graph(loss)                       # drawing needs no `dot`
    assert g.source.startswith("digraph")
    with pytest.raises(viz.GraphvizNotFound, match=r"apt-get install graphviz.*brew install "
                                                   r"graphviz.*graphviz\.org/download"):
        viz.save_graph(loss, tmp_path / "rnn.svg")
    assert list(tmp_path.iterdir()) == []
    assert viz.save_graph(loss, tmp_path / "rnn.dot").read_text() == g.source


def test_bad_arguments():
    loss, _, _ = build_rnn(T=2)
    for root, what in [(np.ones(3), "ndarray"), ([], "empty list"), ([loss, 3], "list holding")]:
        with pytest.raises(ArgumentError, match=what):
            viz.draw_graph(root)
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.pdf, \.dot"):
        viz.save_graph(loss, "graph.jpg")
    for kwargs, match in [({"collapse": 0}, "collapse"), ({"collapse": 1.5}, "collapse"),
                          ({"rankdir": "XY"}, "rankdir"), ({"max_nodes": 0}, "max_nodes"),
                          ({"max_steps": 0}, "max_steps"), ({"max_steps": 2.0}, "max_steps")]:
        with pytest.raises(ValueError, match=match):
            viz.draw_graph(loss, **kwargs)
    with pytest.raises(ArgumentError, match="params"):
        viz.draw_graph(loss, params=[1, 2])
    with pytest.raises(ArgumentError, match="not a Tensor"):
        viz.draw_graph(loss, params={"w": np.ones(2)})


def test_import_microtensor_imports_neither_graphviz_nor_matplotlib():
    code = ("import sys, microtensor as mt; mt.viz.draw_graph; "
            "assert 'graphviz' not in sys.modules, 'graphviz'; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_python_packages_say_what_to_install(monkeypatch):
    loss, hs, _ = build_rnn(T=2)
    loss.backward(keep_grads=True)
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError, match="pip install graphviz"):
        viz.draw_graph(loss)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        viz.plot_grad_flow(hs)


# ---- gradient flow ----------------------------------------------------------------------
def test_step_states_and_grad_norms():
    loss, hs, _ = build_rnn(T=6)
    states = viz.step_states(loss)
    assert list(states) == [""] and all(a is b for a, b in zip(states[""], hs))
    with pytest.raises(GraphError, match="keep_grads=True"):
        viz.grad_norms(hs)
    loss.backward(keep_grads=True)
    np.testing.assert_allclose(viz.grad_norms(hs), [np.linalg.norm(h.grad) for h in hs])


def test_plot_grad_flow_writes_a_png(tmp_path):
    loss, hs, _ = build_rnn(T=20)
    loss.backward(keep_grads=True)
    path = tmp_path / "flow.png"
    fig = viz.plot_grad_flow(hs, path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), viz.grad_norms(hs))
    fig = viz.plot_grad_flow({"a": hs[:10], "b": hs[10:]}, tmp_path / "two.png")
    assert len(fig.axes[0].get_lines()) == 2
    with pytest.raises(ArgumentError):
        viz.plot_grad_flow(hs[0])


def test_the_model_itself_five_steps():
    """models.VanillaRNN as users get it: clusters t = 0..4, its five parameters named from
    the Module and drawn once, Whh feeding each step's linear op, exact gradient labels."""
    from microtensor.models import VanillaRNN
    mt.manual_seed(0)
    model = VanillaRNN(3, 4, 3, init="torch")
    rng = np.random.default_rng(0)
    loss, _ = model.loss(rng.standard_normal((5, 2, 3)), rng.integers(0, 3, (5, 2)))
    loss.backward(keep_grads=True)
    nodes, edges, clusters = parse(viz.draw_graph(loss, params=model, show_grads=True))
    assert sorted(clusters) == [f"t = {t}" for t in range(5)]
    ids = {name: node_named(nodes, name) for name in PARAMS}
    assert not any(i in c for c in clusters.values() for i in ids.values())
    out = [d for s, d, _ in edges if s == ids["Whh"]]
    assert len(out) == 5 and {nodes[d]["label"] for d in out} == {"linear_add"}
    assert sorted(label for label, c in clusters.items() for d in out if d in c) == \
        [f"t = {t}" for t in range(5)]
    for name in PARAMS:
        got = grad_in(nodes[ids[name]]["label"])
        assert got == pytest.approx(np.linalg.norm(getattr(model, name).grad), rel=1e-3)


# ---- time order, read off the rendered SVG ----------------------------------------------
SVG = "{http://www.w3.org/2000/svg}"


def rendered(g):
    """{title: (kind, text, x0, y0, x1, y1)} for every cluster and node of g rendered by dot:
    their bounding boxes in the SVG's coordinates (y grows downwards)."""
    root = ET.fromstring(g.pipe(format="svg"))
    boxes = {}
    for el in root.iter(SVG + "g"):
        kind = el.get("class")
        if kind not in ("cluster", "node"):
            continue
        points = []
        for shape in el:
            if shape.tag in (SVG + "polygon", SVG + "path"):
                nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?",
                                                     shape.get("points") or shape.get("d"))]
                points += list(zip(nums[0::2], nums[1::2]))
            elif shape.tag == SVG + "ellipse":
                cx, cy, rx, ry = (float(shape.get(k)) for k in ("cx", "cy", "rx", "ry"))
                points += [(cx - rx, cy - ry), (cx + rx, cy + ry)]
        if points:
            text = " ".join("".join(t.itertext()) for t in el.iter(SVG + "text"))
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            boxes[el.find(SVG + "title").text] = (kind, text, min(xs), min(ys), max(xs), max(ys))
    return boxes


def steps_in_order(boxes, prefix="", axis="y"):
    """The boxes of a recurrence's step clusters and collapsed node, sorted by t, and whether
    each one lies wholly after the one before along the axis."""
    lo, hi = (3, 5) if axis == "y" else (2, 4)
    label = re.compile(re.escape(prefix) + r"t = (\d+)$" if prefix else r"t = (\d+)$")
    steps = []
    for kind, text, *box in boxes.values():
        m = label.fullmatch(text) if kind == "cluster" else None
        if m:
            steps.append((int(m.group(1)), (kind, text, *box)))
        elif kind == "node" and "collapsed" in text and text.startswith(
                "… " + (prefix.replace(" · ", " · ").rstrip(" ·") + ": " if prefix else "")):
            first = int(re.search(r"\(t = (\d+) …", text).group(1))
            steps.append((first, (kind, text, *box)))
    steps.sort()
    order = [b for _, b in steps]
    return order, all(a[hi] < b[lo] for a, b in zip(order, order[1:]))


def test_steps_follow_time_down_the_page_with_parameters_in_one_band():
    loss, hs, P = build_rnn(T=5)
    boxes = rendered(viz.draw_graph(loss, params=P))
    order, separated = steps_in_order(boxes)
    assert [b[1] for b in order] == [f"t = {t}" for t in range(5)] and separated
    params = [b for b in boxes.values() if b[0] == "node" and b[1].split(" ")[0] in PARAMS]
    assert len(params) == 5
    tops = {round(b[3]) for b in params}
    assert len(tops) == 1 and tops.pop() < order[0][3]       # one band, above every step


def test_steps_follow_time_across_the_page_with_rankdir_lr():
    loss, _, _ = build_rnn(T=4)
    order, separated = steps_in_order(rendered(viz.draw_graph(loss, rankdir="LR")), axis="x")
    assert len(order) == 4 and separated


def test_a_collapsed_long_unroll_reads_first_steps_collapsed_node_last_steps():
    """The issue's example: 200 steps collapsed, where t = 197..199 used to sit beside t = 0."""
    from microtensor.models import VanillaRNN
    mt.manual_seed(0)
    model = VanillaRNN(3, 4, 3)
    rng = np.random.default_rng(0)
    loss, _ = model.loss(rng.standard_normal((200, 2, 3)), rng.integers(0, 3, (200, 2)))
    order, separated = steps_in_order(rendered(viz.draw_graph(loss, params=model, collapse=3)))
    assert [b[1].split(" (")[0] for b in order] == [
        "t = 0", "t = 1", "t = 2", "… 194 steps", "t = 197", "t = 198", "t = 199"]
    assert separated


def test_stacked_bidirectional_recurrences_each_read_in_time_order():
    from microtensor.models import LSTM
    mt.manual_seed(1)
    model = LSTM(3, 4, num_layers=2, bidirectional=True)
    out, _ = model(mt.randn(6, 2, 3), lengths=[6, 4])
    boxes = rendered(viz.draw_graph(out.sum(), params=model, collapse=1))
    for prefix in ("layer0 · ", "layer0 · reverse · ", "layer1 · ", "layer1 · reverse · "):
        order, separated = steps_in_order(boxes, prefix)
        assert [b[0] for b in order] == ["cluster", "node", "cluster"] and separated, prefix
    # layer 1 reads layer 0's outputs, so it comes after it
    first = {p: steps_in_order(boxes, p)[0] for p in ("layer0 · ", "layer1 · ")}
    assert first["layer0 · "][-1][5] < first["layer1 · "][0][3]


# ---- labels: state parts, user names ------------------------------------------------------
def test_state_tensors_are_labelled_with_their_name_and_step():
    from microtensor.models import LSTM
    mt.manual_seed(2)
    model = LSTM(3, 4)
    out, (h, c) = model(mt.randn(3, 2, 3))
    g = viz.draw_graph([out.sum(), c.sum()], params=model)
    nodes, _, clusters = parse(g)
    step2 = clusters["t = 2"]
    labels = {nodes[i]["label"].split("|")[0].lstrip("{") for i in step2}
    assert {"h[t=2]", "c[t=2]"} <= labels
    hT = out.parents[-1]                                   # the stacked outputs: h of each step
    assert nodes[f"t{hT.seq}"]["label"].startswith("{h[t=2]|")
    rec = hT.scope.states
    assert rec.names == ("h", "c") and len(rec.handed) == 3 * 2
    for t in range(3):                                    # every step's two parts, by seq
        h_seq, c_seq = rec.handed[2 * t:2 * t + 2]
        assert nodes[f"t{h_seq}"]["label"].startswith(f"{{h[t={t}]|")
        assert nodes[f"t{c_seq}"]["label"].startswith(f"{{c[t={t}]|")


def test_a_users_loop_labels_what_each_step_hands_on_and_user_names_win():
    loss, hs, P = build_rnn(T=3)                     # marked with mt.time_step(t, state_names="h")
    nodes, _, _ = parse(viz.draw_graph(loss, params=P))
    assert [nodes[f"t{h.seq}"]["label"].split("|")[0] for h in hs] == \
        ["{h[t=0]", "{h[t=1]", "{h[t=2]"]
    hs[1].name = "carry"
    pre = hs[2].parents[0]                            # the tanh's input: no label of its own
    pre.name = "pre-activation"
    nodes, _, _ = parse(viz.draw_graph(loss, params=P))
    assert nodes[f"t{hs[1].seq}"]["label"].startswith("{carry|")
    assert nodes[f"t{pre.seq}"]["label"].startswith("{pre-activation|")
    assert viz.step_states(loss)[""] == hs


def test_step_states_finds_a_users_loops_states_without_names_too():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    h, hs = x, []
    for t in mt.time_steps(4):                        # no state_names: found, not labelled
        h = (h * 0.5).tanh()
        hs.append(h)
    loss = h.sum()
    assert viz.step_states(loss)[""] == hs
    nodes, _, _ = parse(viz.draw_graph(loss))
    assert not any("[t=" in a.get("label", "") for a in nodes.values())


def test_a_plain_name_scope_is_not_a_time_step():
    x = mt.tensor([1.0], requires_grad=True)
    for t in range(3):
        with mt.name_scope(f"t={t}"):                 # a name, not a step: nothing parses it
            x = x * 2.0
    _, _, clusters = parse(viz.draw_graph(x))
    assert clusters == {}


# ---- saying that it collapsed -------------------------------------------------------------
def test_auto_collapse_is_said_on_the_picture_and_by_a_warning():
    loss, _, _ = build_rnn(T=10)
    with pytest.warns(UserWarning, match=r"draw_graph: collapsed to the first and last 3 time "
                                         r"steps of each recurrence to fit max_steps=6 \(the "
                                         r"whole graph has 168 nodes in 10 steps\)"):
        g = viz.draw_graph(loss)
    assert "collapsed to the first and last 3 time steps" in g.graph_attr["label"]
    texts = [b[1] for b in rendered(g).values()]
    assert any("4 steps (t = 3 … 6) collapsed" in t for t in texts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # asked for, or small enough: no word
        for kwargs in ({"collapse": 2}, {"max_steps": None}, {"max_steps": 10}):
            assert "label" not in viz.draw_graph(loss, **kwargs).graph_attr
    with pytest.warns(UserWarning, match="last 2 time steps .* max_steps=4"):
        nodes, _, clusters = parse(viz.draw_graph(loss, max_steps=4))
    assert sorted(clusters) == ["t = 0", "t = 1", "t = 8", "t = 9"]


def test_fit_searches_k_in_logarithmically_many_size_evaluations():
    """fit's search for k used to try every k from T/2 down (quadratic in T overall)."""
    loss, _, _ = build_rnn(T=2000, I=1, H=1, O=1)
    graph = viz.graph.Graph([loss], None)
    calls = []
    size = graph.size
    graph.size = lambda k=None: calls.append(k) or size(k)
    k = graph.fit(None, 500, None)
    assert graph.size(k) <= 500 < graph.size(k + 1) and len(calls) <= 2 * 11 + 4
    assert graph.fit(None, None, 6) == 3 and graph.fit(4, None, None) == 4
