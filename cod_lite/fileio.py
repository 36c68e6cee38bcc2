"""Crash-safe output: readers see the old file or the complete new one, never a partial write."""

from __future__ import annotations

import errno
import io
import os
import sys
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Union

import platformdirs

from .errors import InputError, OutputError, option

Writer = Callable[[BinaryIO], None]
StreamSource = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]  # what decode/inspect read a stream from

# os.link errors meaning "this filesystem has no hard links" (FAT, some network shares).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def data_home() -> Path:
    """`$CODLITE_HOME`, else the platform's user data folder: user models and perceptual weights."""
    home = os.environ.get("CODLITE_HOME")
    return Path(home) if home else Path(platformdirs.user_data_dir("cod-lite", appauthor=False))


STDIO = "-"  # the path that means standard input / standard output, as in cwebp and cjxl


def stream_bytes(source: StreamSource) -> bytes:
    """A stream's bytes from bytes, a path (str or Path; '-' is standard input) or a binary file
    object (anything with read()), as `encode` takes its images: what `decode` and `inspect` accept."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return read_input(source)
    if callable(getattr(source, "read", None)):
        if isinstance(source, io.TextIOBase):
            raise InputError("the file object must be opened in binary mode ('rb')")
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise InputError("the file object must be opened in binary mode ('rb')")
        return bytes(data)
    raise InputError(f"expected stream bytes, a path or a binary file object, got {type(source).__name__}")


def read_input(path: str | os.PathLike) -> bytes:
    """A whole input file ('-': all of standard input), or an InputError that says why not in one line."""
    if os.fspath(path) == STDIO:
        data = sys.stdin.buffer.read()
        if not data:
            raise InputError("standard input is empty")
        return data
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such file: '{path}'") from None
    except IsADirectoryError:
        raise InputError(f"'{path}' is a folder, not a file") from None
    except OSError as e:
        raise InputError(f"cannot read '{path}': {e.strerror or e}") from None


def atomic_write(path: str | os.PathLike, data: bytes | Writer, *, overwrite: bool = False) -> Path:
    """Write bytes (or let a callable write into the open file) to path, atomically.

    The data goes to a temporary file in the same folder, is fsynced, then moved into place.
    Without overwrite an existing file is never replaced, not even one created meanwhile.
    On any failure, KeyboardInterrupt included, neither the temporary file nor the target remains.
    """
    target = Path(path)
    if not overwrite and os.path.lexists(target):
        raise _already_exists(target)
    try:
        # The name is cut so the temporary name stays within the filesystem's name limit.
        tmp = tempfile.NamedTemporaryFile(delete=False, dir=target.parent, prefix=f".{target.name[:100]}.", suffix=".tmp")
    except OSError as exc:
        raise _output_error(target, exc) from exc
    tmp_path = Path(tmp.name)
    try:
        with tmp:
            if callable(data):
                data(tmp)
            else:
                tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_path, _final_mode(target, overwrite))
        if overwrite:
            os.replace(tmp_path, target)
        else:
            _move_no_clobber(tmp_path, target)
    except OSError as exc:
        raise _output_error(target, exc) from exc
    finally:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:
            pass  # the error that brought us here matters more than a stray temporary file
    return target


def write_output(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """`atomic_write` of a file, or all of `data` to standard output for '-'."""
    if os.fspath(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write(path, data, overwrite=overwrite)


def check_target(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail before any work if `path` could not be written (it exists, or its folder does not);
    atomic_write checks again at the end, so a file created meanwhile is still never replaced."""
    target = Path(path)
    if not overwrite and os.path.lexists(target):
        raise _already_exists(target)
    if target.is_dir():
        raise OutputError(f"cannot write '{target}': it is a folder")
    if not target.parent.is_dir():
        raise _output_error(target, FileNotFoundError())
    return target


def _move_no_clobber(tmp_path: Path, target: Path) -> None:
    """Give tmp_path's file the name target, failing with FileExistsError if target exists."""
    try:
        os.link(tmp_path, target)  # atomic and never replaces; tmp_path is unlinked by the caller
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here: claim the name exclusively, then replace our own placeholder.
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            os.replace(tmp_path, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise


def _final_mode(target: Path, overwrite: bool) -> int:
    """Permissions a plain open(target, 'wb') would give: the old file's, else 0o666 less the umask."""
    if overwrite:
        try:
            info = os.stat(target)
        except OSError:
            pass
        else:
            if stat.S_ISREG(info.st_mode):
                return stat.S_IMODE(info.st_mode)
    return 0o666 & ~_current_umask()


def _current_umask() -> int:
    """Read the umask without changing it where possible: os.umask() alone races other threads."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _already_exists(target: Path) -> OutputError:
    return OutputError(f"'{target}' already exists; replace it with {option('--force', 'overwrite=True')}")


def _output_error(target: Path, exc: OSError) -> OutputError:
    folder = target.parent
    if isinstance(exc, FileExistsError):
        return _already_exists(target)
    if isinstance(exc, PermissionError):
        return OutputError(f"cannot write '{target}': permission denied")
    if isinstance(exc, IsADirectoryError):
        return OutputError(f"cannot write '{target}': it is a folder")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)) and not folder.is_dir():
        if folder.exists():
            return OutputError(f"cannot write '{target}': '{folder}' is not a folder")
        return OutputError(f"cannot write '{target}': folder '{folder}' does not exist")
    return OutputError(f"cannot write '{target}': {exc.strerror or exc}")
