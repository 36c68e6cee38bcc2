"""The building blocks of the training objectives: loss terms and the frozen networks they use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import COLOUR_BLOCK
from ..models.network import CodLiteNet
from ..models.sampling import Sampling, sample

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
