"""Import the authors' released checkpoints into cod-lite weight files.

The reference loader copies whatever keys fit and silently keeps random weights for the
rest; we load strictly and refuse anything that does not match, so a bad download can never
masquerade as a working codec.
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
from .weights import save_weights

# init_args the reference reads only while training; they do not change the inference network.
TRAINING_ONLY_ARGS = {"net_ckpt_path", "pretrain_prefix", "fix_encoder"}
# init_args whose only supported value is the official one.
FIXED_ARGS = {"pred": "x", "light": True, "up2x": True, "noise_level": 0.0}
RENAMED_ARGS = {"bottleneck_dim": "codebook_dim"}
MAX_LISTED = 8


def read_official_config(config: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """The authors' YAML (only model.net.init_args is read) or a dict of those args."""
    if isinstance(config, Mapping):
        args = dict(config)
    else:
        try:
            with open(config, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
            args = dict(doc["model"]["net"]["init_args"])
        except OSError as e:
            raise CheckpointError(f"cannot read config '{config}': {e.strerror}") from None
        except (yaml.YAMLError, KeyError, TypeError, ValueError):
            raise CheckpointError(f"'{config}' is not a CoD-Lite config: expected model.net.init_args") from None
    return args


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


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of an official checkpoint (any of the three containers), `net.` prefix removed."""
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
    state = {}
    for key, value in raw.items():
        if isinstance(key, str) and key.startswith("net.") and isinstance(value, torch.Tensor):
            state[key[4:].replace("_orig_mod.", "")] = value
    if not state:
        raise CheckpointError(f"'{path}' has no 'net.' tensors: not a CoD-Lite codec checkpoint")
    return state


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
    encoder_channels: int = 128,
    *,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an official CoD-Lite checkpoint + its config into one cod-lite weight file."""
    output = Path(output)
    model_config = config_from_official(read_official_config(config), name or output.stem, encoder_channels)
    state = read_checkpoint(checkpoint)
    net = CodLiteNet(model_config)
    check_state(net, state)
    net.load_state_dict(state, strict=True)
    info = {"source": "official checkpoint", "checkpoint": Path(checkpoint).name}
    return save_weights(output, model_config, net.state_dict(), info=info, overwrite=overwrite)
