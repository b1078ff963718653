"""Small datasets with Keras's ``load_data`` functions, read from the cache Keras uses
(``~/.keras/datasets`` or ``$KERAS_HOME/datasets``) and downloaded there on first use."""
from fastnet.datasets import (
    boston_housing,
    california_housing,
    cifar10,
    cifar100,
    fashion_mnist,
    imdb,
    mnist,
    reuters,
)

__all__ = ["mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters", "boston_housing",
           "california_housing"]
