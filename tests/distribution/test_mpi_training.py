"""Data-parallel training on 1, 2 and 4 MPI processes against one process.

Each test launches ``mpiexec`` in a subprocess (with a timeout) on the scripts beside
this file. They are skipped only when mpi4py or an ``mpiexec`` is absent (the ``mpi`` extra
installs both), and never in CI (tests/helpers.py: optional_required).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time

import numpy as np
import pytest
from helpers import optional_import, skip_unless

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = ["mlp_dropout", "cnn", "lstm", "lstm_dropout", "bn_sync", "bn_local", "weighted", "sum_frozen",
         "files"]
EQUAL_TO_ONE_PROCESS = ["mlp_dropout", "cnn", "lstm", "bn_sync", "weighted", "sum_frozen", "files"]
RANKS = [1, 2, 4]


def _mpiexec():
    names = ("mpiexec", "mpiexec.exe", "mpirun")
    folders = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


optional_import("mpi4py", "mpi")
MPIEXEC = _mpiexec()
skip_unless(MPIEXEC is not None, "needs an mpiexec (the mpi extra installs MPICH's: pip install -e '.[test,mpi]')")


def _env(**extra):
    env = dict(os.environ)
    env["FASTNET_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FASTNET_MPI", None)
    env.update(extra)
    return env


def _launch(n, script, *args, timeout=120, env=None):
    cmd = [sys.executable, os.path.join(HERE, script), *args]
    if n:
        cmd = [MPIEXEC, "-n", str(n)] + cmd
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env(),
                          stdin=subprocess.DEVNULL)
    return proc, time.perf_counter() - t


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs every case once on one process (no mpiexec) and under mpiexec -n 1, 2, 4."""
    out = tmp_path_factory.mktemp("mpi_cases")
    results = {}
    for n in [0] + RANKS:
        d = out / f"n{n}"
        d.mkdir()
        proc, _ = _launch(n, "mpi_cases.py", str(d))
        assert proc.returncode == 0, f"mpiexec -n {n} failed:\n{proc.stdout}\n{proc.stderr}"
        results[n] = (d, proc)
    return results


def _load(d, case, tag):
    z = np.load(d / f"{case}_{tag}.npz")
    arrays = {k: z[k] for k in z.files if k != "meta"}
    return arrays, json.loads(str(z["meta"]))


def _tag(n, r):
    return f"rank{r}of{n}"


@pytest.mark.parametrize("n", RANKS)
@pytest.mark.parametrize("case", EQUAL_TO_ONE_PROCESS)
def test_ranks_train_as_one_process(runs, case, n):
    """Weights after several steps (uneven last batches included), history, evaluate and
    predict equal one process's with the same global batch."""
    ref, ref_meta = _load(runs[0][0], case, "single")
    got, meta = _load(runs[n][0], case, _tag(n, 0))
    assert set(got) == set(ref)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=f"{case} {k}")
    for key, values in ref_meta["history"].items():
        np.testing.assert_allclose(meta["history"][key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    for key, value in ref_meta["evaluate"].items():
        assert meta["evaluate"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    for key, value in ref_meta["extra"].items():
        assert meta["extra"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("case", CASES)
def test_every_rank_ends_with_the_same_state(runs, case, n):
    """Bit-for-bit the same weights, predictions, logs and random state on every rank."""
    ref, ref_meta = _load(runs[n][0], case, _tag(n, 0))
    for r in range(1, n):
        got, meta = _load(runs[n][0], case, _tag(n, r))
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{case} {k} rank {r}")
        assert meta == ref_meta


def test_one_rank_under_mpiexec_is_exactly_one_process(runs):
    for case in CASES:
        ref, ref_meta = _load(runs[0][0], case, "single")
        got, meta = _load(runs[1][0], case, _tag(1, 0))
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{case} {k}")
        assert meta == ref_meta


@pytest.mark.parametrize("options, node_size", [
    ({"allreduce": "mpi", "overlap": True, "bucket_size_mb": 0.001}, None),
    ({"allreduce": "shared"}, None),
    ({"allreduce": "shared", "bucket_size_mb": 0.001}, "2"),
], ids=["mpi-overlapped-buckets", "shared-memory", "shared-two-nodes-small-chunks"])
def test_every_gradient_sum_trains_as_one_process(runs, tmp_path, options, node_size):
    """Buckets started during the backward pass (one per layer), the shared-memory sum, and
    the shared-memory sum over two (pretended) nodes with chunks smaller than a layer (the
    default, MPI_Iallreduce after the backward pass, runs in the other tests)."""
    env = _env(FASTNET_TEST_DP_OPTIONS=json.dumps(options))
    if node_size:
        env["FASTNET_MPI_NODE_SIZE"] = node_size
    cases = ["mlp_dropout", "cnn", "bn_sync"]
    proc, _ = _launch(4, "mpi_cases.py", str(tmp_path), *cases, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for case in cases:
        ref, _ = _load(runs[0][0], case, "single")
        for r in range(4):
            got, _ = _load(tmp_path, case, _tag(4, r))
            for k in ref:
                np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=f"{case} {k}")
                if r:
                    np.testing.assert_array_equal(got[k], _load(tmp_path, case, _tag(4, 0))[0][k])


@pytest.mark.parametrize("n", [2, 4])
def test_batchnorm_keeps_per_rank_statistics_by_default(runs, n):
    """One step on a batch of 40 rows with BatchNormalization(momentum=0.5) first: each rank
    normalises with its own rows' statistics; the moving statistics move toward the
    row-weighted average of the ranks' statistics (so the moving mean is the global one)."""
    import sys as _sys

    _sys.path.insert(0, HERE)
    from mpi_cases import data

    x, _ = data(40, (6,), classes=2, seed=3)
    x = (x * np.arange(1, 7, dtype=np.float32) + 2.0).astype(np.float64)
    bounds = [(r * 40 // n, (r + 1) * 40 // n) for r in range(n)]
    local_var = sum((hi - lo) * x[lo:hi].var(axis=0) for lo, hi in bounds) / 40
    single, _ = _load(runs[0][0], "bn_local", "single")
    got, _ = _load(runs[n][0], "bn_local", _tag(n, 0))
    # weights: gamma, beta, moving_mean, moving_variance, kernel, bias
    np.testing.assert_allclose(got["w2"], 0.5 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(single["w2"], got["w2"], rtol=1e-5)
    np.testing.assert_allclose(got["w3"], 0.5 + 0.5 * local_var, rtol=1e-5)
    np.testing.assert_allclose(single["w3"], 0.5 + 0.5 * x.var(axis=0), rtol=1e-5)
    assert not np.allclose(got["w3"], single["w3"], rtol=1e-3)


@pytest.mark.parametrize("n", [2, 4])
def test_only_rank_zero_writes_files_and_prints(runs, n):
    d, proc = runs[n]
    assert (d / "log_rank0.csv").exists()
    assert (d / "ckpt_rank0.weights.h5").exists()
    assert (d / "marker_rank0.txt").exists()
    for r in range(1, n):
        assert not (d / f"marker_rank{r}.txt").exists()
        assert not (d / f"log_rank{r}.csv").exists()
        assert not (d / f"ckpt_rank{r}.weights.h5").exists()
    lines = (d / "log_rank0.csv").read_text().strip().splitlines()
    assert lines[0].split(",") == ["epoch", "accuracy", "loss"]
    assert len(lines) == 3  # EarlyStopping stopped every rank after 2 epochs
    assert proc.stdout.count("PROGRESS-START") == n
    assert proc.stdout.count("Epoch 1/4") == 1
    assert proc.stdout.count("4/4 - ") == 2


def _records(tag, text):
    """The JSON records printed after ``tag`` (ranks' lines may interleave in mpiexec's output)."""
    return [json.loads(m) for m in re.findall(tag + r" (\{[^{}]*\})", text)]


def test_ranks_share_the_cores_unless_told_otherwise():
    env = _env()
    for var in ("FASTNET_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(var)
    proc, _ = _launch(2, "mpi_info.py", env=env)
    assert proc.returncode == 0, proc.stderr
    infos = sorted(_records("INFO", proc.stdout), key=lambda i: i["rank"])
    assert [i["rank"] for i in infos] == [0, 1]
    for i in infos:
        assert i["size"] == 2 and i["devices"] == ["cpu:0", "cpu:1"] and i["chief"] == (i["rank"] == 0)
        assert i["threads_before"] == i["cores"]
        assert i["threads"] == max(1, i["cores"] // 2)
    restored = _records("RESTORED", proc.stdout)
    assert sorted(r["threads"] for r in restored) == [infos[0]["cores"]] * 2
    proc, _ = _launch(2, "mpi_info.py", env=_env(FASTNET_NUM_THREADS="3"))
    assert [i["threads"] for i in _records("INFO", proc.stdout)] == [3, 3]


# ---------------------------------------------------------------------- failures
def _fail(mode, timeout=60):
    proc, elapsed = _launch(2, "mpi_failures.py", mode, timeout=timeout)
    return proc, proc.stdout + proc.stderr, elapsed


def test_different_architectures_stop_every_rank_with_a_clear_error():
    proc, out, _ = _fail("arch")
    assert proc.returncode != 0
    assert "the ranks built different models: layer 0 is Dense with weights [(8, 10), (10,)] " \
           "on rank 0 but Dense with weights [(8, 12), (12,)] on rank 1" in out
    assert "finished fit" not in out


def test_different_layer_configurations_stop_with_a_clear_error():
    proc, out, _ = _fail("config")
    assert proc.returncode != 0
    assert 'layer 0 (Dense) has activation="relu" on rank 0 but activation="tanh" on rank 1' in out


def test_different_data_stops_with_a_clear_error():
    proc, out, _ = _fail("data")
    assert proc.returncode != 0
    assert "the ranks called fit differently: x holds different values on rank 0 and rank 1" in out


def test_a_killed_rank_ends_the_job_quickly():
    proc, out, elapsed = _fail("kill")
    assert proc.returncode != 0
    assert "rank 1 goes wrong (kill)" in out
    assert "rank 0 finished fit" not in out
    assert elapsed < 30


def test_a_hung_rank_makes_the_others_stop_within_the_timeout():
    proc, out, elapsed = _fail("hang")
    assert proc.returncode != 0
    assert "fastnet.distribution: rank 0 of 2 waited more than 3 s for the other processes" in out
    assert "rank 0 finished fit" not in out
    assert elapsed < 30


def test_an_exception_on_one_rank_aborts_the_others():
    proc, out, elapsed = _fail("raise")
    assert proc.returncode != 0
    assert "RuntimeError: rank 1 failed on purpose" in out
    assert "fastnet.distribution: rank 1 of 2 stopped with RuntimeError; aborting all ranks." in out
    assert "rank 0 finished fit" not in out
    assert elapsed < 30
