"""Learning-rate schedules against their formulas and Keras's documented behaviour."""
import json
import math

import numpy as np
import pytest

from fastnet import backend, config, optimizers
from fastnet.optimizers import schedules

# Schedules return the default float type (float32): compare at float32 precision.
RTOL = 1e-6


def close(got, want):
    assert got == pytest.approx(want, rel=RTOL, abs=1e-9)


def test_exponential_decay_continuous_and_staircase():
    s = schedules.ExponentialDecay(0.05, 10, 0.96)
    for step in (0, 1, 5, 10, 37):
        close(s(step), 0.05 * 0.96 ** (step / 10))
    st = schedules.ExponentialDecay(0.1, 3, 0.96, staircase=True)
    close(st(1), 0.1)
    close(st(2), 0.1)
    close(st(100), 0.1 * 0.96 ** (100 // 3))
    assert isinstance(s(3), np.float32)


def test_piecewise_constant_decay_boundaries_are_inclusive_on_the_left_interval():
    s = schedules.PiecewiseConstantDecay([100, 110, 120], [1.0, 0.1, 0.01, 0.001])
    for step, want in [(-999, 1.0), (0, 1.0), (100, 1.0), (101, 0.1), (105, 0.1), (110, 0.1),
                       (111, 0.01), (120, 0.01), (121, 0.001), (999, 0.001)]:
        close(s(step), want)
    ints = schedules.PiecewiseConstantDecay([1, 2, 3], [0.4, 0.5, 0.6, 0.7])
    assert [float(ints(i)) for i in range(5)] == pytest.approx([0.4, 0.4, 0.5, 0.6, 0.7])


@pytest.mark.parametrize("power", [1.0, 0.5, 2.0])
def test_polynomial_decay(power):
    lr, end = 0.05, 0.001
    s = schedules.PolynomialDecay(lr, 10, end, power=power)
    close(s(0), lr)
    close(s(5), (lr - end) * 0.5 ** power + end)
    close(s(10), end)
    close(s(15), end)  # held at the end value
    c = schedules.PolynomialDecay(lr, 10, end, power=power, cycle=True)
    close(c(0), lr)
    close(c(15), (lr - end) * 0.25 ** power + end)  # horizon 20
    close(c(20), end)
    assert schedules.PolynomialDecay(0.1, 10).end_learning_rate == 0.0001


def test_inverse_time_decay():
    s = schedules.InverseTimeDecay(0.1, 10, 0.96)
    st = schedules.InverseTimeDecay(0.1, 10, 0.96, staircase=True)
    for i in range(25):
        close(s(i), 0.1 / (1 + 0.96 * i / 10))
        close(st(i), 0.1 / (1 + 0.96 * (i // 10)))


def _cosine(step, decay_steps, alpha=0.0):
    step = min(step, decay_steps)
    return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha


def test_cosine_decay_and_alpha():
    for alpha in (0.0, 0.1):
        s = schedules.CosineDecay(2.0, 1000, alpha)
        for step in range(0, 1500, 125):
            close(s(step), 2.0 * _cosine(step, 1000, alpha))
    s = schedules.CosineDecay(1.0, 1000)
    close(s(500), 0.5)
    close(s(1000), 0.0)


def test_cosine_decay_with_warmup():
    s = schedules.CosineDecay(0.0, 1000, warmup_target=10.0, warmup_steps=2000)
    for step in range(0, 3500, 250):
        if step < 2000:
            want = 10.0 * step / 2000
        else:
            want = 10.0 * _cosine(step - 2000, 1000)
        close(s(step), want)
    # Warmup from a non-zero start: a straight line from initial to target.
    w = schedules.CosineDecay(0.1, 100, warmup_target=1.0, warmup_steps=10)
    close(w(0), 0.1)
    close(w(5), 0.55)
    close(w(10), 1.0)
    close(w(60), 0.5)
    # A target without warmup steps decays from the target.
    z = schedules.CosineDecay(0.1, 100, warmup_target=1.0, warmup_steps=0)
    close(z(0), 1.0)


def _restarts(step, decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    fac = 1.0
    while step >= decay_steps:
        step -= decay_steps
        decay_steps *= t_mul
        fac *= m_mul
    return (1 - alpha) * fac * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha


@pytest.mark.parametrize("kw", [{}, {"alpha": 0.1}, {"m_mul": 0.9}, {"t_mul": 1.0},
                                {"t_mul": 3.0, "m_mul": 0.5, "alpha": 0.05}])
def test_cosine_decay_restarts(kw):
    s = schedules.CosineDecayRestarts(1.0, 100, **kw)
    for step in list(range(0, 1300, 37)) + [100, 300, 700]:
        close(s(step), _restarts(step, 100, **kw))


ALL = [
    schedules.ExponentialDecay(0.05, 10, 0.96, staircase=True, name="my_ed"),
    schedules.PiecewiseConstantDecay([10, 20], [1, 2, 3], name="my_pcd"),
    schedules.PolynomialDecay(0.1, 100, 0.005, power=1.0, cycle=False, name="my_pd"),
    schedules.InverseTimeDecay(0.05, 10, 0.96, staircase=True, name="my_itd"),
    schedules.CosineDecay(0.05, 10, alpha=0.1, warmup_target=0.2, warmup_steps=2, name="my_cd"),
    schedules.CosineDecayRestarts(0.05, 10, t_mul=3.0, m_mul=4.0, alpha=0.1, name="my_cdr"),
]

KEYS = {
    "ExponentialDecay": ["initial_learning_rate", "decay_steps", "decay_rate", "staircase", "name"],
    "PiecewiseConstantDecay": ["boundaries", "values", "name"],
    "PolynomialDecay": ["initial_learning_rate", "decay_steps", "end_learning_rate", "power",
                        "cycle", "name"],
    "InverseTimeDecay": ["initial_learning_rate", "decay_steps", "decay_rate", "staircase", "name"],
    "CosineDecay": ["initial_learning_rate", "decay_steps", "alpha", "name", "warmup_target",
                    "warmup_steps"],
    "CosineDecayRestarts": ["initial_learning_rate", "first_decay_steps", "t_mul", "m_mul",
                            "alpha", "name"],
}


@pytest.mark.parametrize("s", ALL, ids=lambda s: type(s).__name__)
def test_config_round_trip(s):
    cfg = s.get_config()
    assert list(cfg) == KEYS[type(s).__name__]
    json.dumps(cfg)
    again = type(s).from_config(cfg)
    assert again.get_config() == cfg
    ser = schedules.serialize(s)
    assert ser["class_name"] == type(s).__name__ and ser["module"] == "keras.optimizers.schedules"
    back = schedules.deserialize(json.loads(json.dumps(ser)))
    for step in (0, 3, 15, 40):
        assert float(back(step)) == float(s(step))


def test_schedules_follow_floatx():
    s = schedules.ExponentialDecay(0.1, 10, 0.5)
    config.set_floatx("float64")
    try:
        v = s(10)
        assert isinstance(v, np.float64) and v == 0.05
    finally:
        config.set_floatx("float32")
    assert float(s(10)) == float(np.float32(0.05))
    np.testing.assert_allclose(s(np.array([0, 10, 20])), [0.1, 0.05, 0.025], rtol=1e-7)


@pytest.mark.parametrize("make, match", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.9), "decay_steps"),
    (lambda: schedules.PolynomialDecay(0.1, -5), "decay_steps"),
    (lambda: schedules.InverseTimeDecay(0.1, 0, 0.5), "decay_steps"),
    (lambda: schedules.CosineDecay(0.1, 0), "decay_steps"),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_target=1.0, warmup_steps=-1), "warmup_steps"),
    (lambda: schedules.CosineDecayRestarts(0.1, 0), "first_decay_steps"),
    (lambda: schedules.ExponentialDecay("0.1", 10, 0.9), "initial_learning_rate"),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), "1 less than"),
    (lambda: schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3]), "strictly increasing"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_deserialize_unknown_lists_valid_names():
    with pytest.raises(ValueError, match="ExponentialDecay"):
        schedules.deserialize({"class_name": "Nope", "config": {}})


def test_custom_schedule_subclass():
    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 1.0 / 2 ** step

    with pytest.raises(NotImplementedError, match="get_config"):
        Halving().get_config()
    with pytest.raises(NotImplementedError, match="__call__"):
        schedules.LearningRateSchedule()(0)
    v = backend.Variable(np.zeros(3, np.float64))
    opt = optimizers.SGD(learning_rate=Halving())
    for _ in range(3):
        opt.apply_gradients([(np.ones(3), v)])
    np.testing.assert_allclose(v.value, -(1 + 0.5 + 0.25))
