"""Layers, as in ``keras.layers``."""
from fastnet.layers.base import Input, InputLayer, InputSpec, Layer
from fastnet.layers.core import Activation, Dense, Dropout, Flatten, Reshape
from fastnet.layers.normalization import BatchNormalization

__all__ = [
    "Layer", "InputSpec", "InputLayer", "Input", "Dense", "Activation", "Flatten", "Reshape",
    "Dropout", "BatchNormalization",
]
