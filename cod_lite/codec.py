"""`Codec`: a loaded model with compress/decompress, plus the module-level shortcuts."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch

from . import batch, bitstream, colour, inference, tiling, zoo
from .container import read_stream, write_stream
from .effort import check_effort, search
from .entropy.packing import unpack_indices
from .entropy.prior import IndexPrior
from .errors import BitstreamError, InputError
from .fileio import StreamSource, stream_bytes
from .image_io import ImageSource, load_image, metadata_kinds, read_metadata
from .kernels.fast import phase_dtypes
from .models.config import ModelConfig
from .models.network import CodLiteNet, to_uint8
from .models.sampling import Sampling, check_steps, sample_indices
from .weights import load_weights, read_sampling




class Codec:
    """One model, ready to encode and decode. Create it with `cod_lite.load_model`."""

    def __init__(
        self,
        net: CodLiteNet,
        weights_sha256: str,
        path: Path | None = None,
        device: str | None = None,
        prior: IndexPrior | None = None,
        *,
        max_memory: int | str = tiling.DEFAULT_MAX_MEMORY,
        compile: bool = False,
        precision: str = "auto",
        backend: str = "torch",
    ) -> None:
        self.device = torch_device(device)
        self.net = net.to(self.device).eval()
        self.model_config: ModelConfig = net.config
        self.weights_sha256 = weights_sha256
        self.path = path
        self.prior = prior
        self.max_memory = tiling.parse_memory(max_memory)
        self.inference = inference.select(self.net, precision, self.device, compile, backend, weights_sha256)
        self._quantize, self._reconstruct = self.inference.quantize, self.inference.reconstruct

    @property
    def precision(self) -> str:
        """What untiled passes run in (`inference.InferencePath.label`), e.g. "fp32" (the exact
        network), "bf16", or "encode fp32, decode fp32 fast" (`auto` without native bf16). Tiled
        passes are exact fp32."""
        return self.inference.label

    @property
    def name(self) -> str:
        """The model's name, as streams record it (with `identity`)."""
        return self.model_config.name

    @property
    def identity(self) -> bytes:
        """What a stream stores to name these exact weights: the first 8 bytes of their sha256."""
        return bytes.fromhex(self.weights_sha256)[:8]

    @property
    def config(self) -> dict[str, Any]:
        """Everything that identifies the model, as plain JSON-able values (for logs and reports;
        `model_config` is the typed object)."""
        values = self.model_config.to_dict()
        values.update(
            nominal_bpp=self.model_config.nominal_bpp,
            weights_sha256=self.weights_sha256,
            index_prior=self.prior.digest.hex() if self.prior else None,
        )
        return values

    def __repr__(self) -> str:
        return f"Codec({self.name!r}, ds={self.model_config.ds}, bits={self.model_config.codebook_bits})"

    # -- the two halves of the network ---------------------------------------------------------
    def quantize(self, image: ImageSource) -> np.ndarray:
        """Image -> int64 index grid (H/ds, W/ds) of the image edge-padded to the model's size unit;
        tiled (approximately) when the untiled pass would need more than `max_memory`. The
        network's half of `encode` only: no entropy coding, colour side information or metadata."""
        pixels = self.padded(load_image(image))
        ph, pw = pixels.shape[:2]
        with torch.inference_mode():
            if tiling.quantize_bytes(self.model_config, ph, pw) > self.max_memory:
                return tiling.quantize_tiled(self.net, pixels, self.max_memory, self.device)
            return self._quantize(tiling.image_tensor(pixels, self.device))[0].cpu().numpy().astype(np.int64)

    def padded(self, pixels: np.ndarray) -> np.ndarray:
        """HxWx3 pixels edge-padded to the model's size unit (the container's pad mode 0)."""
        height, width = self.model_config.padded_size(*pixels.shape[:2])
        if pixels.shape[:2] == (height, width):
            return pixels
        return np.pad(pixels, ((0, height - pixels.shape[0]), (0, width - pixels.shape[1]), (0, 0)), mode="edge")

    # -- steps ----------------------------------------------------------------------------------
    @functools.cached_property
    def sampling(self) -> Sampling | None:
        """The model's rectified-flow record from its weight file (None: a one-step codec)."""
        return read_sampling(self.path) if self.path is not None else None

    def steps_for(self, steps: int | None) -> int:
        """`steps` checked against this model; None is the model's default (1 for one-step codecs)."""
        if steps is None:
            return self.sampling.steps if self.sampling else 1
        check_steps(steps)
        if steps > 1 and self.sampling is None:
            raise InputError(
                f"model '{self.name}' is a one-step codec: it decodes with 1 step, not {steps} "
                "(more steps need a model trained with the rectified-flow pretrain stage)"
            )
        return steps

    def _one_pass(self, steps: int) -> bool:
        """Whether decoding is the plain t = 0 pass (no noise, the seed does not matter)."""
        return steps == 1 and (self.sampling is None or self.sampling.t0_input == "zeros")

    def _sample(self, idx: torch.Tensor, steps: int, seed: int | None) -> torch.Tensor:
        return sample_indices(self.net, idx, steps, seed, self.sampling, self.max_memory)

    def reconstruct(
        self, indices: np.ndarray, height: int, width: int, *, steps: int | None = None, seed: int | None = None
    ) -> np.ndarray:
        """Index grid -> uint8 HxWx3 image, cropped to height x width; `steps` > 1 samples the
        model's rectified flow from the noise of `seed` (docs/format.md, "Multi-step decoding").
        The network's output alone: `decode` of a stream also applies the colour side information
        the encoder sent, so the two differ where the stream carries it (by up to tens of levels
        where the network drifts in colour)."""
        indices = np.asarray(indices)
        ds = self.model_config.ds
        ph, pw = self.model_config.padded_size(height, width)
        if indices.shape != (ph // ds, pw // ds):
            raise InputError(f"indices of shape {indices.shape} do not fit a {width}x{height} image (need {(ph // ds, pw // ds)})")
        if indices.size and (indices.min() < 0 or indices.max() >= self.model_config.codebook_size):
            raise InputError(f"indices must be in 0..{self.model_config.codebook_size - 1}")
        return self._image(indices, height, width, self.steps_for(steps), seed)

    def _image(self, indices: np.ndarray, height: int, width: int, steps: int, seed: int | None) -> np.ndarray:
        """`reconstruct` of a checked grid and step count: the untiled, tiled or sampled pass."""
        ph, pw = self.model_config.padded_size(height, width)
        idx = torch.from_numpy(indices.astype(np.int64)).to(self.device)[None]
        with torch.inference_mode():
            if not self._one_pass(steps):
                out = self._sample(idx, steps, seed)[0, :height, :width]
            elif tiling.reconstruct_bytes(self.model_config, ph, pw) > self.max_memory:
                out = tiling.reconstruct_tiled(self.net, idx, self.max_memory)[:height, :width]
            else:
                out = to_uint8(self._reconstruct(idx))[0, :height, :width]
        return np.ascontiguousarray(out.cpu().numpy())

    # -- streams ------------------------------------------------------------------------------
    def encode(
        self, image: ImageSource, methods: tuple[int, ...] | None = None, metadata: str | Sequence[str] = "none",
        colour: bool = True, effort: int = 0,
    ) -> bytes:
        """Image (path, image-file bytes, PIL image or HxWx3 uint8 array) -> a cod-lite stream,
        entropy-coded with whichever of `methods` (default: all the model supports) gives the
        smallest payload. `metadata` ('none', 'all' or kinds of exif/icc/xmp) picks what of the
        source's EXIF, ICC profile and XMP the stream carries (docs/format.md). With `colour`, the
        encoder decodes its own indices and adds colour corrections where they pay for their
        bytes (`cod_lite.colour`; encoding then takes one decode longer). `effort` 1-3 searches
        for indices that decode closer to the image than the nearest codewords (`cod_lite.effort`;
        0, the default, does not)."""
        check_effort(effort)
        self._check_offered()
        pixels = load_image(image)
        carried = read_metadata(image, metadata_kinds(metadata))
        return self._stream(self.searched(pixels, self.quantize(pixels), effort), pixels, methods, carried, colour)

    @functools.cached_property
    def _retired(self) -> str | None:
        return zoo.retirement(self.name, self.weights_sha256)

    def _check_offered(self) -> None:
        """InputError if these weights are retired (`zoo.RETIRED`): they decode, they make no new streams."""
        why = self._retired
        if why is not None:
            raise InputError(f"{self.name} is retired: it decodes the streams it made but makes no new ones ({why})")

    def searched(self, pixels: np.ndarray, indices: np.ndarray, effort: int) -> np.ndarray:
        """`indices` of `pixels` after the encoder's search at `effort` (`cod_lite.effort`)."""
        if not effort:
            return indices
        padded = self.padded(pixels)
        if SEARCH_MEMORY * tiling.reconstruct_bytes(self.model_config, *padded.shape[:2]) > self.max_memory:
            raise InputError(f"effort {effort} searches through the whole decoder, which needs more than max_memory for "
                             f"this {pixels.shape[1]}x{pixels.shape[0]} image; raise it or use effort 0")
        with torch.inference_mode(False), torch.enable_grad():
            image01 = tiling.image_tensor(padded, self.device)
            found = search(self.net, image01, torch.from_numpy(indices).to(self.device)[None], effort)
        return found[0].cpu().numpy().astype(np.int64)

    def encode_many(
        self, images: Sequence[ImageSource], methods: tuple[int, ...] | None = None, colour: bool = True,
        metadata: Sequence[dict[str, bytes] | None] | None = None, effort: int = 0,
    ) -> list[bytes]:
        """Streams for several images, images of one size sharing network calls (`cod_lite.batch`)."""
        self._check_offered()
        return batch.encode_many(self, images, methods, colour, metadata, check_effort(effort))

    def _stream(
        self, indices: np.ndarray, pixels: np.ndarray, methods: tuple[int, ...] | None,
        metadata: dict[str, bytes] | None, correct_colour: bool,
    ) -> bytes:
        """The stream of `indices`, coded from `pixels` (the original, which the colour side
        information is fitted against: on what the decoder will make of `indices`)."""
        height, width = pixels.shape[:2]
        side = None
        if correct_colour:
            side = lambda payload_bytes: colour.side_information(pixels, self._decoded_regions(indices, height, width), payload_bytes)  # noqa: E731
        return write_stream(indices, height, width, self.model_config, self.identity, self.prior, methods, metadata, side)

    def _decoded_regions(self, indices: np.ndarray, height: int, width: int) -> np.ndarray:
        """The 16x16 region means of what the decoder makes of `indices` (what the colour side
        information is fitted on): from a quarter of the pixel head where the path can
        (`FastPath.region_means`: networks without a seam refiner, one-pass, untiled), else
        from a whole decode."""
        ph, pw = self.model_config.padded_size(height, width)
        fast = self.inference.region_means
        if (
            fast is None or min(height, width) < colour.COLOUR_BLOCK or not self._one_pass(self.steps_for(None))
            or tiling.reconstruct_bytes(self.model_config, ph, pw) > self.max_memory
        ):
            return colour.region_means(self.reconstruct(indices, height, width))
        with torch.inference_mode():
            means = fast(torch.from_numpy(indices.astype(np.int64)).to(self.device)[None])[0].cpu().numpy()
        return means[: height // colour.COLOUR_BLOCK, : width // colour.COLOUR_BLOCK]

    def decode_indices(self, data: bytes) -> tuple[np.ndarray, int, int]:
        """Stream -> (index grid, height, width) after checking it belongs to this model."""
        return self._read(data)[1:]

    def _read(self, data: bytes) -> tuple[bitstream.StreamHeader, np.ndarray, int, int]:
        """Parse a stream once: (header, index grid, height, width), checked against this model."""
        header, indices = read_stream(data, self.model_config, self.identity, self.prior)
        return header, indices, header.height, header.width

    def decode(self, data: bytes, steps: int | None = None, seed: int | None = None) -> PIL.Image.Image:
        """A cod-lite stream -> RGB image; `steps` and `seed` as in `reconstruct` (the stream
        does not depend on them). Metadata the stream carries is in the image's `info` under
        Pillow's keys ('exif', 'icc_profile', 'xmp'), so `image.save(...)` of formats that take
        them keeps them when passed on (`image_io.save_image(..., metadata=)` does it)."""
        steps = self.steps_for(steps)
        header, indices, height, width = self._read(data)
        pixels = colour.correct(self._image(indices, height, width, steps, seed), header.colour, header.colour_grid)
        image = PIL.Image.fromarray(pixels, "RGB")
        image.info.update({PILLOW_INFO_KEYS[k]: v for k, v in header.metadata.items()})
        return image

    def decode_many(self, streams: Sequence[bytes], steps: int | None = None, seed: int | None = None) -> list[np.ndarray]:
        """HxWx3 uint8 images for several streams, images of one size sharing network calls
        (`cod_lite.batch`); `steps` and `seed` as in `decode`."""
        return batch.decode_many(self, streams, steps, seed)

    def decode_reference(self, data: bytes, steps: int | None = None, seed: int | None = None) -> PIL.Image.Image:
        """A `.cod` file in the authors' layout (which does not say which model made it)."""
        width, height, payload = bitstream.read_reference_cod(data)
        ds, unit = self.model_config.ds, self.model_config.size_unit
        if height % unit or width % unit:  # the reference code neither pads nor checks
            raise BitstreamError(f"reference .cod size {width}x{height} is not a multiple of {unit}, which this model needs")
        count = (height // ds) * (width // ds)
        indices = unpack_indices(payload, self.model_config.codebook_bits, count).reshape(height // ds, width // ds)
        return PIL.Image.fromarray(self.reconstruct(indices, height, width, steps=steps, seed=seed), "RGB")


PILLOW_INFO_KEYS = {"exif": "exif", "icc": "icc_profile", "xmp": "xmp"}  # metadata kind -> PIL info key
SEARCH_MEMORY = 4  # the effort search's forward + backward against one decode's working memory


def stream_metadata(image: PIL.Image.Image) -> dict[str, bytes]:
    """The metadata `decode` put into a decoded image's info, by kind (for save_image)."""
    return {kind: image.info[key] for kind, key in PILLOW_INFO_KEYS.items() if image.info.get(key)}


def torch_device(name: str | None) -> torch.device:
    """A torch device by name (default CPU), or InputError for a bad name or a missing GPU."""
    try:
        device = torch.device(name or "cpu")
    except RuntimeError:
        raise InputError(f"unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{name}' asked for, but CUDA is not available here")
    return device


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, device: str | None, max_memory: int, compile: bool, precision: str, backend: str) -> Codec:
    config, state, meta = load_weights(path)
    net = CodLiteNet(config)
    net.load_state_dict(state, strict=True)
    return Codec(net, meta["weights_sha256"], Path(path), device, meta["prior"], max_memory=max_memory, compile=compile, precision=precision,
                 backend=backend)


def load_model(
    name_or_path: str | os.PathLike = "default",
    device: str | None = None,
    *,
    max_memory: int | str = tiling.DEFAULT_MAX_MEMORY,
    compile: bool = False,
    precision: str = "auto",
    backend: str = "torch",
) -> Codec:
    """A model by zoo name ('default', a bundled or imported name) or weight-file path.

    `max_memory` (bytes, or a size such as '4G') bounds the working memory of one image: above it
    the image is processed in tiles (docs/performance.md). `compile=True` runs untiled passes
    through `inference.compiled` (fp32; a changed summation order can flip near-tied indices, and pixels
    may move by 1). `precision`: "fp32" is the exact network (parity with the reference), "bf16"
    the reduced-precision fast path, "triton" the fused Triton kernels (fp32; CUDA, or CPU under
    TRITON_INTERPRET=1), "auto" (default) the Triton kernels on a CUDA GPU where triton is
    installed (falling back to the torch path if they fail there), else bf16 where the device
    has native bf16 (avx512_bf16/AMX CPUs, CUDA) and the quality guarantee of docs/performance.md
    holds, else fp32. Streams do not depend on it: any precision decodes any stream.
    `backend="onnxruntime"` runs the two networks through ONNX Runtime (`cod_lite.onnx_runtime`:
    the graphs exported once per model and cached; fp32; the same streams).
    """
    phase_dtypes(precision, torch.device("cpu"))  # a bad name fails before the weights load
    path = zoo.resolve(name_or_path).resolve()
    return _load_cached(str(path), path.stat().st_mtime_ns, device, tiling.parse_memory(max_memory), compile, precision, backend)


def set_threads(count: int) -> None:
    """How many CPU threads the networks use (torch's pool for this process); `codlite --threads`."""
    if count < 1:
        raise InputError(f"threads must be at least 1, got {count}")
    torch.set_num_threads(count)


def encode(
    image: ImageSource,
    model: str | os.PathLike | Codec = "default",
    *,
    bpp: float | None = None,
    max_memory: int | str = tiling.DEFAULT_MAX_MEMORY,
    compile: bool = False,
    device: str | None = None,
    precision: str = "auto",
    backend: str = "torch",
    metadata: str | Sequence[str] = "none",
    colour: bool = True,
    effort: int = 0,
) -> bytes:
    """Compress an image (path, image-file bytes, PIL image or HxWx3 uint8 array) into a whole
    stream: the model's indices, entropy-coded, plus colour side information (`colour`) and the
    source's `metadata` ('none', 'all' or kinds of exif/icc/xmp). `bpp` picks the bundled model
    nearest that rate instead of `model`; `effort` 1-3 searches for better indices (slower). Models load once per process (cached), so calling this
    per image is cheap; a `Codec` is used as it is (the loading options then do not apply)."""
    if bpp is not None:
        if model != "default":
            raise InputError("give model= or bpp=, not both")
        model = zoo.model_for_bpp(bpp)
    codec = model if isinstance(model, Codec) else load_model(
        model, device, max_memory=max_memory, compile=compile, precision=precision, backend=backend)
    return codec.encode(image, metadata=metadata, colour=colour, effort=effort)


def decode(
    data: StreamSource,
    model: str | os.PathLike | Codec | None = None,
    *,
    max_memory: int | str = tiling.DEFAULT_MAX_MEMORY,
    compile: bool = False,
    device: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    precision: str = "auto",
    backend: str = "torch",
) -> PIL.Image.Image:
    """Decompress a stream (bytes, a path, or a binary file object) into an RGB image, colour
    side information applied and metadata in `image.info`; with model=None the stream's own
    model identity picks the weights, so a `.cod` file is all a user needs to keep. `steps`
    (default: the model's own, 1 for one-step codecs) and `seed` (default 0) choose the
    multi-step decoding of rectified-flow models."""
    data = stream_bytes(data)
    if model is None:
        header = bitstream.parse(data)
        model = zoo.find_by_identity(header.model_name, header.model_hash)
    codec = model if isinstance(model, Codec) else load_model(
        model, device, max_memory=max_memory, compile=compile, precision=precision, backend=backend)
    return codec.decode(data, steps=steps, seed=seed)
