"""What a training run is told: every option of `python -m cod_lite.train STAGE`, and which of
them a resumed run must repeat."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.config import ModelConfig
from ..weights import read_config


@dataclass
class TrainSettings:
    stage: str
    data: str
    out: str
    steps: int = 10000
    batch_size: int = 8
    crop: int = 128
    max_crop: int | None = None  # each batch its own size, crop..max_crop (data.CropSampler)
    lr: float = 2e-4
    warmup: int = 500
    ema_decay: float = 0.999
    max_minutes: float | None = None
    init: str | None = None
    seed: int = 0
    log_every: int = 50
    save_every: int = 500
    restart_every: int = 200  # dead-code restarts every N steps; 0: never (fine-tuning)
    # None: 1.0 for the one-step stages, 0 for pretrain. In pretrain, L1 and the LPIPS terms judge
    # the t = 0 samples only (the one-step output), beside the flow's MSE on every sample.
    l1: float | None = None
    lpips_vgg: float = 0.0
    lpips_alex: float = 0.0
    seam: float = 0.0  # steps across patch borders beyond the true ones (losses.seam_loss)
    pattern: float = 0.0  # L1 between the mean patches of output and target (losses.mean_patch)
    colour: float = 0.0  # L1 between 16x16 region means of output and target (losses.region_colours)
    dists: float = 0.0  # DISTS of output and target: texture statistics, not pixels (cod_lite.perceptual)
    refine_lr_scale: float = 1.0  # the seam refiner's learning rate relative to --lr (it starts at zero)
    t0_fraction: float = 0.25
    align: float = 0.0
    teacher: str | None = None
    teacher_steps: int = 8
    distill: float = 1.0
    adversarial: float = 0.0
    d_lr: float = 2e-4
    compile: bool = False
    freeze_encoder: bool = False
    refiner_only: bool = False  # train the seam refiner alone: the rest of the network stays as loaded
    device: str | None = None  # default: CUDA when available
    # auto: bf16 autocast where the device has native bf16 (bf16 CUDA GPUs; CPUs with avx512_bf16
    # or AMX), else fp32; or fp32 / bf16. Emulated bf16 is slow: a full pretrain step at batch 4 of
    # 256 took 14-15 s with bf16 + channels_last against 1.7 s in fp32 on an AVX2-only Zen 2.
    precision: str = "auto"
    channels_last: bool = False
    deadline: float | None = None  # Unix time: stop (and save) before it, like --max-minutes
    time_schedule: bool = False  # warm-up, then the cosine runs over the wall-clock budget, not --steps
    save_minutes: float | None = None  # also save every N minutes
    perceptual_pack: bool = False  # LPIPS/VGG backbones missing from the cache load from its int8 pack


    def __post_init__(self) -> None:
        if self.l1 is None:
            self.l1 = 0.0 if self.stage == "pretrain" else 1.0

    @property
    def encoder_frozen(self) -> bool:
        """The encoder and codebook stay as loaded: indices never change (no restarts, no backward)."""
        return self.freeze_encoder or self.refiner_only


# What a run optimises: resuming a run folder with any of these changed is refused, because a
# forgotten loss flag would otherwise silently train the rest of the run on another objective.
RESUME_FIXED = ("stage", "l1", "lpips_vgg", "lpips_alex", "seam", "pattern", "colour", "dists", "t0_fraction", "align", "teacher", "teacher_steps",
                "distill", "adversarial", "freeze_encoder", "refiner_only")


def check_resume(settings: TrainSettings, saved: dict) -> None:
    """ValueError if `settings` change what the saved run (its settings dict) optimises."""
    changed = [f"{k}={saved[k]!r} (this command: {getattr(settings, k)!r})"
               for k in RESUME_FIXED if k in saved and saved[k] != getattr(settings, k)]
    if changed:
        raise ValueError(f"{settings.out} was trained with {', '.join(changed)}; "
                         "repeat its options to resume it, or start a new run with another --out")


# A new model without --init: small enough to train on a CPU.
SMALL_CONFIG = ModelConfig(name="cod-lite-model", hidden_size=128, hidden_size_x=16, num_blocks=8, num_cond_blocks=6, encoder_channels=32)


def run_config(out: str | Path, init: str | None, **changes: Any) -> ModelConfig:
    """The architecture of a run: the resumed run's, else the `init` file's, else SMALL_CONFIG,
    with `changes` (ModelConfig fields) applied. Continuing a model keeps its architecture unless
    asked: a forgotten flag would otherwise build another network and load only the tensors
    whose shapes happen to match."""
    resumed = Path(out) / "last.safetensors"
    base = read_config(resumed) if resumed.exists() else read_config(init) if init else SMALL_CONFIG
    return dataclasses.replace(base, **changes)
