"""Array ops with gradients, as in ``keras.ops``.

``fastnet.ops`` holds the numpy-like functions (``ops.matmul``, ``ops.sum``, ``ops.where``,
...), the neural-network ones (``ops.relu``, ``ops.softmax``, ``ops.conv``; also under
``ops.nn``), math (``ops.logsumexp``, ``ops.erf``, ``ops.top_k``) and core ones
(``ops.cond``, ``ops.fori_loop``, ``ops.stop_gradient``, ``ops.convert_to_tensor``).

On numpy arrays, Python numbers and Variables every op computes eagerly and returns a
numpy array::

    >>> import numpy as np
    >>> from fastnet import ops
    >>> ops.softmax(np.array([0.0, np.log(3.0)], dtype=np.float32))
    array([0.25, 0.75], dtype=float32)

Inside a recorded call (a :class:`fastnet.ops.autodiff.Tape`, which layers and models
open around ``call``) the ops take and return traced values and record their
vector-Jacobian products, so anything written with them trains.
"""
from fastnet.ops import autodiff, core, linalg, math, nn, numpy  # noqa: F401
from fastnet.ops.core import *  # noqa: F401,F403
from fastnet.ops.core import map, slice  # noqa: F401,A004,E402
from fastnet.ops.math import *  # noqa: F401,F403
from fastnet.ops.nn import *  # noqa: F401,F403
from fastnet.ops.numpy import *  # noqa: F401,F403
from fastnet.ops.numpy import abs, all, any, max, min, round, sum  # noqa: F401,A004
