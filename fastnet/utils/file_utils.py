"""``get_file``: a file from a URL, cached where Keras caches it (``~/.keras/datasets``, or
``$KERAS_HOME/datasets``), so files Keras already downloaded are found without a download."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile

__all__ = ["get_file", "keras_home", "validate_file", "hash_file", "extract_archive", "DownloadError"]

_CHUNK = 1 << 16


class DownloadError(OSError):
    """Raised when a file cannot be downloaded (no network, unknown URL, HTTP error)."""


def keras_home() -> str:
    """The cache root: ``$KERAS_HOME`` when set, else ``~/.keras``."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _resolve_algorithm(algorithm: str, file_hash: str | None) -> str:
    if algorithm in ("sha256", "md5"):
        return algorithm
    if algorithm == "auto":
        return "sha256" if file_hash is not None and len(file_hash) == 64 else "md5"
    raise ValueError(f"hash_algorithm must be 'auto', 'sha256' or 'md5', received {algorithm!r}")


def hash_file(fpath: str, algorithm: str = "sha256", chunk_size: int = _CHUNK) -> str:
    """Hex digest of a file ("sha256" or "md5"; "auto" means sha256)."""
    hasher = hashlib.md5() if algorithm == "md5" else hashlib.sha256()
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath: str, file_hash: str, algorithm: str = "auto", chunk_size: int = _CHUNK) -> bool:
    """True when the file's hash is ``file_hash`` (sha256 for 64 hex digits, else md5 under "auto")."""
    return hash_file(fpath, _resolve_algorithm(algorithm, file_hash), chunk_size) == str(file_hash).lower()


def _safe_members_tar(archive, dest):
    root = os.path.realpath(dest)
    for member in archive.getmembers():
        target = os.path.realpath(os.path.join(dest, member.name))
        if os.path.commonpath([root, target]) != root or member.issym() or member.islnk():
            if member.issym() or member.islnk():
                link = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
                if os.path.commonpath([root, link]) == root:
                    yield member
                    continue
            warnings.warn(f"Skipping archive member {member.name!r}: it points outside the extraction folder",
                          stacklevel=3)
            continue
        yield member


def extract_archive(file_path: str, path: str = ".", archive_format: str | list[str] | None = "auto") -> bool:
    """Extracts a tar (.tar, .tar.gz, .tar.bz2) or zip archive into ``path``.

    Args:
        archive_format: "auto" (tar, then zip), "tar", "zip", a list of those, or None.

    Returns:
        True when the file was an archive of an accepted format and was extracted.
    """
    if archive_format is None:
        return False
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    for fmt in formats:
        if fmt == "tar":
            if not tarfile.is_tarfile(file_path):
                continue
            tmp = tempfile.mkdtemp(prefix=".extract-", dir=os.path.dirname(os.path.abspath(path)) or ".")
            try:
                with tarfile.open(file_path) as archive:
                    members = list(_safe_members_tar(archive, tmp))
                    if hasattr(tarfile, "data_filter"):  # Python's own checks too, where it has them
                        archive.extractall(tmp, members=members, filter="data")
                    else:
                        archive.extractall(tmp, members=members)
                _move_into(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return True
        if fmt == "zip":
            if not zipfile.is_zipfile(file_path):
                continue
            tmp = tempfile.mkdtemp(prefix=".extract-", dir=os.path.dirname(os.path.abspath(path)) or ".")
            try:
                with zipfile.ZipFile(file_path) as archive:
                    root = os.path.realpath(tmp)
                    for name in archive.namelist():
                        target = os.path.realpath(os.path.join(tmp, name))
                        if os.path.commonpath([root, target]) != root:
                            raise ValueError(f"Refusing to extract {name!r}: it points outside the extraction folder")
                    archive.extractall(tmp)
                _move_into(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return True
        raise ValueError(f"archive_format must be 'auto', 'tar', 'zip' or None, received {fmt!r}")
    return False


def _move_into(tmp, path):
    # Extraction went to a scratch folder beside the target; move it in place whole so that
    # an interrupted extraction never leaves a half-filled folder that looks complete.
    if os.path.isdir(path):
        for name in os.listdir(tmp):
            dest = os.path.join(path, name)
            if os.path.isdir(dest) and not os.path.islink(dest):
                shutil.rmtree(dest)
            elif os.path.lexists(dest):
                os.remove(dest)
            os.replace(os.path.join(tmp, name), dest)
    else:
        os.replace(tmp, path)


def _download(origin, target, verbose=True):
    from fastnet.utils.progbar import Progbar

    part = f"{target}.part-{os.getpid()}"
    try:
        with urllib.request.urlopen(origin) as response, open(part, "wb") as out:  # noqa: S310 -- any scheme the user names
            total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            total = int(total) if total and total.isdigit() else None
            bar = Progbar(total) if verbose and total and not origin.startswith("file:") else None
            done = 0
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                done += len(chunk)
                if bar is not None:
                    bar.update(min(done, total))
    except urllib.error.HTTPError as e:
        _remove(part)
        raise DownloadError(f"URL fetch failure on {origin}: HTTP {e.code} -- {e.reason}") from e
    except urllib.error.URLError as e:
        _remove(part)
        raise DownloadError(f"URL fetch failure on {origin}: {e.reason}. Are you offline? Without a network, "
                            f"place the file at {target} (Keras's cache, shared with fastnet) and call again."
                            ) from e
    except BaseException:
        _remove(part)
        raise
    return part


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def get_file(fname: str | None = None, origin: str | None = None, untar: bool = False, md5_hash: str | None = None,
             file_hash: str | None = None, cache_subdir: str = "datasets", hash_algorithm: str = "auto",
             extract: bool = False, archive_format: str = "auto", cache_dir: str | None = None,
             force_download: bool = False) -> str:
    """Downloads a file from ``origin`` unless it is cached; returns its local path.

    The file goes to ``cache_dir/cache_subdir/fname`` (by default
    ``~/.keras/datasets``, or ``$KERAS_HOME/datasets``; ``/tmp/.keras`` when that is not
    writable), the layout Keras uses. A download is written to a temporary name, checked
    against ``file_hash``, then renamed, so an interrupted download never leaves a file
    that looks complete. ``origin`` may be any URL ``urllib`` opens, ``file://`` included.

    Args:
        fname: file name in the cache (default: the last part of the URL's path).
        origin: the URL.
        untar: deprecated form of ``extract=True`` for tar archives.
        md5_hash: deprecated form of ``file_hash`` with md5.
        file_hash: expected sha256 or md5 hex digest; a cached file that does not match
            is downloaded again, and a download that does not match is refused.
        cache_subdir: folder under the cache root (an absolute path is used as is).
        hash_algorithm: "auto" (sha256 for 64 hex digits, else md5), "sha256" or "md5".
        extract: extract the (tar or zip) archive; the extraction folder is returned.
        archive_format: "auto", "tar", "zip" or None.
        cache_dir: the cache root (default: ``$KERAS_HOME`` or ``~/.keras``).
        force_download: download even when a cached file exists.

    Returns:
        Path of the file, or of the extraction folder with ``extract``.

    Raises:
        DownloadError: when the download fails (offline, HTTP error).
        ValueError: when the downloaded file's hash differs from ``file_hash``.
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    base = os.path.expanduser(cache_dir if cache_dir is not None else keras_home())
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        pass  # not writable: the fallback below
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    datadir = os.path.join(base, cache_subdir)
    os.makedirs(datadir, exist_ok=True)
    given = os.fspath(fname) if fname is not None else None
    if not given:
        given_name = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not given_name:
            raise ValueError(f"Can't parse the file name from the origin provided: {origin!r}; specify fname.")
        name = given_name
    else:
        if os.sep in given or (os.altsep and os.altsep in given):
            raise ValueError(f"fname must be a file name, not a path; use cache_dir for the folder. "
                             f"Received fname={given!r}")
        name = given
    extraction_dir = None
    if extract or untar:
        if given and "." in name:
            target = os.path.join(datadir, name)
            extraction_dir = os.path.join(datadir, name[:name.find(".")] + "_extracted")
        else:
            extraction_dir = os.path.join(datadir, name)
            target = os.path.join(datadir, name + "_archive")
    else:
        target = os.path.join(datadir, name)

    download = force_download or not os.path.exists(target)
    if not download and file_hash is not None and not validate_file(target, file_hash, hash_algorithm):
        print(f"A local file was found, but it seems to be incomplete or outdated because the "
              f"{_resolve_algorithm(hash_algorithm, file_hash)} file hash does not match the original value of "
              f"{file_hash} so we will re-download the data.")
        download = True
    if download:
        print(f"Downloading data from {origin}")
        part = _download(origin, target)
        if file_hash is not None and not validate_file(part, file_hash, hash_algorithm):
            _remove(part)
            raise ValueError(f"Incomplete or corrupted file detected. The "
                             f"{_resolve_algorithm(hash_algorithm, file_hash)} file hash does not match the "
                             f"provided value of {file_hash}.")
        os.replace(part, target)
    if extraction_dir is not None:
        if download or not os.path.isdir(extraction_dir) or not os.listdir(extraction_dir):
            if not extract_archive(target, extraction_dir, "tar" if untar else archive_format):
                warnings.warn(f"Could not extract archive {target}", stacklevel=2)
        return extraction_dir
    return target
