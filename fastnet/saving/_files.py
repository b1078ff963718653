"""File plumbing for saving: h5py on demand, atomic writes, and zip archives checked
before anything in them is read."""
import contextlib
import os
import stat
import tempfile
import threading
import zipfile
import zlib

__all__ = ["require_h5py", "atomic_output", "open_checked_zip", "FileFormatError",
           "WeightsMismatchError"]


class FileFormatError(ValueError):
    """A file that is not what it claims to be: corrupt, truncated, or laid out wrongly.
    The message names the file and what is wrong."""


class WeightsMismatchError(ValueError):
    """Weights in a file that do not fit the model (count or shapes); the message names
    the file, the layer and both shapes."""


def require_h5py():
    """The h5py module, imported only when a file is read or written."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "Saving and loading weights needs h5py, which fastnet treats as an optional extra: "
            "pip install fastnet[h5]  (or: pip install h5py)") from e
    return h5py


_UMASK = None
_UMASK_LOCK = threading.Lock()


def _umask():
    global _UMASK
    with _UMASK_LOCK:
        if _UMASK is None:
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
    return _UMASK


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(filepath):
    """Yields a temporary path in the target's folder; on success the file is flushed to
    disk and renamed over ``filepath`` in one step. On any exception, KeyboardInterrupt
    included, the temporary file is removed and ``filepath`` is left as it was."""
    filepath = os.fspath(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    if os.path.isdir(filepath):
        raise IsADirectoryError(f"Cannot save to {filepath!r}: it is an existing directory")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Cannot save to {filepath!r}: the folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(filepath) + ".",
                               suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        if os.path.exists(filepath):
            mode = stat.S_IMODE(os.stat(filepath).st_mode)
        else:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, filepath)
        _fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _bad_member(name):
    if not name or "\x00" in name:
        return "an empty or NUL-containing name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "an absolute path"
    if ".." in norm.split("/"):
        return "a '..' component"
    return None


def open_checked_zip(source, what):
    """Opens a zip archive for reading after checking every entry's name.

    Entries with absolute paths or ``..`` components, and duplicated entries, are
    refused; a file that is not a complete zip archive raises FileFormatError naming it.
    """
    try:
        zf = zipfile.ZipFile(source, "r")
    except zipfile.BadZipFile as e:
        raise FileFormatError(f"{what} is not a valid .keras file: the zip archive is corrupt "
                              f"or truncated ({e})") from e
    except EOFError as e:
        raise FileFormatError(f"{what} is not a valid .keras file: it ends too early ({e})") from e
    try:
        seen = set()
        for info in zf.infolist():
            why = _bad_member(info.filename)
            if why is not None:
                raise FileFormatError(f"{what}: refusing the archive entry {info.filename!r} "
                                      f"({why}); a .keras file holds relative names only")
            if info.filename in seen:
                raise FileFormatError(f"{what}: the archive holds {info.filename!r} twice")
            seen.add(info.filename)
    except BaseException:
        zf.close()
        raise
    return zf


def read_member(zf, name, what, limit=None):
    """The bytes of one archive entry, with a clear error when it is damaged."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise FileFormatError(f"{what} is not a valid .keras file: it has no {name} "
                              f"(entries: {zf.namelist()})") from None
    if limit is not None and info.file_size > limit:
        raise FileFormatError(f"{what}: {name} is {info.file_size} bytes, more than the "
                              f"{limit} bytes such an entry may hold")
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
            NotImplementedError) as e:
        raise FileFormatError(f"{what}: cannot read {name} from the archive, the file is "
                              f"corrupt or truncated ({e})") from e
