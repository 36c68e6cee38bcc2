"""Every bundled weight identity ever released, so that a stream made by any release decodes with
every later one.

A generative codec's decoder network is part of its format: a stream names its weights (the first
8 bytes of their sha256) and decodes only with exactly those. `registry.json` (written by
`tools/weight_registry.py` from the git history) lists each identity with the release that
shipped it and what replaced it. The current files are bundled; a superseded one is fetched on
request (`codlite fetch-model ID`, `fetch`) from the release archive (`archive_url` of the
registry, or `$CODLITE_ARCHIVE_URL`: https://..., or file:///DIR after `tools/weight_registry.py
--export DIR`), checked against its sha256 and kept in the user model folder's `archive/`, so it
is fetched once and decodes offline ever after. Nothing is downloaded unless asked for.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFoundError
from ..fileio import atomic_write

REGISTRY_PATH = Path(__file__).parent / "registry.json"
ARCHIVE_ENV = "CODLITE_ARCHIVE_URL"


@dataclass(frozen=True)
class Entry:
    """One released weight identity."""

    model: str
    weights_sha256: str  # streams store its first 8 bytes
    file_sha256: str  # of the weight file the archive serves
    bytes: int
    release: str  # the package version that shipped it
    date: str
    commit: str
    path: str  # in the repository at `commit`
    replaced_by: str | None  # the identity that superseded it (None: the current file)

    @property
    def identity(self) -> str:
        return self.weights_sha256[:16]


@functools.lru_cache(maxsize=1)
def _registry() -> dict:
    return json.loads(REGISTRY_PATH.read_text())


def entries() -> list[Entry]:
    return [Entry(**e) for e in _registry()["entries"]]


def lookup(identity: bytes | str) -> Entry | None:
    """The entry whose weights' sha256 starts with `identity` (a stream's 8 bytes, or hex)."""
    prefix = identity.hex() if isinstance(identity, bytes) else identity.lower()
    if len(prefix) < 8:
        return None
    return next((e for e in entries() if e.weights_sha256.startswith(prefix)), None)


def archive_name(model: str, weights_sha256: str) -> str:
    """The file name of an identity in the archive and in the local `archive/` folder."""
    return f"{model}-{weights_sha256[:16]}.safetensors"


def archive_dir() -> Path:
    from . import user_model_dir

    return user_model_dir() / "archive"


def installed(entry: Entry) -> Path | None:
    """Where this identity's weights are on this machine (bundled or fetched), else None."""
    from . import available_models

    for info in available_models():
        if info.weights_sha256 == entry.weights_sha256:
            return info.path
    path = archive_dir() / archive_name(entry.model, entry.weights_sha256)
    return path if path.is_file() else None


def archive_url() -> str:
    return os.environ.get(ARCHIVE_ENV) or _registry().get("archive_url", "")


def fetch_hint(entry: Entry) -> str:
    """What a user runs to get a superseded identity's weights."""
    where = "" if archive_url() else f" (set {ARCHIVE_ENV} to the release archive first)"
    return f"fetch it once with `codlite fetch-model {entry.identity}`{where}"


def fetch(identity: str) -> Path:
    """The weight file of a registered identity, downloaded from the archive the first time and
    checked against its sha256; ModelNotFoundError (one line) if it cannot be had."""
    entry = lookup(identity)
    if entry is None:
        raise ModelNotFoundError(f"no cod-lite release shipped weights {identity}; `codlite models` lists what is installed")
    path = installed(entry)
    if path is not None:
        return path
    base = archive_url()
    if not base:
        raise ModelNotFoundError(
            f"the weights of {entry.model} {entry.identity} are not installed and no archive is set: set {ARCHIVE_ENV} "
            "(https://... or file:///DIR after `python tools/weight_registry.py --export DIR` in a cod-lite git checkout)"
        )
    url = base.rstrip("/") + "/" + archive_name(entry.model, entry.weights_sha256)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read(entry.bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ModelNotFoundError(f"fetching {url} failed: {getattr(e, 'reason', e)}") from None
    if len(data) != entry.bytes or hashlib.sha256(data).hexdigest() != entry.file_sha256:
        raise ModelNotFoundError(f"{url} does not hold the registered file (size or sha256 differ); nothing was kept")
    target = archive_dir() / archive_name(entry.model, entry.weights_sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(target, data, overwrite=True)
