"""Global settings: float type, epsilon and the threading policy.

fastnet runs one pool of threads. Its kernels parallelise with OpenMP
(``prange``) and call BLAS single-threaded from inside those threads, so the BLAS
library the kernels use is pinned to one thread and every GEMM is split across
the OpenMP team by the kernel itself. Any other BLAS pool in the process (numpy's
own, used by user code) is limited to the same count. OpenMP threads and BLAS
threads together therefore never exceed :func:`get_num_threads`, which defaults
to the cores this process may run on.

Example:
    >>> import fastnet
    >>> fastnet.config.set_num_threads(1)
    >>> fastnet.config.get_num_threads()
    1
"""
from __future__ import annotations

import os

__all__ = [
    "floatx", "set_floatx", "epsilon", "set_epsilon", "image_data_format",
    "set_image_data_format", "get_num_threads", "set_num_threads",
]

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_VALID_FLOATX = ("float32", "float64")


def floatx() -> str:
    """The default float type of weights and computations (``"float32"``)."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """Sets the default float type: ``"float32"`` (default) or ``"float64"``.

    float64 is meant for gradient checks by finite differences; the kernels are
    compiled for both types.
    """
    global _FLOATX
    value = str(value)
    if value not in _VALID_FLOATX:
        raise ValueError(f"Unknown floatx {value!r}; expected one of {list(_VALID_FLOATX)}")
    _FLOATX = value


def epsilon() -> float:
    """The fuzz factor used in losses and metrics (``1e-7``)."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    _EPSILON = float(value)


def image_data_format() -> str:
    return _IMAGE_DATA_FORMAT


def set_image_data_format(value: str) -> None:
    global _IMAGE_DATA_FORMAT
    if value not in ("channels_last", "channels_first"):
        raise ValueError(f"Unknown data format {value!r}; expected 'channels_last' or 'channels_first'")
    _IMAGE_DATA_FORMAT = value


# --------------------------------------------------------------------------- threads

def _available_cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _default_threads():
    for var in ("FASTNET_NUM_THREADS", "OMP_NUM_THREADS"):
        val = os.environ.get(var, "").split(",")[0].strip()
        if val.isdigit() and int(val) > 0:
            return int(val)
    return _available_cores()


# Read by every layer on every kernel call: a plain module global is the cheapest lookup.
_n_threads = _default_threads()
_blas_applied = None


def get_num_threads() -> int:
    """Number of threads fastnet's kernels use."""
    return _n_threads


def set_num_threads(n: int | None = None) -> None:
    """Sets the number of threads for fastnet's kernels and for BLAS.

    Args:
        n: a positive int, or None for the number of cores available to this
            process (or ``FASTNET_NUM_THREADS`` / ``OMP_NUM_THREADS`` when set).
    """
    global _n_threads
    if n is None:
        n = _default_threads()
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads expects a positive int, received {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads expects a positive int, received {n}")
    _n_threads = n
    _apply_blas_policy()


def _kernel_blas_dirs():
    """Folders that hold the BLAS library behind scipy.linalg.cython_blas (a scipy wheel
    bundles its own copy beside the package: ``scipy.libs`` or ``scipy/.dylibs``)."""
    import importlib.util

    spec = importlib.util.find_spec("scipy")
    if spec is None or spec.origin is None:
        return ()
    pkg = os.path.dirname(os.path.realpath(spec.origin))
    return (pkg + os.sep, os.path.join(os.path.dirname(pkg), "scipy.libs") + os.sep)


def _apply_blas_policy():
    """Pins the kernels' BLAS to one thread per caller and other BLAS pools to n.

    The kernels call BLAS from inside their own OpenMP threads, so the library
    they call must not start threads of its own. When it cannot be told apart
    from numpy's (one shared system BLAS), every BLAS pool is pinned to one thread.
    """
    global _blas_applied
    from fastnet._kernels import _blas  # noqa: F401  (loads the kernels' BLAS first)

    if _blas_applied == _n_threads:
        return
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        _blas_applied = _n_threads
        return
    libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    dirs = _kernel_blas_dirs()
    ours = [lib for lib in libs if dirs and os.path.realpath(lib.filepath).startswith(dirs)]
    for lib in libs:
        lib.set_num_threads(1 if (lib in ours or not ours) else _n_threads)
    _blas_applied = _n_threads


_controller = None


def _blas_one_thread():
    """A context in which every BLAS pool runs on the calling thread alone.

    For small one-off LAPACK calls (the orthogonal initializer's QR): on two or more
    threads they run slower, and they leave the BLAS's worker threads spinning for a
    while afterwards, taking cores from the kernels."""
    global _controller
    from threadpoolctl import ThreadpoolController

    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
