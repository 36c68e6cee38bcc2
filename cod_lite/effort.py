"""Encoder effort: indices that decode closer to the image than the nearest codewords.

The encoder's nearest-codeword choice (effort 0, the default) ignores what the decoder will make
of it. With effort N the encoder searches: it moves the continuous latent by gradient steps
through the exact decoder (straight-through to the codebook), against L1 on the pixels plus the
colour of 16x16 regions (what `metrics.colour_error` compares), and keeps the indices of the step
whose decoding scored best, the nearest codewords included, so no effort scores worse on that
objective than effort 0. The decoder and the stream format are untouched: every decoder reads
these streams. Cost: each step is a forward and backward pass of the decoder (`EFFORT_STEPS`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import InputError
from .metrics import COLOUR_BLOCK
from .models.network import CodLiteNet

EFFORT_STEPS = (0, 2, 4, 8)  # gradient steps per effort level 0..3
LEARNING_RATE = 0.05  # Adam's step, in units of the latent's standard deviation
COLOUR_WEIGHT = 4.0  # region colour against per-pixel L1


def check_effort(effort: int) -> int:
    if not isinstance(effort, int) or isinstance(effort, bool) or not 0 <= effort < len(EFFORT_STEPS):
        raise InputError(f"effort must be 0-{len(EFFORT_STEPS) - 1}, got {effort!r}")
    return effort


def search(net: CodLiteNet, image01: torch.Tensor, indices: torch.Tensor, effort: int) -> torch.Tensor:
    """(1, 3, H, W) image in [0, 1] and its nearest-codeword (1, h, w) indices -> the indices whose
    exact fp32 decoding scores best on `objective` among EFFORT_STEPS[effort] search steps."""
    steps = EFFORT_STEPS[check_effort(effort)]
    if steps == 0:
        return indices
    codec = net.y_embedder
    target = image01 * 2 - 1
    with torch.no_grad():
        z0 = codec.encoder(image01)
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=LEARNING_RATE * float(z0.std()))
    modulation = net._t0_modulation().clone()  # the cache may be an inference-mode tensor: autograd needs a copy
    best, best_loss = indices, float("inf")
    for step in range(steps + 1):
        chosen = codec.bottleneck.indices(z.detach()) if step else indices
        quantized = z + (codec.bottleneck.lookup(chosen) - z).detach()  # straight-through
        loss = objective(net.decode_codewords(quantized, modulation), target)
        if loss.item() < best_loss:
            best, best_loss = chosen, loss.item()
        if step == steps:
            break
        optimizer.zero_grad()
        (z.grad,) = torch.autograd.grad(loss, [z])  # the latent's gradient only, not the weights'
        optimizer.step()
    return best.detach()


def objective(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on pixels plus COLOUR_WEIGHT x L1 between 16x16 region means (both in [-1, 1])."""
    regions = F.avg_pool2d(decoded, COLOUR_BLOCK), F.avg_pool2d(target, COLOUR_BLOCK)
    return (decoded - target).abs().mean() + COLOUR_WEIGHT * (regions[0] - regions[1]).abs().mean()
