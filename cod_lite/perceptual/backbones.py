"""ImageNet feature extractors for the perceptual metrics, written from the published layouts.

AlexNet (Krizhevsky et al. 2012, single-tower torchvision layout) and VGG16 (Simonyan &
Zisserman 2015, configuration D), convolutional part only. Each network is a list of stages;
`forward` returns the activation after every stage's last ReLU, which are the taps LPIPS
(relu1..relu5 / relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) and DISTS read.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError


class L2Pool2d(nn.Module):
    """DISTS' anti-aliased downsampling: sqrt(Hanning-blur(x^2)), stride 2.

    Max pooling aliases, which makes VGG features sensitive to small shifts; Ding et al. (2020)
    replace it with L2 pooling under a 3x3 Hanning window (the inner taps of a 5-point one).
    """

    def __init__(self) -> None:
        super().__init__()
        taps = torch.hann_window(5, periodic=False, dtype=torch.float64)[1:-1]
        window = taps[:, None] * taps[None, :]
        self.register_buffer("window", (window / window.sum()).float()[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.window.to(x.dtype).expand(c, 1, 3, 3)
        return (F.conv2d(x * x, weight, stride=2, padding=1, groups=c) + 1e-12).sqrt()


class _TappedStages(nn.Module):
    """Runs the stages in order and keeps each stage's output."""

    file_stem: str
    stages: nn.ModuleList

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for stage in self.stages:
            x = stage(x)
            taps.append(x)
        return taps

    def conv_names(self) -> list[str]:
        """Module names of the convolutions in call order (= the source checkpoints' order)."""
        return [name for name, m in self.named_modules() if isinstance(m, nn.Conv2d)]


def _conv_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding), nn.ReLU(inplace=True)]


class AlexNetFeatures(_TappedStages):
    """AlexNet conv1..conv5 (64-192-384-256-256 channels); taps after each ReLU."""

    file_stem = "alexnet"
    channels = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(*_conv_relu(3, 64, 11, stride=4, padding=2)),
            nn.Sequential(nn.MaxPool2d(3, 2), *_conv_relu(64, 192, 5, padding=2)),
            nn.Sequential(nn.MaxPool2d(3, 2), *_conv_relu(192, 384, 3, padding=1)),
            nn.Sequential(*_conv_relu(384, 256, 3, padding=1)),
            nn.Sequential(*_conv_relu(256, 256, 3, padding=1)),
        ])


class VGG16Features(_TappedStages):
    """VGG16 conv1_1..conv5_3; taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.

    `pooling="l2"` swaps the four max-pools for `L2Pool2d`, as DISTS does.
    """

    file_stem = "vgg16"
    channels = (64, 128, 256, 512, 512)

    def __init__(self, pooling: Literal["max", "l2"] = "max") -> None:
        super().__init__()
        if pooling not in ("max", "l2"):
            raise ValueError(f"pooling must be 'max' or 'l2', not {pooling!r}")
        stages = []
        c_in = 3
        for index, (width, depth) in enumerate(zip(self.channels, (2, 2, 3, 3, 3))):
            layers: list[nn.Module] = []
            if index > 0:
                layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else L2Pool2d())
            for _ in range(depth):
                layers += _conv_relu(c_in, width, 3, padding=1)
                c_in = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)


def check_image_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    """Both metrics compare same-shaped (B, 3, H, W) RGB batches."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape != y.shape:
        raise InputError(
            "expected two (B, 3, H, W) RGB batches of the same shape, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
