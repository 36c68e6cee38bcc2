"""Training-time vector quantisation: straight-through gradients, VQ-VAE losses, dead-code restarts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.condition_codec import VectorQuantizer

COMMITMENT = 0.25


def quantize(bottleneck: VectorQuantizer, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (codewords with straight-through gradient to z, indices, codebook + commitment loss)."""
    indices = bottleneck.indices(z.detach().float())
    zq = bottleneck.lookup(indices).to(z.dtype)
    loss = F.mse_loss(zq, z.detach()) + COMMITMENT * F.mse_loss(z, zq.detach())
    return z + (zq - z).detach(), indices, loss


class CodeUsage:
    """Counts code use over a window; unused codes restart from random encoder outputs, so the
    whole codebook keeps carrying information."""

    def __init__(self, size: int) -> None:
        self.counts = torch.zeros(size, dtype=torch.long)

    def update(self, indices: torch.Tensor) -> None:
        self.counts += torch.bincount(indices.flatten().cpu(), minlength=len(self.counts))

    def perplexity(self) -> float:
        p = self.counts.float() / self.counts.sum().clamp(min=1)
        return float(torch.exp(-(p * p.clamp(min=1e-12).log()).sum()))

    def used(self) -> int:
        return int((self.counts > 0).sum())

    @torch.no_grad()
    def restart_dead(self, bottleneck: VectorQuantizer, z: torch.Tensor) -> int:
        dead = (self.counts == 0).nonzero().flatten()
        if len(dead):
            vectors = z.detach().float().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
            pick = torch.randint(len(vectors), (len(dead),), device=vectors.device)
            noise = 0.01 * vectors.std() * torch.randn(len(dead), z.shape[1], device=vectors.device)
            weight = bottleneck.embedding.weight
            weight[dead.to(weight.device)] = (vectors[pick] + noise).to(weight.dtype)
        self.counts.zero_()
        return len(dead)
