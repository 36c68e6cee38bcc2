"""Writes the parity_ds32 fixture: random weights in the official ds-32 layout + our outputs.

Run once (`python tests/data/parity_ds32/make_fixture.py`); never regenerate to make a failing
test pass: the files pin today's ds-32 behaviour (README.md says what they do and do not prove).

Weights are drawn the way parity_A's were (every tensor random, also those the authors' init
leaves at zero), but stored compactly: each tensor of 2+ dimensions as 4-bit integers q in
-8..7 (two per byte) times a per-tensor power of two, so the float weights are exact; vectors
(biases, norm affines) as float32; the codebook as float32 entries picked from encoder outputs
so that the 16 codes are used and every decision has a margin.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

import cod_lite
from cod_lite.models.config import ModelConfig
from cod_lite.models.network import CodLiteNet

HERE = Path(__file__).parent
SEED = 3232
ARGS = {  # the official init_args of the 0.0039 model, with small widths
    "pred": "x", "in_channels": 3, "patch_size": 16, "hidden_size_x": 8, "hidden_size": 32,
    "num_blocks": 2, "num_cond_blocks": 1, "light": True, "ds": 32, "codebook_bits": 4, "up2x": True,
}
ENCODER_CHANNELS = 32
SAMPLER = {"num_steps": 4, "guidance": 3.0, "guidance_interval_min": 0.1, "guidance_interval_max": 1.0, "last_step": None}
CODEBOOK = "y_embedder.bottleneck.embedding.weight"
HEIGHT, WIDTH = 192, 256  # latent 6 x 8 at ds 32, condition 12 x 16


def synthetic_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gradients, discs and noise: photo-like structure that needs no photo."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([x / width * 200 + 30, y / height * 180 + 40, (x + y) / (width + height) * 160 + 60], -1)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(8, 50)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def random_state(net: CodLiteNet, gen: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, tuple[list[int], int]]]:
    """Float weights, and for the 4-bit ones (shape, exponent)."""
    state, packed = {}, {}
    for key, t in net.state_dict().items():
        if key == CODEBOOK:
            continue
        if t.dim() >= 2:
            fan_in = t[0].numel()
            gain = 0.05 * math.sqrt(fan_in) if "adaLN" in key or key.startswith("final_layer") else 1.0
            exp = round(math.log2(4.0 * math.sqrt(fan_in) / gain))  # q's std ~4.6: weight std ~ gain / sqrt(fan_in)
            q = torch.randint(-8, 8, t.shape, generator=gen)
            state[key] = q.float() * 2.0**-exp
            packed[key] = (list(t.shape), exp)
        elif key.endswith(".bias"):
            state[key] = torch.randn(t.shape, generator=gen) * (0.3 if "adaLN" in key else 0.05)
        else:  # GroupNorm / LayerNorm / RMSNorm weights
            state[key] = 1 + 0.1 * torch.randn(t.shape, generator=gen)
    return state, packed


def pack(q_plus_8: torch.Tensor) -> torch.Tensor:
    flat = q_plus_8.flatten().to(torch.uint8)
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return flat[0::2] | (flat[1::2] << 4)


def margins(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(second-nearest - nearest) / nearest squared distance of every latent cell."""
    d = torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), codebook) ** 2
    two = d.topk(2, largest=False).values
    return (two[:, 1] - two[:, 0]) / two[:, 0].clamp_min(1e-12)


def main() -> None:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED + 17)
    rng = np.random.default_rng(SEED)
    config = ModelConfig(name="parity-ds32", ds=32, codebook_bits=4, hidden_size=32, hidden_size_x=8,
                         num_blocks=2, num_cond_blocks=1, encoder_channels=ENCODER_CHANNELS)
    net = CodLiteNet(config).eval()
    state, packed = random_state(net, gen)
    image = synthetic_image(rng, HEIGHT, WIDTH)
    others = [synthetic_image(rng, 256, 256) for _ in range(4)]
    net.load_state_dict({**state, CODEBOOK: net.state_dict()[CODEBOOK]})
    with torch.no_grad():
        z_own = net.y_embedder.encoder(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
        pool = torch.cat([net.y_embedder.encoder(torch.from_numpy(o).permute(2, 0, 1)[None].float() / 255).flatten(2)[0].T for o in others])
    own = z_own.flatten(2)[0].T
    best = None
    for _ in range(200):  # half the codes from this image, half from others: many used, clear margins
        pick = torch.cat([own[torch.randperm(len(own), generator=gen)[:8]], pool[torch.randperm(len(pool), generator=gen)[:8]]])
        pick = pick + 0.05 * pick.std() * torch.randn(pick.shape, generator=gen)
        score = float(margins(z_own, pick).min())
        if best is None or score > best[0]:
            best = (score, pick)
    state[CODEBOOK] = best[1].contiguous()

    tensors = {k: pack(v * 2.0 ** packed[k][1] + 8) if k in packed else v for k, v in state.items()}
    save_file(tensors, HERE / "state_dict.safetensors", metadata={"packed": json.dumps(packed, sort_keys=True)})
    Image.fromarray(image).save(HERE / "image.png")
    (HERE / "config.yaml").write_text(
        "# Official-style one-step config (model.net) of the ds-32 layout with small widths; the\n"
        f"# condition encoder is {ENCODER_CHANNELS} channels wide (official: 128).\n"
        + yaml.safe_dump({"model": {"net": {"class_path": "finetuned_one_step_codec.main_stage1.FinetunedOneStepCoD", "init_args": ARGS}}}, sort_keys=False)
    )
    pretrain_args = {k: v for k, v in ARGS.items() if k not in ("ds", "codebook_bits")}  # left to the defaults 32 / 4
    (HERE / "pretrain.yaml").write_text(
        "# The same weights as the authors' pre-trained model would hold them (model.denoiser, EMA under ema_denoiser.).\n"
        + yaml.safe_dump({"model": {"denoiser": {"class_path": "cod.models.pixel_cnn.DConv", "init_args": pretrain_args},
                                    "diffusion_sampler": {"class_path": "cod.diffusion.EulerSampler", "init_args": SAMPLER}}}, sort_keys=False)
    )

    work = HERE / "_work"
    work.mkdir(exist_ok=True)
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, work / "one_step.pt")
    torch.save({"state_dict": {f"ema_denoiser.{k}": v for k, v in state.items()}}, work / "pretrain.pt")
    one = cod_lite.load_model(cod_lite.import_official(work / "one_step.pt", HERE / "config.yaml", work / "a.safetensors", ENCODER_CHANNELS, overwrite=True), precision="fp32")
    multi = cod_lite.load_model(cod_lite.import_official(work / "pretrain.pt", HERE / "pretrain.yaml", work / "b.safetensors", ENCODER_CHANNELS, overwrite=True), precision="fp32")
    indices = one.quantize(image)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        z = one.net.y_embedder.encoder(x)
        cond = one.net.y_embedder.decode(torch.from_numpy(indices)[None])
    expected = {
        "indices": torch.from_numpy(indices.ravel()),
        "z": z.contiguous(),
        "cond": cond.contiguous(),
        "image_out": torch.from_numpy(one.reconstruct(indices, HEIGHT, WIDTH)),
        "sample_4steps_seed0": torch.from_numpy(multi.reconstruct(indices, HEIGHT, WIDTH, steps=4, seed=0)),
    }
    save_file(expected, HERE / "expected.safetensors")
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    print(f"indices: {len(np.unique(indices))} of 16 codes used over {indices.size} cells; min relative margin {best[0]:.3g}")


if __name__ == "__main__":
    main()
