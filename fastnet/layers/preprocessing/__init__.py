"""Preprocessing layers, as in Keras: normalization, rescaling, image resizing and
augmentation, text vectorization, lookups, hashing and discretization."""
from fastnet.layers.preprocessing.numerical import CategoryEncoding, Discretization, Hashing, Normalization, Rescaling

__all__ = ["Normalization", "Rescaling", "Discretization", "CategoryEncoding", "Hashing"]
from fastnet.layers.preprocessing.lookup import IntegerLookup, StringLookup  # noqa: E402

__all__ += ["StringLookup", "IntegerLookup"]
from fastnet.layers.preprocessing.text import TextVectorization  # noqa: E402

__all__ += ["TextVectorization"]
from fastnet.layers.preprocessing.image import (  # noqa: E402
    CenterCrop,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Resizing,
)

__all__ += ["Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
            "RandomContrast", "RandomBrightness", "RandomCrop"]
