"""Which code runs a model's two network phases, chosen once when a `Codec` loads: the exact
network (`precision="fp32"`), the fast path (`kernels/fast.py`, bf16 or fp32), the Triton
kernels (`kernels/`), or inductor-compiled graphs of the exact network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import kernels
from .errors import InputError
from .kernels.fast import FastPath, phase_dtypes, precision_label
from .models.network import CodLiteNet
from .onnx_runtime import BACKENDS, OnnxRuntimePath

Method = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class InferencePath:
    """The (quantize, reconstruct) a codec runs untiled passes through, and what they are."""

    quantize: Method
    reconstruct: Method
    region_means: Method | None = None  # indices -> 16x16 region means of the decoding, estimated (`FastPath.region_means`)
    encode_dtype: torch.dtype | None = None  # None: the exact network; else the fast path in this dtype
    decode_dtype: torch.dtype | None = None
    uses_kernels: bool = False
    compiled: bool = False
    backend: str = "torch"

    @property
    def label(self) -> str:
        """e.g. "fp32" (the exact network), "bf16", "encode fp32, decode fp32 fast", "fp32 triton",
        "fp32 onnxruntime"."""
        if self.backend != "torch":
            return f"fp32 {self.backend}"
        return "fp32 triton" if self.uses_kernels else precision_label(self.encode_dtype, self.decode_dtype)


def select(
    net: CodLiteNet, precision: str, device: torch.device, compile: bool, backend: str = "torch", weights_sha256: str = "",
) -> InferencePath:
    """The path of `precision` ("auto", "fp32", "bf16", "triton"; `load_model` says what each
    runs) and `backend` ("torch", "onnxruntime") for `net` on `device`, or InputError where that
    cannot run here."""
    encode_dtype, decode_dtype = phase_dtypes(precision, device)  # checks the name first
    if backend not in BACKENDS:
        raise InputError(f"unknown backend '{backend}'; use one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime":
        if precision not in ("auto", "fp32") or compile:
            raise InputError("the onnxruntime backend runs the fp32 graphs: use precision auto or fp32, without compile")
        runtime = OnnxRuntimePath(net, weights_sha256, device)
        return InferencePath(runtime.quantize, runtime.reconstruct, backend="onnxruntime")
    if compile:
        if precision == "bf16":
            raise InputError("compile=True runs the fp32 network; use precision='fp32' or 'auto' with it")
        encode_dtype = decode_dtype = None  # the graphs are of the exact fp32 network
    methods: tuple[Method, Method] = (net.quantize, net.reconstruct)
    region_means = None
    if encode_dtype is not None or decode_dtype is not None:
        fast = FastPath(net, encode_dtype, decode_dtype)
        methods = (fast.quantize, fast.reconstruct)
        if decode_dtype is not None and net.refine is None:
            region_means = fast.region_means
    kernels_used = uses_kernels(precision, device, compile)
    if kernels_used:  # "auto" keeps the torch path as a fallback; an explicit "triton" does not
        methods = kernels.codec_methods(net, methods if precision == "auto" else None)
    if compile:
        _prepare_for_compile(net, device)
        methods = (compiled(methods[0]), compiled(methods[1]))
    if kernels_used or compile:
        region_means = None  # the colour fit sees what those paths decode
    return InferencePath(*methods, region_means, encode_dtype, decode_dtype, kernels_used, compile)


def uses_kernels(precision: str, device: torch.device, compile: bool) -> bool:
    """Whether untiled passes run the Triton kernels (`cod_lite.kernels`): asked for ("triton"),
    or "auto" on a CUDA GPU where triton is installed (compile=True keeps its own graphs)."""
    if precision == "triton":
        if compile:
            raise InputError("compile=True runs the compiled fp32 network; precision 'triton' runs the kernels instead")
        if not kernels.available():
            raise InputError("precision 'triton' needs the triton package and a CUDA GPU")
        return True
    return precision == "auto" and device.type == "cuda" and not compile and kernels.available()


def compiled(fn: Method) -> Method:
    """`fn` (a network method) compiled with inductor, the weights frozen into the graph as constants.

    Compilation happens on the first call of each new input size (tens of seconds to minutes on a
    CPU), so it pays off over many images (`codlite convert --compile`). Freezing needs inference
    mode, which `Codec` always uses. fp32 only: `Codec` compiles the exact network (the bf16
    path is eager, fast from its first call).
    """
    return torch.compile(fn, options={"freezing": True})


def _prepare_for_compile(net: CodLiteNet, device: torch.device) -> None:
    # compiled, the encoder ran 1.07x faster with channels_last weights (images arrive
    # channels_last: an HxWx3 array permuted) and the decoder 1.14x faster without them
    net.y_embedder.encoder.to(memory_format=torch.channels_last)
    # cache the t = 0 modulation first: a graph compiled without it is recompiled once it exists
    side = 2 * net.config.size_unit // net.config.ds  # GroupNorm needs two cells
    with torch.inference_mode():
        net.reconstruct(torch.zeros(1, side, side, dtype=torch.long, device=device))
