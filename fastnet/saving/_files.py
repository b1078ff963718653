"""File plumbing for saving: h5py on demand, atomic writes, and zip archives checked
before anything in them is read."""
import contextlib
import io
import os
import re
import stat
import struct
import tempfile
import threading
import time
import zipfile
import zlib

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["require_h5py", "atomic_output", "open_checked_zip", "read_member", "open_member",
           "clean_stale_temp_files", "resolve_target", "FileFormatError", "WeightsMismatchError"]


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


# Temporary files of a save in progress: ``.fastnet-save-<random>.tmp`` next to the
# target. The random part is what mkstemp makes (8 letters, digits or underscores).
TEMP_PREFIX = ".fastnet-save-"
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\A\.fastnet-save-[A-Za-z0-9_]{8}\.tmp\Z")
# A leftover this old, and not locked by a running save, is from a save that died.
STALE_AFTER_S = 15 * 60


def _lock(fd):
    """Takes the advisory lock a running save holds on its temporary file; False if
    another process holds it (or the platform has no such locks)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def clean_stale_temp_files(folder, now=None):
    """Removes temporary files left in ``folder`` by saves that were killed.

    Only entries named exactly like fastnet's temporary files are considered, and one
    is removed only when it is a regular file (not a link), owned by this user, last
    written more than STALE_AFTER_S seconds ago, and not locked by a save still
    running. Returns the names removed. Platforms without advisory locks keep them all.
    """
    removed = []
    if fcntl is None:
        return removed
    now = time.time() if now is None else now
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not _TEMP_NAME.match(name):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if (not stat.S_ISREG(st.st_mode) or now - st.st_mtime < STALE_AFTER_S
                or (hasattr(os, "getuid") and st.st_uid != os.getuid())):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            if not _lock(fd):
                continue
            held = os.fstat(fd)
            again = os.lstat(path)
            # Still the very file examined above (not replaced meanwhile), and still stale.
            if ((held.st_dev, held.st_ino) == (st.st_dev, st.st_ino) == (again.st_dev, again.st_ino)
                    and now - again.st_mtime >= STALE_AFTER_S):
                os.unlink(path)
                removed.append(name)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def resolve_target(filepath):
    """The file a save to ``filepath`` writes: a symlink's target (the link stays)."""
    filepath = os.fspath(filepath)
    if os.path.islink(filepath):
        return os.path.realpath(filepath)
    return filepath


@contextlib.contextmanager
def atomic_output(filepath, lock=True):
    """Yields a temporary path in the target's folder; on success the file is flushed to
    disk and renamed over ``filepath`` in one step. On any exception, KeyboardInterrupt
    included, the temporary file is removed and ``filepath`` is left as it was.

    The temporary file is ``.fastnet-save-<random>.tmp``, locked while the save runs;
    such files left by killed saves are removed by the next save to the same folder
    once they are stale (see clean_stale_temp_files). When ``filepath`` is a symbolic
    link the file it points to is replaced and the link is kept. With ``lock=False``
    (for writers that lock the file themselves) the temporary file is not locked and
    only its age protects it.
    """
    filepath = resolve_target(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    if os.path.isdir(filepath):
        raise IsADirectoryError(f"Cannot save to {filepath!r}: it is an existing directory")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Cannot save to {filepath!r}: the folder {folder!r} does not exist")
    clean_stale_temp_files(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    if not (lock and _lock(fd)):
        os.close(fd)  # nothing to hold (and Windows cannot rename a file that is open)
        fd = -1
    # Otherwise fd stays open with its lock until the save ends: it tells a cleaner
    # in another process that this file is live.
    try:
        yield tmp
        if os.path.exists(filepath):
            mode = stat.S_IMODE(os.stat(filepath).st_mode)
        else:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        fsync_fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fsync_fd)
        finally:
            os.close(fsync_fd)
        os.replace(tmp, filepath)
        _fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        if fd >= 0:
            os.close(fd)


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
    refused, as are archives declaring more than MAX_ENTRIES entries or a directory over
    MAX_DIRECTORY_BYTES; a file that is not a complete zip archive raises
    FileFormatError naming it.
    """
    _check_directory(source, what)
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


# Bounds on what a .keras archive may make the reader hold: its directory (entries
# and bytes), checked from the end-of-archive record before the directory is parsed.
MAX_ENTRIES = 10_000
MAX_DIRECTORY_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 20


def _check_directory(source, what):
    """Refuses an archive whose directory declares more entries or bytes than a model
    file holds, before zipfile parses (and keeps in memory) every entry. Archives
    whose end record cannot be found are left for zipfile to report."""
    close = False
    if isinstance(source, (str, os.PathLike)):
        try:
            f = open(source, "rb")
        except OSError:
            return
        close = True
    else:
        f = source
    try:
        start = f.tell()
        size = f.seek(0, os.SEEK_END)
        tail_len = min(size, 22 + 65535)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        pos = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
        if pos < 0 or len(tail) - pos < 22:
            return
        _, _, _, _, n_entries, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[pos:pos + 22])
        record = size - tail_len + pos
        if (n_entries == 0xFFFF or cd_size == 0xFFFFFFFF) and record >= 20:
            f.seek(record - 20)
            loc = f.read(20)
            if len(loc) == 20 and loc[:4] == b"PK\x06\x07":
                offset = struct.unpack("<4sLQL", loc)[2]
                if offset < size:
                    f.seek(offset)
                    rec = f.read(56)
                    if len(rec) == 56 and rec[:4] == b"PK\x06\x06":
                        n_entries, cd_size = struct.unpack("<4sQ2H2L4Q", rec)[6:8]
        if n_entries > MAX_ENTRIES:
            raise FileFormatError(f"{what}: the archive declares {n_entries} entries, more than "
                                  f"the {MAX_ENTRIES} a .keras file may hold")
        if cd_size > MAX_DIRECTORY_BYTES:
            raise FileFormatError(f"{what}: the archive's directory is {cd_size} bytes, more than "
                                  f"the {MAX_DIRECTORY_BYTES} a .keras file may hold")
        f.seek(start)
    except FileFormatError:
        raise
    except (OSError, ValueError, struct.error):  # left for zipfile to report
        return
    finally:
        if close:
            f.close()


def _member_info(zf, name, what, limit):
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise FileFormatError(f"{what} is not a valid .keras file: it has no {name} "
                              f"(entries: {zf.namelist()})") from None
    if limit is not None and info.file_size > limit:
        raise FileFormatError(f"{what}: {name} is {info.file_size} bytes, more than the "
                              f"{limit} bytes such an entry may hold")
    return info


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
               NotImplementedError)


def _damaged(what, name, e):
    return FileFormatError(f"{what}: cannot read {name} from the archive, the file is "
                           f"corrupt or truncated ({e})")


def _stream(zf, info, what, limit, sink):
    """Feeds an entry's bytes to ``sink`` chunk by chunk, counting what really comes out
    (the declared size may lie) against ``limit``; zipfile checks the CRC at the end."""
    total = 0
    try:
        with zf.open(info) as src:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if limit is not None and total > limit:
                    raise FileFormatError(f"{what}: {info.filename} holds more than the {limit} "
                                          f"bytes such an entry may hold")
                sink(chunk)
    except FileFormatError:
        raise
    except _ZIP_ERRORS as e:
        raise _damaged(what, info.filename, e) from e
    return total


def read_member(zf, name, what, limit=None):
    """The bytes of one archive entry, with a clear error when it is damaged or bigger
    than ``limit`` (checked on the declared size first, then on the bytes read)."""
    info = _member_info(zf, name, what, limit)
    parts = []
    _stream(zf, info, what, limit, parts.append)
    return b"".join(parts)


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes at ``offset`` of a file object."""

    def __init__(self, f, offset, length):
        super().__init__()
        self._f, self._offset, self._length, self._pos = f, offset, length, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, pos, whence=os.SEEK_SET):
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buf):
        n = max(0, min(len(buf), self._length - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._offset + self._pos)
        got = self._f.readinto(memoryview(buf)[:n])
        self._pos += got
        return got


@contextlib.contextmanager
def open_member(zf, source, name, what, limit):
    """A seekable, read-only file object over one archive entry, for h5py, without
    holding the entry in memory.

    The entry is first streamed once through zipfile, which checks its CRC while the
    bytes are counted against ``limit``. An uncompressed entry (as Keras and fastnet
    write them) is then read in place from ``source`` (the archive's path or file
    object); a compressed one is inflated into a temporary file.
    """
    info = _member_info(zf, name, what, limit)
    if info.compress_type != zipfile.ZIP_STORED:
        spool = tempfile.TemporaryFile()
        try:
            _stream(zf, info, what, limit, spool.write)
            spool.seek(0)
            yield spool
        finally:
            spool.close()
        return
    _stream(zf, info, what, limit, lambda chunk: None)
    own = isinstance(source, (str, os.PathLike))
    f = open(source, "rb") if own else source
    try:
        try:
            f.seek(info.header_offset)
            header = f.read(30)
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise FileFormatError(f"{what}: the archive's entry for {name} is damaged")
            n_name, n_extra = struct.unpack("<2H", header[26:30])
        except (OSError, ValueError, struct.error) as e:
            raise _damaged(what, name, e) from e
        yield io.BufferedReader(_Window(f, info.header_offset + 30 + n_name + n_extra,
                                        info.file_size))
    finally:
        if own:
            f.close()

