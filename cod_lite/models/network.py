"""The CoD-Lite network: condition codec + one-step convolutional denoiser (DConv).

Attribute names match the official checkpoints' keys after their `net.` prefix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .condition_codec import ConditionCodec
from .config import ModelConfig

TIME_FEATURES = 256
DCT_FREQS = 8


def channel_layer_norm(x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over channels of an NCHW map, no affine, eps 1e-6."""
    return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], eps=1e-6).permute(0, 3, 1, 2)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(TIME_FEATURES, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = TIME_FEATURES // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class DiCoBlock(nn.Module):
    """Conv DiT block: modulated LN -> 1x1 -> depthwise 3x3 -> GELU -> channel attention -> 1x1,
    then a modulated 4x 1x1 MLP; both branches gated (adaLN-Zero style)."""

    def __init__(self, hidden: int, mlp_ratio: float) -> None:
        super().__init__()
        inner = int(hidden * mlp_ratio)
        self.conv1 = nn.Conv2d(hidden, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.conv3 = nn.Conv2d(hidden, hidden, 1)
        self.ca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden, hidden, 1))
        self.conv4 = nn.Conv2d(hidden, inner, 1)
        self.conv5 = nn.Conv2d(inner, hidden, 1)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation[:, :, None, None].chunk(6, dim=1)
        h = channel_layer_norm(x) * (1 + scale1) + shift1
        h = F.gelu(self.conv2(self.conv1(h)))
        h = self.conv3(h * torch.sigmoid(self.ca(h)))
        x = x + gate1 * h
        h = channel_layer_norm(x) * (1 + scale2) + shift2
        return x + gate2 * self.conv5(F.gelu(self.conv4(h)))


class PatchEmbedder(nn.Module):
    """Patch-level input of the DiCo trunk: [16x16 patch projection of the noisy image, condition]."""

    def __init__(self, hidden: int, patch: int) -> None:
        super().__init__()
        self.proj1 = nn.Conv2d(3, 128, patch, stride=patch, bias=False)
        self.proj2 = nn.Conv2d(128 + hidden, hidden, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.proj2(torch.cat([self.proj1(x), cond], dim=1))


def dct_features(patch: int, device: torch.device | None = None) -> torch.Tensor:
    """(patch*patch, 64) cosine features per pixel; feature index = fx * 8 + fy.

    Frequencies are linspace(0, 8, 8) (not 0..7) weighted by 1 / (1 + fx*fy), positions
    linspace(0, 1, patch), as in the official models.
    """
    pos = torch.linspace(0, 1, patch, device=device)
    freqs = torch.linspace(0, DCT_FREQS, DCT_FREQS, device=device)
    y, x = torch.meshgrid(pos, pos, indexing="ij")  # pixel p = row * patch + col
    fx, fy = freqs[:, None], freqs[None, :]
    cx = torch.cos(math.pi * x.reshape(-1, 1, 1) * fx)  # (P, 8, 1)
    cy = torch.cos(math.pi * y.reshape(-1, 1, 1) * fy)  # (P, 1, 8)
    return (cx * cy / (1 + fx * fy)).reshape(patch * patch, DCT_FREQS * DCT_FREQS)


class PixelEmbedder(nn.Module):
    def __init__(self, hidden_x: int) -> None:
        super().__init__()
        self.embedder = nn.Sequential(nn.Linear(3 + hidden_x + DCT_FREQS**2, hidden_x))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.embedder(features)


class PixelResBlock(nn.Module):
    """Per-pixel MLP block modulated (shift, scale, gate) by the pixel's condition."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_ln = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 3 * channels))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(cond).chunk(3, dim=-1)
        return x + gate * self.mlp(self.in_ln(x) * (1 + scale) + shift)


class PixelHead(nn.Module):
    """The per-pixel MLP over 16x16 patches, conditioned on the DiCo trunk's patch features."""

    def __init__(self, hidden: int, hidden_x: int, patch: int, depth: int) -> None:
        super().__init__()
        self.hidden_x = hidden_x
        self.pixels = patch * patch
        self.cond_embed = nn.Linear(hidden, self.pixels * hidden_x)
        self.input_proj = nn.Linear(hidden_x, hidden_x)
        self.res_blocks = nn.ModuleList(PixelResBlock(hidden_x) for _ in range(depth))

    def forward(self, x: torch.Tensor, trunk: torch.Tensor) -> torch.Tensor:
        """x: (B, h, w, P, hidden_x) pixel features; trunk: (B, hidden, h, w)."""
        b, h, w = x.shape[:3]
        cond = self.cond_embed(trunk.permute(0, 2, 3, 1)).reshape(b, h, w, self.pixels, self.hidden_x)
        x = self.input_proj(x)
        for block in self.res_blocks:
            x = block(x, cond)
        return x


class RMSNorm(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.to(x.dtype) * self.weight


class FinalLayer(nn.Module):
    def __init__(self, hidden_x: int) -> None:
        super().__init__()
        self.norm = RMSNorm(hidden_x)
        self.linear = nn.Linear(hidden_x, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class SeamRefiner(nn.Module):
    """A residual 2-layer conv over the finished image, for our own models only.

    The pixel head decodes every 16x16 patch from that patch's features alone, so nothing ties
    neighbouring patches together and their borders show as a grid. This filter sees across
    borders (radius 5 px) and knows where they are (the pixel's phase in its patch as cos/sin
    channels). It works on 2x2 pixel-unshuffled cells to stay cheap, and its last conv starts
    at zero, so adding it to a trained model changes nothing until it is trained.
    """

    RADIUS = 5  # pixels each side that an output pixel depends on (tiled decoding needs a halo this wide)

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(12 + 4, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 12, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cells = F.pixel_unshuffle(x, 2)
        b, _, h, w = cells.shape
        ay, ax = _patch_phase(h, x)[:, None].expand(h, w), _patch_phase(w, x)[None, :].expand(h, w)
        phase = torch.stack([ay.cos(), ay.sin(), ax.cos(), ax.sin()]).expand(b, 4, h, w)
        hidden = F.gelu(self.conv1(torch.cat([cells, phase], dim=1)))
        return x + F.pixel_shuffle(self.conv2(hidden), 2)


def _patch_phase(cells: int, like: torch.Tensor) -> torch.Tensor:
    """Angle of each 2-px cell within its 16-px patch (8 cells per turn), from the image origin."""
    return 2 * math.pi / 8 * torch.arange(cells, device=like.device, dtype=like.dtype)


class CodLiteNet(nn.Module):
    """Condition codec (`y_embedder`) + one-step pixel-space denoiser.

    `denoise(x_t, t, cond)` predicts the clean image in [-1, 1] (pred = x). In the official
    inference the noise level is 0, so x_t is zero and t is 0: the output depends on `cond`
    only, and the adaLN modulation of t = 0 is computed once and cached (see `reconstruct`).
    """

    INDEX_PATH = ("y_embedder.encoder.", "y_embedder.bottleneck.")  # the tensors that decide the indices

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.patch = c.patch_size
        self.y_embedder = ConditionCodec(c.ds, c.encoder_channels, c.codebook_size, c.codebook_dim, c.hidden_size)
        self.t_embedder = TimestepEmbedder(c.hidden_size)
        self.y_embedder_x = nn.Conv2d(c.hidden_size, c.hidden_size_x * c.patch_size**2, 1)
        self.x_embedder = PixelEmbedder(c.hidden_size_x)
        self.s_embedder = PatchEmbedder(c.hidden_size, c.patch_size)
        self.blocks = nn.ModuleList(DiCoBlock(c.hidden_size, c.mlp_ratio) for _ in range(c.num_cond_blocks))
        self.dec_net = PixelHead(c.hidden_size, c.hidden_size_x, c.patch_size, c.num_blocks - c.num_cond_blocks)
        self.final_layer = FinalLayer(c.hidden_size_x)
        self.refine = SeamRefiner(c.refine_channels) if c.refine_channels else None
        self.register_buffer("dct", dct_features(c.patch_size), persistent=False)
        self.register_buffer("t0_modulation", None, persistent=False)

    # -- cached t = 0 modulation --------------------------------------------------------
    def train(self, mode: bool = True) -> "CodLiteNet":
        self.t0_modulation = None  # weights may change while training: recompute when next needed
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.t0_modulation = None
        super()._load_from_state_dict(*args, **kwargs)

    def modulation(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) times -> (num_blocks, B, 6*hidden) adaLN parameters of every DiCo block."""
        c = self.t_embedder(t)
        if not self.blocks:
            return c.new_zeros(0, c.shape[0], 6 * self.config.hidden_size)
        return torch.stack([blk.adaLN_modulation(c) for blk in self.blocks])

    def _t0_modulation(self) -> torch.Tensor:
        if self.t0_modulation is None or self.training:
            device = self.y_embedder_x.weight.device
            mod = self.modulation(torch.zeros(1, device=device))
            if self.training:
                return mod
            self.t0_modulation = mod.detach()
        return self.t0_modulation

    # -- forward ---------------------------------------------------------------------------
    def denoise(self, x_t: torch.Tensor, t: torch.Tensor | None, cond: torch.Tensor) -> torch.Tensor:
        """x_t: (B, 3, H, W) noisy image in [-1, 1]; t: (B,) or None for t = 0; cond: (B, hidden, H/16, W/16)."""
        height, width = x_t.shape[-2:]
        if cond.shape[-2:] != (height // self.patch, width // self.patch):
            raise ValueError(f"condition grid {tuple(cond.shape[-2:])} does not match image {height}x{width}")
        return self.refined(self.head(x_t, cond, self.trunk(x_t, t, cond)))

    def refined(self, image: torch.Tensor) -> torch.Tensor:
        """The head's image through the seam refiner, if the model has one (see `SeamRefiner`)."""
        return image if self.refine is None else self.refine(image)

    def trunk(self, x_t: torch.Tensor, t: torch.Tensor | None, cond: torch.Tensor) -> torch.Tensor:
        """The DiCo blocks over the patch grid -> (B, hidden, H/16, W/16): the only part of
        `denoise` that looks beyond a patch, so tiled decoding runs it once, untiled."""
        mod = self._t0_modulation() if t is None else self.modulation(t)
        s = self.s_embedder(x_t, cond)
        for i, block in enumerate(self.blocks):
            s = block(s, mod[i])
        return s

    def zero_image_embedding(self, cond: torch.Tensor) -> torch.Tensor:
        """`s_embedder` at x_t = 0: the zero image's patch projection vanishes (proj1 has no
        bias), so only proj2's condition columns remain. What the fast paths start from."""
        proj2 = self.s_embedder.proj2
        return F.conv2d(cond, proj2.weight[:, self.s_embedder.proj1.out_channels :], proj2.bias)

    def trunk_at_zero(self, cond: torch.Tensor, modulation: torch.Tensor | None = None) -> torch.Tensor:
        """`trunk` at t = 0 with x_t = 0 (the one-step decode), from `zero_image_embedding`;
        `modulation` defaults to the cached t = 0 one."""
        s = self.zero_image_embedding(cond)
        for block, mod in zip(self.blocks, self._t0_modulation() if modulation is None else modulation):
            s = block(s, mod)
        return s

    def decode_codewords(self, codewords: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        """The one-step t = 0 decode from codeword vectors (B, D, h, w) rather than indices, with an
        explicit t = 0 `modulation`: what a graph export (a constant of the graph) and the
        encoder's gradient search (straight-through codewords) run."""
        cond = self.y_embedder.decoder(codewords)
        b, _, h, w = cond.shape
        x_t = cond.new_zeros(b, 3, h * self.patch, w * self.patch)
        return self.refined(self.head(x_t, cond, self.trunk_at_zero(cond, modulation)))

    def head(self, x_t: torch.Tensor, cond: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The per-pixel MLP of every 16x16 patch, given the trunk's output `s`: patch-local, so
        any patch-aligned tile of (x_t, cond, s) gives exactly that tile of the image (before
        `refined`, which needs a halo of `SeamRefiner.RADIUS` pixels)."""
        b, _, height, width = x_t.shape
        p = self.patch
        h, w = height // p, width // p
        hx, pixels = self.config.hidden_size_x, p * p
        cond_x = self.y_embedder_x(cond).reshape(b, hx, pixels, h, w).permute(0, 3, 4, 2, 1)
        x_pix = x_t.reshape(b, 3, h, p, w, p).permute(0, 2, 4, 3, 5, 1).reshape(b, h, w, pixels, 3)
        dct = self.dct.to(cond_x.dtype).expand(b, h, w, pixels, -1)
        x = self.x_embedder(torch.cat([x_pix, cond_x, dct], dim=-1))
        x = self.final_layer(self.dec_net(x, s))
        return x.reshape(b, h, w, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(b, 3, height, width)

    def quantize(self, image01: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) image in [0, 1], sides multiples of `config.size_unit` -> (B, H/ds, W/ds) indices."""
        return self.y_embedder.quantize(image01)

    def reconstruct(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, 3, h*ds, w*ds) image in [-1, 1] (not clamped), noise level 0."""
        cond = self.y_embedder.decode(indices)
        b = indices.shape[0]
        ds = self.config.ds
        x_t = cond.new_zeros(b, 3, indices.shape[1] * ds, indices.shape[2] * ds)
        return self.denoise(x_t, None, cond)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] NCHW -> uint8 NHWC with the reference's round-half-up rule."""
    return ((x + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
