"""The executor: runs a graph of layer calls forward, and backward in reverse.

A ``Graph`` is the nodes between some input tensors and some output tensors, in an
order where every node comes after the nodes that feed it. Each tensor gets a slot;
running the graph fills the slots from the inputs on. A ``RunState`` holds one
``CallContext`` per node for one run (a fit, a predict, one eager call): what each
call keeps for its backward pass, and its reused buffers. Two runs never share a
state, so predicting from several threads, or inside a callback during training,
cannot disturb another run.

Backward visits the nodes in reverse and adds gradients where a tensor feeds several
nodes. A layer called by several nodes (a shared layer) writes its weights' gradients
at each call; the executor keeps the sum. Nodes whose backward cannot reach a
trainable weight are skipped, and a node only computes its input gradient where
something before it needs one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.layers.base import CallContext, InputLayer
from fastnet.layers.graph import KerasTensor
from fastnet.utils import tree

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from fastnet.layers.base import Layer
    from fastnet.layers.graph import Node

__all__ = ["Graph", "RunState", "DeferredUpdates", "map_graph"]


class DeferredUpdates:
    """State updates (moving statistics) that wait until the optimizer has applied the
    step, so an interrupted step leaves the model as it was. Layers add
    ``[apply, value, reducible]`` entries (``value`` a tuple of arrays; ``reducible``:
    data-parallel training averages it over the processes first); the trainer applies them.
    ``sync`` is set by the trainer in data-parallel training: for a BatchNormalization
    layer, the helper that computes its statistics over every process's rows (or None)."""

    __slots__ = ("items", "sync")

    def __init__(self) -> None:
        self.items = []
        self.sync = None

    def add(self, apply: Any, value: Any, reducible: bool = True) -> None:
        self.items.append([apply, value, reducible])

    def commit(self) -> None:
        items, self.items = self.items, []
        for apply, value, _ in items:
            apply(value)


def map_graph(inputs: Sequence[KerasTensor], outputs: Sequence[KerasTensor]) -> tuple[list[Node], list[Layer]]:
    """The nodes that compute ``outputs`` from ``inputs`` in running order, and the
    graph's layers in Keras's order.

    As in Keras, a node's depth is its longest distance from an output, a layer takes
    the largest depth of its nodes, and both are listed by decreasing depth, ties broken
    by the order a depth-first walk from the outputs first meets them. That order is the
    order of ``model.layers`` and so of ``get_weights()``. Raises when an output depends on
    a tensor that is not computed from the inputs, naming it."""
    input_ids = {id(t) for t in inputs}
    finished, in_progress = set(), set()
    post_order, layer_index = [], {}
    for out in outputs:
        stack = [(out, 0)]
        while stack:
            t, phase = stack.pop()
            node = t.node
            if node is None:
                raise ValueError(f"The tensor {t!r} has no history: model outputs must be computed by layers "
                                 f"from the model's inputs")
            key = id(node)
            if phase == 0:
                if key in finished:
                    continue
                if key in in_progress:
                    raise ValueError(f'The graph has a cycle through layer "{node.layer.name}"')
                layer_index.setdefault(id(node.layer), (len(layer_index), node.layer))
                in_progress.add(key)
                stack.append((t, 1))
                if node.is_input and id(t) not in input_ids:
                    raise ValueError(
                        f"Graph disconnected: cannot obtain the value of the tensor {t!r} (input "
                        f'"{node.layer.name}") from the model\'s inputs {[i.name for i in inputs]}. '
                        f"Pass every keras.Input the outputs depend on to Model(inputs=...)")
                if not node.is_input and id(t) not in input_ids:
                    for parent in reversed(node.inputs):
                        stack.append((parent, 0))
            else:
                in_progress.discard(key)
                if key not in finished:
                    finished.add(key)
                    post_order.append(node)
    for t in inputs:
        node = t.node
        if node is not None and id(node.layer) not in layer_index:
            layer_index[id(node.layer)] = (-1, node.layer)
            post_order.insert(0, node)
    node_depth, layer_depth = {}, {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for t in node.inputs:
            parent = t.node
            if parent is not None:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    order = {id(n): i for i, n in enumerate(post_order)}
    nodes = sorted(post_order, key=lambda n: (-node_depth[id(n)], order[id(n)]))
    # Model inputs are fed, not run; other tensors a node reads must come from earlier nodes.
    run = [n for n in nodes if not (n.is_input or all(id(t) in input_ids for t in n.outputs))]
    layers = sorted(((layer_depth[k], idx, layer) for k, (idx, layer) in layer_index.items()),
                    key=lambda e: (-e[0], e[1]))
    return run, [layer for _, _, layer in layers]


class _Step:
    """A node prepared for running: slots of its inputs and outputs, and how to call it."""

    __slots__ = ("node", "layer", "in_slots", "out_slots", "single", "args", "kwargs", "training",
                 "n_out", "out_structure", "needs_backward", "need_dx", "shared", "takes_mask", "index",
                 "takes_training", "plan_dx", "act_reg", "adds_losses")

    def __init__(self, node, slot_of, index):
        self.node = node
        self.index = index
        self.layer = node.layer
        self.in_slots = [slot_of[id(t)] for t in node.inputs]
        self.out_slots = [slot_of[id(t)] for t in node.outputs]
        kwargs = dict(node.kwargs)
        self.training = kwargs.pop("training", None)
        if "mask" in kwargs and kwargs["mask"] is None:
            del kwargs["mask"]
        self.takes_mask = bool(getattr(node.layer, "_call_takes_mask", False))
        if self.takes_mask:
            kwargs.pop("mask", None)
        args = node.args
        self.single = (len(args) == 1 and isinstance(args[0], KerasTensor)
                       and not any(isinstance(t, KerasTensor) for t in tree.flatten(kwargs)))
        self.args = list(args)
        self.kwargs = kwargs
        self.n_out = len(node.outputs)
        self.out_structure = node.output_structure
        self.needs_backward = True
        self.need_dx = True
        self.shared = False
        reg = getattr(node.layer, "activity_regularizer", None)
        self.act_reg = reg if callable(reg) and not getattr(node.layer, "_applies_own_activity", False) else None
        self.adds_losses = self.act_reg is not None or bool(getattr(node.layer, "_adds_losses", False))

    def fill(self, values):
        """The call's arguments with the input slots' values in place of the tensors."""
        it = iter([values[s] for s in self.in_slots])

        def sub(v):
            return next(it) if isinstance(v, KerasTensor) else v
        args = tree.map_structure(sub, self.args)
        kwargs = tree.map_structure(sub, self.kwargs) if self.kwargs else {}
        return args, kwargs


class Graph:
    """The compiled form of a functional model: steps over tensor slots."""

    def __init__(self, inputs: Sequence[KerasTensor], outputs: Sequence[KerasTensor]) -> None:
        inputs, outputs = list(inputs), list(outputs)
        self.inputs, self.outputs = inputs, outputs
        nodes, self.layers = map_graph(inputs, outputs)
        slot_of = {}
        for t in inputs:
            slot_of.setdefault(id(t), len(slot_of))
        for node in nodes:
            for t in node.outputs:
                slot_of.setdefault(id(t), len(slot_of))
        self.n_slots = len(slot_of)
        self.input_slots = [slot_of[id(t)] for t in inputs]
        self.output_slots = [slot_of[id(t)] for t in outputs]
        self.steps = [_Step(node, slot_of, i) for i, node in enumerate(nodes)]
        self.nodes = nodes
        self.uses_masks = any(getattr(s.layer, "_produces_mask", False) for s in self.steps)
        # Consumers of each slot (nodes and model outputs).
        consumers = [0] * self.n_slots
        for st in self.steps:
            for s in st.in_slots:
                consumers[s] += 1
        for s in self.output_slots:
            consumers[s] += 1
        self.consumers = consumers
        counts = {}
        for st in self.steps:
            counts[id(st.layer)] = counts.get(id(st.layer), 0) + 1
        producer = {}
        for st in self.steps:
            for s in st.out_slots:
                producer[s] = st
            st.shared = counts[id(st.layer)] > 1
        self.producer = producer
        self._plan_backward()
        # The last step reading each slot, so predict can let go of activations early.
        last_use = {}
        for st in self.steps:
            for s in st.in_slots:
                last_use[s] = st.index
        keep = set(self.output_slots)
        self.free_after = [[] for _ in self.steps]
        for s, i in last_use.items():
            if s not in keep:
                self.free_after[i].append(s)
        self.relu_pool_pairs = self._find_relu_pool_pairs()
        self.relu_fusions = self._find_relu_fusions()
        self.linear = self._is_linear()
        self._plan_chain()

    def _is_linear(self):
        """A chain (Sequential's graph): one input, one output, each node reading only the
        node before it, with nothing but the tensor to pass. It runs without slots."""
        if len(self.inputs) != 1 or len(self.outputs) != 1 or self.uses_masks or not self.steps:
            return False
        prev = self.input_slots[0]
        for st in self.steps:
            if (not st.single or st.n_out != 1 or st.kwargs or st.shared
                    or st.adds_losses or st.in_slots[0] != prev
                    or (prev != self.input_slots[0] and self.consumers[prev] != 1)):
                return False
            prev = st.out_slots[0]
        return prev == self.output_slots[0]

    def _plan_chain(self):
        if not self.linear:
            return
        self._chain = [(st.layer, st.index) for st in self.steps]
        self._bw_chain = [(st.layer, st.index, st.need_dx) for st in reversed(self.steps) if st.needs_backward]
        self._bw_chain_dx = [(st.layer, st.index, True) for st in reversed(self.steps)]

    def _plan_backward(self):
        """Which nodes run backward and which of those compute their input gradient: with
        the inputs' gradients unwanted (training), only nodes with a trainable weight at or
        before them; with them wanted (a model nested in a trained graph), every node."""
        for want in (False, True):
            reach = {s: want for s in self.input_slots}
            for st in self.steps:
                upstream = any(reach.get(s, False) for s in st.in_slots)
                needs = bool(st.layer.trainable_weights) or upstream
                if want:
                    st.plan_dx = (needs, upstream)
                else:
                    st.needs_backward, st.need_dx = needs, upstream
                for s in st.out_slots:
                    reach[s] = needs

    def replan(self) -> None:
        """Recomputes the backward plan (after a layer's ``trainable`` changed)."""
        self._plan_backward()
        self._plan_chain()

    def _find_relu_pool_pairs(self):
        """(convolution, max pooling) steps where the pooling alone reads the ReLU
        convolution's output: the pooling then applies the ReLU's derivative in its
        backward pass and the convolution skips its own (see
        ``fastnet.layers.pooling.BasePooling``)."""
        try:
            from fastnet.layers.convolutional import BaseConv
            from fastnet.layers.pooling import BasePooling
        except ImportError:  # pragma: no cover
            return []
        pairs = []
        for st in self.steps:
            layer = st.layer
            if not (isinstance(layer, BasePooling) and layer._mode == "max" and st.single):
                continue
            src = self.producer.get(st.in_slots[0])
            if src is None or self.consumers[st.in_slots[0]] != 1 or src.n_out != 1:
                continue
            conv = src.layer
            if (isinstance(conv, BaseConv) and conv.activation.fused and conv.activation.fn.name == "relu"
                    and src.single):
                pairs.append((src.index, st.index))
        return pairs

    def _find_relu_fusions(self):
        """(producer, ReLU) steps where a plain ReLU (``ReLU()`` or ``Activation("relu")``)
        alone reads the output of a BatchNormalization or an Add: the producer applies
        the ReLU in its own pass over the data (and its derivative in its backward), and
        the ReLU's call passes through. This saves a read and a write of the tensor each
        way, the pattern of every residual network."""
        try:
            from fastnet.layers.merging import Add
            from fastnet.layers.normalization import BatchNormalization
        except ImportError:  # pragma: no cover
            return []
        producers = {BatchNormalization: BatchNormalization.forward, Add: Add.forward}
        pairs = []
        for st in self.steps:
            relu = st.layer
            plain = getattr(relu, "_is_plain_relu", None)
            if plain is None or not st.single or st.kwargs or st.act_reg is not None or not plain():
                continue
            slot = st.in_slots[0]
            src = self.producer.get(slot)
            if src is None or self.consumers[slot] != 1 or src.n_out != 1 or src.act_reg is not None:
                continue
            prod = src.layer
            kind = next((k for k in producers if isinstance(prod, k)), None)
            # The producer's own forward (a subclass overriding it is left alone).
            if kind is None or type(prod).forward is not producers[kind] or src.kwargs:
                continue
            pairs.append((src.index, st.index))
        return pairs

    # ------------------------------------------------------------------ running
    def new_state(self, record: bool, pooled: bool, defer: DeferredUpdates | None = None) -> RunState:
        return RunState(self, record, pooled, defer)

    def forward(self, state: RunState, inputs: Sequence[Any], training: bool) -> list[Any]:
        """Runs every node on ``inputs`` (one array per graph input, in order); returns the
        outputs, one per graph output."""
        if self.linear:
            x = inputs[0]
            for fwd, ctx in state.chain():
                x = fwd(ctx, x, training=training)
            return [x]
        values = [None] * self.n_slots
        for s, x in zip(self.input_slots, inputs):
            values[s] = x
        masks = [None] * self.n_slots if self.uses_masks else None
        ctxs = state.ctxs
        record = state.record
        free = None if record else self.free_after
        extra = 0.0
        for st in self.steps:
            ctx = ctxs[st.index]
            # As in Keras 3, the run's training flag is passed to every call, over a
            # ``training=`` recorded in the node.
            tr = training
            layer = st.layer
            if st.single:
                x = values[st.in_slots[0]]
                if masks is not None and st.takes_mask:
                    out = layer.forward(ctx, x, training=tr, mask=masks[st.in_slots[0]], **st.kwargs)
                elif st.kwargs:
                    out = layer.forward(ctx, x, training=tr, **st.kwargs)
                else:
                    out = layer.forward(ctx, x, training=tr)
            else:
                args, kwargs = st.fill(values)
                if masks is not None and st.takes_mask and st.in_slots:
                    kwargs["mask"] = masks[st.in_slots[0]]
                out = layer.forward(ctx, *args, training=tr, **kwargs)
                x = args[0] if args else None
            if st.n_out == 1:
                if isinstance(out, (list, tuple)) and len(out) == 1:
                    out = out[0]
                values[st.out_slots[0]] = out
            else:
                flat = tree.flatten(out)
                if len(flat) != st.n_out:
                    raise ValueError(f'Layer "{layer.name}" returned {len(flat)} outputs where its '
                                     f"symbolic call produced {st.n_out}")
                for s, v in zip(st.out_slots, flat):
                    values[s] = v
            if masks is not None:
                m_in = masks[st.in_slots[0]] if st.in_slots else None
                if m_in is not None or getattr(layer, "_produces_mask", False):
                    m = layer.compute_mask(x, m_in)
                    if st.n_out == 1:
                        masks[st.out_slots[0]] = m[0] if isinstance(m, (list, tuple)) else m
                    elif isinstance(m, (list, tuple)):
                        for s, mv in zip(st.out_slots, m):
                            masks[s] = mv
                    else:
                        masks[st.out_slots[0]] = m
            if st.adds_losses:
                extra += self._step_losses(st, ctx, out)
            if free is not None:
                for s in free[st.index]:
                    values[s] = None
        state.extra_loss = extra
        state.values = values if record else None
        state.masks = masks
        return [values[s] for s in self.output_slots]

    def backward(self, state: RunState, output_grads: Sequence[Any], need_input_grads: bool = True,
                 on_step_done: Any = None) -> list[Any]:
        """Runs backward from the gradients of the outputs (None where an output has
        none); returns the gradients of the inputs (None where nothing reaches them)."""
        if self.linear:
            dy = output_grads[0]
            if dy is None:
                return [None]
            if on_step_done is None:
                for bwd, ctx, need_dx in state.bw_chain(need_input_grads):
                    ctx.need_dx = need_dx
                    dy = bwd(ctx, dy)
                return [dy if need_input_grads else None]
            ctxs = state.ctxs
            for layer, i, need_dx in (self._bw_chain_dx if need_input_grads else self._bw_chain):
                ctx = ctxs[i]
                ctx.need_dx = need_dx
                dy = layer.backward(ctx, dy)
                on_step_done(self.steps[i])
            return [dy if need_input_grads else None]
        grads = [None] * self.n_slots
        owned = state.owned
        owned.clear()
        for s, g in zip(self.output_slots, output_grads):
            if g is not None:
                self._accumulate(grads, owned, state, s, g)
        ctxs = state.ctxs
        seen_shared = None
        for st in reversed(self.steps):
            needs, need_dx = st.plan_dx if need_input_grads else (st.needs_backward, st.need_dx)
            if not needs:
                continue
            if st.n_out == 1:
                dy = grads[st.out_slots[0]]
                if dy is None:
                    continue
            else:
                dy = [grads[s] for s in st.out_slots]
                if all(d is None for d in dy):
                    continue
                dy = tree.pack_sequence_as(st.out_structure, dy)
            ctx = ctxs[st.index]
            ctx.need_dx = need_dx
            layer = st.layer
            if st.act_reg is not None:
                dy = self._activity_grad(st, ctx, dy)
            if st.shared:
                if seen_shared is None:
                    seen_shared = set()
                if id(layer) in seen_shared:
                    saved = [(v, v.grad.copy()) for v in layer.trainable_weights if v.grad is not None]
                    dx = layer.backward(ctx, dy)
                    for v, g in saved:
                        v.grad += g
                else:
                    seen_shared.add(id(layer))
                    dx = layer.backward(ctx, dy)
            else:
                dx = layer.backward(ctx, dy)
            if on_step_done is not None:
                on_step_done(st)
            if not need_dx or dx is None:
                continue
            if len(st.in_slots) == 1:
                if isinstance(dx, (list, tuple)):
                    dx = dx[0]
                if dx is not None:
                    self._accumulate(grads, owned, state, st.in_slots[0], dx)
            else:
                flat = dx if isinstance(dx, list) and len(dx) == len(st.in_slots) else tree.flatten(dx)
                for s, d in zip(st.in_slots, flat):
                    if d is not None:
                        self._accumulate(grads, owned, state, s, d)
        return [grads[s] for s in self.input_slots]

    @staticmethod
    def _step_losses(st, ctx, out):
        """Losses a call adds: its layer's activity regularizer on each output, divided by
        the batch size (Keras's activity_regularizer), and what the layer put in
        ``ctx.losses`` (a nested model's own, ActivityRegularization's)."""
        total = 0.0
        if st.act_reg is not None:
            outs = tree.flatten(out)
            ctx.act_out = outs
            for o in outs:
                if isinstance(o, np.ndarray) and o.dtype.kind == "f":
                    batch = o.shape[0] if o.ndim and o.shape[0] else 1
                    total += float(st.act_reg(o)) / batch
        losses = ctx.__dict__.get("losses")
        if losses:
            total += float(sum(float(v) for v in losses))
        return total

    @staticmethod
    def _activity_grad(st, ctx, dy):
        outs = ctx.__dict__.get("act_out")
        if not outs:
            return dy
        flat = [dy] if st.n_out == 1 else tree.flatten(dy)
        grads = []
        for g, o in zip(flat, outs):
            if g is None or not isinstance(o, np.ndarray) or o.dtype.kind != "f":
                grads.append(g)
                continue
            batch = o.shape[0] if o.ndim and o.shape[0] else 1
            grads.append(np.asarray(g) + st.act_reg.gradient(o).astype(o.dtype) / o.dtype.type(batch))
        return grads[0] if st.n_out == 1 else tree.pack_sequence_as(st.out_structure, grads)

    def _accumulate(self, grads, owned, state, slot, g):
        cur = grads[slot]
        if cur is None:
            grads[slot] = g
            return
        if slot in owned:
            cur += g
            return
        buf = state.grad_buf(slot, np.broadcast_shapes(np.shape(cur), np.shape(g)),
                             np.result_type(cur, g))
        np.add(cur, g, out=buf)
        grads[slot] = buf
        owned.add(slot)


class RunState:
    """One run of a graph: a ``CallContext`` per node, and buffers for summed gradients."""

    __slots__ = ("graph", "ctxs", "record", "pool", "owned", "values", "masks", "defer", "extra_loss", "_chains")

    def __init__(self, graph: Graph, record: bool, pooled: bool, defer: DeferredUpdates | None = None) -> None:
        self.graph = graph
        self.record = record
        self.ctxs = [CallContext(record, pooled) for _ in graph.steps]
        self.pool = {} if pooled else None
        self.owned = set()
        self.values = None
        self.masks = None
        self.extra_loss = 0.0
        self._chains = None
        self.defer = defer
        if defer is not None:
            for c in self.ctxs:
                c.defer_updates = defer
        if record:
            for a, b in graph.relu_pool_pairs:
                self.ctxs[a].act_grad_in_dy = True
                self.ctxs[b].relu_input = True
        for a, b in graph.relu_fusions:
            self.ctxs[a].fuse_relu = True
            self.ctxs[b].relu_done = True

    def chain(self):
        """A chain's (bound forward, context) pairs, made once per state (the plan of
        ``Graph.replan`` is read when they are made)."""
        c = self._chains
        if c is None or c[0] is not self.graph._chain:
            g = self.graph
            c = self._chains = (g._chain, [(layer.forward, self.ctxs[i]) for layer, i in g._chain], {})
        return c[1]

    def bw_chain(self, need_input_grads):
        c = self._chains
        if c is None or c[0] is not self.graph._chain:
            self.chain()
            c = self._chains
        plan = self.graph._bw_chain_dx if need_input_grads else self.graph._bw_chain
        got = c[2].get(need_input_grads)
        if got is None or got[0] is not plan:
            got = c[2][need_input_grads] = (plan, [(layer.backward, self.ctxs[i], ndx) for layer, i, ndx in plan])
        return got[1]

    def set_record(self, record: bool) -> None:
        self.record = record
        for c in self.ctxs:
            c.record = record

    def grad_buf(self, slot, shape, dtype):
        if self.pool is None:
            return np.empty(shape, dtype)
        k = (slot, shape, dtype)
        b = self.pool.get(k)
        if b is None:
            b = self.pool[k] = np.empty(shape, dtype)
        return b


def is_input_layer(layer: Layer) -> bool:
    return isinstance(layer, InputLayer)
