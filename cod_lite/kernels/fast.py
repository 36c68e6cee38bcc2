"""The fast inference path (`precision="auto"` / `"bf16"`), plain torch, CPU or CUDA.

    fast = FastPath(net, torch.bfloat16, torch.bfloat16)   # or torch.float32: the same path in fp32
    indices = fast.quantize(image01)     # as net.quantize; the VQ distances stay fp32
    image = fast.reconstruct(indices)    # as net.reconstruct, returned in fp32

In bf16, the convolutions, attention and GEMMs run under autocast; in fp32 (what `auto` decodes
with where bf16 is not native) nothing is cast and only the restructuring below applies. The pixel head, which was most
of the decode time, is restructured for the t = 0 pass (x_t = 0), where most of it is linear:

- the zero image's pixels drop out, and `y_embedder_x`, the condition/DCT columns of
  `x_embedder` and `input_proj` compose into one (hidden -> 256 * hx) GEMM per patch plus a
  per-pixel constant; nothing of the 83-wide concatenated feature tensor is ever built;
- the SiLU of the per-pixel condition is computed once for every PixelResBlock, the `1 +` of
  each adaLN scale is folded into its bias, RMSNorm's weight into the final linear layer;
- it runs over chunks of patches, so the per-pixel activations stay in cache.

The encoder's and the condition decoder's blocks run as twins sharing their weights
(`_with_fast_blocks`): attention in channels-last order (one q/k/v GEMM on (B, H, W, C) cells,
windows cut as contiguous rows, since the NCHW window permute was a slow strided copy; in bf16
on CPUs two plain GEMMs per window with the softmax between them, as torch's CPU flash kernel
was no faster in bf16 than in fp32; `scaled_dot_product_attention` in fp32 and on CUDA), and
ResNet blocks with in-place SiLU and residual add.

In fp32 the fused head equals `CodLiteNet.head` up to summation order (max 6e-7 measured on the
default model), and the twin blocks equal theirs (1e-5 in the tests); in bf16 the path is judged
by the quality guarantee (docs/performance.md). The whole path is an alternative to the exact
one, never used by `precision="fp32"`.
"""

from __future__ import annotations

import contextlib
import copy
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models.condition_codec import AttnBlock, ResnetBlock, from_windows, to_windows
from ..models.network import CodLiteNet, to_uint8

PRECISIONS = ("auto", "fp32", "bf16", "triton")  # triton: the fused kernels of cod_lite.kernels (Codec)
# Phases that "auto" runs in bf16 where the device has native bf16: those that passed the
# quality guarantee on every bundled model (benchmarks/precision.py, docs/performance.md).
AUTO_BF16_PHASES = frozenset({"encode", "decode"})

# Patches per chunk of the pixel head. Measured on the default model at 768x512, one thread,
# bf16: 16 patches 1.02 s, 64 0.75 s, 256 0.54 s; larger chunks stop fitting in cache.
HEAD_CHUNK = 256


def _region_sample(patch: int = 16) -> torch.Tensor:
    """One pixel of every 2x2 cell of a patch, its place alternating from cell to cell (a
    quincunx-like pattern, so 1-px stripes and checkerboards average out): 64 of 256 pixels.
    On Kodak (default model's head) region colours fitted on it were as good as on all pixels
    (3.18 vs 3.21 dE76 after correction; a regular 4x4 sample: 3.30)."""
    ys, xs = torch.meshgrid(torch.arange(0, patch, 2), torch.arange(0, patch, 2), indexing="ij")
    rows, cols = ys + (xs // 2) % 2, xs + (ys // 2) % 2
    return (rows * patch + cols).reshape(-1)


REGION_SAMPLE = _region_sample()


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 avx512_bf16 or AMX, as Linux reports them in
    /proc/cpuinfo) and torch's oneDNN can use it. Elsewhere bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags)) and torch.backends.mkldnn.is_available()


def device_has_native_bf16(device: torch.device) -> bool:
    """CUDA: bf16-capable GPUs (compute capability 8.0 and up); CPU: `cpu_has_native_bf16`."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def phase_dtypes(precision: str, device: torch.device) -> tuple[torch.dtype | None, torch.dtype | None]:
    """(encode, decode) dtype of the fast path for a precision on a device; None is the exact
    eager fp32 network.

    "fp32": exact everywhere. "bf16": bf16 for both phases, even where it is emulated (slow).
    "auto": bf16 for the phases in AUTO_BF16_PHASES on devices with native bf16; elsewhere the
    exact encoder and the fast decoder in fp32 (its fused pixel head: equal to the exact network
    up to summation order, and faster).
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision '{precision}'; use one of {', '.join(PRECISIONS)}")
    if precision in ("fp32", "triton"):  # triton: the kernels' own fp32 path, not this one
        return None, None
    if precision == "bf16":
        return torch.bfloat16, torch.bfloat16
    native = device_has_native_bf16(device)
    if not native:
        return None, torch.float32
    return tuple(torch.bfloat16 if phase in AUTO_BF16_PHASES else torch.float32 for phase in ("encode", "decode"))  # type: ignore[return-value]


def precision_label(encode_dtype: torch.dtype | None, decode_dtype: torch.dtype | None) -> str:
    """How `phase_dtypes`' answer reads: "fp32" (the exact network), "fp32 fast" (the fast path,
    no cast), "bf16", or per phase, e.g. "encode fp32, decode fp32 fast"."""
    labels = {None: "fp32", torch.float32: "fp32 fast", torch.bfloat16: "bf16"}
    names = [labels[d] for d in (encode_dtype, decode_dtype)]
    return names[0] if names[0] == names[1] else f"encode {names[0]}, decode {names[1]}"


class FastPath:
    """`quantize` / `reconstruct` of one network (the network is not changed).

    `encode_dtype` / `decode_dtype` are the dtypes of the two phases (bf16: autocast; fp32: no
    cast); None runs that phase as the exact eager fp32 network.
    """

    def __init__(self, net: CodLiteNet, encode_dtype: torch.dtype | None, decode_dtype: torch.dtype | None) -> None:
        self.net = net
        self.encode_dtype = encode_dtype
        self.decode_dtype = decode_dtype
        self.device_type = net.y_embedder_x.weight.device.type
        self._head: _FusedHead | None = None
        # the twins copy the attention weights (q/k/v fused): only for phases that run fast
        self._encoder = None if encode_dtype is None else _with_fast_blocks(net.y_embedder.encoder)
        self._cond_decoder = None if decode_dtype is None else _with_fast_blocks(net.y_embedder.decoder)

    def _autocast(self, dtype: torch.dtype) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if dtype == torch.float32 else torch.autocast(self.device_type, dtype=dtype)

    def quantize(self, image01: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, H/ds, W/ds) indices: the encoder under autocast, the
        nearest codeword chosen in fp32 from the encoder's output. (channels_last input was
        dropped: torch's CPU channels_last GroupNorm drifted with the image size, and with
        `GroupNorm`'s NCHW detour the encoder ran slower than without channels_last.)"""
        if self.encode_dtype is None:
            return self.net.quantize(image01)
        return self.net.y_embedder.bottleneck.indices(self.latent(image01))

    def latent(self, image01: torch.Tensor) -> torch.Tensor:
        """The encoder's output (B, D, H/ds, W/ds) in fp32: what the VQ sees."""
        if self.encode_dtype is None:
            return self.net.y_embedder.encoder(image01)
        with self._autocast(self.encode_dtype):
            z = self._encoder(image01)
        return z.float().contiguous()

    def reconstruct(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, 3, h*ds, w*ds) fp32 image in [-1, 1] (not clamped)."""
        if self.decode_dtype is None:
            return self.net.reconstruct(indices)
        image = self._head_of(indices)  # explicit dtypes: autocast would run its LayerNorms in fp32
        with self._autocast(self.decode_dtype):
            return self.net.refined(image).float()

    def region_means(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, H/16, W/16, 3) float64 means of each 16x16 patch of the 8-bit
        decoding, estimated from REGION_SAMPLE's pixels of the pixel head (a quarter of its work):
        what the colour side information is fitted on (`cod_lite.colour`). Only for networks
        without a seam refiner, whose output pixels are the head's (the refiner moves region
        colours: skipping it costs 1 dE76 on Kodak with the default model)."""
        if self.decode_dtype is None or self.net.refine is not None:
            raise ValueError("region means are estimated by the fast path of a network without a seam refiner")
        pixels = self._head_of(indices, REGION_SAMPLE.to(indices.device)).float()  # (B, h, w, n, 3)
        b, h, w, n, _ = pixels.shape
        levels = to_uint8(pixels.reshape(b, h * w * n, 3).permute(0, 2, 1)[..., None])  # (B, h*w*n, 1, 3)
        return levels.reshape(b, h, w, n, 3).double().mean(3)

    def _head_of(self, indices: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """The fused pixel head's output for `indices` (see `_FusedHead`), before the refiner."""
        net = self.net
        modulation = net._t0_modulation()  # fp32, cached outside autocast: the exact path shares it
        if self._head is None:
            self._head = _FusedHead(net, self.decode_dtype)
        with self._autocast(self.decode_dtype):
            cond = self._cond_decoder(net.y_embedder.bottleneck.lookup(indices))
            trunk = net.trunk_at_zero(cond, modulation)
        return self._head(cond, trunk, positions)


def _with_fast_blocks(module: torch.nn.Module) -> torch.nn.Module:
    """A shallow twin of `module` (the same parameters) whose AttnBlocks are `_FastAttention`
    and whose ResnetBlocks are `_FastResnetBlock`."""
    if isinstance(module, AttnBlock):
        return _FastAttention(module)
    if isinstance(module, ResnetBlock):
        return _FastResnetBlock(module)
    twin = copy.copy(module)
    twin._modules = {name: _with_fast_blocks(child) for name, child in module._modules.items()}
    return twin


class _FastResnetBlock(torch.nn.Module):
    """`ResnetBlock` with its SiLUs and residual add in place on fresh tensors (no allocation)."""

    def __init__(self, block: ResnetBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        h = b.conv1(F.silu(b.norm1(x), inplace=True))
        h = b.conv2(F.silu(b.norm2(h), inplace=True))
        x = x if b.nin_shortcut is None else b.nin_shortcut(x)
        return h.add_(x) if torch.result_type(h, x) == h.dtype else h + x


class _FastAttention(torch.nn.Module):
    """`AttnBlock` in channels-last order (see the module docstring); the same function."""

    def __init__(self, block: AttnBlock) -> None:
        super().__init__()
        self.norm = block.norm
        c = block.q.out_channels
        with torch.no_grad():
            self.qkv_w = torch.cat([block.q.weight, block.k.weight * c**-0.5, block.v.weight]).flatten(1)
            self.qkv_b = torch.cat([block.q.bias, block.k.bias * c**-0.5, block.v.bias])
            self.out_w, self.out_b = block.proj_out.weight.detach().flatten(1), block.proj_out.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        cells = self.norm(x).permute(0, 2, 3, 1).reshape(-1, c)  # one transposing copy, then a plain GEMM
        qkv = F.linear(cells, self.qkv_w, self.qkv_b).reshape(b, height, width, 3 * c)
        windows, layout = to_windows(qkv)
        q, k, v = windows.split(c, dim=-1)
        if x.device.type == "cuda" or q.dtype == torch.float32:  # in fp32 torch's CPU flash kernel is the faster
            out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[:, 0]
        else:  # window by window: one window's scores (2 MB in bf16) stay in cache, 1.7x faster than all at once
            out = torch.empty_like(q)
            for i in range(q.shape[0]):
                out[i] = torch.softmax(q[i] @ k[i].t(), -1) @ v[i]
        out = from_windows(out, layout)
        out = F.linear(out.reshape(-1, c), self.out_w, self.out_b).reshape(b, height, width, c)
        return x + out.permute(0, 3, 1, 2)


class _FusedHead:
    """`CodLiteNet.head` at x_t = 0 with its linear parts composed (see the module docstring)."""

    def __init__(self, net: CodLiteNet, dtype: torch.dtype) -> None:
        hx, pixels = net.config.hidden_size_x, net.patch**2
        self.hx, self.patch, self.pixels = hx, net.patch, pixels
        with torch.no_grad():
            w_y = net.y_embedder_x.weight.flatten(1).reshape(hx, pixels, -1)  # channel k * pixels + p
            b_y = net.y_embedder_x.bias.reshape(hx, pixels)
            embed = net.x_embedder.embedder[0]
            w_cond, w_dct = embed.weight[:, 3 : 3 + hx], embed.weight[:, 3 + hx :]  # inputs: [x_pix, cond_x, dct]
            proj = net.dec_net.input_proj
            m = proj.weight @ w_cond  # input_proj after x_embedder's condition columns
            weight = torch.einsum("ik,kpc->pic", m, w_y).reshape(pixels * hx, -1)
            bias = b_y.t() @ m.t() + (net.dct @ w_dct.t() + embed.bias) @ proj.weight.t() + proj.bias
            blocks = net.dec_net.res_blocks
            final = net.final_layer
            tensors = {
                "weight": weight,
                "bias": bias.reshape(-1),
                "cond_w": net.dec_net.cond_embed.weight,
                "cond_b": net.dec_net.cond_embed.bias,
                "out_w": final.linear.weight * final.norm.weight[None],
                "out_b": final.linear.bias,
            }
            self.t = {k: None if v is None else v.detach().to(dtype).contiguous() for k, v in tensors.items()}
            self.blocks = [
                tuple(p.detach().to(dtype) for p in (b.in_ln.weight, b.in_ln.bias, b.mlp[0].weight, b.mlp[0].bias, b.mlp[2].weight, b.mlp[2].bias))
                for b in blocks
            ]
            self.modulation = []  # per block: (weight, bias) of shift, of 1 + scale, of gate
            for b in blocks:
                w, bias_ = (p.detach().chunk(3, dim=0) for p in (b.adaLN_modulation[1].weight, b.adaLN_modulation[1].bias))
                pairs = ((w[0], bias_[0]), (w[1], bias_[1] + 1), (w[2], bias_[2]))
                self.modulation.append(tuple((pw.to(dtype).contiguous(), pb.to(dtype)) for pw, pb in pairs))
        self.eps, self.rms_eps = 1e-6, final.norm.eps
        self.dtype = dtype

    def _at(self, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-pixel tensors' rows of these pixels of a patch (row-major indices)."""
        rows = (positions[:, None] * self.hx + torch.arange(self.hx, device=positions.device)).reshape(-1)
        return {**self.t, **{k: self.t[k][rows] for k in ("weight", "bias", "cond_w", "cond_b")}}

    def __call__(self, cond: torch.Tensor, trunk: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """cond, trunk: (B, hidden, h, w) -> (B, 3, 16h, 16w) image in the head's dtype; with
        `positions` (pixel indices within a patch), only those pixels: (B, h, w, len, 3). The
        head is per pixel, so they are exactly the whole image's."""
        b, _, h, w = cond.shape
        hx, p = self.hx, self.patch
        t = self.t if positions is None else self._at(positions)
        pixels = self.pixels if positions is None else len(positions)
        cells = cond.permute(0, 2, 3, 1).reshape(b * h * w, -1).to(self.dtype)
        trunk_cells = trunk.permute(0, 2, 3, 1).reshape(b * h * w, -1).to(self.dtype)
        out = torch.empty(b * h * w, pixels, 3, dtype=self.dtype, device=cond.device)
        for start in range(0, b * h * w, HEAD_CHUNK):
            rows = slice(start, start + HEAD_CHUNK)
            x = F.linear(cells[rows], t["weight"], t["bias"]).reshape(-1, hx)
            if self.blocks:
                cond_pix = F.silu(F.linear(trunk_cells[rows], t["cond_w"], t["cond_b"]).reshape(-1, hx))
            for (ln_w, ln_b, w0, b0, w2, b2), (shift, scale, gate) in zip(self.blocks, self.modulation):
                # one GEMM each keeps shift/scale/gate contiguous: strided slices made the
                # elementwise ops several times slower
                shift, scale1, gate = (F.linear(cond_pix, *wb) for wb in (shift, scale, gate))
                h_in = torch.addcmul(shift, F.layer_norm(x, (hx,), ln_w, ln_b, self.eps), scale1)
                x = torch.addcmul(x, gate, F.linear(F.silu(F.linear(h_in, w0, b0)), w2, b2))
            xf = x.float()
            xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.rms_eps)
            out[rows] = F.linear(xf.to(self.dtype), t["out_w"], t["out_b"]).reshape(-1, pixels, 3)
        if positions is not None:
            return out.reshape(b, h, w, pixels, 3)
        return out.reshape(b, h, w, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(b, 3, h * p, w * p)
