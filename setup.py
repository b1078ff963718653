"""Build script for fastnet's compiled kernels.

Every ``fastnet/_kernels/*.pyx`` module is compiled with optimisation and, where
the compiler supports it, OpenMP. Metadata lives in ``pyproject.toml``.

Environment switches:

* ``FASTNET_DEBUG=1``   Cython bounds/wraparound/initialisation checks on, ``-O0 -g``.
* ``FASTNET_NATIVE=1``  tune for the build machine (``-march=native``); never for wheels.
* ``FASTNET_NO_OPENMP=1`` build serial kernels even if OpenMP is available.
* ``FASTNET_BUILD_ONLY=dense,conv``  compile only these kernel modules (development).
* ``FASTNET_NO_VARIANTS=1`` skip the AVX2 build of the kernels on x86-64.

``png_decode`` (the PNG decoder of ``image_dataset_from_directory``) links zlib and is
built only where a test program including ``zlib.h`` compiles and links with ``-lz``
(and not on Windows); without it fastnet decodes every image with Pillow.

On x86-64 every kernel module is compiled twice: the portable build, and a copy,
``fastnet._kernels._avx2.<name>``, compiled from the same C with AVX2 and FMA.
``fastnet._kernels`` loads the AVX2 build when the CPU has those instructions, so
one wheel is both portable and fast on current CPUs (docs/kernels.rst says what
gains). The copies of the C files for that build are written under ``build/``,
never into the source tree; only the compiled modules land in
``fastnet/_kernels/_avx2`` (as the portable ones land next to their sources) when
building in place.
"""
import glob
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

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
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    for cflags, lflags in candidates:
        if _compiles(src, cflags, lflags):
            return cflags, lflags
    return None


def _compiles(src, cflags, lflags):
    """True when the C program ``src`` compiles and links here with these flags."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "t.c")
        with open(path, "w") as f:
            f.write(src)
        cmd = cc + cflags + [path, "-o", os.path.join(tmp, "t")] + lflags
        cmd += os.environ.get("CFLAGS", "").split() + os.environ.get("LDFLAGS", "").split()
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _zlib_available():
    """True when a C program including zlib.h compiles and links with -lz here."""
    if sys.platform == "win32" or _compiler_kind() == "msvc":
        # The decoder opens files by their POSIX (bytes) path: Windows paths are UTF-16.
        return False
    src = "#include <zlib.h>\nint main(void){z_stream s={0};return inflateInit(&s)==Z_OK?inflateEnd(&s):1;}\n"
    return _compiles(src, [], ["-lz"])


KERNELS = os.path.join("fastnet", "_kernels")
# Where the AVX2 build's copies of the generated C go: a build output, kept out of the package.
VARIANT_SOURCES = os.path.join("build", "fastnet_avx2_sources")
# Modules that hold process state or no hot loops are built once (_cpu must: it
# decides whether the CPU can load the other build; png_decode's time goes to reading
# files and to zlib).
_NOT_VARIANTED = {"_blas", "_cpu", "png_decode"}
# Modules that link a system library, built only where it is found: name -> libraries.
_LIBRARIES = {"png_decode": ["z"]}


def _variant_flags():
    """Compiler flags for the AVX2 copy, or None where it does not apply."""
    if os.environ.get("FASTNET_NO_VARIANTS", "0") not in ("", "0") or NATIVE:
        return None
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return None
    archflags = os.environ.get("ARCHFLAGS", "") + os.environ.get("_PYTHON_HOST_PLATFORM", "")
    if "arm64" in archflags or "aarch64" in archflags:  # cross-compiling for Arm
        return None
    return ["/arch:AVX2"] if _compiler_kind() == "msvc" else ["-mavx2", "-mfma", "-mf16c"]


def _write_if_changed(path, text):
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path, "w") as f:
        f.write(text)


def _variant_extensions(extensions, flags):
    """AVX2 builds of the already-cythonized kernels: the same C, compiled again.

    The C keeps its canonical module name (fastnet._kernels.<name>), so the copy
    loaded by fastnet._kernels under that name shares every cimported type and
    exported function signature with the portable build.
    """
    os.makedirs(VARIANT_SOURCES, exist_ok=True)
    out = []
    for ext in extensions:
        leaf = ext.name.rsplit(".", 1)[1]
        if leaf in _NOT_VARIANTED:
            continue
        (c_source,) = ext.sources
        with open(c_source) as f:
            code = f.read()
        copy = os.path.join(VARIANT_SOURCES, os.path.basename(c_source))
        _write_if_changed(copy, "/* AVX2 build of " + c_source.replace(os.sep, "/")
                          + ", copied by setup.py. */\n" + code)
        out.append(Extension(
            "fastnet._kernels._avx2." + leaf, [copy],
            include_dirs=ext.include_dirs,
            extra_compile_args=ext.extra_compile_args + flags,
            extra_link_args=ext.extra_link_args,
            define_macros=ext.define_macros,
            libraries=ext.libraries,
            depends=ext.depends,
        ))
    return out


def _extensions():
    from Cython.Build import cythonize

    only = {s.strip() for s in os.environ.get("FASTNET_BUILD_ONLY", "").split(",") if s.strip()}
    sources = sorted(glob.glob(os.path.join("fastnet", "_kernels", "*.pyx")))
    if only:
        sources = [s for s in sources if os.path.basename(s)[:-4] in only]
    if any(os.path.basename(s) == "png_decode.pyx" for s in sources) and not _zlib_available():
        print("fastnet: zlib (zlib.h, -lz) not available; not building the PNG decoder "
              "(image folders decode with Pillow alone)", file=sys.stderr)
        sources = [s for s in sources if os.path.basename(s) != "png_decode.pyx"]

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
            include_dirs=[numpy.get_include(), KERNELS],
            extra_compile_args=opt + omp_c,
            extra_link_args=omp_l,
            libraries=_LIBRARIES.get(os.path.basename(src)[:-4], []),
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
    exts = cythonize(exts, compiler_directives=directives,
                     nthreads=int(os.environ.get("FASTNET_CYTHON_JOBS", "0"))
                     or (os.cpu_count() if os.name == "posix" else None),
                     quiet=True)
    variant = _variant_flags()
    if variant is not None:
        exts += _variant_extensions(exts, variant)
    return exts


class build_ext(_build_ext):
    """Compiles the extension modules in parallel (one job per core) unless told otherwise."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            jobs = os.environ.get("FASTNET_BUILD_JOBS")
            self.parallel = int(jobs) if jobs else (os.cpu_count() or 1)


setup(ext_modules=_extensions(), cmdclass={"build_ext": build_ext})
