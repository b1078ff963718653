#!/usr/bin/env python3
"""Runs the tutorial's code blocks and writes their outputs and figures into the docs.

usage: python tools/run_tutorial.py [--page docs/tutorial.rst] [--check]

Every ``.. code-block:: python`` of the page runs in order in a scratch folder;
the output of each block with a ``:name:`` that prints goes to
``docs/generated/<page>/<name>.txt`` and every PNG the blocks write is copied
beside them. A block that prints without a ``:name:`` is an error (its output
would not be shown), and so is a named block whose output file the page does not
include. ``--check`` writes nothing and exits 1 when the committed outputs differ
beyond timings and float rounding (what ``tests/docs/test_examples.py`` checks).
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's fastnet

import doc_examples as dx  # noqa: E402

REL_TOL, ABS_TOL = 2e-2, 5e-3  # numbers in progress lines, losses, accuracies


def run_page(page: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """(outputs by block name, figures by file name) of one run of ``page``."""
    blocks = dx.python_blocks(page)
    with tempfile.TemporaryDirectory() as work:
        outputs = dx.run_blocks(blocks, work, compile_only_missing=False)
        figures = {}
        for path in sorted(glob.glob(os.path.join(work, "*.png"))):
            with open(path, "rb") as f:
                figures[os.path.basename(path)] = f.read()
    named = {}
    for k, block in enumerate(blocks):
        text = outputs[k]
        if block.name and text.strip():
            named[block.name] = dx.clean_output(text)
        elif text.strip():
            raise SystemExit(f"{block.where()} prints but has no :name:, so its output is not shown")
    return named, figures


def out_dir(page: str) -> str:
    return os.path.join(dx.GENERATED, os.path.splitext(os.path.basename(page))[0])


def differences(expected: str, got: str) -> list[str]:
    """How ``got`` differs from ``expected`` beyond timings and float rounding."""
    words_e, nums_e = dx.comparable(expected)
    words_g, nums_g = dx.comparable(got)
    if words_e != words_g or len(nums_e) != len(nums_g):
        return ["the text differs:\n--- committed ---\n" + expected + "--- this run ---\n" + got]
    return [f"number {i}: committed {a}, this run {b}" for i, (a, b) in enumerate(zip(nums_e, nums_g))
            if not math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)]


def check(page: str, named: dict[str, str], figures: dict[str, bytes]) -> list[str]:
    """Problems with the committed outputs of ``page`` against a fresh run."""
    folder = out_dir(page)
    with open(page, encoding="utf-8") as f:
        text = f.read()
    rel = os.path.relpath(folder, os.path.dirname(page)).replace(os.sep, "/")
    problems = []
    for name, got in named.items():
        path = os.path.join(folder, name + ".txt")
        if f"{rel}/{name}.txt" not in text:
            problems.append(f"{name}: the page does not include {rel}/{name}.txt")
        if not os.path.exists(path):
            problems.append(f"{name}: {path} is missing")
            continue
        with open(path, encoding="utf-8") as f:
            problems += [f"{name}: {p}" for p in differences(f.read(), got)]
    for name in figures:
        if not os.path.exists(os.path.join(folder, name)):
            problems.append(f"figure {name} is missing from {folder}")
    stale = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(folder, "*.txt"))} - set(named)
    problems += [f"{folder}/{s}.txt belongs to no block" for s in sorted(stale)]
    return problems


def write(page: str, named: dict[str, str], figures: dict[str, bytes]) -> None:
    folder = out_dir(page)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, text in named.items():
        with open(os.path.join(folder, name + ".txt"), "w", encoding="utf-8") as f:
            f.write(text)
    for name, data in figures.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(named)} outputs and {len(figures)} figures to {os.path.relpath(folder, dx.ROOT)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--page", default=os.path.join(dx.DOCS, "tutorial.rst"))
    ap.add_argument("--check", action="store_true", help="compare with the committed outputs")
    a = ap.parse_args(argv)
    named, figures = run_page(a.page)
    if a.check:
        problems = check(a.page, named, figures)
        for p in problems:
            print(p)
        return 1 if problems else 0
    write(a.page, named, figures)
    problems = check(a.page, named, figures)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
