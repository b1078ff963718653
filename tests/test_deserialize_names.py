"""deserialize takes a class name or alias alone (Keras does), as well as a config dict."""
import pytest

from fastnet import initializers, regularizers


def test_regularizer_from_a_name():
    assert regularizers.deserialize("l2").get_config() == {"l2": 0.01}
    assert type(regularizers.deserialize("L1L2")).__name__ == "L1L2"
    with pytest.raises(ValueError, match="Unknown regularizer class 'l3'"):
        regularizers.deserialize("l3")


def test_initializer_from_a_name():
    assert type(initializers.deserialize("glorot_uniform")).__name__ == "GlorotUniform"
    assert initializers.deserialize("Zeros")((2, 3)).tolist() == [[0.0] * 3] * 2
    with pytest.raises(ValueError, match="Unknown initializer class 'nope'"):
        initializers.deserialize("nope")
