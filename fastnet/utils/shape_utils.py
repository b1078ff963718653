"""Output sizes and padding of convolutions and pooling, in one place.

Every convolution, transposed convolution and pooling layer asks this module for
its output shape (``compute_output_shape``) and for the geometry its kernels run
with, so the two can never disagree.

The geometry of a 2-D window operation is a :class:`Geometry`: input size
``(h, w)``, output size ``(oh, ow)``, window ``(kh, kw)``, strides, dilation and
the padding added *before* the first row and column (``pad_top``, ``pad_left``).
Padding after the last row/column is implicit: window taps that fall outside
the input read zeros (or are skipped by pooling). 1-D operations are 2-D ones
with a single row (``h = oh = kh = 1``).

Padding follows Keras (TensorFlow's rule): ``"same"`` pads
``max((out - 1) * stride + k_eff - in, 0)`` in total, half of it (rounded down)
before and the rest after, so an odd total puts the extra row/column at the end;
``"causal"`` (Conv1D) pads ``k_eff - 1`` before and nothing after.

Example:
    >>> conv_output_length(10, 3, "valid", 1)
    8
    >>> same_padding(7, 3, 2)
    (1, 1)
    >>> conv_transpose_output_length(2, 3, "valid", None, 2)
    5
"""
from collections import namedtuple

import numpy as np

__all__ = [
    "normalize_tuple", "normalize_padding", "normalize_data_format", "effective_kernel",
    "conv_output_length", "same_padding", "conv_padding", "conv_transpose_output_length",
    "conv_transpose_padding", "pool_output_length", "Geometry", "conv_geometry",
    "conv_transpose_geometry", "pool_geometry",
]

Geometry = namedtuple("Geometry", "h w oh ow kh kw sh sw dh dw pad_top pad_left")
Geometry.__doc__ = """Window geometry of a 2-D convolution or pooling (1-D: one row).

``h, w``: input rows/cols; ``oh, ow``: output rows/cols; ``kh, kw``: window;
``sh, sw``: strides; ``dh, dw``: dilation; ``pad_top, pad_left``: zero rows/cols
added before the input (padding after it is implied by the output size)."""


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def normalize_tuple(value, n, name, layer, allow_zero=False):
    """``value`` (an int or a sequence of ``n`` ints) as a tuple of ``n`` ints.

    Raises a ValueError naming the layer and argument when a size is not a
    positive integer (or a non-negative one with ``allow_zero``).
    """
    if _is_int(value):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            values = None
        if values is None or len(values) != n or not all(_is_int(v) for v in values):
            raise ValueError(f"The `{name}` argument of {layer} must be an int or a tuple of {n} "
                             f"ints, received {name}={value!r}")
        values = tuple(int(v) for v in values)
    low = 0 if allow_zero else 1
    if any(v < low for v in values):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"The `{name}` argument of {layer} must hold {kind} integers, "
                         f"received {name}={value!r}")
    return values


def normalize_padding(padding, layer, allow_causal=False):
    valid = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    p = padding.lower() if isinstance(padding, str) else padding
    if p not in valid:
        raise ValueError(f"The `padding` argument of {layer} must be one of {list(valid)}, "
                         f"received padding={padding!r}")
    return p


def normalize_data_format(data_format, layer):
    from fastnet import config

    fmt = config.image_data_format() if data_format is None else data_format
    fmt = fmt.lower() if isinstance(fmt, str) else fmt
    if fmt not in ("channels_last", "channels_first"):
        raise ValueError(f"The `data_format` argument of {layer} must be 'channels_last' or "
                         f"'channels_first', received data_format={data_format!r}")
    return fmt


def effective_kernel(kernel, dilation=1):
    """Span of a dilated window: ``(kernel - 1) * dilation + 1``."""
    return (kernel - 1) * dilation + 1


def conv_output_length(length, kernel, padding, stride, dilation=1):
    """Output length of a convolution (None stays None).

    ``valid``: ``(length - k_eff) // stride + 1`` (may be <= 0: the caller reports it);
    ``same`` and ``causal``: ``ceil(length / stride)``.
    """
    if length is None:
        return None
    if padding == "valid":
        return (length - effective_kernel(kernel, dilation)) // stride + 1
    return (length + stride - 1) // stride


def same_padding(length, kernel, stride, dilation=1, out_length=None):
    """(before, after) zero padding of a ``same`` window, the extra one at the end."""
    if out_length is None:
        out_length = (length + stride - 1) // stride
    total = max((out_length - 1) * stride + effective_kernel(kernel, dilation) - length, 0)
    return total // 2, total - total // 2


def conv_padding(length, kernel, padding, stride, dilation=1):
    """(before, after) padding of a convolution or pooling window along one axis."""
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return effective_kernel(kernel, dilation) - 1, 0
    return same_padding(length, kernel, stride, dilation)


def pool_output_length(length, pool, padding, stride):
    """Output length of a pooling window (same rule as a convolution without dilation)."""
    return conv_output_length(length, pool, padding, stride, 1)


def conv_transpose_output_length(length, kernel, padding, output_padding, stride, dilation=1):
    """Output length of a transposed convolution, as Keras computes it.

    ``valid``: ``(length - 1) * stride + k_eff + output_padding`` with
    ``output_padding`` defaulting to ``max(k_eff, stride) - k_eff``;
    ``same``: ``length * stride`` without output_padding, else
    ``(length - 1) * stride + k_eff % 2 + output_padding``.
    """
    if length is None:
        return None
    k = effective_kernel(kernel, dilation)
    if padding == "valid":
        op = max(k, stride) - k if output_padding is None else output_padding
        return (length - 1) * stride + k + op
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + k % 2 + output_padding


def conv_transpose_padding(length, out_length, kernel, padding, stride, dilation=1):
    """Padding before the first output row of a transposed convolution.

    A transposed convolution is the input gradient of the convolution that maps
    ``out_length`` back to ``length``; its padding is that convolution's.
    """
    if padding == "valid":
        return 0
    return same_padding(out_length, kernel, stride, dilation, out_length=length)[0]


def conv_geometry(spatial_in, kernel, strides, padding, dilation):
    """Geometry of a 1-D or 2-D convolution on input spatial size ``spatial_in``."""
    outs = [conv_output_length(n, k, padding, s, d)
            for n, k, s, d in zip(spatial_in, kernel, strides, dilation)]
    pads = [conv_padding(n, k, padding, s, d)[0]
            for n, k, s, d in zip(spatial_in, kernel, strides, dilation)]
    return _geometry(spatial_in, outs, kernel, strides, dilation, pads)


def conv_transpose_geometry(spatial_in, kernel, strides, padding, output_padding, dilation):
    """Geometry of the convolution whose input gradient is the transposed convolution.

    Its *input* is the transposed convolution's output (``h, w`` are the output
    size) and its *output* the transposed convolution's input (``oh, ow``).
    """
    ops_ = output_padding if output_padding is not None else (None,) * len(spatial_in)
    outs = [conv_transpose_output_length(n, k, padding, op, s, d)
            for n, k, op, s, d in zip(spatial_in, kernel, ops_, strides, dilation)]
    pads = [conv_transpose_padding(n, o, k, padding, s, d)
            for n, o, k, s, d in zip(spatial_in, outs, kernel, strides, dilation)]
    return _geometry(outs, spatial_in, kernel, strides, dilation, pads)


def pool_geometry(spatial_in, pool, strides, padding):
    """Geometry of a 1-D or 2-D pooling window."""
    ones = (1,) * len(spatial_in)
    return conv_geometry(spatial_in, pool, strides, padding, ones)


def _geometry(spatial_in, spatial_out, kernel, strides, dilation, pads):
    if len(spatial_in) == 1:
        return Geometry(1, spatial_in[0], 1, spatial_out[0], 1, kernel[0], 1, strides[0], 1,
                        dilation[0], 0, pads[0])
    return Geometry(spatial_in[0], spatial_in[1], spatial_out[0], spatial_out[1], kernel[0],
                    kernel[1], strides[0], strides[1], dilation[0], dilation[1], pads[0], pads[1])
