"""The exponential moving average of a network's weights: what a run saves and a codec ships."""

from __future__ import annotations

import copy

import torch


class EMA:
    """A frozen copy of `net` that follows it. The decay ramps as (1 + step) / (10 + step) up to
    `decay`, so the first steps are not averaged with the random (or loaded) start for long."""

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(net).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, net: torch.nn.Module, step: int) -> None:
        """Move the average towards `net`'s parameters after optimiser step `step` (1-based)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        for averaged, current in zip(self.model.parameters(), net.parameters()):
            averaged.lerp_(current.detach(), 1 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, contiguous (a channels_last (C, 1, 1, 1) tensor counts as
        contiguous but keeps a stride the weights' digest cannot view)."""
        return {k: v.clone(memory_format=torch.contiguous_format) for k, v in self.model.state_dict().items()}
