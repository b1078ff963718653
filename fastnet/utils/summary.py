"""``model.summary()`` in the tf.keras 2 layout."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnet.models.model import Model

__all__ = ["print_summary"]


def _format_shape(shape):
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(_format_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _connections(model, layer):
    """``name[node][tensor]`` of each tensor the layer's calls in ``model`` read."""
    graph = model._graph
    members = {id(n) for n in graph.nodes}
    index = {}
    for lyr in model.layers:
        k = 0
        for node in lyr._inbound_nodes:
            if id(node) in members or node.is_input:
                index[id(node)] = k
                k += 1
    out = []
    for node in layer._inbound_nodes:
        if id(node) not in members:
            continue
        for t in node.inputs:
            src, ni, ti = t._keras_history
            out.append(f"{src.name}[{index.get(id(src._inbound_nodes[ni]), 0)}][{ti}]")
    return out


def print_summary(model: Model, line_length: int | None = None, positions: Sequence[float] | None = None,
                  print_fn: Callable[..., Any] | None = None) -> None:
    """Prints one row per layer: name (type), output shape, parameter count, and for a
    functional model the tensors each layer reads ("Connected to"), one per line.

    Fields longer than their column are cut, as tf.keras 2 did, so rows never wrap.
    """
    from fastnet.models.sequential import Sequential

    if print_fn is None:
        print_fn = print
    functional = not isinstance(model, Sequential) and getattr(model, "_graph", None) is not None
    if functional:
        line_length = line_length or 98
        positions = positions or [0.33, 0.55, 0.67, 1.0]
    else:
        line_length = line_length or 65
        positions = positions or [0.45, 0.85, 1.0]
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]

    def row(fields):
        line = ""
        for i, field in enumerate(fields):
            if i > 0:
                line = line[:-1] + " "
            line += str(field)
            line = line[:positions[i]]
            line += " " * (positions[i] - len(line))
        print_fn(line)

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    row(["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else []))
    print_fn("=" * line_length)
    layers = model.layers
    shapes = model._layer_output_shapes()
    for i, layer in enumerate(layers):
        params = layer.count_params() if layer.built else 0
        shape = shapes[i]
        if functional and type(layer).__name__ == "InputLayer":
            shape = [shape]
        fields = [f"{layer.name} ({type(layer).__name__})", _format_shape(shape), params]
        if functional:
            links = _connections(model, layer)
            row(fields + [links[0] if links else ""])
            for link in links[1:]:
                row(["", "", "", link])
        else:
            row(fields)
        print_fn("=" * line_length if i == len(layers) - 1 else "_" * line_length)
    if not layers:
        print_fn("=" * line_length)
    trainable = sum(v.size for v in model.trainable_weights)
    total = sum(v.size for v in model.weights)
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn("_" * line_length)
