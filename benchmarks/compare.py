#!/usr/bin/env python3
"""Times the same training workloads in fastnet, PyTorch and Keras; prints medians and ratios.

usage: python benchmarks/compare.py [--threads N] [--repeats R] [--rounds K]
                                    [--libs fastnet torch keras] [--json out.json] [WORKLOAD ...]

Each workload is timed as steady-state time per training step: the model is fitted
once to warm up, then each repeat times one more epoch (fit on the same data),
divided by the number of steps. All libraries use the same thread count, the
same batch size, optimizer hyperparameters and data. PyTorch and Keras are used
where they are installed (Keras with whatever backend ``KERAS_BACKEND`` selects).

Each library runs in a worker process of its own (two OpenMP runtimes in one
process spin against each other and slow both down); the workers take turns,
``--rounds`` times per workload, so a slow spell of a shared machine hits every
library (``--wait-quiet`` also waits, before each worker, for other jobs to pause
and for the machine to run that many threads in parallel: a virtual machine's host
sometimes puts two of its cores on one physical core for a while; with it, a timed
epoch during which that happened is taken again, for every library alike). Each
figure is the median over all rounds' repeats. Ratios are the other library's time /
fastnet's time (higher is better for fastnet).

``--json`` writes the figures with the machine, the versions and the settings;
``tools/bench_page.py`` turns that file into the docs' benchmarks page.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from workloads import LIBRARIES, WORKLOADS  # noqa: E402


def installed(lib):
    return importlib.util.find_spec(lib) is not None


# ----------------------------------------------------------------------------- worker

def _set_threads(lib, n):
    if lib == "fastnet":
        import fastnet

        fastnet.config.set_num_threads(n)
    elif lib == "torch":
        import torch

        torch.set_num_threads(n)
        torch.set_num_interop_threads(1)
    elif lib == "keras":
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        elif backend == "torch":
            import torch

            torch.set_num_threads(n)


def _versions(lib):
    out = {}
    if lib == "fastnet":
        import numpy
        import scipy

        import fastnet
        from fastnet import _kernels

        out = {"fastnet": fastnet.__version__, "numpy": numpy.__version__,
               "scipy": scipy.__version__, "fastnet_kernels": _kernels.VARIANT}
        try:
            from threadpoolctl import threadpool_info

            out["blas"] = sorted({f"{i.get('internal_api')} {i.get('version')}"
                                  for i in threadpool_info() if i.get("user_api") == "blas"})
        except ImportError:
            pass
    elif lib == "torch":
        import torch

        out = {"torch": torch.__version__}
    elif lib == "keras":
        import keras

        out = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
    return out


def worker(lib, name, threads, repeats, check_cores=0.0):
    """Runs in a subprocess: prints the ms per step of ``repeats`` timed calls as JSON.

    With ``check_cores`` (a parallel efficiency, see parallel_efficiency), a timed
    call counts only when the machine ran ``threads`` threads in parallel just
    before and just after it; otherwise it is taken again once the machine does
    (for up to 60 s per call, after which the last one counts)."""
    if lib == "fastnet":
        sys.path.insert(0, ROOT)  # a source checkout built in place
    _set_threads(lib, threads)
    fn = WORKLOADS[name].runner(lib)
    fn()  # warm-up: the first fit builds buffers and optimizer state
    t = time.perf_counter()
    fn()
    short = time.perf_counter() - t < 0.5
    times = []
    retaken = 0
    check = check_cores > 0 and threads > 1

    def parallel():
        # After a library's call its idle threads spin for a moment: let them settle.
        if check:
            time.sleep(0.2)
        return not check or parallel_efficiency(threads) >= check_cores

    for _ in range(repeats):
        deadline = time.time() + 60
        while True:
            while not parallel() and time.time() < deadline:
                time.sleep(0.5)
            if check and short:
                fn()  # the check's own threads cool the caches of a short epoch
            t = time.perf_counter()
            steps = fn()
            ms = 1e3 * (time.perf_counter() - t) / steps
            if parallel() or time.time() >= deadline:
                break
            retaken += 1
        times.append(ms)
    print(json.dumps({"ms": times, "retaken": retaken, "versions": _versions(lib)}))


def parallel_efficiency(threads, size=192, reps=24):
    """How much of ``threads`` cores the machine gives right now: the time of one
    thread doing a fixed amount of matrix products, over the time of ``threads``
    threads doing that amount each at once (1.0: every thread got a core of its own).
    On a virtual machine the host sometimes runs two of its virtual cores on one
    physical core; a two-thread step then takes as long as a one-thread one."""
    import threading

    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((size, size))

    def work():
        for _ in range(reps):
            a @ a

    with threadpool_limits(1, user_api="blas"):
        work()  # warm
        t = time.perf_counter()
        work()
        one = time.perf_counter() - t
        pool = [threading.Thread(target=work) for _ in range(threads)]
        t = time.perf_counter()
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        many = time.perf_counter() - t
    return one / many if many > 0 else 1.0


MIN_EFFICIENCY = 0.75


def wait_quiet(timeout, threads=1, min_efficiency=MIN_EFFICIENCY):
    """Waits (up to ``timeout`` s) until no other process is running and, with several
    threads, until the machine runs them in parallel (parallel_efficiency at least
    ``min_efficiency``), so that a worker starts on a quiet machine with its cores;
    returns whether it did. The load check is Linux only (True elsewhere)."""
    deadline = time.time() + timeout
    calm = 0
    while time.time() < deadline and calm < 5:
        running = 1
        if os.path.exists("/proc/loadavg"):
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        calm = calm + 1 if running <= 1 else 0
        if calm >= 5 and threads > 1 and parallel_efficiency(threads) < min_efficiency:
            calm = 0
        time.sleep(0.2)
    return calm >= 5


def run_worker(lib, name, threads, repeats, check_cores=0.0):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, name,
           "--threads", str(threads), "--repeats", str(repeats),
           "--check-cores", str(check_cores)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} worker for {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- machine

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    try:
        import psutil  # optional

        memory = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:
        try:
            memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
        except (ValueError, OSError, AttributeError):
            memory = None
    return {"cpu": cpu_model(), "cores": cores, "memory": memory, "system": platform.platform(),
            "python": platform.python_version()}


def git_commit():
    try:
        out = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for every library (default: fastnet's default, the cores available)")
    ap.add_argument("--repeats", type=int, default=5, help="timed epochs per worker")
    ap.add_argument("--rounds", type=int, default=2, help="turns each library's worker takes")
    ap.add_argument("--libs", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    ap.add_argument("--json", default=None, help="write the results to this file")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="before each worker, wait up to this long for no other process to run "
                         "and for the threads to get a core each (a shared or virtual machine)")
    ap.add_argument("--worker", default=None, choices=LIBRARIES, help=argparse.SUPPRESS)
    ap.add_argument("--check-cores", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("workloads", nargs="*")
    a = ap.parse_args(argv)

    unknown = [w for w in a.workloads if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; expected some of {list(WORKLOADS)}")
    if a.worker:
        worker(a.worker, a.workloads[0], a.threads, a.repeats, a.check_cores)
        return 0

    sys.path.insert(0, ROOT)
    import fastnet

    threads = a.threads or fastnet.config.get_num_threads()
    libs = [lib for lib in a.libs if lib == "fastnet" or installed(lib)]
    missing = [lib for lib in a.libs if lib not in libs]
    names = a.workloads or list(WORKLOADS)
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/compare.py"] + (argv if argv is not None else sys.argv[1:])),
            "machine": machine(), "commit": git_commit(), "threads": threads, "repeats": a.repeats, "rounds": a.rounds,
            "libraries": libs, "not_installed": missing, "versions": {},
            "load_average": {"start": load_average()}, "wait_quiet": a.wait_quiet,
            "quiet_starts": [0, 0], "parallel_check": True, "retaken": 0, "rows": []}
    m = info["machine"]
    print(f"# {m['cpu']}, {m['cores']} cores; {threads} threads; libraries {libs}"
          + (f" ({', '.join(missing)} not installed)" if missing else "")
          + f"; load average {info['load_average']['start']}")
    others = [lib for lib in libs if lib != "fastnet"]
    print(f"{'workload':20s} " + " ".join(f"{lib + ' ms':>11s}" for lib in libs)
          + "".join(f" {'x ' + lib:>9s}" for lib in others) + "  target")
    for name in names:
        w = WORKLOADS[name]
        times = {lib: [] for lib in libs}
        for _ in range(a.rounds):
            for lib in libs:
                if a.wait_quiet:
                    info["quiet_starts"][0] += wait_quiet(a.wait_quiet, threads)
                    info["quiet_starts"][1] += 1
                res = run_worker(lib, name, threads, a.repeats,
                                 MIN_EFFICIENCY if a.wait_quiet else 0.0)
                times[lib] += res["ms"]
                info["retaken"] += res.get("retaken", 0)
                info["versions"].update(res["versions"])
        med = {lib: statistics.median(v) for lib, v in times.items()}
        row = {"workload": name, "description": w.description, "unit": w.unit, "target": w.target}
        for lib in LIBRARIES:
            row[f"{lib}_ms"] = med.get(lib)
        for lib in others:
            row[f"{lib}_ratio"] = med[lib] / med["fastnet"]
        info["rows"].append(row)
        mark = ""
        if w.target is not None and "torch" in med:
            mark = f">= {w.target:g}x " + ("ok" if row["torch_ratio"] >= w.target else "SHORT")
        print(f"{name:20s} " + " ".join(f"{med[lib]:11.3f}" for lib in libs)
              + "".join(f" {row[lib + '_ratio']:9.2f}" for lib in others) + f"  {mark}", flush=True)
    info["load_average"]["end"] = load_average()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(info, f, indent=1)
            f.write("\n")
        print(f"# wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
