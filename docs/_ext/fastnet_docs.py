"""Sphinx directives for fastnet's docs.

``.. layer-shapes::`` builds a table of layers with the shape each takes and gives,
by running every layer on an array of zeros while the docs build, so the table
cannot drift from the code. Each line of its content is ``LAYER :: INPUT_SHAPE``,
where ``LAYER`` is a constructor call evaluated with ``fastnet.layers``' names in
scope and ``INPUT_SHAPE`` a tuple (the batch size included)::

    .. layer-shapes::

       Dense(4) :: (32, 16)
       Conv2D(8, 3, padding="same") :: (32, 28, 28, 3)
"""
import ast

import numpy as np
from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.errors import ExtensionError


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def layer_shape_rows(lines):
    """``(layer expression, input shape, output shape)`` for each ``LAYER :: SHAPE`` line."""
    import fastnet.layers as L

    scope = {name: getattr(L, name) for name in L.__all__}
    rows = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if "::" not in line:
            raise ExtensionError(f"layer-shapes: expected 'LAYER :: INPUT_SHAPE', received {line!r}")
        expr, shape_text = (part.strip() for part in line.rsplit("::", 1))
        shape = tuple(ast.literal_eval(shape_text))
        layer = eval(expr, {"__builtins__": {}}, scope)  # noqa: S307 - the docs' own text
        out = layer(np.zeros(shape, dtype=np.float32))
        outs = out if isinstance(out, (list, tuple)) else [out]
        rows.append((expr, _shape_text(shape), ", ".join(_shape_text(o.shape) for o in outs)))
    return rows


class LayerShapes(Directive):
    has_content = True
    option_spec = {"caption": directives.unchanged}

    def run(self):
        try:
            rows = layer_shape_rows(self.content)
        except Exception as e:  # a layer that fails to run fails the docs build
            raise self.error(f"layer-shapes: {type(e).__name__}: {e}") from e
        table = nodes.table(classes=["layer-shapes"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (55, 22, 23):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += self._row(["Layer", "Input shape", "Output shape"], literal=False)
        body = nodes.tbody()
        group += body
        for row in rows:
            body += self._row(row, literal=True)
        if "caption" in self.options:
            table.insert(0, nodes.title(text=self.options["caption"]))
        return [table]

    @staticmethod
    def _row(cells, literal):
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            para = nodes.paragraph()
            para += nodes.literal(text=text) if literal else nodes.Text(text)
            entry += para
            row += entry
        return row


def setup(app):
    app.add_directive("layer-shapes", LayerShapes)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
