"""Build script for fastnet's compiled kernels.

Every ``fastnet/_kernels/*.pyx`` module is compiled with optimisation and, where
the compiler supports it, OpenMP. Metadata lives in ``pyproject.toml``.

Environment switches:

* ``FASTNET_DEBUG=1``   Cython bounds/wraparound/initialisation checks on, ``-O0 -g``.
* ``FASTNET_NATIVE=1``  tune for the build machine (``-march=native``); never for wheels.
* ``FASTNET_NO_OPENMP=1`` build serial kernels even if OpenMP is available.
* ``FASTNET_BUILD_ONLY=dense,conv``  compile only these kernel modules (development).
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("FASTNET_DEBUG", "0") not in ("", "0")
NATIVE = os.environ.get("FASTNET_NATIVE", "0") not in ("", "0")


def _compiler_kind():
    if sys.platform == "win32":
        return "msvc"
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return "clang" if ("clang" in cc or sys.platform == "darwin") else "gcc"


def _openmp_flags():
    """Return (compile_args, link_args) enabling OpenMP, or None when unavailable."""
    if os.environ.get("FASTNET_NO_OPENMP", "0") not in ("", "0"):
        return None
    kind = _compiler_kind()
    if kind == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang needs libomp (brew install libomp); cibuildwheel sets the paths.
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "t.c")
        with open(path, "w") as f:
            f.write(src)
        for cflags, lflags in candidates:
            cmd = cc + cflags + [path, "-o", os.path.join(tmp, "t")] + lflags
            cmd += os.environ.get("CFLAGS", "").split() + os.environ.get("LDFLAGS", "").split()
            try:
                ok = subprocess.run(cmd, capture_output=True).returncode == 0
            except OSError:
                ok = False
            if ok:
                return cflags, lflags
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


def _extensions():
    from Cython.Build import cythonize

    only = {s.strip() for s in os.environ.get("FASTNET_BUILD_ONLY", "").split(",") if s.strip()}
    sources = sorted(glob.glob(os.path.join("fastnet", "_kernels", "*.pyx")))
    if only:
        sources = [s for s in sources if os.path.basename(s)[:-4] in only]

    omp = _openmp_flags()
    if omp is None:
        print("fastnet: OpenMP not available; building serial kernels "
              "(install an OpenMP-capable compiler for multi-threaded kernels)", file=sys.stderr)
        omp_c, omp_l = [], []
    else:
        omp_c, omp_l = omp

    if _compiler_kind() == "msvc":
        opt = ["/Od", "/Zi"] if DEBUG else ["/O2", "/fp:precise"]
    else:
        opt = ["-O0", "-g"] if DEBUG else ["-O3", "-fno-math-errno", "-fno-trapping-math"]
        if NATIVE:
            opt.append("-march=native")
        opt.append("-Wno-unreachable-code")

    import numpy

    headers = sorted(glob.glob(os.path.join("fastnet", "_kernels", "*.h"))
                     + glob.glob(os.path.join("fastnet", "_kernels", "*.pxd")))
    exts = []
    for src in sources:
        mod = src[:-4].replace(os.sep, ".")
        exts.append(Extension(
            mod, [src],
            include_dirs=[numpy.get_include(), os.path.join("fastnet", "_kernels")],
            extra_compile_args=opt + omp_c,
            extra_link_args=omp_l,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
            depends=headers,
        ))
    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "initializedcheck": DEBUG,
        "nonecheck": DEBUG,
        "cdivision": not DEBUG,
        "cpow": True,
        "embedsignature": True,
        "freethreading_compatible": True,
    }
    return cythonize(exts, compiler_directives=directives,
                     nthreads=int(os.environ.get("FASTNET_CYTHON_JOBS", "0")) or None,
                     quiet=True)


setup(ext_modules=_extensions())
