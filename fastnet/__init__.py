"""fastnet: Keras-compatible neural networks on the CPU, with compiled kernels.

    import fastnet as keras
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
"""
import importlib as _importlib

__version__ = "0.1.0"

from fastnet import activations, backend, config, initializers, layers, models, random, regularizers, utils  # noqa: E402  # noqa: E402  # noqa: E402
from fastnet.backend import Variable  # noqa: E402
from fastnet.layers import Input  # noqa: E402
from fastnet.models import Model, Sequential  # noqa: E402
from fastnet.ops.autodiff import GradientTape  # noqa: E402

config._apply_blas_policy()

__all__ = [
    "__version__", "Sequential", "Model", "Input", "activations", "backend", "callbacks",
    "config", "initializers", "layers", "losses", "metrics", "models", "optimizers",
    "random", "regularizers", "utils", "data", "datasets", "ops", "Variable", "GradientTape",
]

_LAZY = ("callbacks", "losses", "metrics", "optimizers", "saving", "distribution", "data", "datasets", "ops")


def __getattr__(name):
    if name in _LAZY:
        return _importlib.import_module(f"fastnet.{name}")
    raise AttributeError(f"module 'fastnet' has no attribute {name!r}")
