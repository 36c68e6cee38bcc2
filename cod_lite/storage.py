"""Folders that `convert` reads and writes: a local folder, or an fsspec URL (s3://, gs://, az://,
memory://, file://) for object storage.

Local files are written atomically and never replace a file unless asked (`fileio.atomic_write`).
Object stores are written with one whole-object put, so an object appears under its final name
only when complete. Endpoints and credentials come from the usual environment (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, ...) or `storage_options`, are handed to fsspec and never printed. fsspec is
the optional extra `cod-lite[storage]`; s3fs/gcsfs/adlfs are the user's (s3fs: `cod-lite[s3]`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import InputError, OutputError, option
from .fileio import atomic_write

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(location: str | os.PathLike) -> bool:
    return isinstance(location, str) and bool(_URL.match(location))


class Tree:
    """One folder (local or remote): its files by path relative to the root, posix-style."""

    def __init__(self, location: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> None:
        self.location = os.fspath(location)
        self.options = dict(storage_options or {})
        self.fs: Any = None
        if is_url(self.location):
            try:
                import fsspec
            except ImportError:
                raise InputError(f'{self.location.split("://")[0]}:// locations need fsspec: pip install "cod-lite[storage]"') from None
            try:
                self.fs, self.root = fsspec.core.url_to_fs(self.location, **self.options)
            except (ImportError, ValueError) as e:
                raise InputError(f"cannot open '{self.location}': {str(e).splitlines()[0]}") from None
            self.root = self.root.rstrip("/")
        else:
            self.root = self.location

    def __reduce__(self) -> tuple:  # Ray and process pools rebuild a Tree from where it points
        return Tree, (self.location, self.options)

    def label(self, rel: str) -> str:
        """How messages name a file: the URL or path the user gave, plus the relative path."""
        return f"{self.location.rstrip('/')}/{rel}"

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.fs is not None else os.path.join(self.root, *PurePosixPath(rel).parts)

    def is_folder(self) -> bool:
        return self.fs.isdir(self.root) if self.fs is not None else Path(self.root).is_dir()

    def files(self) -> Iterator[str]:
        """Relative paths of every regular, non-hidden file under the root, sorted."""
        if self.fs is not None:
            found = sorted(p[len(self.root) + 1:] for p in self.fs.find(self.root) if p.startswith(self.root + "/"))
        else:
            root = Path(self.root)
            found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return (rel for rel in found if not any(part.startswith(".") for part in rel.split("/")))

    def read(self, rel: str) -> bytes:
        try:
            if self.fs is not None:
                return self.fs.cat_file(self._path(rel))
            return Path(self._path(rel)).read_bytes()
        except FileNotFoundError:
            raise InputError(f"no such file: '{self.label(rel)}'") from None
        except OSError as e:
            raise InputError(f"cannot read '{self.label(rel)}': {e.strerror or e}") from None

    def head(self, rel: str, size: int = 64) -> bytes:
        try:
            if self.fs is not None:
                return self.fs.cat_file(self._path(rel), start=0, end=size)
            with open(self._path(rel), "rb") as f:
                return f.read(size)
        except OSError:
            return b""

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._path(rel)) if self.fs is not None else os.path.lexists(self._path(rel))

    def size(self, rel: str) -> int:
        return int(self.fs.size(self._path(rel))) if self.fs is not None else Path(self._path(rel)).stat().st_size

    def write(self, rel: str, data: bytes, overwrite: bool = False) -> int:
        """Write a whole file (atomically where local; one put where remote); returns its size."""
        if self.fs is None:
            path = Path(self._path(rel))
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data, overwrite=overwrite)
            return len(data)
        path = self._path(rel)
        if not overwrite and self.fs.exists(path):
            raise OutputError(f"'{self.label(rel)}' already exists; replace it with {option('--force', 'overwrite=True')}")
        try:
            self.fs.pipe_file(path, data)
        except OSError as e:
            raise OutputError(f"cannot write '{self.label(rel)}': {e.strerror or e}") from None
        return len(data)

    def contains(self, other: "Tree") -> bool:
        """Whether `other` is this folder or lies inside it (converting into it would loop)."""
        if (self.fs is None) != (other.fs is None):
            return False
        if self.fs is None:
            return Path(other.root).resolve().is_relative_to(Path(self.root).resolve())
        return type(self.fs) is type(other.fs) and (other.root + "/").startswith(self.root + "/")
