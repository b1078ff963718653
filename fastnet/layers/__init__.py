"""Layers, as in ``keras.layers``."""
from fastnet.layers.base import Input, InputLayer, InputSpec, Layer
from fastnet.layers.core import Activation, Dense, Dropout, Flatten, Reshape
from fastnet.layers.normalization import BatchNormalization

__all__ = [
    "Layer", "InputSpec", "InputLayer", "Input", "Dense", "Activation", "Flatten", "Reshape",
    "Dropout", "BatchNormalization",
]
from fastnet.layers.convolutional import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose
from fastnet.layers.pooling import (AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D,
                                    GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                                    MaxPooling1D, MaxPooling2D)
from fastnet.layers.reshaping import (Cropping1D, Cropping2D, UpSampling1D, UpSampling2D,
                                      ZeroPadding1D, ZeroPadding2D)

__all__ += [
    "Conv1D", "Conv2D", "Conv1DTranspose", "Conv2DTranspose", "MaxPooling1D", "MaxPooling2D",
    "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "UpSampling1D",
    "UpSampling2D", "Cropping1D", "Cropping2D",
]
