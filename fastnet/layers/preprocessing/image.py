"""Image preprocessing and augmentation: Resizing, CenterCrop and the Random* layers.

Images are ``(batch, height, width, channels)`` (``channels_last``) or ``(batch, channels,
height, width)`` (``channels_first``); a single image without the batch axis is accepted too.
The random layers transform only with ``training=True`` and are the identity otherwise; each
draws from its own generator when given a ``seed`` (so two layers with the same seed
transform alike), else from fastnet's global generator.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet import random as _random
from fastnet.layers.preprocessing._base import PreprocessingLayer
from fastnet.layers.preprocessing._image_ops import (
    FILL_MODES,
    RESIZE_METHODS,
    AffineSampler,
    crop_or_pad_box,
    resize,
    resize_backward,
    rotation_transforms,
    translation_transforms,
    zoom_transforms,
)

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import Config, Shape, ShapeLike

__all__ = ["Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
           "RandomContrast", "RandomBrightness", "RandomCrop"]


def _data_format(value, layer):
    value = config.image_data_format() if value is None else str(value).lower()
    if value not in ("channels_last", "channels_first"):
        raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first', received {value!r}")
    return value


class _ImageLayer(PreprocessingLayer):
    """Shared plumbing: float conversion, rank checks, channels-last batches."""

    def __init__(self, data_format: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format, type(self).__name__)

    def _prepare(self, inputs):
        x = super()._prepare(inputs)
        if x.ndim not in (3, 4):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) expects images of rank 3 '
                             f"(height, width, channels) or 4 (batch, ...), received shape {x.shape}")
        return x

    def _nhwc(self, x):
        """x as a channels-last batch."""
        if x.ndim == 3:
            x = x[None]
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        return x

    def _back(self, y, like_ndim):
        """A channels-last batch back to the input's layout and rank."""
        if self.data_format == "channels_first":
            y = y.transpose(0, 3, 1, 2)
        if like_ndim == 3:
            y = y[0]
        return np.ascontiguousarray(y)

    def _hw_axes(self, ndim):
        return (-2, -1) if self.data_format == "channels_first" else (-3, -2)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["data_format"] = self.data_format
        return cfg


def _set_factor(factor, bounds, layer):
    msg = (f"{layer}: `factor` must be a number or a pair of numbers in the range [{bounds[0]}, "
           f"{bounds[1]}]. Received: factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(msg)
        lower, upper = sorted(factor)
    elif isinstance(factor, (int, float, np.number)) and not isinstance(factor, bool):
        if factor < bounds[0] or factor > bounds[1]:
            raise ValueError(msg)
        factor = abs(float(factor))
        lower, upper = max(-factor, bounds[0]), factor
    else:
        raise ValueError(msg)
    return lower, upper


class Resizing(_ImageLayer):
    """Resizes images to ``(height, width)``.

    Sampling follows Keras: half-pixel centres, the kernel of ``interpolation``, weights
    normalised per output pixel. Integer images come back rounded in their own dtype.

    Args:
        height, width: output size.
        interpolation: "bilinear", "nearest", "bicubic", "lanczos3" or "lanczos5".
        crop_to_aspect_ratio: first take the largest centred crop with the target's aspect
            ratio (no distortion).
        pad_to_aspect_ratio: first pad (with ``fill_value``) to the target's aspect ratio.
        fill_mode: "constant" only (the padding).
        fill_value: padding value.
        antialias: widen the kernel when downsampling.
        data_format: "channels_last" or "channels_first".

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)`` (channels_last).

    Output shape:
        ``(batch, height, width, c)`` (or the unbatched form).
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear", crop_to_aspect_ratio: bool = False,
                 pad_to_aspect_ratio: bool = False, fill_mode: str = "constant", fill_value: float = 0.0,
                 antialias: bool = False, data_format: str | None = None, **kwargs) -> None:
        super().__init__(data_format=data_format, **kwargs)
        if interpolation not in RESIZE_METHODS:
            raise ValueError(f"Resizing: unknown interpolation {interpolation!r}; valid values: "
                             f"{list(RESIZE_METHODS)}")
        if fill_mode != "constant":
            raise ValueError(f"Resizing: fill_mode must be 'constant', received {fill_mode!r}")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError("Resizing: only one of `pad_to_aspect_ratio` and `crop_to_aspect_ratio` can be True")
        self.height = int(height)
        self.width = int(width)
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.antialias = bool(antialias)

    def _prepare(self, inputs):
        x = np.asarray(inputs)
        if x.dtype.kind in "iu":
            if x.ndim not in (3, 4):
                raise ValueError(f'Layer "{self.name}" (Resizing) expects images of rank 3 or 4, received '
                                 f"shape {x.shape}")
            return x
        return super()._prepare(inputs)

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        in_dtype = inputs.dtype
        x = self._nhwc(inputs)
        if in_dtype.kind in "iu":
            x = x.astype(np.float32)
        y, record = resize_with_aspect(x, self.height, self.width, self.interpolation, self.antialias,
                                       self.crop_to_aspect_ratio, self.pad_to_aspect_ratio, self.fill_value)
        if ctx.record:
            ctx.record_resize = record
            ctx.in_ndim = inputs.ndim
        if in_dtype.kind in "iu":
            info = np.iinfo(in_dtype)
            y = np.clip(np.round(y), info.min, info.max).astype(in_dtype)
        return self._back(y, inputs.ndim)

    def backward(self, ctx: Any, dy: Any) -> Any:
        if not ctx.need_dx:
            return None
        g = self._nhwc(dy)
        return self._back(resize_with_aspect_backward(g, ctx.record_resize), ctx.in_ndim)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        shape = list(input_shape)
        ha, wa = self._hw_axes(len(shape))
        shape[ha], shape[wa] = self.height, self.width
        return tuple(shape)

    def output_dtype_for(self, input_dtype: Any) -> str:
        try:
            kind = np.dtype(input_dtype).kind
        except TypeError:
            return self.compute_dtype
        return np.dtype(input_dtype).name if kind in "iu" else self.compute_dtype

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"height": self.height, "width": self.width, "interpolation": self.interpolation,
                    "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                    "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                    "fill_value": self.fill_value, "antialias": self.antialias})
        return cfg


def resize_with_aspect(x, height, width, method, antialias, crop, pad, fill_value):
    """Resizes a channels-last batch, first cropping or padding it to the target's aspect
    ratio when asked; returns the output and what backward needs."""
    b, h, w, c = x.shape
    box = None
    padding = None
    if crop:
        top, left, ch, cw = crop_or_pad_box(h, w, height, width, "crop")
        box = (top, left, ch, cw)
        x = x[:, top:top + ch, left:left + cw, :]
    elif pad:
        ph, pw = crop_or_pad_box(h, w, height, width, "pad")
        # Keras pads height when it needs to, else width, the same amount on both sides.
        if ph > 0:
            padding = (ph, 0)
        elif pw > 0:
            padding = (0, pw)
        if padding is not None:
            x = np.pad(x, ((0, 0), (padding[0],) * 2, (padding[1],) * 2, (0, 0)), constant_values=fill_value)
    y, mats = resize(np.ascontiguousarray(x), height, width, method, antialias)
    return y, ((h, w), box, padding, mats)


def resize_with_aspect_backward(g, record):
    (h, w), box, padding, mats = record
    dx = resize_backward(g, mats)
    if box is not None:
        top, left, ch, cw = box
        full = np.zeros((dx.shape[0], h, w, dx.shape[3]), dtype=dx.dtype)
        full[:, top:top + ch, left:left + cw, :] = dx
        return full
    if padding is not None:
        ph, pw = padding
        dx = dx[:, ph:dx.shape[1] - ph, pw:dx.shape[2] - pw, :]
    return dx


class CenterCrop(_ImageLayer):
    """Crops the centre ``(height, width)`` of images; images smaller than that are instead
    cropped to the target's aspect ratio and resized (bilinear), as Keras does.

    Args:
        height, width: output size.
        data_format: "channels_last" or "channels_first".

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)``.

    Output shape:
        ``(batch, height, width, c)``.
    """

    def __init__(self, height: int, width: int, data_format: str | None = None, **kwargs) -> None:
        super().__init__(data_format=data_format, **kwargs)
        self.height = int(height)
        self.width = int(width)

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        x = self._nhwc(inputs)
        h, w = x.shape[1], x.shape[2]
        if ctx.record:
            ctx.in_ndim = inputs.ndim
            ctx.hw = (h, w)
        if h >= self.height and w >= self.width:
            top = (h - self.height) // 2
            left = (w - self.width) // 2
            if ctx.record:
                ctx.crop = (top, left)
            return self._back(x[:, top:top + self.height, left:left + self.width, :], inputs.ndim)
        y, record = resize_with_aspect(x, self.height, self.width, "bilinear", False, True, False, 0.0)
        if ctx.record:
            ctx.crop = None
            ctx.record_resize = record
        return self._back(y, inputs.ndim)

    def backward(self, ctx: Any, dy: Any) -> Any:
        if not ctx.need_dx:
            return None
        g = self._nhwc(dy)
        if ctx.crop is None:
            return self._back(resize_with_aspect_backward(g, ctx.record_resize), ctx.in_ndim)
        top, left = ctx.crop
        h, w = ctx.hw
        dx = np.zeros((g.shape[0], h, w, g.shape[3]), dtype=g.dtype)
        dx[:, top:top + self.height, left:left + self.width, :] = g
        return self._back(dx, ctx.in_ndim)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        shape = list(input_shape)
        if len(shape) not in (3, 4):
            raise ValueError(f'Layer "{self.name}" (CenterCrop) expects an input shape of rank 3 or 4, '
                             f"received {tuple(input_shape)}")
        ha, wa = self._hw_axes(len(shape))
        shape[ha], shape[wa] = self.height, self.width
        return tuple(shape)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"height": self.height, "width": self.width})
        return cfg


# ---------------------------------------------------------------------- random layers
class _RandomImageLayer(_ImageLayer):
    """A random augmentation: transforms with ``training=True``, identity otherwise."""

    def __init__(self, seed: int | None = None, data_format: str | None = None, **kwargs) -> None:
        super().__init__(data_format=data_format, **kwargs)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def _generator(self):
        return self._rng if self._rng is not None else _random.generator()

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        if ctx.record:
            ctx.active = bool(training)
            ctx.in_ndim = inputs.ndim
        if not training:
            return inputs
        x = self._nhwc(inputs)
        y = self._transform(ctx, x)
        return self._back(y, inputs.ndim)

    def backward(self, ctx: Any, dy: Any) -> Any:
        if not ctx.need_dx:
            return None
        if not ctx.active:
            return dy
        return self._back(self._transform_backward(ctx, self._nhwc(dy)), ctx.in_ndim)

    def _transform(self, ctx, x):
        raise NotImplementedError

    def _transform_backward(self, ctx, g):
        raise NotImplementedError

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["seed"] = self.seed
        return cfg


class RandomFlip(_RandomImageLayer):
    """Flips each image with probability 1/2 while training.

    Args:
        mode: "horizontal", "vertical" or "horizontal_and_vertical" (one draw per image
            flips both axes together, as in Keras).
        seed: int for reproducible flips.
        data_format: "channels_last" or "channels_first".

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)``.

    Output shape:
        The input shape.
    """

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None, data_format: str | None = None,
                 **kwargs) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in self._MODES:
            raise ValueError(f"RandomFlip: unknown mode {mode!r}; valid values: {list(self._MODES)}")
        self.mode = mode

    def _flip(self, x, flips):
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            x = np.where(flips[:, None, None, None], x[:, :, ::-1, :], x)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            x = np.where(flips[:, None, None, None], x[:, ::-1, :, :], x)
        return x

    def _transform(self, ctx, x):
        flips = self._generator().uniform(size=x.shape[0]) <= 0.5
        if ctx.record:
            ctx.flips = flips
        return self._flip(x, flips)

    def _transform_backward(self, ctx, g):
        return self._flip(g, ctx.flips)  # a flip is its own inverse (and its own transpose)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["mode"] = self.mode
        return cfg


class _AffineLayer(_RandomImageLayer):
    _SUPPORTED_INTERPOLATION = ("nearest", "bilinear")
    _SUPPORTED_FILL = ("reflect", "wrap", "constant", "nearest")

    def _check_modes(self, fill_mode, interpolation):
        if fill_mode not in self._SUPPORTED_FILL:
            raise NotImplementedError(f"{type(self).__name__}: unknown fill_mode {fill_mode!r}; valid values: "
                                      f"{list(self._SUPPORTED_FILL)}")
        if interpolation not in self._SUPPORTED_INTERPOLATION:
            raise NotImplementedError(f"{type(self).__name__}: unknown interpolation {interpolation!r}; valid "
                                      f"values: {list(self._SUPPORTED_INTERPOLATION)}")
        assert fill_mode in FILL_MODES

    def _transforms(self, b, h, w):
        raise NotImplementedError

    def _transform(self, ctx, x):
        b, h, w, _ = x.shape
        sampler = AffineSampler(x.shape, self._transforms(b, h, w), self.interpolation, self.fill_mode,
                                self.fill_value)
        if ctx.record:
            ctx.sampler = sampler
        return sampler.forward(x)

    def _transform_backward(self, ctx, g):
        return ctx.sampler.backward(g)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"fill_mode": self.fill_mode, "fill_value": self.fill_value,
                    "interpolation": self.interpolation})
        return cfg


class RandomRotation(_AffineLayer):
    """Rotates each image by a random angle while training.

    Args:
        factor: a fraction of a full turn: float f (angles in [-f, f] * 360 degrees) or a
            pair (lower, upper); positive angles turn counter-clockwise.
        fill_mode: "reflect", "wrap", "constant" or "nearest": how points outside the image
            are filled.
        interpolation: "bilinear" or "nearest".
        seed: int for reproducible angles.
        fill_value: the value for fill_mode="constant".
        data_format: "channels_last" or "channels_first".

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)``.

    Output shape:
        The input shape.
    """

    def __init__(self, factor: float | tuple[float, float], fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _set_factor(factor, (-1, 1), "RandomRotation")
        self._check_modes(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = fill_value

    def _transforms(self, b, h, w):
        angle = self._generator().uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, size=b)
        return rotation_transforms(angle.astype(np.float32), h, w)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["factor"] = list(self.factor)
        return cfg


def _zoom_factor(factor, name, layer, open_low):
    msg = (f"{layer}: `{name}` must be a number or a pair of numbers in the range "
           f"{'(-1.0, 1.0]' if open_low else '[-1.0, 1.0]'}. Received: {name}={factor}")

    def check(v):
        if v > 1.0 or (v <= -1.0 if open_low else v < -1.0):
            raise ValueError(msg)

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(msg)
        check(factor[0])
        check(factor[1])
        return tuple(sorted(factor))
    if isinstance(factor, (int, float, np.number)) and not isinstance(factor, bool):
        check(factor)
        f = abs(float(factor))
        return -f, f
    raise ValueError(msg)


class RandomZoom(_AffineLayer):
    """Zooms each image in or out by a random factor while training.

    Args:
        height_factor: float f or pair (lower, upper) in (-1, 1]: the vertical zoom is drawn in
            [1 + lower, 1 + upper] (a value > 1 zooms out, < 1 zooms in).
        width_factor: the same for the horizontal zoom; None keeps the aspect ratio (the
            vertical draw is used for both).
        fill_mode, interpolation, seed, fill_value, data_format: as RandomRotation.

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)``.

    Output shape:
        The input shape.
    """

    def __init__(self, height_factor: float | tuple[float, float],
                 width_factor: float | tuple[float, float] | None = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, fill_value: float = 0.0,
                 data_format: str | None = None, **kwargs) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height_factor = height_factor
        self.height_lower, self.height_upper = _zoom_factor(height_factor, "height_factor", "RandomZoom", True)
        self.width_factor = width_factor
        if width_factor is not None:
            self.width_lower, self.width_upper = _zoom_factor(width_factor, "width_factor", "RandomZoom", True)
        self._check_modes(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = fill_value

    def _transforms(self, b, h, w):
        rng = self._generator()
        zy = rng.uniform(1.0 + self.height_lower, 1.0 + self.height_upper, size=b)
        zx = rng.uniform(1.0 + self.width_lower, 1.0 + self.width_upper, size=b) if self.width_factor is not None \
            else zy
        return zoom_transforms(zx, zy, h, w)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return cfg


class RandomTranslation(_AffineLayer):
    """Shifts each image by a random offset while training.

    Args:
        height_factor: float f or pair (lower, upper) in [-1, 1]: the vertical shift is drawn
            in [lower, upper] times the height (positive: down).
        width_factor: the same for the horizontal shift (positive: right).
        fill_mode, interpolation, seed, fill_value, data_format: as RandomRotation.

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)``.

    Output shape:
        The input shape.
    """

    def __init__(self, height_factor: float | tuple[float, float], width_factor: float | tuple[float, float],
                 fill_mode: str = "reflect", interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, data_format: str | None = None, **kwargs) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height_factor = height_factor
        self.height_lower, self.height_upper = _zoom_factor(height_factor, "height_factor", "RandomTranslation",
                                                            False)
        self.width_factor = width_factor
        self.width_lower, self.width_upper = _zoom_factor(width_factor, "width_factor", "RandomTranslation", False)
        self._check_modes(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = fill_value

    def _transforms(self, b, h, w):
        rng = self._generator()
        dy = rng.uniform(self.height_lower, self.height_upper, size=b) * h
        dx = rng.uniform(self.width_lower, self.width_upper, size=b) * w
        return translation_transforms(dx, dy)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return cfg


class RandomContrast(_RandomImageLayer):
    """Scales each image's contrast by a random factor while training:
    ``clip((x - mean) * f + mean, *value_range)`` with the mean per image and channel.

    Args:
        factor: float or pair in [0, 1]; with a float f the factor is drawn in [1, 1 + f] (Keras
            clamps the lower bound at 0), with a pair (lower, upper) in [1 - lower, 1 + upper].
        value_range: the range outputs are clipped to, (0, 255) by default.
        seed: int for reproducible factors.

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)``.

    Output shape:
        The input shape.
    """

    def __init__(self, factor: float | tuple[float, float], value_range: tuple[float, float] = (0, 255),
                 seed: int | None = None, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        self.factor = _set_factor(factor, (0, 1), "RandomContrast")
        self.value_range = tuple(value_range)

    def _transform(self, ctx, x):
        f = self._generator().uniform(1.0 - self.factor[0], 1.0 + self.factor[1], size=x.shape[0])
        f = f.astype(x.dtype)[:, None, None, None]
        mean = x.mean(axis=(1, 2), keepdims=True)
        y = (x - mean) * f + mean
        lo, hi = self.value_range
        if ctx.record:
            ctx.factor = f
            ctx.inside = (y >= lo) & (y <= hi)
        return np.clip(y, lo, hi)

    def _transform_backward(self, ctx, g):
        g = g * ctx.inside
        f = ctx.factor
        return g * f + (1 - f) * g.mean(axis=(1, 2), keepdims=True)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"factor": list(self.factor), "value_range": list(self.value_range)})
        return cfg


class RandomBrightness(_RandomImageLayer):
    """Adds a random brightness offset to each image while training, then clips to
    ``value_range``: the offset is drawn in ``factor`` times the width of the range.

    Args:
        factor: float f (offsets in [-f, f]) or pair (lower, upper), within [-1, 1].
        value_range: the range of the images, (0, 255) by default.
        seed: int for reproducible offsets.

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)``.

    Output shape:
        The input shape.
    """

    def __init__(self, factor: float | tuple[float, float], value_range: tuple[float, float] = (0, 255),
                 seed: int | None = None, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        self.factor = _set_factor(factor, (-1, 1), "RandomBrightness")
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(f"RandomBrightness: `value_range` must be a list of two numbers. "
                             f"Received: value_range={value_range}")
        self.value_range = sorted(value_range)

    def _transform(self, ctx, x):
        lo, hi = self.value_range
        delta = self._generator().uniform(self.factor[0], self.factor[1], size=x.shape[0]) * (hi - lo)
        y = x + delta.astype(x.dtype)[:, None, None, None]
        if ctx.record:
            ctx.inside = (y >= lo) & (y <= hi)
        return np.clip(y, lo, hi)

    def _transform_backward(self, ctx, g):
        return g * ctx.inside

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"factor": list(self.factor), "value_range": list(self.value_range)})
        return cfg


class RandomCrop(_RandomImageLayer):
    """Crops a random ``(height, width)`` window (one per batch) while training; the
    identity at inference, as in Keras. Images not larger than the window on both axes are
    cropped to its aspect ratio and resized instead.

    Args:
        height, width: the crop size.
        seed: int for reproducible crops.
        data_format: "channels_last" or "channels_first".

    Input shape:
        ``(batch, h, w, c)`` or ``(h, w, c)``.

    Output shape:
        ``(batch, height, width, c)`` while training; the input shape at inference (Keras's
        ``compute_output_shape`` gives the training shape, as here).
    """

    def __init__(self, height: int, width: int, seed: int | None = None, data_format: str | None = None,
                 name: str | None = None, **kwargs) -> None:
        if seed is None:
            seed = _random.next_seed() % (2 ** 31)  # stored in the config, as Keras does
        super().__init__(seed=seed, data_format=data_format, name=name, **kwargs)
        self.height = int(height)
        self.width = int(width)

    def _transform(self, ctx, x):
        b, h, w, c = x.shape
        if h > self.height and w > self.width:
            rng = self._generator()
            top = int(rng.uniform(0, float(h - self.height + 1)))
            left = int(rng.uniform(0, float(w - self.width + 1)))
            if ctx.record:
                ctx.crop = (top, left, h, w)
            return x[:, top:top + self.height, left:left + self.width, :]
        y, record = resize_with_aspect(x, self.height, self.width, "bilinear", False, True, False, 0.0)
        if ctx.record:
            ctx.crop = None
            ctx.record_resize = record
        return y

    def _transform_backward(self, ctx, g):
        if ctx.crop is None:
            return resize_with_aspect_backward(g, ctx.record_resize)
        top, left, h, w = ctx.crop
        dx = np.zeros((g.shape[0], h, w, g.shape[3]), dtype=g.dtype)
        dx[:, top:top + self.height, left:left + self.width, :] = g
        return dx

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        shape = list(input_shape)
        ha, wa = self._hw_axes(len(shape))
        shape[ha], shape[wa] = self.height, self.width
        return tuple(shape)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"height": self.height, "width": self.width})
        return cfg
