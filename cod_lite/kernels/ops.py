"""Launchers of the four Triton kernels: plain tensors in, tensors out, shapes checked here.

Triton is imported on the first launch, never at import time.
"""

from __future__ import annotations

import os
from types import ModuleType

import torch
import torch.nn.functional as F

from ..models.network import DCT_FREQS, CodLiteNet

_TRUE = ("1", "true", "on", "yes")  # what triton accepts for TRITON_INTERPRET
_TILE = 4096  # elements per program in the elementwise-style kernels (a, b)


def interpret_mode() -> bool:
    """Whether TRITON_INTERPRET asks for triton's CPU interpreter, read as triton reads it.

    Triton fixes the mode when it is first imported, so set the variable before that.
    """
    return os.environ.get("TRITON_INTERPRET", "0").lower() in _TRUE


def _kernels() -> ModuleType:
    """The kernel module, imported on first launch so that importing cod_lite.kernels needs no triton."""
    from . import _triton

    return _triton


def _check_device(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.device.type != "cuda" and not interpret_mode():
            raise RuntimeError(f"Triton kernels need CUDA tensors (got {t.device}), or TRITON_INTERPRET=1 for CPU")


def _pow2(n: int, at_least: int = 1) -> int:
    return max(at_least, 1 << (n - 1).bit_length())


def _cdiv(n: int, d: int) -> int:
    return -(-n // d)


def _modulation_rows(t: torch.Tensor, channels: int) -> tuple[torch.Tensor, int]:
    """(B or 1, C) modulation -> the tensor with unit channel stride and its batch stride (0 if shared)."""
    if t.dim() != 2 or t.shape[1] != channels:
        raise ValueError(f"modulation must be (B or 1, {channels}), got {tuple(t.shape)}")
    if t.stride(1) != 1:
        t = t.contiguous()
    return t, (t.stride(0) if t.shape[0] > 1 else 0)


def layer_norm_modulate(
    x: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    branch: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel (a): returns (x', channel_layer_norm(x') * (1 + scale) + shift), x' = x + gate * branch
    when a branch is given (the gated residual of the previous sub-block), else x itself.

    x: (B, C, H, W), contiguous or channels_last; shift, scale, gate: (B or 1, C).
    """
    _check_device(x)
    b, c, h, w = x.shape
    shift, shift_stride = _modulation_rows(shift, c)
    scale, scale_stride = _modulation_rows(scale, c)
    gate_stride = 0
    out = torch.empty_like(x)
    x_out = x
    if branch is not None:
        if gate is None or branch.shape != x.shape:
            raise ValueError("a branch needs a gate and x's shape")
        gate, gate_stride = _modulation_rows(gate, c)
        if branch.stride() != x.stride():
            branch = torch.empty_like(x).copy_(branch)
        x_out = torch.empty_like(x)
    block_c = _pow2(c)
    block_p = max(1, _TILE // block_c)
    grid = (b, _cdiv(h * w, block_p))
    _kernels().layer_norm_modulate_kernel[grid](
        x, branch if branch is not None else x, gate if gate is not None else shift, shift, scale, x_out, out,
        c, w, h * w, *x.stride(), shift_stride, scale_stride, gate_stride, eps,
        HAS_BRANCH=branch is not None, BLOCK_P=block_p, BLOCK_C=block_c,
    )
    return x_out, out


def dwconv3x3_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel (b): (GELU(depthwise_conv3x3(x, weight, bias, padding 1)), its fp32 spatial sum (B, C)).

    x: (B, C, H, W), contiguous or channels_last; weight (C, 1, 3, 3) as nn.Conv2d(groups=C) holds it.
    """
    _check_device(x)
    b, c, h, w = x.shape
    if weight.shape != (c, 1, 3, 3):
        raise ValueError(f"weight must be ({c}, 1, 3, 3), got {tuple(weight.shape)}")
    block_c = min(_pow2(c), 64)
    block_p = _TILE // block_c
    grid = (b, _cdiv(h * w, block_p), _cdiv(c, block_c))
    out = torch.empty_like(x)
    partial = torch.empty(b, grid[1], c, dtype=torch.float32, device=x.device)
    _kernels().dwconv3x3_gelu_kernel[grid](
        x, weight.reshape(c, 9).contiguous(), bias.contiguous(), out, partial, c, h, w, *x.stride(),
        BLOCK_P=block_p, BLOCK_C=block_c,
    )
    return out, partial.sum(1)


def _stacked(blocks: torch.nn.ModuleList, name: str, like: torch.Tensor) -> torch.Tensor:
    """The parameter `name` of every PixelResBlock, stacked (an empty tensor for a head without blocks)."""
    if not blocks:
        return like.new_empty(0)
    return torch.stack([block.get_parameter(name) for block in blocks])


def pixel_head(net: CodLiteNet, cond: torch.Tensor, trunk: torch.Tensor) -> torch.Tensor:
    """Kernel (c): the image (B, 3, 16h, 16w) from the condition and the DiCo trunk output at t = 0.

    The head's two large projections (y_embedder_x on cond, dec_net.cond_embed on the trunk,
    hidden -> 256 * hx per patch) run as torch GEMMs; everything per pixel after them is one kernel.
    """
    _check_device(cond, trunk)
    b, _, h, w = cond.shape
    if trunk.shape[0] != b or trunk.shape[2:] != cond.shape[2:]:
        raise ValueError(f"trunk {tuple(trunk.shape)} does not match condition {tuple(cond.shape)}")
    hx, patch, head = net.config.hidden_size_x, net.patch, net.dec_net
    cond_x = F.linear(cond.permute(0, 2, 3, 1), net.y_embedder_x.weight.flatten(1), net.y_embedder_x.bias)
    cond_emb = head.cond_embed(trunk.permute(0, 2, 3, 1))
    blocks = head.res_blocks
    like = head.input_proj.weight
    embed = net.x_embedder.embedder[0]
    final = net.final_layer
    out = torch.empty(b, 3, h * patch, w * patch, dtype=cond.dtype, device=cond.device)
    n_rows = b * h * w * patch * patch
    block_r = 64
    _kernels().pixel_head_kernel[(_cdiv(n_rows, block_r),)](
        cond_x.contiguous(), cond_emb.contiguous(), net.dct.contiguous(), embed.weight.contiguous(), embed.bias,
        head.input_proj.weight.contiguous(), head.input_proj.bias,
        _stacked(blocks, "in_ln.weight", like), _stacked(blocks, "in_ln.bias", like),
        _stacked(blocks, "adaLN_modulation.1.weight", like), _stacked(blocks, "adaLN_modulation.1.bias", like),
        _stacked(blocks, "mlp.0.weight", like), _stacked(blocks, "mlp.0.bias", like),
        _stacked(blocks, "mlp.2.weight", like), _stacked(blocks, "mlp.2.bias", like),
        final.norm.weight, final.linear.weight.contiguous(), final.linear.bias, out,
        n_rows, w, h * w, hx, len(blocks), embed.weight.shape[1], *out.stride(),
        PATCH=patch, FREQS=DCT_FREQS**2, HX=_pow2(hx, 16), BLOCK_R=block_r,
        PRECISION="ieee" if cond.dtype == torch.float32 else "tf32",
    )
    return out


def vq_indices(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Kernel (d): (B, D, h, w) latent, (K, D) codebook -> (B, h, w) int64 nearest-codeword indices."""
    _check_device(z, codebook)
    b, dim, h, w = z.shape
    if codebook.dim() != 2 or codebook.shape[1] != dim:
        raise ValueError(f"codebook must be (K, {dim}), got {tuple(codebook.shape)}")
    out = torch.empty(b, h, w, dtype=torch.int64, device=z.device)
    n_rows = b * h * w
    block_m = 32
    _kernels().vq_argmin_kernel[(_cdiv(n_rows, block_m),)](
        z, codebook.contiguous(), out, n_rows, dim, codebook.shape[0], w, h * w, *z.stride(),
        BLOCK_M=block_m, BLOCK_K=min(_pow2(codebook.shape[0], 16), 64), BLOCK_D=_pow2(dim, 16),
    )
    return out
