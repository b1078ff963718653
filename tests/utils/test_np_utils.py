"""to_categorical and normalize."""
import numpy as np
import pytest

from fastnet.utils import normalize, to_categorical


def test_to_categorical_keras_example():
    out = to_categorical([0, 1, 2, 3], num_classes=4)
    np.testing.assert_array_equal(out, np.eye(4))
    assert out.dtype == np.float64


def test_to_categorical_shapes():
    y = np.array([2, 0, 1, 2])
    assert to_categorical(y).shape == (4, 3)
    np.testing.assert_array_equal(to_categorical(y.reshape(4, 1)), to_categorical(y))
    out = to_categorical(np.array([[0, 1], [2, 3]]), num_classes=5)
    assert out.shape == (2, 2, 5)
    np.testing.assert_array_equal(out.argmax(-1), [[0, 1], [2, 3]])
    assert out.sum() == 4
    assert to_categorical(np.array([1.0, 0.0])).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert to_categorical(np.uint8([9]), num_classes=10).shape == (1, 10)
    assert to_categorical(np.array([], dtype=int), num_classes=3).shape == (0, 3)


def test_to_categorical_dtype():
    out = to_categorical([1, 0], 2, dtype="float32")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 1], [1, 0]])


def test_to_categorical_errors():
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\), received values in \[0, 3\]"):
        to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match=r"received values in \[-1, 1\]"):
        to_categorical([-1, 1])
    with pytest.raises(ValueError, match="non-integer values"):
        to_categorical([0.5, 1.0])
    with pytest.raises(ValueError, match="integer class labels, received dtype <U3"):
        to_categorical(["cat", "dog"])
    with pytest.raises(ValueError, match="needs num_classes when y is empty"):
        to_categorical([])
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        to_categorical([0], num_classes=0)


def test_normalize_l2_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(normalize(x), [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7)).astype(np.float32)
    out = normalize(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, x / np.sqrt((x ** 2).sum(-1, keepdims=True)), rtol=1e-6)


def test_normalize_axis_and_order():
    x = np.array([[1.0, -2.0], [3.0, 6.0]])
    np.testing.assert_allclose(normalize(x, axis=0), x / np.sqrt([[10.0, 40.0]]))
    np.testing.assert_allclose(normalize(x, order=1), [[1 / 3, -2 / 3], [1 / 3, 2 / 3]])
    np.testing.assert_allclose(normalize(x, order=np.inf), [[0.5, -1.0], [0.5, 1.0]])
    np.testing.assert_allclose(normalize(x, axis=None), x / np.sqrt(50.0))
    np.testing.assert_allclose(normalize([3, 4]), [0.6, 0.8])   # lists and ints -> float
    x3 = np.arange(24, dtype=float).reshape(2, 3, 4)
    np.testing.assert_allclose(np.linalg.norm(normalize(x3, axis=1)[:, :, 1:], axis=1), 1.0)
    with pytest.raises(ValueError, match="axis 2 is out of range for an array of rank 2"):
        normalize(x, axis=2)
