"""Image-quality metrics used to judge codecs: PSNR, MS-SSIM, LPIPS-Alex, LPIPS-VGG, DISTS.

All take uint8 HxWx3 arrays, so results do not depend on a caller's float conventions.
The perceptual networks are loaded once per process (their weights come from
`python -m cod_lite.perceptual.weights`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .errors import InputError


def _pair(reference: np.ndarray, distorted: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if reference.shape != distorted.shape or reference.ndim != 3 or reference.shape[2] != 3:
        raise InputError(f"images must both be HxWx3 of one size, got {reference.shape} and {distorted.shape}")
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    return to(reference), to(distorted)


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - distorted.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ms_ssim(reference: np.ndarray, distorted: np.ndarray) -> float:
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _pair(reference, distorted)
    return float(_ms_ssim(a, b, data_range=1.0, size_average=True))


@functools.lru_cache(maxsize=None)
def _network(name: str) -> torch.nn.Module:
    from .perceptual import DISTS, LPIPS

    return DISTS() if name == "dists" else LPIPS(net=name)


@torch.inference_mode()
def lpips(reference: np.ndarray, distorted: np.ndarray, net: str = "alex") -> float:
    a, b = _pair(reference, distorted)
    return float(_network(net)(a * 2 - 1, b * 2 - 1)[0])


@torch.inference_mode()
def dists(reference: np.ndarray, distorted: np.ndarray) -> float:
    a, b = _pair(reference, distorted)
    return float(_network("dists")(a, b)[0])


def all_metrics(reference: np.ndarray, distorted: np.ndarray) -> dict[str, float]:
    return {
        "psnr": psnr(reference, distorted),
        "ms_ssim": ms_ssim(reference, distorted),
        "lpips_alex": lpips(reference, distorted, "alex"),
        "dists": dists(reference, distorted),
    }
