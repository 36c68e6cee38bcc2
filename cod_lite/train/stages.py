"""The paper's training stages as objectives: image batch in, losses out.

- `pretrain`: compression-oriented diffusion pre-training with rectified flow
  (x_t = t x + (1 - t) eps, t = 1 is data, the network predicts x); a fraction of samples is
  trained at t = 0 with x_t = 0, the one-step codec's input, so one model serves distortion
  (t = 0) and perception (sampling) at once.
- `onestep`: one-step fine-tuning at t = 0, x_t = 0 -- exactly what the codec runs:
  L1 + LPIPS-VGG + 0.5 LPIPS-Alex (weights configurable; perceptual nets from cod_lite.perceptual).
Both train the condition codec jointly (straight-through VQ).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..models.network import CodLiteNet
from .vq import quantize

if TYPE_CHECKING:
    from .loop import TrainSettings

STAGES = {"pretrain": "rectified-flow pre-training", "onestep": "one-step fine-tuning"}


class Objective(nn.Module):
    def __init__(self, net: CodLiteNet, settings: "TrainSettings") -> None:
        super().__init__()
        if settings.stage not in STAGES:
            raise ValueError(f"unknown stage '{settings.stage}' (known: {', '.join(STAGES)})")
        self.net = net
        self.settings = settings
        self.perceptual = nn.ModuleDict()
        if settings.lpips_vgg:
            from ..perceptual import LPIPS

            self.perceptual["vgg"] = LPIPS(net="vgg", download=True)
        if settings.lpips_alex:
            from ..perceptual import LPIPS

            self.perceptual["alex"] = LPIPS(net="alex", download=True)

    def forward(self, x01: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """-> (losses with 'total', encoder output z, VQ indices)."""
        net, s = self.net, self.settings
        z = net.y_embedder.encoder(x01)
        zq, indices, vq_loss = quantize(net.y_embedder.bottleneck, z)
        cond = net.y_embedder.decoder(zq)
        target = x01 * 2 - 1
        b = x01.shape[0]
        if s.stage == "onestep":
            pred = net.denoise(torch.zeros_like(target), None, cond)
            losses = {"l1": F.l1_loss(pred, target)}
            total = s.l1 * losses["l1"]
            weights = {"vgg": s.lpips_vgg, "alex": s.lpips_alex}
            for name, metric in self.perceptual.items():
                losses[f"lpips_{name}"] = metric(pred.float(), target).mean()
                total = total + weights[name] * losses[f"lpips_{name}"]
        else:
            t = torch.sigmoid(torch.randn(b, device=x01.device))  # logit-normal
            t = torch.where(torch.rand(b, device=x01.device) < s.t0_fraction, torch.zeros_like(t), t)
            eps = torch.randn_like(target) * (t > 0)[:, None, None, None]
            x_t = t[:, None, None, None] * target + (1 - t[:, None, None, None]) * eps
            pred = net.denoise(x_t, t, cond)
            losses = {"mse": F.mse_loss(pred, target)}
            total = losses["mse"]
        losses["vq"] = vq_loss
        losses["total"] = total + vq_loss
        return losses, z, indices
