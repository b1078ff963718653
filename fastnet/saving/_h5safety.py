"""Checks on an HDF5 weights file made before any of its data is read, and the
per-weight checksums fastnet writes.

HDF5 can make a dataset's bytes come from somewhere other than the file: external
storage (raw data in another file), virtual datasets (data mapped from other
files) and external links (an object that lives in another file). Followed, any
of them would copy local files into a model's weights. ``check_h5_file`` walks the
whole file once, without reading data, and refuses each of them; it also refuses
datasets whose data passes through a decompressing filter (a small chunk could
inflate without bound) and files with an unreasonable number of objects.

Each weight fastnet saves carries a CRC-32 in the ``fastnet_crc32`` attribute of its
dataset, over its path in the file, its type, its shape and its bytes. Keras ignores
the attribute; fastnet verifies it when present, so a file damaged on disk is
refused instead of loading different numbers. Files without it (Keras's) load as
before.
"""
from __future__ import annotations

import zlib

import numpy as np

from fastnet.saving._files import FileFormatError, require_h5py

__all__ = ["check_h5_file", "weight_checksum", "write_checksum", "verify_checksum",
           "CHECKSUM_ATTR", "MAX_OBJECTS"]

CHECKSUM_ATTR = "fastnet_crc32"
# Far more links than any model's weights file holds (a few per variable); bounds
# the time and memory a crafted file can cost before it is refused.
MAX_OBJECTS = 200_000
# Filters that leave the stored size as it is: byte shuffling and HDF5's own checksum.
_SIZE_KEEPING_FILTERS = {2, 3}  # H5Z_FILTER_SHUFFLE, H5Z_FILTER_FLETCHER32
_FILTER_NAMES = {1: "gzip (deflate)", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}


def _check_dataset(dsid, where, what):
    h5py = require_h5py()
    try:
        dcpl = dsid.get_create_plist()
        layout = dcpl.get_layout()
        n_external = dcpl.get_external_count()
        filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise FileFormatError(f"{what}: cannot read the storage of dataset '{where}', the file "
                              f"is corrupt ({e})") from e
    if layout == h5py.h5d.VIRTUAL:
        raise FileFormatError(f"{what}: dataset '{where}' is a virtual dataset, whose data comes "
                              f"from other files; fastnet reads weights stored in the file itself")
    if n_external:
        raise FileFormatError(f"{what}: dataset '{where}' keeps its data in external files "
                              f"(HDF5 external storage); fastnet reads weights stored in the file "
                              f"itself")
    bad = [f for f in filters if f not in _SIZE_KEEPING_FILTERS]
    if bad:
        names = [_FILTER_NAMES.get(f, f"filter {f}") for f in bad]
        raise FileFormatError(f"{what}: dataset '{where}' is compressed ({', '.join(names)}); "
                              f"fastnet reads uncompressed weights, as Keras and fastnet write "
                              f"them (rewrite the file uncompressed, e.g. h5repack -f NONE)")


def check_h5_file(h5, what):
    """Walks every link of an open HDF5 file and refuses, with FileFormatError naming
    the object, external links, soft links that do not resolve inside the file,
    datasets stored outside the file (external storage, virtual datasets), datasets
    behind a decompressing filter, and files of more than MAX_OBJECTS links.

    No dataset's data is read; only links and storage properties. The walk uses
    h5py's low-level API: the high-level objects cost several times more per link.
    """
    h5py = require_h5py()
    h5l, h5o = h5py.h5l, h5py.h5o
    stack = [("", h5.id)]
    seen = set()
    count = 0
    try:
        while stack:
            prefix, gid = stack.pop()
            for raw in gid:
                count += 1
                if count > MAX_OBJECTS:
                    raise FileFormatError(f"{what}: the HDF5 file holds more than {MAX_OBJECTS} "
                                          f"objects, far more than a weights file needs")
                where = prefix + raw.decode("utf-8", "replace")
                info = gid.links.get_info(raw)
                if info.type == h5l.TYPE_EXTERNAL:
                    filename, target = gid.links.get_val(raw)
                    raise FileFormatError(f"{what}: '{where}' is an external link to "
                                          f"'{filename.decode('utf-8', 'replace')}:"
                                          f"{target.decode('utf-8', 'replace')}'; fastnet reads "
                                          f"weights stored in the file itself")
                if info.type == h5l.TYPE_SOFT:
                    target = gid.links.get_val(raw).decode("utf-8", "replace")
                    _check_soft_link(h5, where, target, what)
                    continue  # its target is walked where it is hard-linked
                if info.type != h5l.TYPE_HARD:
                    raise FileFormatError(f"{what}: '{where}' is a link of an unknown kind "
                                          f"({info.type}); fastnet reads plain HDF5 files")
                if info.u in seen:  # hard links can make cycles
                    continue
                seen.add(info.u)
                obj = h5o.open(gid, raw)
                if isinstance(obj, h5py.h5g.GroupID):
                    stack.append((where + "/", obj))
                elif isinstance(obj, h5py.h5d.DatasetID):
                    _check_dataset(obj, where, what)
    except FileFormatError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
        raise FileFormatError(f"{what}: cannot walk the HDF5 file, it is corrupt or truncated "
                              f"({e})") from e


def _check_soft_link(h5, where, target, what):
    """A soft link must name an object of this file reached through hard links only."""
    h5py = require_h5py()
    path = target if target.startswith("/") else None
    if path is None:
        # A relative target resolves from the link's own group.
        parent = where.rsplit("/", 1)[0] if "/" in where else ""
        path = "/" + (parent + "/" if parent else "") + target
    node = h5
    hops = 0
    parts = [p for p in path.split("/") if p and p != "."]
    while parts:
        part = parts.pop(0)
        hops += 1
        if hops > 64 or not isinstance(node, h5py.Group) or part not in node:
            raise FileFormatError(f"{what}: '{where}' is a soft link to '{target}', which does not "
                                  f"resolve to an object inside the file")
        link = node.get(part, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise FileFormatError(f"{what}: '{where}' is a soft link to '{target}', which leaves "
                                  f"the file through an external link")
        if isinstance(link, h5py.SoftLink):
            # Splice the nested target in and keep resolving (bounded by ``hops``).
            nested = [p for p in link.path.split("/") if p and p != "."]
            if link.path.startswith("/"):
                node = h5
            parts = nested + parts
            continue
        node = node.get(part)


# ----------------------------------------------------------------------------- checksums
def weight_checksum(where, value):
    """CRC-32 over a weight's path in the file, its type, shape and little-endian bytes."""
    value = np.asarray(value)
    dtype = value.dtype.newbyteorder("<") if value.dtype.byteorder not in ("|",) else value.dtype
    data = np.ascontiguousarray(value, dtype=dtype)
    header = f"{where}|{dtype.str}|{tuple(value.shape)}|".encode()
    crc = zlib.crc32(header)
    return zlib.crc32(data.reshape(-1).view(np.uint8), crc) & 0xFFFFFFFF


def write_checksum(ds, where, value):
    ds.attrs[CHECKSUM_ATTR] = np.uint32(weight_checksum(where, value))


def verify_checksum(ds, where, value, what):
    """Compares a loaded weight with the checksum stored beside it, if any."""
    try:
        attrs = ds.attrs
        if CHECKSUM_ATTR not in attrs:
            return
        attr_id = attrs.get_id(CHECKSUM_ATTR)
        if attr_id.shape != () or attr_id.dtype.kind not in "iu":
            raise FileFormatError(f"{what}: the checksum of weight '{where}' is not a number: the "
                                  f"file is damaged")
        stored = int(attrs[CHECKSUM_ATTR])
    except FileFormatError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
        raise FileFormatError(f"{what}: cannot read the checksum of weight '{where}', the file is "
                              f"corrupt ({e})") from e
    actual = weight_checksum(where, value)
    if stored != actual:
        raise FileFormatError(f"{what}: weight '{where}' does not match its checksum (stored "
                              f"{stored:#010x}, computed {actual:#010x}): the file is damaged")
