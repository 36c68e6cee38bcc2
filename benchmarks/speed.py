"""Encode/decode time per phase, plain eager fp32 against every optimised path, in one run.

    python benchmarks/speed.py --official 0.0312 --size 768x512 --size 1920x1080 --size 3840x2160
    python benchmarks/speed.py --model default --threads 2

Phases. Encode: PNG decode, network encoder, VQ, entropy coding, container. Decode: container
parsing, entropy decoding, condition decoder + denoiser (and 8-bit conversion), PNG encode.
Only the network phases differ between paths; the others are timed once and added to every path.

Paths: eager fp32 (the reference: `precision="fp32"`, the authors'-style exact code), the
default path (`precision="auto"`, `cod_lite.kernels.fast`; its per-phase ratios against eager
fp32 are printed after the table), eager channels_last, compile (inductor, frozen weights:
`cod_lite.inference.compiled`), compile + channels_last (`load_model(compile=True)` runs this path's encoder and plain
compile's decoder: encode and decode are separate graphs, timed separately here), and
where the device has bf16 (CPU: avx512_bf16/AMX; CUDA) eager and compiled bf16 autocast. On CUDA
also compile with CUDA graphs and the Triton kernels of `cod_lite.kernels` (skipped, with the
reason, where they cannot run). Every path uses the same weights (random for --official) and
the same photo-like input; each prints its distance from eager fp32 (index agreement, max pixel
difference), the median of --repeats timed runs after --warmup runs (CUDA events on GPU), and
its peak memory (CUDA: max_memory_allocated; CPU: the process's peak RSS, reset per path).
On CUDA with an official config the network time is set against its FLOP floor (FLOPs counted
by torch.utils.flop_counter at the device's dense peak).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cod_lite
from cod_lite import bitstream, colour
from cod_lite.codec import Codec
from cod_lite.inference import compiled
from cod_lite.entropy.coding import decode_grid, encode_grid
from cod_lite.kernels.fast import FastPath, phase_dtypes, precision_label
from cod_lite.image_io import SAVE_FORMATS, load_image
from cod_lite.models.config import official_config
from cod_lite.models.network import CodLiteNet, to_uint8
from cod_lite.weights import weights_digest

SAMPLE = Path(__file__).parents[1] / "examples" / "sample.png"
PNG_OPTIONS = SAVE_FORMATS[".png"][1]
# Dense peak FLOP/s (fp32 without TF32, bf16 tensor cores) by device-name fragment, SXM parts.
PEAK_FLOPS = {"H200": (67e12, 989e12), "H100": (67e12, 989e12), "A100": (19.5e12, 312e12)}

Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Variant:
    """One way to run the network phases; `vq` is None where `encoder` already gives indices."""

    name: str
    encoder: Fn
    vq: Fn | None
    decoder: Fn
    layout: torch.memory_format = torch.contiguous_format
    dtype: torch.dtype | None = None  # autocast dtype
    times: dict[str, float] = field(default_factory=dict)


def median_seconds(fn: Callable[[], object], warmup: int, repeats: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            start_s = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start_s)
    return statistics.median(times)


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated()
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024


def build_variants(net: CodLiteNet, device: torch.device) -> tuple[list[Variant], list[str]]:
    """Every path this device can run, and a line for each one it cannot."""
    def methods(n: CodLiteNet, wrap: Callable[[Fn], Fn] = lambda f: f) -> tuple[Fn, Fn, Fn]:
        return wrap(n.y_embedder.encoder), wrap(n.y_embedder.bottleneck.indices), wrap(n.reconstruct)

    channels_last = copy.deepcopy(net).to(memory_format=torch.channels_last)
    default = FastPath(net, *phase_dtypes("auto", device))  # what load_model(...) runs with no options
    vq = net.y_embedder.bottleneck.indices
    variants = [
        Variant("eager fp32", *methods(net)),
        Variant("default (auto)", default.latent, vq, default.reconstruct),
        Variant("eager channels_last", *methods(channels_last), layout=torch.channels_last),
        Variant("compile", *methods(copy.deepcopy(net), compiled)),
        Variant("compile channels_last", *methods(copy.deepcopy(channels_last), compiled), layout=torch.channels_last),
    ]
    skipped = []
    if bf16_supported(device):
        variants.append(Variant("eager bf16", *methods(net), dtype=torch.bfloat16))
        variants.append(Variant("compile bf16", *methods(copy.deepcopy(net), compiled), dtype=torch.bfloat16))
    else:
        skipped.append("bf16: this device has no bf16 support")
    if device.type != "cuda":
        skipped.append("CUDA graphs, Triton kernels: CUDA only")
        return variants, skipped

    graphs = lambda f: torch.compile(f, options={"freezing": True, "triton.cudagraphs": True})  # noqa: E731
    variants.append(Variant("compile + CUDA graphs", *methods(copy.deepcopy(net), graphs)))
    try:
        from cod_lite import kernels
    except ImportError as e:
        skipped.append(f"Triton kernels: cod_lite.kernels cannot be imported ({e})")
        return variants, skipped
    if not kernels.available():
        skipped.append("Triton kernels: kernels.available() is False (no triton, or no CUDA device)")
        return variants, skipped
    for dtype in (torch.float32, torch.bfloat16):
        kernel_net = copy.deepcopy(net).to(dtype)
        variants.append(
            Variant(
                f"triton kernels {str(dtype).removeprefix('torch.')}",
                lambda x, n=kernel_net, d=dtype: kernels.quantize(n, x.to(d)),
                None,
                lambda i, n=kernel_net: kernels.reconstruct(n, i),
            )
        )
    return variants, skipped


def photo(width: int, height: int) -> np.ndarray:
    """The bundled sample photo resized: realistic content (entropy coding and VQ depend on it)."""
    return np.asarray(Image.open(SAMPLE).convert("RGB").resize((width, height), Image.BICUBIC))


def network_flops(net: CodLiteNet, x: torch.Tensor) -> tuple[int, int]:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode():
        with FlopCounterMode(display=False) as enc:
            indices = net.quantize(x)
        with FlopCounterMode(display=False) as dec:
            net.reconstruct(indices)
    return enc.get_total_flops(), dec.get_total_flops()


def run_size(codec: Codec, variants: list[Variant], skipped: list[str], width: int, height: int, args: argparse.Namespace) -> None:
    device, net = codec.device, codec.net
    bench = lambda fn: median_seconds(fn, args.warmup, args.repeats, device)  # noqa: E731
    pixels = photo(width, height)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    ph, pw = codec.model_config.padded_size(height, width)
    x = torch.from_numpy(np.pad(pixels, ((0, ph - height), (0, pw - width), (0, 0)), mode="edge").copy())
    x = x.to(device).permute(2, 0, 1)[None].float() / 255

    with torch.inference_mode():
        ref_idx = net.quantize(x)
        ref_out = to_uint8(net.reconstruct(ref_idx))[0, :height, :width]
    grid = ref_idx[0].cpu().numpy()
    bits = codec.model_config.codebook_bits
    method, payload = encode_grid(grid, bits, codec.prior)
    header = bitstream.StreamHeader(codec.name, codec.identity, width, height, 0, method, payload)
    stream = bitstream.serialize(header)
    out_image = Image.fromarray(ref_out.cpu().numpy())
    shared = {
        "png decode": bench(lambda: load_image(Image.open(io.BytesIO(png.getvalue())))),
        "entropy enc": bench(lambda: encode_grid(grid, bits, codec.prior)),
        "container enc": bench(lambda: bitstream.serialize(header)),
        "container dec": bench(lambda: bitstream.parse(stream)),
        "entropy dec": bench(lambda: decode_grid(method, payload, grid.shape, bits, codec.prior)),
        "png encode": bench(lambda: out_image.save(io.BytesIO(), format="PNG", **PNG_OPTIONS)),  # as save_image writes it
    }
    pillow_default = bench(lambda: out_image.save(io.BytesIO(), format="PNG"))
    print(f"\n== {width}x{height}: {len(stream)} bytes ({8 * len(stream) / (width * height):.4f} bpp)")
    print("   " + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in shared.items())
          + f" (Pillow's default level: {1e3 * pillow_default:.1f} ms, x{pillow_default / shared['png encode']:.2f})")
    for line in skipped:
        print(f"   skipped {line}")

    header_row = f"   {'path':24s} {'encoder':>9s} {'VQ':>8s} {'dec net':>9s} {'encode':>9s} {'decode':>9s} {'x enc':>6s} {'x dec':>6s} {'peak MiB':>9s}  vs eager fp32"
    print(header_row)
    base = None
    for variant in variants:
        autocast = torch.autocast(device.type, dtype=variant.dtype) if variant.dtype else contextlib.nullcontext()
        xin = x.contiguous(memory_format=variant.layout)
        reset_peak(device)
        with torch.inference_mode(), autocast:
            try:
                start = time.perf_counter()
                latent = variant.encoder(xin)
                idx = variant.vq(latent) if variant.vq else latent
                out = to_uint8(variant.decoder(ref_idx).float())[0, :height, :width]
                first = time.perf_counter() - start
                t_enc = bench(lambda: variant.encoder(xin))
                t_vq = bench(lambda: variant.vq(latent)) if variant.vq else 0.0
                t_dec = bench(lambda: variant.decoder(ref_idx))
            except Exception as e:  # noqa: BLE001 - one failing path must not hide the others
                print(f"   {variant.name:24s} failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                continue
        peak = peak_bytes(device)
        agree = (idx == ref_idx).float().mean().item()
        max_diff = (out.int() - ref_out.int()).abs().max().item()
        encode = shared["png decode"] + t_enc + t_vq + shared["entropy enc"] + shared["container enc"]
        decode = shared["container dec"] + shared["entropy dec"] + t_dec + shared["png encode"]
        base = base or (encode, decode)
        print(
            f"   {variant.name:24s} {1e3 * t_enc:7.1f}ms {1e3 * t_vq:6.1f}ms {1e3 * t_dec:7.1f}ms {1e3 * encode:7.1f}ms {1e3 * decode:7.1f}ms "
            f"{base[0] / encode:6.2f} {base[1] / decode:6.2f} {peak / 2**20:9.0f}  indices {100 * agree:.2f}%, max |px| {max_diff}"
            f" (first call {first:.1f} s)"
        )
        variant.times = {"net": t_enc + t_vq + t_dec, "encoder": t_enc, "VQ": t_vq, "decoder net": t_dec, "encode": encode, "decode": decode}

    reference, default = variants[0].times, next((v.times for v in variants if v.name == "default (auto)"), None)
    if reference and default:
        print(f"   default path ({precision_label(*phase_dtypes('auto', device))}) "
              f"against eager fp32, per phase (x = fp32 time / default time; entropy coding and PNG are the same code in both):")
        for phase in ("encoder", "VQ", "decoder net", "encode", "decode"):
            ratio = reference[phase] / default[phase] if default[phase] else float("nan")
            print(f"      {phase:12s} fp32 {1e3 * reference[phase]:8.1f} ms   default {1e3 * default[phase]:8.1f} ms   x{ratio:5.2f}")
        print(f"      network time of the default path: {1e3 * default['net']:.1f} ms")
        # what Codec.encode adds by default and the authors' code does not have: colour side information
        how = "a quarter of the pixel head" if codec.inference.region_means is not None else "a whole decode"
        t_regions = bench(lambda: codec._decoded_regions(grid, height, width))
        regions = codec._decoded_regions(grid, height, width)
        t_fit = bench(lambda: colour.side_information(pixels, regions, len(payload)))
        with_colour = default["encode"] + t_regions + t_fit
        print(f"      colour side information: decode for the fit ({how}) {1e3 * t_regions:.1f} ms, fit {1e3 * t_fit:.1f} ms")
        print(f"      encode with colour (Codec.encode's default) {1e3 * with_colour:8.1f} ms   vs eager fp32 encode (the authors': no colour) "
              f"x{reference['encode'] / with_colour:5.2f}")

    if device.type == "cuda" and args.official:
        enc_flops, dec_flops = network_flops(net, x)
        name = torch.cuda.get_device_name(device)
        peaks = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
        if peaks is None:
            print(f"   FLOP floor: no peak figures for '{name}'")
            return
        print(f"   network FLOPs: encode {enc_flops / 1e9:.1f} G, decode {dec_flops / 1e9:.1f} G")
        for variant in variants:
            if variant.times:
                floor = (enc_flops + dec_flops) / peaks[1 if variant.dtype or "bfloat16" in variant.name else 0]
                print(f"   {variant.name:24s} network {1e3 * variant.times['net']:.2f} ms = {variant.times['net'] / floor:.1f}x its FLOP floor ({1e3 * floor:.3f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--official", help="official config by bitrate label, e.g. 0.0312 (random weights)")
    group.add_argument("--model", help="model name or weight file")
    parser.add_argument("--size", action="append", help="WIDTHxHEIGHT, repeatable (default 768x512)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", action="append", help="run only paths whose name contains this (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.official:
        torch.manual_seed(0)
        net = CodLiteNet(official_config(args.official))
        codec = Codec(net, weights_digest(net.state_dict()), device=args.device)
    else:
        codec = cod_lite.load_model(args.model, device=args.device)
    variants, skipped = build_variants(codec.net, codec.device)
    if args.only:
        variants = [p for p in variants if p.name == "eager fp32" or any(o in p.name for o in args.only)]
    params = sum(p.numel() for p in codec.net.parameters()) / 1e6
    where = torch.cuda.get_device_name(codec.device) if codec.device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"model {codec.name}: {params:.1f}M parameters; {where}; torch {torch.__version__}; median of {args.repeats} after {args.warmup} warm-up")
    for size in args.size or ["768x512"]:
        width, height = map(int, size.lower().split("x"))
        run_size(codec, variants, skipped, width, height, args)


if __name__ == "__main__":
    main()
