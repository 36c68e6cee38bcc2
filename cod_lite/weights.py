"""cod-lite weight files: one safetensors file = tensors + the model config + its identity.

The identity (sha256 over names, dtypes, shapes and bytes of the network's tensors) goes into
every stream, so a file is never decoded with weights other than those that encoded it. An
optional index prior (`prior.*` tensors) rides along; it has its own digest, stored in the
streams it codes, so fitting a new prior never invalidates fixed-length streams of the model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .entropy.prior import IndexPrior
from .errors import CheckpointError
from .fileio import atomic_write
from .models.config import ModelConfig

FORMAT = "cod-lite-weights"
FORMAT_VERSION = "1"
PRIOR_PREFIX = "prior."


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """Hex sha256 of the tensors exactly as stored (order-independent, device-independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_weights(
    path: str | os.PathLike,
    config: ModelConfig,
    state: Mapping[str, torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
    info: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a weight file; `dtype` (e.g. torch.float16) converts floating tensors first."""
    tensors = {}
    for name, t in state.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_json(),
        "weights_sha256": weights_digest(tensors),
        "info": json.dumps(dict(info or {}), sort_keys=True),
    }
    return atomic_write(path, save(tensors, metadata=metadata), overwrite=overwrite)


def attach_prior(
    path: str | os.PathLike, prior: IndexPrior, output: str | os.PathLike, *, info: Mapping[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Copy a weight file with `prior` in place of any earlier one; the network tensors are copied
    byte for byte, so the model identity (and every stream made with it) stays valid."""
    config, _, meta = load_weights(path)  # validates the file
    if prior.codebook_size != config.codebook_size:
        raise ValueError(f"index prior has {prior.codebook_size} symbols, the model's codebook {config.codebook_size}")
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith(PRIOR_PREFIX)}
    tensors.update({PRIOR_PREFIX + k: torch.from_numpy(v) for k, v in prior.to_arrays().items()})
    metadata = dict(read_metadata(path), prior_digest=prior.digest.hex())
    metadata["info"] = json.dumps({**meta["info"], **dict(info or {})}, sort_keys=True)
    return atomic_write(output, save(tensors, metadata=metadata), overwrite=overwrite)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors header metadata, without reading the tensors."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100_000_000:
                raise ValueError("bad header size")
            header = json.loads(f.read(size))
            if not isinstance(header, dict):
                raise ValueError("header is not a JSON object")
        return dict(header.get("__metadata__") or {})
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"'{path}' is not a safetensors weight file ({e})") from None


def load_weights(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """-> (config, float32 state dict, metadata with 'weights_sha256', decoded 'info' and 'prior')."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"'{path}' is not a cod-lite weight file (official .pt checkpoints need `codlite import-official` first)"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"'{path}' has weight-file version {meta.get('format_version')}, this cod-lite reads {FORMAT_VERSION}")
    try:
        config = ModelConfig.from_dict(json.loads(meta["config"]))
        state = load_file(str(path))
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, ValueError, TypeError, SafetensorError) as e:
        raise CheckpointError(f"'{path}' is damaged: {e}") from None
    prior_arrays = {k[len(PRIOR_PREFIX) :]: state.pop(k).numpy() for k in list(state) if k.startswith(PRIOR_PREFIX)}
    digest = weights_digest(state)
    if digest != meta.get("weights_sha256"):
        raise CheckpointError(f"'{path}' is damaged: its tensors do not match the recorded sha256")
    prior = None
    if prior_arrays or "prior_digest" in meta:
        prior = IndexPrior.from_arrays(prior_arrays)
        if prior.digest.hex() != meta.get("prior_digest"):
            raise CheckpointError(f"'{path}' is damaged: its index prior does not match the recorded digest")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return config, state, {"weights_sha256": digest, "info": info, "prior": prior}
