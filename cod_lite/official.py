"""Import the authors' released checkpoints into cod-lite weight files.

The reference loader copies whatever keys fit and silently keeps random weights for the
rest; we load strictly and refuse anything that does not match, so a bad download can never
masquerade as a working codec.

Two kinds of checkpoint are accepted. The one-step codecs hold the network under `net.` with
their YAML's `model.net.init_args`. The multi-step pre-trained model (`CoD_Lite_pretrain.pt`)
is, by the authors' training code (their `LightningModel.state_dict` and the fine-tuning's
`pretrain_prefix: ema_denoiser.`), the same network under `ema_denoiser.` (EMA) and `denoiser.`,
with a Lightning YAML whose `model.denoiser.init_args` omit ds and codebook_bits (their
defaults: 32 and 4) and whose `model.diffusion_sampler` gives the sampler; we import the EMA
weights and mark the file multi-step. No released pretrain file was available to check this
(docs/parity.md).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import CheckpointError
from .models.config import ModelConfig
from .models.network import CodLiteNet
from .models.sampling import Sampling
from .weights import save_weights

# init_args the reference reads only while training; they do not change the inference network.
TRAINING_ONLY_ARGS = {"net_ckpt_path", "pretrain_prefix", "fix_encoder"}
# init_args whose only supported value is the official one.
FIXED_ARGS = {"pred": "x", "light": True, "up2x": True, "noise_level": 0.0}
RENAMED_ARGS = {"bottleneck_dim": "codebook_dim"}
MAX_LISTED = 8
# state-dict prefixes, in order of preference: the one-step codec, then the pre-trained model's
# EMA and raw weights (the authors fine-tune from the EMA ones)
PREFIXES = ("net.", "ema_denoiser.", "denoiser.")
MULTI_STEP_PREFIXES = ("ema_denoiser.", "denoiser.")
PRETRAIN_DEFAULTS = {"ds": 32, "codebook_bits": 4}  # the reference CoDBase defaults the pretrain YAML relies on
# the paper's CoD sampler (Euler, 25 steps, CFG 3.0 in 0.1 < t < 1), used where a YAML has no sampler
PAPER_SAMPLER = {"num_steps": 25, "guidance": 3.0, "guidance_interval_min": 0.1, "guidance_interval_max": 1.0}
SAMPLER_FIXED = {
    "timeshift": 1.0,
    "scheduler": "cod.diffusion.LinearScheduler",
    "step_fn": "cod.diffusion.ode_step_fn",
    "last_step_fn": "cod.diffusion.ode_step_fn",
    "guidance_fn": "cod.diffusion.simple_guidance_fn",
}


def _read_yaml(config: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(config, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        model = doc["model"]
        if not isinstance(model, dict) or not ("net" in model or "denoiser" in model):
            raise KeyError("model.net")
        return model
    except OSError as e:
        raise CheckpointError(f"cannot read config '{config}': {e.strerror}") from None
    except (yaml.YAMLError, KeyError, TypeError, ValueError):
        raise CheckpointError(
            f"'{config}' is not a CoD-Lite config: expected model.net.init_args (or model.denoiser.init_args)"
        ) from None


def read_official_config(config: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """The network arguments of the authors' YAML (model.net.init_args of a one-step codec, or
    model.denoiser.init_args of the pre-trained model, ds/bits defaulted) or a dict of them."""
    if isinstance(config, Mapping):
        return dict(config)
    model = _read_yaml(config)
    try:
        if "net" in model:
            return dict(model["net"]["init_args"])
        return {**PRETRAIN_DEFAULTS, **dict(model["denoiser"]["init_args"])}
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"'{config}' is not a CoD-Lite config: expected model.net.init_args") from None


def read_official_sampler(config: str | os.PathLike | Mapping[str, Any]) -> Sampling:
    """The multi-step sampling of a pre-trained model: its YAML's model.diffusion_sampler
    (an `EulerSampler`), else the paper's settings; the authors' pre-trained model sees noise at t = 0."""
    args = dict(PAPER_SAMPLER)
    if not isinstance(config, Mapping):
        sampler = _read_yaml(config).get("diffusion_sampler") or {}
        args.update((sampler.get("init_args") or {}) if isinstance(sampler, dict) else {})
    for key, value in SAMPLER_FIXED.items():
        if key in args and args[key] != value:
            raise CheckpointError(f"unsupported sampler setting {key}={args[key]!r} (cod-lite samples with {key}={value!r})")
    try:
        return Sampling(
            steps=int(args["num_steps"]),
            t0_input="noise",
            last_step=None if args.get("last_step") is None else float(args["last_step"]),
            guidance=float(args["guidance"]),
            guidance_interval=(float(args["guidance_interval_min"]), float(args["guidance_interval_max"])),
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"unsupported sampler settings: {e}") from None


def config_from_official(
    args: Mapping[str, Any], name: str, encoder_channels: int = 128
) -> ModelConfig:
    settings: dict[str, Any] = {"name": name, "encoder_channels": encoder_channels}
    for key, value in args.items():
        if key in TRAINING_ONLY_ARGS:
            continue
        if key in FIXED_ARGS:
            if value != FIXED_ARGS[key]:
                raise CheckpointError(f"unsupported setting {key}={value!r} (cod-lite runs {key}={FIXED_ARGS[key]!r})")
            continue
        settings[RENAMED_ARGS.get(key, key)] = value
    try:
        return ModelConfig.from_dict(settings)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"unsupported config: {e}") from None


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Tensors of an official checkpoint (any of the three containers) under the first of
    PREFIXES it has, that prefix removed -> (tensors, prefix)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            raw: Any = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: '{path}'") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint '{path}' is a folder, not a file") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"refusing to load '{path}': it holds objects other than tensors (loading it could run code)"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError, SafetensorError) as e:
        raise CheckpointError(f"'{path}' is not a readable checkpoint: {str(e).splitlines()[0]}") from None
    if isinstance(raw, dict) and isinstance(raw.get("module"), dict):
        raw = raw["module"]
    elif isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise CheckpointError(f"'{path}' does not contain a state dict")
    for prefix in PREFIXES:
        state = {}
        for key, value in raw.items():
            if isinstance(key, str) and key.startswith(prefix) and isinstance(value, torch.Tensor):
                state[key[len(prefix) :].replace("_orig_mod.", "")] = value
        if state:
            return state, prefix
    raise CheckpointError(
        f"'{path}' has no 'net.' tensors (nor the pre-trained model's 'ema_denoiser.'): not a CoD-Lite checkpoint"
    )


def check_state(net: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Raise one CheckpointError naming every missing, unexpected and mis-shaped key."""
    expected = net.state_dict()
    problems = []
    for label, keys in (
        ("missing", sorted(set(expected) - set(state))),
        ("unexpected", sorted(set(state) - set(expected))),
        (
            "mis-shaped",
            [
                f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                for k in sorted(set(state) & set(expected))
                if state[k].shape != expected[k].shape
            ],
        ),
    ):
        if keys:
            shown = ", ".join(keys[:MAX_LISTED]) + (f" (+{len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else "")
            problems.append(f"{len(keys)} {label} key(s): {shown}")
    if problems:
        raise CheckpointError("checkpoint does not fit the config: " + "; ".join(problems))


def import_official(
    checkpoint: str | os.PathLike,
    config: str | os.PathLike | Mapping[str, Any],
    output: str | os.PathLike,
    encoder_channels: int | None = None,
    *,
    name: str | None = None,
    source: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an official CoD-Lite checkpoint + its config into one cod-lite weight file; the
    pre-trained (multi-step) model is marked with its sampler, so `--steps` can run it. The
    condition encoder's width is read from the checkpoint unless given. `source`
    (e.g. repository, revision, sha256 of the download) is recorded in the file's info."""
    output = Path(output)
    state, prefix = read_checkpoint(checkpoint)
    if encoder_channels is None:  # the authors' is 128; a checkpoint says its own
        stem = state.get("y_embedder.encoder.conv_in.weight")
        encoder_channels = int(stem.shape[0]) if stem is not None and stem.ndim == 4 else 128
    model_config = config_from_official(read_official_config(config), name or output.stem, encoder_channels)
    sampling = read_official_sampler(config) if prefix in MULTI_STEP_PREFIXES else None
    net = CodLiteNet(model_config)
    check_state(net, state)
    net.load_state_dict(state, strict=True)
    info = {"source": "official checkpoint", "checkpoint": Path(checkpoint).name, "prefix": prefix, **(source or {})}
    if sampling is not None:
        info["source"] = "official pre-trained (multi-step) checkpoint; layout derived, unverified (docs/parity.md)"
    return save_weights(output, model_config, net.state_dict(), info=info, sampling=sampling, overwrite=overwrite)
