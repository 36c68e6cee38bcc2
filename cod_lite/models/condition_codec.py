"""The condition codec: image -> VQ indices -> condition features at 1/16 resolution.

Module and attribute names follow the official checkpoints (`y_embedder.*`) so their
state dicts load without renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

WINDOW = 32  # attention window on the latent grid, as the reference uses at inference


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that normalises a channels_last CPU tensor in NCHW layout.

    torch's CPU channels_last GroupNorm loses precision with the image size (measured, torch 2.13:
    max error 6e-3 against float64 on N(0.3, 0.5) data at 1088x1920, and 2.7 on the default
    encoder's real activations, which moved 12 % of a 1920x1080 image's indices); the NCHW kernel
    stays within 1e-6. NCHW inputs (the exact path) run unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def group_norm(channels: int) -> nn.GroupNorm:
    return GroupNorm(32, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.nin_shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


WindowLayout = tuple[int, int, int, int, int]  # batch, grid height and width, window height and width


def to_windows(cells: torch.Tensor) -> tuple[torch.Tensor, WindowLayout]:
    """(B, H, W, C) cells -> (B * windows, cells per window, C) in raster order, and the layout
    `from_windows` needs. A grid of at most WINDOW x WINDOW is one window; a larger one is cut into
    WINDOW x WINDOW windows after padding the bottom/right by edge replication (padded cells take
    part as keys): the reference's inference behaviour. Channels last, so a window is contiguous rows."""
    b, height, width, c = cells.shape
    if height <= WINDOW and width <= WINDOW:
        wh, ww = height, width
    else:
        wh = ww = WINDOW
        hp, wp = math.ceil(height / WINDOW) * WINDOW, math.ceil(width / WINDOW) * WINDOW
        if hp > height:
            cells = cells[:, torch.arange(hp, device=cells.device).clamp_(max=height - 1)]
        if wp > width:
            cells = cells[:, :, torch.arange(wp, device=cells.device).clamp_(max=width - 1)]
    hp, wp = cells.shape[1:3]
    windows = cells.reshape(b, hp // wh, wh, wp // ww, ww, c).transpose(2, 3).reshape(-1, wh * ww, c)
    return windows, (b, height, width, wh, ww)


def from_windows(windows: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
    """The inverse of `to_windows`: (B * windows, cells per window, C) -> (B, H, W, C), padding dropped."""
    b, height, width, wh, ww = layout
    c = windows.shape[-1]
    rows, cols = math.ceil(height / wh), math.ceil(width / ww)
    grid = windows.reshape(b, rows, cols, wh, ww, c).transpose(2, 3).reshape(b, rows * wh, cols * ww, c)
    return grid[:, :height, :width]


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Single-head attention over (N, L, C). The explicit head axis matters: with 3-D inputs
    torch's CPU dispatch falls back to the math kernel, which materialises every L x L score
    matrix at once (measured 2.4 GB vs 129 MB for 256 windows of 1024 cells)."""
    return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]


class AttnBlock(nn.Module):
    """Single-head spatial self-attention, in 32x32 windows on grids larger than one window
    (`to_windows`: the reference's inference behaviour). We use it in training too, so models see
    one attention pattern; the fast path (kernels/fast.py) cuts the same windows."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        if torch.compiler.is_exporting():  # ONNX: one graph for every size (see `exportable_attention`)
            return x + self.proj_out(exportable_attention(*(proj(h).permute(0, 2, 3, 1) for proj in (self.q, self.k, self.v))))
        (q, layout), (k, _), (v, _) = (to_windows(proj(h).permute(0, 2, 3, 1)) for proj in (self.q, self.k, self.v))
        out = from_windows(_attend(q, k, v), layout).permute(0, 3, 1, 2)
        return x + self.proj_out(out)


def exportable_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """`to_windows` attention without a branch on the grid's size, for graphs that must serve
    every size (ONNX export): the grid is always edge-padded to whole WINDOW x WINDOW windows,
    and where it fits in one window the padded cells are masked out as keys, which is the same
    attention as one window of the grid's own size (exp(-inf) = 0). (B, H, W, C) q, k, v ->
    (B, C, H, W)."""
    b, height, width, c = q.shape
    # (n + WINDOW - 1) // WINDOW, not -(-n // WINDOW): ONNX's integer Div truncates towards zero
    rows = torch.arange((height + WINDOW - 1) // WINDOW * WINDOW, device=q.device)
    cols = torch.arange((width + WINDOW - 1) // WINDOW * WINDOW, device=q.device)

    def windows(cells: torch.Tensor) -> torch.Tensor:
        cells = cells[:, rows.clamp(max=height - 1)][:, :, cols.clamp(max=width - 1)]
        return cells.reshape(b, -1, WINDOW, cells.shape[2] // WINDOW, WINDOW, c).transpose(2, 3).reshape(-1, WINDOW * WINDOW, c)

    one_window = (rows.max() < WINDOW) & (cols.max() < WINDOW)  # tensors, not Python ints: no branch in the graph
    padding = (rows[:, None] >= height) | (cols[None, :] >= width)
    padding = padding.reshape(-1, WINDOW, cols.shape[0] // WINDOW, WINDOW).transpose(1, 2).reshape(-1, WINDOW * WINDOW)
    keep = ~(padding & one_window).repeat(b, 1)[:, None, None, :]  # (windows, 1, 1, keys)
    out = F.scaled_dot_product_attention(windows(q)[:, None], windows(k)[:, None], windows(v)[:, None], attn_mask=keep)[:, 0]
    grid = out.reshape(b, rows.shape[0] // WINDOW, cols.shape[0] // WINDOW, WINDOW, WINDOW, c).transpose(2, 3)
    return grid.reshape(b, rows.shape[0], cols.shape[0], c)[:, :height, :width].permute(0, 3, 1, 2)


class Downsample(nn.Module):
    """Zero-pad one row/column at the bottom/right, then a 3x3 stride-2 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Encoder(nn.Module):
    """Five levels (x1, x1, x2, x2, x4 the width); the input conv and the first
    log2(ds) - 1 levels each halve the resolution; the last level adds attention."""

    MULT = (1, 1, 2, 2, 4)

    def __init__(self, ds: int, channels: int, out_channels: int) -> None:
        super().__init__()
        n_down = int(math.log2(ds)) - 1
        self.conv_in = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        widths = [channels * m for m in self.MULT]
        prev = channels
        for level, width in enumerate(widths):
            if level < len(widths) - 1:
                layers = [ResnetBlock(prev, width), ResnetBlock(width)]
                layers.append(Downsample(width) if level < n_down else nn.Identity())
            else:
                layers = [ResnetBlock(prev, width), AttnBlock(width), ResnetBlock(width), AttnBlock(width)]
            setattr(self, f"down_block_{level}", nn.Sequential(*layers))
            prev = width
        self.mid_block = nn.Sequential(ResnetBlock(prev), AttnBlock(prev), ResnetBlock(prev))
        self.norm_out = group_norm(prev)
        self.conv_out = nn.Conv2d(prev, out_channels, 3, padding=1)
        self.levels = len(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in range(self.levels):
            h = getattr(self, f"down_block_{level}")(h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Upsample2x(nn.Module):
    """Nearest-neighbour 2x, then a ResNet block (ds 32 only: brings 1/32 to 1/16)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = ResnetBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Decoder(nn.Module):
    """Codeword map at 1/ds -> condition features at 1/16 (the 'light' variant)."""

    def __init__(self, ds: int, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.block = nn.Sequential(
            ResnetBlock(hidden), AttnBlock(hidden), ResnetBlock(hidden), AttnBlock(hidden), ResnetBlock(hidden)
        )
        self.norm_out = group_norm(hidden)
        if ds == 4:
            self.conv_out = nn.Sequential(
                nn.Conv2d(hidden, hidden, 3, stride=2, padding=1),
                ResnetBlock(hidden),
                nn.Conv2d(hidden, hidden, 3, stride=2, padding=1),
            )
        else:
            self.conv_out = nn.Conv2d(hidden, hidden, 3, stride=2 if ds == 8 else 1, padding=1)
        self.ada = Upsample2x(hidden) if ds == 32 else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.block(self.conv_in(z))
        h = self.conv_out(F.silu(self.norm_out(h)))
        return self.ada(h) if self.ada is not None else h


class VectorQuantizer(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(size, dim)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codeword by squared distance |z|^2 + |e|^2 - 2 z.e; ties go to the lowest index."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        e = self.embedding.weight
        dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
        return dist.argmin(1).reshape(b, h, w)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int -> (B, dim, h, w)."""
        return self.embedding(indices).permute(0, 3, 1, 2)


class ConditionCodec(nn.Module):
    def __init__(self, ds: int, encoder_channels: int, codebook_size: int, codebook_dim: int, hidden: int) -> None:
        super().__init__()
        self.encoder = Encoder(ds, encoder_channels, codebook_dim)
        self.bottleneck = VectorQuantizer(codebook_size, codebook_dim)
        self.decoder = Decoder(ds, codebook_dim, hidden)

    def quantize(self, image01: torch.Tensor) -> torch.Tensor:
        """Image in [0, 1], (B, 3, H, W) -> indices (B, H/ds, W/ds)."""
        return self.bottleneck.indices(self.encoder(image01))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.bottleneck.lookup(indices))
