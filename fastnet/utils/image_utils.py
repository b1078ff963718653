"""Images to arrays and back, as ``keras.utils`` has them: ``load_img``, ``img_to_array``,
``array_to_img``, ``save_img``. They need Pillow (the ``image`` extra), imported when
first used."""
from __future__ import annotations

import io
import os
import pathlib
import warnings
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config

if TYPE_CHECKING:
    from PIL.Image import Image

    from fastnet._typing import ArrayLike

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img"]

_PIL_FILTERS = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "hamming": "HAMMING",
                "box": "BOX", "lanczos": "LANCZOS"}


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("Loading and saving images needs Pillow: pip install pillow "
                          "(or the fastnet[image] extra)") from e
    return Image


def _resample(name, table=_PIL_FILTERS):
    Image = _pil()
    if name not in table:
        raise ValueError(f"Invalid interpolation method {name!r}; supported methods are {sorted(table)}")
    return getattr(getattr(Image, "Resampling", Image), table[name])


def _data_format(data_format):
    data_format = config.image_data_format() if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', received {data_format!r}")
    return data_format


def _convert_mode(img, color_mode):
    if color_mode == "grayscale":
        # 8-, 16- and 32-bit grayscale stay as they are; anything else becomes 8-bit gray.
        return img if img.mode in ("L", "I;16", "I") else img.convert("L")
    if color_mode == "rgba":
        return img if img.mode == "RGBA" else img.convert("RGBA")
    if color_mode == "rgb":
        return img if img.mode == "RGB" else img.convert("RGB")
    raise ValueError(f'color_mode must be "grayscale", "rgb" or "rgba", received color_mode={color_mode!r}')


def _center_crop_box(width, height, target_w, target_h):
    crop_h = min(height, (width * target_h) // target_w)
    crop_w = min(width, (height * target_w) // target_h)
    top = (height - crop_h) // 2
    left = (width - crop_w) // 2
    return (left, top, left + crop_w, top + crop_h)


def load_img(path: str | os.PathLike | io.BytesIO, color_mode: str = "rgb",
             target_size: tuple[int, int] | None = None, interpolation: str = "nearest",
             keep_aspect_ratio: bool = False) -> Image:
    """Loads an image file into a PIL image.

    Args:
        path: path of the image file, or a ``BytesIO`` holding it.
        color_mode: "grayscale", "rgb" or "rgba".
        target_size: ``(height, width)`` to resize to; None keeps the file's size.
        interpolation: "nearest", "bilinear", "bicubic", "hamming", "box" or "lanczos".
        keep_aspect_ratio: resize a centered crop of the target's aspect ratio instead of
            stretching the whole image.

    Returns:
        A PIL image.
    """
    Image = _pil()
    if isinstance(path, io.BytesIO):
        img = Image.open(path)
    elif isinstance(path, (str, bytes, pathlib.Path, os.PathLike)):
        with open(os.fspath(path), "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
    else:
        raise TypeError(f"load_img: path should be a path or an io.BytesIO, received {type(path).__name__}")
    img = _convert_mode(img, color_mode)
    if target_size is not None:
        height, width = (int(s) for s in target_size)
        if (width, height) != img.size:
            resample = _resample(interpolation)
            box = _center_crop_box(img.size[0], img.size[1], width, height) if keep_aspect_ratio else None
            img = img.resize((width, height), resample, box=box)
    return img


def img_to_array(img: Image | ArrayLike, data_format: str | None = None, dtype: str | None = None) -> np.ndarray:
    """A PIL image as a 3D array, ``(height, width, channels)`` (or channels first).

    Args:
        img: a PIL image (or anything ``np.asarray`` takes).
        data_format: "channels_last" or "channels_first" (default: ``image_data_format()``).
        dtype: array type (default: ``floatx()``).
    """
    data_format = _data_format(data_format)
    x = np.asarray(img, dtype=dtype or config.floatx())
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(2, 0, 1)) if data_format == "channels_first" else x
    if x.ndim == 2:
        return x.reshape((1,) + x.shape) if data_format == "channels_first" else x.reshape(x.shape + (1,))
    raise ValueError(f"img_to_array: unsupported image shape {x.shape} (expected 2 or 3 dimensions)")


def array_to_img(x: ArrayLike, data_format: str | None = None, scale: bool = True,
                 dtype: str | None = None) -> Image:
    """A 3D array as a PIL image (1 channel: "L", or "I" when values exceed 255; 3: "RGB"; 4: "RGBA").

    Args:
        x: array of shape ``(height, width, channels)`` (or channels first).
        data_format: "channels_last" or "channels_first" (default: ``image_data_format()``).
        scale: rescale the values to ``[0, 255]`` (min to 0, max to 255).
        dtype: type the values are read as (default: ``floatx()``).
    """
    Image = _pil()
    data_format = _data_format(data_format)
    x = np.array(x, dtype=dtype or config.floatx())
    if x.ndim != 3:
        raise ValueError(f"Expected an image array of rank 3 (one image), received an array of shape {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x /= top
        x *= 255
    channels = x.shape[2]
    if channels == 4:
        return Image.fromarray(x.astype("uint8"), "RGBA")
    if channels == 3:
        return Image.fromarray(x.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(x) > 255:  # 32-bit signed integer grayscale
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"array_to_img: unsupported number of channels {channels} (expected 1, 3 or 4)")


def save_img(path: str | os.PathLike, x: ArrayLike, data_format: str | None = None,
             file_format: str | None = None, scale: bool = True, **kwargs) -> None:
    """Saves a 3D array as an image file.

    Args:
        path: file path (or file object).
        x: the image array.
        data_format: "channels_last" or "channels_first".
        file_format: format to write (default: from the file name's extension).
        scale: rescale the values to ``[0, 255]`` first.
        **kwargs: passed to PIL's ``Image.save``.
    """
    data_format = _data_format(data_format)
    img = array_to_img(x, data_format=data_format, scale=scale)
    if file_format is not None and file_format.lower() == "jpg":
        file_format = "jpeg"
    ext = os.path.splitext(os.fspath(path))[1].lower() if isinstance(path, (str, os.PathLike)) else ""
    if img.mode == "RGBA" and ((file_format or "").lower() == "jpeg" or (file_format is None
                                                                         and ext in (".jpg", ".jpeg"))):
        warnings.warn("The JPG format does not support RGBA images, converting to RGB.", stacklevel=2)
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)
