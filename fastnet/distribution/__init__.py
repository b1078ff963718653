"""Data-parallel training on many processes through MPI, in the shape of Keras 3's
distribution API.

Launch the same script on N processes (``mpiexec -n 4 python train.py``) and add one
line before the model is built::

    import fastnet
    fastnet.distribution.set_distribution(fastnet.distribution.DataParallel())

Every process (rank) then passes the same arrays to ``fit``; ``batch_size`` is the
global batch. Each global batch is split across the ranks (rank r takes a contiguous
block of rows), each rank computes the gradients of its rows, the gradients are
summed with MPI allreduce and every rank applies the same optimizer step, so N ranks
train exactly as one process with the same global batch (the same weights after
every step, within float rounding), Dropout masks included. ``evaluate`` and
``predict`` split their batches the same way and return the full result on every
rank. Only rank 0 prints progress and writes files (ModelCheckpoint, CSVLogger).

Without an MPI launcher, or on one process, a script with ``set_distribution`` runs
exactly as it does without it. See ``docs/distributed.md`` for launching on a cluster
and for what is supported.
"""
from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from fastnet.distribution import _mpi

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    from fastnet.distribution._runner import Runner
    from fastnet.layers.normalization import BatchNormalization
    from fastnet.models.model import Model

__all__ = ["DataParallel", "set_distribution", "distribution", "list_devices", "initialize",
           "process_id", "num_processes", "is_chief"]

_ACTIVE = None          # the distribution in force (set_distribution)
_BACKEND = None         # one per process: MPI is initialised once


def _backend(timeout):
    """The process's MPI backend (created on first use), or a one-process stand-in
    when the script was not started by an MPI launcher."""
    global _BACKEND
    if _BACKEND is None:
        if _mpi.launched_by_mpi():
            _BACKEND = _mpi.Backend(timeout=timeout)
        else:
            _BACKEND = _mpi.LocalBackend()
    return _BACKEND


def initialize(job_addresses: str | Sequence[str] | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Starts the multi-process runtime (MPI) for this process; optional, as
    ``set_distribution`` does it too.

    The launcher (``mpiexec``/``mpirun``/``srun``) decides the processes, so the
    arguments are only checked against it: ``num_processes`` and ``process_id``, when
    given, must match what MPI reports. ``job_addresses`` is not used (MPI finds the
    other processes itself).
    """
    be = _backend(_mpi.timeout_from_env())
    if num_processes is not None and int(num_processes) != be.size:
        raise ValueError(f"initialize(num_processes={num_processes}) but the launcher started "
                         f"{be.size} process(es); start the script with mpiexec -n {num_processes}")
    if process_id is not None and int(process_id) != be.rank:
        raise ValueError(f"initialize(process_id={process_id}) but MPI says this process is rank "
                         f"{be.rank}")
    del job_addresses


def list_devices(device_type: str | None = None) -> list[str]:
    """The devices data parallelism spreads over: one ``"cpu:<rank>"`` per process."""
    if device_type is not None and str(device_type).lower() != "cpu":
        raise ValueError(f"fastnet runs on CPUs only; list_devices(device_type={device_type!r}) "
                         f"has no devices (use 'cpu' or None)")
    be = _BACKEND if _BACKEND is not None else _backend(_mpi.timeout_from_env())
    return [f"cpu:{i}" for i in range(be.size)]


def process_id() -> int:
    """This process's rank (0 without MPI)."""
    return (_BACKEND or _backend(_mpi.timeout_from_env())).rank


def num_processes() -> int:
    """The number of processes training together (1 without MPI)."""
    return (_BACKEND or _backend(_mpi.timeout_from_env())).size


def is_chief() -> bool:
    """True on rank 0, the process that prints and writes files (and without MPI)."""
    return process_id() == 0


class DataParallel:
    """Data parallelism over the processes an MPI launcher started.

    Args:
        device_mesh: not supported (None): fastnet's mesh is one process per device.
        devices: None (every process), or the full list ``list_devices()`` returns.
        auto_shard_dataset: must be True: every process passes the same arrays and
            fastnet gives each its rows of every batch.
        sync_batchnorm: synchronise the batch statistics of every BatchNormalization
            layer across processes (the same as giving each ``synchronized=True``). By
            default each process normalises with the statistics of its own rows, as
            Keras does, and the moving statistics are averaged over the processes.
        allreduce: how gradients are summed. ``"mpi"`` (default): MPI_Iallreduce on
            buckets of the flat gradient buffer (the MPI library picks its algorithm, for
            shared memory and for networks); ``"shared"``: the ranks of a machine add them
            up themselves in MPI-3 shared memory (each rank one slice of everyone's
            buffers) and one rank per machine sums the machines' totals with
            MPI_Allreduce. The two measured the same with 2 ranks (docs/distributed.md).
        overlap: with ``allreduce="mpi"``, start the allreduce of a bucket as soon as the
            backward pass has produced it, while earlier layers are still running,
            instead of after the backward pass. Measured no faster here (MPI makes
            progress only inside MPI calls on CPUs), so off by default.
        bucket_size_mb: gradients travel in buckets (whole layers; chunks of the shared
            window) of about this many megabytes.
        timeout: seconds a process waits for the others in one collective operation
            before it stops with an error (a dead or hung process then cannot leave the
            rest blocked). None: ``FASTNET_MPI_TIMEOUT`` or 600; 0 turns the check off.
        check_weights: at the end of ``fit``, compare a checksum of the weights across
            processes and re-broadcast rank 0's (with a warning) if they drifted apart.

    Attributes:
        rank / process_id: this process's index; num_processes: how many there are.
    """

    def __init__(self, device_mesh: Any = None, devices: Sequence[str] | None = None, auto_shard_dataset: bool = True,
                 *, sync_batchnorm: bool = False, allreduce: str = "mpi", overlap: bool = False,
                 bucket_size_mb: float = 8.0, timeout: float | None = None, check_weights: bool = True) -> None:
        if device_mesh is not None:
            raise NotImplementedError(
                "fastnet's DataParallel takes no device_mesh: it runs one process per device, "
                "as many as mpiexec starts; pass devices=None")
        if not auto_shard_dataset:
            raise NotImplementedError(
                "DataParallel(auto_shard_dataset=False) is not supported: every process passes "
                "the same arrays to fit/evaluate/predict and fastnet splits each batch across them")
        if isinstance(bucket_size_mb, bool) or not isinstance(bucket_size_mb, (int, float)) \
                or not bucket_size_mb > 0:
            raise ValueError(f"bucket_size_mb must be a positive number, received {bucket_size_mb!r}")
        if timeout is None:
            timeout = _mpi.timeout_from_env()
        elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"timeout must be a non-negative number of seconds, received {timeout!r}")
        else:
            timeout = float(timeout) or None
        if allreduce not in ("shared", "mpi"):
            raise ValueError(f"allreduce must be 'shared' or 'mpi', received {allreduce!r}")
        self.sync_batchnorm = bool(sync_batchnorm)
        self.allreduce = allreduce
        self.overlap = bool(overlap)
        if self.overlap and allreduce != "mpi":
            raise ValueError("overlap=True needs allreduce='mpi' (the shared-memory sum runs "
                             "after the backward pass)")
        self.bucket_size_mb = float(bucket_size_mb)
        self.timeout = timeout
        self.check_weights = bool(check_weights)
        self.auto_shard_dataset = True
        self.batch_dim_name = "batch"
        self._backend = _backend(timeout)
        self._backend.set_timeout(timeout)
        all_devices = list_devices()
        if devices is not None:
            devices = [str(d) for d in devices]
            if sorted(devices) != sorted(all_devices):
                raise NotImplementedError(
                    f"DataParallel(devices=...) must list every process's device {all_devices}: "
                    f"fastnet trains on all processes the launcher started, received {devices}")
        self.devices = all_devices
        self._saved = None

    # ------------------------------------------------------------------ identity
    @property
    def rank(self) -> int:
        return self._backend.rank

    process_id = rank

    @property
    def num_processes(self) -> int:
        return self._backend.size

    @property
    def is_chief(self) -> bool:
        return self._backend.rank == 0

    def __repr__(self):
        return (f"<DataParallel rank {self.rank} of {self.num_processes}"
                f"{', sync_batchnorm' if self.sync_batchnorm else ''}; MPI: {self._backend.library}>")

    # ------------------------------------------------------------------ scope
    @contextlib.contextmanager
    def scope(self) -> Iterator[DataParallel]:
        """Makes this the distribution in force inside a ``with`` block."""
        previous = _ACTIVE
        set_distribution(self)
        try:
            yield self
        finally:
            set_distribution(previous)

    def _node_sum(self, dtype):
        """The shared-memory gradient sum for arrays of ``dtype`` (one window per dtype,
        made on first use by every rank at once, kept for the process's lifetime)."""
        import numpy as np

        key = np.dtype(dtype).str
        sums = self._backend.__dict__.setdefault("_node_sums", {})
        s = sums.get((key, self.bucket_size_mb))
        if s is None:
            from fastnet.distribution._shm import NodeAllreduce

            chunk = max(1, int(self.bucket_size_mb * 2 ** 20 / np.dtype(dtype).itemsize))
            with self._backend.guard("setting up shared-memory gradient sums"):
                s = sums[(key, self.bucket_size_mb)] = NodeAllreduce(
                    self._backend, self._backend.grad_comm, dtype, chunk)
        return s

    # ------------------------------------------------------------------ activation
    def _activate(self):
        if self._backend.size == 1 or self._saved is not None:
            return
        from fastnet import config
        from fastnet.utils import progbar

        saved = {"threads": None, "write": None}
        if not any(os.environ.get(v, "").strip() for v in ("FASTNET_NUM_THREADS", "OMP_NUM_THREADS")) \
                and config.get_num_threads() == config._available_cores():
            # Processes on one machine share its cores (unless the thread count was chosen).
            saved["threads"] = config.get_num_threads()
            per_rank = max(1, config._available_cores() // max(1, self._backend.local_size))
            if per_rank != saved["threads"]:
                config.set_num_threads(per_rank)
        if self._backend.rank != 0:
            # Only rank 0 prints: fastnet's progress bars and callback messages all go
            # through progbar._write.
            saved["write"] = progbar._write
            progbar._write = _silent_write
        self._saved = saved

    def _deactivate(self):
        saved, self._saved = self._saved, None
        if not saved:
            return
        from fastnet import config
        from fastnet.utils import progbar

        if saved["threads"] is not None:
            config.set_num_threads(saved["threads"])
        if saved["write"] is not None:
            progbar._write = saved["write"]


def _silent_write(message):
    """Stands in for fastnet's output function on ranks other than 0."""


def set_distribution(value: DataParallel | None) -> None:
    """Sets the distribution that ``fit``, ``evaluate`` and ``predict`` use (None: none)."""
    global _ACTIVE
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(f"set_distribution expects a fastnet.distribution.DataParallel or None, "
                        f"received {type(value).__name__}: {value!r}")
    if _ACTIVE is not None and _ACTIVE is not value:
        _ACTIVE._deactivate()
    _ACTIVE = value
    if value is not None:
        value._activate()


def distribution() -> DataParallel | None:
    """The distribution in force, or None."""
    return _ACTIVE


# ---------------------------------------------------------------------- model hooks
def runner(model: Model) -> Runner | None:
    """What fit/evaluate/predict of ``model`` use to split work across processes, or None
    when no distribution is set or there is only one process (the loops then run as on
    one process)."""
    d = _ACTIVE
    if d is None or d._backend.size == 1:
        return None
    r = model.__dict__.get("_dist_runner")
    if r is None or r.dist is not d:
        from fastnet.distribution._runner import Runner

        r = Runner(d, model)
        model.__dict__["_dist_runner"] = r
    return r


def batchnorm_sync(layer: BatchNormalization) -> Any:
    """The synchronised-statistics helper for ``layer`` (a BatchNormalization in a training
    step of a data-parallel fit), or None when it normalises with its own rows' statistics."""
    from fastnet.distribution import _runner

    step = _runner.CURRENT
    if step is None or not (layer.synchronized or step.dist.sync_batchnorm):
        return None
    return step.sync_for(layer)
