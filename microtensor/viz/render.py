"""save_graph: render a drawing to svg, png or pdf with Graphviz's `dot`, or write its DOT text."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MicrotensorError
from ..files import atomic_write
from .draw import draw_graph, import_graphviz

if TYPE_CHECKING:
    import graphviz

    from .._types import StrPath
    from ..tensor import Tensor

FORMATS = ("svg", "png", "pdf", "dot")
INSTALL = ("install Graphviz: apt-get install graphviz (Debian/Ubuntu), brew install graphviz "
           "(macOS), or see https://graphviz.org/download/")


class GraphvizNotFound(MicrotensorError, RuntimeError):
    """Rendering needs Graphviz's `dot` program, and it is not on PATH."""


def save_graph(root: Tensor | Sequence[Tensor] | graphviz.Digraph, path: StrPath,
               **kwargs: Any) -> Path:
    """Draw root's graph (draw_graph's keyword arguments) and save it to path.

    The format comes from the suffix: .svg, .png, .pdf (rendered by Graphviz's `dot`) or
    .dot (the DOT text; needs no `dot`). root may also be a Digraph from draw_graph. The
    file is written whole or not at all. Returns the path.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"save_graph: cannot tell the format of {str(path)!r} from its "
                         f"suffix; use one of {', '.join('.' + f for f in FORMATS)}")
    gv = import_graphviz()
    if isinstance(root, gv.Digraph):
        if kwargs:
            raise TypeError(f"save_graph: got a drawn Digraph and drawing options "
                            f"{sorted(kwargs)}; pass the tensor instead to draw it with them")
        g = root
    else:
        g = draw_graph(root, **kwargs)
    write_atomic(path, g.source.encode() if fmt == "dot" else render(g, fmt))
    return path


def render(g: graphviz.Digraph, fmt: str) -> bytes:
    """The bytes of g rendered by `dot` in fmt, or GraphvizNotFound saying how to install it."""
    gv = import_graphviz()
    try:
        return g.pipe(format=fmt)
    except gv.ExecutableNotFound as e:
        raise GraphvizNotFound(f"rendering to {fmt} needs the Graphviz program `dot`, which is "
                               f"not on PATH; {INSTALL}. Without it, save to .dot or use the "
                               f"Digraph's .source") from e


def write_atomic(path: StrPath, data: bytes) -> None:
    """Write bytes to path whole or not at all (microtensor.files.atomic_write)."""
    with atomic_write(path) as f:
        f.write(data)

