"""Folder conversion throughput: the local engine against Ray on one machine, in one run.

    python benchmarks/convert.py --kodak ../shared/data/kodak            # files/s and MB/s, both engines
    python benchmarks/convert.py --kodak ../shared/data/kodak --threads 16  # one process vs the split
    python benchmarks/convert.py --listing 10000                         # peak memory for a long listing

Throughput: the same images compressed by each engine into a fresh folder: the local engine in one
process with every thread, the local engine as `convert` splits the threads into network
processes (printed where it splits: more than 4 threads), and Ray (the model loaded before the
clock starts for the one-process row; the others' include starting their
processes, cluster and actors, which is what a user waits for). Listing: N tiny
images (16x16) compressed by each engine in a child process, for at most --minutes each; printed:
the files done and the peak RSS of that process and of every process of the run together
(sampled: its children and Ray's raylet, GCS and workers).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cod_lite
from cod_lite.folders import _run_locally, prepare
from cod_lite.processes import cpu_count, split
from cod_lite.tiling import DEFAULT_MAX_MEMORY, parse_memory


def throughput(images: Path, model: str, workers: int, threads: int | None) -> None:
    """The local engine in one process with every thread, the local engine as `convert` splits
    the threads into network processes (where it does), and Ray."""
    size = sum(p.stat().st_size for p in images.iterdir())
    cod_lite.load_model(model)
    threads = threads or cpu_count()
    processes, each = split(threads, len(list(images.iterdir())), parse_memory(DEFAULT_MAX_MEMORY))
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        start = time.perf_counter()
        torch.set_num_threads(threads)
        job = prepare(images, Path(tmp) / "one", model=model)
        _run_locally(job, None, workers, False, None)
        rows.append((f"local, 1 process x {threads} threads", job.summary.done, time.perf_counter() - start))
        engines = [("local", f"local, as split: {processes} x {each}")] if processes > 1 else []
        for engine, label in [*engines, ("ray", "ray")]:
            start = time.perf_counter()
            summary = cod_lite.convert(images, Path(tmp) / label, model=model, engine=engine, workers=workers, progress=False, threads=threads)
            rows.append((label, summary.done, time.perf_counter() - start))
        for label, done, seconds in rows:
            print(f"| {label} | {done} | {seconds:.1f} s | {done / seconds:.3f} | {size / 2**20 / seconds:.2f} | x{rows[0][2] / seconds:.2f} |")


def listing(count: int, model: str, engine: str, minutes: float) -> None:
    """Run in a child: compress `count` tiny images, for at most `minutes`; print the files done
    and the peak, sampled every 0.2 s, of this process's RSS and of every process of the run
    together (this one, its children and Ray's raylet, GCS and workers)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        tiny = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        for i in range(count):
            Image.fromarray(tiny).save(src / f"{i:06d}.png")
        peaks = {"self": 0, "all": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                rss = _rss_by_process()
                peaks["self"] = max(peaks["self"], rss.get(os.getpid(), 0))
                peaks["all"] = max(peaks["all"], sum(rss.values()))

        threading.Thread(target=sample, daemon=True).start()
        start = time.perf_counter()
        worker = threading.Thread(target=cod_lite.convert, args=(src, out), daemon=True,
                                  kwargs={"model": model, "engine": engine, "workers": 1, "progress": False})
        worker.start()
        worker.join(timeout=minutes * 60)
        stop.set()
        done = len(list(out.glob("*.cod"))) if out.is_dir() else 0
        state = "" if not worker.is_alive() else f" (stopped after {minutes:g} min)"
        print(f"| {engine} | {count} | {done}{state} | {time.perf_counter() - start:.0f} s | {peaks['self'] / 2**20:.0f} MiB | "
              f"{peaks['all'] / 2**20:.0f} MiB |", flush=True)
        os._exit(0)  # a Ray run still going is abandoned with the process


def _rss_by_process() -> dict[int, int]:
    """RSS in bytes of this process, its descendants and any Ray process, by pid."""
    me, rss, parents, ray_pids = os.getpid(), {}, {}, set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
            is_ray = b"ray" in (proc / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(proc.name)
        parents[pid] = int(status["PPid"])
        rss[pid] = int(status["VmRSS"].split()[0]) * 1024 if "VmRSS" in status else 0
        if is_ray:
            ray_pids.add(pid)

    def mine(pid: int) -> bool:
        while pid > 1 and pid != me:
            pid = parents.get(pid, 0)
        return pid == me

    return {pid: size for pid, size in rss.items() if pid in ray_pids or mine(pid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", type=Path)
    parser.add_argument("--listing", type=int)
    parser.add_argument("--model", default="default")
    parser.add_argument("--workers", type=int, default=2, help="I/O threads (local), network actors (Ray)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the networks [default: every core]")
    parser.add_argument("--minutes", type=float, default=10.0, help="listing: stop each engine after this long")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kodak:
        print("| engine | files | wall | files/s | MB/s | x one process |\n|---|---|---|---|---|---|")
        throughput(args.kodak, args.model, args.workers, args.threads)
    if args.listing and args.engine:
        listing(args.listing, args.model, args.engine, args.minutes)
    elif args.listing:
        print("| engine | files listed | converted | wall | peak RSS (this process) | peak RSS (every process of the run) |\n|---|---|---|---|---|---|")
        for engine in ("local", "ray"):
            subprocess.run([sys.executable, __file__, "--listing", str(args.listing), "--engine", engine, "--model", args.model,
                            "--minutes", str(args.minutes)], check=True)
    if not (args.kodak or args.listing):
        parser.error("give --kodak DIR and/or --listing N")


if __name__ == "__main__":
    main()
