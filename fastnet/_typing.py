"""Type aliases for fastnet's annotations.

Imported only by type checkers (``if TYPE_CHECKING:``) and by tests that resolve the
annotations: importing fastnet never loads this module.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fastnet.initializers import Initializer
from fastnet.regularizers import Regularizer

#: Anything numpy can turn into an array (arrays, lists, scalars).
ArrayLike = npt.ArrayLike
#: A dtype given as a name (``"float32"``), a numpy dtype or a scalar type.
DTypeLike = npt.DTypeLike
#: A float array as the layers return it.
Array = np.ndarray
#: A shape whose batch (or any) dimension may be unknown.
Shape = tuple[int | None, ...]
#: A shape as a caller may give it (a tuple or a list).
ShapeLike = Sequence[int | None]
#: A layer's or object's configuration, with Keras's keys.
Config = dict[str, Any]
#: The logs passed to callbacks: metric names to values.
Logs = MutableMapping[str, Any]
#: An int, or one int per spatial dimension.
IntOrTuple = int | Sequence[int]
#: A Keras-style activation identifier: a name, a callable or a serialized dict.
ActivationLike = str | Callable[..., Any] | dict[str, Any]
#: A Keras-style initializer identifier.
InitializerLike = str | dict[str, Any] | Initializer | type[Initializer] | Callable[..., Any]
#: A Keras-style regularizer identifier.
RegularizerLike = str | dict[str, Any] | Regularizer | Callable[..., Any]
#: A weight constraint: a callable applied to the weight after each update.
ConstraintLike = Callable[..., Any]
#: Custom classes and functions by name, for deserialization.
CustomObjects = Mapping[str, Any]

__all__ = [
    "ArrayLike", "DTypeLike", "Array", "Shape", "ShapeLike", "Config", "Logs", "IntOrTuple",
    "ActivationLike", "InitializerLike", "RegularizerLike", "ConstraintLike", "CustomObjects",
]
