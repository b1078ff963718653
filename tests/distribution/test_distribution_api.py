"""fastnet.distribution in one process (no mpiexec): the API, the no-MPI behaviour and
the pieces data-parallel training is built from (row split, loss shares, dropout offset)."""
import sys

import numpy as np
import pytest

import fastnet
from fastnet import distribution as dist
from fastnet import layers, losses
from fastnet._kernels import dropout as _dropout
from fastnet._reference.core import dropout_uniform
from fastnet.distribution import _mpi, _runner
from fastnet.models import Sequential


@pytest.fixture(autouse=True)
def _no_distribution():
    yield
    dist.set_distribution(None)


def _mlp():
    m = Sequential([layers.Input((6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.3),
                    layers.BatchNormalization(), layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _train(with_distribution):
    fastnet.backend.clear_session()
    fastnet.random.set_seed(3)
    if with_distribution:
        dist.set_distribution(dist.DataParallel())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 6)).astype(np.float32)
    y = rng.integers(0, 3, 70)
    m = _mlp()
    h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.2)
    return m.get_weights(), h.history, m.evaluate(x, y, verbose=0), m.predict(x, verbose=0)


def test_without_mpi_a_script_with_a_distribution_runs_as_before():
    w0, h0, e0, p0 = _train(False)
    w1, h1, e1, p1 = _train(True)
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    assert h0 == h1 and e0 == e1
    np.testing.assert_array_equal(p0, p1)


def test_one_process_identity():
    d = dist.DataParallel()
    assert (d.rank, d.num_processes, d.is_chief) == (0, 1, True)
    assert dist.list_devices() == ["cpu:0"] == d.devices
    assert dist.process_id() == 0 and dist.num_processes() == 1 and dist.is_chief()
    assert dist.distribution() is None
    dist.set_distribution(d)
    assert dist.distribution() is d
    dist.initialize(num_processes=1, process_id=0)
    assert "rank 0 of 1" in repr(d)


def test_scope_sets_and_restores():
    d = dist.DataParallel()
    with d.scope() as inside:
        assert inside is d and dist.distribution() is d
    assert dist.distribution() is None


def test_runner_is_none_on_one_process():
    dist.set_distribution(dist.DataParallel())
    assert dist.runner(_mlp()) is None


@pytest.mark.parametrize("kwargs, err, match", [
    ({"device_mesh": object()}, NotImplementedError, "takes no device_mesh"),
    ({"auto_shard_dataset": False}, NotImplementedError, "auto_shard_dataset=False"),
    ({"devices": ["cpu:0", "cpu:1"]}, NotImplementedError, r"must list every process's device \['cpu:0'\]"),
    ({"bucket_size_mb": 0}, ValueError, "bucket_size_mb must be a positive number"),
    ({"timeout": -1}, ValueError, "timeout must be a non-negative number"),
    ({"allreduce": "nccl"}, ValueError, "allreduce must be 'shared' or 'mpi', received 'nccl'"),
    ({"overlap": True, "allreduce": "shared"}, ValueError, "overlap=True needs allreduce='mpi'"),
])
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        dist.DataParallel(**kwargs)


def test_bad_values_for_module_functions():
    with pytest.raises(TypeError, match="expects a fastnet.distribution.DataParallel or None"):
        dist.set_distribution("data_parallel")
    with pytest.raises(ValueError, match="CPUs only"):
        dist.list_devices("gpu")
    with pytest.raises(ValueError, match=r"initialize\(num_processes=4\) but the launcher started 1"):
        dist.initialize(num_processes=4)


def test_launcher_detection(monkeypatch):
    for var in _mpi._SIZE_VARS + _mpi._RANK_VARS + ("FASTNET_MPI",):
        monkeypatch.delenv(var, raising=False)
    assert not _mpi.launched_by_mpi() and _mpi.launcher_size() is None
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("PMI_RANK", "2")
    assert _mpi.launched_by_mpi() and _mpi.launcher_size() == 4
    monkeypatch.setenv("FASTNET_MPI", "0")
    assert not _mpi.launched_by_mpi()
    monkeypatch.delenv("PMI_SIZE")
    monkeypatch.delenv("PMI_RANK")
    monkeypatch.setenv("FASTNET_MPI", "1")
    assert _mpi.launched_by_mpi()


def test_timeout_from_environment(monkeypatch):
    monkeypatch.delenv("FASTNET_MPI_TIMEOUT", raising=False)
    assert _mpi.timeout_from_env() == _mpi.DEFAULT_TIMEOUT
    monkeypatch.setenv("FASTNET_MPI_TIMEOUT", "12.5")
    assert _mpi.timeout_from_env() == 12.5
    monkeypatch.setenv("FASTNET_MPI_TIMEOUT", "0")
    assert _mpi.timeout_from_env() is None
    monkeypatch.setenv("FASTNET_MPI_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="FASTNET_MPI_TIMEOUT must be a number of seconds"):
        _mpi.timeout_from_env()


def test_missing_mpi4py_under_a_launcher_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "3")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"needs mpi4py to train on 3 processes: install it with "
                                          r"`pip install fastnet\[mpi\]`"):
        _mpi.Backend()


@pytest.mark.parametrize("n", [0, 1, 3, 7, 8, 33])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_split_covers_the_batch_in_order(n, size):
    parts = [_runner.split(n, size, r) for r in range(size)]
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    counts = [hi - lo for lo, hi in parts]
    assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)


class _FakeModel:
    def __init__(self, loss):
        self._loss_obj = loss


def _shares(loss, y, sw, size):
    r = _runner.Runner.__new__(_runner.Runner)
    r.model = _FakeModel(loss)
    return [r._loss_share(y, sw, *_runner.split(len(y), size, k)) for k in range(size)]


def test_loss_shares_add_up_to_one_process_loss():
    """For each reduction, sum over ranks of share * (rank's loss) = one process's loss, and
    the shares scale each rank's gradient to its part of the one-process gradient."""
    rng = np.random.default_rng(1)
    p = rng.random((11, 4)).astype(np.float64)
    p /= p.sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, 11)
    y[::3] = -1
    sw = rng.random(11) + 0.2
    cases = [
        (losses.SparseCategoricalCrossentropy(), y.clip(0), None),
        (losses.SparseCategoricalCrossentropy(), y.clip(0), sw),
        (losses.SparseCategoricalCrossentropy(ignore_class=-1), y, None),
        (losses.SparseCategoricalCrossentropy(ignore_class=-1, reduction="mean_with_sample_weight"), y, sw),
        (losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"), y.clip(0), sw),
        (losses.SparseCategoricalCrossentropy(reduction="sum"), y.clip(0), sw),
    ]
    for loss, yy, ww in cases:
        whole, g_whole = loss.value_and_grad(yy, p, ww)
        for size in (2, 3, 4):
            shares = _shares(loss, yy, ww, size)
            total, grads = 0.0, []
            for k, s in enumerate(shares):
                lo, hi = _runner.split(11, size, k)
                v, g = loss.value_and_grad(yy[lo:hi], p[lo:hi], None if ww is None else ww[lo:hi])
                total += s * v
                grads.append(s * g)
            assert total == pytest.approx(whole, rel=1e-10), (loss.name, loss.reduction, size)
            np.testing.assert_allclose(np.concatenate(grads), g_whole, rtol=1e-10, atol=1e-14)


def test_dropout_kernel_offset_draws_the_rows_of_the_whole_batch():
    x = np.random.default_rng(0).random((10, 7)).astype(np.float32)
    y, m = np.empty_like(x), np.empty(70, np.uint8)
    _dropout.forward(x.ravel(), y.ravel(), m, 0.3, 12345, 1)
    y2, m2 = np.empty((6, 7), np.float32), np.empty(42, np.uint8)
    _dropout.forward(x[4:].ravel(), y2.ravel(), m2, 0.3, 12345, 1, 28)
    np.testing.assert_array_equal(y2, y[4:])
    np.testing.assert_array_equal(m2, m[28:])
    u = np.empty(42)
    _dropout.uniform(u, 99, 1, 28)
    np.testing.assert_array_equal(u, dropout_uniform(70, 99)[28:])
    np.testing.assert_array_equal(u, dropout_uniform(42, 99, 28))
    with pytest.raises(ValueError, match="dropout offset must be non-negative"):
        _dropout.forward(x.ravel(), y.ravel(), m, 0.3, 1, 1, -1)


@pytest.mark.parametrize("noise_shape", [None, (None, 1, 5)])
def test_dropout_layer_row_offset(noise_shape):
    """A Dropout layer told that its batch starts at row r draws those rows' masks."""
    x = np.random.default_rng(2).random((9, 4, 5)).astype(np.float32)
    d = layers.Dropout(0.4, noise_shape=noise_shape, seed=7)
    full = d.call(x, training=True).copy()
    d2 = layers.Dropout(0.4, noise_shape=noise_shape, seed=7)
    d2._row_offset = 5
    part = d2.call(x[5:], training=True)
    np.testing.assert_array_equal(part, full[5:])
