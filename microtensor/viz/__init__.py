"""mt.viz: draw computation graphs with Graphviz (time steps, shared weights, gradient norms)
and plot gradient flow through time. graphviz and matplotlib are imported only when used."""
from .draw import draw_graph
from .gradflow import grad_norms, plot_grad_flow, step_states
from .render import FORMATS, GraphvizNotFound, save_graph

__all__ = ["draw_graph", "save_graph", "plot_grad_flow", "grad_norms", "step_states",
           "GraphvizNotFound", "FORMATS"]
