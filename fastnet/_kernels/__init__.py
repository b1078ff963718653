"""fastnet's compiled kernels (Cython, OpenMP, BLAS).

On x86-64 each kernel module is also built with AVX2 and FMA, in ``_avx2``. When
the CPU has those instructions, importing ``fastnet._kernels.<name>`` loads that
build under the same module name, so callers never choose. Set
``FASTNET_KERNELS=baseline`` to force the portable build (``avx2`` to require the
other; ``auto`` is the default). ``VARIANT`` says which one this process uses.
"""
import importlib.machinery
import importlib.util
import os
import sys

__all__ = ["VARIANT"]


def _default_wait_policy():
    """Bounds how long the OpenMP runtime's idle threads spin before they sleep
    (``GOMP_SPINCOUNT=30000``, a few tens of microseconds) unless the user chose a policy
    (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME``).

    The runtime reads its settings once, when the first kernel module loads it, so this runs
    before any. A training step opens dozens of short parallel regions back to back: a
    short spin keeps the hand-off between them fast. The runtime's own default spins about
    ten times longer, through every pause of the step (Python, the loss, data loading), so
    where cores are shared (a data-loading thread, BLAS threads, other processes) the
    spinning threads take the time of the threads doing the work: a step took up to four
    times as long on a busy 2-core machine. Sleeping at once (``OMP_WAIT_POLICY=passive``)
    helps most under load but made a quiet machine's convolutional step about a quarter
    slower.
    """
    if not any(v in os.environ for v in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
        os.environ["GOMP_SPINCOUNT"] = "30000"


_default_wait_policy()

_HERE = os.path.dirname(os.path.abspath(__file__))
_PREFIX = __name__ + "."


def _cpu_has_avx2():
    # Read from CPUID by a module built once, for every CPU (not a private table of
    # another library's, which could move): AVX, AVX2, FMA and F16C, and an OS that
    # saves the 256-bit registers. Imported by file before the finder below exists.
    from fastnet._kernels import _cpu

    return _cpu.has_avx2()


def _variant_dir():
    choice = os.environ.get("FASTNET_KERNELS", "auto").strip().lower() or "auto"
    if choice not in ("auto", "baseline", "avx2"):
        raise ValueError(f"FASTNET_KERNELS must be 'auto', 'baseline' or 'avx2', received {choice!r}")
    folder = os.path.join(_HERE, "_avx2")
    if choice == "baseline":
        return None
    if choice == "avx2":
        if not os.path.isdir(folder):
            raise ImportError("FASTNET_KERNELS=avx2, but this fastnet was built without the AVX2 kernels")
        if not _cpu_has_avx2():
            raise ImportError("FASTNET_KERNELS=avx2, but this CPU lacks AVX2/FMA")
        return folder
    return folder if os.path.isdir(folder) and _cpu_has_avx2() else None


class _VariantFinder:
    """Loads ``fastnet._kernels.<name>`` from the AVX2 folder when it has that module."""

    def __init__(self, folder):
        self.folder = folder

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(_PREFIX):
            return None
        leaf = fullname[len(_PREFIX):]
        if "." in leaf or leaf.startswith("_avx2"):
            return None
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = os.path.join(self.folder, leaf + suffix)
            if os.path.exists(candidate):
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None


_DIR = _variant_dir()
VARIANT = "avx2" if _DIR else "baseline"
if _DIR is not None and not any(isinstance(f, _VariantFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _VariantFinder(_DIR))
