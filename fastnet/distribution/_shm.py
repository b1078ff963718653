"""Gradient sums through MPI-3 shared memory: the fast path on one machine.

The ranks of a node share one MPI window (``MPI_Win_allocate_shared``), one segment
per rank. A sum is: every rank copies its buffer into its segment; each rank adds up
one slice of all the segments (a reduce-scatter done by plain array additions); every
rank copies the summed slices back (an allgather). With ranks on several nodes, the
first rank of each node then sums the node totals with MPI_Allreduce and shares the
result through the window. Each slice is added by exactly one rank, in rank order, so
every rank gets bit-for-bit the same sums.

Buffers larger than the window are summed in chunks of its size.
"""
import os

import numpy as np


class NodeAllreduce:
    """Sums float arrays of one dtype over all ranks of ``comm`` (a duplicate of
    COMM_WORLD); ``chunk`` elements per round trip through shared memory."""

    def __init__(self, backend, comm, dtype, chunk):
        MPI = backend.MPI
        self.be = backend
        self.MPI = MPI
        self.dtype = np.dtype(dtype)
        node_size = os.environ.get("FASTNET_MPI_NODE_SIZE", "").strip()
        if node_size.isdigit() and int(node_size) > 0:
            # Testing aid: pretend the machine is several nodes of this many ranks.
            self.node = comm.Split(color=comm.Get_rank() // int(node_size), key=comm.Get_rank())
        else:
            self.node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        self.L, self.me = self.node.Get_size(), self.node.Get_rank()
        self.multi = self.L != comm.Get_size()
        self.leaders = comm.Split(color=0 if self.me == 0 else MPI.UNDEFINED, key=comm.Get_rank()) \
            if self.multi else None
        self.chunk = int(chunk)
        item = self.dtype.itemsize
        self.win = MPI.Win.Allocate_shared(self.chunk * item, item, comm=self.node)
        self.segs = []
        for r in range(self.L):
            buf, _ = self.win.Shared_query(r)
            self.segs.append(np.ndarray(buffer=buf, dtype=self.dtype, shape=(self.chunk,)))
        self.win.Lock_all(MPI.MODE_NOCHECK)
        self.tmp = np.empty(-(-self.chunk // self.L), dtype=self.dtype)

    def _fence(self):
        self.win.Sync()
        self.node.Barrier()
        self.win.Sync()

    def __call__(self, g):
        for lo in range(0, g.shape[0], self.chunk):
            self._sum(g[lo:lo + self.chunk])

    def _sum(self, g):
        n, L, me, segs = g.shape[0], self.L, self.me, self.segs
        segs[me][:n] = g
        self._fence()
        lo, hi = n * me // L, n * (me + 1) // L
        if hi > lo:
            tmp = self.tmp[:hi - lo]
            if L > 1:
                np.add(segs[0][lo:hi], segs[1][lo:hi], out=tmp)
            else:
                tmp[...] = segs[0][lo:hi]
            for r in range(2, L):
                tmp += segs[r][lo:hi]
            segs[me][lo:hi] = tmp
        self._fence()
        if not self.multi or me == 0:
            for r in range(L):
                a, b = n * r // L, n * (r + 1) // L
                g[a:b] = segs[r][a:b]
        if self.multi:
            if me == 0:
                self.leaders.Allreduce(self.MPI.IN_PLACE, g, op=self.MPI.SUM)
                segs[0][:n] = g
            self._fence()
            if me != 0:
                g[...] = segs[0][:n]
        # Nobody may refill its segment before everyone has read the sums.
        self._fence()

    def free(self):
        try:
            self.win.Unlock_all()
            self.win.Free()
            self.node.Free()
            if self.leaders is not None:
                self.leaders.Free()
        except Exception:  # pragma: no cover - finalised already
            pass
