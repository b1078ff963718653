"""Layers, as in ``keras.layers``."""
from fastnet.layers.base import Input, InputLayer, InputSpec, Layer
from fastnet.layers.core import Activation, Dense, Dropout, Flatten, Reshape
from fastnet.layers.normalization import BatchNormalization
from fastnet.layers.embedding import Embedding
from fastnet.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from fastnet.layers.wrappers import Bidirectional, TimeDistributed

__all__ = [
    "Layer", "InputSpec", "InputLayer", "Input", "Dense", "Activation", "Flatten", "Reshape",
    "Dropout", "BatchNormalization",
    "Embedding", "SimpleRNN", "LSTM", "GRU", "RNN", "SimpleRNNCell", "LSTMCell", "GRUCell",
    "Bidirectional", "TimeDistributed",
]
