"""Triton kernels of the inference path; `ops` imports this module on first launch and wraps each kernel.

Every kernel computes in fp32 whatever the storage dtype, and rounds a value to the storage
dtype before reusing it where the eager network would reuse the stored (rounded) value.
"""

from __future__ import annotations

import triton
import triton.language as tl

INV_SQRT2 = tl.constexpr(0.7071067811865476)


@triton.jit
def layer_norm_modulate_kernel(
    x_ptr, branch_ptr, gate_ptr, shift_ptr, scale_ptr, x_out_ptr, out_ptr,
    C, W, HW, stride_b, stride_c, stride_h, stride_w, shift_stride_b, scale_stride_b, gate_stride_b, eps,
    HAS_BRANCH: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """(a) out = LN_c(x) * (1 + scale) + shift over BLOCK_P pixels x all channels of one image.

    With HAS_BRANCH the previous gated residual is folded in first: x <- x + gate * branch,
    stored to x_out, so the residual stream is read once. All NCHW tensors share x's strides
    (contiguous or channels_last); modulation rows are (B or 1, C) with unit channel stride,
    batch stride 0 when one row serves every image.
    """
    b = tl.program_id(0)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, BLOCK_C)
    c_ok = c < C
    mask = (p < HW)[:, None] & c_ok[None, :]
    offs = b * stride_b + c[None, :] * stride_c + ((p // W) * stride_h + (p % W) * stride_w)[:, None]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BRANCH:
        gate = tl.load(gate_ptr + b * gate_stride_b + c, mask=c_ok, other=0.0).to(tl.float32)
        x += gate[None, :] * tl.load(branch_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        x = x.to(x_out_ptr.dtype.element_ty)
        tl.store(x_out_ptr + offs, x, mask=mask)
        x = x.to(tl.float32)
    mean = tl.sum(x, axis=1) / C
    centred = tl.where(mask, x - mean[:, None], 0.0)
    rstd = tl.rsqrt(tl.sum(centred * centred, axis=1) / C + eps)
    shift = tl.load(shift_ptr + b * shift_stride_b + c, mask=c_ok, other=0.0).to(tl.float32)
    scale = tl.load(scale_ptr + b * scale_stride_b + c, mask=c_ok, other=0.0).to(tl.float32)
    out = centred * rstd[:, None] * (1.0 + scale[None, :]) + shift[None, :]
    tl.store(out_ptr + offs, out, mask=mask)


@triton.jit
def dwconv3x3_gelu_kernel(
    x_ptr, w_ptr, bias_ptr, out_ptr, partial_ptr,
    C, H, W, stride_b, stride_c, stride_h, stride_w,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """(b) out = GELU_erf(depthwise 3x3 conv(x) + bias), zero padding, on a BLOCK_P x BLOCK_C tile.

    Also writes the tile's per-channel sum of `out` to partial[b, pixel block, c]: summed over
    blocks (deterministic, no atomics) it gives the channel attention's average pool without
    reading `out` again. `out` shares x's strides; w is (C, 9).
    """
    b = tl.program_id(0)
    pid_p = tl.program_id(1)
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    p_ok = p < H * W
    c_ok = c < C
    y = p // W
    x = p % W
    base = x_ptr + b * stride_b + c[None, :] * stride_c
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for tap in tl.static_range(9):
        yy = y + (tap // 3 - 1)
        xx = x + (tap % 3 - 1)
        inside = p_ok & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        v = tl.load(base + (yy * stride_h + xx * stride_w)[:, None], mask=inside[:, None] & c_ok[None, :], other=0.0)
        acc += v.to(tl.float32) * tl.load(w_ptr + c * 9 + tap, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    acc += tl.load(bias_ptr + c, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    out = (0.5 * acc * (1.0 + tl.math.erf(acc * INV_SQRT2))).to(out_ptr.dtype.element_ty)
    mask = p_ok[:, None] & c_ok[None, :]
    offs = b * stride_b + c[None, :] * stride_c + (y * stride_h + x * stride_w)[:, None]
    tl.store(out_ptr + offs, out, mask=mask)
    partial = tl.sum(tl.where(mask, out.to(tl.float32), 0.0), axis=0)
    tl.store(partial_ptr + (b * tl.num_programs(1) + pid_p) * C + c, partial, mask=c_ok)


@triton.jit
def _linear(x, w_ptr, b_ptr, n_out, n_in, w_row, OUT: tl.constexpr, IN: tl.constexpr, PRECISION: tl.constexpr):
    """x (rows, IN) @ W[:n_out, :n_in].T + b, W row-major with row stride w_row; padding columns stay 0."""
    i = tl.arange(0, IN)
    o = tl.arange(0, OUT)
    wt = tl.load(w_ptr + o[None, :] * w_row + i[:, None], mask=(i < n_in)[:, None] & (o < n_out)[None, :], other=0.0)
    out = tl.dot(x, wt.to(tl.float32), input_precision=PRECISION)
    return out + tl.load(b_ptr + o, mask=o < n_out, other=0.0).to(tl.float32)[None, :]


@triton.jit
def _silu(x):
    return x * tl.sigmoid(x)


@triton.jit
def pixel_head_kernel(
    cond_x_ptr, cond_emb_ptr, dct_ptr, emb_w_ptr, emb_b_ptr, in_w_ptr, in_b_ptr,
    ln_w_ptr, ln_b_ptr, mod_w_ptr, mod_b_ptr, fc1_w_ptr, fc1_b_ptr, fc2_w_ptr, fc2_b_ptr,
    rms_w_ptr, out_w_ptr, out_b_ptr, out_ptr,
    n_rows, grid_w, grid_hw, hx, depth, emb_row,
    out_stride_b, out_stride_c, out_stride_h, out_stride_w,
    PATCH: tl.constexpr, FREQS: tl.constexpr, HX: tl.constexpr, BLOCK_R: tl.constexpr, PRECISION: tl.constexpr,
):
    """(c) The per-pixel head for BLOCK_R pixels (row r = patch * PATCH^2 + pixel), into the NCHW image.

    Pixel features [x_pix = 0, cond_x, dct] -> x_embedder -> input_proj -> `depth` PixelResBlocks
    (affine LN, shift/scale/gate from SiLU(cond_emb)) -> RMSNorm -> linear to 3. The hx-wide
    activations (padded to HX, padding kept at 0) never leave registers. cond_x is
    y_embedder_x(cond) as (patches, hx * PATCH^2), channel-major; cond_emb is cond_embed(trunk)
    as (patches, PATCH^2 * hx), pixel-major. Block d's parameters sit at d * their per-block size.
    """
    PIXELS: tl.constexpr = PATCH * PATCH
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    r_ok = r < n_rows
    patch = r // PIXELS
    pixel = r % PIXELS
    c = tl.arange(0, HX)
    mask = r_ok[:, None] & (c < hx)[None, :]
    f = tl.arange(0, FREQS)

    cond_x = tl.load(cond_x_ptr + (patch * (hx * PIXELS) + pixel)[:, None] + c[None, :] * PIXELS, mask=mask, other=0.0)
    dct = tl.load(dct_ptr + pixel[:, None] * FREQS + f[None, :], mask=r_ok[:, None], other=0.0).to(tl.float32)
    # x_embedder: columns [0, 3) see x_pix = 0, [3, 3 + hx) cond_x, then the DCT features
    x = _linear(cond_x.to(tl.float32), emb_w_ptr + 3, emb_b_ptr, hx, hx, emb_row, HX, HX, PRECISION)
    dw = tl.load(emb_w_ptr + 3 + hx + c[None, :] * emb_row + f[:, None], mask=(c < hx)[None, :], other=0.0)
    x += tl.dot(dct, dw.to(tl.float32), input_precision=PRECISION)
    x = _linear(x, in_w_ptr, in_b_ptr, hx, hx, hx, HX, HX, PRECISION)

    cond = tl.load(cond_emb_ptr + (patch * (PIXELS * hx) + pixel * hx)[:, None] + c[None, :], mask=mask, other=0.0)
    cond = _silu(cond.to(tl.float32))
    for d in range(depth):
        mw = mod_w_ptr + d * 3 * hx * hx
        mb = mod_b_ptr + d * 3 * hx
        shift = _linear(cond, mw, mb, hx, hx, hx, HX, HX, PRECISION)
        scale = _linear(cond, mw + hx * hx, mb + hx, hx, hx, hx, HX, HX, PRECISION)
        gate = _linear(cond, mw + 2 * hx * hx, mb + 2 * hx, hx, hx, hx, HX, HX, PRECISION)
        mean = tl.sum(x, axis=1) / hx
        centred = tl.where(mask, x - mean[:, None], 0.0)
        rstd = tl.rsqrt(tl.sum(centred * centred, axis=1) / hx + 1e-6)
        ln_w = tl.load(ln_w_ptr + d * hx + c, mask=c < hx, other=0.0).to(tl.float32)
        ln_b = tl.load(ln_b_ptr + d * hx + c, mask=c < hx, other=0.0).to(tl.float32)
        h = (centred * rstd[:, None] * ln_w[None, :] + ln_b[None, :]) * (1.0 + scale) + shift
        h = _silu(_linear(h, fc1_w_ptr + d * hx * hx, fc1_b_ptr + d * hx, hx, hx, hx, HX, HX, PRECISION))
        x += gate * _linear(h, fc2_w_ptr + d * hx * hx, fc2_b_ptr + d * hx, hx, hx, hx, HX, HX, PRECISION)

    rms = tl.rsqrt(tl.sum(x * x, axis=1) / hx + 1e-6)
    x = x * rms[:, None] * tl.load(rms_w_ptr + c, mask=c < hx, other=0.0).to(tl.float32)[None, :]
    rgb = _linear(x, out_w_ptr, out_b_ptr, 3, hx, hx, 16, HX, PRECISION)  # 3 outputs padded to 16 for tl.dot

    b = patch // grid_hw
    cell = patch % grid_hw
    row = (cell // grid_w) * PATCH + pixel // PATCH
    col = (cell % grid_w) * PATCH + pixel % PATCH
    ch = tl.arange(0, 16)
    offs = (b * out_stride_b + row * out_stride_h + col * out_stride_w)[:, None] + ch[None, :] * out_stride_c
    tl.store(out_ptr + offs, rgb, mask=r_ok[:, None] & (ch < 3)[None, :])


@triton.jit
def vq_argmin_kernel(
    z_ptr, e_ptr, out_ptr, n_rows, dim, n_codes, W, HW, stride_b, stride_c, stride_h, stride_w,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """(d) Index of the nearest codeword for BLOCK_M latent pixels, read straight from the NCHW map.

    Distance |z|^2 + |e|^2 - 2 z.e, associated as the eager VectorQuantizer does so that rounding
    ties match; ties (within a chunk by tl.argmin, across chunks by strict <) go to the lowest index.
    """
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < n_rows
    d = tl.arange(0, BLOCK_D)
    d_ok = d < dim
    q = m % HW
    offs = (m // HW) * stride_b + (q // W) * stride_h + (q % W) * stride_w
    z = tl.load(z_ptr + offs[:, None] + d[None, :] * stride_c, mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    z = z.to(tl.float32)
    zz = tl.sum(z * z, axis=1)
    best = tl.full((BLOCK_M,), float("inf"), tl.float32)
    best_index = tl.zeros((BLOCK_M,), dtype=tl.int32)
    for k0 in range(0, n_codes, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        k_ok = k < n_codes
        e = tl.load(e_ptr + k[:, None] * dim + d[None, :], mask=k_ok[:, None] & d_ok[None, :], other=0.0).to(tl.float32)
        dot = tl.dot(z, tl.trans(e), input_precision="ieee")
        dist = (zz[:, None] + tl.sum(e * e, axis=1)[None, :]) - 2.0 * dot
        dist = tl.where(k_ok[None, :], dist, float("inf"))
        chunk_min, chunk_index = tl.min(dist, axis=1, return_indices=True)
        better = chunk_min < best
        best = tl.where(better, chunk_min, best)
        best_index = tl.where(better, chunk_index + k0, best_index)
    tl.store(out_ptr + m, best_index.to(tl.int64), mask=m_ok)
