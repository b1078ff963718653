import numpy as np
import pytest

import fastnet
from fastnet import backend
from fastnet.layers import BatchNormalization, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from fastnet.models import Sequential

SUMMARY = """\
Model: "sequential"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
dense (Dense)                (None, 4)                 16        
_________________________________________________________________
dense_1 (Dense)              (None, 4)                 20        
_________________________________________________________________
dense_2 (Dense)              (None, 1)                 5         
=================================================================
Total params: 41
Trainable params: 41
Non-trainable params: 0
_________________________________________________________________
"""

BN_ROWS = """\
Layer (type)                 Output Shape              Param #   
=================================================================
batch_normalization_12 (Batc (None, 3)                 12        
=================================================================
Total params: 12
Trainable params: 6
Non-trainable params: 6
"""


def seed_model():
    model = Sequential()
    model.add(Dense(4, activation="tanh", input_shape=(3,)))
    model.add(Dense(4, activation="tanh"))
    model.add(Dense(1, activation="sigmoid"))
    return model


def test_summary_is_the_tf_keras_2_layout_line_for_line(capsys):
    backend.clear_session()
    seed_model().summary()
    assert capsys.readouterr().out == SUMMARY


def test_summary_cuts_long_type_names_and_names_carry_counters():
    backend.clear_session()
    for _ in range(12):
        BatchNormalization()
    lines = []
    Sequential([BatchNormalization(input_shape=(3,))]).summary(print_fn=lines.append)
    assert "\n".join(lines[2:-1]) + "\n" == BN_ROWS
    assert lines[0] == 'Model: "sequential"'


def test_summary_line_length_and_unbuilt_model():
    lines = []
    seed_model().summary(line_length=80, print_fn=lines.append)
    assert all(len(l) == 80 for l in lines[1:4])
    with pytest.raises(ValueError, match="not been built.*input_shape"):
        Sequential([Dense(2)]).summary()


def test_construction_variants_give_the_same_structure():
    a = Sequential([Input(shape=(3,)), Dense(4), Dense(1)])
    b = Sequential([InputLayer(shape=(3,)), Dense(4), Dense(1)])
    c = Sequential([Dense(4, input_dim=3), Dense(1)])
    d = Sequential([Dense(4), Dense(1)])
    d.build((None, 3))
    for m in (a, b, c, d):
        assert m.built and m.output_shape == (None, 1) and m.count_params() == 21
        assert len(m.layers) == 2
    e = Sequential([Dense(4), Dense(1)])
    assert not e.built
    out = e(np.ones((5, 3)))     # lazy build on first call
    assert out.shape == (5, 1) and e.built


def test_weights_are_in_keras_order_and_round_trip():
    m = Sequential([Input((10,)), Dense(8), BatchNormalization(), Dense(1)])
    assert [w.shape for w in m.get_weights()] == [(10, 8), (8,), (8,), (8,), (8,), (8,), (8, 1), (1,)]
    assert [w.name for w in m.weights][2:6] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(m.trainable_weights) == 6 and len(m.non_trainable_weights) == 2
    new = [np.full(w.shape, i, np.float32) for i, w in enumerate(m.get_weights())]
    m.set_weights(new)
    for got, want in zip(m.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="expects 8 weight arrays, received 7"):
        m.set_weights(new[:7])
    with pytest.raises(ValueError, match=r"shape \(10, 8\).*\(8, 10\)"):
        m.set_weights([new[0].T] + new[1:])
    m.layers[0].trainable = False
    assert len(m.trainable_weights) == 4 and len(m.non_trainable_weights) == 4


def test_pop_get_layer_and_names():
    m = Sequential([Input((3,)), Dense(4, name="a"), Dense(5, name="b"), Dense(6, name="c")])
    assert m.get_layer("b").units == 5 and m.get_layer(index=-1).name == "c"
    assert m.pop().name == "c" and m.output_shape == (None, 5)
    with pytest.raises(ValueError, match="No layer named 'zz'"):
        m.get_layer("zz")
    with pytest.raises(ValueError, match="unique names"):
        m.add(Dense(2, name="a"))
    with pytest.raises(TypeError, match="expects a Layer"):
        m.add("dense")
    with pytest.raises(ValueError, match="exactly one"):
        m.get_layer()


def test_calling_the_model_matches_the_layers(rng):
    m = Sequential([Input((6,)), Dense(5, activation="relu"), Dropout(0.5), Dense(2, activation="softmax")])
    x = rng.standard_normal((7, 6)).astype(np.float32)
    h = np.maximum(x @ m.layers[0].kernel.value + m.layers[0].bias.value, 0)
    z = h @ m.layers[2].kernel.value + m.layers[2].bias.value
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(m(x), want, rtol=1e-5)
    np.testing.assert_allclose(m.predict(x, verbose=0), want, rtol=1e-5)


def test_model_input_shape_is_checked():
    m = Sequential([Input((3,)), Dense(2)])
    with pytest.raises(ValueError, match=r'model "sequential.*expected shape \(None, 3\).*\(4, 5\)'):
        m(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r'"reshape.*\(3,\) \(size 3\).*\(4,\) \(size 4\)'):
        Sequential([Input((7,)), Dense(3), Reshape((4,))])


def test_config_round_trip_rebuilds_the_same_model():
    m = Sequential([Input((4,)), Dense(3, activation="relu"), BatchNormalization(), Flatten()], name="net")
    clone = Sequential.from_config(m.get_config())
    assert clone.name == "net" and [type(l) for l in clone.layers] == [type(l) for l in m.layers]
    assert clone.built and clone.count_params() == m.count_params()
    assert fastnet.models.clone_model(m).get_config()["layers"][1]["config"]["units"] == 3


def test_import_fastnet_as_keras():
    import fastnet as keras

    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
    assert model.output_shape == (None, 2)
    from fastnet.layers import Dense as D2
    assert D2 is keras.layers.Dense


def test_stateful_rnn_takes_its_batch_size_from_input():
    from fastnet.layers import LSTM

    m = Sequential([Input((5, 3), batch_size=4), LSTM(2, stateful=True)])
    assert m.output_shape == (4, 2)
    out = m.predict(np.ones((4, 5, 3), np.float32), batch_size=4, verbose=0)
    assert out.shape == (4, 2)
