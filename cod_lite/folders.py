"""Whole-folder conversion: images -> .cod streams or back, resumable, shardable, never stopped by one bad file.

Image decoding and file writing run in a thread pool (Pillow and file I/O release the GIL) while
the network runs in the calling thread, so I/O overlaps with compute.
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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import bitstream
from .bitstream import bits_per_pixel
from .codec import Codec, decode, load_model, torch_device
from .errors import CodLiteError, InputError, option
from .fileio import atomic_write, read_input
from .image_io import IMAGE_SUFFIXES, SAVE_FORMATS, load_image, metadata_kinds, read_metadata, save_format, save_image
from .zoo import model_for_bpp, model_for_quality
from .tiling import DEFAULT_MAX_MEMORY

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


def is_input(path: Path, decompress: bool) -> bool:
    """Whether a file is something this direction converts: a stream (.cod, or a file that starts
    with the stream magic) when decompressing; an image (a known image suffix, or an unknown one
    whose first bytes Pillow recognises) when compressing, never a stream."""
    suffix = path.suffix.lower()
    if suffix == STREAM_SUFFIX:
        return decompress
    if decompress:
        return _head(path).startswith(bitstream.MAGIC)
    if suffix in IMAGE_SUFFIXES:
        return True
    head = _head(path)
    return not head.startswith(bitstream.MAGIC) and bool(head) and any(
        accept(head) for fmt, accept in _pillow_openers() if fmt != "COD"
    )


def _head(path: Path, size: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def _pillow_openers() -> list[tuple[str, Callable[[bytes], Any]]]:
    """Pillow's registered formats and their signature checks (formats without one are left out:
    they would claim any bytes)."""
    from PIL import Image

    Image.init()
    return [(fmt, accept) for fmt, (_, accept) in Image.OPEN.items() if accept is not None]


def plan(
    src: Path, dst: Path, decompress: bool, image_format: str, shard: tuple[int, int] | None,
    include: Sequence[str] = (), exclude: Sequence[str] = (),
) -> tuple[list[tuple[Path, Path]], int]:
    """(source, output) for every input under src in this shard (sorted; non-hidden regular files
    that `is_input` accepts, match an `include` glob if any is given and no `exclude` glob; globs
    match the path relative to src or the file name), and how many other files were left alone."""
    if not src.is_dir():
        raise InputError(f"'{src}' is not a folder")
    if dst.resolve().is_relative_to(src.resolve()):
        raise InputError(f"the output folder '{dst}' must not be the input folder '{src}' or lie inside it")
    pairs, ignored = [], 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if not in_shard(rel.as_posix(), shard):
            continue
        matches = lambda globs: any(fnmatch.fnmatch(rel.as_posix(), g) or fnmatch.fnmatch(rel.name, g) for g in globs)  # noqa: E731
        if (include and not matches(include)) or matches(exclude) or not is_input(path, decompress):
            ignored += 1
            continue
        if decompress:
            name = rel.name[: -len(STREAM_SUFFIX)] if rel.name.endswith(STREAM_SUFFIX) else rel.name
            out = dst / rel.parent / f"{Path(name).stem}.{image_format}"
        else:
            out = dst / rel.parent / f"{rel.stem}{STREAM_SUFFIX}"
        pairs.append((path, out))
    return pairs, ignored


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    model: str | os.PathLike | Codec | None = None,
    decompress: bool = False,
    image_format: str = "png",
    workers: int = 4,
    shard: str | tuple[int, int] | None = None,
    force: bool = False,
    progress: bool = True,
    on_failure: FailureHook | None = None,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
    compile: bool = False,
    device: str | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    steps: int | None = None,
    seed: int | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    bpp: float | None = None,
    quality: int | None = None,
    metadata: str | Sequence[str] | None = None,
    colour: bool = True,
    backend: str = "torch",
) -> ConvertSummary:
    """Convert every file under `src` into the mirrored tree under `dst` (see module docstring).

    Existing outputs are skipped unless `force`, so an interrupted run resumes. A file that
    cannot be converted is recorded in the summary (and passed to `on_failure(path, message)`),
    and the run goes on. `max_memory`, `compile`, `precision`, `backend` and `device` are as in `load_model`; `device`
    None means CUDA when available. Up to `batch_size` files (default 8 on a GPU, 1 on a CPU,
    where batching gains nothing) go through the network together when they have one size.
    `steps` / `seed` (with `decompress` only) are as in `decode`: every stream gets the same.
    `bpp` or `quality` (0-100) pick the bundled model when compressing, as `codlite compress`;
    decompressing, `quality` is that of lossy output formats (default 90). `metadata`: what of the
    EXIF/ICC/XMP goes along (default: none into streams, all of a stream's into images);
    `colour`: colour side information in the streams.
    Only inputs of the direction are converted (`is_input`: images, or streams with `decompress`;
    `include` / `exclude` globs narrow them); other files are counted as left alone, never failed.
    Decompressed images keep the EXIF, ICC profile and XMP their streams carry.
    """
    src, dst = Path(src), Path(dst)
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
    pairs, ignored = plan(src, dst, decompress, image_format, shard, include, exclude)
    target = torch_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch_size = batch_size or (8 if target.type == "cuda" else 1)
    options = {"max_memory": max_memory, "compile": compile, "device": str(target), "precision": precision, "backend": backend}
    codec = model if isinstance(model, Codec) else (None if decompress and model is None else load_model(model or "default", **options))
    kinds = metadata_kinds(metadata if metadata is not None else ("all" if decompress else "none"))
    sampling = {"steps": steps, "seed": seed} if decompress else {"colour": colour}
    if codec is not None and steps is not None:
        codec.steps_for(steps)  # a one-step model refuses once, not once per file
    summary = ConvertSummary(compressing=not decompress, ignored=ignored)
    start = time.perf_counter()
    todo, claimed = [], {}
    for source, out in pairs:
        if out in claimed:
            _fail(summary, on_failure, source, f"its output {out} would also be written from {claimed[out]}")
        elif os.path.lexists(out) and not force:
            summary.skipped += 1
        else:
            claimed[out] = source
            todo.append((source, out))

    bar = tqdm(total=len(todo), unit="file", disable=not progress, dynamic_ncols=True)
    with bar, ThreadPoolExecutor(max(1, workers)) as pool:
        writes: list[tuple[Path, Future]] = []
        pending = _prefetch(pool, todo, decompress, kinds, max(workers, batch_size))
        while chunk := list(itertools.islice(pending, batch_size)):
            loaded = []
            for source, out, future in chunk:
                try:
                    loaded.append((source, out, future.result()))
                except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                    _fail(summary, on_failure, source, _describe(e))
            for source, out, data_in, result in _convert_chunk(codec, loaded, decompress, options, sampling):
                try:
                    if isinstance(result, Exception):
                        raise result
                    pixels = result if decompress else data_in[0]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    if decompress:
                        carried = {k: v for k, v in bitstream.parse(data_in).metadata.items() if k in kinds}
                        writes.append((source, pool.submit(save_image, pixels, out, overwrite=force, metadata=carried, quality=quality)))
                        summary.bytes_in += len(data_in)
                    else:
                        writes.append((source, pool.submit(atomic_write, out, result, overwrite=force)))
                        summary.bytes_in += source.stat().st_size
                        bar.set_postfix(bpp=f"{bits_per_pixel(len(result), pixels.shape[1], pixels.shape[0]):.4f}")
                    summary.pixels += pixels.shape[0] * pixels.shape[1]
                except Exception as e:  # noqa: BLE001
                    _fail(summary, on_failure, source, _describe(e))
            bar.update(len(chunk))
            writes = _collect(writes, summary, on_failure, wait=False)
        _collect(writes, summary, on_failure, wait=True)
    summary.seconds = time.perf_counter() - start
    return summary


def _convert_chunk(
    codec: Codec | None, loaded: list[tuple[Path, Path, Any]], decompress: bool, options: dict[str, Any], sampling: dict[str, Any],
) -> list[tuple[Path, Path, Any, Any]]:
    """(source, output, input, stream or image or the exception) per loaded file. Files go through
    the network together (`encode_many`/`decode_many`); if that fails, one by one, so an error
    is charged to the file that caused it. `sampling`: the steps/seed of decoding, or the colour
    choice of encoding. Inputs are streams, or (pixels, metadata) when encoding."""
    inputs = [data for _, _, data in loaded]
    results = _run(codec, inputs, decompress, options, sampling)
    return [(source, out, data, result) for (source, out, data), result in zip(loaded, results)]


def _run(codec: Codec | None, inputs: list[Any], decompress: bool, options: dict[str, Any], sampling: dict[str, Any]) -> list[Any]:
    if codec is not None:  # without one, each stream names its own model: file by file
        try:
            if decompress:
                return codec.decode_many(inputs, **sampling)
            return codec.encode_many([p for p, _ in inputs], metadata=[m for _, m in inputs], **sampling)
        except Exception:  # noqa: BLE001 - retried file by file below
            pass
    results: list[Any] = []
    for data in inputs:
        try:
            if not decompress:
                results.append(codec.encode_many([data[0]], metadata=[data[1]], **sampling)[0])
            else:
                results.append(np.asarray(codec.decode(data, **sampling) if codec else decode(data, **options, **sampling)))
        except Exception as e:  # noqa: BLE001
            results.append(e)
    return results


def _prefetch(
    pool: ThreadPoolExecutor, todo: list[tuple[Path, Path]], decompress: bool, kinds: tuple[str, ...], depth: int,
) -> Iterator[tuple[Path, Path, Future]]:
    """Yield (source, output, future of its input) with up to `depth` inputs loading ahead: a
    stream's bytes, or an image's (pixels, metadata of `kinds`)."""
    reader = read_input if decompress else lambda path: (load_image(path), read_metadata(path, kinds) if kinds else {})
    futures: list[tuple[Path, Path, Future]] = []
    for source, out in todo:
        futures.append((source, out, pool.submit(reader, source)))
        if len(futures) > depth:
            yield futures.pop(0)
    yield from futures


def _collect(writes: list[tuple[Path, Future]], summary: ConvertSummary, on_failure: FailureHook | None, wait: bool) -> list[tuple[Path, Future]]:
    pending = []
    for source, future in writes:
        if not wait and not future.done():
            pending.append((source, future))
            continue
        try:
            summary.bytes_out += Path(future.result()).stat().st_size
            summary.done += 1
        except Exception as e:  # noqa: BLE001
            _fail(summary, on_failure, source, _describe(e))
    return pending


def _describe(error: Exception) -> str:
    return str(error) if isinstance(error, (CodLiteError, OSError)) else f"{type(error).__name__}: {error}"


def _fail(summary: ConvertSummary, on_failure: FailureHook | None, source: Path, message: str) -> None:
    summary.failed.append((str(source), message))
    if on_failure is not None:
        on_failure(str(source), message)
