"""A run folder's checkpoint: the EMA weights as a model file (`last.safetensors`, usable by the
codec as it is) and the optimiser state beside it (`last_state.pt`), both replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..models.config import ModelConfig
from ..models.sampling import Sampling
from ..weights import load_weights, save_weights
from .settings import TrainSettings, check_resume

WEIGHTS_FILE = "last.safetensors"
STATE_FILE = "last_state.pt"


def load_run(out: Path, settings: TrainSettings) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """(training state, EMA weights) of the run in `out`, or None for a new run; ValueError when
    `settings` would change what the saved run optimises (settings.check_resume)."""
    if not (out / STATE_FILE).exists():
        return None
    _, ema_state, meta = load_weights(out / WEIGHTS_FILE)
    check_resume(settings, meta.get("info", {}).get("settings", {}))
    return torch.load(out / STATE_FILE, map_location="cpu", weights_only=True), ema_state


def save_run(
    out: Path, config: ModelConfig, ema_weights: dict[str, torch.Tensor], info: dict[str, Any],
    state: dict[str, Any], sampling: Sampling | None = None,
) -> Path:
    """Write the checkpoint (weights first: a crash between the two leaves the older state, which
    resumes from a slightly older step); returns the weight file."""
    weights = out / WEIGHTS_FILE
    save_weights(weights, config, ema_weights, info=info, sampling=sampling, overwrite=True)
    tmp = out / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / STATE_FILE)
    return weights
