"""Layers, as in ``keras.layers``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastnet.layers.base import Input, InputLayer, InputSpec, Layer
from fastnet.layers.core import Activation, Dense, Dropout, Flatten, Reshape
from fastnet.layers.embedding import Embedding
from fastnet.layers.normalization import BatchNormalization, LayerNormalization
from fastnet.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from fastnet.layers.wrappers import Bidirectional, TimeDistributed

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import Config, CustomObjects

__all__ = [
    "Layer", "InputSpec", "InputLayer", "Input", "Dense", "Activation", "Flatten", "Reshape",
    "Dropout", "BatchNormalization", "LayerNormalization", "serialize", "deserialize", "get",
    "Embedding", "SimpleRNN", "LSTM", "GRU", "RNN", "SimpleRNNCell", "LSTMCell", "GRUCell",
    "Bidirectional", "TimeDistributed",
]
from fastnet.layers.activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from fastnet.layers.attention import AdditiveAttention, Attention, MultiHeadAttention
from fastnet.layers.convolutional import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose
from fastnet.layers.convolutional_variants import (
    AveragePooling3D,
    Conv3D,
    DepthwiseConv1D,
    DepthwiseConv2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling3D,
    MaxPooling3D,
    SeparableConv1D,
    SeparableConv2D,
)
from fastnet.layers.lambda_layer import Lambda
from fastnet.layers.merging import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from fastnet.layers.normalization_extra import GroupNormalization, RMSNormalization, UnitNormalization
from fastnet.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
)
from fastnet.layers.regularization import (
    ActivityRegularization,
    AlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)
from fastnet.layers.reshaping import Cropping1D, Cropping2D, UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D
from fastnet.layers.shape_extra import Identity, Masking, Permute, RepeatVector

__all__ += [
    "Conv1D", "Conv2D", "Conv1DTranspose", "Conv2DTranspose", "MaxPooling1D", "MaxPooling2D",
    "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "UpSampling1D",
    "UpSampling2D", "Cropping1D", "Cropping2D",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
    "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
]
__all__ += ["MultiHeadAttention", "Attention", "AdditiveAttention"]

__all__ += [
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Conv3D", "MaxPooling3D",
    "AveragePooling3D", "GlobalAveragePooling3D", "GlobalMaxPooling3D", "GroupNormalization",
    "RMSNormalization", "UnitNormalization", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "RepeatVector", "Permute",
    "Masking", "Identity",
]
from fastnet.layers.preprocessing import (  # noqa: E402
    CategoryEncoding,
    CenterCrop,
    Discretization,
    Hashing,
    IntegerLookup,
    Normalization,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Rescaling,
    Resizing,
    StringLookup,
    TextVectorization,
)

__all__ += [
    "Normalization", "Rescaling", "Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom",
    "RandomTranslation", "RandomContrast", "RandomBrightness", "RandomCrop", "TextVectorization",
    "StringLookup", "IntegerLookup", "CategoryEncoding", "Hashing", "Discretization",
]
__all__ += ["Lambda"]

from fastnet.layers.op_layer import OpLayer  # noqa: E402
from fastnet.layers.op_layer import install as _install_symbolic_ops  # noqa: E402

__all__ += ["OpLayer"]
_install_symbolic_ops()


def _registry():
    """Every layer class fastnet exports, by class name: the only classes a config may name."""
    out = {}
    for name in __all__:
        obj = globals().get(name)
        if isinstance(obj, type) and issubclass(obj, Layer) and obj is not Layer:
            out[name] = obj
    return out


def get(class_name: str, custom_objects: CustomObjects | None = None) -> type[Layer] | Any:
    """The layer class for a Keras class name (custom classes only through custom_objects)."""
    if custom_objects and class_name in custom_objects:
        return custom_objects[class_name]
    cls = _registry().get(class_name)
    if cls is None:
        raise ValueError(f"Unknown layer class {class_name!r}. fastnet layers: {sorted(_registry())}; "
                         f"pass custom classes through custom_objects={{{class_name!r}: cls}}")
    return cls


def serialize(layer: Layer) -> Config:
    """The layer as Keras's serialized dict: module, class_name, config (Keras's keys),
    registered_name and build_config."""
    from fastnet.saving.serialization import serialize_layer

    return serialize_layer(layer)


def deserialize(config: Config, custom_objects: CustomObjects | None = None) -> Layer:
    """A layer from ``{"class_name": ..., "config": {...}}`` (Keras's layout). Class names
    are looked up among fastnet's layers and in ``custom_objects`` only."""
    from fastnet.saving.serialization import deserialize_layer

    return deserialize_layer(config, custom_objects=custom_objects)
