"""Fused Triton kernels for CoD-Lite inference (see docs/performance.md, "GPU kernels").

    from cod_lite import kernels
    if kernels.available():
        indices = kernels.quantize(net, image01)     # as net.quantize
        image = kernels.reconstruct(net, indices)    # as net.reconstruct

Same contracts as CodLiteNet.quantize / reconstruct. The ResNet convs, attention and 1x1 convs
stay in torch (cuDNN, SDPA, cuBLAS); the kernels replace the memory-bound steps between them.
Triton is imported only when a kernel first runs, so `import cod_lite.kernels` works without it.
For CPU tensors set TRITON_INTERPRET=1 before triton is imported (it fixes its mode then).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..models.network import CodLiteNet
from . import ops

__all__ = ["available", "codec_methods", "quantize", "reconstruct"]
Method = Callable[[torch.Tensor], torch.Tensor]


def available() -> bool:
    """Whether the kernels can run here: triton importable and a CUDA GPU or TRITON_INTERPRET=1."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or ops.interpret_mode()


def codec_methods(net: CodLiteNet, fallback: tuple[Method, Method] | None = None) -> tuple[Method, Method]:
    """(quantize, reconstruct) of `net` through the kernels, as a `Codec` runs them. With a
    `fallback` pair, the first failure of a kernel call (a GPU triton cannot compile for, say)
    warns once and hands that phase and every later call to the fallback."""
    kernel_pair = (lambda image01: quantize(net, image01), lambda indices: reconstruct(net, indices))
    if fallback is None:
        return kernel_pair
    return tuple(_FallingBack(k, f) for k, f in zip(kernel_pair, fallback))  # type: ignore[return-value]


class _FallingBack:
    def __init__(self, kernel: Method, fallback: Method) -> None:
        self.kernel: Method | None = kernel
        self.fallback = fallback

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel is not None:
            try:
                return self.kernel(x)
            except Exception as e:  # noqa: BLE001 - any compiler or launch failure: the torch path still works
                warnings.warn(f"Triton kernels failed ({type(e).__name__}: {e}); using the torch path instead", RuntimeWarning, stacklevel=2)
                self.kernel = None
        return self.fallback(x)


def _on(device: torch.device) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device: make it the tensors' one."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


@torch.no_grad()
def quantize(net: CodLiteNet, image01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) image in [0, 1] -> (B, H/ds, W/ds) indices; the encoder in torch, the VQ fused."""
    with _on(image01.device):
        z = net.y_embedder.encoder(image01)
        return ops.vq_indices(z, net.y_embedder.bottleneck.embedding.weight)


@torch.no_grad()
def reconstruct(net: CodLiteNet, indices: torch.Tensor) -> torch.Tensor:
    """(B, h, w) indices -> (B, 3, h*ds, w*ds) image in [-1, 1] (not clamped), in the net's dtype."""
    with _on(indices.device):
        cond = net.y_embedder.decode(indices)
        return net.refined(ops.pixel_head(net, cond, _trunk(net, cond)))


def _trunk(net: CodLiteNet, cond: torch.Tensor) -> torch.Tensor:
    """`CodLiteNet.trunk_at_zero` with fused kernels: each block's gated residual is folded into
    the next LayerNorm kernel; the channel attention's sigmoid scales conv3's input channels,
    which is done by scaling conv3's weight columns per image instead of the feature map."""
    s = net.zero_image_embedding(cond)
    branch = gate = None
    for block, mod in zip(net.blocks, net._t0_modulation()):
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=1)
        s, h = ops.layer_norm_modulate(s, shift1, scale1, branch, gate)
        h, sums = ops.dwconv3x3_gelu(block.conv1(h), block.conv2.weight, block.conv2.bias)
        ca = block.ca[1]
        pooled = (sums / (h.shape[2] * h.shape[3])).to(h.dtype)
        attention = torch.sigmoid(F.linear(pooled, ca.weight.flatten(1), ca.bias))
        branch = _conv1x1_scaled_input(block.conv3, h, attention)
        s, h = ops.layer_norm_modulate(s, shift2, scale2, branch, gate1)
        branch, gate = block.conv5(F.gelu(block.conv4(h))), gate2
    if branch is not None:
        s = torch.addcmul(s, gate[:, :, None, None], branch)
    return s


def _conv1x1_scaled_input(conv: torch.nn.Conv2d, h: torch.Tensor, channel_scale: torch.Tensor) -> torch.Tensor:
    """conv(h * channel_scale[:, :, None, None]) as one batched GEMM with per-image scaled weights."""
    b, c, height, width = h.shape
    weight = conv.weight.flatten(1)[None] * channel_scale[:, None, :]
    out = torch.baddbmm(conv.bias[None, :, None], weight, h.reshape(b, c, height * width))
    return out.reshape(b, -1, height, width)
