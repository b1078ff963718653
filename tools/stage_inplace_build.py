#!/usr/bin/env python3
"""Stages the kernels an in-place build compiled as setuptools' build outputs.

usage: python tools/stage_inplace_build.py && pip wheel --no-build-isolation --no-deps -w dist .

An editable install (``pip install -e .``) or ``setup.py build_ext --inplace``
leaves the compiled kernels next to their sources. This copies each one to where
``build_ext`` writes it for a wheel (``build/lib.<platform>-<tag>/...``), so that
building a wheel right after compiles nothing: setuptools sees up-to-date outputs
(and Cython up-to-date C files) and only packs them. CI uses it to test the wheel
without a second four-minute build. Exits 1 when a kernel has no compiled module,
or one older than its sources (build in place first).
"""
from __future__ import annotations

import glob
import importlib.machinery
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Kernels setup.py builds only where a system library is found (png_decode: zlib);
# their absence is no error.
OPTIONAL = {"png_decode"}


def build_lib() -> str:
    """The folder ``build_ext`` writes extension modules to for a wheel."""
    from setuptools.dist import Distribution

    build = Distribution().get_command_obj("build")
    build.finalize_options()
    return os.path.join(ROOT, build.build_platlib)


def compiled_module(source: str) -> str | None:
    stem = source[:-4]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(stem + suffix):
            return stem + suffix
    return None


def main() -> int:
    kernels = os.path.join(ROOT, "fastnet", "_kernels")
    sources = sorted(glob.glob(os.path.join(kernels, "*.pyx")))
    headers = glob.glob(os.path.join(kernels, "*.pxd")) + glob.glob(os.path.join(kernels, "*.h"))
    newest_header = max((os.path.getmtime(h) for h in headers), default=0.0)
    dest_root = build_lib()
    problems, copied = [], 0
    # Cython regenerates a module's C when any file it depends on is newer, numpy's .pxd
    # included: a fresh environment installs numpy after the editable build compiled the
    # kernels, which made the wheel step regenerate and recompile them all. The C files
    # (and their AVX2 copies) are stamped a second before the staged modules, so both
    # Cython and build_ext see up-to-date outputs.
    now = time.time()
    for src in sources:
        for c_file in (src[:-4] + ".c", os.path.join(ROOT, "build", "fastnet_avx2_sources",
                                                       os.path.basename(src)[:-4] + ".c")):
            if os.path.exists(c_file):
                os.utime(c_file, (now - 1, now - 1))
    for src in sources:
        # The portable build next to the source; the AVX2 build (x86-64) in _avx2/.
        builds = [compiled_module(src)]
        variant = compiled_module(os.path.join(kernels, "_avx2", os.path.basename(src)))
        if variant is not None:
            builds.append(variant)
        if builds[0] is None:
            if os.path.basename(src)[:-4] in OPTIONAL:
                continue
            problems.append(f"{os.path.relpath(src, ROOT)} has no compiled module next to it")
            continue
        for mod in builds:
            if os.path.getmtime(mod) < max(os.path.getmtime(src), newest_header):
                problems.append(f"{os.path.relpath(mod, ROOT)} is older than its sources")
                continue
            dest = os.path.join(dest_root, os.path.relpath(mod, ROOT))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(mod, dest)
            os.utime(dest, (now, now))  # newer than every source: build_ext will skip it
            copied += 1
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("build the kernels in place first: python setup.py build_ext --inplace", file=sys.stderr)
        return 1
    print(f"staged {copied} compiled kernels in {os.path.relpath(dest_root, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
