"""The authors' released checkpoints by name: `official:0.0312` is downloaded from their Hugging
Face repository on first use, checked, imported once into a safetensors weight file in the user
model folder, and loaded from there ever after (no pickle, no network).

`huggingface_hub` does the downloading (resumable, cached, revision-pinnable; honours
HF_HUB_OFFLINE and HF_ENDPOINT); it is the optional extra `cod-lite[hub]`. Nothing here runs
unless a model name starts with `official:`.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import urllib.parse
from pathlib import Path

from ..errors import CheckpointError, ModelNotFoundError
from ..fileio import data_home

PREFIX = "official:"
REPO = "zhaoyangjia/CoD_Lite"
REVISION_ENV = "CODLITE_OFFICIAL_REVISION"  # pin a commit of the repository (default: main)
# name after the prefix -> file stem in the repository (each .pt has its .yaml beside it)
CHECKPOINTS = {
    "0.0039": "CoD_Lite_bpp_0_0039",
    "0.0078": "CoD_Lite_bpp_0_0078",
    "0.0156": "CoD_Lite_bpp_0_0156",
    "0.0312": "CoD_Lite_bpp_0_0312",
    "0.125": "CoD_Lite_bpp_0_1250",
    "0.5": "CoD_Lite_bpp_0_5000",
    "pretrain": "CoD_Lite_pretrain",
}
INSTALL_HINT = 'official models are downloaded with huggingface_hub: pip install "cod-lite[hub]"'
SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_SECONDS = 2.0


def official_key(name: str) -> str:
    """'official:0.0312' / 'official:0.03120' / 'official:pretrain' -> the CHECKPOINTS key."""
    key = name[len(PREFIX):].strip().lower()
    for known in CHECKPOINTS:
        if key == known or (key.replace(".", "", 1).isdigit() and known[0].isdigit() and float(key) == float(known)):
            return known
    raise ModelNotFoundError(f"no official model '{name}' (known: {', '.join(PREFIX + k for k in CHECKPOINTS)})")


def imported_path(key: str) -> Path:
    from . import user_model_dir

    return user_model_dir() / f"official-{key}.safetensors"


def cache_dir() -> Path:
    return data_home() / "hub"


def fetch(name: str) -> Path:
    """The imported weight file of an official model, downloading and importing it the first time."""
    key = official_key(name)
    target = imported_path(key)
    if target.is_file():
        return target
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise ModelNotFoundError(f"'{name}' is not imported yet and {INSTALL_HINT}") from None
    stem = CHECKPOINTS[key]
    target.parent.mkdir(parents=True, exist_ok=True)
    checkpoint, revision = _download(f"{stem}.pt", name)
    config, _ = _download(f"{stem}.yaml", name)
    from ..official import import_official

    source = {"repository": REPO, "revision": revision, "file": f"{stem}.pt", "sha256": _sha256(checkpoint)}
    try:
        return import_official(checkpoint, config, target, name=PREFIX + key, source=source, overwrite=True)
    except CheckpointError:  # a download that verified but does not load: fetch it once more
        checkpoint, revision = _download(f"{stem}.pt", name, force=True)
        source.update(revision=revision, sha256=_sha256(checkpoint))
        return import_official(checkpoint, config, target, name=PREFIX + key, source=source, overwrite=True)


def _download(filename: str, name: str, force: bool = False) -> tuple[Path, str]:
    """One file of the repository into the hub cache: (path, commit). The blob's name in the cache
    is the file's ETag, for LFS files its sha256: checked here (huggingface_hub does not), and a
    mismatch is downloaded once more before it is refused."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not offline and not _cached(filename) and not _reachable(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT):
        raise ModelNotFoundError(
            f"'{name}' is not downloaded yet and the hub ({os.environ.get('HF_ENDPOINT') or DEFAULT_ENDPOINT}) cannot be reached; "
            f"connect and retry, or download {filename} and its .yaml from huggingface.co/{REPO} by hand and run `codlite import-official`"
        )
    for attempt in range(2):
        try:
            path = Path(hf_hub_download(
                REPO, filename, revision=os.environ.get(REVISION_ENV) or None, cache_dir=cache_dir(),
                endpoint=os.environ.get("HF_ENDPOINT") or None, local_files_only=offline, force_download=force or attempt > 0,
            ))
        except LocalEntryNotFoundError:
            raise ModelNotFoundError(
                f"'{name}' is not downloaded yet and the hub cannot be reached{' (HF_HUB_OFFLINE is set)' if offline else ''}; "
                f"download {filename} and its .yaml from huggingface.co/{REPO} by hand and run `codlite import-official`"
            ) from None
        except (HfHubHTTPError, OSError) as e:
            raise ModelNotFoundError(f"downloading {filename} for '{name}' failed: {str(e).splitlines()[0]}") from None
        blob = Path(os.path.realpath(path))
        if not SHA256.match(blob.name) or _sha256(path) == blob.name:
            return path, path.parent.name  # snapshots/<commit>/<file>
    raise CheckpointError(f"{filename} for '{name}': the downloaded bytes do not match their sha256 {blob.name} (twice); not imported")


def _reachable(endpoint: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether the hub's host accepts a connection within `timeout`: an offline machine is told so
    at once, instead of after the download library's retries (five lines, about 24 s)."""
    url = urllib.parse.urlsplit(endpoint)
    try:
        socket.create_connection((url.hostname or "", url.port or (443 if url.scheme == "https" else 80)), timeout=timeout).close()
    except OSError:
        return False
    return True


def _cached(filename: str) -> bool:
    """Whether huggingface_hub already holds this file in our cache (then no network is needed)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(REPO, filename, cache_dir=cache_dir(), revision=os.environ.get(REVISION_ENV) or None), str)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listing() -> list[tuple[str, str, int | None]]:
    """(name, file stem, bytes of the imported file or None) of every official model."""
    return [(PREFIX + key, stem, imported_path(key).stat().st_size if imported_path(key).is_file() else None)
            for key, stem in CHECKPOINTS.items()]
