"""ZeroPadding, UpSampling and Cropping layers (1-D and 2-D)."""
import numpy as np
import pytest

from fastnet import config, layers

try:
    from .test_conv_layers import finite_difference_check, replay_reference
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from test_conv_layers import finite_difference_check, replay_reference


@pytest.fixture
def float64():
    config.set_floatx("float64")
    yield
    config.set_floatx("float32")


@pytest.mark.parametrize("name", ["zeropad2d", "upsample2d"])
def test_keras_reference(name):
    replay_reference(name)


@pytest.mark.parametrize("cls,kwargs,in_shape,out_shape", [
    ("ZeroPadding2D", dict(padding=1), (None, 3, 3, 2), (None, 5, 5, 2)),
    ("ZeroPadding2D", dict(padding=(1, 2)), (None, 3, 3, 2), (None, 5, 7, 2)),
    ("ZeroPadding2D", dict(padding=((0, 1), (2, 3))), (None, 3, 3, 2), (None, 4, 8, 2)),
    ("ZeroPadding2D", dict(padding=1, data_format="channels_first"), (None, 2, 3, 3),
     (None, 2, 5, 5)),
    ("ZeroPadding1D", dict(padding=(1, 3)), (None, 4, 2), (None, 8, 2)),
    ("Cropping2D", dict(cropping=((1, 0), (0, 2))), (None, 5, 5, 2), (None, 4, 3, 2)),
    ("Cropping2D", dict(cropping=1), (None, 5, 6, 2), (None, 3, 4, 2)),
    ("Cropping1D", dict(cropping=(2, 1)), (None, 6, 3), (None, 3, 3)),
    ("UpSampling2D", dict(size=(2, 3)), (None, 3, 2, 2), (None, 6, 6, 2)),
    ("UpSampling2D", dict(size=2, data_format="channels_first"), (None, 2, 3, 3),
     (None, 2, 6, 6)),
    ("UpSampling1D", dict(size=3), (None, 4, 2), (None, 12, 2)),
])
def test_shapes_values_and_gradients(cls, kwargs, in_shape, out_shape, float64):
    layer = getattr(layers, cls)(**kwargs)
    assert layer.compute_output_shape(in_shape) == out_shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2,) + in_shape[1:])
    y = layer(x)
    assert y.shape == (2,) + out_shape[1:]
    finite_difference_check(layer, x, rng)


def test_values():
    x = np.arange(4.0, dtype=np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(layers.UpSampling2D(2)(x)[0, :, :, 0],
                                  [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    np.testing.assert_array_equal(layers.ZeroPadding2D(((1, 0), (0, 1)))(x)[0, :, :, 0],
                                  [[0, 0, 0], [0, 1, 0], [2, 3, 0]])
    np.testing.assert_array_equal(layers.Cropping2D(((1, 0), (0, 1)))(x)[0, :, :, 0], [[2]])


def test_configs():
    assert layers.ZeroPadding2D(1).get_config()["padding"] == ((1, 1), (1, 1))
    assert layers.ZeroPadding1D(2).get_config()["padding"] == (2, 2)
    up = layers.UpSampling2D(2).get_config()
    assert up["size"] == (2, 2) and up["interpolation"] == "nearest"
    assert layers.UpSampling1D(3).get_config()["size"] == 3
    assert layers.Cropping2D(1).get_config()["cropping"] == ((1, 1), (1, 1))
    cfg = layers.ZeroPadding2D((1, 2), name="zp").get_config()
    assert layers.ZeroPadding2D.from_config(cfg).get_config() == cfg


def test_bad_input():
    with pytest.raises(ValueError, match=r"crop.*removes the whole input.*\(3, 5\)"):
        layers.Cropping2D(((2, 1), (0, 0)), name="crop")(np.zeros((1, 3, 5, 1)))
    with pytest.raises(ValueError, match="interpolation='nearest'"):
        layers.UpSampling2D(2, interpolation="bilinear")
    with pytest.raises(ValueError, match="padding"):
        layers.ZeroPadding2D(((1, 2, 3), (1, 1)))
    with pytest.raises(ValueError, match=r"rank 4 \(batch, rows, cols, channels\)"):
        layers.ZeroPadding2D(1)(np.zeros((2, 3, 3)))
