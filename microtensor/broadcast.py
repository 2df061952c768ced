"""The one place a broadcast gradient is summed back down to an input's shape."""
from .errors import ShapeError


def unbroadcast(g, shape, node=None, parent=None):
    """Sum g over the axes NumPy broadcasting added or stretched, giving an array of `shape`.

    node/parent (the op's output tensor and the input) only name the culprit in the error.
    """
    lead = g.ndim - len(shape)
    if lead < 0 or any(s != 1 and s != gs for s, gs in zip(shape, g.shape[lead:])):
        raise ShapeError(f"{where(node, parent)}: the gradient has shape {g.shape}, which "
                         f"does not reduce to the input's shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


def where(node, parent):
    """'backward of OP (input i, made in SCOPE)': which edge of the graph a gradient is on."""
    if node is None:
        return "backward"
    index = next((i for i, q in enumerate(node.parents) if q is parent), "?")
    scope = f", made in {node.scope}" if node.scope is not None else ""
    return f"backward of {node.op.name} (input {index}{scope})"
