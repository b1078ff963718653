import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fastnet import config  # noqa: E402


@pytest.fixture
def float64():
    """Run the test with fastnet computing in float64 (for finite differences)."""
    old = config.floatx()
    config.set_floatx("float64")
    try:
        yield np.float64
    finally:
        config.set_floatx(old)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def n_threads(request):
    """Run the test with 1 and with 2 kernel threads."""
    old = config.get_num_threads()
    config.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        config.set_num_threads(old)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
