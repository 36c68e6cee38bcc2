"""Whole-folder conversion: images -> .cod streams or back, resumable, shardable, never stopped by one bad file.

A conversion is checked and planned once (`prepare` -> `Job`), then run by an engine: locally,
on a CPU, by several network processes that each convert a file at a time (`processes`), or in
this process, image decoding and file writing in a thread pool (Pillow and file I/O release the
GIL) while the network runs in the calling thread; or on Ray (`ray_engine`).
Folders may be local or fsspec URLs (`storage.Tree`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import bitstream
from .bitstream import bits_per_pixel
from .codec import Codec, decode, load_model, torch_device
from .effort import check_effort
from .errors import InputError, describe, option
from .image_io import IMAGE_SUFFIXES, SAVE_FORMATS, encode_image, load_image, metadata_kinds, read_metadata, save_format
from .processes import run, split
from .storage import Tree
from .zoo import model_for_bpp, model_for_quality
from .tiling import DEFAULT_MAX_MEMORY, parse_memory

STREAM_SUFFIX = ".cod"
FailureHook = Callable[[str, str], None]


@dataclass
class ConvertSummary:
    """What a `convert` run did; `failed` holds (source path, one-line reason)."""

    done: int = 0
    skipped: int = 0  # outputs that already existed (a rerun resumes)
    ignored: int = 0  # files under SRC that are not inputs of this direction (a README, a .cod when compressing)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    pixels: int = 0
    seconds: float = 0.0
    compressing: bool = True

    @property
    def mean_bpp(self) -> float:
        """Stream bits per pixel over every file converted (compressed side)."""
        stream_bytes = self.bytes_out if self.compressing else self.bytes_in
        return bits_per_pixel(stream_bytes, self.pixels, 1) if self.pixels else 0.0

    @property
    def files_per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        counts = f"{self.done} converted, {len(self.failed)} failed, {self.skipped} already done, {self.ignored} other files left alone"
        if not self.done and not self.failed:
            return f"nothing to do: {counts}"
        return (
            f"{counts}; {self.bytes_in:,} bytes in, {self.bytes_out:,} bytes out"
            + (f"; mean {self.mean_bpp:.4f} bpp; {self.files_per_second:.2f} files/s" if self.done else "")
        )


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"shard must look like I/N (e.g. 0/4), got '{text}'") from None
    if not 0 <= index < count:
        raise InputError(f"shard {text}: need 0 <= I < N")
    return index, count


def in_shard(relative: str, shard: tuple[int, int] | None) -> bool:
    """A file's shard depends only on its path relative to SRC, so every machine agrees."""
    if shard is None:
        return True
    digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "little") % shard[1] == shard[0]


def is_input(tree: Tree, rel: str, decompress: bool) -> bool:
    """Whether a file is something this direction converts: a stream (.cod, or a file that starts
    with the stream magic) when decompressing; an image (a known image suffix, or an unknown one
    whose first bytes Pillow recognises) when compressing, never a stream."""
    suffix = PurePosixPath(rel).suffix.lower()
    if suffix == STREAM_SUFFIX:
        return decompress
    if decompress:
        return tree.head(rel).startswith(bitstream.MAGIC)
    if suffix in IMAGE_SUFFIXES:
        return True
    head = tree.head(rel)
    return not head.startswith(bitstream.MAGIC) and bool(head) and any(
        accept(head) for fmt, accept in _pillow_openers() if fmt != "COD"
    )


def _pillow_openers() -> list[tuple[str, Callable[[bytes], Any]]]:
    """Pillow's registered formats and their signature checks (formats without one are left out:
    they would claim any bytes)."""
    from PIL import Image

    Image.init()
    return [(fmt, accept) for fmt, (_, accept) in Image.OPEN.items() if accept is not None]


def plan(
    src: Tree, dst: Tree, decompress: bool, image_format: str, shard: tuple[int, int] | None,
    include: Sequence[str] = (), exclude: Sequence[str] = (),
) -> tuple[list[tuple[str, str]], int]:
    """(source, output) relative paths for every input under src in this shard (sorted; non-hidden
    regular files that `is_input` accepts, match an `include` glob if any is given and no
    `exclude` glob; globs match the relative path or the file name), and how many other files
    were left alone."""
    if not src.is_folder():
        raise InputError(f"'{src.location}' is not a folder")
    if src.contains(dst):
        raise InputError(f"the output folder '{dst.location}' must not be the input folder '{src.location}' or lie inside it")
    pairs, ignored = [], 0
    for rel in src.files():
        if not in_shard(rel, shard):
            continue
        name = PurePosixPath(rel)
        matches = lambda globs: any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name.name, g) for g in globs)  # noqa: E731
        if (include and not matches(include)) or matches(exclude) or not is_input(src, rel, decompress):
            ignored += 1
            continue
        if decompress:
            stem = name.name[: -len(STREAM_SUFFIX)] if name.name.endswith(STREAM_SUFFIX) else name.name
            out = name.parent / f"{PurePosixPath(stem).stem}.{image_format}"
        else:
            out = name.parent / f"{name.stem}{STREAM_SUFFIX}"
        pairs.append((rel, out.as_posix()))
    return pairs, ignored


@dataclass
class Job:
    """One conversion, checked and planned: what both engines (this module's threads and
    `ray_engine`) run. `todo` holds (source, output) paths relative to the two trees."""

    src: Tree
    dst: Tree
    decompress: bool
    todo: list[tuple[str, str]]
    summary: ConvertSummary
    model: str | os.PathLike | Codec | None
    options: dict[str, Any]  # load_model's
    coding: dict[str, Any]  # steps/seed when decoding, colour when encoding
    kinds: tuple[str, ...]  # metadata carried
    image_format: str
    quality: int | None
    force: bool

    def codec(self) -> Codec | None:
        """The model files are converted with (None: decompressing, each stream names its own)."""
        if isinstance(self.model, Codec):
            return self.model
        return None if self.decompress and self.model is None else load_model(self.model or "default", **self.options)

    def load(self, rel: str) -> Any:
        """A source's input: a stream's bytes, or an image's (pixels, metadata of `kinds`)."""
        data = self.src.read(rel)
        if self.decompress:
            return data
        return load_image(data), (read_metadata(data, self.kinds) if self.kinds else {})

    def output(self, data_in: Any, result: Any) -> tuple[bytes, int]:
        """(the output file's bytes, pixels) of one converted file."""
        if not self.decompress:
            return result, data_in[0].shape[0] * data_in[0].shape[1]
        carried = {k: v for k, v in bitstream.parse(data_in).metadata.items() if k in self.kinds}
        return encode_image(result, f".{self.image_format}", carried, self.quality), result.shape[0] * result.shape[1]

    def convert(self, codec: Codec | None, inputs: list[Any]) -> list[Any]:
        """Streams or images for loaded inputs, through the network together where they can go
        (`encode_many`/`decode_many`); if that fails, one by one, so an error is charged to the
        file that caused it (an exception in its place)."""
        if codec is not None:  # without one, each stream names its own model: file by file
            try:
                if self.decompress:
                    return codec.decode_many(inputs, **self.coding)
                return codec.encode_many([p for p, _ in inputs], metadata=[m for _, m in inputs], **self.coding)
            except Exception:  # noqa: BLE001 - retried file by file below
                pass
        results: list[Any] = []
        for data in inputs:
            try:
                if not self.decompress:
                    results.append(codec.encode_many([data[0]], metadata=[data[1]], **self.coding)[0])
                else:
                    results.append(np.asarray(codec.decode(data, **self.coding) if codec else decode(data, **self.options, **self.coding)))
            except Exception as e:  # noqa: BLE001
                results.append(e)
        return results

    def run(self, codec: Codec | None, item: tuple[str, str]) -> tuple[int, int, int]:
        """One file start to end, (source, output) -> (bytes in, bytes out, pixels); raises what
        stopped it. What each network process does (`processes.run`)."""
        rel, out = item
        data_in = self.load(rel)
        (result,) = self.convert(codec, [data_in])
        if isinstance(result, Exception):
            raise result
        data_out, pixels = self.output(data_in, result)
        bytes_out = self.dst.write(out, data_out, self.force)
        return (len(data_in) if self.decompress else self.src.size(rel)), bytes_out, pixels


def prepare(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    model: str | os.PathLike | Codec | None = None,
    decompress: bool = False,
    image_format: str = "png",
    shard: str | tuple[int, int] | None = None,
    force: bool = False,
    on_failure: FailureHook | None = None,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
    compile: bool = False,
    device: str | None = None,
    precision: str = "auto",
    steps: int | None = None,
    seed: int | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    bpp: float | None = None,
    quality: int | None = None,
    metadata: str | Sequence[str] | None = None,
    colour: bool = True,
    effort: int = 0,
    backend: str = "torch",
    storage_options: dict[str, Any] | None = None,
) -> Job:
    """`convert`'s arguments checked once (before any file) and its files planned: what is to do,
    what is already done (skipped) and what would collide (failed)."""
    source, target = Tree(src, storage_options), Tree(dst, storage_options)
    if isinstance(shard, str):
        shard = parse_shard(shard)
    image_format = image_format.lower().lstrip(".")
    if decompress:  # an unknown or unwritable format, or a quality it does not take, fails here, not once per file
        if f".{image_format}" not in SAVE_FORMATS:
            raise InputError(f"cannot write images as '{image_format}'; use one of {', '.join(s[1:] for s in SAVE_FORMATS)}")
        save_format(f"image.{image_format}", quality)
    elif quality is not None:
        if model is not None or bpp is not None:
            raise InputError(f"give one of {option('--model, --bpp and --quality', 'model=, bpp= and quality=')}, not several")
        model = model_for_quality(quality)
    if bpp is not None:
        if decompress or model is not None:
            raise InputError(f"{option('--bpp', 'bpp=')} picks the model streams are made with: give it when compressing, instead of {option('--model', 'model=')}")
        model = model_for_bpp(bpp)
    if not decompress and (steps is not None or seed is not None):
        raise InputError(f"steps and seed choose how streams are decoded; they need {option('--decompress', 'decompress=True')}")
    if effort and decompress:
        raise InputError(f"effort is the encoder's search: give {option('--effort', 'effort=')} when compressing")
    pairs, ignored = plan(source, target, decompress, image_format, shard, include, exclude)
    device_name = str(torch_device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    options = {"max_memory": max_memory, "compile": compile, "device": device_name, "precision": precision, "backend": backend}
    summary = ConvertSummary(compressing=not decompress, ignored=ignored)
    todo, claimed = [], {}
    for rel, out in pairs:
        if out in claimed:
            _fail(summary, on_failure, source.label(rel), f"its output {target.label(out)} would also be written from {source.label(claimed[out])}")
        elif target.exists(out) and not force:
            summary.skipped += 1
        else:
            claimed[out] = rel
            todo.append((rel, out))
    kinds = metadata_kinds(metadata if metadata is not None else ("all" if decompress else "none"))
    coding = {"steps": steps, "seed": seed} if decompress else {"colour": colour, "effort": check_effort(effort)}
    return Job(source, target, decompress, todo, summary, model, options, coding, kinds, image_format, quality, force)


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    engine: str = "local",
    workers: int = 4,
    progress: bool = True,
    on_failure: FailureHook | None = None,
    batch_size: int | None = None,
    address: str | None = None,
    gpus_per_worker: float = 0.0,
    threads: int | None = None,
    **options: Any,
) -> ConvertSummary:
    """Convert every file under `src` into the mirrored tree under `dst` (see module docstring);
    either may be a local folder or an fsspec URL (s3://bucket/photos, memory://..., with
    `storage_options`).

    Existing outputs are skipped unless `force`, so an interrupted run resumes. A file that
    cannot be converted is recorded in the summary (and passed to `on_failure(path, message)`),
    and the run goes on. `model`, `max_memory`, `compile`, `precision`, `backend` and `device`
    are as in `load_model`; `device` None means CUDA when available. Up to `batch_size` files
    (default 8 on a GPU, 1 on a CPU, where batching gains nothing) go through the network together
    when they have one size. `steps` / `seed` (with `decompress` only) are as in `decode`: every
    stream gets the same. `bpp` or `quality` (0-100) pick the bundled model when compressing, as
    `codlite compress`; decompressing, `quality` is that of lossy output formats (default 90).
    `metadata`: what of the EXIF/ICC/XMP goes along (default: none into streams, all of a
    stream's into images); `colour`: colour side information in the streams; `effort` (0-3): the
    encoder's search for better indices (`cod_lite.effort`). Only inputs of the
    direction are converted (`is_input`: images, or streams with `decompress`; `include` /
    `exclude` globs narrow them); other files are counted as left alone, never failed.

    `engine="ray"` runs the same job on a Ray cluster (`ray_engine`: `address`, `workers` actors
    with `gpus_per_worker` each). The default "local" engine splits `threads` (default: every core
    this process may use) into network processes on a CPU, one file at a time each
    (`processes.split`: as many as the threads, the files and the memory at `max_memory` per image
    allow); with one process, or on a GPU, it runs the network here with `workers` I/O threads
    beside it. In a script, call it under `if __name__ == "__main__":`, as for any use of
    multiprocessing (the processes are spawned).
    """
    job = prepare(src, dst, on_failure=on_failure, **options)
    start = time.perf_counter()
    if engine == "ray":
        from .ray_engine import run as run_on_ray

        run_on_ray(job, on_failure, workers=workers, address=address, gpus_per_worker=gpus_per_worker, batch_size=batch_size or 1)
    elif engine == "local":
        processes, threads_each = _split(job, threads)
        if processes > 1:
            _run_in_processes(job, on_failure, processes, threads_each, progress)
        else:
            if threads:
                torch.set_num_threads(threads)
            _run_locally(job, on_failure, workers, progress, batch_size)
    else:
        raise InputError(f"unknown engine '{engine}'; use local or ray")
    job.summary.seconds = time.perf_counter() - start
    return job.summary


def _run_locally(job: Job, on_failure: FailureHook | None, workers: int, progress: bool, batch_size: int | None) -> None:
    codec = job.codec()
    if codec is not None and job.coding.get("steps") is not None:
        codec.steps_for(job.coding["steps"])  # a one-step model refuses once, not once per file
    batch_size = batch_size or (8 if torch.device(job.options["device"]).type == "cuda" else 1)
    summary = job.summary
    bar = tqdm(total=len(job.todo), unit="file", disable=not progress, dynamic_ncols=True)
    with bar, ThreadPoolExecutor(max(1, workers)) as pool:
        writes: list[tuple[str, Future]] = []
        pending = _prefetch(pool, job, max(workers, batch_size))
        while chunk := list(itertools.islice(pending, batch_size)):
            loaded = []
            for rel, out, future in chunk:
                try:
                    loaded.append((rel, out, future.result()))
                except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                    _fail(summary, on_failure, job.src.label(rel), describe(e))
            results = job.convert(codec, [data for _, _, data in loaded])
            for (rel, out, data_in), result in zip(loaded, results):
                try:
                    if isinstance(result, Exception):
                        raise result
                    data_out, pixels = job.output(data_in, result)
                    writes.append((job.src.label(rel), pool.submit(job.dst.write, out, data_out, job.force)))
                    summary.bytes_in += len(data_in) if job.decompress else job.src.size(rel)
                    summary.pixels += pixels
                    if not job.decompress:
                        bar.set_postfix(bpp=f"{bits_per_pixel(len(result), pixels, 1):.4f}")
                except Exception as e:  # noqa: BLE001
                    _fail(summary, on_failure, job.src.label(rel), describe(e))
            bar.update(len(chunk))
            writes = _collect(writes, summary, on_failure, wait=False)
        _collect(writes, summary, on_failure, wait=True)


def _split(job: Job, threads: int | None) -> tuple[int, int]:
    """(network processes, threads each) for a local run (`processes.split`): one process where the
    network is a Codec the caller built."""
    if isinstance(job.model, Codec):
        return 1, threads or 0
    return split(threads, len(job.todo), parse_memory(job.options["max_memory"]), device=job.options["device"])


def _run_in_processes(job: Job, on_failure: FailureHook | None, processes: int, threads: int, progress: bool) -> None:
    summary = job.summary
    with tqdm(total=len(job.todo), unit="file", disable=not progress, dynamic_ncols=True) as bar:
        for (rel, _), ok, result in run(job, job.todo, processes, threads):
            if ok:
                bytes_in, bytes_out, pixels = result
                summary.done += 1
                summary.bytes_in += bytes_in
                summary.bytes_out += bytes_out
                summary.pixels += pixels
            else:
                _fail(summary, on_failure, job.src.label(rel), result)
            bar.update(1)


def _prefetch(pool: ThreadPoolExecutor, job: Job, depth: int) -> Iterator[tuple[str, str, Future]]:
    """Yield (source, output, future of its input) with up to `depth` inputs loading ahead."""
    futures: list[tuple[str, str, Future]] = []
    for rel, out in job.todo:
        futures.append((rel, out, pool.submit(job.load, rel)))
        if len(futures) > depth:
            yield futures.pop(0)
    yield from futures


def _collect(writes: list[tuple[str, Future]], summary: ConvertSummary, on_failure: FailureHook | None, wait: bool) -> list[tuple[str, Future]]:
    pending = []
    for source, future in writes:
        if not wait and not future.done():
            pending.append((source, future))
            continue
        try:
            summary.bytes_out += future.result()
            summary.done += 1
        except Exception as e:  # noqa: BLE001
            _fail(summary, on_failure, source, describe(e))
    return pending


def _fail(summary: ConvertSummary, on_failure: FailureHook | None, source: str, message: str) -> None:
    summary.failed.append((source, message))
    if on_failure is not None:
        on_failure(source, message)
