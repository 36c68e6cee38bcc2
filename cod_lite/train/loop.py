"""The training loop shared by every stage: optimiser steps, logging and the discriminator's
step; the parts it drives live beside it (settings, objectives, schedule, ema, checkpoint).

Checkpoints in --out: `last.safetensors` (the EMA weights: a complete cod-lite model file)
and `last_state.pt` (raw weights, optimiser, step; read back with weights_only=True).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..kernels.fast import PRECISIONS, device_has_native_bf16
from ..models.config import ModelConfig
from ..models.network import CodLiteNet
from ..models.sampling import Sampling
from ..weights import load_weights
from .checkpoint import WEIGHTS_FILE, load_run, save_run
from .data import CropSampler
from .ema import EMA
from .objectives import make_objective
from .schedule import lr_factor
from .settings import TrainSettings
from .vq import CodeUsage

__all__ = ["TrainSettings", "hardware", "load_matching", "train", "trains_in_bf16"]
TRAIN_PRECISIONS = tuple(p for p in PRECISIONS if p != "triton")  # the Triton kernels are inference-only


def load_matching(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Load every tensor whose name and shape match (e.g. the denoiser of a model with another ds);
    returns how many were loaded."""
    own = net.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(matching, strict=False)
    return len(matching)


def trains_in_bf16(precision: str, device: torch.device) -> bool:
    """Whether a run autocasts to bf16: asked for, or `auto` where the device has it natively."""
    return precision == "bf16" or (precision == "auto" and device_has_native_bf16(device))


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def _start_processes(settings: TrainSettings) -> tuple[bool, int, torch.device]:
    """(distributed, rank, device): torchrun's WORLD_SIZE > 1 starts a process group (NCCL on
    CUDA, else gloo); each process takes the GPU of its LOCAL_RANK."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    use_cuda = torch.cuda.is_available() if settings.device is None else settings.device.startswith("cuda")
    if distributed:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    return distributed, rank, torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")


def train(settings: TrainSettings, config: ModelConfig, on_save: Callable[[Path, int], None] | None = None) -> Path:
    """Run (or resume) a stage until --steps, --max-minutes or the deadline; returns the EMA
    weight file. `on_save(ema_file, step)` runs after every checkpoint (e.g. to export a copy)."""
    if settings.precision not in TRAIN_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, not {settings.precision!r}")
    start = time.time()
    budget = None if settings.max_minutes is None else start + 60 * settings.max_minutes
    stop_at = min((t for t in (settings.deadline, budget) if t is not None), default=math.inf)
    if settings.time_schedule and stop_at == math.inf:
        raise ValueError("time_schedule needs --max-minutes or a deadline")
    distributed, rank, device = _start_processes(settings)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = settings.max_crop is None  # one crop size all run long: autotune once
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed + rank)

    net = CodLiteNet(config)
    step = 0
    resumed = load_run(out, settings)
    saved: dict = resumed[0] if resumed else {}
    if resumed:
        net.load_state_dict(saved["model"])
        step = int(saved["step"])
    elif settings.init:
        _, init_state, _ = load_weights(settings.init)
        loaded = load_matching(net, init_state)
        print(f"initialised {loaded} of {len(net.state_dict())} tensors from {settings.init}")
    net.to(device, memory_format=memory_format).train()
    if settings.encoder_frozen:  # the indices, and so an --init model's fitted prior, stay valid
        net.y_embedder.encoder.requires_grad_(False).eval()
        net.y_embedder.bottleneck.requires_grad_(False)
    if settings.refiner_only:
        if net.refine is None:
            raise ValueError("refiner_only needs a model with a seam refiner (--refine-channels > 0)")
        net.requires_grad_(False).eval()  # eval: the frozen layers run exactly as the codec runs them
        net.refine.requires_grad_(True).train()
    ema = EMA(net, settings.ema_decay)
    if resumed:
        ema.model.load_state_dict(resumed[1])

    objective = make_objective(net, settings).to(device, memory_format=memory_format)
    if saved.get("aux"):
        objective.load_state_dict(saved["aux"], strict=False)
    model = torch.nn.parallel.DistributedDataParallel(objective, find_unused_parameters=objective.discriminator is not None) if distributed else objective
    if settings.compile:
        model = torch.compile(model)
    trained = [(n, p) for n, p in objective.named_parameters() if p.requires_grad and not n.startswith("discriminator.")]
    generator = [p for _, p in trained]
    refiner = [p for n, p in trained if n.startswith("net.refine.")]
    groups = [{"params": [p for n, p in trained if not n.startswith("net.refine.")]}]
    lr_scales = [1.0]
    if refiner:
        groups.append({"params": refiner})
        lr_scales.append(settings.refine_lr_scale)
    optimizer = torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.99), weight_decay=0.0)
    d_optimizer = None
    if objective.discriminator is not None:
        d_optimizer = torch.optim.Adam(objective.discriminator.parameters(), lr=settings.d_lr, betas=(0.0, 0.99))
    if resumed:
        optimizer.load_state_dict(saved["optimizer"])
        if d_optimizer is not None and "d_optimizer" in saved:
            d_optimizer.load_state_dict(saved["d_optimizer"])
    sampler = CropSampler(settings.data, settings.crop, seed=settings.seed + 1000 * rank + step, max_crop=settings.max_crop)
    usage = CodeUsage(config.codebook_size)
    bf16 = trains_in_bf16(settings.precision, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    ema_file = out / WEIGHTS_FILE

    def save() -> None:
        if rank:
            return
        info = {
            "stage": settings.stage, "steps": step, "data": os.path.abspath(settings.data), "hardware": hardware(),
            "settings": {k: v for k, v in asdict(settings).items() if k not in ("data", "out")},
        }
        state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "aux": objective.trainable_state()}
        if d_optimizer is not None:
            state["d_optimizer"] = d_optimizer.state_dict()
        sampling = Sampling() if settings.stage == "pretrain" else None  # rectified flow: --steps works
        save_run(out, config, ema.state_dict(), info, state, sampling)

    log = open(out / "train.log", "a") if rank == 0 else None
    last_log = last_save = time.time()
    saved_step = -1
    window: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    bar = tqdm(total=settings.steps, initial=step, disable=rank != 0, dynamic_ncols=True)
    try:
        while step < settings.steps:
            now = time.time()
            if now >= stop_at:
                break
            time_progress = (now - start) / (stop_at - start) if settings.time_schedule else None
            for group, scale in zip(optimizer.param_groups, lr_scales):
                group["lr"] = settings.lr * scale * lr_factor(step, settings, time_progress)
            x = sampler.batch(settings.batch_size).to(device, memory_format=memory_format)
            with autocast:
                losses, z, indices, pred = model(x)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(generator, 1.0)
            optimizer.step()
            if d_optimizer is not None:
                with autocast:
                    losses["gan_d"] = objective.discriminator_loss(x, pred)
                d_optimizer.zero_grad(set_to_none=True)
                losses["gan_d"].backward()
                if distributed:  # the discriminator step runs outside DDP: average its gradients by hand
                    for p in objective.discriminator.parameters():
                        dist.all_reduce(p.grad)
                        p.grad /= dist.get_world_size()
                d_optimizer.step()
            step += 1
            ema.update(net, step)
            usage.update(indices)
            bar.update(1)
            for k, v in losses.items():  # summed on the device: no host sync per step
                window[k] = window.get(k, 0.0) + v.detach()
                counts[k] = counts.get(k, 0) + 1  # pretrain's t = 0 terms exist only on steps with t = 0 samples
            if step % settings.log_every == 0 and log:
                values = {k: round(float(v) / counts[k], 5) for k, v in window.items()}  # means over the window
                seconds, last_log = time.time() - last_log, time.time()  # after float(): the device has finished
                rate = settings.log_every * settings.batch_size / seconds
                bar.set_postfix(loss=values["total"], img_s=f"{rate:.1f}")
                log.write(json.dumps({"step": step, **values, "codes_used": usage.used(), "perplexity": round(usage.perplexity(), 1),
                                      "s_step": round(seconds / settings.log_every, 4), "img_s": round(rate, 2)}) + "\n")
                log.flush()
            if step % settings.log_every == 0:
                window.clear()
                counts.clear()
            if settings.restart_every and step % settings.restart_every == 0 and step < 0.8 * settings.steps and not settings.encoder_frozen:  # let the EMA settle at the end
                restarted = usage.restart_dead(net.y_embedder.bottleneck, z) if rank == 0 else 0
                if distributed:
                    dist.broadcast(net.y_embedder.bottleneck.embedding.weight.data, 0)
                if log and restarted:
                    log.write(f"step {step} restarted {restarted} dead codes\n")
            if step % settings.save_every == 0 or (settings.save_minutes and time.time() - last_save > 60 * settings.save_minutes):
                save()
                last_save, saved_step = time.time(), step
                if on_save and rank == 0:
                    on_save(ema_file, step)
        if step != saved_step or not ema_file.exists():
            save()
            if on_save and rank == 0:
                on_save(ema_file, step)
    finally:
        bar.close()
        if log:
            log.close()
        if distributed:
            dist.destroy_process_group()
    return ema_file

