"""Multi-step decoding: Euler integration of the rectified flow, the one sampler of cod-lite.

The flow is x_t = t x + (1 - t) eps (t = 1 is data, t = 0 pure noise) and the network predicts
x ("pred x"). Training's distillation teacher (`train.losses.sample_teacher`) and the codec's `--steps` decoder
both call `sample`, so they cannot drift apart. The rules (time grid, noise, guidance) are
stated in docs/format.md ("Multi-step decoding"): Euler steps on the rectified-flow ODE as in the
paper, with the constants of the authors' released sampler (the velocity clamp, the guidance
interval, the unconditional input) so that their pre-trained model runs as it was trained.

Whether a model may be sampled at all travels with its weights: a `Sampling` record in the
weight file's metadata (`weights.py`). Files without one are one-step codecs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .. import tiling
from ..errors import InputError
from .config import ModelConfig
from .network import CodLiteNet, to_uint8

METHOD = "rectified-flow"
T0_INPUTS = ("zeros", "noise")
V_CLAMP_MIN = 0.05  # the reference's clamp of 1 - t when it turns an x prediction into a velocity
MAX_SEED = 2**63 - 1

Denoiser = Callable[[torch.Tensor, "torch.Tensor | None", torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Sampling:
    """How a rectified-flow model is sampled; stored as JSON in its weight file.

    `steps`: the default step count (`Codec.decode(steps=None)`). `t0_input`: what the network
    sees at t = 0 -- "zeros" for models of our `pretrain` stage (trained at t = 0 with x_t = 0, the
    one-step codec's input, so 1 step is exactly the one-step decode), "noise" for the authors'
    pre-trained model (trained at t = 0 on the noise itself). `last_step`: length of the last
    interval of the time grid (None: 1/steps, a uniform grid). `guidance` > 1: classifier-free
    guidance against the unconditional condition (see `unconditional_image`) while
    guidance_interval[0] < t < guidance_interval[1].
    """

    steps: int = 1
    t0_input: str = "zeros"
    last_step: float | None = None
    guidance: float = 1.0
    guidance_interval: tuple[float, float] = (0.1, 1.0)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"default steps must be a positive integer, got {self.steps!r}")
        if self.t0_input not in T0_INPUTS:
            raise ValueError(f"t0_input must be one of {', '.join(T0_INPUTS)}, got {self.t0_input!r}")
        if self.last_step is not None and not 0 < self.last_step <= 1:
            raise ValueError(f"last_step must be in (0, 1], got {self.last_step!r}")
        if not self.guidance >= 1:
            raise ValueError(f"guidance must be >= 1, got {self.guidance!r}")
        object.__setattr__(self, "guidance_interval", tuple(float(v) for v in self.guidance_interval))
        if len(self.guidance_interval) != 2:
            raise ValueError("guidance_interval must be two numbers")

    def to_json(self) -> str:
        return json.dumps({"method": METHOD, **dataclasses.asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Sampling":
        """Parse a weight file's record; ValueError (with the reason) if it is not one."""
        values: Any = json.loads(text)
        if not isinstance(values, dict) or values.pop("method", None) != METHOD:
            raise ValueError(f"sampling record is not a '{METHOD}' record")
        known = {f.name for f in dataclasses.fields(cls)}
        if set(values) - known:
            raise ValueError(f"unknown sampling settings: {', '.join(sorted(set(values) - known))}")
        return cls(**values)


def time_grid(steps: int, last_step: float | None = None) -> torch.Tensor:
    """steps + 1 times from 0 to 1 (float32): linspace(0, 1 - last_step, steps), then 1.0; with
    last_step None (or steps == 1) last_step = 1/steps, i.e. the uniform grid i / steps."""
    if last_step is None or steps == 1:
        last_step = 1.0 / steps
    return torch.cat([torch.linspace(0.0, 1.0 - last_step, steps), torch.ones(1)])


def check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    return steps


def make_noise(seed: int, height: int, width: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(1, 3, height, width) standard normal noise: a fresh CPU `torch.Generator` seeded with
    `seed`, drawn in float32 on the CPU, then moved, so a seed means the same noise on any device."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, 3, height, width), generator=generator, dtype=torch.float32).to(device, dtype)


def unconditional_image(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The authors' unconditional input: an image whose pixels are all -1, given to the condition
    encoder in place of the [0, 1] photo (their `PixelConditioner`); its quantised, decoded
    condition is the unconditional branch of classifier-free guidance."""
    return torch.full((1, 3, height, width), -1.0, device=device)


@torch.no_grad()
def sample(
    denoise: Denoiser,
    cond: torch.Tensor,
    noise: torch.Tensor,
    steps: int,
    sampling: Sampling,
    uncond: torch.Tensor | None = None,
) -> torch.Tensor:
    """Euler integration from `noise` (t = 0) to the image (t = 1), conditioned on `cond`;
    returns the final state in [-1, 1] (not clamped).

    `denoise(x_t, t, cond)` predicts x (t None means t = 0 with the cached modulation). Each step
    x <- x + (t' - t) (pred - x) / max(1 - t, 0.05): the reference's velocity and clamp, written
    as `torch.lerp`, so a step that reaches t' = 1 with 1 - t >= 0.05 lands exactly on `pred`.
    With `uncond` and guidance g > 1, pred = pred_u + g (pred - pred_u) inside the guidance
    interval (the reference guides the velocity; with one x_t for both branches that is the same).
    """
    check_steps(steps)
    times = time_grid(steps, sampling.last_step).tolist()
    b = noise.shape[0]
    lo, hi = sampling.guidance_interval
    x = noise
    for t, t_next in zip(times[:-1], times[1:]):
        if t == 0 and sampling.t0_input == "zeros":
            x_in, t_in = torch.zeros_like(x), None
        else:
            x_in, t_in = x, torch.full((b,), t, device=x.device, dtype=torch.float32)
        pred = denoise(x_in, t_in, cond)
        if uncond is not None and sampling.guidance != 1 and lo < t < hi:
            pred_u = denoise(x_in, t_in, uncond)
            pred = pred_u + sampling.guidance * (pred - pred_u)
        # under autocast (bf16 training of a distill student) pred is bf16: the state stays in its own dtype
        x = torch.lerp(x, pred.to(x.dtype), (t_next - t) / max(1.0 - t, V_CLAMP_MIN))
    return x


# -- the codec's multi-step decoder: the sampler within a memory budget ------------------------
DEFAULT_SEED = 0  # seed=None: multi-step decoding is deterministic unless a caller picks another
SAMPLE_STATE_BYTES = 48  # per pixel while sampling: state, noise, prediction, update (4 fp32 RGB maps; an estimate)


def sample_bytes(config: ModelConfig, height: int, width: int) -> int:
    """Working memory of sampling one height x width image untiled (an estimate)."""
    return tiling.reconstruct_bytes(config, height, width) + SAMPLE_STATE_BYTES * height * width


def sample_indices(
    net: CodLiteNet, idx: torch.Tensor, steps: int, seed: int | None, sampling: Sampling, max_memory: int
) -> torch.Tensor:
    """(B, h, w) indices -> (B, H, W, 3) uint8: `steps` Euler steps from the seed's noise (every
    image of the batch gets the same noise: the one `seed` gives its size). An image whose
    sampling does not fit `max_memory` runs the per-pixel head in tiles."""
    config = net.config
    b, height, width = idx.shape[0], idx.shape[1] * config.ds, idx.shape[2] * config.ds
    denoise, budget = net.denoise, max_memory
    if sample_bytes(config, height, width) * b > budget:  # one image (batches fit): tiles
        budget -= SAMPLE_STATE_BYTES * height * width
        if budget <= 0:
            raise InputError(
                f"a {width}x{height} image needs {SAMPLE_STATE_BYTES * height * width >> 20} MiB for its "
                f"sampling state alone, above max_memory={max_memory >> 20} MiB; raise max_memory or decode with 1 step"
            )
        denoise = lambda x, t, c: tiling.denoise_tiled(net, x, t, c, budget)  # noqa: E731
    cond = tiling.condition(net, idx, budget)
    noise = make_noise(DEFAULT_SEED if seed is None else seed, height, width, idx.device, cond.dtype).expand(b, -1, -1, -1)
    uncond = None
    if sampling.guidance != 1:
        if tiling.quantize_bytes(config, height, width) > max_memory:
            raise InputError(
                f"guided sampling of a {width}x{height} image encodes its unconditional input untiled, "
                f"which needs more than max_memory={max_memory >> 20} MiB; raise max_memory or decode with 1 step"
            )
        blank = unconditional_image(height, width, idx.device).to(cond.dtype)
        uncond = tiling.condition(net, net.quantize(blank), budget).expand_as(cond)
    return to_uint8(sample(denoise, cond, noise, steps, sampling, uncond))
