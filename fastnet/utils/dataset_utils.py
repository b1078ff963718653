"""Datasets from folders and arrays, as ``keras.utils`` builds them, returned as
:class:`fastnet.data.Dataset`: ``image_dataset_from_directory``,
``text_dataset_from_directory``, ``timeseries_dataset_from_array`` and ``split_dataset``.

The files of a folder are listed and ordered as Keras orders them (class folders sorted,
files sorted within each, then one shuffle of the whole list with
``np.random.RandomState(seed)``), so a given ``seed`` picks the same training and
validation files as Keras. Images are decoded a batch at a time while the dataset is
iterated (on background threads), so a folder is never loaded whole.
"""
from __future__ import annotations

import io
import os
import random
from typing import Any

import numpy as np

from fastnet import config
from fastnet.data import _tree
from fastnet.data.dataset import AUTOTUNE, Dataset

__all__ = ["image_dataset_from_directory", "text_dataset_from_directory", "timeseries_dataset_from_array",
           "split_dataset", "index_directory"]

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


# ----------------------------------------------------------------------------- indexing
def _files_under(folder, follow_links, formats):
    walked = sorted(os.walk(folder, followlinks=follow_links), key=lambda entry: entry[0])
    # Folders in sorted order, files sorted within each (as Keras lists them).
    return [os.path.join(root, name) for root, _, files in walked
            for name in sorted(files) if name.lower().endswith(formats)]


def index_directory(directory: str, labels: Any, formats: tuple[str, ...], class_names: list[str] | None = None,
                    shuffle: bool = True, seed: int | None = None, follow_links: bool = False,
                    verbose: bool = True) -> tuple[list[str], np.ndarray | None, list[str] | None]:
    """Lists the files of ``directory`` with their labels, in Keras's order.

    Args:
        directory: the folder.
        labels: "inferred" (one subfolder per class), None, or a list of integer labels
            for the files in sorted order.
        formats: file extensions to keep (lower case, with the dot).
        class_names: explicit class order (subfolder names), with ``labels="inferred"``.
        shuffle: shuffle the list with ``np.random.RandomState(seed)``; otherwise sorted.
        seed: the shuffle's seed (drawn at random when None).
        follow_links: descend into symbolic links to folders.
        verbose: print how many files and classes were found.

    Returns:
        ``(file_paths, labels, class_names)``.
    """
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist or is not a folder")
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names) <= set(subdirs):
                raise ValueError(f"The class_names passed do not match the subfolders of {directory!r}: expected "
                                 f"names among {subdirs}, received class_names={list(class_names)}")
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            if labels is None:
                raise ValueError("With labels=None (no labels), class_names cannot be given")
            raise ValueError("When labels are given as a list, class_names cannot be given (the class names "
                             "are the sorted list of the labels)")
    paths: list[str] = []
    file_labels: list[int] = []
    for k, sub in enumerate(subdirs):
        found = _files_under(os.path.join(directory, sub) if sub else directory, follow_links, formats)
        paths += found
        file_labels += [k] * len(found)
    names: list[str] | None
    if labels == "inferred":
        label_arr: np.ndarray | None = np.asarray(file_labels, dtype=np.int32)
        names = list(subdirs)
    elif labels is None:
        label_arr, names = None, None
    else:
        if len(labels) != len(paths):
            raise ValueError(f"The number of labels ({len(labels)}) does not match the number of files found in "
                             f"{directory!r} ({len(paths)})")
        label_arr = np.asarray(labels)
        names = [str(v) for v in sorted(set(np.asarray(labels).tolist()))]
    if verbose:
        if label_arr is None:
            print(f"Found {len(paths)} files.")
        else:
            print(f"Found {len(paths)} files belonging to {len(names)} classes.")
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(1e6))
        # Two generators with one seed: files and labels get the same permutation.
        np.random.RandomState(seed).shuffle(paths)
        if label_arr is not None:
            np.random.RandomState(seed).shuffle(label_arr)
    return paths, label_arr, names


def _check_split_args(validation_split, subset, shuffle, seed):
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be between 0 and 1, received {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If subset is set, validation_split must be set, and inversely")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'subset must be "training", "validation" or "both", received subset={subset!r}')
    if validation_split and shuffle and seed is None:
        raise ValueError("With validation_split and shuffling, give a seed so that the training and validation "
                         "subsets do not overlap")


def _split(paths, labels, validation_split, subset, verbose=True):
    if not validation_split:
        return paths, labels
    n_val = int(validation_split * len(paths))
    if subset == "training":
        if verbose:
            print(f"Using {len(paths) - n_val} files for training.")
        return paths[:len(paths) - n_val], None if labels is None else labels[:len(paths) - n_val]
    if verbose:
        print(f"Using {n_val} files for validation.")
    return paths[len(paths) - n_val:], None if labels is None else labels[len(paths) - n_val:]


def _encode_labels(labels, label_mode, num_classes):
    if label_mode == "int":
        return np.asarray(labels, dtype=np.int32)
    if label_mode == "binary":
        return np.asarray(labels, dtype=np.float32).reshape(-1, 1)
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)] = 1.0
    return out


def _load_batch(paths, load_one):
    """The items of ``paths`` in one batch array (an object array for strings)."""
    data = None
    for k, path in enumerate(paths):  # into one batch array: no per-item copies kept
        item = load_one(path)
        if data is None:
            data = (np.empty((len(paths),) + item.shape, dtype=item.dtype) if isinstance(item, np.ndarray)
                    else np.empty(len(paths), dtype=object))
        elif isinstance(item, np.ndarray) and item.dtype != data.dtype and data.dtype != np.float32:
            data = data.astype(np.float32)  # integer pixels and resized (float) images mixed
        data[k] = item
    return data


def _files_dataset(paths, labels, label_mode, num_classes, load_one, batch_size, shuffle, seed,
                   class_names, buffer_default=1024, finish=None, load_batch=None):
    """Dataset over files: shuffles indices, batches them, loads each batch on a thread pool.

    ``finish`` (optional) converts a loaded batch (or single item) once, e.g. to float32;
    ``load_batch(paths)`` (optional) loads a whole batch, in place of ``_load_batch``
    with ``load_one``.
    """
    n = len(paths)
    paths = np.asarray(paths, dtype=object)
    encoded = None if label_mode is None else _encode_labels(labels, label_mode, num_classes)
    ds = Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(batch_size * 8 if batch_size else buffer_default, seed=seed)

    def load(index):
        index = np.asarray(index)
        if index.ndim == 0:
            data = load_one(paths[int(index)])
            data = np.asarray(data, dtype=object) if isinstance(data, str) else data
            if finish is not None:
                data = finish(data)
            return data if encoded is None else (data, encoded[int(index)])
        data = _load_batch(paths[index], load_one) if load_batch is None else load_batch(paths[index])
        if finish is not None:
            data = finish(data)
        return data if encoded is None else (data, encoded[index])

    if batch_size is not None:
        ds = ds.batch(batch_size)
    ds = ds.map(load, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
    ds.class_names = class_names
    ds.file_paths = list(paths)
    return ds


# ----------------------------------------------------------------------------- images
def _linear(x):
    return np.maximum(0.0, 1.0 - x)


def _keys_cubic(x):
    out = ((1.5 * x - 2.5) * x) * x + 1.0
    out = np.where(x >= 1.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, out)
    return np.where(x >= 2.0, 0.0, out)


def _lanczos(radius):
    def kernel(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            y = radius * np.sin(np.pi * x) * np.sin(np.pi * x / radius) / (np.pi ** 2 * x ** 2)
        return np.where(x > radius, 0.0, np.where(x > 1e-3, y, 1.0))
    return kernel


def _box(x):
    return np.where(x < 0.5, 1.0, np.where(x == 0.5, 0.5, 0.0))


# name -> (kernel, antialias): Keras resizes without antialiasing, except "area" (a box average).
_KERNELS = {"bilinear": (_linear, False), "bicubic": (_keys_cubic, False), "lanczos3": (_lanczos(3.0), False),
            "lanczos5": (_lanczos(5.0), False), "area": (_box, True)}
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")


def _weights(in_size, out_size, interpolation):
    """(out_size, in_size) resampling matrix with half-pixel centers; weights renormalized at
    the borders (the scale-and-translate resize Keras's JAX backend runs)."""
    inv_scale = in_size / out_size
    sample = (np.arange(out_size) + 0.5) * inv_scale - 0.5
    if interpolation == "nearest":
        src = np.minimum(np.floor((np.arange(out_size) + 0.5) * inv_scale).astype(np.int64), in_size - 1)
        w = np.zeros((out_size, in_size))
        w[np.arange(out_size), src] = 1.0
        return w
    kernel, antialias = _KERNELS[interpolation]
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    w = kernel(np.abs(sample[:, None] - np.arange(in_size)[None, :]) / kernel_scale)
    total = w.sum(axis=1, keepdims=True)
    return np.where(np.abs(total) > 1000 * np.finfo(np.float32).eps, w / np.where(total != 0, total, 1), 0.0)


def _resize_image(img, image_size, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio):
    """Float32 (h, w, c) image resized as Keras's ``ops.image.resize`` does (crop or pad first)."""
    height, width = img.shape[:2]
    th, tw = image_size
    if crop_to_aspect_ratio:
        ch = max(min(height, int(float(width * th) / tw)), 1)
        cw = max(min(width, int(float(height * tw) / th)), 1)
        top, left = int(float(height - ch) / 2), int(float(width - cw) / 2)
        img = img[top:top + ch, left:left + cw]
    elif pad_to_aspect_ratio:
        ph = max(height, int(float(width * th) / tw))
        pw = max(width, int(float(height * tw) / th))
        top, left = int(float(ph - height) / 2), int(float(pw - width) / 2)
        # The same margin on both sides (Keras's layout: an odd remainder is not padded).
        padded = np.zeros((height + 2 * top, width + 2 * left, img.shape[2]), dtype=img.dtype)
        padded[top:top + height, left:left + width] = img
        img = padded
    h, w = img.shape[:2]
    if (h, w) == (th, tw):
        return np.ascontiguousarray(img, dtype=np.float32)
    out = img.astype(np.float64)
    if h != th:
        out = np.tensordot(_weights(h, th, interpolation), out, axes=(1, 0))
    if w != tw:
        out = np.einsum("pw,hwc->hpc", _weights(w, tw, interpolation), out)
    return out.astype(np.float32)


# Pillow's format for each extension the folders list: a file is opened as that format at
# once (no probing of the others first); one whose content is of another format is still
# opened, by probing (as Keras decodes by content, not by extension).
_PIL_FORMATS = {".bmp": ("BMP",), ".gif": ("GIF",), ".jpeg": ("JPEG",), ".jpg": ("JPEG",), ".png": ("PNG",)}


_READ_FIRST = 1 << 16
_O_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)   # (looked up once: a missing attribute costs a raise)


def _read_file(path):
    # os.read on a descriptor: a few microseconds less per file than open().read() (no
    # buffered file object), which counts for small images. The first read asks for 64 KiB:
    # os.read allocates what it is asked for, and a request of 1 MiB can be served by
    # mapping fresh pages for every file (measured: 22 instead of 4-5 microseconds per
    # 28x28 PNG, depending on the allocator's state). A read of a regular file returns
    # less than asked only at its end, so a smaller first read is the whole file (one
    # system call fewer per image); a larger file is read on to its end.
    fd = os.open(path, _O_READ)
    try:
        data = os.read(fd, _READ_FIRST)
        if len(data) < _READ_FIRST:
            return data
        chunks = [data]
        n = len(data)
        while True:
            chunk = os.read(fd, max(os.fstat(fd).st_size - n, 0) + _READ_FIRST)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            n += len(chunk)
    except OSError as exc:
        # os.read's error does not say which file (a folder named like an image, a read error).
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, path) from None
        raise
    finally:
        os.close(fd)


def _open_image(path, Image):
    """``Image.open`` on the bytes of ``path`` (``Image``: the ``PIL.Image`` module)."""
    data = io.BytesIO(_read_file(path))
    try:
        return Image.open(data, formats=_PIL_FORMATS.get(path[path.rfind("."):].lower()))
    except Image.UnidentifiedImageError:
        data.seek(0)
        try:
            return Image.open(data)
        except Image.UnidentifiedImageError:
            raise Image.UnidentifiedImageError(f"cannot identify image file {path!r}") from None


# The compiled PNG decoder (fastnet._kernels.png_decode) once imported; False where it was
# not built (no zlib at build time). Tests set it to False to decode with Pillow alone.
_PNG_DECODER: Any = None
# Threads decoding one batch's PNGs (never more than fastnet.config.get_num_threads()).
# The batch is decoded on the dataset's loading thread while the training step's threads
# run on every core, so decoding takes cores from the step whatever it does; measured on
# 2 cores (benchmarks/data_input.py), two threads took them for half as long as one and
# cost the step less: an MNIST MLP step 1.5-1.6 times that on arrays instead of 2.1-2.9,
# the convnet 1.07-1.08 (fastest epochs) instead of 1.17-1.21.
_PNG_THREADS = 2
_MISSING = object()


def _png_decoder():
    global _PNG_DECODER
    if _PNG_DECODER is None:
        try:
            from fastnet._kernels import png_decode
        except ImportError:
            _PNG_DECODER = False
        else:
            _PNG_DECODER = png_decode
    return _PNG_DECODER or None


def _image_loader(image_size, num_channels, interpolation, data_format, crop_to_aspect_ratio,
                  pad_to_aspect_ratio):
    """``(load_one, load_into)``: the two ways of reading one image with Pillow.

    ``load_one(path)`` gives an ``(h, w, c)`` array (``(c, h, w)`` channels-first). An
    image already of ``image_size`` (no crop or pad) keeps its integer pixels (uint8, or
    16/32-bit for such grey images); a resized one is float32. ``_finish_images`` makes
    the batch float32 once, instead of converting image by image.

    ``load_into(path, out)`` writes an 8-bit image already of ``image_size`` straight from
    Pillow's bytes into ``out`` (its slot of the batch) and returns None; any other image
    it returns as ``load_one`` does.
    """
    from PIL import Image

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[num_channels]
    keep = ("L", "I;16", "I") if num_channels == 1 else (mode,)
    size = (image_size[1], image_size[0])  # Pillow's (width, height)
    direct = not (crop_to_aspect_ratio or pad_to_aspect_ratio)
    shape = (image_size[0], image_size[1], num_channels)
    channels_last = data_format == "channels_last"

    def as_array(img):
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if not direct or arr.shape[:2] != image_size:
            arr = _resize_image(arr.astype(np.float32), image_size, interpolation, crop_to_aspect_ratio,
                                pad_to_aspect_ratio)
        if not channels_last:
            arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
        return arr

    def load_one(path):
        img = _open_image(path, Image)
        return as_array(img if img.mode in keep else img.convert(mode))

    def load_into(path, out):
        img = _open_image(path, Image)
        if img.mode != mode:
            if img.mode in keep:
                return as_array(img)
            img = img.convert(mode)
        if not direct or img.size != size:
            return as_array(img)
        # The 8-bit modes' bytes are the pixels, row by row, channels last: one copy, into the batch.
        pixels = np.frombuffer(img.tobytes(), np.uint8).reshape(shape)
        out[...] = pixels if channels_last else pixels.transpose(2, 0, 1)
        return None

    return load_one, load_into


def _image_batch_loader(image_size, num_channels, data_format, load_into):
    """``load_batch(paths)``: a batch of images already of ``image_size`` (no crop or pad)
    as one array, the PNGs decoded by the compiled decoder in one call.

    The decoder takes the 8-bit PNGs stored in the batch's color mode at ``image_size``
    and decodes them into the batch without the GIL; every other file (other formats or
    kinds of PNG, damaged or unreadable files) then goes through ``load_into`` (Pillow),
    in order, exactly as without the decoder: the same pixels, or the error Pillow (or
    the file system) raises for the first such file that fails.
    """
    from PIL import Image

    channels_last = data_format == "channels_last"
    shape = tuple(image_size) + (num_channels,) if channels_last else (num_channels,) + tuple(image_size)
    pixels = image_size[0] * image_size[1]
    _encoded = {}   # path -> its bytes for the decoder (None: not a PNG name)

    def load_batch(paths):
        n = len(paths)
        data = np.empty((n,) + shape, dtype=np.uint8)
        decoder = _png_decoder()
        # Pillow warns (or refuses) past MAX_IMAGE_PIXELS: such images stay with Pillow.
        if decoder is not None and (Image.MAX_IMAGE_PIXELS is None or pixels <= Image.MAX_IMAGE_PIXELS):
            encoded = [_encoded.get(p, _MISSING) for p in paths]
            if _MISSING in encoded:  # the first epoch: each path encoded once for all epochs
                for k, p in enumerate(paths):
                    if encoded[k] is _MISSING:
                        encoded[k] = _encoded[p] = (os.fsencode(p) if p[-4:].lower() == ".png" and "\0" not in p
                                                    else None)
            status = decoder.decode_png_files(encoded, data, channels_last,
                                              min(_PNG_THREADS, config.get_num_threads()))
            todo = np.flatnonzero(status).tolist()
        else:
            todo = range(n)
        for k in todo:
            item = load_into(paths[k], data[k])
            if item is None:
                continue
            if item.dtype != data.dtype and data.dtype != np.float32:
                data = data.astype(np.float32)  # integer pixels and resized (float) images mixed
            data[k] = item
        return data

    return load_batch


def _finish_images(data):
    return data if data.dtype == np.float32 else data.astype(np.float32)


def image_dataset_from_directory(directory: str, labels: Any = "inferred", label_mode: str | None = "int",
                                 class_names: list[str] | None = None, color_mode: str = "rgb",
                                 batch_size: int | None = 32, image_size: tuple[int, int] = (256, 256),
                                 shuffle: bool = True, seed: int | None = None,
                                 validation_split: float | None = None, subset: str | None = None,
                                 interpolation: str = "bilinear", follow_links: bool = False,
                                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
                                 data_format: str | None = None, verbose: bool = True
                                 ) -> Dataset | tuple[Dataset, Dataset]:
    """A :class:`~fastnet.data.Dataset` of image batches from a folder, as Keras builds it.

    With ``labels="inferred"`` the folder holds one subfolder per class::

        main_directory/
            class_a/  a_image_1.jpg  a_image_2.jpg ...
            class_b/  b_image_1.jpg ...

    Images (.bmp, .gif, .jpeg, .jpg, .png) are decoded with Pillow (8-bit PNGs already
    of ``image_size`` and ``color_mode`` by fastnet's own PNG decoder), a batch at a time
    while the dataset is iterated, resized to ``image_size`` and given as float32 arrays
    of shape ``(batch_size, height, width, channels)`` with values in [0, 255].

    Args:
        directory: the folder.
        labels: "inferred" (from the subfolders), None (images only), or a list of integer
            labels in the sorted order of the image paths.
        label_mode: "int" (int32 labels), "categorical" (one-hot float32), "binary"
            (float32 0/1 of shape ``(n, 1)``, exactly 2 classes) or None (no labels).
        class_names: order of the class subfolders (default: sorted names).
        color_mode: "grayscale", "rgb" or "rgba" (1, 3 or 4 channels).
        batch_size: images per batch; None gives single images.
        image_size: ``(height, width)`` of the output images.
        shuffle: shuffle the files (Keras's order for a seed), and the order again on each
            pass through a buffer of ``8 * batch_size`` files; False keeps sorted order.
        seed: seed of the shuffles.
        validation_split: fraction of the files kept for validation (the last ones).
        subset: "training", "validation" or "both" (returns ``(train_ds, val_ds)``).
        interpolation: "bilinear", "nearest", "bicubic", "area", "lanczos3" or "lanczos5"
            (computed as Keras's ``ops.image.resize``: no antialiasing except "area").
        follow_links: descend into symbolic links.
        crop_to_aspect_ratio: resize the largest centered crop with the target aspect ratio.
        pad_to_aspect_ratio: pad (with zeros) to the target aspect ratio, then resize.
        data_format: "channels_last" or "channels_first" (default: ``image_data_format()``).
        verbose: print the counts of files and classes found.

    Returns:
        A Dataset (two with ``subset="both"``) with ``class_names`` and ``file_paths``.
    """
    try:
        import PIL  # noqa: F401
    except ImportError as e:
        raise ImportError("image_dataset_from_directory needs Pillow: pip install pillow "
                          "(or the fastnet[image] extra)") from e
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError('labels must be "inferred", None, or a list/tuple of integer labels of the same length '
                         f"as the number of images; received labels={labels!r}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError(f'label_mode must be "int", "categorical", "binary" or None, received '
                         f"label_mode={label_mode!r}")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    channels = {"grayscale": 1, "rgb": 3, "rgba": 4}.get(color_mode)
    if channels is None:
        raise ValueError(f'color_mode must be "grayscale", "rgb" or "rgba", received color_mode={color_mode!r}')
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {list(_INTERPOLATIONS)}, received "
                         f"interpolation={interpolation!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of pad_to_aspect_ratio and crop_to_aspect_ratio can be True")
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in image_size)):
        raise ValueError(f"image_size must be a (height, width) pair of positive integers, received {image_size!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size <= 0):
        raise ValueError(f"batch_size must be a positive integer or None, received {batch_size!r}")
    data_format = config.image_data_format() if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', received {data_format!r}")
    _check_split_args(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = int(np.random.randint(1e6))
    paths, file_labels, names = index_directory(directory, labels, IMAGE_FORMATS, class_names=class_names,
                                                shuffle=shuffle, seed=seed, follow_links=follow_links,
                                                verbose=verbose)
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(f'With label_mode="binary" there must be exactly 2 classes; found {len(names)}: {names}')
    size = tuple(int(s) for s in image_size)
    load_one, load_into = _image_loader(size, channels, interpolation, data_format, crop_to_aspect_ratio,
                                        pad_to_aspect_ratio)
    # With a crop or pad every image is resized: Pillow's images, one by one, as load_one gives them.
    load_batch = (None if crop_to_aspect_ratio or pad_to_aspect_ratio
                  else _image_batch_loader(size, channels, data_format, load_into))
    num_classes = len(names) if names else 0

    def build(subset_name, do_shuffle):
        p, lab = _split(paths, file_labels, validation_split, subset_name, verbose)
        if not p:
            raise ValueError(f"No images found in directory {directory}"
                             + (f" for the {subset_name} subset" if subset_name else "")
                             + f". Allowed formats: {IMAGE_FORMATS}")
        return _files_dataset(p, lab, label_mode, num_classes, load_one, batch_size, do_shuffle, seed, names,
                              finish=_finish_images, load_batch=load_batch)

    if subset == "both":
        return build("training", shuffle), build("validation", False)
    return build(subset, shuffle)


# ----------------------------------------------------------------------------- text
def text_dataset_from_directory(directory: str, labels: Any = "inferred", label_mode: str | None = "int",
                                class_names: list[str] | None = None, batch_size: int | None = 32,
                                max_length: int | None = None, shuffle: bool = True, seed: int | None = None,
                                validation_split: float | None = None, subset: str | None = None,
                                follow_links: bool = False, verbose: bool = True) -> Dataset | tuple[Dataset, Dataset]:
    """A :class:`~fastnet.data.Dataset` of text batches from a folder of ``.txt`` files.

    Arguments as :func:`image_dataset_from_directory`. Each element's text is a Python
    string (UTF-8 decoded) in an object array of shape ``(batch_size,)``.

    Args:
        max_length: keep at most this many characters of each text.
    """
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError('labels must be "inferred", None, or a list/tuple of integer labels of the same length '
                         f"as the number of text files; received labels={labels!r}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError(f'label_mode must be "int", "categorical", "binary" or None, received '
                         f"label_mode={label_mode!r}")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size <= 0):
        raise ValueError(f"batch_size must be a positive integer or None, received {batch_size!r}")
    _check_split_args(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = int(np.random.randint(1e6))
    paths, file_labels, names = index_directory(directory, labels, (".txt",), class_names=class_names,
                                                shuffle=shuffle, seed=seed, follow_links=follow_links,
                                                verbose=verbose)
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(f'With label_mode="binary" there must be exactly 2 classes; found {len(names)}: {names}')

    def load_one(path):
        with open(path, "rb") as f:
            raw = f.read()
        if max_length is not None:
            raw = raw[:max_length]  # Keras cuts the bytes, before decoding
        return raw.decode("utf-8", errors="replace")

    num_classes = len(names) if names else 0

    def build(subset_name, do_shuffle):
        p, lab = _split(paths, file_labels, validation_split, subset_name, verbose)
        if not p:
            raise ValueError(f"No text files found in directory {directory}"
                             + (f" for the {subset_name} subset" if subset_name else "")
                             + ". Allowed format: .txt")
        return _files_dataset(p, lab, label_mode, num_classes, load_one, batch_size, do_shuffle, seed, names)

    if subset == "both":
        return build("training", shuffle), build("validation", False)
    return build(subset, shuffle)


# ----------------------------------------------------------------------------- time series
def timeseries_dataset_from_array(data: Any, targets: Any, sequence_length: int, sequence_stride: int = 1,
                                  sampling_rate: int = 1, batch_size: int | None = 128, shuffle: bool = False,
                                  seed: int | None = None, start_index: int | None = None,
                                  end_index: int | None = None) -> Dataset:
    """Sliding windows over a time series, as ``keras.utils.timeseries_dataset_from_array``.

    Window ``i`` holds ``data[s + i * sequence_stride + k * sampling_rate]`` for
    ``k < sequence_length``, with ``s = start_index``; its target is
    ``targets[s + i * sequence_stride]``.

    Args:
        data: array of time steps (first axis: time).
        targets: targets aligned with ``data``, or None (windows only).
        sequence_length: steps per window.
        sequence_stride: offset between the starts of consecutive windows.
        sampling_rate: step between the samples of a window.
        batch_size: windows per batch; None gives single windows.
        shuffle: shuffle the windows (the start positions are shuffled with
            ``np.random.RandomState(seed)`` as Keras does, then each pass reshuffles them
            through a buffer of ``8 * batch_size``).
        seed: the shuffles' seed.
        start_index, end_index: use ``data[start_index:end_index]`` only.

    Returns:
        A :class:`~fastnet.data.Dataset` of windows, or of ``(windows, targets)``.

    Example:
        >>> ds = timeseries_dataset_from_array(np.arange(10), None, sequence_length=3, batch_size=4)
        >>> [b.tolist() for b in ds][1]
        [[4, 5, 6], [5, 6, 7], [6, 7, 8], [7, 8, 9]]
    """
    data = _tree.to_numpy(data)
    for name, value in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride),
                        ("sampling_rate", sampling_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, received {name}={value!r}")
    if sampling_rate >= len(data):
        raise ValueError(f"sampling_rate must be lower than the length of the data; received "
                         f"sampling_rate={sampling_rate} for data of length {len(data)}")
    if sequence_stride >= len(data):
        raise ValueError(f"sequence_stride must be lower than the length of the data; received "
                         f"sequence_stride={sequence_stride} for data of length {len(data)}")
    if start_index is not None and (start_index < 0 or start_index >= len(data)):
        raise ValueError(f"start_index must be >= 0 and lower than the length of the data ({len(data)}); "
                         f"received start_index={start_index}")
    start = 0 if start_index is None else int(start_index)
    if end_index is not None:
        if start_index is not None and end_index <= start_index:
            raise ValueError(f"end_index must be higher than start_index; received start_index={start_index} "
                             f"and end_index={end_index}")
        if end_index >= len(data):
            raise ValueError(f"end_index must be lower than the length of the data ({len(data)}); received "
                             f"end_index={end_index}")
        if end_index <= 0:
            raise ValueError(f"end_index must be higher than 0; received end_index={end_index}")
    end = len(data) if end_index is None else int(end_index)
    if targets is not None:
        targets = _tree.to_numpy(targets)  # may be shorter than data: fewer windows (as in Keras)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size <= 0):
        raise ValueError(f"batch_size must be a positive integer or None, received {batch_size!r}")
    num_seqs = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets))
    starts = np.arange(0, max(num_seqs, 0), sequence_stride, dtype=np.int64)
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(1e6))
        np.random.RandomState(seed).shuffle(starts)
    window = np.arange(sequence_length, dtype=np.int64) * sampling_rate
    series = data[start:end]
    target_series = None if targets is None else targets[start:end]

    def gather(pos):
        pos = np.asarray(pos)
        windows = series[pos[..., None] + window]
        return windows if target_series is None else (windows, target_series[pos])

    ds = Dataset.from_tensor_slices(starts)
    if shuffle:
        ds = ds.shuffle(batch_size * 8 if batch_size else 1024, seed=seed)
    if batch_size is not None:
        ds = ds.batch(batch_size)
    return ds.map(gather)


# ----------------------------------------------------------------------------- splitting
def _rescale_split_sizes(left_size, right_size, total):
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is not None and type(size) not in (int, float):
            raise TypeError(f"{name} must be an int, a float or None, received {type(size).__name__}")
    if left_size == 0 and right_size == 0:
        raise ValueError("left_size and right_size are both zero; at least one split must be non-empty")
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if (type(size) is int and (size <= 0 or size >= total)) or (type(size) is float and not 0 < size < 1):
            raise ValueError(f"{name} must be a positive integer smaller than {total} or a float in (0, 1); "
                             f"received {name}={size}")
    if type(left_size) is float and type(right_size) is float and left_size + right_size > 1:
        raise ValueError("left_size + right_size is greater than 1; it must be at most 1")
    left = round(left_size * total) if type(left_size) is float else left_size
    right = round(right_size * total) if type(right_size) is float else right_size
    if left is None:
        left = total - right
    elif right is None:
        right = total - left
    if left + right > total:
        raise ValueError(f"left_size + right_size = {left + right} is larger than the dataset ({total} samples)")
    for size, side in ((left, "left"), (right, "right")):
        if size == 0:
            raise ValueError(f"With a dataset of {total} samples, left_size={left} and right_size={right} leave "
                             f"the {side} split empty")
    return int(left), int(right)


def split_dataset(dataset: Any, left_size: int | float | None = None, right_size: int | float | None = None,
                  shuffle: bool = False, seed: int | None = None, data_format: str | None = None
                  ) -> tuple[Dataset, Dataset]:
    """Splits a dataset of samples into two, as ``keras.utils.split_dataset``.

    Args:
        dataset: an array, a tuple/list/dict of arrays of one length, or an (unbatched or
            batched) :class:`~fastnet.data.Dataset`.
        left_size: samples in the left part (an int) or their fraction (a float); the
            complement of ``right_size`` when None.
        right_size: the same for the right part (the last samples).
        shuffle: shuffle the samples before splitting (with Python's ``random.Random(seed)``,
            which gives Keras's split for the same seed).
        seed: the shuffle's seed.

    Returns:
        ``(left, right)`` :class:`~fastnet.data.Dataset` of samples (batched like
        ``dataset`` when it was batched).
    """
    if left_size is None and right_size is None:
        raise ValueError("At least one of left_size and right_size must be given")
    batch_size = None
    if isinstance(dataset, Dataset):
        elements = list(dataset)
        if not elements:
            raise ValueError("split_dataset received an empty dataset")
        if dataset._batched:
            batch_size = len(_tree.flatten(elements[0])[0])
            elements = [_tree.map_structure(lambda a, i=i: a[i], e) for e in elements
                        for i in range(len(_tree.flatten(e)[0]))]
        structure = elements[0]
        columns = [np.stack([np.asarray(leaf) for leaf in col])
                   for col in zip(*(_tree.flatten(e) for e in elements))]
        arrays = _tree.pack_as(structure, columns)
    elif isinstance(dataset, (np.ndarray, tuple, list, dict)) or hasattr(dataset, "__array__"):
        arrays = _tree.map_structure(_tree.to_numpy, dataset if not isinstance(dataset, list)
                                     else tuple(dataset))
    else:
        raise TypeError(f"split_dataset takes an array, a tuple/list/dict of arrays or a fastnet.data.Dataset; "
                        f"received {type(dataset).__name__}")
    leaves = _tree.flatten(arrays)
    total = len(leaves[0])
    if any(len(leaf) != total for leaf in leaves):
        raise ValueError(f"split_dataset: the arrays have different lengths {[len(a) for a in leaves]}")
    order = list(range(total))
    if shuffle:
        if seed is None:
            seed = random.randint(0, int(1e6))
        random.Random(seed).shuffle(order)
    left, right = _rescale_split_sizes(left_size, right_size, total)
    order_arr = np.asarray(order, dtype=np.int64)
    parts = []
    for idx in (order_arr[:left], order_arr[total - right:]):
        part = Dataset.from_tensor_slices(_tree.map_structure(lambda a, idx=idx: a[idx], arrays))
        parts.append(part.batch(batch_size) if batch_size else part)
    return parts[0], parts[1]

