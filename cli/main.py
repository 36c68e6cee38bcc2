"""`codlite`: the command-line face of cod_lite. Every command is a thin call into the library."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import click
from tqdm import tqdm

import cod_lite
from cod_lite_cli.train import train_group
from cod_lite.files import DEFAULT_MAX_MEMORY, IMAGE_FORMATS, MAX_SEED, STDIO, atomic_write, check_target, each_file, parse_memory, read_input

def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The command's failures as one line on stderr and an exit status (`errors.exit_status`)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        status = cod_lite.exit_status(lambda: command(*args, **kwargs))
        if status:
            sys.exit(status)

    return wrapper


def _report_failure(path: str, message: str) -> None:
    """One line per file that failed inside a batch command; the batch goes on."""
    click.echo(f"codlite: failed: {path}: {message}", err=True)


force_option = click.option("--force", "-f", is_flag=True, help="Replace OUTPUT if it already exists.")
model_option = click.option("--model", "-m", default=None, help="Model name (see `codlite models`) or weight-file path.")
bpp_option = click.option("--bpp", "target_bpp", type=float, default=None, metavar="RATE",
                          help="Use the bundled model whose rate is closest to RATE bits per pixel (instead of --model).")
device_option = click.option("--device", default=None, help="torch device, e.g. cpu or cuda:0 [default: cpu; convert: cuda if available]")
effort_option = click.option(
    "--effort", type=click.IntRange(0, 3), default=0, show_default=True,
    help="Encoder search for indices that decode closer to the image: truer colour, a little more PSNR, 1-4 % more bits; 5-13x slower (docs/models.md).",
)
no_colour_option = click.option("--no-colour", "no_colour", is_flag=True,
                                help="Send no colour correction (a few bytes, sent where they remove a visible cast; encoding then decodes once).")


def quality_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--quality", "quality", type=click.IntRange(0, 100), default=None, metavar="0-100", help=what)


COMPRESS_QUALITY = "Pick the bundled model by quality, as cwebp -q: 0 the lowest rate, 100 the highest (instead of --model)."
OUTPUT_QUALITY = "Quality of lossy image outputs (jpg, webp, avif, jxl) [default: 90]."


def _model_choice(model: str | None, target_bpp: float | None, quality: int | None) -> str:
    """The model --model, --bpp or --quality names (one of them at most)."""
    given = [name for name, value in (("--model", model), ("--bpp", target_bpp), ("--quality", quality)) if value is not None]
    if len(given) > 1:
        raise cod_lite.InputError(f"give one of --model, --bpp and --quality, not {' and '.join(given)}")
    if target_bpp is not None:
        return cod_lite.model_for_bpp(target_bpp)
    if quality is not None:
        return cod_lite.model_for_quality(quality)
    return model or "default"


def _no_binary_to_terminal(output: str, what: str) -> None:
    """Refuse binary data on a terminal, as zstd and cwebp do: it would only garble the screen."""
    if output == STDIO and sys.stdout.isatty():
        raise cod_lite.InputError(f"refusing to write {what} to a terminal; redirect standard output (> file) or name an OUTPUT file")


def _progress() -> bool:
    """Progress bars only where a person watches: stderr is a terminal."""
    return sys.stderr.isatty()


def _paths(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """INPUT... OUTPUT as (inputs, output), with a message that names what is missing."""
    if not values:
        raise click.UsageError("missing INPUT and OUTPUT", ctx)
    if len(values) == 1:
        raise click.UsageError(f"missing OUTPUT after '{values[0]}': name the file to write (- for standard output)", ctx)
    return values[:-1], values[-1]
memory_option = click.option(
    "--max-memory",
    default=f"{DEFAULT_MAX_MEMORY >> 30}G",
    show_default=True,
    metavar="SIZE",
    help="Working-memory budget per image (e.g. 4G, 512M); larger images run in tiles, approximating the untiled result.",
)


precision_option = click.option(
    "--precision",
    type=click.Choice(cod_lite.PRECISIONS),
    default="auto",
    show_default=True,
    help="Network arithmetic: fp32 is exact; triton runs the fused GPU kernels; auto is triton on a CUDA GPU with triton installed, else bf16 where the CPU/GPU has it natively (docs/performance.md). Streams decode in any precision.",
)

backend_option = click.option(
    "--backend",
    type=click.Choice(cod_lite.BACKENDS),
    default="torch",
    show_default=True,
    help="Engine for the networks: torch, or onnxruntime (graphs exported once per model and cached; fp32; the same streams).",
)

steps_option = click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Sampling steps of a multi-step (rectified-flow) model [default: the model's own; one-step codecs take 1 only].",
)
seed_option = click.option(
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    default=None,
    help="Noise seed of multi-step decoding [default: 0]; same stream, steps and seed give the same image.",
)

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(cod_lite.__version__, prog_name="codlite")
def cli() -> None:
    """Generative image compression at 0.004-0.5 bits per pixel (CoD-Lite).

    Outputs are written atomically and never replace an existing file unless --force is given.
    """
    warnings.showwarning = _warning_line


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    """Warnings as one line, like errors (not Python's file:line and source)."""
    click.echo(f"codlite: warning: {message}", err=True)


quiet_option = click.option("--quiet", "-q", is_flag=True, help="No summary lines; errors still go to stderr.")
def metadata_option(default: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--metadata", default=default, show_default=True, metavar="all|none|exif,icc,xmp", help=what)


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="CPU threads for the networks [default: every core]; several files share them out over network processes (up to 4 threads each).",
)


def _jobs(inputs: tuple[str, ...], output: str, suffix: str) -> list[tuple[str, str]]:
    """(input, output) pairs: one input goes to OUTPUT (a file, or - for stdout); several go into
    the folder OUTPUT as STEM + suffix."""
    if len(inputs) == 1:
        return [(inputs[0], output)]
    if STDIO in inputs or output == STDIO:
        raise cod_lite.InputError("- (stdin/stdout) works with a single input only")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise cod_lite.InputError(f"with several inputs OUTPUT must be a folder, and '{output}' is a file")
    targets = [str(folder / f"{Path(i).stem}{suffix}") for i in inputs]
    clash = next((t for t in targets if targets.count(t) > 1), None)
    if clash:
        raise cod_lite.InputError(f"two inputs would both write '{clash}'")
    folder.mkdir(parents=True, exist_ok=True)
    return list(zip(inputs, targets))


def _each(jobs: list[tuple[str, str]], work: Any, quiet: bool, threads: int | None, device: str | None) -> None:
    """Run `work` (a `processes.FileWork`) on each (input, output) job through `each_file`,
    printing its summary line (to stderr when the data goes to stdout). One file's failure is
    the command's error; with several, it is reported and the rest go on (exit 1 at the end)."""
    if len(jobs) == 1:
        if threads:
            cod_lite.set_threads(threads)
        line = work.run(work.codec(), jobs[0])
        if not quiet:
            click.echo(line, err=jobs[0][1] == STDIO)
        return
    failed = 0
    with tqdm(total=len(jobs), unit="file", disable=quiet or not _progress(), file=sys.stderr, leave=False) as bar:
        for (source, _), ok, line in each_file(work, jobs, threads, device, work.max_memory):
            bar.update(1)
            if not ok:
                _report_failure(source, line)
                failed += 1
            elif not quiet:
                bar.write(line, file=sys.stdout)
    if failed:
        raise cod_lite.CodLiteError(f"{failed} of {len(jobs)} files failed")


@dataclasses.dataclass
class _Compression:
    """`codlite compress` of files: picklable, so network processes can each run it."""

    model: str
    device: str | None
    max_memory: str
    precision: str
    backend: str
    metadata: str
    colour: bool
    effort: int
    force: bool

    def codec(self) -> cod_lite.Codec:
        return cod_lite.load_model(self.model, self.device, max_memory=self.max_memory, precision=self.precision, backend=self.backend)

    def run(self, codec: cod_lite.Codec, job: tuple[str, str]) -> str:
        source, target = job
        about = cod_lite.compress_file(source, target, codec, metadata=self.metadata, colour=self.colour, effort=self.effort, overwrite=self.force)
        return f"{target}: {about.width}x{about.height}, {about.bytes} bytes, {about.bpp:.4f} bpp ({codec.name})"


@dataclasses.dataclass
class _Decompression:
    """`codlite decompress` of files (each stream names its model unless `model` is given)."""

    model: str | None
    reference_format: bool
    image_format: str | None
    quality: int | None
    metadata: str
    steps: int | None
    seed: int | None
    max_memory: int
    device: str | None
    precision: str
    backend: str
    force: bool

    def codec(self) -> None:
        if self.model is not None:  # a --model that cannot load fails before any file
            cod_lite.load_model(self.model, self.device, max_memory=self.max_memory, precision=self.precision, backend=self.backend)

    def run(self, codec: None, job: tuple[str, str]) -> str:
        source, target = job
        width, height = cod_lite.decompress_file(
            source, target, model=self.model, reference_format=self.reference_format, image_format=self.image_format,
            metadata=self.metadata, steps=self.steps, seed=self.seed, max_memory=self.max_memory, precision=self.precision,
            overwrite=self.force, quality=self.quality, device=self.device, backend=self.backend,
        )
        return f"{target}: {width}x{height}"


@cli.command()
@click.argument("paths", metavar="INPUT... OUTPUT", nargs=-1, callback=_paths)
@model_option
@bpp_option
@quality_option(COMPRESS_QUALITY)
@effort_option
@no_colour_option
@metadata_option("none", "What of the input's EXIF (orientation reset: it is applied to the pixels), ICC profile and XMP the stream carries; every byte counts in bpp.")
@memory_option
@device_option
@precision_option
@backend_option
@threads_option
@quiet_option
@force_option
@friendly_errors
def compress(
    paths: tuple[tuple[str, ...], str], model: str | None, target_bpp: float | None, quality: int | None, effort: int, no_colour: bool,
    metadata: str, max_memory: str, device: str | None, precision: str, backend: str, threads: int | None, quiet: bool, force: bool,
) -> None:
    """Compress images (PNG, JPEG, WebP, TIFF, ...) into .cod streams.

    One INPUT: OUTPUT is the stream file (- writes it to stdout; INPUT - reads the image from stdin).
    Several: OUTPUT is a folder, each stream named after its image (photo.jpg -> photo.cod).
    """
    inputs, output = paths
    name = _model_choice(model, target_bpp, quality)
    _no_binary_to_terminal(output, "a .cod stream")
    jobs = _jobs(inputs, output, ".cod")
    work = _Compression(name, device, max_memory, precision, backend, metadata, not no_colour, effort, force)
    _each(jobs, work, quiet, threads, device)


@cli.command()
@click.argument("paths", metavar="INPUT... OUTPUT", nargs=-1, callback=_paths)
@model_option
@click.option(
    "--reference-format",
    is_flag=True,
    help="INPUT is a .cod from the authors' reference code (no model identity: --model is required).",
)
@click.option("--format", "image_format", default=None, metavar="EXT",
              help="Image format for stdout or a folder OUTPUT (png, jpg, webp, avif, jxl, tif, bmp) [default: png].")
@quality_option(OUTPUT_QUALITY)
@metadata_option("all", "What of the stream's EXIF, ICC profile and XMP to write into the image (PNG, JPEG, WebP, AVIF, TIFF carry them).")
@steps_option
@seed_option
@memory_option
@device_option
@precision_option
@backend_option
@threads_option
@quiet_option
@force_option
@friendly_errors
def decompress(
    paths: tuple[tuple[str, ...], str], model: str | None, reference_format: bool, image_format: str | None, quality: int | None,
    metadata: str, steps: int | None, seed: int | None, max_memory: str, device: str | None, precision: str, backend: str,
    threads: int | None, quiet: bool, force: bool,
) -> None:
    """Decompress .cod streams into images.

    One INPUT: OUTPUT's suffix picks the format (.png, .jpg, .webp, .avif, ...); - writes PNG (or
    --format) to stdout, and INPUT - reads the stream from stdin. Several: OUTPUT is a folder.
    Lossy formats are written at --quality (default 90).
    """
    inputs, output = paths
    _no_binary_to_terminal(output, "image data")
    budget = parse_memory(max_memory)  # a bad --max-memory fails once, before any file
    suffix = "." + (image_format or "png").lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:  # an unknown --format fails before any work
        raise cod_lite.InputError(f"cannot write images as '{image_format}'; use one of {', '.join(IMAGE_FORMATS)}")
    if image_format and len(inputs) == 1 and output != STDIO and Path(output).suffix.lower() != suffix:
        raise cod_lite.InputError(f"--format {image_format} does not match OUTPUT '{output}'; drop one of them")
    if reference_format and model is None:
        raise cod_lite.InputError("--reference-format needs --model: the authors' .cod does not name its model")
    jobs = _jobs(inputs, output, suffix)
    work = _Decompression(model, reference_format, image_format, quality, metadata, steps, seed, budget, device, precision, backend, force)
    _each(jobs, work, quiet, threads, device)


@cli.command()
@click.argument("streams", metavar="FILE...", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file (a JSON list), for scripts.")
@friendly_errors
def info(streams: tuple[str, ...], as_json: bool) -> None:
    """Show what .cod streams hold: model, size, bits per pixel, coding method, side information.

    A file that is no stream is reported and the rest go on (exit 1 at the end)."""
    records, failed = [], 0
    for stream in streams:
        try:
            about = cod_lite.inspect(read_input(stream))
        except cod_lite.CodLiteError as e:
            if len(streams) == 1:
                raise
            _report_failure(stream, str(e))
            failed += 1
            continue
        records.append({"file": stream, **dataclasses.asdict(about), "bpp": round(about.bpp, 6)})
        if not as_json:
            _print_info(stream if len(streams) > 1 else None, about)
    if as_json:
        click.echo(json.dumps(records, indent=1))
    if failed:
        raise cod_lite.CodLiteError(f"{failed} of {len(streams)} files are not readable streams")


def _print_info(name: str | None, about: cod_lite.StreamInfo) -> None:
    if about.model_release is None:
        shipped = "not a cod-lite release's model"
    else:
        shipped = f"cod-lite {about.model_release}" + ("" if about.model_current else ", since replaced")
    installed = "installed" if about.model_installed else "not installed here" + (
        f": codlite fetch-model {about.model_hash}" if about.model_release else "")
    if name is not None:
        click.echo(f"{name}:")
    click.echo(f"model:   {about.model} (weights {about.model_hash}; {shipped}; {installed})")
    click.echo(f"size:    {about.width}x{about.height}")
    click.echo(f"bytes:   {about.bytes} ({about.payload_bytes} payload)")
    click.echo(f"bpp:     {about.bpp:.4f}")
    click.echo(f"method:  {about.method}")
    click.echo(f"colour:  {f'corrected ({about.colour_bytes} bytes of side information)' if about.colour_bytes else 'as decoded'}")
    click.echo("metadata: " + (", ".join(f"{k} ({n} bytes)" for k, n in about.metadata.items()) or "none"))


@cli.command()
@click.option("--official", is_flag=True, help="List the authors' released models instead (used by name as official:RATE).")
@friendly_errors
def models(official: bool) -> None:
    """List the models this machine can use (bundled and imported)."""
    if official:
        for name, stem, size in cod_lite.official_models():
            state = f"imported, {size / 2**20:.0f} MiB" if size is not None else "not downloaded (fetched on first use)"
            click.echo(f"{name:20s} {stem + '.pt':26s} {state}")
        click.echo("(from huggingface.co/zhaoyangjia/CoD_Lite; the weights' terms are the authors')")
        return
    found = cod_lite.available_models()
    for m in found:
        c = m.config
        rates = m.kodak_rates
        measured = f"Kodak {rates['min']:.4f}-{rates['max']:.4f} bpp (mean {rates['mean']:.4f})" if rates else "rate not measured"
        mark = " (default)" if m.is_default else " (retired: decodes)" if m.retired else ""
        click.echo(f"{m.name + mark:34s} {measured:44s} ds={c.ds:<2d} bits={c.codebook_bits}  {m.origin:7s} {m.path}")
    if not found:
        click.echo("no models found")
    click.echo(f"(user model folder: {cod_lite.user_model_dir()}; set CODLITE_HOME to move it)")


@cli.command("export")
@click.argument("model_name", metavar="MODEL")
@click.argument("out_dir", metavar="OUT_DIR")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True, help="Graph format.")
@force_option
@friendly_errors
def export(model_name: str, out_dir: str, fmt: str, force: bool) -> None:
    """Write MODEL's networks as graphs for other engines: OUT_DIR/encoder.onnx (image -> indices),
    decoder.onnx (indices -> image, one step) and model.json (name, identity, padding rule);
    see docs/deploy.md."""
    folder = cod_lite.export_onnx(model_name, out_dir, overwrite=force)
    click.echo(f"wrote {folder / 'encoder.onnx'}, {folder / 'decoder.onnx'} and {folder / 'model.json'}")


@cli.command("fetch-model")
@click.argument("identity", metavar="WEIGHTS")
@friendly_errors
def fetch_model(identity: str) -> None:
    """Install the weights of an earlier release's model, as a stream names them (`codlite info`).

    Downloaded once from the release archive (CODLITE_ARCHIVE_URL), checked against the sha256 the
    registry holds, and kept in the user model folder: streams made with them decode offline.
    """
    path = cod_lite.fetch_model(identity)
    click.echo(f"{identity}: {path}")


@cli.command("import-official")
@click.argument("checkpoint")
@click.option("--config", "config", required=True, help="The authors' YAML published with the checkpoint.")
@click.option("--output", "-o", default=None, help="Weight file to write (default: install into the user model folder).")
@click.option("--name", default=None, help="Model name recorded in the file and in streams (default: file stem).")
@click.option("--encoder-channels", type=int, default=None, help="Condition-encoder width [default: read from the checkpoint; official: 128].")
@click.option("--prior-data", default=None, help="Image folder to fit an index prior on (smaller files; see fit-prior).")
@force_option
@friendly_errors
def import_official(
    checkpoint: str,
    config: str,
    output: str | None,
    name: str | None,
    encoder_channels: int | None,
    prior_data: str | None,
    force: bool,
) -> None:
    """Convert an official CoD-Lite checkpoint (.pt) into a cod-lite weight file."""
    name = name or (Path(output).stem if output else Path(checkpoint).stem)
    if output is None:
        folder = cod_lite.user_model_dir()
        folder.mkdir(parents=True, exist_ok=True)
        output = str(folder / f"{name}.safetensors")
    check_target(output, overwrite=force)
    path = cod_lite.import_official(checkpoint, config, output, encoder_channels, name=name, overwrite=force)
    click.echo(f"imported '{name}' -> {path}")
    if prior_data:
        cod_lite.fit_prior(path, prior_data, path, overwrite=True)
        click.echo(f"fitted an index prior on '{prior_data}'")


@cli.command("fit-prior")
@click.argument("model_name", metavar="MODEL")
@click.argument("images", metavar="IMAGE_FOLDER")
@click.option("--output", "-o", required=True, help="Weight file to write: MODEL's weights plus the fitted prior.")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Use at most this many images.")
@force_option
@friendly_errors
def fit_prior(model_name: str, images: str, output: str, max_images: int | None, force: bool) -> None:
    """Fit MODEL's index prior (entropy coding) on a folder of images.

    The network weights are copied unchanged, so streams made with MODEL stay decodable;
    streams coded with an earlier prior need the file that holds that prior.
    """
    check_target(output, overwrite=force)
    path = cod_lite.fit_prior(model_name, images, output, max_images=max_images, overwrite=force)
    click.echo(f"wrote {path} (index prior {cod_lite.load_model(path).prior.digest.hex()})")


@cli.command()
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@model_option
@bpp_option
@quality_option(f"Compressing: {COMPRESS_QUALITY} Decompressing: {OUTPUT_QUALITY}")
@click.option("--decompress", "-d", is_flag=True, help="SRC holds .cod streams: write images back.")
@click.option("--format", "image_format", default="png", show_default=True, help="Image format written by --decompress.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files whose path under SRC (or name) matches; repeatable.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out files whose path under SRC (or name) matches; repeatable.")
@effort_option
@no_colour_option
@click.option("--metadata", default=None, metavar="all|none|exif,icc,xmp",
              help="What of EXIF, ICC profile and XMP goes along [default: none into streams, all into images].")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=4, show_default=True, help="Threads for image/file I/O.")
@click.option("--shard", default=None, metavar="I/N", help="Only the I-th of N deterministic parts of SRC (0 <= I < N).")
@click.option("--force", "-f", is_flag=True, help="Redo files whose output already exists.")
@memory_option
@click.option("--compile", "compile_", is_flag=True, help="Compile the network first (slow start, faster per file; see docs/performance.md).")
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Same-size files per network call [default: 8 on a GPU, 1 on a CPU]")
@precision_option
@backend_option
@threads_option
@steps_option
@seed_option
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: I/O threads beside the network in this process; ray: a Ray cluster (network actors, streaming).")
@click.option("--address", default=None, help="Ray cluster to join (e.g. ray://head:10001) [default: a local one for the run].")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True, help="GPUs per Ray network actor.")
@click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
              help="fsspec option for s3:// gs:// az:// ... folders (VALUE as JSON where it parses); repeatable.")
@quiet_option
@friendly_errors
def convert(
    src: str, dst: str, model: str | None, target_bpp: float | None, quality: int | None, decompress: bool, image_format: str,
    include: tuple[str, ...], exclude: tuple[str, ...], effort: int, no_colour: bool, metadata: str | None, workers: int, shard: str | None,
    force: bool, max_memory: str, compile_: bool, device: str | None, batch_size: int | None, precision: str, backend: str,
    threads: int | None, steps: int | None, seed: int | None, engine: str, address: str | None, gpus_per_worker: float,
    storage_options: tuple[str, ...], quiet: bool,
) -> None:
    """Convert a whole folder (recursively) into DST, mirroring its tree.

    Images become streams (or, with --decompress, .cod streams become images); other files are
    left alone and counted. Existing outputs are skipped, so an interrupted run resumes where it
    stopped. A file that fails is reported and the rest go on; the exit code is 1 if any failed.
    SRC and DST may be fsspec URLs (s3://bucket/photos, gs://..., memory://...); endpoints and
    credentials come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) or
    --storage-option.
    """
    summary = cod_lite.convert(
        src, dst, model=model, bpp=target_bpp, quality=quality, decompress=decompress, image_format=image_format,
        include=include, exclude=exclude, colour=not no_colour, effort=effort, metadata=metadata, workers=workers, shard=shard, force=force,
        on_failure=_report_failure, max_memory=parse_memory(max_memory), compile=compile_, device=device, batch_size=batch_size,
        precision=precision, backend=backend, steps=steps, seed=seed, progress=_progress() and not quiet, engine=engine,
        address=address, gpus_per_worker=gpus_per_worker, storage_options=_storage_options(storage_options), threads=threads,
    )
    if not quiet or summary.failed:
        click.echo(summary.report())
    if summary.failed:
        sys.exit(1)


def _storage_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs as fsspec options, each VALUE read as JSON where it parses (numbers, true,
    objects), else as text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise cod_lite.InputError(f"--storage-option takes KEY=VALUE, got '{pair.split('=')[0]}...'")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


@cli.command()
@click.argument("reference", metavar="REF_DIR")
@click.argument("decoded", metavar="DEC_DIR", required=False)
@model_option
@click.option("--streams", default=None, metavar="DIR", help="Folder of the .cod streams, for bpp (default: DEC_DIR).")
@click.option("--fid", is_flag=True, help="Also FID/KID over image patches (slow on a CPU).")
@click.option("--fid-patch", type=click.IntRange(min=16), default=64, show_default=True, help="Patch side for FID/KID.")
@click.option("--out", default="codlite-evaluation", show_default=True, metavar="PREFIX", help="Writes PREFIX.csv and PREFIX.json.")
@force_option
@friendly_errors
def evaluate(reference: str, decoded: str | None, model: str | None, streams: str | None, fid: bool, fid_patch: int, out: str, force: bool) -> None:
    """Quality of decoded images: PSNR, MS-SSIM, LPIPS-Alex/VGG, DISTS, blockiness, pattern per image and on average.

    Blockiness is the mean luma step across 16-pixel patch borders over the mean step inside
    patches (about 1 for photos, above 1 for a visible grid). Pattern is the RMS in grey levels
    of the mean 16x16 patch less its mean: a texture repeated in every patch (about 1-2 for
    photos). "(orig)" is the original's.

    Compares REF_DIR with DEC_DIR (same relative paths; any image format), or, with --model and
    no DEC_DIR, with REF_DIR compressed and decompressed by that model. Exit code 1 if any
    image could not be evaluated.
    """
    if decoded is None and model is None:
        raise cod_lite.InputError("give DEC_DIR, or --model to compress REF_DIR itself")
    outputs = [Path(f"{out}.csv"), Path(f"{out}.json")]
    for path in outputs:
        check_target(path, overwrite=force)

    result = cod_lite.evaluate(reference, decoded, model=model, streams_dir=streams, fid=fid, fid_patch=fid_patch, on_failure=_report_failure)
    click.echo(result.table())
    for path, text in zip(outputs, (result.to_csv(), result.to_json())):
        atomic_write(path, text.encode(), overwrite=force)
    click.echo(f"wrote {' and '.join(str(p) for p in outputs)}")
    if result.failed or not result.rows:
        sys.exit(1)


cli.add_command(train_group)
