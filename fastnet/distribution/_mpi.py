"""The MPI side of fastnet.distribution: whether this process was started by an MPI
launcher, mpi4py's communicators, and failing fast when a process is lost.

Nothing here imports mpi4py until a distribution is set in a process that an MPI
launcher started (or ``FASTNET_MPI=1`` asks for it), so a plain ``python train.py``
never initialises MPI.
"""
import os
import sys
import threading
import time

__all__ = ["launched_by_mpi", "launcher_size", "Backend", "LocalBackend"]

# Environment variables that MPI launchers set in the processes they start
# (MPICH/Intel MPI hydra, Open MPI, PMIx launchers, MVAPICH).
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")

DEFAULT_TIMEOUT = 600.0


def _env_flag(name):
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def launcher_size():
    """The number of processes the launcher says it started, or None."""
    for var in _SIZE_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return None


def launched_by_mpi():
    """Whether this process looks started by mpiexec/mpirun/srun (``FASTNET_MPI`` overrides:
    1 forces MPI, 0 turns it off)."""
    forced = _env_flag("FASTNET_MPI")
    if forced is not None:
        return forced
    return any(v in os.environ for v in _SIZE_VARS + _RANK_VARS)


def timeout_from_env():
    value = os.environ.get("FASTNET_MPI_TIMEOUT", "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        t = float(value)
    except ValueError:
        raise ValueError(f"FASTNET_MPI_TIMEOUT must be a number of seconds (0 turns the watchdog "
                         f"off), received {value!r}") from None
    return t if t > 0 else None


class LocalBackend:
    """One process, no MPI: what a distribution uses when the script is not launched by
    an MPI launcher."""

    rank = 0
    size = 1
    local_size = 1
    library = "none (one process)"

    def set_timeout(self, timeout):
        pass

    def close(self):
        pass


class _Watchdog:
    """Ends this process, with a message naming the operation, when one collective
    operation waits longer than ``timeout`` seconds: a process that died or hangs
    then stops the others instead of leaving them blocked for ever. The launcher sees
    the exit and ends the remaining processes."""

    def __init__(self, timeout, rank, size):
        self.timeout = float(timeout)
        self.rank, self.size = rank, size
        self._since = None
        self._what = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastnet-mpi-watchdog", daemon=True)
        self._thread.start()

    def _run(self):
        period = min(1.0, max(0.05, self.timeout / 20))
        while not self._stop.wait(period):
            since = self._since
            if since is not None and time.monotonic() - since > self.timeout:
                what = self._what
                msg = (f"\nfastnet.distribution: rank {self.rank} of {self.size} waited more than "
                       f"{self.timeout:g} s for the other processes in {what}. A process has died, "
                       f"hangs, or runs different code (every rank must run the same fit/evaluate/"
                       f"predict calls on the same data). Stopping this process (exit code 70). "
                       f"Raise the limit with DataParallel(timeout=...) or FASTNET_MPI_TIMEOUT if "
                       f"some rank legitimately works alone for longer.\n")
                try:
                    sys.stderr.write(msg)
                    sys.stderr.flush()
                    sys.stdout.flush()
                except Exception:  # pragma: no cover - the message is best effort
                    pass
                time.sleep(0.5)  # let the launcher forward the message
                os._exit(70)

    def enter(self, what):
        self._what = what
        self._since = time.monotonic()

    def leave(self):
        self._since = None

    def close(self):
        self._stop.set()


class _NoWatchdog:
    timeout = None

    def enter(self, what):
        pass

    def leave(self):
        pass

    def close(self):
        pass


class Backend:
    """mpi4py's COMM_WORLD split into three duplicates, so that gradient buckets (in
    flight while the backward pass runs), synchronised batch statistics and control
    messages never wait on each other's ordering."""

    def __init__(self, timeout=DEFAULT_TIMEOUT):
        try:
            from mpi4py import MPI
        except ImportError as e:
            n = launcher_size()
            raise ImportError(
                f"fastnet.distribution needs mpi4py to train on {n or 'several'} processes: "
                f"install it with `pip install fastnet[mpi]` (mpi4py and an MPI runtime), or "
                f"run the script without mpiexec to train on one process") from e
        self.MPI = MPI
        world = MPI.COMM_WORLD
        self.rank = world.Get_rank()
        self.size = world.Get_size()
        self.library = MPI.Get_library_version().strip().splitlines()[0]
        self.comm = world.Dup()
        self.grad_comm = world.Dup()
        self.stat_comm = world.Dup()
        try:
            node = world.Split_type(MPI.COMM_TYPE_SHARED)
            self.local_size = node.Get_size()
            node.Free()
        except Exception:  # pragma: no cover - MPI without shared-memory split
            self.local_size = 1
        self.watchdog = _Watchdog(timeout, self.rank, self.size) if (timeout and self.size > 1) \
            else _NoWatchdog()
        self._prev_hook = None
        if self.size > 1:
            self._install_excepthook()

    def set_timeout(self, timeout):
        """Replaces the watchdog's limit (None or 0: no watchdog)."""
        if (timeout or None) == self.watchdog.timeout:
            return
        self.watchdog.close()
        self.watchdog = _Watchdog(timeout, self.rank, self.size) if (timeout and self.size > 1) \
            else _NoWatchdog()

    # ------------------------------------------------------------------ failure handling
    def _install_excepthook(self):
        prev = sys.excepthook
        backend = self

        def hook(exc_type, exc, tb):
            prev(exc_type, exc, tb)
            if issubclass(exc_type, KeyboardInterrupt):
                note = "was interrupted"
            else:
                note = f"stopped with {exc_type.__name__}"
            try:
                sys.stderr.write(f"fastnet.distribution: rank {backend.rank} of {backend.size} {note}; "
                                 f"aborting all ranks.\n")
                sys.stderr.flush()
                sys.stdout.flush()
                # Give the launcher a moment to forward the traceback before it kills us.
                time.sleep(0.5)
            finally:
                backend.MPI.COMM_WORLD.Abort(1)

        self._prev_hook = prev
        sys.excepthook = hook

    def close(self):
        self.watchdog.close()
        if self._prev_hook is not None and sys.excepthook is not self._prev_hook:
            sys.excepthook = self._prev_hook
        self._prev_hook = None

    # ------------------------------------------------------------------ guarded collectives
    def guard(self, what):
        return _Guard(self.watchdog, what)

    def allreduce_(self, array, comm=None, what="an allreduce"):
        """Sums ``array`` over the ranks, in place (numpy array, contiguous)."""
        comm = comm or self.comm
        self.watchdog.enter(what)
        try:
            comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)
        finally:
            self.watchdog.leave()
        return array

    def allreduce_max_(self, array, what="an allreduce"):
        self.watchdog.enter(what)
        try:
            self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.MAX)
        finally:
            self.watchdog.leave()
        return array

    def bcast_(self, array, root=0, what="a broadcast"):
        self.watchdog.enter(what)
        try:
            self.comm.Bcast(array, root=root)
        finally:
            self.watchdog.leave()
        return array

    def bcast_obj(self, obj, root=0, what="a broadcast"):
        self.watchdog.enter(what)
        try:
            return self.comm.bcast(obj, root=root)
        finally:
            self.watchdog.leave()

    def allgather_obj(self, obj, what="an allgather"):
        self.watchdog.enter(what)
        try:
            return self.comm.allgather(obj)
        finally:
            self.watchdog.leave()

    def allgatherv(self, send, recv, counts, what="an allgather"):
        self.watchdog.enter(what)
        try:
            self.comm.Allgatherv(send, [recv, counts])
        finally:
            self.watchdog.leave()
        return recv

    def barrier(self, what="a barrier"):
        self.watchdog.enter(what)
        try:
            self.comm.Barrier()
        finally:
            self.watchdog.leave()

    def iallreduce(self, array):
        return self.grad_comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def waitall(self, requests, what="the gradient allreduce"):
        self.watchdog.enter(what)
        try:
            self.MPI.Request.Waitall(requests)
        finally:
            self.watchdog.leave()

    def testall(self, requests):
        return self.MPI.Request.Testall(requests)


class _Guard:
    __slots__ = ("wd", "what")

    def __init__(self, wd, what):
        self.wd, self.what = wd, what

    def __enter__(self):
        self.wd.enter(self.what)

    def __exit__(self, *exc):
        self.wd.leave()
        return False
