"""fastnet.random as keras.random: shapes, dtypes, distributions, determinism by seed."""
import numpy as np
import pytest

from fastnet import ops
from fastnet import random as frandom
from fastnet.ops import autodiff


def test_int_seed_is_deterministic_and_generator_advances():
    assert np.array_equal(frandom.normal((3,), seed=7), frandom.normal((3,), seed=7))
    g1, g2 = frandom.SeedGenerator(42), frandom.SeedGenerator(42)
    a1, b1 = frandom.uniform((4,), seed=g1), frandom.uniform((4,), seed=g1)
    a2, b2 = frandom.uniform((4,), seed=g2), frandom.uniform((4,), seed=g2)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2) and not np.array_equal(a1, b1)
    assert g1.state.value.tolist() == [42, 2] and g1.state.dtype == np.uint32
    assert frandom.SeedGenerator.from_config(g1.get_config()).state.value.tolist() == [42, 0]
    assert not np.array_equal(frandom.normal((3,)), frandom.normal((3,)))


def test_distributions_shapes_and_dtypes():
    n = frandom.normal((20000,), mean=1.0, stddev=2.0, seed=1)
    assert n.dtype == np.float32 and abs(n.mean() - 1) < 0.05 and abs(n.std() - 2) < 0.05
    u = frandom.uniform((2, 3), minval=-1, maxval=3, dtype="float64", seed=1)
    assert u.dtype == np.float64 and u.shape == (2, 3) and u.min() >= -1 and u.max() < 3
    t = frandom.truncated_normal((10000,), stddev=0.5, seed=2)
    assert np.abs(t).max() <= 1.0 and t.dtype == np.float32
    r = frandom.randint((1000,), 2, 5, seed=3)
    assert r.dtype == np.int32 and set(np.unique(r)) == {2, 3, 4}
    c = frandom.categorical(np.log([[0.1, 0.9], [0.999, 0.001]]), 2000, seed=4)
    assert c.shape == (2, 2000) and c.dtype == np.int32
    assert 0.85 < c[0].mean() < 0.95 and c[1].mean() < 0.01
    s = frandom.shuffle(np.arange(10), seed=5)
    assert sorted(s.tolist()) == list(range(10)) and s.tolist() != list(range(10))
    with pytest.raises(ValueError, match="rate"):
        frandom.dropout(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="seed"):
        frandom.normal((2,), seed="abc")


def test_dropout_scales_and_is_differentiable():
    x = np.ones((200, 50), np.float32)
    y = frandom.dropout(x, 0.25, seed=1)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    y2 = frandom.dropout(x, 0.5, noise_shape=(None, 1), seed=2)
    assert all(len(set(row.tolist())) == 1 for row in y2)
    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x)
        out = ops.sum(frandom.dropout(tx, 0.25, seed=1))
    (g,), _ = tape.gradient(out, 1.0, inputs=[tx])
    np.testing.assert_array_equal(g, y)
