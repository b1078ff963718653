"""How one model's fit/evaluate/predict run on several processes.

A :class:`Runner` belongs to one model and one distribution. The model's loops call it
at a few points (see ``fastnet/models/model.py``):

* ``begin_fit`` / ``begin_evaluate`` / ``begin_predict``: every rank checks that the
  others run the same model on the same arguments, takes rank 0's weights (and
  optimizer state and random generators), and rank 0 alone keeps the callbacks that
  write files;
* ``begin_step`` / ``end_step`` around each training or test step: the rank's rows of
  the global batch in, and its share of the global batch's loss out;
* ``backward_done`` after each layer's backward pass and ``finish_gradients`` before
  the optimizer: the gradient buckets are summed over the ranks;
* ``reduce_updates`` before deferred state updates (BatchNormalization's moving
  statistics) and ``reduce_logs`` where the loop reports loss and metrics.

Rank r of N takes rows ``[lo_r, hi_r)`` of a batch of B rows, the first ``B % N``
ranks one row more than the others. The gradient of the global loss is the sum over
ranks of each rank's gradient scaled by its share of the loss's denominator (rows for
the default mean, weight sums or counted labels for the other reductions), so the
loss gradient is scaled by that share before the backward pass and the sum of the
ranks' gradients is exactly the one-process gradient. A rank whose part of a batch is
empty (a last batch smaller than N) runs the step on one row with share 0: its
gradients are zeros and every collective operation still happens in the same order
on every rank; its metric state is restored afterwards.
"""
import json
import time
import warnings
import zlib

import numpy as np

from fastnet import random as _random

# The runner in the middle of a training step (synchronised BatchNormalization asks it).
CURRENT = None


def split(n, size, rank):
    """Rows [lo, hi) of a batch of n rows that ``rank`` of ``size`` takes."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def _walk_layers(model):
    """Every layer object reachable from the model (nested models, wrappers, cells)."""
    from fastnet.layers.base import Layer

    seen, out, stack = set(), [], list(model.layers)
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        for value in vars(layer).values():
            if isinstance(value, Layer):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, Layer))
    return out


def _generators(model):
    gens = [_random.generator()]
    for layer in _walk_layers(model):
        for value in vars(layer).values():
            if isinstance(value, np.random.Generator) and all(value is not g for g in gens):
                gens.append(value)
    return gens


def _layer_config(layer):
    """The layer's configuration without its name (automatic names may differ by rank)."""
    try:
        cfg = dict(layer.get_config())
    except Exception:  # a custom layer without get_config: compare types and shapes only
        return {}
    cfg.pop("name", None)
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in cfg.items()}


def _architecture(model):
    """What must agree across ranks: layer types, weight shapes and configurations, loss
    and optimizer."""
    arch = []
    for layer in model.layers:
        arch.append((type(layer).__name__,
                     tuple((tuple(w.shape), str(w.dtype), bool(w.trainable)) for w in layer.weights),
                     _layer_config(layer)))
    loss = getattr(model, "_loss_obj", None)
    extra = (type(model.optimizer).__name__ if getattr(model, "optimizer", None) is not None else None,
             getattr(loss, "name", None) if loss is not None else getattr(model, "loss", None))
    return arch, extra


def _data_digest(arr):
    """A cheap fingerprint of an array: shape, dtype and a checksum of up to 64 rows."""
    if arr is None:
        return None
    arr = np.asarray(arr)
    n = len(arr) if arr.ndim else 0
    rows = arr[:: max(1, n // 64)] if n else arr
    return (arr.shape, str(arr.dtype), zlib.crc32(np.ascontiguousarray(rows).view(np.uint8)))


def _describe(key, mine, theirs, r):
    """How argument ``key`` differs between rank 0 and rank r (digests of arrays compared
    by shape, dtype, then contents)."""
    if isinstance(mine, tuple) and isinstance(theirs, tuple) and len(mine) == len(theirs) == 3:
        if mine[0] != theirs[0]:
            return f"{key} has shape {mine[0]} on rank 0 but {theirs[0]} on rank {r}"
        if mine[1] != theirs[1]:
            return f"{key} has dtype {mine[1]} on rank 0 but {theirs[1]} on rank {r}"
        return f"{key} holds different values on rank 0 and rank {r}"
    if mine is None or theirs is None:
        return f"{key} is {'absent' if mine is None else 'given'} on rank 0 but " \
               f"{'absent' if theirs is None else 'given'} on rank {r}"
    return f"{key} is {mine!r} on rank 0 but {theirs!r} on rank {r}"


class _SyncBatchNorm:
    """Batch statistics summed over the ranks (BatchNormalization(synchronized=True) or
    DataParallel(sync_batchnorm=True)): the layer normalises with the mean and variance of
    the whole global batch, and the input gradient uses the global sums, as one process
    computes them."""

    def __init__(self, runner):
        self.runner = runner
        self.be = runner.be
        self.n = 0

    @staticmethod
    def _sums(x, blocks=8192):
        rows, ch = x.shape
        s = np.zeros((2, ch))
        for lo in range(0, rows, blocks):
            b = x[lo:lo + blocks].astype(np.float64)
            s[0] += b.sum(axis=0)
            s[1] += np.einsum("ij,ij->j", b, b)
        return s

    def forward(self, x, gamma, beta, mean, var, invstd, y, epsilon, n_threads):
        """Same contract as the batch-norm kernel's forward_train (x: rows x channels)."""
        from fastnet._kernels import normalization as _bn

        real = self.runner.rows > 0
        ch = x.shape[1]
        buf = np.zeros(2 * ch + 1)
        if real:
            s = self._sums(x)
            buf[:ch], buf[ch:2 * ch], buf[-1] = s[0], s[1], x.shape[0]
        self.be.allreduce_(buf, comm=self.be.stat_comm, what="synchronised batch statistics")
        n = self.n = buf[-1]
        m = buf[:ch] / n
        v = np.maximum(buf[ch:2 * ch] / n - m * m, 0.0)
        mean[...] = m
        var[...] = v
        invstd[...] = 1.0 / np.sqrt(v + epsilon)
        scale = (gamma * invstd).astype(x.dtype)
        shift = (beta - mean * scale).astype(x.dtype)
        _bn.forward_infer(x, scale, shift, y, n_threads)

    def backward(self, dy, x, mean, invstd, gamma, dx, dgamma, dbeta, n_threads):
        """Same contract as the batch-norm kernel's backward_train."""
        from fastnet._kernels import normalization as _bn

        dt = x.dtype
        ch = x.shape[1]
        dg = dgamma if dgamma is not None else np.empty(ch, dt)
        db = dbeta if dbeta is not None else np.empty(ch, dt)
        # This rank's sums: its contributions to dgamma/dbeta (summed with the other
        # gradients) and, summed here, the terms of the input gradient.
        _bn.backward_infer(dy, x, mean, invstd, gamma, None, dg, db, n_threads)
        if dx is None:
            return
        buf = np.empty(2 * ch)
        buf[:ch], buf[ch:] = db, dg
        self.be.allreduce_(buf, comm=self.be.stat_comm, what="synchronised batch statistics")
        n = self.n
        k1 = (gamma * invstd).astype(dt)
        k2 = (buf[:ch] / n).astype(dt)
        k3 = ((buf[ch:] / n) * invstd).astype(dt)
        tmp = np.empty_like(x)
        _bn.forward_infer(x, k3, (-mean * k3).astype(dt), tmp, n_threads)   # xhat * S2 / n
        np.subtract(dy, k2, out=dx)
        dx -= tmp
        dx *= k1


class Runner:
    """Splits one model's loops over the ranks of a DataParallel distribution."""

    def __init__(self, dist, model):
        self.dist = dist
        self.be = dist._backend
        self.model = model
        self.rank, self.size = self.be.rank, self.be.size
        self.share = 1.0
        self.rows = 0
        self._sync_bn = {}
        self._synced = False
        self._layout = None
        self._reqs = []
        self._launched = 0
        self._dropouts = None
        self._dropout_key = None
        self._snapshot = None
        self._uneven = False
        self._pred = None
        self.stats = {"steps": 0, "wait_s": 0.0}

    # ================================================================== setup
    def _check_same(self, what, args):
        """Every rank runs the same model with the same arguments: compared to rank 0's."""
        mine = (_architecture(self.model), args)
        everyone = self.be.allgather_obj(mine, what=f"the start of {what}")
        ref = everyone[0]
        for r, theirs in enumerate(everyone):
            if theirs == ref:
                continue
            (arch0, extra0), args0 = ref
            (arch, extra), args_r = theirs
            if len(arch) != len(arch0):
                detail = f"rank 0's model has {len(arch0)} layers, rank {r}'s has {len(arch)}"
            elif arch != arch0:
                i = next(i for i, (a, b) in enumerate(zip(arch0, arch)) if a != b)
                if arch0[i][:2] != arch[i][:2]:
                    detail = (f"layer {i} is {arch0[i][0]} with weights {[w[0] for w in arch0[i][1]]} "
                              f"on rank 0 but {arch[i][0]} with weights {[w[0] for w in arch[i][1]]} "
                              f"on rank {r}")
                else:
                    c0, c1 = arch0[i][2], arch[i][2]
                    key = next(k for k in sorted(set(c0) | set(c1)) if c0.get(k) != c1.get(k))
                    detail = (f"layer {i} ({arch0[i][0]}) has {key}={c0.get(key)} on rank 0 but "
                              f"{key}={c1.get(key)} on rank {r}")
            elif extra != extra0:
                detail = (f"optimizer/loss are {extra0} on rank 0 but {extra} on rank {r}")
            else:
                detail = "; ".join(_describe(k, args0[k], args_r.get(k), r)
                                   for k in args0 if args0[k] != args_r.get(k))
                raise ValueError(
                    f"fastnet.distribution: the ranks called {what} differently: {detail}. Every "
                    f"rank must pass the same arrays and arguments (fastnet splits each batch "
                    f"across the ranks itself).")
            raise ValueError(
                f"fastnet.distribution: the ranks built different models: {detail}. Every rank "
                f"must run the same script and build the same architecture.")

    def _state_arrays(self, optimizer):
        model = self.model
        arrays = [w.value for w in model.weights]
        if optimizer and model.optimizer is not None and getattr(model.optimizer, "built", False):
            arrays += [np.asarray(v) for v in model.optimizer.variables]
        return arrays

    def _broadcast_state(self, optimizer):
        """Rank 0's weights (and optimizer state) on every rank, in one broadcast."""
        arrays = self._state_arrays(optimizer)
        if not arrays:
            return
        sizes = [a.nbytes for a in arrays]
        buf = np.empty(sum(sizes), dtype=np.uint8)
        if self.rank == 0:
            o = 0
            for a, s in zip(arrays, sizes):
                buf[o:o + s] = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
                o += s
        self.be.bcast_(buf, what="the broadcast of rank 0's weights")
        if self.rank != 0:
            o = 0
            for a, s in zip(arrays, sizes):
                np.copyto(a, buf[o:o + s].view(a.dtype).reshape(a.shape))
                o += s

    def _sync_random(self):
        """Rank 0's random generators (fastnet's global one and the layers' own) on every
        rank: shuffling and dropout draw the same numbers everywhere."""
        gens = _generators(self.model)
        states = self.be.bcast_obj([g.bit_generator.state for g in gens] if self.rank == 0 else None,
                                   what="the broadcast of the random state")
        if self.rank != 0:
            for g, s in zip(gens, states):
                g.bit_generator.state = s

    def _filter_callbacks(self, callbacks):
        """On ranks other than 0, drops the callbacks that write files."""
        if self.rank == 0 or not callbacks:
            return callbacks
        from fastnet import callbacks as cb_mod
        from fastnet.callbacks_checkpoint import ModelCheckpoint

        items = list(callbacks.callbacks) if isinstance(callbacks, cb_mod.CallbackList) else (
            list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks])
        keep = [c for c in items if not (isinstance(c, (cb_mod.CSVLogger, ModelCheckpoint))
                                        or getattr(c, "chief_only", False))]
        if isinstance(callbacks, cb_mod.CallbackList):
            callbacks.callbacks = keep
            callbacks._build_dispatch()
            return callbacks
        return keep

    def begin_fit(self, x, y, sample_weight, batch_size, epochs, steps_per_epoch, shuffle,
                  initial_epoch, validation, callbacks):
        args = {"samples": len(x), "x": _data_digest(x), "y": _data_digest(y),
                "sample_weight": _data_digest(sample_weight), "batch_size": batch_size,
                "epochs": epochs, "initial_epoch": initial_epoch,
                "steps_per_epoch": steps_per_epoch, "shuffle": bool(shuffle),
                "validation samples": None if validation is None else len(validation[0])}
        self._check_same("fit", args)
        self._broadcast_state(optimizer=True)
        self._synced = True
        self._sync_random()
        self._prepare_buckets()
        return self._filter_callbacks(callbacks)

    def end_fit(self):
        """Rank 0's files are written when fit returns anywhere; the weights still agree."""
        if self.dist.check_weights:
            arrays = self._state_arrays(optimizer=False)
            crc = 0
            for a in arrays:
                crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8), crc)
            sums = self.be.allgather_obj(crc, what="the end of fit")
            if len(set(sums)) > 1:
                warnings.warn("fastnet.distribution: the ranks' weights drifted apart during fit "
                              "(this MPI's allreduce does not give every rank the same sums); "
                              "rank 0's weights were broadcast to all ranks.", stacklevel=2)
                self._broadcast_state(optimizer=True)
        else:
            self.be.barrier(what="the end of fit")

    def begin_evaluate(self, x, y, sample_weight, batch_size, steps):
        args = {"samples": len(x), "x": _data_digest(x), "y": _data_digest(y),
                "sample_weight": _data_digest(sample_weight), "batch_size": batch_size,
                "steps": steps}
        self._check_same("evaluate", args)
        if not self._synced:
            self._broadcast_state(optimizer=False)
            self._synced = True

    def begin_predict(self, x, batch_size, steps):
        args = {"samples": len(x), "x": _data_digest(x), "batch_size": batch_size, "steps": steps}
        self._check_same("predict", args)
        if not self._synced:
            self._broadcast_state(optimizer=False)
            self._synced = True
        self._pred = []

    def begin_train_on_batch(self, x, y, sample_weight):
        args = {"samples": len(x), "x": _data_digest(x), "y": _data_digest(y),
                "sample_weight": _data_digest(sample_weight)}
        if not self._synced:
            self._check_same("train_on_batch", args)
            self._broadcast_state(optimizer=True)
            self._sync_random()
            self._synced = True
        self._prepare_buckets()

    def filter_callbacks(self, callbacks):
        return self._filter_callbacks(callbacks)

    # ================================================================== agreement
    def any(self, flag):
        buf = np.array([1 if flag else 0], dtype=np.int64)
        self.be.allreduce_max_(buf, what="an agreement between ranks")
        return bool(buf[0])

    # ================================================================== steps
    def _dropout_layers(self):
        from fastnet.layers.core import Dropout

        layers = self.model.layers
        key = tuple(id(l) for l in layers)
        if key != self._dropout_key:
            self._dropouts = [l for l in _walk_layers(self.model) if isinstance(l, Dropout)]
            self._dropout_key = key
        return self._dropouts

    def sync_for(self, layer):
        helper = self._sync_bn.get(id(layer))
        if helper is None:
            helper = self._sync_bn[id(layer)] = _SyncBatchNorm(self)
        return helper

    def _loss_share(self, y, sw, lo, hi):
        """This rank's part of the denominator of the global batch's loss: its rows for
        the default mean, its sample weights for 'mean_with_sample_weight', its counted
        labels with ``ignore_class``; 1 for summing reductions (its sum is its part)."""
        loss = self.model._loss_obj
        red = getattr(loss, "reduction", "sum_over_batch_size")
        if red in ("sum", "none", None):
            return 1.0
        ignore = getattr(loss, "ignore_class", None)
        by_weight = red == "mean_with_sample_weight" and sw is not None
        n = len(y)
        if ignore is None and not by_weight:
            return (hi - lo) / n if n else 0.0
        w = np.ones((n, 1))
        if ignore is not None:
            w = (np.asarray(y).reshape(n, -1) != ignore).astype(np.float64)
        if by_weight:
            s = np.asarray(sw, dtype=np.float64).reshape(n, -1)
            if s.shape[1] == w.shape[1] or 1 in (s.shape[1], w.shape[1]):
                w = w * s
            else:
                w = w * s.sum(axis=1, keepdims=True)
        total = float(w.sum())
        return float(w[lo:hi].sum()) / total if total else 0.0

    def begin_step(self, x, y, sw, train):
        """This rank's rows of the global batch (x, y, sw); sets the loss share."""
        global CURRENT
        n = len(x)
        lo, hi = split(n, self.size, self.rank)
        self._uneven = n % self.size != 0
        # With a summing loss every rank's value holds the whole regularization term,
        # which must count once in the total.
        self._reg = 0.0
        if getattr(self.model, "_reg_vars", None) and \
                getattr(self.model._loss_obj, "reduction", None) in ("sum", "none", None):
            self._reg = self.model._regularization()
        if hi > lo:
            self.rows = hi - lo
            self.share = self._loss_share(y, sw, lo, hi)
            xs, ys, ss = x[lo:hi], y[lo:hi], None if sw is None else sw[lo:hi]
            self._snapshot = None
        else:
            # Nothing for this rank in this batch: one row with share 0 keeps every
            # collective operation in step; its metric updates are undone in end_step.
            self.rows = 0
            self.share = 0.0
            xs, ys, ss = x[:1], y[:1], None if sw is None else sw[:1]
            self._snapshot = [v.value.copy() for m in (self.model._metrics or [])
                              for v in m.variables]
        if train:
            for d in self._dropout_layers():
                d._row_offset = lo
            packed = self.model._packed
            if packed is not None and (self._layout is None or self._layout[1] is not packed[3]):
                self._prepare_buckets()
            self._reqs = []
            self._launched = 0
            CURRENT = self
        return xs, ys, ss

    def end_step(self, value, train):
        global CURRENT
        if self._snapshot is not None:
            vals = [v for m in (self.model._metrics or []) for v in m.variables]
            for v, saved in zip(vals, self._snapshot):
                np.copyto(v.value, saved)
            self._snapshot = None
        if train:
            CURRENT = None
            for d in self._dropouts or ():
                d._row_offset = 0
            self.stats["steps"] += 1
            if self._uneven:
                # Unequal row counts may have advanced shape-dependent generators
                # (recurrent dropout) differently: take rank 0's again.
                self._sync_random()
        if self._reg:
            return (value - self._reg) * self.share + self._reg / self.size
        return value * self.share

    # ================================================================== gradients
    def _prepare_buckets(self):
        """Buckets over the flat gradient buffer, whole layers each, from the last layer
        (whose gradients the backward pass produces first) to the first."""
        packed = self.model._packed
        if packed is None:
            return
        key = (packed[0], tuple(id(l) for l in self.model.layers))
        if packed[3].shape[0] == 0:
            self._layout = (key, packed[3], [], {})
            return
        if self._layout is not None and self._layout[0] == key and self._layout[1] is packed[3]:
            return
        _, variables, _, grads, offsets = packed
        where = {id(v): i for i, v in enumerate(variables)}
        ranges = {}
        for li, layer in enumerate(self.model.layers):
            idx = [where[id(w)] for w in layer.trainable_weights if id(w) in where] \
                if self.model.trainable else []
            if idx:
                ranges[li] = (int(offsets[min(idx)]), int(offsets[max(idx) + 1]))
        limit = max(1, int(self.dist.bucket_size_mb * 2 ** 20 / grads.itemsize))
        buckets, launch = [], {}
        hi = lo = None
        for li in sorted(ranges, reverse=True):
            a, b = ranges[li]
            if hi is None:
                hi = b
            lo = a
            if hi - lo >= limit:
                launch.setdefault(li, []).append(len(buckets))
                buckets.append((lo, hi))
                hi = None
        if hi is not None:
            li = min(ranges)
            launch.setdefault(li, []).append(len(buckets))
            buckets.append((lo, hi))
        covered = sum(b - a for a, b in buckets)
        if covered != grads.shape[0]:
            # Weights outside the layers' ranges (should not happen): one bucket for all.
            buckets, launch = [(0, grads.shape[0])], {min(ranges) if ranges else 0: [0]}
        self._layout = (key, grads, [grads[a:b] for a, b in buckets], launch)

    def backward_done(self, layer_index):
        """Called after each layer's backward pass: starts the allreduce of the buckets the
        pass has completed (overlap mode) and lets MPI progress the ones in flight."""
        if not self.dist.overlap:
            return
        layout = self._layout
        ids = layout[3].get(layer_index)
        if ids:
            views = layout[2]
            for b in ids:
                self._reqs.append(self.be.iallreduce(views[b]))
            self._launched = max(self._launched, max(ids) + 1)
        elif self._reqs:
            self.be.testall(self._reqs)

    def finish_gradients(self):
        """Sums the gradient buffer over the ranks (returns when every bucket is summed)."""
        if self._layout is None or self._layout[1] is not self.model._packed[3]:
            self._prepare_buckets()
        views = self._layout[2]
        if not views:
            return
        t = time.perf_counter()
        if self.dist.allreduce == "shared" and not self.dist.overlap:
            grads = self._layout[1]
            with self.be.guard("the gradient sum"):
                self.dist._node_sum(grads.dtype)(grads)
        elif self.dist.overlap:
            for b in range(self._launched, len(views)):
                self._reqs.append(self.be.iallreduce(views[b]))
            self.be.waitall(self._reqs)
        else:
            # Non-blocking even for one bucket: MPICH's MPI_Iallreduce measured steadier here
            # than its blocking MPI_Allreduce (same best time, half the median for 1.6 MB).
            self._reqs = [self.be.iallreduce(v) for v in views]
            self.be.waitall(self._reqs)
        self._reqs = []
        self._launched = 0
        self.stats["wait_s"] += time.perf_counter() - t

    def reduce_updates(self, items):
        """Averages the step's pending state updates (BatchNormalization's batch statistics,
        ``[apply, value, reducible]`` entries of the trainer's DeferredUpdates) over the
        ranks, weighted by their rows, so every rank commits the same update. Statistics
        that were already synchronised are not reducible and stay as they are."""
        items = [it for it in items if it[2]]
        if not items:
            return
        sizes = [a.size for it in items for a in it[1]]
        buf = np.empty(sum(sizes) + 1)
        o = 0
        w = float(self.rows)
        for it in items:
            for a in it[1]:
                buf[o:o + a.size] = a.reshape(-1)
                buf[o:o + a.size] *= w
                o += a.size
        buf[-1] = w
        self.be.allreduce_(buf, what="the moving statistics")
        total = buf[-1]
        if total:
            buf[:-1] /= total
        o = 0
        for it in items:
            new = []
            for a in it[1]:
                new.append(buf[o:o + a.size].reshape(a.shape).astype(a.dtype))
                o += a.size
            it[1] = tuple(new)

    # ================================================================== logs
    def reduce_logs(self, total, seen, metrics):
        """The loss (sum of the ranks' shares / seen) and the metrics computed from their
        summed states, identical on every rank."""
        metrics = list(metrics or [])
        variables = [v for m in metrics for v in m.variables]
        sizes = [int(np.size(v.value)) for v in variables]
        n = sum(sizes)
        check = np.array([n, -n], dtype=np.int64)
        self.be.allreduce_max_(check, what="the reduction of metrics")
        if check[0] != -check[1]:
            raise RuntimeError(
                "fastnet.distribution: the metrics have state of different sizes on different "
                "ranks (a metric that builds its state from the data saw no sample on some rank); "
                "use more samples than ranks")
        buf = np.empty(n + 1)
        buf[0] = total
        o = 1
        for v, s in zip(variables, sizes):
            buf[o:o + s] = np.asarray(v.value, dtype=np.float64).reshape(-1)
            o += s
        self.be.allreduce_(buf, what="the reduction of metrics")
        logs = {"loss": float(buf[0]) / seen if seen else float("nan")}
        if metrics:
            saved = [np.array(v.value, copy=True) for v in variables]
            o = 1
            for v, s in zip(variables, sizes):
                np.copyto(v.value, buf[o:o + s].reshape(np.shape(v.value)), casting="unsafe")
                o += s
            try:
                for m in metrics:
                    logs[m.name] = float(m.result())
            finally:
                for v, s in zip(variables, saved):
                    np.copyto(v.value, s)
        return logs

    # ================================================================== predict
    def predict_rows(self, xb, lo):
        """This rank's rows of a predict batch (one row when it has none)."""
        n = len(xb)
        a, b = split(n, self.size, self.rank)
        self._pred.append((lo, n))
        self._cur = (lo + a, b - a)
        return xb[a:b] if b > a else xb[:1]

    def store_rows(self, out, yb):
        start, count = self._cur
        if count:
            out[start:start + count] = yb[:count]

    def gather_rows(self, out):
        """Every rank's predicted rows on every rank (one Allgatherv)."""
        batches = self._pred or []
        self._pred = None
        row = int(np.prod(out.shape[1:])) if out.ndim > 1 else 1
        idx = []
        for r in range(self.size):
            parts = []
            for lo, n in batches:
                a, b = split(n, self.size, r)
                if b > a:
                    parts.append(np.arange(lo + a, lo + b))
            idx.append(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
        counts = [len(i) * row for i in idx]
        send = np.ascontiguousarray(out[idx[self.rank]])
        recv = np.empty((sum(len(i) for i in idx),) + out.shape[1:], dtype=out.dtype)
        self.be.allgatherv(send, recv, counts, what="the gathering of predictions")
        out[np.concatenate(idx)] = recv
        return out
