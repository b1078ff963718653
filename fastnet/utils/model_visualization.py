"""``plot_model``: a model's graph drawn by Graphviz (through pydot), as ``keras.utils.plot_model``.

pydot and Graphviz's ``dot`` program are optional: ``pip install "fastnet[plot]"`` brings
pydot, and Graphviz comes from the system's packages (``apt-get install graphviz``,
``brew install graphviz``, ``conda install graphviz``). Without them, a clear error says
what to install.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from fastnet.models.model import Model

__all__ = ["model_to_dot", "plot_model"]


def _require_pydot():
    try:
        import pydot
    except ImportError:
        raise ImportError("plot_model needs pydot and Graphviz: pip install pydot (or fastnet[plot]), and "
                          "Graphviz's dot program (apt-get install graphviz, brew install graphviz or conda "
                          "install graphviz)") from None
    return pydot


def _shape_text(shape):
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _html(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _label(layer, members, show_shapes, show_dtype, show_layer_names, show_layer_activations, show_trainable):
    title = f"{layer.name} ({type(layer).__name__})" if show_layer_names else type(layer).__name__
    rows = [f'<tr><td colspan="2" bgcolor="#dbe9f6"><b>{_html(title)}</b></td></tr>']
    nodes = [n for n in layer._inbound_nodes if id(n) in members]
    if show_shapes and nodes:
        ins = [t.shape for t in nodes[0].inputs]
        outs = [t.shape for t in nodes[0].outputs]
        if ins:
            rows.append(f'<tr><td>Input shape</td><td>{_html(_shape_text(ins[0] if len(ins) == 1 else ins))}</td></tr>')
        rows.append(f'<tr><td>Output shape</td><td>{_html(_shape_text(outs[0] if len(outs) == 1 else outs))}'
                    f"</td></tr>")
    if show_dtype and nodes:
        rows.append(f"<tr><td>dtype</td><td>{_html(nodes[0].outputs[0].dtype)}</td></tr>")
    if show_layer_activations:
        act = getattr(layer, "activation", None)
        fn = getattr(act, "fn", act)
        name = getattr(fn, "name", None) or getattr(fn, "__name__", None)
        if name:
            rows.append(f"<tr><td>Activation</td><td>{_html(name)}</td></tr>")
    if show_trainable:
        rows.append(f"<tr><td>Trainable</td><td>{'Y' if layer.trainable else 'N'}</td></tr>")
    return '<<table border="0" cellborder="1" cellspacing="0" cellpadding="4">' + "".join(rows) + "</table>>"


def model_to_dot(model: Model, show_shapes: bool = False, show_dtype: bool = False, show_layer_names: bool = True,
                 rankdir: str = "TB", expand_nested: bool = False, dpi: int = 200,
                 show_layer_activations: bool = False, show_trainable: bool = False, **kwargs) -> Any:
    """The model's graph as a ``pydot.Dot``: one box per layer, an edge per tensor."""
    pydot = _require_pydot()
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be 'TB' or 'LR', received {rankdir!r}")
    graph = getattr(model, "_graph", None)
    if graph is None:
        raise ValueError(f"Model '{model.name}' is not built: build it (call it on data, or start it with "
                         f"keras.Input) before plotting it")
    dot = pydot.Dot(graph_type="digraph", rankdir=rankdir, dpi=dpi)
    dot.set_node_defaults(shape="plaintext", fontname="Helvetica")
    members = {id(n) for n in graph.nodes} | {id(t.node) for t in graph.inputs if t.node is not None}
    layers = list(model.layers)
    input_layers = [t.node.layer for t in graph.inputs if t.node is not None]
    for layer in input_layers:
        if all(layer is not other for other in layers):
            layers.insert(0, layer)
    for layer in layers:
        dot.add_node(pydot.Node(str(id(layer)), label=_label(
            layer, members, show_shapes, show_dtype, show_layer_names, show_layer_activations, show_trainable)))
    for node in graph.nodes:
        for t in node.inputs:
            src = t._keras_history[0]
            dot.add_edge(pydot.Edge(str(id(src)), str(id(node.layer))))
    return dot


def plot_model(model: Model, to_file: str | os.PathLike[str] = "model.png", show_shapes: bool = False,
               show_dtype: bool = False, show_layer_names: bool = True, rankdir: str = "TB",
               expand_nested: bool = False, dpi: int = 200, show_layer_activations: bool = False,
               show_trainable: bool = False, **kwargs) -> None:
    """Draws the model's graph into ``to_file`` (PNG, SVG, PDF, ... by its extension).

    Example:
        >>> import fastnet as keras
        >>> inputs = keras.Input((3,))
        >>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        >>> keras.utils.plot_model(model, "model.png", show_shapes=True)  # doctest: +SKIP
    """
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                       rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations, show_trainable=show_trainable)
    to_file = os.fspath(to_file)
    ext = os.path.splitext(to_file)[1].lower().lstrip(".") or "png"
    try:
        data = dot.create(format=ext)
    except FileNotFoundError:
        raise ImportError("plot_model needs Graphviz's dot program on the PATH: apt-get install graphviz, brew "
                          "install graphviz or conda install graphviz") from None
    except Exception as e:  # pydot reports dot's own failures (an unknown format, ...)
        if "dot" in str(e) and "not found" in str(e):
            raise ImportError("plot_model needs Graphviz's dot program on the PATH: apt-get install graphviz, "
                              "brew install graphviz or conda install graphviz") from None
        raise
    tmp = to_file + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, to_file)
