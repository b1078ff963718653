"""Reverse-mode differentiation of code written with ``fastnet.ops``.

A :class:`Tape` records, while it is active on the current thread, every op applied
to a value it traces: one small record per op holding the op's vector-Jacobian
product and only the arrays that product needs. ``tape.gradient`` then walks the
records backwards::

    from fastnet import ops
    from fastnet.ops import autodiff

    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x)
        out = ops.sum(ops.tanh(tx @ w))
    (dx,), _ = tape.gradient(out, 1.0, inputs=[tx])

Values inside the tape are :class:`Tracer` objects: they carry a concrete numpy array
(``.value``), so Python control flow on them works as on arrays (the recording is
per call, eager). A :class:`fastnet.backend.Variable` used in an op while a tape is
active becomes a leaf of that tape; ``tape.gradient(..., variables=[v])`` gives its
gradient. Reading ``v.value`` instead gives a constant (no gradient).

Tapes nest: an op records on the innermost active tape that owns one of its traced
inputs; values of other tapes count as constants there.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from fastnet.backend import Variable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["GradientTape", "Tape", "Tracer", "Recording", "unwrap", "is_traced", "apply", "record", "record_layer",
           "call_recorded", "call_replayed", "note_escape", "active_tape", "value_of"]

_TLS = threading.local()


def _stack():
    s = getattr(_TLS, "stack", None)
    if s is None:
        s = _TLS.stack = []
    return s


def active_tape() -> Tape | None:
    """The innermost tape recording on this thread, or None."""
    s = getattr(_TLS, "stack", None)
    return s[-1] if s else None


class Tape:
    """Records ops on traced values while active (``with tape:``) on this thread.

    Args:
        persistent: keep the records after :meth:`gradient` so that it can be called
            again (default True; call :meth:`release` to drop them early).
    """

    __slots__ = ("_nodes", "_n", "_leaves", "_depth", "persistent", "_log", "_why", "__weakref__")

    def __init__(self, persistent: bool = True) -> None:
        self._nodes = []      # (out_ids, in_ids, vjp, residual)
        self._n = 0           # ids handed out so far
        self._leaves = {}     # id(Variable) -> (Variable, Tracer)
        self._depth = -1      # position in this thread's stack while active
        self.persistent = persistent
        self._log = None      # while a call is traced for replay: how each record was made
        self._why = None      # why that trace cannot be replayed (None: it can)

    # ------------------------------------------------------------------ activation
    def __enter__(self) -> Tape:
        s = _stack()
        if self._depth >= 0:
            raise RuntimeError("This Tape is already active; tapes nest, but one tape is entered once at a time")
        self._depth = len(s)
        s.append(self)
        return self

    def __exit__(self, *exc) -> None:
        s = _stack()
        if s and s[-1] is self:
            s.pop()
        else:  # exited out of order: remove it wherever it is
            try:
                s.remove(self)
            except ValueError:
                pass
        self._depth = -1

    @property
    def active(self) -> bool:
        return self._depth >= 0

    # ------------------------------------------------------------------ leaves
    def _new(self, value):
        i = self._n
        self._n = i + 1
        return Tracer(value, self, i)

    def watch(self, x: Any) -> Tracer:
        """A traced value for ``x`` (an array, a Variable, or a value of this tape)."""
        if type(x) is Tracer and x._tape is self:
            return x
        if isinstance(x, Variable):
            return self._leaf(x)
        if type(x) is Tracer:
            x = x.value
        return self._new(x if type(x) is np.ndarray else np.asarray(x))

    def _leaf(self, var):
        entry = self._leaves.get(id(var))
        if entry is None:
            t = self._new(var.value)
            self._leaves[id(var)] = (var, t)
            return t
        return entry[1]

    def leaf(self, var: Variable) -> Tracer | None:
        """The traced value of ``var`` on this tape, or None when the tape never read it."""
        entry = self._leaves.get(id(var))
        return None if entry is None else entry[1]

    @property
    def watched_variables(self) -> list[Variable]:
        """The Variables read by ops on this tape, in first-read order."""
        return [v for v, _ in self._leaves.values()]

    def release(self) -> None:
        """Drops every record (and the arrays they hold)."""
        self._nodes = []
        self._leaves = {}

    # ------------------------------------------------------------------ backward
    def gradient(self, outputs: Any, cotangents: Any = None, inputs: Sequence[Any] = (),
                 variables: Sequence[Variable] = (), unconnected: str = "zero") -> tuple[list, list]:
        """Vector-Jacobian products of ``outputs`` (any nesting of lists/tuples/dicts).

        Args:
            outputs: traced values (entries that are not traced by this tape are ignored).
            cotangents: the same structure as ``outputs`` with one array (or scalar, or None)
                per entry; None for all gives ones (the gradient of the sum).
            inputs: traced values of this tape (usually from :meth:`watch`).
            variables: Variables; their leaves on this tape.
            unconnected: ``"zero"`` gives zeros for inputs/variables the outputs do not
                depend on, ``"none"`` gives None.

        Returns:
            (grads of inputs, grads of variables): two lists; integer and boolean inputs
            get None.
        """
        if unconnected not in ("zero", "none"):
            raise ValueError(f"unconnected must be 'zero' or 'none', received {unconnected!r}")
        outs = _flatten(outputs)
        if cotangents is None:
            cots = [None] * len(outs)
        else:
            cots = _flatten(cotangents)
            if len(cots) == 1 and len(outs) > 1 and not isinstance(cotangents, (list, tuple, dict)):
                cots = cots * len(outs)
            if len(cots) != len(outs):
                raise ValueError(f"Tape.gradient: {len(outs)} outputs but {len(cots)} cotangents")
        grads = {}
        for o, c in zip(outs, cots):
            if type(o) is not Tracer or o._tape is not self:
                continue
            if c is None:
                if cotangents is not None:
                    continue
                c = np.ones_like(o.value)
            else:
                c = np.asarray(c, dtype=o.value.dtype) if not isinstance(c, np.ndarray) or c.dtype != o.value.dtype \
                    else c
                if c.shape != o.value.shape:
                    c = np.broadcast_to(c, o.value.shape)
            _acc(grads, o._id, c)
        wanted = set()
        in_ids = []
        for t in inputs:
            orig = t
            if isinstance(t, Variable):
                t = self.leaf(t)
            i = t._id if type(t) is Tracer and t._tape is self else None
            in_ids.append((i, orig if t is None else t))
            if i is not None:
                wanted.add(i)
        var_ids = []
        for v in variables:
            t = self.leaf(v)
            i = None if t is None else t._id
            var_ids.append((i, v))
            if i is not None:
                wanted.add(i)
        if grads:
            lo = min(wanted) if wanted else 0
            for out_ids, ids, vjp, res in reversed(self._nodes):
                if type(out_ids) is int:
                    if out_ids < lo:
                        break
                    g = grads.get(out_ids) if out_ids in wanted else grads.pop(out_ids, None)
                    if g is None:
                        continue
                else:
                    if out_ids[-1] < lo:
                        break
                    g = [grads.get(k) if k in wanted else grads.pop(k, None) for k in out_ids]
                    if all(x is None for x in g):
                        continue
                gs = vjp(g, res)
                for i, gi in zip(ids, gs):
                    if i >= 0 and gi is not None:
                        _acc(grads, i, gi)
        if not self.persistent:
            self.release()
        return ([_result(grads, i, t, unconnected) for i, t in in_ids],
                [_result(grads, i, v, unconnected) for i, v in var_ids])


def _result(grads, i, t, unconnected):
    value = t.value if isinstance(t, (Tracer, Variable)) else np.asarray(t)
    if value.dtype.kind not in "fc":
        return None
    g = grads.get(i) if i is not None else None
    if g is None:
        return np.zeros_like(value) if unconnected == "zero" else None
    if g.dtype != value.dtype:
        g = g.astype(value.dtype)
    if g.shape != value.shape:
        g = _unbroadcast(g, value.shape)
    return g


def _acc(grads, i, g):
    old = grads.get(i)
    grads[i] = g if old is None else old + g


def _unbroadcast(g, shape):
    """Sums g over the axes that broadcasting added or stretched to reach g.shape from shape."""
    if g.shape == shape:
        return g
    nd = g.ndim - len(shape)
    if nd > 0:
        g = g.sum(axis=tuple(range(nd)))
    axes = tuple(i for i, (a, b) in enumerate(zip(shape, g.shape)) if a == 1 and b != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _flatten(x):
    if isinstance(x, (list, tuple)):
        out = []
        for e in x:
            out.extend(_flatten(e))
        return out
    if isinstance(x, dict):
        out = []
        for k in sorted(x, key=str):
            out.extend(_flatten(x[k]))
        return out
    return [x]


# ---------------------------------------------------------------------------- traced values

class Tracer:
    """A value recorded on a :class:`Tape`: a numpy array (``.value``) plus its place
    on the tape. Supports Python's operators, indexing, ``.shape``/``.dtype``/``.ndim``,
    ``.T``, ``len``, iteration over axis 0, the numpy ufuncs and common numpy functions
    (dispatched to ``fastnet.ops``); ``np.asarray(t)`` gives the array (untracked)."""

    __slots__ = ("value", "_tape", "_id")
    __array_priority__ = 1000

    def __init__(self, value: np.ndarray, tape: Tape, i: int) -> None:
        self.value = value
        self._tape = tape
        self._id = i

    # ---- array-like attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def size(self) -> int:
        return self.value.size

    @property
    def T(self) -> Tracer:  # noqa: N802
        return _np().transpose(self)

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self):
        for i in range(len(self.value)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        if self._tape._log is not None:
            _escape(self._tape, "a traced value was converted to a numpy array")
        return self.value if dtype is None else self.value.astype(dtype)

    def numpy(self) -> np.ndarray:
        if self._tape._log is not None:
            _escape(self._tape, "numpy() was called on a traced value")
        return self.value.copy()

    def __bool__(self) -> bool:
        if self._tape._log is not None:
            _escape(self._tape, "Python branched on a traced value")
        return bool(self.value)

    def __float__(self) -> float:
        if self._tape._log is not None:
            _escape(self._tape, "float() was called on a traced value")
        return float(self.value)

    def __int__(self) -> int:
        if self._tape._log is not None:
            _escape(self._tape, "int() was called on a traced value")
        return int(self.value)

    def __index__(self) -> int:
        if self._tape._log is not None:
            _escape(self._tape, "a traced value was used as an index")
        return int(self.value)

    def __repr__(self):
        return f"<Tracer shape={self.value.shape} dtype={self.value.dtype}>\n{self.value!r}"

    __hash__ = object.__hash__

    # ---- numpy-style methods
    def reshape(self, *shape) -> Tracer:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _np().reshape(self, shape)

    def astype(self, dtype) -> Any:
        return _np().cast(self, dtype)

    def transpose(self, *axes) -> Tracer:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return _np().transpose(self, axes or None)

    def sum(self, axis=None, keepdims=False, **kw) -> Tracer:
        return _np().sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, **kw) -> Tracer:
        return _np().mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False, **kw) -> Tracer:
        return _np().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False, **kw) -> Tracer:
        return _np().min(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False, **kw) -> Tracer:
        return _np().prod(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, **kw) -> Tracer:
        return _np().var(self, axis=axis, keepdims=keepdims)

    def std(self, axis=None, keepdims=False, **kw) -> Tracer:
        return _np().std(self, axis=axis, keepdims=keepdims)

    def squeeze(self, axis=None) -> Tracer:
        return _np().squeeze(self, axis=axis)

    def ravel(self) -> Tracer:
        return _np().reshape(self, (-1,))

    flatten = ravel

    def clip(self, min=None, max=None) -> Tracer:  # noqa: A002
        return _np().clip(self, min, max)

    def dot(self, other) -> Tracer:
        return _np().dot(self, other)

    def argmax(self, axis=None) -> np.ndarray:
        return np.argmax(value_of(self), axis=axis)

    def backward(self, *args, **kwargs):
        raise TypeError("Traced fastnet values have no backward() (that is PyTorch's autograd): record the "
                        "computation in `with fastnet.GradientTape() as tape:` and call "
                        "`tape.gradient(loss, variables)`")

    def argmin(self, axis=None) -> np.ndarray:
        return np.argmin(value_of(self), axis=axis)

    # ---- operators
    def __add__(self, o):
        return _np().add(self, o)

    def __radd__(self, o):
        return _np().add(o, self)

    def __sub__(self, o):
        return _np().subtract(self, o)

    def __rsub__(self, o):
        return _np().subtract(o, self)

    def __mul__(self, o):
        return _np().multiply(self, o)

    def __rmul__(self, o):
        return _np().multiply(o, self)

    def __truediv__(self, o):
        return _np().divide(self, o)

    def __rtruediv__(self, o):
        return _np().divide(o, self)

    def __floordiv__(self, o):
        return _np().floor_divide(self, o)

    def __rfloordiv__(self, o):
        return _np().floor_divide(o, self)

    def __mod__(self, o):
        return _np().mod(self, o)

    def __rmod__(self, o):
        return _np().mod(o, self)

    def __pow__(self, o):
        return _np().power(self, o)

    def __rpow__(self, o):
        return _np().power(o, self)

    def __matmul__(self, o):
        return _np().matmul(self, o)

    def __rmatmul__(self, o):
        return _np().matmul(o, self)

    def __neg__(self):
        return _np().negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _np().abs(self)

    def __eq__(self, o):
        return _np().equal(self, o)

    def __ne__(self, o):
        return _np().not_equal(self, o)

    def __lt__(self, o):
        return _np().less(self, o)

    def __le__(self, o):
        return _np().less_equal(self, o)

    def __gt__(self, o):
        return _np().greater(self, o)

    def __ge__(self, o):
        return _np().greater_equal(self, o)

    def __invert__(self):
        return _np().logical_not(self) if self.value.dtype == np.bool_ else ~value_of(self)

    def __and__(self, o):
        return np.asarray(value_of(self)) & value_of(o)

    def __or__(self, o):
        return np.asarray(value_of(self)) | value_of(o)

    def __getitem__(self, idx):
        return _np().get_item(self, idx)

    def __setitem__(self, idx, v):
        raise TypeError("Traced values are immutable: use ops.slice_update, ops.scatter_update or ops.where "
                        "instead of item assignment")

    # ---- numpy protocols: route to fastnet.ops so that gradients flow
    def __array_ufunc__(self, ufunc, method, *args, **kwargs):
        from fastnet.ops import _numpy_dispatch

        return _numpy_dispatch.ufunc(ufunc, method, args, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from fastnet.ops import _numpy_dispatch

        return _numpy_dispatch.function(func, args, kwargs)


_NP = None


def _np():
    global _NP
    if _NP is None:
        from fastnet.ops import numpy as m
        _NP = m
    return _NP


# ---------------------------------------------------------------------------- helpers

def value_of(x: Any) -> Any:
    """The array behind a Tracer or Variable; anything else unchanged. (Reading a traced
    value this way makes a call being traced for replay run eagerly instead: what is
    computed from the array is not recorded.)"""
    t = type(x)
    if t is Tracer:
        if x._tape._log is not None:
            _escape(x._tape, "a traced value was read as an array (an op without a gradient, or numpy)")
        return x.value
    if t is Variable or isinstance(x, Variable):
        if getattr(_TLS, "stack", None):
            note_escape(f"variable '{x.path}' was read outside the ops (its value would be fixed by a replay)")
        return x.value
    return x


def is_traced(x: Any) -> bool:
    """Whether x is a value recorded on an active tape."""
    return type(x) is Tracer and x._tape._depth >= 0


def unwrap(x: Any) -> Any:
    """The same structure with Tracers and Variables replaced by their arrays."""
    t = type(x)
    if t is Tracer:
        return value_of(x)
    if t is list:
        return [unwrap(e) for e in x]
    if t is tuple:
        return tuple(unwrap(e) for e in x)
    if t is dict:
        return {k: unwrap(v) for k, v in x.items()}
    if isinstance(x, Variable):
        return x.value
    return x


def _tape_for(args):
    """The tape an op on ``args`` records on (None: compute eagerly)."""
    s = getattr(_TLS, "stack", None)
    if not s:
        return None
    best = None
    var = False
    for a in args:
        t = type(a)
        if t is Tracer:
            tp = a._tape
            if tp._depth >= 0 and (best is None or tp._depth > best._depth):
                best = tp
        elif t is Variable or (t is not np.ndarray and isinstance(a, Variable)):
            var = True
    if best is None and var:
        best = s[-1]
    return best


def apply(fwd: Callable[..., Any], bwd: Callable[..., Any], args: Sequence[Any], nout: int = 0,
          need: bool = False) -> Any:
    """Runs one differentiable op.

    Args:
        fwd: ``fwd(*arrays) -> (out, residual)``: the op on numpy arrays (Variables and
            Tracers replaced by their values); ``residual`` is what ``bwd`` needs.
        bwd: ``bwd(g, residual) -> tuple of gradients``, one per entry of ``args`` (None
            where there is none); ``g`` is the output's cotangent (a list of them, None
            for outputs without one, when ``nout`` > 0).
        args: the op's array arguments (arrays, Tracers, Variables, scalars).
        nout: 0 for one output array; n for a tuple of n outputs.
        need: when true, ``fwd`` receives one more argument: None when nothing is
            recorded, else a tuple of booleans saying which arguments will want a
            gradient, so that it keeps only what those gradients need (and ``bwd``
            can skip the others).

    Returns:
        The output (a Tracer when recorded, an array otherwise).
    """
    s = getattr(_TLS, "stack", None)
    if s and len(s) == 1:
        # the common case, one active tape: a single pass over the arguments
        tape = s[0]
        ids = []
        vals = []
        hit = False
        for a in args:
            t = type(a)
            if t is Tracer:
                vals.append(a.value)
                if a._tape is tape:
                    ids.append(a._id)
                    hit = True
                else:
                    ids.append(-1)
            elif t is np.ndarray or not isinstance(a, Variable):
                vals.append(a)
                ids.append(-1)
            else:
                e = tape._leaves.get(id(a))
                leaf = tape._leaf(a) if e is None else e[1]
                vals.append(leaf.value)
                ids.append(leaf._id)
                hit = True
        if not hit:
            stacked = _stack_lists(args)
            if stacked is not None:
                return apply(fwd, bwd, stacked, nout, need)
            if need:
                vals.append(None)
            return fwd(*vals)[0]
        if tape._log is not None:
            consts = [v if i < 0 else None for i, v in zip(ids, vals)]
        if need:
            vals.append(tuple([i >= 0 for i in ids]))
        out, res = fwd(*vals)
        if nout:
            out = _emit(tape, out, ids, bwd, res, nout)
            if tape._log is not None:
                tape._log.append((0, fwd, bwd, ids, consts, nout, need, tape._nodes[-1][0]))
            return out
        i = tape._n     # (_emit for one output, inline: at least one id is traced here)
        tape._n = i + 1
        tape._nodes.append((i, ids, bwd, res))
        if tape._log is not None:
            tape._log.append((0, fwd, bwd, ids, consts, 0, need, i))
        return Tracer(out, tape, i)
    stacked = _stack_lists(args)
    if stacked is not None:
        return apply(fwd, bwd, stacked, nout, need)
    tape = _tape_for(args) if s else None
    if tape is None:
        vals = [_val(a) for a in args]
        if need:
            vals.append(None)
        return fwd(*vals)[0]
    ids = []
    vals = []
    for a in args:
        t = type(a)
        if t is Tracer:
            vals.append(a.value)
            ids.append(a._id if a._tape is tape else -1)
        elif t is not np.ndarray and isinstance(a, Variable):
            leaf = tape._leaf(a)
            vals.append(leaf.value)
            ids.append(leaf._id)
        else:
            vals.append(a)
            ids.append(-1)
    if need:
        vals.append(tuple(i >= 0 for i in ids))
    out, res = fwd(*vals)
    if tape._log is not None:
        _escape(tape, "an op read values of two tapes")
    return _emit(tape, out, ids, bwd, res, nout)


def _stack_lists(args):
    """``args`` with each list of traced values (given where an array goes, as in
    ``ops.sum(model.losses)``) stacked with its gradient; None when there is none."""
    for a in args:
        t = type(a)
        if (t is list or t is tuple) and a and any(type(e) is Tracer for e in a):
            return [_np().stack(list(e)) if (type(e) is list or type(e) is tuple) and any(
                type(v) is Tracer for v in e) else e for e in args]
    return None


def _emit(tape, out, ids, bwd, res, nout):
    if max(ids) < 0:
        return out
    if nout:
        outs = tuple(tape._new(o) for o in out)
        tape._nodes.append((tuple(o._id for o in outs), ids, bwd, res))
        return outs
    i = tape._n
    tape._n = i + 1
    tape._nodes.append((i, ids, bwd, res))
    return Tracer(out, tape, i)


def record(outputs: Any, inputs: Sequence[Any], vjp: Callable[..., Any]) -> Any:
    """Records an op computed outside fastnet.ops (a layer's hand-written forward).

    Args:
        outputs: the op's output array, or a tuple/list of arrays.
        inputs: its array arguments as the caller has them (Tracers, Variables, arrays).
        vjp: ``vjp(g) -> sequence of gradients`` aligned with ``inputs`` (None allowed);
            ``g`` is one array (single output) or a list with None for outputs
            without a cotangent.

    Returns:
        ``outputs`` as traced values when an active tape traces one of the inputs,
        else unchanged.
    """
    tape = _tape_for(inputs)
    if tape is None:
        return outputs
    if tape._log is not None:
        _escape(tape, "a layer with its own backward pass (or a hand-recorded op) ran inside call()")
    ids = []
    for a in inputs:
        if type(a) is Tracer:
            ids.append(a._id if a._tape is tape else -1)
        elif isinstance(a, Variable):
            ids.append(tape._leaf(a)._id)
        else:
            ids.append(-1)
    multi = isinstance(outputs, (list, tuple))
    n = len(outputs) if multi else 0
    out = _emit(tape, tuple(outputs) if multi else outputs, ids, lambda g, _: vjp(g), None, n)
    if multi and isinstance(outputs, list) and type(out) is tuple:
        out = list(out)
    return out


def _val(a):
    t = type(a)
    if t is Tracer:
        return a.value
    if t is not np.ndarray and isinstance(a, Variable):
        return a.value
    return a


# ---------------------------------------------------------------------------- helpers for layers

def _tree_map(fn, x):
    t = type(x)
    if t is list:
        return [_tree_map(fn, e) for e in x]
    if t is tuple:
        return tuple(_tree_map(fn, e) for e in x)
    if t is dict:
        return {k: _tree_map(fn, v) for k, v in x.items()}
    return fn(x)


class Recording:
    """One recorded call of a function written with ops (see :func:`call_recorded`)."""

    __slots__ = ("tape", "inputs", "outputs")

    def __init__(self, tape: Tape, inputs: list, outputs: Any) -> None:
        self.tape = tape
        self.inputs = inputs      # the traced inputs, flattened
        self.outputs = outputs    # the traced outputs, as the function returned them

    def backward(self, dy: Any, variables: Sequence[Variable] = (), need_dx: bool = True,
                 release: bool = True, added: Sequence[Any] = ()) -> tuple[list, list]:
        """(gradients of the flattened inputs, gradients of ``variables``) for the
        cotangent ``dy`` (the structure of the outputs; None entries allowed). Input
        gradients are None when ``need_dx`` is false or the input is not a float array;
        a variable the call never read gets zeros. ``added``: scalar values of this
        recording (losses the call added) that enter the total loss with weight 1."""
        out = self.outputs
        if (not added and type(out) is Tracer and type(dy) is np.ndarray and out._tape is self.tape
                and dy.shape == out.value.shape and dy.dtype == out.value.dtype):
            return self._backward_one(dy, variables, need_dx, release)
        ins = self.inputs if need_dx else []
        if added:
            gi, gv = self.tape.gradient([self.outputs, list(added)], [dy, [1.0] * len(added)], inputs=ins,
                                        variables=variables)
        else:
            gi, gv = self.tape.gradient(self.outputs, dy, inputs=ins, variables=variables)
        if not need_dx:
            gi = [None] * len(self.inputs)
        if release:
            self.tape.release()
        return gi, gv


    def _backward_one(self, dy, variables, need_dx, release):
        """:meth:`backward` for one output array and its cotangent (the common case of a
        layer's call): the reverse sweep alone, without the general entry checks."""
        tape = self.tape
        leaves = tape._leaves
        var_ids = [-1 if e is None else e[1]._id for e in [leaves.get(id(v)) for v in variables]]
        nodes = tape._nodes
        oid = self.outputs._id
        if len(nodes) == 1 and (nodes[0][0] if type(nodes[0][0]) is int else nodes[0][0][-1]) == oid:
            # one record made the output (a dense layer, say): its products alone
            out_ids, ids, vjp, res = nodes[0]
            if type(out_ids) is int:
                g = dy
            else:
                g = [None] * (len(out_ids) - 1)
                g.append(dy)
            grads = {}
            get = grads.get
            for i, gi in zip(ids, vjp(g, res)):
                if i >= 0 and gi is not None:
                    old = get(i)
                    grads[i] = gi if old is None else old + gi
            return self._collect(grads, var_ids, variables, need_dx, release)
        wanted = set(var_ids)
        if need_dx:
            for t in self.inputs:
                wanted.add(t._id)
        wanted.discard(-1)
        grads = {oid: dy}
        lo = min(wanted) if wanted else 0
        get, pop = grads.get, grads.pop
        for out_ids, ids, vjp, res in reversed(nodes):
            if type(out_ids) is int:
                if out_ids < lo:
                    break
                g = get(out_ids) if out_ids in wanted else pop(out_ids, None)
                if g is None:
                    continue
            else:
                if out_ids[-1] < lo:
                    break
                g = [get(k) if k in wanted else pop(k, None) for k in out_ids]
                if all(x is None for x in g):
                    continue
            for i, gi in zip(ids, vjp(g, res)):
                if i >= 0 and gi is not None:
                    old = get(i)
                    grads[i] = gi if old is None else old + gi
        return self._collect(grads, var_ids, variables, need_dx, release)

    def _collect(self, grads, var_ids, variables, need_dx, release):
        """(input gradients, variable gradients) from the reverse sweep's table."""
        get = grads.get
        gv = []
        for i, v in zip(var_ids, variables):
            g = get(i) if i >= 0 else None
            value = v.value
            if g is None:
                gv.append(np.zeros_like(value) if value.dtype.kind in "fc" else None)
                continue
            if g.shape != value.shape:
                g = _unbroadcast(g, value.shape)
            gv.append(g)
        if need_dx:
            gi = []
            for t in self.inputs:
                g = get(t._id)
                value = t.value
                if g is None or g.dtype != value.dtype or g.shape != value.shape or value.dtype.kind not in "fc":
                    g = _result(grads, t._id, t, "zero")
                gi.append(g)
        else:
            gi = [None] * len(self.inputs)
        if release:
            self.tape.release()
        return gi, gv


def call_recorded(fn: Callable[..., Any], inputs: Any, *args, _watch: bool = True, _log: list | None = None,
                  **kwargs) -> tuple[Any, Recording]:
    """Runs ``fn(traced inputs, *args, **kwargs)`` on a fresh tape.

    ``inputs`` may be an array or a nesting of lists/tuples/dicts of arrays; each float
    or integer array is watched. Variables that ``fn`` uses become leaves. Returns the
    outputs as numpy arrays and the :class:`Recording` whose ``backward`` gives the
    input and variable gradients (the default forward/backward of a layer whose
    ``call`` is written with ops)."""
    tape = Tape(persistent=True)
    tape._log = _log
    flat = []
    if type(inputs) is np.ndarray:   # (the common case: one array)
        if _watch:
            traced = tape._new(inputs)
            flat.append(traced)
        else:
            traced = inputs
    else:
        def watch(a):
            if not _watch:   # (the caller wants no input gradient: the inputs stay constants)
                return a.value if type(a) is Tracer else a
            if isinstance(a, (np.ndarray, np.generic)) or type(a) is Tracer:
                t = tape.watch(a)
                flat.append(t)
                return t
            return a

        traced = _tree_map(watch, inputs)
    s = _stack()            # (``with tape:``, inline)
    tape._depth = len(s)
    s.append(tape)
    try:
        out = fn(traced, *args, **kwargs)
    finally:
        if s and s[-1] is tape:
            s.pop()
            tape._depth = -1
        else:
            tape.__exit__()
    return (out.value if type(out) is Tracer else _tree_map(_quiet_value, out)), Recording(tape, flat, out)


def _quiet_value(x):
    return x.value if type(x) is Tracer or isinstance(x, Variable) else x


def record_layer(backward: Callable[[Any], Any], inputs: Sequence[Any], outputs: Any,
                 variables: Sequence[Variable] = ()) -> Any:
    """Records a call computed by a hand-written forward on the active tape, so that an
    outer recording (a model whose ``call`` is recorded) can use layers that define
    their own backward pass.

    Args:
        backward: ``backward(dy) -> dx`` (an array for one input, else a list aligned
            with ``inputs``, None allowed) that also writes each variable's ``grad``
            (the layer contract's ``backward(ctx, dy)`` with its ctx bound).
        inputs: the call's tensor inputs as the caller has them (traced or not).
        outputs: the forward's output array(s).
        variables: the weights whose gradients ``backward`` writes (their ``grad`` is
            read right after each call, so repeated calls accumulate correctly).

    Returns:
        The outputs, traced when an active tape traces an input or variable.
    """
    inputs = list(inputs)
    variables = list(variables)
    n_in = len(inputs)

    def vjp(g):
        dx = backward(g)
        dxs = [dx] if n_in == 1 else list(dx if dx is not None else [None] * n_in)
        dvs = [None if v.grad is None else v.grad.copy() for v in variables]
        return dxs + dvs

    return record(outputs, inputs + variables, vjp)


# ---------------------------------------------------------------------------- the user-facing recorder

class GradientTape:
    """Records the ops run inside ``with`` so that :meth:`gradient` can differentiate
    them: fastnet's gradient API for custom training steps (the shape of the
    TensorFlow-flavoured Keras guide)::

        with fastnet.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(y=y, y_pred=y_pred)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply(grads, model.trainable_variables)

    Every Variable read by an op or a layer inside the block is watched; arrays are
    watched with :meth:`watch`. Values computed inside are traced values (``.numpy()``
    or ``np.asarray`` give the array).

    Args:
        persistent: allow several :meth:`gradient` calls (else the records are dropped
            after the first).
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True) -> None:
        self._tape = Tape(persistent=True)
        self.persistent = persistent
        self._used = False

    def __enter__(self) -> GradientTape:
        self._tape.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._tape.__exit__(*exc)

    def watch(self, x: Any) -> Any:
        """A traced copy of ``x`` (an array, or a structure of arrays) to differentiate
        against; Variables are watched as they are read, so watching them is optional."""
        return _tree_map(lambda a: self._tape.watch(a) if isinstance(a, (np.ndarray, np.generic, Variable, Tracer,
                                                                          float, int)) else a, x)

    def watched_variables(self) -> list[Variable]:
        return self._tape.watched_variables

    def gradient(self, target: Any, sources: Any, output_gradients: Any = None,
                 unconnected_gradients: str = "none") -> Any:
        """Gradients of ``target`` (a traced value or a structure of them; their sum)
        with respect to ``sources`` (Variables or watched values, any nesting), in the
        structure of ``sources``; None (or zeros with ``unconnected_gradients="zero"``)
        where the target does not depend on a source."""
        if self._used and not self.persistent:
            raise RuntimeError("GradientTape.gradient can only be called once on a non-persistent tape; "
                               "create the tape with GradientTape(persistent=True) to call it several times")
        flat_t = _flatten(target)
        if not any(type(t) is Tracer and t._tape is self._tape for t in flat_t):
            raise ValueError(
                "GradientTape.gradient: the target was not computed inside this tape from its watched values "
                "(compute it with fastnet.ops, layers and models inside `with tape:`; a value converted to "
                "numpy, or computed with another framework, has no gradient)")
        unconnected = getattr(unconnected_gradients, "value", unconnected_gradients)
        if unconnected not in ("none", "zero"):
            raise ValueError(f"unconnected_gradients must be 'none' or 'zero', received {unconnected_gradients!r}")
        single = isinstance(sources, (Variable, Tracer, np.ndarray))
        flat_s = [sources] if single else _flatten(sources)
        grads, _ = self._tape.gradient(target, output_gradients, inputs=flat_s, unconnected=unconnected)
        self._used = True
        if not self.persistent:
            self._tape.release()
        if single:
            return grads[0]
        it = iter(grads)
        return _tree_map(lambda _: next(it), sources) if not isinstance(sources, dict) else \
            _pack_sorted(sources, grads)


def _pack_sorted(d, flat):
    it = iter(flat)
    out = {}
    for k in sorted(d, key=str):
        v = d[k]
        n = len(_flatten(v))
        vals = [next(it) for _ in range(n)]
        if isinstance(v, (list, tuple, dict)):
            out[k] = _pack_sorted(v, vals) if isinstance(v, dict) else type(v)(vals)
        else:
            out[k] = vals[0]
    return {k: out[k] for k in d}


# ---------------------------------------------------------------------------- replaying a layer's call
# A layer written with ops runs its Python ``call`` on a fresh tape every training step:
# each op pays for its dispatch and its record. Once two consecutive recorded calls with
# the same input signature made the same records from the same constants (and nothing in
# them depended on a traced value's contents: no Python branch on a value, no numpy on a
# value, no random draw, no variable assignment, no loss added, no layer with its own
# backward inside), the call is replayed: the recorded forwards run again on the new
# inputs and the current weights, without the Python around them, and a matmul + bias
# (+ ReLU) record runs as one dense kernel call. This is what compiling the call under
# ``jax.jit`` or ``tf.function`` does for a Keras model in ``fit``: Python state read by
# ``call`` is fixed by the trace (``compile(run_eagerly=True)`` keeps every call eager).

_REPLAY_TRIES = 3      # traces that may disagree before a signature stays eager


def _escape(tape, why):
    """Marks the call being traced on ``tape`` as not replayable."""
    if tape._why is None:
        tape._why = why


def note_escape(why: str) -> None:
    """Marks every call being traced on this thread as not replayable (something in it
    has an effect a replay would not repeat: a random draw, a variable assignment)."""
    s = getattr(_TLS, "stack", None)
    if s:
        for tape in s:
            if tape._log is not None and tape._why is None:
                tape._why = why


def _same(a, b, depth=0):
    """Whether two constants of two traces are the same value (closures: same code and
    the same captured values)."""
    if a is b:
        return True
    ta = type(a)
    if ta is not type(b) or depth > 6:
        return False
    if ta is np.ndarray:
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=True))
    if ta is tuple or ta is list:
        return len(a) == len(b) and all(_same(x, y, depth + 1) for x, y in zip(a, b))
    if ta is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k], depth + 1) for k in a)
    code = getattr(a, "__code__", None)
    if code is not None:
        if code is not getattr(b, "__code__", None) or getattr(a, "__self__", None) is not getattr(b, "__self__", None):
            return False
        ca, cb = a.__closure__ or (), b.__closure__ or ()
        if len(ca) != len(cb):
            return False
        for x, y in zip(ca, cb):
            try:
                vx, vy = x.cell_contents, y.cell_contents
            except ValueError:
                return False
            if not _same(vx, vy, depth + 1):
                return False
        return _same(a.__defaults__, b.__defaults__, depth + 1)
    if isinstance(a, (np.generic, int, float, complex, str, bytes, bool, np.dtype, slice, type(None), type)):
        try:
            r = a == b
            return bool(r) if type(r) in (bool, np.bool_) else False
        except Exception:  # noqa: BLE001
            return False
    return False


class _Plan:
    """A replayable call: where each record's arguments come from, per input-gradient
    choice (``steps[True]`` watches the inputs, ``steps[False]`` does not)."""

    __slots__ = ("n", "in_ids", "leaves", "out", "out_ids", "steps")


def _same_trace(a, b):
    (la, ia, lva, oa), (lb, ib, lvb, ob) = a, b
    if ia != ib or oa != ob or len(la) != len(lb) or len(lva) != len(lvb):
        return False
    if any(va is not vb or xa != xb for (va, xa), (vb, xb) in zip(lva, lvb)):
        return False
    for sa, sb in zip(la, lb):
        if len(sa) != len(sb) or sa[0] != sb[0]:
            return False
        for x, y in zip(sa[1:], sb[1:]):
            if not _same(x, y):
                return False
    return True


def _trace_of(tape, rec):
    """(log, input ids, leaves, output ids) of a traced call, or the reason it cannot be
    replayed."""
    if tape._why is not None:
        return tape._why
    log = tape._log
    nodes = tape._nodes
    if len(log) != len(nodes):
        return "a record was made outside the ops"
    for spec, node in zip(log, nodes):
        if spec[-1] != node[0]:
            return "a record was changed after it was made"
    out = rec.outputs
    if type(out) is Tracer:
        outs = [out]
        form = None
    elif type(out) in (list, tuple) and out and all(type(o) is Tracer for o in out):
        outs = list(out)
        form = type(out)
    else:
        return "call() returned something other than traced values"
    if any(o._tape is not tape for o in outs):
        return "call() returned a value of another tape"
    leaves = [(v, t._id) for v, t in tape._leaves.values()]
    return list(log), tuple(t._id for t in rec.inputs), leaves, (form, tuple(o._id for o in outs))


def _make_plan(trace, n):
    log, in_ids, leaves, (form, out_ids) = trace
    plan = _Plan()
    plan.n = n
    plan.in_ids = in_ids
    plan.leaves = leaves
    plan.out = form
    plan.out_ids = out_ids
    used = set(out_ids)
    for spec in log:
        used.update(i for i in spec[3 if spec[0] == 0 else 1] if i >= 0)
    plan.steps = {}
    for watch in (True, False):
        req = [False] * n
        for _, i in leaves:
            req[i] = True
        if watch:
            for i in in_ids:
                req[i] = True
        steps = []
        for spec in log:
            if spec[0] == 0:
                _, fwd, bwd, ids, consts, nout, need, out = spec
                eff = [i if i >= 0 and req[i] else -1 for i in ids]
                rec = max(eff) >= 0
                srcs = tuple(zip(ids, consts))
                nd = (tuple(i >= 0 for i in eff) if rec else None) if need else False
                steps.append((0, fwd, bwd, srcs, eff, nd, nout, out, rec))
                if rec:
                    for o in (out if nout else (out,)):
                        req[o] = True
            else:
                _, ids, consts, relu, out = spec
                eff = [i if i >= 0 and req[i] else -1 for i in ids]
                rec = max(eff) >= 0
                fused = not any(o in used for o in out[:-1])
                steps.append((1, tuple(zip(ids, consts)), eff, relu, out, rec, fused))
                if rec:
                    for o in out:
                        req[o] = True
        plan.steps[watch] = steps
    return plan


def _replay(plan, inputs, watch):
    """Runs a plan on new inputs: (outputs, Recording), as ``call_recorded`` gives."""
    tape = Tape(persistent=True)
    n = plan.n
    tape._n = n
    env = [None] * n
    flat = []
    for i, v in zip(plan.in_ids, inputs):
        env[i] = v
        if watch:
            flat.append(Tracer(v, tape, i))
    leaves = tape._leaves
    for var, i in plan.leaves:
        v = var.value
        env[i] = v
        leaves[id(var)] = (var, Tracer(v, tape, i))
    nodes = tape._nodes
    for step in plan.steps[watch]:
        if step[0] == 0:
            _, fwd, bwd, srcs, eff, nd, nout, out, rec = step
            vals = [c if i < 0 else env[i] for i, c in srcs]
            if nd is not False:
                vals.append(nd)
            y, res = fwd(*vals)
            if nout:
                for o, v in zip(out, y):
                    env[o] = v
            else:
                env[out] = y
            if rec:
                nodes.append((out, eff, bwd, res))
        else:
            _, srcs, eff, relu, out, rec, fused = step
            a, w, b = [c if i < 0 else env[i] for i, c in srcs]   # (weights are leaves: env holds arrays)
            _np()._replay_dense(env, nodes, a, w, b, eff, relu, out, rec, fused)
    vals = [env[i] for i in plan.out_ids]
    if plan.out is None:
        outputs = Tracer(vals[0], tape, plan.out_ids[0])
        return vals[0], Recording(tape, flat, outputs)
    outputs = plan.out(Tracer(v, tape, i) for v, i in zip(vals, plan.out_ids))
    return plan.out(vals), Recording(tape, flat, outputs)


def _signature(inputs):
    t = type(inputs)
    if t is np.ndarray:
        return (inputs.shape, inputs.dtype), [inputs]
    if (t is list or t is tuple) and inputs and all(type(v) is np.ndarray for v in inputs):
        return (t,) + tuple((v.shape, v.dtype) for v in inputs), list(inputs)
    return None, None


def call_replayed(cache: dict, fn: Callable[..., Any], inputs: Any, training: bool,
                  watch: bool) -> tuple[Any, Recording, bool]:
    """``call_recorded(fn, inputs)`` for a layer's call, replayed once its traces agree
    (see above). ``cache``: the layer's plans by input signature. Returns (outputs,
    recording, watched): ``watched`` says whether the inputs were watched (a trace
    always watches them)."""
    sig, flat_in = _signature(inputs)
    if sig is None:
        out, rec = call_recorded(fn, inputs, _watch=watch)
        return out, rec, watch
    key = (sig, training)
    entry = cache.get(key)
    if type(entry) is _Plan:
        out, rec = _replay(entry, flat_in, watch)
        return out, rec, watch
    if entry is False:
        out, rec = call_recorded(fn, inputs, _watch=watch)
        return out, rec, watch
    # trace this call: record it, with each record's origin logged
    tape_log = []
    out, rec = call_recorded(fn, inputs, _log=tape_log)
    tape = rec.tape
    trace = _trace_of(tape, rec)
    tape._log = None
    if type(trace) is str:
        cache[key] = False
        cache.setdefault("why", {})[key] = trace
        return out, rec, True
    if entry is not None and _same_trace(entry[0], trace):
        cache[key] = _make_plan(trace, tape._n)
    else:
        tries = 1 if entry is None else entry[1] + 1
        if tries >= _REPLAY_TRIES:
            cache[key] = False
            cache.setdefault("why", {})[key] = "consecutive calls made different records or constants"
        else:
            cache[key] = (trace, tries)
    return out, rec, True
