#!/usr/bin/env python3
"""Turns the JSON that ``benchmarks/compare.py --json`` writes into the docs' benchmarks page parts.

usage: python tools/bench_page.py [RESULTS.json] [--out docs/generated/benchmarks] [--check]

Writes, next to the results (by default ``docs/generated/benchmarks``):

* ``table.rst``: one row per workload, the median ms per step of each library and
  how many times faster fastnet is;
* ``machine.rst``: the machine, the versions and the settings of the run;
* ``benchmarks.png``: the bar chart (with matplotlib).

``--check`` regenerates the two tables in memory and exits 1 when the committed
ones differ from them (``tests/docs`` runs it), so the page always shows the
committed results.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DIR = os.path.join(ROOT, "docs", "generated", "benchmarks")
LABELS = {"fastnet": "fastnet", "torch": "PyTorch", "keras": "Keras"}
COLORS = {"fastnet": "#2a7ab9", "torch": "#ee4c2c", "keras": "#8c8c8c"}


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _libs(results: dict) -> list[str]:
    return [lib for lib in ("fastnet", "torch", "keras") if lib in results["libraries"]]


def table_rst(results: dict) -> str:
    libs = _libs(results)
    others = [lib for lib in libs if lib != "fastnet"]
    header = (["Workload", "What it runs"] + [f"{LABELS[lib]} (ms)" for lib in libs]
              + [f"{LABELS[lib]} / fastnet" for lib in others])
    widths = [12, 46] + [10] * len(libs) + [10] * len(others)
    lines = [".. list-table:: Median time per step (ms; a whole predict pass for predict workloads)",
             "   :header-rows: 1",
             "   :widths: " + " ".join(str(w) for w in widths), ""]
    rows = [header]
    for row in results["rows"]:
        cells = [f"``{row['workload']}``", row["description"]]
        cells += [_ms(row.get(f"{lib}_ms")) for lib in libs]
        cells += [f"{row[lib + '_ratio']:.2f}x" for lib in others]
        rows.append(cells)
    for cells in rows:
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" for c in cells[1:]]
    return "\n".join(lines) + "\n"


def machine_rst(results: dict) -> str:
    m, v = results["machine"], results["versions"]
    libs = _libs(results)
    commit = f", commit {results['commit']}" if results.get("commit") else ""
    versions = [f"fastnet {v.get('fastnet')}{commit} ({v.get('fastnet_kernels')} kernels)",
                f"numpy {v.get('numpy')}", f"SciPy {v.get('scipy')}"]
    if v.get("blas"):
        versions.append("BLAS " + ", ".join(v["blas"]))
    if "torch" in libs:
        versions.append(f"PyTorch {v.get('torch')}")
    if "keras" in libs:
        versions.append(f"Keras {v.get('keras')} ({v.get('keras_backend')} backend)")
    load = results.get("load_average", {})
    lines = [
        f"* **Machine:** {m['cpu']}, {m['cores']} cores available"
        + (f", {m['memory']}" if m.get("memory") else "") + f"; {m['system']}",
        f"* **Threads:** {results['threads']} for every library",
        f"* **Versions:** Python {m['python']}; " + "; ".join(versions),
        f"* **Run:** {results['date']}, ``{results['command']}``: {results['rounds']} rounds of "
        f"{results['repeats']} timed epochs per library and workload; load average "
        f"{load.get('start')} at the start, {load.get('end')} at the end",
    ]
    quiet = results.get("quiet_starts") or [0, 0]
    if quiet[1]:
        cores = (", their threads each on a core of their own" if results.get("threads", 1) > 1
                 and results.get("parallel_check") else "")
        lines[-1] += (f"; {quiet[0]} of {quiet[1]} workers started with no other process running"
                      f"{cores} (each waited up to {results['wait_quiet']:g} s for that)")
        if "retaken" in results:
            lines[-1] += (f"; {results['retaken']} timed epochs overlapped a spell in which the "
                          "threads did not run in parallel, and were taken again")
    if results.get("not_installed"):
        lines.append("* **Not installed there:** " + ", ".join(LABELS[x] for x in results["not_installed"]))
    return "\n".join(lines) + "\n"


def bar_chart(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    libs = _libs(results)
    rows = results["rows"]
    names = [r["workload"] for r in rows]
    y = np.arange(len(rows))
    height = 0.8 / len(libs)
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) * max(1, len(libs) / 2) + 1.5))
    for k, lib in enumerate(libs):
        vals = [r.get(f"{lib}_ms") or np.nan for r in rows]
        pos = y + (k - (len(libs) - 1) / 2) * height
        ax.barh(pos, vals, height=height, color=COLORS[lib], label=LABELS[lib])
        for p, v, r in zip(pos, vals, rows):
            if np.isfinite(v):
                text = _ms(v) + (f"  ({r[lib + '_ratio']:.1f}x)" if lib != "fastnet" else "")
                ax.text(v * 1.08, p, text, va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds per step, log scale (lower is faster; in brackets: time / fastnet's)")
    lo = min(r[f"{lib}_ms"] for r in rows for lib in libs if r.get(f"{lib}_ms"))
    hi = max(r[f"{lib}_ms"] for r in rows for lib in libs if r.get(f"{lib}_ms"))
    ax.set_xlim(lo / 2, hi * 12)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    m = results["machine"]
    ax.set_title(f"{m['cpu']}, {results['threads']} threads: medians", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default=os.path.join(DEFAULT_DIR, "results.json"))
    ap.add_argument("--out", default=None, help="folder for the page parts (default: the results' folder)")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    with open(a.results, encoding="utf-8") as f:
        results = json.load(f)
    out = a.out or os.path.dirname(os.path.abspath(a.results))
    parts = {"table.rst": table_rst(results), "machine.rst": machine_rst(results)}
    if a.check:
        stale = []
        for name, text in parts.items():
            path = os.path.join(out, name)
            if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
                stale.append(path)
        if not os.path.exists(os.path.join(out, "benchmarks.png")):
            stale.append(os.path.join(out, "benchmarks.png"))
        for path in stale:
            print(f"{path} is not what {a.results} gives: run python tools/bench_page.py")
        return 1 if stale else 0
    os.makedirs(out, exist_ok=True)
    for name, text in parts.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
    bar_chart(results, os.path.join(out, "benchmarks.png"))
    print(f"wrote table.rst, machine.rst and benchmarks.png to {os.path.relpath(out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
