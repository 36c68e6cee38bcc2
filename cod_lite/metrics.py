"""Image-quality metrics used to judge codecs: PSNR, MS-SSIM, LPIPS-Alex, LPIPS-VGG, DISTS,
colour error (region colours, which LPIPS barely weighs), blockiness and patch pattern (the
16-px grid's two artefacts) per image, and FID/KID over patches of a whole set.

All take uint8 HxWx3 arrays, so results do not depend on a caller's float conventions.
The networks are loaded once per process (their weights come from
`python -m cod_lite.perceptual.weights`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch

from .errors import InputError
from .models.config import PATCH_SIZE

PATCH_GRID = PATCH_SIZE  # the decoder's patches: where its grid and stamp would show
BT601 = (0.299, 0.587, 0.114)  # luma weights of R, G, B
MS_SSIM_MIN_SIDE = 160  # 11-pixel window after four halvings
LPIPS_ALEX_MIN_SIDE = 31  # AlexNet's stride-4 stem and three max-pools leave nothing below this


def _pair(reference: np.ndarray, distorted: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if reference.shape != distorted.shape or reference.ndim != 3 or reference.shape[2] != 3:
        raise InputError(f"images must both be HxWx3 of one size, got {reference.shape} and {distorted.shape}")
    to = lambda a: torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    return to(reference), to(distorted)


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - distorted.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ms_ssim(reference: np.ndarray, distorted: np.ndarray) -> float:
    """NaN for images with a side of 160 pixels or less: its five scales do not fit."""
    try:
        from pytorch_msssim import ms_ssim as _ms_ssim
    except ImportError:
        raise InputError('MS-SSIM needs pytorch-msssim: pip install "cod-lite[eval]"') from None

    a, b = _pair(reference, distorted)
    if min(a.shape[-2:]) <= MS_SSIM_MIN_SIDE:
        return math.nan
    return float(_ms_ssim(a, b, data_range=1.0, size_average=True))


@functools.lru_cache(maxsize=None)
def _network(name: str):  # noqa: ANN202 - a torch module or the Inception feature extractor
    from .perceptual import DISTS, LPIPS

    if name == "inception":
        from .perceptual.inception import InceptionFeatures

        return InceptionFeatures()
    return DISTS() if name == "dists" else LPIPS(net=name)


def preload(fid: bool = False) -> None:
    """Load the networks now, so a long evaluation fails at its start if weights are missing."""
    ms_ssim(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1, 3), np.uint8))  # pytorch-msssim installed?
    for name in ("alex", "vgg", "dists", *(("inception",) if fid else ())):
        _network(name)


@torch.inference_mode()
def lpips(reference: np.ndarray, distorted: np.ndarray, net: str = "alex") -> float:
    """NaN for LPIPS-Alex on images with a side under 31 pixels: AlexNet has no output there."""
    a, b = _pair(reference, distorted)
    if net == "alex" and min(a.shape[-2:]) < LPIPS_ALEX_MIN_SIDE:
        return math.nan
    return float(_network(net)(a * 2 - 1, b * 2 - 1)[0])


@torch.inference_mode()
def dists(reference: np.ndarray, distorted: np.ndarray) -> float:
    """The reference's VGG features are kept from the previous call with the same reference, so
    a benchmark that judges many decodings of one image runs VGG once per decoding, not twice."""
    a, b = _pair(reference, distorted)
    net = _network("dists")
    return float(net.compare(_reference_features(reference, a), net.features(b))[0])


_last_reference: list[tuple[bytes, list[torch.Tensor]]] = []  # at most one: (digest, DISTS features)


def _reference_features(reference: np.ndarray, tensor: torch.Tensor) -> list[torch.Tensor]:
    digest = hashlib.sha256(np.ascontiguousarray(reference).tobytes()).digest() + str(reference.shape).encode()
    if not _last_reference or _last_reference[0][0] != digest:
        _last_reference[:] = [(digest, _network("dists").features(tensor))]
    return _last_reference[0][1]


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an HxWx3 uint8 image, float64 in [0, 255]."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be HxWx3, got {image.shape}")
    return image.astype(np.float64) @ np.array(BT601)


def blockiness(image: np.ndarray, grid: int = PATCH_GRID) -> float:
    """How much the grid-cell borders stand out: the mean absolute luma step between adjacent
    pixels that straddle a border (columns grid*k-1 | grid*k, rows likewise) divided by the mean
    absolute step between adjacent pixels inside the cells, horizontal and vertical pairs pooled.

    About 1 for natural images (a border is just another place), > 1 when a decoder leaves a
    visible grid. Luma is BT.601 in [0, 255] (`luma`), the grid starts at the top-left pixel.
    NaN where it is undefined: no border pair (both sides <= grid), no inner pair, or a flat
    image (0 / 0); inf when only the borders have steps."""
    y = luma(image)
    border = inner = 0.0
    border_n = inner_n = 0
    for steps in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):  # pairs (j, j+1) along the last axis
        on_border = (np.arange(1, steps.shape[1] + 1) % grid) == 0
        border += float(steps[:, on_border].sum())
        inner += float(steps[:, ~on_border].sum())
        border_n += steps.shape[0] * int(on_border.sum())
        inner_n += steps.shape[0] * int((~on_border).sum())
    if border_n == 0 or inner_n == 0 or border == inner == 0:
        return math.nan
    return math.inf if inner == 0 else (border / border_n) / (inner / inner_n)


def patch_pattern(image: np.ndarray, grid: int = PATCH_GRID) -> float:
    """What repeats in every grid cell: the RMS, in luma grey levels, of the mean cell (over the
    whole cells from the top-left) less its own mean. Blockiness sees steps at cell borders; this
    sees a fixed texture inside every cell, such as the hatching a per-pixel head stamps into
    its 16x16 patches. About 1-2 for Kodak-size photos (the 24 originals 0.8-1.8; fewer cells
    average out less, so small images score higher); the bundled cod-lite-s-0.125 measured 4-12
    on Kodak images. NaN when there is no whole cell."""
    y = luma(image)
    rows, cols = y.shape[0] // grid, y.shape[1] // grid
    if rows == 0 or cols == 0:
        return math.nan
    cell = y[: rows * grid, : cols * grid].reshape(rows, grid, cols, grid).mean(axis=(0, 2))
    return float(np.sqrt(np.mean((cell - cell.mean()) ** 2)))


COLOUR_BLOCK = PATCH_SIZE  # side of the regions whose colours colour_error compares (one patch)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])


def box_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of every whole factor x factor block (float64, same channels); a remainder at the
    right/bottom edge is dropped, and an image smaller than one block is averaged whole."""
    height, width = image.shape[:2]
    rows, cols = height // factor, width // factor
    if rows == 0 or cols == 0:
        return image.reshape(1, 1, -1, *image.shape[2:]).astype(np.float64).mean(axis=2)
    cut = image[: rows * factor, : cols * factor]
    if image.dtype == np.uint8 and factor <= 256:  # exact integer sums, row blocks first (contiguous): the same means, 10x faster
        rows_summed = cut.reshape(rows, factor, -1).sum(axis=1, dtype=np.int32)
        return rows_summed.reshape(rows, cols, factor, *image.shape[2:]).sum(axis=2) / float(factor * factor)
    return cut.astype(np.float64).reshape(rows, factor, cols, factor, *image.shape[2:]).mean(axis=(1, 3))


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB values in [0, 255], any shape ending in 3."""
    c = np.asarray(rgb, dtype=np.float64) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (linear @ _SRGB_TO_XYZ.T) / _D65_WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def colour_error(reference: np.ndarray, distorted: np.ndarray, block: int = COLOUR_BLOCK) -> float:
    """Mean CIELAB ΔE*76 between the block x block region means of two images: how far the
    colours a person sees at a glance moved, blind to texture (a hatching or a smear inside a
    region changes nothing). Regions are averaged in sRGB values; ~1 is invisible, ~10 an obvious cast."""
    if reference.shape != distorted.shape or reference.ndim != 3 or reference.shape[2] != 3:
        raise InputError(f"images must both be HxWx3 of one size, got {reference.shape} and {distorted.shape}")
    return lab_distance(*(srgb_to_lab(box_downscale(x, block)) for x in (reference, distorted)))


def lab_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIELAB ΔE*76 between two arrays of Lab values (`colour_error` of region means)."""
    return float(np.sqrt(((a - b) ** 2).sum(-1)).mean())


def grid_artefacts(image: np.ndarray) -> dict[str, float]:
    """The 16-px grid's two numbers: blockiness (border steps) and pattern (repeated texture)."""
    return {"blockiness": blockiness(image), "pattern": patch_pattern(image)}


def all_metrics(reference: np.ndarray, distorted: np.ndarray) -> dict[str, float]:
    return {
        "psnr": psnr(reference, distorted),
        "ms_ssim": ms_ssim(reference, distorted),
        "lpips_alex": lpips(reference, distorted, "alex"),
        "lpips_vgg": lpips(reference, distorted, "vgg"),
        "dists": dists(reference, distorted),
        "colour": colour_error(reference, distorted),
    }


# -- set-level metrics ------------------------------------------------------------------------


def patches(image: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping size x size patches on two grids, offset 0 and size/2 (the protocol of
    HiFiC and the CoD papers), so patch borders of one grid are patch centres of the other."""
    height, width = image.shape[:2]
    out = []
    for offset in (0, size // 2):
        for top in range(offset, height - size + 1, size):
            for left in range(offset, width - size + 1, size):
                out.append(image[top : top + size, left : left + size])
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)


def inception_features(images: Sequence[np.ndarray], patch: int | None = 64) -> torch.Tensor:
    """Pool3 features of every patch of every image (of whole images if patch is None)."""
    from .perceptual.inception import FEATURES

    feats = []
    for image in images:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"images must be HxWx3 uint8, got {image.shape} {image.dtype}")
        batch = patches(image, patch) if patch else image[None]
        if len(batch):
            feats.append(_network("inception")(torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)))
    return torch.cat(feats) if feats else torch.zeros(0, FEATURES, dtype=torch.float64)


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets.

    tr sqrt(S1 S2) is computed as the sum of sqrt(eigenvalues) of the symmetric matrix
    sqrt(S1) S2 sqrt(S1), which has the same spectrum and needs only eigh (no scipy)."""
    if min(len(real), len(fake)) < 2:
        raise InputError("FID needs at least 2 samples per set")
    real, fake = real.double(), fake.double()
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = torch.cov(real.T), torch.cov(fake.T)
    vals, vecs = torch.linalg.eigh(s1)
    root1 = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp(min=0).sqrt().sum()
    value = float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * cross)
    return max(value, 0.0)  # rank-deficient covariances leave rounding noise around 0 for equal sets


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with the cubic kernel (x.y / D + 1)^3, averaged
    over random subsets (drawn without replacement, deterministic for a seed); (mean, std)."""
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise InputError("KID needs at least 2 samples per set")
    real, fake = real.double(), fake.double()
    dim = real.shape[1]
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(subsets):
        x = real[torch.from_numpy(rng.choice(len(real), m, replace=False))]
        y = fake[torch.from_numpy(rng.choice(len(fake), m, replace=False))]
        kxx, kyy, kxy = ((a @ b.T / dim + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off_diagonal = (kxx.sum() - kxx.trace() + kyy.sum() - kyy.trace()) / (m * (m - 1))
        scores.append(float(off_diagonal - 2 * kxy.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def patch_fid_kid(
    references: Sequence[np.ndarray] | torch.Tensor, distorted: Sequence[np.ndarray], patch: int = 64
) -> dict[str, float]:
    """FID and KID between the patches of two image sets (patch 64 for Kodak-size images).
    `references` may also be their `inception_features`, computed once for many comparisons."""
    real = references if isinstance(references, torch.Tensor) else inception_features(references, patch)
    fake = inception_features(distorted, patch)
    kid_mean, kid_std = kid(real, fake)
    return {"fid": fid(real, fake), "kid": kid_mean, "kid_std": kid_std, "patches": float(len(real))}
