"""cod-lite weight files: one safetensors file = tensors + the model config + its identity.

The identity (sha256 over names, dtypes, shapes and bytes of the network's tensors) goes into
every stream, so a file is never decoded with weights other than those that encoded it. An
optional index prior (`prior.*` tensors) rides along; it has its own digest, stored in the
streams it codes, so fitting a new prior never invalidates fixed-length streams of the model.

Large matrices may be stored as int8 with one fp16 scale per output channel (`int8_scale.*`
tensors), which halves a bundled model against fp16 at no measurable cost (docs/models.md);
they are expanded to float32 on load, so the network itself never sees int8.

A model trained with the rectified-flow `pretrain` stage carries a `sampling` record (JSON of
`models.sampling.Sampling`): it may be decoded with more than one step. Like the prior, it
stays out of the identity: steps are a decoder-side choice, streams do not depend on them.
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
from .models.sampling import Sampling

FORMAT = "cod-lite-weights"
FORMAT_VERSION = "2"  # 2 added int8 storage; version 1 files read unchanged
READABLE_VERSIONS = ("1", "2")
PRIOR_PREFIX = "prior."
INT8_SCALE_PREFIX = "int8_scale."
INT8_MIN_SIZE = 1024  # smaller tensors (norms, biases) cost little and are the most sensitive


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
    int8: bool = False,
    info: Mapping[str, Any] | None = None,
    sampling: Sampling | None = None,
    prior: IndexPrior | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a weight file; `dtype` (e.g. torch.float16) converts floating tensors first, `int8`
    stores every floating tensor of 2+ dimensions and INT8_MIN_SIZE+ elements as int8;
    `sampling` marks a multi-step (rectified-flow) model, None a one-step codec; `prior` rides
    along outside the weights' identity."""
    tensors = _storage(state, dtype, int8)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_json(),
        "weights_sha256": weights_digest(tensors),
        "info": json.dumps(dict(info or {}), sort_keys=True),
    }
    if sampling is not None:
        metadata["sampling"] = sampling.to_json()
    if prior is not None:
        metadata.update(_with_prior(tensors, prior, config))
    return atomic_write(path, save(tensors, metadata=metadata), overwrite=overwrite)


def _storage(state: Mapping[str, torch.Tensor], dtype: torch.dtype | None, int8: bool) -> dict[str, torch.Tensor]:
    """The tensors as a file holds them: int8 values + their scales, or converted to `dtype`."""
    tensors = {}
    for name, t in state.items():
        t = t.detach().cpu()
        if int8 and t.is_floating_point() and t.dim() >= 2 and t.numel() >= INT8_MIN_SIZE:
            t, tensors[INT8_SCALE_PREFIX + name] = quantize_int8(t)
        elif dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous()
    return tensors


def as_stored(state: Mapping[str, torch.Tensor], *, dtype: torch.dtype | None = None, int8: bool = False) -> dict[str, torch.Tensor]:
    """`state` as `save_weights(..., dtype=, int8=)` would store it and `load_weights` return it
    (float32): what a check of the written values compares, before writing anything."""
    return _float32(_storage(state, dtype, int8), "<memory>")


def _float32(tensors: dict[str, torch.Tensor], path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Stored tensors as the network takes them: int8 expanded with its scales, floats as float32."""
    _expand_int8(tensors, path)
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def quantize_int8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel (dim 0) int8: -> (int8 values, fp16 scales); value = q * scale."""
    rows = t.float().reshape(t.shape[0], -1)
    scale = (rows.abs().amax(1) / 127).clamp_min(torch.finfo(torch.float16).tiny).half()
    q = torch.round(rows / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(t.shape), scale


def _expand_int8(state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    for key in [k for k in state if k.startswith(INT8_SCALE_PREFIX)]:
        scale, name = state.pop(key), key[len(INT8_SCALE_PREFIX) :]
        q = state.get(name)
        if q is None or q.dtype != torch.int8 or q.dim() < 1 or scale.shape != (q.shape[0],):
            raise CheckpointError(f"'{path}' is damaged: int8 tensor '{name}' does not match its scales")
        state[name] = q.float() * scale.float().view(-1, *[1] * (q.dim() - 1))


def attach_prior(
    path: str | os.PathLike, prior: IndexPrior, output: str | os.PathLike, *, info: Mapping[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Copy a weight file with `prior` in place of any earlier one; the network tensors are copied
    byte for byte, so the model identity (and every stream made with it) stays valid."""
    config, _, meta = load_weights(path)  # validates the file
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith(PRIOR_PREFIX)}
    metadata = dict(read_metadata(path), **_with_prior(tensors, prior, config))
    metadata["info"] = json.dumps({**meta["info"], **dict(info or {})}, sort_keys=True)
    return atomic_write(output, save(tensors, metadata=metadata), overwrite=overwrite)


def _with_prior(tensors: dict[str, torch.Tensor], prior: IndexPrior, config: ModelConfig) -> dict[str, str]:
    """Add the prior's tensors to `tensors`; -> the metadata entry naming it."""
    if prior.codebook_size != config.codebook_size:
        raise ValueError(f"index prior has {prior.codebook_size} symbols, the model's codebook {config.codebook_size}")
    tensors.update({PRIOR_PREFIX + k: torch.from_numpy(v) for k, v in prior.to_arrays().items()})
    return {"prior_digest": prior.digest.hex()}


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


def read_sampling(path: str | os.PathLike) -> Sampling | None:
    """The file's sampling record (None: a one-step codec), from the header alone."""
    return _sampling(read_metadata(path), path)


def _sampling(meta: Mapping[str, str], path: str | os.PathLike) -> Sampling | None:
    if "sampling" not in meta:
        return None
    try:
        return Sampling.from_json(meta["sampling"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"'{path}' is damaged: bad sampling record ({e})") from None


def read_config(path: str | os.PathLike) -> ModelConfig:
    """A weight file's model config, from the header alone."""
    return _config_of(_cod_lite_metadata(path), path)


def _config_of(meta: Mapping[str, str], path: str | os.PathLike) -> ModelConfig:
    try:
        return ModelConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"'{path}' is damaged: {e}") from None


def _cod_lite_metadata(path: str | os.PathLike) -> dict[str, str]:
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"'{path}' is not a cod-lite weight file (official .pt checkpoints need `codlite import-official` first)"
        )
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"'{path}' has weight-file version {meta.get('format_version')}, this cod-lite reads {', '.join(READABLE_VERSIONS)}"
        )
    return meta


def load_weights(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """-> (config, float32 state dict, metadata with 'weights_sha256', decoded 'info', 'prior'
    and 'sampling')."""
    meta = _cod_lite_metadata(path)
    config = _config_of(meta, path)
    try:
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
    sampling = _sampling(meta, path)
    return config, _float32(state, path), {"weights_sha256": digest, "info": info, "prior": prior, "sampling": sampling}
