"""The learning-rate schedule: linear warm-up, then a cosine over the steps or the wall clock."""

from __future__ import annotations

import math

from .settings import TrainSettings


def lr_factor(step: int, settings: TrainSettings, time_progress: float | None = None) -> float:
    """Linear warm-up, then cosine decay to 10% over --steps, or over the wall-clock budget
    (`time_progress`, 0..1) where a run is limited by time rather than steps."""
    if step < settings.warmup:
        return (step + 1) / settings.warmup
    progress = min(1.0, (step - settings.warmup) / max(1, settings.steps - settings.warmup))
    if time_progress is not None:
        progress = min(1.0, time_progress)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
